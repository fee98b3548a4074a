//! A small OAuth 2.0 client-credentials token client for Entra ID (Microsoft identity
//! platform v2.0), with a cache.
//!
//! It sends exactly the documented "access token request with a shared secret":
//! `POST {login}/{tenant}/oauth2/v2.0/token`, `application/x-www-form-urlencoded`, fields
//! `client_id`, `scope`, `client_secret`, `grant_type=client_credentials`, each form-encoded.
//! A token is reused until 5 minutes before it expires; refreshes are serialized, so
//! concurrent callers share one request. The token and the secret are `SecretString`s.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::error::{AciError, service_error};

/// Tokens are refreshed this long before they expire.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Gets and caches ARM bearer tokens for one service principal.
#[derive(Debug)]
pub struct TokenClient {
    http: reqwest::Client,
    url: String,
    client_id: String,
    client_secret: SecretString,
    scope: String,
    cached: Mutex<Option<Cached>>,
}

#[derive(Debug)]
struct Cached {
    token: SecretString,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    token_type: String,
    expires_in: u64,
    access_token: SecretString,
}

impl TokenClient {
    pub fn new(
        http: reqwest::Client,
        login_endpoint: &str,
        tenant_id: &str,
        client_id: &str,
        client_secret: SecretString,
        scope: &str,
    ) -> Self {
        Self {
            http,
            url: format!(
                "{}/{}/oauth2/v2.0/token",
                login_endpoint.trim_end_matches('/'),
                tenant_id
            ),
            client_id: client_id.to_owned(),
            client_secret,
            scope: scope.to_owned(),
            cached: Mutex::new(None),
        }
    }

    /// The form body of the token request, in the documented field order.
    pub fn form_body(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.client_id)
            .append_pair("scope", &self.scope)
            .append_pair("client_secret", self.client_secret.expose_secret())
            .append_pair("grant_type", "client_credentials")
            .finish()
    }

    /// A valid bearer token, from the cache or freshly requested.
    pub async fn token(&self) -> Result<SecretString, AciError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(c.token.clone());
        }
        let fresh = self.request().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Drops the cached token (after ARM rejected it).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn request(&self) -> Result<Cached, AciError> {
        const OP: &str = "token";
        let started = Instant::now();
        let resp = self
            .http
            .post(&self.url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(self.form_body())
            .send()
            .await
            .map_err(|source| AciError::Http {
                operation: OP,
                source,
            })?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|source| AciError::Http {
            operation: OP,
            source,
        })?;
        if !(200..300).contains(&status) {
            return Err(service_error(OP, status, &body));
        }
        let parsed: TokenResponse =
            serde_json::from_str(&body).map_err(|source| AciError::Decode {
                operation: OP,
                source,
            })?;
        if !parsed.token_type.eq_ignore_ascii_case("bearer") {
            return Err(AciError::Service {
                operation: OP,
                status,
                code: "unsupported_token_type".to_owned(),
                message: format!("token_type {:?}", parsed.token_type),
            });
        }
        let lifetime = Duration::from_secs(parsed.expires_in).saturating_sub(REFRESH_MARGIN);
        tracing::debug!(expires_in = parsed.expires_in, "got an ARM token");
        Ok(Cached {
            token: parsed.access_token,
            refresh_at: started + lifetime,
        })
    }
}
