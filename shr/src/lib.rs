//! The `shr` binary's library half: wiring actors from configuration, the demo and test
//! harness, the simulators as commands, and the benchmarks. `main.rs` only parses arguments.

pub mod bench;
pub mod chaos;
pub mod clouds;
pub mod demo;
pub mod harness;
pub mod metrics_server;
pub mod registration_cmd;
pub mod sim;
pub mod status;
pub mod status_cmd;
pub mod status_page;
pub mod wiring;

/// Exit code for bad input (BSD `EX_USAGE`/`EX_DATAERR` family): configuration or arguments.
pub const EXIT_BAD_INPUT: u8 = 64;

/// A replica identity for leases: host name and pid.
pub fn holder_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "host".into());
    format!("{}-{}", host.trim(), std::process::id())
}
