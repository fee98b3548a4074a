//! The crate's one error type. Each variant names the failed operation and keeps its cause;
//! [`Error::kind`] says whether retrying can help and [`Error::is_conflict`] marks lost
//! compare-and-set races (re-read, then retry).

use std::{path::PathBuf, time::Duration};

use async_nats::jetstream::{
    context::{CreateKeyValueErrorKind, CreateStreamErrorKind, PublishErrorKind},
    kv::{CreateErrorKind, EntryErrorKind, UpdateErrorKind, WatchErrorKind, WatcherErrorKind},
};
use bus_schema::ErrorKind;

/// A boxed cause, for the async-nats errors that arrive as `Box<dyn Error>`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can fail in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `nats-server` binary was found.
    #[error(
        "nats-server not found (looked at $NATS_SERVER_BIN, PATH, {tools} and ~/.local/bin); run scripts/install-nats.sh"
    )]
    ServerBinaryMissing { tools: PathBuf },
    /// Preparing the server's directories (store, ports file, log) failed.
    #[error("preparing nats-server directory {path}")]
    ServerDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The `nats-server` process could not be spawned, killed or waited for.
    #[error("running nats-server {bin}")]
    ServerProcess {
        bin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The server did not come up (exited, or accepted no connection before the deadline).
    #[error("nats-server did not become ready within {waited:?}: {reason}; log tail:\n{log_tail}")]
    ServerNotReady {
        waited: Duration,
        reason: String,
        log_tail: String,
    },
    /// Connecting a client failed.
    #[error("connecting to NATS at {url}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    /// The credentials given could not be used (a malformed `.creds` file).
    #[error("reading NATS credentials")]
    Credentials {
        #[source]
        source: std::io::Error,
    },
    /// A KV bucket the central placement should have created could not be looked up.
    #[error("looking up KV bucket {bucket}")]
    LookupBucket {
        bucket: String,
        #[source]
        source: async_nats::jetstream::context::CreateKeyValueError,
    },
    /// Creating or updating a stream failed.
    #[error("creating or updating stream {stream}")]
    EnsureStream {
        stream: String,
        #[source]
        source: async_nats::jetstream::context::CreateStreamError,
    },
    /// Creating or updating a KV bucket failed.
    #[error("creating or updating KV bucket {bucket}")]
    EnsureBucket {
        bucket: String,
        #[source]
        source: async_nats::jetstream::context::CreateKeyValueError,
    },
    /// A JetStream publish was not sent or not acknowledged.
    #[error("publishing to {subject}: {source}")]
    Publish {
        subject: String,
        #[source]
        source: async_nats::jetstream::context::PublishError,
    },
    /// A header value was rejected (for example a message id with a line break).
    #[error("invalid header value for {header}")]
    Header { header: &'static str },
    /// `create` found the key already present (a live value, not a delete marker).
    #[error("key `{key}` already exists in bucket {bucket}")]
    AlreadyExists { bucket: String, key: String },
    /// A compare-and-set write found another revision than the one expected.
    #[error("key `{key}` in bucket {bucket} is no longer at revision {expected}")]
    WrongRevision {
        bucket: String,
        key: String,
        expected: u64,
    },
    /// A KV read, write or listing failed for another reason.
    #[error("{op} `{key}` in bucket {bucket}")]
    Kv {
        op: &'static str,
        bucket: String,
        key: String,
        kind: ErrorKind,
        #[source]
        source: BoxError,
    },
    /// A stored value could not be encoded or decoded.
    #[error("encoding or decoding `{key}` in bucket {bucket}")]
    Codec {
        bucket: String,
        key: String,
        #[source]
        source: bus_schema::CodecError,
    },
    /// [`Records::modify`](crate::Records::modify) lost the race too many times.
    #[error("gave up modifying `{key}` in bucket {bucket} after {attempts} conflicting writes")]
    TooManyConflicts {
        bucket: String,
        key: String,
        attempts: u32,
    },
    /// A replica count JetStream does not accept.
    #[error("{replicas} replicas: streams and buckets take 1 to {max} (3 on a 3-node cluster)", max = crate::bus::MAX_REPLICAS)]
    Replicas { replicas: usize },
    /// A lease was taken over or expired before it was renewed.
    #[error("lease `{key}` held by {holder} was lost")]
    LeaseLost { key: String, holder: String },
}

impl Error {
    /// Whether retrying can help. Conflicts ([`Error::is_conflict`]) are `Permanent` for the
    /// same call: re-read the current revision first.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::ServerBinaryMissing { .. }
            | Error::ServerDir { .. }
            | Error::ServerProcess { .. }
            | Error::Header { .. }
            | Error::Codec { .. }
            | Error::AlreadyExists { .. }
            | Error::WrongRevision { .. }
            | Error::LeaseLost { .. }
            | Error::Replicas { .. }
            | Error::Credentials { .. } => ErrorKind::Permanent,
            // Not there yet: the central placement creates it; retry.
            Error::LookupBucket { .. } => ErrorKind::Transient,
            Error::ServerNotReady { .. }
            | Error::Connect { .. }
            | Error::TooManyConflicts { .. } => ErrorKind::Transient,
            Error::EnsureStream { source, .. } => stream_kind(&source.kind()),
            Error::EnsureBucket { source, .. } => match source.kind() {
                CreateKeyValueErrorKind::TimedOut | CreateKeyValueErrorKind::JetStream => {
                    ErrorKind::Transient
                }
                CreateKeyValueErrorKind::InvalidStoreName
                | CreateKeyValueErrorKind::TooLongHistory
                | CreateKeyValueErrorKind::BucketCreate
                | CreateKeyValueErrorKind::LimitMarkersNotSupported => ErrorKind::Permanent,
            },
            Error::Publish { source, .. } => publish_kind(source.kind()),
            Error::Kv { kind, .. } => *kind,
        }
    }

    /// A lost compare-and-set race: the key exists, moved on, or the lease went elsewhere.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Error::AlreadyExists { .. } | Error::WrongRevision { .. } | Error::LeaseLost { .. }
        )
    }
}

fn stream_kind(kind: &CreateStreamErrorKind) -> ErrorKind {
    match kind {
        CreateStreamErrorKind::JetStreamUnavailable
        | CreateStreamErrorKind::TimedOut
        | CreateStreamErrorKind::Response
        | CreateStreamErrorKind::ResponseParse => ErrorKind::Transient,
        CreateStreamErrorKind::NotFound => ErrorKind::NotFound,
        CreateStreamErrorKind::EmptyStreamName
        | CreateStreamErrorKind::InvalidStreamName
        | CreateStreamErrorKind::DomainAndExternalSet
        | CreateStreamErrorKind::JetStream(_) => ErrorKind::Permanent,
    }
}

pub(crate) fn publish_kind(kind: PublishErrorKind) -> ErrorKind {
    match kind {
        // async-nats reports "no responders" as `StreamNotFound`. That is what a JetStream
        // cluster answers while a stream's leader is elected after a node is lost, and what
        // an agent sees before the central placement has created the stream: both pass, so
        // the message is retried, never dropped.
        PublishErrorKind::StreamNotFound
        | PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending
        | PublishErrorKind::Other => ErrorKind::Transient,
        PublishErrorKind::WrongLastMessageId
        | PublishErrorKind::WrongLastSequence
        | PublishErrorKind::MaxPayloadExceeded => ErrorKind::Permanent,
    }
}

pub(crate) fn entry_kind(kind: EntryErrorKind) -> ErrorKind {
    match kind {
        EntryErrorKind::TimedOut | EntryErrorKind::Other => ErrorKind::Transient,
        EntryErrorKind::InvalidKey => ErrorKind::Permanent,
    }
}

pub(crate) fn update_kind(kind: UpdateErrorKind) -> ErrorKind {
    match kind {
        UpdateErrorKind::TimedOut | UpdateErrorKind::Other => ErrorKind::Transient,
        UpdateErrorKind::InvalidKey | UpdateErrorKind::WrongLastRevision => ErrorKind::Permanent,
    }
}

pub(crate) fn create_kind(kind: CreateErrorKind) -> ErrorKind {
    match kind {
        CreateErrorKind::Publish | CreateErrorKind::Ack | CreateErrorKind::Other => {
            ErrorKind::Transient
        }
        CreateErrorKind::InvalidKey | CreateErrorKind::AlreadyExists => ErrorKind::Permanent,
    }
}

pub(crate) fn watch_kind(kind: WatchErrorKind) -> ErrorKind {
    match kind {
        WatchErrorKind::TimedOut | WatchErrorKind::ConsumerCreate | WatchErrorKind::Other => {
            ErrorKind::Transient
        }
        WatchErrorKind::InvalidKey => ErrorKind::Permanent,
    }
}

pub(crate) fn watcher_kind(kind: WatcherErrorKind) -> ErrorKind {
    match kind {
        WatcherErrorKind::Consumer | WatcherErrorKind::Other => ErrorKind::Transient,
    }
}
