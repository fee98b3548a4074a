//! [`AwsError`] and how ECS and Secrets Manager failures map to [`ErrorKind`].
//!
//! Messages never carry a secret access key, a session token or a JIT config: only HTTP
//! statuses, the service's error type and message, and operation names.

use bus_schema::{ErrorKind, ProviderKind};
use providers::ProviderError;
use serde::Deserialize;

/// The reason ECS gives, in `RunTask` `failures`, when Fargate (Spot) has no capacity.
pub const CAPACITY_UNAVAILABLE: &str = "Capacity is unavailable at this time";

/// A failed AWS operation.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// The configuration cannot work (bad endpoint, empty cluster, …).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The runner spec asks for something this provider cannot or may not host.
    #[error("unsupported runner spec: {0}")]
    Spec(String),
    /// No credentials could be found or fetched.
    #[error("credentials: {0}")]
    Credentials(String),
    /// Signing the request failed.
    #[error("{operation}: signing failed: {source}")]
    Sign {
        operation: &'static str,
        #[source]
        source: crate::sign::SignError,
    },
    /// The HTTP call itself failed (connect, timeout, TLS).
    #[error("{operation}: request failed: {source}")]
    Http {
        operation: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// The service answered with an error.
    #[error("{operation}: HTTP {status} {code}: {message}")]
    Service {
        operation: &'static str,
        status: u16,
        /// The error type (`__type` without its namespace), e.g. `ThrottlingException`.
        code: String,
        message: String,
    },
    /// `RunTask` answered 200 but started no task; `reason` is ECS's `failures[].reason`.
    #[error("{operation}: no task started: {reason}")]
    RunTaskFailure {
        operation: &'static str,
        reason: String,
    },
    /// The service answered 2xx with a body we cannot read.
    #[error("{operation}: unreadable response: {source}")]
    Decode {
        operation: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl AwsError {
    /// How the caller should treat this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AwsError::Config(_)
            | AwsError::Spec(_)
            | AwsError::Sign { .. }
            | AwsError::Decode { .. } => ErrorKind::Permanent,
            // The chain's endpoints (IMDS, the ECS agent) are local and usually come back.
            AwsError::Credentials(_) | AwsError::Http { .. } => ErrorKind::Transient,
            AwsError::Service {
                status,
                code,
                message,
                ..
            } => classify(*status, code, message),
            AwsError::RunTaskFailure { reason, .. } => classify_failure(reason),
        }
    }

    /// Whether this is Fargate (Spot) having no capacity right now.
    pub fn is_capacity(&self) -> bool {
        match self {
            AwsError::RunTaskFailure { reason, .. } => reason.contains(CAPACITY_UNAVAILABLE),
            AwsError::Service { message, .. } => message.contains(CAPACITY_UNAVAILABLE),
            _ => false,
        }
    }

    /// Whether the service said the thing does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    fn operation(&self) -> &'static str {
        match self {
            AwsError::Config(_) | AwsError::Spec(_) => "validate",
            AwsError::Credentials(_) => "credentials",
            AwsError::Sign { operation, .. }
            | AwsError::Http { operation, .. }
            | AwsError::Service { operation, .. }
            | AwsError::RunTaskFailure { operation, .. }
            | AwsError::Decode { operation, .. } => operation,
        }
    }
}

impl From<AwsError> for ProviderError {
    fn from(e: AwsError) -> Self {
        let (operation, kind) = (e.operation(), e.kind());
        ProviderError::new(ProviderKind::AwsFargate, operation, kind, e)
    }
}

/// Maps an HTTP status and an AWS JSON error type (and, for ECS's catch-all types, its
/// message) to an [`ErrorKind`].
pub fn classify(status: u16, code: &str, message: &str) -> ErrorKind {
    match code {
        "ThrottlingException"
        | "Throttling"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "ServerException"
        | "InternalServiceError"
        | "InternalFailure"
        | "ServiceUnavailableException"
        | "ServiceUnavailable"
        | "ExpiredTokenException"
        | "RequestExpired" => ErrorKind::Transient,
        "LimitExceededException" => ErrorKind::Quota,
        "ResourceNotFoundException" => ErrorKind::NotFound,
        _ if message.contains(CAPACITY_UNAVAILABLE) => ErrorKind::Quota,
        _ if status == 429 || status >= 500 => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

/// Maps a `RunTask` `failures[].reason` to an [`ErrorKind`].
fn classify_failure(reason: &str) -> ErrorKind {
    if reason.contains(CAPACITY_UNAVAILABLE)
        || reason.starts_with("RESOURCE:")
        || reason.contains("limit")
    {
        ErrorKind::Quota
    } else if reason.contains("AGENT") || reason.contains("Timeout") {
        ErrorKind::Transient
    } else {
        ErrorKind::Permanent
    }
}

/// An AWS JSON 1.1 error body: `{"__type": "…#ThrottlingException", "message": "…"}`
/// (Secrets Manager sometimes spells it `Message`).
#[derive(Debug, Deserialize)]
struct JsonErrorBody {
    #[serde(rename = "__type", default)]
    kind: String,
    #[serde(default, alias = "Message")]
    message: String,
}

/// The bare error type: `com.amazonaws.ecs#ServerException` → `ServerException`; a trailing
/// `:http://…` (some services add one) is dropped too.
pub fn error_type(raw: &str) -> &str {
    let raw = raw.rsplit_once('#').map_or(raw, |(_, t)| t);
    raw.split_once(':').map_or(raw, |(t, _)| t)
}

/// Builds the error for a non-2xx answer from its status, `x-amzn-ErrorType` header and body.
pub(crate) fn service_error(
    operation: &'static str,
    status: u16,
    header_type: Option<&str>,
    body: &str,
) -> AwsError {
    let parsed = serde_json::from_str::<JsonErrorBody>(body).ok();
    let code = parsed
        .as_ref()
        .map(|b| b.kind.as_str())
        .filter(|k| !k.is_empty())
        .or(header_type)
        .map(error_type)
        .unwrap_or_default()
        .to_owned();
    let message = match parsed {
        Some(b) => b.message,
        None => body.chars().take(300).collect(),
    };
    AwsError::Service {
        operation,
        status,
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_of_service_errors() {
        assert_eq!(
            classify(400, "ThrottlingException", "Rate exceeded"),
            ErrorKind::Transient
        );
        assert_eq!(classify(500, "ServerException", ""), ErrorKind::Transient);
        assert_eq!(classify(503, "", ""), ErrorKind::Transient);
        assert_eq!(
            classify(400, "ResourceNotFoundException", ""),
            ErrorKind::NotFound
        );
        assert_eq!(
            classify(400, "LimitExceededException", ""),
            ErrorKind::Quota
        );
        assert_eq!(
            classify(400, "InvalidParameterException", "bad"),
            ErrorKind::Permanent
        );
        assert_eq!(
            classify(400, "AccessDeniedException", ""),
            ErrorKind::Permanent
        );
        assert_eq!(
            classify(400, "InvalidSignatureException", ""),
            ErrorKind::Permanent
        );
        assert_eq!(
            classify(
                400,
                "ClientException",
                "Capacity is unavailable at this time."
            ),
            ErrorKind::Quota
        );
    }

    #[test]
    fn run_task_failures() {
        let capacity = AwsError::RunTaskFailure {
            operation: "create",
            reason: "Capacity is unavailable at this time. Please try again later or in a different availability zone".into(),
        };
        assert!(capacity.is_capacity());
        assert_eq!(capacity.kind(), ErrorKind::Quota);
        let other = AwsError::RunTaskFailure {
            operation: "create",
            reason: "MISSING".into(),
        };
        assert!(!other.is_capacity());
        assert_eq!(other.kind(), ErrorKind::Permanent);
    }

    #[test]
    fn parses_error_types() {
        assert_eq!(
            error_type("com.amazonaws.ecs#ServerException"),
            "ServerException"
        );
        assert_eq!(
            error_type("InvalidParameterException:http://internal.amazon.com/"),
            "InvalidParameterException"
        );
        let e = service_error(
            "delete",
            400,
            None,
            r#"{"__type":"ResourceNotFoundException","Message":"Secrets Manager can't find the specified secret."}"#,
        );
        assert!(e.is_not_found());
        assert!(e.to_string().contains("can't find"));
        let e = service_error("get", 400, Some("ThrottlingException"), "not json");
        assert_eq!(e.kind(), ErrorKind::Transient);
    }
}
