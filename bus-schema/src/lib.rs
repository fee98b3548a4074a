//! The bus contract of serverless-hosted-runner: every NATS subject, stream, bucket and message.
//!
//! This crate is plain data. It does no I/O and knows nothing of NATS clients; it only says
//! what travels where and in which shape. No other crate writes a subject string.
//!
//! # Wire format
//! Messages are MessagePack maps with field names ([`encode`] uses `rmp_serde::to_vec_named`).
//! Fields added after v1 carry `#[serde(default)]`, and decoding ignores unknown fields, so a
//! newer producer and an older consumer keep talking. Golden files under `golden/` pin the bytes
//! of every message; a test fails when the format drifts.
//!
//! # Versioning
//! The version is part of every subject (`shr.v1.…`). A breaking change gets a new version and
//! new subjects; both versions can run side by side during a migration.

mod live;
mod message;
pub mod msg_id;
mod observed;
mod pool;
mod record;
mod seal;
mod secret;
mod spec;
pub mod subject;

pub use live::{LiveRegistration, LiveState};
pub use message::{
    JobCompleted, JobEvent, JobEventError, JobQueued, JobSource, JobStarted, ProvisionRunner,
    ReapReason, ReapRunner, RunnerCreated, RunnerDeleted, RunnerEvent, RunnerFailed,
};
pub use observed::{CredentialBudget, CredentialPace, GitHubSeen, WebhookSeen};
pub use pool::{PoolSequence, Slots};
pub use record::{
    IllegalTransition, JobRecord, JobState, RunnerName, RunnerNameError, RunnerRecord, RunnerState,
};
pub use seal::{JitPrivateKey, JitPublicKey, SealError, SealedSecret};
pub use secret::Secret;
pub use spec::{
    Capabilities, ErrorKind, JobRef, Network, ProviderKind, RunnerSpec, Scope, UnknownProvider,
};

use serde::{Serialize, de::DeserializeOwned};

/// Failure to encode or decode a bus payload.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value could not be written as MessagePack.
    #[error("encoding {what} as MessagePack")]
    Encode {
        what: &'static str,
        #[source]
        source: rmp_serde::encode::Error,
    },
    /// The bytes were not a valid MessagePack encoding of the expected message.
    #[error("decoding {what} from MessagePack")]
    Decode {
        what: &'static str,
        #[source]
        source: rmp_serde::decode::Error,
    },
}

/// Encodes a bus value as a MessagePack map with field names.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    rmp_serde::to_vec_named(value).map_err(|source| CodecError::Encode {
        what: std::any::type_name::<T>(),
        source,
    })
}

/// Decodes a bus value written by [`encode`] (or by any producer using named fields).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    rmp_serde::from_slice(bytes).map_err(|source| CodecError::Decode {
        what: std::any::type_name::<T>(),
        source,
    })
}

/// Milliseconds since the Unix epoch, the one timestamp unit on the bus.
pub type UnixMillis = i64;

/// The current wall-clock time in [`UnixMillis`].
pub fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
