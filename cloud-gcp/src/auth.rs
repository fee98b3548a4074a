//! Service-account authentication: a self-signed RS256 JWT exchanged for an access token.
//!
//! The flow is Google's "OAuth 2.0 for Server to Server Applications": the assertion's header
//! carries `kid` = `private_key_id`; its claims are `iss` (the client email), `scope`, `aud`
//! (the token endpoint), `iat` and `exp` = `iat` + 3600. It is posted as
//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>`.
//!
//! # Guarantees
//! - The private key and the tokens are [`SecretString`]s: never in `Debug` output or logs.
//! - A token is reused until 5 minutes before it expires; concurrent callers share one refresh.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::error::GcpError;

/// The OAuth scope every call needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The grant type of the JWT-bearer flow (RFC 7523).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// A token is refreshed this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The fields of a service-account key JSON this crate uses.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    #[serde(rename = "type")]
    pub key_type: String,
    #[serde(default)]
    pub project_id: String,
    pub private_key_id: String,
    pub private_key: SecretString,
    pub client_email: String,
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".to_owned()
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("project_id", &self.project_id)
            .field("private_key_id", &self.private_key_id)
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// Parses a key JSON; only `"type": "service_account"` keys are accepted.
    pub fn parse(json: &SecretString) -> Result<Self, GcpError> {
        let key: Self = serde_json::from_str(json.expose_secret()).map_err(|e| {
            // Only the category and position: serde's text can quote the input.
            GcpError::Key(format!(
                "not a service-account key JSON ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        if key.key_type != "service_account" {
            return Err(GcpError::Key(format!(
                "type is `{}`, expected `service_account`",
                key.key_type
            )));
        }
        Ok(key)
    }
}

/// The claims of the assertion.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub scope: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    #[serde(default = "default_expires_in")]
    expires_in: u64,
}

fn default_expires_in() -> u64 {
    3600
}

#[derive(Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Hands out access tokens for one service account, refreshing them as needed.
#[derive(Debug)]
pub struct TokenSource {
    http: reqwest::Client,
    key: ServiceAccountKey,
    encoding_key: EncodingKey,
    token_uri: String,
    cache: Mutex<Option<(SecretString, Instant)>>,
}

impl TokenSource {
    /// A token source for `key`, posting to `token_uri` (or the key's own when `None`).
    pub fn new(
        http: reqwest::Client,
        key: ServiceAccountKey,
        token_uri: Option<String>,
    ) -> Result<Self, GcpError> {
        let encoding_key = EncodingKey::from_rsa_pem(key.private_key.expose_secret().as_bytes())
            .map_err(GcpError::KeyPem)?;
        let token_uri = token_uri.unwrap_or_else(|| key.token_uri.clone());
        Ok(Self {
            http,
            key,
            encoding_key,
            token_uri,
            cache: Mutex::new(None),
        })
    }

    /// The signed assertion for `iat` (seconds since the epoch).
    pub fn assertion(&self, iat: u64) -> Result<String, GcpError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.key.private_key_id.clone());
        let claims = Claims {
            iss: self.key.client_email.clone(),
            scope: SCOPE.to_owned(),
            aud: self.token_uri.clone(),
            iat,
            exp: iat + 3600,
        };
        jsonwebtoken::encode(&header, &claims, &self.encoding_key).map_err(GcpError::Sign)
    }

    /// A valid access token, from the cache or freshly exchanged.
    pub async fn token(&self) -> Result<SecretString, GcpError> {
        let mut cache = self.cache.lock().await;
        if let Some((token, refresh_at)) = cache.as_ref()
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let assertion = self.assertion(iat)?;
        let response = self
            .http
            .post(&self.token_uri)
            .form(&[
                ("grant_type", GRANT_TYPE),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|source| GcpError::Http {
                operation: "token exchange",
                source,
            })?;
        let http = response.status().as_u16();
        let body = response.bytes().await.map_err(|source| GcpError::Http {
            operation: "token exchange",
            source,
        })?;
        if !(200..300).contains(&http) {
            let e: TokenError = serde_json::from_slice(&body).unwrap_or_default();
            return Err(GcpError::Token {
                http,
                error: e.error,
                description: e.error_description,
            });
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|_| GcpError::Decode {
                operation: "token exchange",
                message: "no access_token in the token response".to_owned(),
            })?;
        let lifetime = Duration::from_secs(parsed.expires_in).saturating_sub(REFRESH_MARGIN);
        *cache = Some((parsed.access_token.clone(), Instant::now() + lifetime));
        Ok(parsed.access_token)
    }
}
