//! Credentials: a PAT, or a GitHub App installation whose token is minted from a JWT and cached.
//!
//! Guarantees: secrets never reach `Debug`; an installation token is reused until 5 minutes
//! before its `expires_at` (or half its lifetime, if it is shorter than 10 minutes), and the
//! cache is refreshed under an async mutex, so concurrent callers wait for one refresh instead
//! of each minting a token.

use std::future::Future;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::Error;

/// Refresh an installation token this long before it expires.
const REFRESH_MARGIN: ChronoDuration = ChronoDuration::minutes(5);

/// How the client authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// A personal access token (classic or fine-grained).
    Pat(SecretString),
    /// A GitHub App installation.
    App {
        app_id: u64,
        installation_id: u64,
        /// The App's RSA private key, PEM (PKCS#1 as GitHub issues it, or PKCS#8).
        private_key_pem: SecretString,
    },
}

/// A credential ready to authorize requests.
pub(crate) enum Credential {
    Pat(SecretString),
    App(AppCredential),
}

pub(crate) struct AppCredential {
    pub(crate) app_id: u64,
    pub(crate) installation_id: u64,
    key: EncodingKey,
    cache: Mutex<Option<CachedToken>>,
}

struct CachedToken {
    token: SecretString,
    refresh_at: DateTime<Utc>,
}

/// `201` of `POST /app/installations/{id}/access_tokens`.
#[derive(Deserialize)]
pub(crate) struct InstallationTokenWire {
    token: String,
    expires_at: DateTime<Utc>,
}

#[derive(Serialize)]
struct Claims {
    iss: u64,
    iat: i64,
    exp: i64,
}

impl Credential {
    pub(crate) fn new(auth: Auth) -> Result<Self, Error> {
        Ok(match auth {
            Auth::Pat(token) => Credential::Pat(token),
            Auth::App {
                app_id,
                installation_id,
                private_key_pem,
            } => {
                let key = EncodingKey::from_rsa_pem(private_key_pem.expose_secret().as_bytes())
                    .map_err(|source| Error::AppKey { app_id, source })?;
                Credential::App(AppCredential {
                    app_id,
                    installation_id,
                    key,
                    cache: Mutex::new(None),
                })
            }
        })
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Pat(_) => f.write_str("Pat([redacted])"),
            Credential::App(app) => f
                .debug_struct("App")
                .field("app_id", &app.app_id)
                .field("installation_id", &app.installation_id)
                .finish_non_exhaustive(),
        }
    }
}

impl AppCredential {
    /// A fresh App JWT: `iss` = app id, issued 60 s in the past (clock drift), valid 9 minutes.
    pub(crate) fn jwt(&self) -> Result<SecretString, Error> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            iss: self.app_id,
            iat: now - 60,
            exp: now + 9 * 60,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map(SecretString::from)
            .map_err(|source| Error::SignJwt {
                app_id: self.app_id,
                source,
            })
    }

    /// The cached installation token, or one minted by `mint` (given a JWT) if there is none
    /// or it is due for refresh. Only one caller mints at a time; the others then reuse it.
    pub(crate) async fn token<F, Fut>(&self, mint: F) -> Result<SecretString, Error>
    where
        F: FnOnce(SecretString) -> Fut,
        Fut: Future<Output = Result<InstallationTokenWire, Error>>,
    {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref().filter(|c| Utc::now() < c.refresh_at) {
            return Ok(cached.token.clone());
        }
        let minted = mint(self.jwt()?).await?;
        let lifetime = minted.expires_at - Utc::now();
        let margin = REFRESH_MARGIN.min(lifetime / 2).max(ChronoDuration::zero());
        let token = SecretString::from(minted.token);
        *cache = Some(CachedToken {
            token: token.clone(),
            refresh_at: minted.expires_at - margin,
        });
        tracing::debug!(
            installation_id = self.installation_id,
            expires_at = %minted.expires_at,
            "minted GitHub App installation token"
        );
        Ok(token)
    }

    /// Drops the cached token if it is still `used` (GitHub rejected it).
    pub(crate) async fn invalidate(&self, used: &SecretString) {
        let mut cache = self.cache.lock().await;
        if cache
            .as_ref()
            .is_some_and(|c| c.token.expose_secret() == used.expose_secret())
        {
            *cache = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let auth = Auth::Pat(SecretString::from("ghp_supersecret"));
        assert!(!format!("{auth:?}").contains("supersecret"));
        let cred = Credential::new(auth).unwrap();
        assert!(!format!("{cred:?}").contains("supersecret"));
    }

    #[test]
    fn a_bad_app_key_is_a_permanent_error() {
        let err = Credential::new(Auth::App {
            app_id: 1,
            installation_id: 2,
            private_key_pem: SecretString::from("not a key"),
        })
        .unwrap_err();
        assert_eq!(err.kind(), bus_schema::ErrorKind::Permanent);
        assert!(!err.to_string().contains("not a key"));
    }
}
