//! The actors' error type.
//!
//! Every variant that wraps a failure keeps it as [`std::error::Error::source`] (the NATS,
//! GitHub, provider or codec error itself, boxed where its type varies), so a caller can walk
//! or downcast the chain; [`Error::kind`] says how a consumer treats it. `Display` also
//! carries the cause's message, so a log line printing `%error` stays complete.

use bus_schema::ErrorKind;

/// The cause of an [`Error::Bus`]: an async-nats error (whose types vary by call), a task's
/// `JoinError`, an I/O error, or a message where there is no underlying error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failed actor operation, naming what was being done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bus or runtime operation failed (stream lookup, consumer, a task, the HTTP server).
    #[error("{operation}: {source}")]
    Bus {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    #[error(transparent)]
    Subject(#[from] bus_schema::subject::SubjectError),
    #[error(transparent)]
    Codec(#[from] bus_schema::CodecError),
    #[error(transparent)]
    Records(#[from] shr_nats::Error),
    #[error(transparent)]
    GitHub(#[from] github_client::Error),
    #[error(transparent)]
    Provider(#[from] providers::ProviderError),
    #[error(transparent)]
    Transition(#[from] bus_schema::IllegalTransition),
    #[error("{0}")]
    Config(String),
    /// Another worker is in the middle of this; look again later.
    #[error("runner {0} is being requested by another worker")]
    InFlight(String),
    /// Job {0} lost its runner to another job moments ago: a runner freed by the same wave
    /// of steals may serve it, so it waits a little before another runner is made.
    #[error(
        "job {0} lost its runner moments ago; waiting for a freed runner before provisioning again"
    )]
    Settling(u64),
}

impl Error {
    /// A failed bus or runtime `operation`, caused by `source`: an error value, or a message
    /// (`&str`, `String`) when there is no underlying error.
    pub fn bus(operation: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Bus {
            operation,
            source: source.into(),
        }
    }

    /// Whether this is expected contention (another worker holds the record, a lost
    /// compare-and-set race): worth a retry, logged at debug, never a warning.
    pub fn is_expected_race(&self) -> bool {
        match self {
            Error::InFlight(_) | Error::Settling(_) => true,
            Error::Records(e) => e.is_conflict(),
            _ => false,
        }
    }

    /// How a consumer should treat this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Bus { .. } | Error::InFlight(_) | Error::Settling(_) => ErrorKind::Transient,
            Error::Records(e) => e.kind(),
            Error::GitHub(e) => e.kind(),
            Error::Provider(e) => e.kind(),
            Error::Subject(_) | Error::Codec(_) | Error::Transition(_) | Error::Config(_) => {
                ErrorKind::Permanent
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use bus_schema::ProviderKind;

    use super::*;

    #[test]
    fn a_bus_error_keeps_its_cause_and_is_transient() {
        let cause = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let error = Error::bus("get stream", cause);
        assert_eq!(error.kind(), ErrorKind::Transient);
        let source = error.source().expect("the cause is the source");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("the source keeps its type");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset);
        assert_eq!(error.to_string(), "get stream: reset by peer");
    }

    #[test]
    fn a_provider_error_keeps_its_kind_and_cause_through_the_actor_error() {
        let cause = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no");
        let provider =
            providers::ProviderError::new(ProviderKind::Local, "create", ErrorKind::Quota, cause);
        let error = Error::from(provider);
        assert_eq!(error.kind(), ErrorKind::Quota);
        let io = error
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("the provider's cause is reachable");
        assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn a_message_without_a_cause_still_has_a_source_with_that_message() {
        let error = Error::bus("compare-and-set", "too many concurrent writers");
        assert_eq!(
            error.source().map(ToString::to_string).as_deref(),
            Some("too many concurrent writers")
        );
    }
}
