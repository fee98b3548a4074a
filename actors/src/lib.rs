//! The five actors of serverless-hosted-runner and what they share.
//!
//! | actor | module | consumes | emits |
//! | --- | --- | --- | --- |
//! | webhook | [`webhook`] | GitHub deliveries | job events |
//! | poller | [`poller`] | GitHub REST | job events |
//! | scheduler | [`scheduler`] (rules in [`scheduler::decide`]), [`pool`], [`slots`], [`request`] | job events, runner events | provision and reap commands |
//! | provisioner | [`provisioner`] | provision commands | runner events |
//! | reaper | [`reaper`], [`sweep`] | reap commands, a periodic sweep | runner events |
//!
//! Actors talk only over NATS. Each is an async task (or a few) fed by a durable JetStream
//! consumer; the consumer is the actor's mailbox, and it survives the process. See the README
//! for why these are tokio tasks rather than actix actors.
//!
//! Shared machinery: [`consume`] (durable consumers, lanes by record key), [`leased`] (the
//! one leased periodic loop: poller, pool, sweep) and the one compare-and-set write path for
//! records (`cas`); [`credential`] paces a GitHub credential and shares its budget across
//! replicas. Outside its tests this crate must not depend on the simulators, the lab or
//! any cloud crate:
//! providers come in through [`providers::Provider`].

mod cas;
pub mod consume;
mod context;
pub mod credential;
mod error;
pub mod ingress;
pub mod leased;
pub mod live;
pub mod observe;
pub mod poller;
pub mod pool;
pub mod provisioner;
pub mod reaper;
pub mod request;
pub mod routing;
pub mod scheduler;
pub mod slots;
pub mod sweep;
pub mod tls;
pub mod trace;
pub mod webhook;

pub use context::{Context, JitKeys, Reg, RunnerRecords, Stats};
pub use error::Error;
pub use provisioner::ProviderSet;
