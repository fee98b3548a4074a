//! The `shr` binary's library half: wiring actors from configuration, the cloud providers
//! built from it, and the registration commands. `main.rs` only parses arguments.
//!
//! This is the product. Must not depend on: `simulators`, the lab (`shr-lab`), or any cloud
//! crate's `sim` feature; a test in `lab/tests/product_deps.rs` checks the dependency graph.

pub mod keys_cmd;
pub mod metrics_server;
pub mod registration_cmd;
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
