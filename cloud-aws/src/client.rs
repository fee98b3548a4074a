//! Signed AWS JSON 1.1 calls (ECS and Secrets Manager) over `reqwest`.
//!
//! Each call is `POST /` with `Content-Type: application/x-amz-json-1.1` and
//! `X-Amz-Target: {target prefix}.{operation}`, signed with SigV4 for the service's signing
//! name. An `ExpiredTokenException` drops cached temporary credentials and retries once.
//! Nothing here logs a request body (a `CreateSecret` body holds a JIT config).

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::credentials::{CredentialProvider, CredentialSource};
use crate::error::{AwsError, service_error};
use crate::sign::{self, Scope};

/// The JSON 1.1 content type.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// An AWS JSON 1.1 service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Ecs,
    SecretsManager,
}

impl Service {
    /// The SigV4 signing name.
    pub fn signing_name(self) -> &'static str {
        match self {
            Service::Ecs => "ecs",
            Service::SecretsManager => "secretsmanager",
        }
    }

    /// The `X-Amz-Target` prefix (botocore `metadata.targetPrefix`).
    pub fn target_prefix(self) -> &'static str {
        match self {
            Service::Ecs => "AmazonEC2ContainerServiceV20141113",
            Service::SecretsManager => "secretsmanager",
        }
    }
}

/// A signing JSON 1.1 client for one region.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    region: String,
    ecs_endpoint: String,
    secrets_endpoint: String,
    credentials: CredentialProvider,
}

impl Client {
    pub fn new(
        region: &str,
        ecs_endpoint: &str,
        secrets_endpoint: &str,
        credentials: CredentialSource,
        timeout: Duration,
    ) -> Result<Self, AwsError> {
        for (field, value) in [
            ("ecs_endpoint", ecs_endpoint),
            ("secrets_endpoint", secrets_endpoint),
        ] {
            url::Url::parse(value).map_err(|e| AwsError::Config(format!("{field}: {e}")))?;
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| AwsError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            credentials: CredentialProvider::new(credentials, http.clone()),
            http,
            region: region.to_owned(),
            ecs_endpoint: format!("{}/", ecs_endpoint.trim_end_matches('/')),
            secrets_endpoint: format!("{}/", secrets_endpoint.trim_end_matches('/')),
        })
    }

    /// Calls `service`'s `target` with `body`; `operation` names the provider operation in
    /// errors. Returns the response JSON (`{}` for an empty body).
    pub async fn call(
        &self,
        operation: &'static str,
        service: Service,
        target: &str,
        body: &Value,
    ) -> Result<Value, AwsError> {
        let url = match service {
            Service::Ecs => &self.ecs_endpoint,
            Service::SecretsManager => &self.secrets_endpoint,
        };
        let payload =
            serde_json::to_vec(body).map_err(|source| AwsError::Decode { operation, source })?;
        let target = format!("{}.{target}", service.target_prefix());
        let mut retried = false;
        loop {
            let creds = self.credentials.get().await?;
            let headers = [
                ("content-type", CONTENT_TYPE),
                ("x-amz-target", target.as_str()),
            ];
            let signed = sign::sign(
                &creds,
                Scope {
                    region: &self.region,
                    service: service.signing_name(),
                    time: SystemTime::now(),
                    content_sha256_header: false,
                },
                "POST",
                url,
                &headers,
                &payload,
            )
            .map_err(|source| AwsError::Sign { operation, source })?;
            let mut req = self.http.post(url.as_str()).body(payload.clone());
            for (name, value) in headers.iter().copied() {
                req = req.header(name, value);
            }
            for (name, value) in &signed {
                req = req.header(name.as_str(), value.as_str());
            }
            let resp = req
                .send()
                .await
                .map_err(|source| AwsError::Http { operation, source })?;
            let status = resp.status().as_u16();
            let header_type = resp
                .headers()
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let text = resp
                .text()
                .await
                .map_err(|source| AwsError::Http { operation, source })?;
            if (200..300).contains(&status) {
                if text.trim().is_empty() {
                    return Ok(Value::Object(Default::default()));
                }
                return serde_json::from_str(&text)
                    .map_err(|source| AwsError::Decode { operation, source });
            }
            let err = service_error(operation, status, header_type.as_deref(), &text);
            if let AwsError::Service { code, .. } = &err
                && code == "ExpiredTokenException"
                && !retried
            {
                self.credentials.invalidate().await;
                retried = true;
                continue;
            }
            return Err(err);
        }
    }
}
