//! SigV4 request signing, through AWS's own `aws-sigv4` crate.
//!
//! [`sign`] takes a request's method, URL, headers and body and returns the headers to add
//! (`authorization`, `x-amz-date`, and `x-amz-security-token` with temporary credentials).
//! The signature covers every header given, so callers pass the ones they send
//! (`content-type`, `x-amz-target`); `host` is taken from the URL.

use std::time::SystemTime;

use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use secrecy::ExposeSecret as _;

use crate::credentials::Credentials;

/// Signing could not be done (a missing parameter, or a header or URL `aws-sigv4` refuses).
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("signing parameters: {0}")]
    Params(#[source] v4::signing_params::BuildError),
    #[error(transparent)]
    Signing(#[from] aws_sigv4::http_request::SigningError),
}

/// What to sign for, and how.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub region: &'a str,
    /// The signing name: `ecs`, `secretsmanager`.
    pub service: &'a str,
    pub time: SystemTime,
    /// Also send and sign `x-amz-content-sha256` (S3 wants it; ECS does not).
    pub content_sha256_header: bool,
}

/// The headers that sign `method url` with `headers` and `body` under `creds`.
pub fn sign(
    creds: &Credentials,
    scope: Scope<'_>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Vec<(String, String)>, SignError> {
    let identity = aws_credential_types::Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.expose_secret().to_owned(),
        creds
            .session_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        None,
        "shr",
    )
    .into();
    let mut settings = SigningSettings::default();
    if scope.content_sha256_header {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(scope.region)
        .name(scope.service)
        .time(scope.time)
        .settings(settings)
        .build()
        .map_err(SignError::Params)?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )?;
    let (instructions, _signature) = aws_sigv4::http_request::sign(signable, &params)?.into_parts();
    let (headers, _params) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name().to_owned(), h.value().to_owned()))
        .collect())
}
