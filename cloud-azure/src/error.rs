//! The crate's error type and how ARM and Entra ID failures map to [`ErrorKind`].
//!
//! Messages never carry the client secret, a bearer token or a JIT config: only status codes,
//! the service's error codes and messages, and operation names.

use bus_schema::{ErrorKind, ProviderKind};
use providers::ProviderError;
use serde::Deserialize;

/// A failed ACI or token operation.
#[derive(Debug, thiserror::Error)]
pub enum AciError {
    /// The configuration cannot work (bad endpoint URL, missing storage for a disk label…).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The runner spec asks for something ACI cannot host.
    #[error("unsupported runner spec: {0}")]
    Spec(String),
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
        /// ARM `error.code`, or the OAuth `error` from the token endpoint.
        code: String,
        message: String,
    },
    /// The service answered 2xx with a body we cannot read.
    #[error("{operation}: unreadable response: {source}")]
    Decode {
        operation: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl AciError {
    /// How the caller should treat this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AciError::Config(_) | AciError::Spec(_) | AciError::Decode { .. } => {
                ErrorKind::Permanent
            }
            AciError::Http { .. } => ErrorKind::Transient,
            AciError::Service { status, code, .. } => classify(*status, code),
        }
    }

    /// The operation name, for [`ProviderError`].
    fn operation(&self) -> &'static str {
        match self {
            AciError::Config(_) | AciError::Spec(_) => "validate",
            AciError::Http { operation, .. }
            | AciError::Service { operation, .. }
            | AciError::Decode { operation, .. } => operation,
        }
    }
}

impl From<AciError> for ProviderError {
    fn from(e: AciError) -> Self {
        let (operation, kind) = (e.operation(), e.kind());
        ProviderError::new(ProviderKind::AzureAci, operation, kind, e)
    }
}

/// Maps an HTTP status and ARM error code to an [`ErrorKind`].
pub fn classify(status: u16, code: &str) -> ErrorKind {
    let quota = code.contains("Quota")
        // ACI answers 409 ServiceUnavailable when the region has no capacity for the size.
        || (status == 409 && code == "ServiceUnavailable");
    if quota {
        ErrorKind::Quota
    } else if status == 429
        || status >= 500
        || (status == 409 && code == "AnotherOperationInProgress")
    {
        ErrorKind::Transient
    } else if status == 404 || matches!(code, "ResourceNotFound" | "ResourceGroupNotFound") {
        ErrorKind::NotFound
    } else {
        ErrorKind::Permanent
    }
}

/// An ARM error body: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Deserialize)]
struct ArmErrorBody {
    error: ArmErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ArmErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// An Entra ID token error body: `{"error": "invalid_client", "error_description": "..."}`.
#[derive(Debug, Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Builds the error for a non-2xx answer from its status and body.
pub(crate) fn service_error(operation: &'static str, status: u16, body: &str) -> AciError {
    let (code, message) = if let Ok(b) = serde_json::from_str::<ArmErrorBody>(body) {
        (b.error.code, b.error.message)
    } else if let Ok(b) = serde_json::from_str::<OAuthErrorBody>(body) {
        (b.error, b.error_description)
    } else {
        (String::new(), body.chars().take(300).collect())
    };
    AciError::Service {
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
    fn classification() {
        assert_eq!(
            classify(429, "SubscriptionRequestsThrottled"),
            ErrorKind::Transient
        );
        assert_eq!(classify(503, "ServiceUnavailable"), ErrorKind::Transient);
        assert_eq!(classify(409, "ServiceUnavailable"), ErrorKind::Quota);
        assert_eq!(
            classify(409, "ContainerGroupQuotaReached"),
            ErrorKind::Quota
        );
        assert_eq!(classify(400, "RegistryQuotaExceeded"), ErrorKind::Quota);
        assert_eq!(classify(404, "ResourceGroupNotFound"), ErrorKind::NotFound);
        assert_eq!(classify(400, "InvalidResourceName"), ErrorKind::Permanent);
        assert_eq!(
            classify(401, "InvalidAuthenticationToken"),
            ErrorKind::Permanent
        );
        assert_eq!(classify(403, "AuthorizationFailed"), ErrorKind::Permanent);
    }

    #[test]
    fn parses_both_error_shapes() {
        let e = service_error(
            "get",
            404,
            r#"{"error":{"code":"ResourceNotFound","message":"m"}}"#,
        );
        assert!(matches!(e, AciError::Service { ref code, .. } if code == "ResourceNotFound"));
        let e = service_error(
            "token",
            401,
            r#"{"error":"invalid_client","error_description":"AADSTS7000215"}"#,
        );
        assert!(matches!(e, AciError::Service { ref code, .. } if code == "invalid_client"));
        assert_eq!(e.kind(), ErrorKind::Permanent);
    }

    #[test]
    fn the_provider_error_keeps_the_aci_error_as_its_source() {
        let error = ProviderError::from(service_error(
            "create",
            409,
            r#"{"error":{"code":"ContainerGroupQuotaReached","message":"m"}}"#,
        ));
        assert_eq!(
            (error.kind(), error.operation),
            (ErrorKind::Quota, "create")
        );
        let source = std::error::Error::source(&error).expect("a source");
        assert!(matches!(
            source.downcast_ref::<AciError>(),
            Some(AciError::Service { status: 409, code, .. }) if code == "ContainerGroupQuotaReached"
        ));
    }
}
