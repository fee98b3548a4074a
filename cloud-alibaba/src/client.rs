//! A minimal signed RPC client for ECI: adds the common parameters, signs, POSTs the
//! parameters as a form body and decodes the JSON answer or ECI's error body.
//!
//! # Guarantees
//! - Every call carries a fresh `SignatureNonce` (UUID v4) and the current UTC `Timestamp`.
//! - Parameter values (which may include the JIT config) are never logged; only the action
//!   and the outcome are.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::API_VERSION;
use crate::error::EciError;
use crate::signer;

/// ECI's error body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody {
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Signs and sends RPC calls to one endpoint with one AccessKey pair.
#[derive(Debug, Clone)]
pub struct RpcClient {
    http: reqwest::Client,
    endpoint: String,
    access_key_id: String,
    access_key_secret: SecretString,
}

impl RpcClient {
    pub fn new(
        endpoint: String,
        access_key_id: String,
        access_key_secret: SecretString,
        timeout: Duration,
    ) -> Result<Self, EciError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|source| EciError::Http {
                action: "build HTTP client",
                source,
            })?;
        Ok(Self {
            http,
            endpoint,
            access_key_id,
            access_key_secret,
        })
    }

    /// Calls `action` with `params` and decodes the success body as `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        action: &'static str,
        mut params: BTreeMap<String, String>,
    ) -> Result<T, EciError> {
        let common = [
            ("Action", action.to_owned()),
            ("Format", "JSON".to_owned()),
            ("Version", API_VERSION.to_owned()),
            ("AccessKeyId", self.access_key_id.clone()),
            ("SignatureMethod", "HMAC-SHA1".to_owned()),
            ("SignatureVersion", "1.0".to_owned()),
            ("SignatureNonce", uuid::Uuid::new_v4().to_string()),
            (
                "Timestamp",
                chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ),
        ];
        for (name, value) in common {
            params.insert(name.to_owned(), value);
        }
        let signature = signer::sign("POST", &params, self.access_key_secret.expose_secret());
        params.insert("Signature".to_owned(), signature);
        let body = params
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    signer::percent_encode(k),
                    signer::percent_encode(v)
                )
            })
            .collect::<Vec<_>>()
            .join("&");

        let response = self
            .http
            .post(&self.endpoint)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|source| EciError::Http { action, source })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| EciError::Http { action, source })?;
        if status.is_success() {
            tracing::debug!(action, status = status.as_u16(), "ECI call succeeded");
            return serde_json::from_slice(&bytes)
                .map_err(|source| EciError::Decode { action, source });
        }
        let error = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| ErrorBody {
            request_id: String::new(),
            code: format!("HTTP{}", status.as_u16()),
            message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
        });
        tracing::debug!(action, status = status.as_u16(), code = %error.code, "ECI call failed");
        Err(EciError::Api {
            action,
            status: status.as_u16(),
            code: error.code,
            message: error.message,
            request_id: error.request_id,
        })
    }
}
