//! Errors of the GCP providers and their mapping to [`ErrorKind`].
//!
//! Google APIs answer failures with `{"error": {"code", "message", "status"}}`; long-running
//! operations carry a `google.rpc.Status` with a numeric code. Both map through
//! [`kind_of_status`]. Messages never contain a token, a key or a JIT config.

use bus_schema::{ErrorKind, ProviderKind};
use providers::ProviderError;

/// A failed GCP call, naming the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum GcpError {
    /// The key JSON is unusable. A string on purpose: serde's message can quote the key.
    #[error("reading the service-account key: {0}")]
    Key(String),
    #[error("reading the service-account key: private_key is not an RSA PEM key: {0}")]
    KeyPem(#[source] jsonwebtoken::errors::Error),
    #[error("signing the token assertion: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
    #[error("exchanging the assertion for an access token: HTTP {http}: {error}: {description}")]
    Token {
        http: u16,
        error: String,
        description: String,
    },
    #[error("{operation}: request failed: {source}")]
    Http {
        operation: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{operation}: HTTP {http} {status}: {message}")]
    Api {
        operation: &'static str,
        http: u16,
        status: String,
        message: String,
    },
    #[error("{operation}: operation {name} failed with {status}: {message}")]
    Operation {
        operation: &'static str,
        name: String,
        status: String,
        message: String,
    },
    #[error("{operation}: operation {name} not done after {waited_secs}s")]
    OperationTimeout {
        operation: &'static str,
        name: String,
        waited_secs: u64,
    },
    #[error("{operation}: response is not JSON: {source}")]
    Json {
        operation: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{operation}: unexpected response: {message}")]
    Decode {
        operation: &'static str,
        message: String,
    },
    #[error("runner name `{name}` is not a valid job name: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("{operation}: job {name} exists but is labelled for another runner or controller")]
    Foreign {
        operation: &'static str,
        name: String,
    },
}

impl GcpError {
    /// How the caller should treat this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            GcpError::Key(_)
            | GcpError::KeyPem(_)
            | GcpError::Sign(_)
            | GcpError::InvalidName { .. }
            | GcpError::Foreign { .. } => ErrorKind::Permanent,
            GcpError::Token { http, .. } => {
                if *http >= 500 || *http == 429 {
                    ErrorKind::Transient
                } else {
                    ErrorKind::Permanent
                }
            }
            GcpError::Http { .. }
            | GcpError::OperationTimeout { .. }
            | GcpError::Decode { .. }
            | GcpError::Json { .. } => ErrorKind::Transient,
            GcpError::Api {
                http,
                status,
                message,
                ..
            } => kind_of_status(status, Some(*http), message),
            GcpError::Operation {
                status, message, ..
            } => kind_of_status(status, None, message),
        }
    }

    /// Whether this is Google's `ALREADY_EXISTS` (HTTP 409).
    pub fn is_already_exists(&self) -> bool {
        matches!(self, GcpError::Api { status, .. } if status == "ALREADY_EXISTS")
    }

    /// Wraps this error for the provider boundary; `self` becomes its source.
    pub fn into_provider(self, provider: ProviderKind, operation: &'static str) -> ProviderError {
        let kind = self.kind();
        ProviderError::new(provider, operation, kind, self)
    }
}

/// Maps a canonical status name (and the HTTP code, when there is one) to an [`ErrorKind`].
///
/// `RESOURCE_EXHAUSTED` is a quota unless its message speaks of a request rate, in which case
/// it is throttling and worth a quick retry.
pub fn kind_of_status(status: &str, http: Option<u16>, message: &str) -> ErrorKind {
    match status {
        "RESOURCE_EXHAUSTED" => {
            let m = message.to_ascii_lowercase();
            if ["rate", "per minute", "per second", "too many requests"]
                .iter()
                .any(|w| m.contains(w))
            {
                ErrorKind::Transient
            } else {
                ErrorKind::Quota
            }
        }
        "UNAVAILABLE" | "INTERNAL" | "DEADLINE_EXCEEDED" | "ABORTED" | "UNKNOWN" => {
            ErrorKind::Transient
        }
        "NOT_FOUND" => ErrorKind::NotFound,
        "INVALID_ARGUMENT"
        | "PERMISSION_DENIED"
        | "UNAUTHENTICATED"
        | "FAILED_PRECONDITION"
        | "ALREADY_EXISTS"
        | "OUT_OF_RANGE"
        | "UNIMPLEMENTED"
        | "CANCELLED" => ErrorKind::Permanent,
        _ => match http {
            Some(429) => ErrorKind::Transient,
            Some(404) => ErrorKind::NotFound,
            Some(code) if code >= 500 => ErrorKind::Transient,
            _ => ErrorKind::Permanent,
        },
    }
}

/// The canonical status name of a numeric `google.rpc.Code`.
pub fn status_name(code: i64) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        let cases = [
            (
                "RESOURCE_EXHAUSTED",
                429,
                "Quota exceeded for CPU allocation",
                ErrorKind::Quota,
            ),
            (
                "RESOURCE_EXHAUSTED",
                429,
                "Rate limit exceeded",
                ErrorKind::Transient,
            ),
            ("UNAVAILABLE", 503, "", ErrorKind::Transient),
            ("INTERNAL", 500, "", ErrorKind::Transient),
            ("NOT_FOUND", 404, "", ErrorKind::NotFound),
            ("INVALID_ARGUMENT", 400, "", ErrorKind::Permanent),
            ("PERMISSION_DENIED", 403, "", ErrorKind::Permanent),
            ("UNAUTHENTICATED", 401, "", ErrorKind::Permanent),
            ("FAILED_PRECONDITION", 400, "", ErrorKind::Permanent),
            ("", 502, "", ErrorKind::Transient),
        ];
        for (status, http, message, kind) in cases {
            assert_eq!(
                kind_of_status(status, Some(http), message),
                kind,
                "{status}"
            );
        }
        assert_eq!(status_name(8), "RESOURCE_EXHAUSTED");
    }

    #[test]
    fn an_undecodable_body_keeps_the_serde_error_through_the_provider_error() {
        let Err(json) = serde_json::from_str::<serde_json::Value>("{oops") else {
            panic!("not JSON");
        };
        let gcp = GcpError::Json {
            operation: "get job",
            source: json,
        };
        let error = gcp.into_provider(ProviderKind::GcpCloudrun, "get");
        assert_eq!(
            (error.kind(), error.operation),
            (ErrorKind::Transient, "get")
        );
        let gcp = std::error::Error::source(&error)
            .and_then(|s| s.downcast_ref::<GcpError>())
            .expect("the GCP error is the source");
        let serde = std::error::Error::source(gcp)
            .and_then(|s| s.downcast_ref::<serde_json::Error>())
            .expect("the serde error is kept under it");
        assert!(serde.is_syntax());
    }
}
