//! Errors of the ECI client and provider, and their mapping to [`ErrorKind`].
//!
//! ECI answers failures with a JSON body `{RequestId, HostId, Code, Message, …}`. The code,
//! not the HTTP status, says what happened (throttling comes back as HTTP 400), so
//! [`EciError::kind`] looks at the code first and falls back to the status.

use bus_schema::{ErrorKind, ProviderKind};
use providers::ProviderError;

/// A failed ECI operation.
#[derive(Debug, thiserror::Error)]
pub enum EciError {
    /// The configuration cannot work (missing network ids, bad endpoint, …).
    #[error("invalid ECI config: {field}: {reason}")]
    Config { field: &'static str, reason: String },
    /// The request cannot be valid for ECI; refused before sending.
    #[error("{action} request refused before sending: {reason}")]
    Invalid {
        action: &'static str,
        reason: String,
    },
    /// The HTTP exchange failed (connect, timeout, body read).
    #[error("{action} HTTP exchange failed: {source}")]
    Http {
        action: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// ECI answered with an error body.
    #[error("{action} failed: HTTP {status} {code}: {message} (RequestId {request_id})")]
    Api {
        action: &'static str,
        status: u16,
        code: String,
        message: String,
        request_id: String,
    },
    /// ECI answered 2xx with a body this crate cannot read.
    #[error("{action} response unreadable: {source}")]
    Decode {
        action: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl EciError {
    /// How callers should treat the failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EciError::Config { .. } | EciError::Invalid { .. } => ErrorKind::Permanent,
            EciError::Http { source, .. } => match source.status() {
                Some(status) if status.is_client_error() => ErrorKind::Permanent,
                _ => ErrorKind::Transient,
            },
            EciError::Api { status, code, .. } => classify(*status, code),
            EciError::Decode { .. } => ErrorKind::Transient,
        }
    }

    /// The ECI error code, when ECI sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            EciError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Converts into the provider boundary's error; `self` becomes its source.
    pub fn into_provider(self, operation: &'static str) -> ProviderError {
        let kind = self.kind();
        ProviderError::new(ProviderKind::AlibabaEci, operation, kind, self)
    }
}

/// Maps an ECI error code (and HTTP status) to an [`ErrorKind`].
pub fn classify(status: u16, code: &str) -> ErrorKind {
    let auth = [
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidTimeStamp.Expired",
        "SignatureNonceUsed",
    ];
    if auth.contains(&code) || code.starts_with("Forbidden") || code.starts_with("NoPermission") {
        ErrorKind::Permanent
    } else if code.starts_with("Throttling")
        || code.starts_with("ServiceUnavailable")
        || code.starts_with("InternalError")
        || code == "UnknownError"
        || code.starts_with("Degrade")
    {
        ErrorKind::Transient
    } else if code.starts_with("QuotaExceed")
        || code.contains("NoStock")
        || code.ends_with("LimitExceed")
        || code.ends_with("LimitExceeded")
    {
        ErrorKind::Quota
    } else if code.ends_with(".NotFound") || code.ends_with("NotFound") {
        ErrorKind::NotFound
    } else if status >= 500 {
        ErrorKind::Transient
    } else if status == 404 {
        ErrorKind::NotFound
    } else {
        ErrorKind::Permanent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds() {
        assert_eq!(classify(400, "Throttling.User"), ErrorKind::Transient);
        assert_eq!(classify(503, "ServiceUnavailable"), ErrorKind::Transient);
        assert_eq!(classify(500, "InternalError"), ErrorKind::Transient);
        assert_eq!(classify(502, "Whatever"), ErrorKind::Transient);
        assert_eq!(
            classify(404, "InvalidAccessKeyId.NotFound"),
            ErrorKind::Permanent
        );
        assert_eq!(classify(400, "SignatureDoesNotMatch"), ErrorKind::Permanent);
        assert_eq!(classify(400, "IncompleteSignature"), ErrorKind::Permanent);
        assert_eq!(classify(403, "Forbidden.RAM"), ErrorKind::Permanent);
        assert_eq!(classify(403, "OperationDenied.NoStock"), ErrorKind::Quota);
        assert_eq!(
            classify(400, "QuotaExceeded.ContainerGroup"),
            ErrorKind::Quota
        );
        assert_eq!(
            classify(404, "InvalidContainerGroupId.NotFound"),
            ErrorKind::NotFound
        );
        assert_eq!(classify(400, "InvalidParameter"), ErrorKind::Permanent);
    }

    #[test]
    fn the_provider_error_keeps_the_eci_error_as_its_source() {
        let eci = EciError::Api {
            action: "DescribeContainerGroups",
            status: 400,
            code: "Throttling.User".into(),
            message: "Request was denied due to user flow control.".into(),
            request_id: "r-1".into(),
        };
        let error = eci.into_provider("list");
        assert_eq!(
            (error.kind(), error.operation),
            (ErrorKind::Transient, "list")
        );
        let source = std::error::Error::source(&error).expect("a source");
        let eci = source.downcast_ref::<EciError>().expect("typed");
        assert_eq!(eci.code(), Some("Throttling.User"));
    }
}
