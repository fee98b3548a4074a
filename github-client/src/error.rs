//! The client's error type. Each variant names the failed operation and keeps the cause;
//! [`Error::kind`] tells callers whether and how to retry.

use std::time::Duration;

use bus_schema::ErrorKind;

/// A failed GitHub call or client setup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API base URL cannot be used.
    #[error("invalid GitHub API base URL `{url}`: {reason}")]
    InvalidBaseUrl { url: String, reason: &'static str },
    /// octocrab refused to build its HTTP stack.
    #[error("building the HTTP client for {url}")]
    BuildClient {
        url: String,
        #[source]
        source: octocrab::Error,
    },
    /// The GitHub App private key is not a usable RSA PEM key.
    #[error("reading the private key of GitHub App {app_id}")]
    AppKey {
        app_id: u64,
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// Signing the App JWT failed.
    #[error("signing a JWT for GitHub App {app_id}")]
    SignJwt {
        app_id: u64,
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// The request could not be assembled (bad path, header or body).
    #[error("{op}: building the request")]
    BuildRequest {
        op: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The request did not get an HTTP response.
    #[error("{op}: sending the request")]
    Transport {
        op: String,
        #[source]
        source: octocrab::Error,
    },
    /// No complete response within the configured request timeout.
    #[error("{op}: no response within {after:?}")]
    Timeout { op: String, after: Duration },
    /// GitHub answered with an error status.
    #[error("{op}: GitHub answered {status}: {message}")]
    Status {
        op: String,
        status: u16,
        message: String,
    },
    /// A primary or secondary rate limit that outlasts the allowed wait or retries.
    #[error("{op}: rate limited (status {status:?}); next attempt allowed in {wait:?}")]
    RateLimited {
        op: String,
        status: Option<u16>,
        wait: Duration,
    },
    /// A redirect that is not followed: to another host (credentials stay with the API host),
    /// outside the API base path, without a usable `Location`, or one hop too many.
    #[error("{op}: GitHub answered {status} to `{location}`, not followed: {reason}")]
    Redirect {
        op: String,
        status: u16,
        location: String,
        reason: &'static str,
    },
    /// The response body was not the documented JSON shape.
    #[error("{op}: decoding the response")]
    Decode {
        op: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// How callers should treat the failure: 401/403/422 → permanent, 404 → not found,
    /// rate limits → quota, 5xx/timeouts/transport → transient.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidBaseUrl { .. }
            | Error::BuildClient { .. }
            | Error::AppKey { .. }
            | Error::SignJwt { .. }
            | Error::BuildRequest { .. }
            | Error::Redirect { .. } => ErrorKind::Permanent,
            Error::Transport { .. } | Error::Timeout { .. } => ErrorKind::Transient,
            // A truncated or garbled body (proxy hiccup) may decode on the next try.
            Error::Decode { .. } => ErrorKind::Transient,
            Error::RateLimited { .. } => ErrorKind::Quota,
            Error::Status { status, .. } => match status {
                404 | 410 => ErrorKind::NotFound,
                429 => ErrorKind::Quota,
                408 | 500..=599 => ErrorKind::Transient,
                _ => ErrorKind::Permanent,
            },
        }
    }

    /// The HTTP status GitHub answered with, if the failure was one
    /// (e.g. 409/422 for a runner name that already exists or a runner that is still busy).
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            Error::RateLimited { status, .. } => *status,
            Error::Redirect { status, .. } => Some(*status),
            _ => None,
        }
    }
}
