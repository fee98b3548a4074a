//! The NATS/JetStream layer of serverless-hosted-runner.
//!
//! - [`server`]: a `nats-server` child process with JetStream (tests, the demo, all-in-one mode).
//! - [`connect_as`] and [`ensure_bus`]: one client connection under an [`Identity`] (nkey or
//!   creds, its own inbox prefix), and the streams and KV buckets named in
//!   [`bus_schema::subject`], created or updated idempotently by the central placement;
//!   [`lookup_bus`] only looks them up (tenant agents, the webhook).
//! - [`security`]: the identities and their grants, and the server configuration for them.
//! - [`Records`]: typed records in a KV bucket where every write is a compare-and-set on the
//!   revision, and [`Records::modify`] retries a read-modify-write until it lands.
//! - [`Leases`]: exclusive, expiring ownership of a key (poller per registration, reaper sweep).
//!
//! Must not depend on the actors, providers or registration crates.
//!
//! Nothing here spells a subject, stream or bucket name: they all come from `bus_schema`.

mod bus;
mod error;
mod lease;
mod records;
pub mod security;
pub mod server;

pub use bus::{
    Bus, BusOptions, DUPLICATE_WINDOW, EVENT_MAX_AGE, Identity, RECORD_HISTORY, connect,
    connect_as, connect_named, ensure_bus, ensure_bus_with, lookup_bus, lookup_bus_with,
    redact_url,
};
pub use error::Error;
pub use lease::{LEASE_RENEW_EVERY, LEASE_TTL, Lease, Leases};
pub use records::{MODIFY_ATTEMPTS, Modified, Records};
pub use server::{NatsServer, ServerOptions};

/// Re-exported so callers name the same async-nats types this crate returns.
pub use async_nats;
