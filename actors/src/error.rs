//! The actors' error type.

use bus_schema::ErrorKind;

/// A failed actor operation, naming what was being done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{operation}: {message}")]
    Bus {
        operation: &'static str,
        message: String,
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
}

impl Error {
    pub fn bus(operation: &'static str, error: impl std::fmt::Display) -> Self {
        Error::Bus {
            operation,
            message: error.to_string(),
        }
    }

    /// Whether this is expected contention (another worker holds the record, a lost
    /// compare-and-set race): worth a retry, logged at debug, never a warning.
    pub fn is_expected_race(&self) -> bool {
        match self {
            Error::InFlight(_) => true,
            Error::Records(e) => e.is_conflict(),
            _ => false,
        }
    }

    /// How a consumer should treat this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Bus { .. } | Error::InFlight(_) => ErrorKind::Transient,
            Error::Records(e) => e.kind(),
            Error::GitHub(e) => e.kind(),
            Error::Provider(e) => e.kind(),
            Error::Subject(_) | Error::Codec(_) | Error::Transition(_) | Error::Config(_) => {
                ErrorKind::Permanent
            }
        }
    }
}
