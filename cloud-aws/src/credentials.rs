//! Where the provider's AWS credentials come from.
//!
//! - [`CredentialSource::Static`]: an access key (the secret resolved from a secret reference
//!   by whoever builds the config), optionally with a session token.
//! - [`CredentialSource::Chain`]: the standard chain, tried in order on each refresh:
//!   1. environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
//!   2. the ECS/EKS container credentials endpoint:
//!      `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (on `http://169.254.170.2`) or
//!      `AWS_CONTAINER_CREDENTIALS_FULL_URI` with `AWS_CONTAINER_AUTHORIZATION_TOKEN`
//!      (or `…_TOKEN_FILE`);
//!   3. EC2 instance metadata, IMDSv2 only: a `PUT /latest/api/token` session token, then
//!      `/latest/meta-data/iam/security-credentials/` and the role's credentials.
//!
//!   Temporary credentials are cached until 5 minutes before their `Expiration`.
//!
//! Not implemented: shared config/credentials files (`~/.aws`), SSO, `credential_process`,
//! and web-identity (`AWS_WEB_IDENTITY_TOKEN_FILE`, used by EKS IRSA).
//!
//! Guarantees: secret keys and session tokens are [`SecretString`]s and never logged.

use std::time::{Duration, SystemTime};

use secrecy::SecretString;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::error::AwsError;

/// The ECS container credentials host.
pub const CONTAINER_CREDENTIALS_HOST: &str = "http://169.254.170.2";
/// The EC2 instance metadata service.
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// Refresh temporary credentials this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// One set of AWS credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
    /// When temporary credentials expire; `None` for long-term keys.
    pub expires: Option<SystemTime>,
}

/// Where credentials come from.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    Static(Credentials),
    /// Environment, then container endpoint, then IMDSv2.
    Chain(ChainEndpoints),
}

/// The chain's endpoints and environment; overridable for tests.
#[derive(Debug, Clone)]
pub struct ChainEndpoints {
    pub container_host: String,
    pub imds: String,
    /// Reads an environment variable (a closure so tests pass a map).
    pub env: fn(&str) -> Option<String>,
}

impl Default for ChainEndpoints {
    fn default() -> Self {
        Self {
            container_host: CONTAINER_CREDENTIALS_HOST.to_owned(),
            imds: IMDS_ENDPOINT.to_owned(),
            env: |k| std::env::var(k).ok().filter(|v| !v.is_empty()),
        }
    }
}

/// Hands out current credentials, refreshing temporary ones.
#[derive(Debug)]
pub struct CredentialProvider {
    source: CredentialSource,
    http: reqwest::Client,
    cached: Mutex<Option<Credentials>>,
}

/// The JSON both the container endpoint and IMDS answer with.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TemporaryCredentials {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    expiration: Option<String>,
}

impl CredentialProvider {
    pub fn new(source: CredentialSource, http: reqwest::Client) -> Self {
        Self {
            source,
            http,
            cached: Mutex::new(None),
        }
    }

    /// Current credentials.
    pub async fn get(&self) -> Result<Credentials, AwsError> {
        let chain = match &self.source {
            CredentialSource::Static(c) => return Ok(c.clone()),
            CredentialSource::Chain(chain) => chain,
        };
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            let fresh = c
                .expires
                .is_none_or(|e| SystemTime::now() + REFRESH_MARGIN < e);
            if fresh {
                return Ok(c.clone());
            }
        }
        let creds = self.resolve(chain).await?;
        *cached = Some(creds.clone());
        Ok(creds)
    }

    /// Drops cached temporary credentials (after an `ExpiredTokenException`).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn resolve(&self, chain: &ChainEndpoints) -> Result<Credentials, AwsError> {
        let env = chain.env;
        if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            return Ok(Credentials {
                access_key_id: id,
                secret_access_key: SecretString::from(secret),
                session_token: env("AWS_SESSION_TOKEN").map(SecretString::from),
                expires: None,
            });
        }
        if let Some(relative) = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
            let url = format!("{}{relative}", chain.container_host);
            return self.container(&url, None).await;
        }
        if let Some(full) = env("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
            let token = match env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
                Some(path) => Some(
                    tokio::fs::read_to_string(&path)
                        .await
                        .map_err(|e| AwsError::Credentials(format!("reading {path}: {e}")))?
                        .trim()
                        .to_owned(),
                ),
                None => env("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
            };
            return self.container(&full, token.map(SecretString::from)).await;
        }
        self.imds(&chain.imds).await
    }

    async fn container(
        &self,
        url: &str,
        token: Option<SecretString>,
    ) -> Result<Credentials, AwsError> {
        use secrecy::ExposeSecret as _;
        let mut req = self.http.get(url);
        if let Some(token) = &token {
            req = req.header("Authorization", token.expose_secret());
        }
        let body = fetch(req, "container credentials endpoint").await?;
        temporary(&body)
    }

    async fn imds(&self, base: &str) -> Result<Credentials, AwsError> {
        let token = fetch(
            self.http
                .put(format!("{base}/latest/api/token"))
                .header("X-aws-ec2-metadata-token-ttl-seconds", "21600"),
            "IMDSv2 token",
        )
        .await?;
        let path = format!("{base}/latest/meta-data/iam/security-credentials/");
        let roles = fetch(
            self.http
                .get(&path)
                .header("X-aws-ec2-metadata-token", &token),
            "IMDS role",
        )
        .await?;
        let role = roles
            .lines()
            .next()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| AwsError::Credentials("IMDS: no instance profile role".into()))?;
        let body = fetch(
            self.http
                .get(format!("{path}{role}"))
                .header("X-aws-ec2-metadata-token", &token),
            "IMDS credentials",
        )
        .await?;
        temporary(&body)
    }
}

async fn fetch(req: reqwest::RequestBuilder, what: &str) -> Result<String, AwsError> {
    let resp = req
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| AwsError::Credentials(format!("{what}: {e}")))?;
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|e| AwsError::Credentials(format!("{what}: {e}")))?;
    if !status.is_success() {
        return Err(AwsError::Credentials(format!("{what}: HTTP {status}")));
    }
    Ok(text)
}

fn temporary(body: &str) -> Result<Credentials, AwsError> {
    let t: TemporaryCredentials = serde_json::from_str(body)
        .map_err(|e| AwsError::Credentials(format!("unreadable credentials: {e}")))?;
    let expires = t
        .expiration
        .as_deref()
        .map(|e| {
            chrono::DateTime::parse_from_rfc3339(e)
                .map(SystemTime::from)
                .map_err(|err| AwsError::Credentials(format!("bad Expiration {e:?}: {err}")))
        })
        .transpose()?;
    Ok(Credentials {
        access_key_id: t.access_key_id,
        secret_access_key: SecretString::from(t.secret_access_key),
        session_token: t.token.map(SecretString::from),
        expires,
    })
}
