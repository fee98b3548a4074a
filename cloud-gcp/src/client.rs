//! The authenticated JSON client both providers share, and long-running operation polling.
//!
//! # Guarantees
//! - Every call carries a bearer token from [`TokenSource`]; non-2xx answers become
//!   [`GcpError::Api`] with Google's `status` and `message`.
//! - [`Api::wait`] polls an operation with capped exponential backoff until it is done or the
//!   configured timeout passes, and surfaces the operation's `error`.

use std::time::{Duration, Instant};

use providers::{Instance, InstanceStatus};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::auth::{ServiceAccountKey, TokenSource};
use crate::config::GcpConfig;
use crate::error::{GcpError, status_name};

const FIRST_POLL: Duration = Duration::from_millis(100);
const MAX_POLL: Duration = Duration::from_secs(5);

/// An authenticated client for Google's REST APIs.
#[derive(Debug)]
pub(crate) struct Api {
    http: reqwest::Client,
    tokens: TokenSource,
    operation_timeout: Duration,
}

impl Api {
    pub(crate) fn new(config: &GcpConfig) -> Result<Self, GcpError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| GcpError::Http {
                operation: "building the HTTP client",
                source,
            })?;
        let key = ServiceAccountKey::parse(&config.service_account_key)?;
        let tokens = TokenSource::new(http.clone(), key, config.endpoints.token.clone())?;
        Ok(Self {
            http,
            tokens,
            operation_timeout: config.operation_timeout(),
        })
    }

    /// GETs every page of a Google list call (`pageToken`/`nextPageToken`, 100 a page) and
    /// returns the items under `field`.
    pub(crate) async fn list_all(
        &self,
        operation: &'static str,
        url: &str,
        query: &[(&str, &str)],
        field: &str,
    ) -> Result<Vec<Value>, GcpError> {
        let mut items = Vec::new();
        let mut page_token = String::new();
        loop {
            let mut page_query = vec![("pageSize", "100")];
            page_query.extend_from_slice(query);
            if !page_token.is_empty() {
                page_query.push(("pageToken", page_token.as_str()));
            }
            let mut page = self
                .call(operation, Method::GET, url, &page_query, None)
                .await?;
            if let Some(Value::Array(found)) = page.get_mut(field).map(Value::take) {
                items.extend(found);
            }
            match page["nextPageToken"].as_str() {
                Some(token) if !token.is_empty() => page_token = token.to_owned(),
                _ => return Ok(items),
            }
        }
    }

    /// Sends one call and returns its JSON body (`{}` when empty).
    pub(crate) async fn call(
        &self,
        operation: &'static str,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, GcpError> {
        let token = self.tokens.token().await?;
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(token.expose_secret())
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|source| GcpError::Http { operation, source })?;
        let http = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| GcpError::Http { operation, source })?;
        let json: Value = if bytes.is_empty() {
            Value::Object(Default::default())
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(json) => json,
                Err(_) if !(200..300).contains(&http) => Value::Null,
                Err(source) => return Err(GcpError::Json { operation, source }),
            }
        };
        if (200..300).contains(&http) {
            return Ok(json);
        }
        let error = &json["error"];
        Err(GcpError::Api {
            operation,
            http,
            status: error["status"].as_str().unwrap_or_default().to_owned(),
            message: error["message"]
                .as_str()
                .unwrap_or("no error message")
                .to_owned(),
        })
    }

    /// Polls `operation` (as returned by a mutating call) at `{base}/{version}/{name}` until
    /// done, and returns its `response`.
    pub(crate) async fn wait(
        &self,
        operation: &'static str,
        base: &str,
        version: &str,
        mut op: Value,
    ) -> Result<Value, GcpError> {
        let name = op["name"].as_str().unwrap_or_default().to_owned();
        let started = Instant::now();
        let mut delay = FIRST_POLL;
        loop {
            if op["done"].as_bool().unwrap_or(false) {
                if let Some(status) = op.get("error") {
                    let code = status["code"].as_i64().unwrap_or(2);
                    return Err(GcpError::Operation {
                        operation,
                        name,
                        status: status_name(code).to_owned(),
                        message: status["message"].as_str().unwrap_or_default().to_owned(),
                    });
                }
                return Ok(op["response"].clone());
            }
            if name.is_empty() {
                return Err(GcpError::Decode {
                    operation,
                    message: "an operation without a name".to_owned(),
                });
            }
            if started.elapsed() + delay > self.operation_timeout {
                return Err(GcpError::OperationTimeout {
                    operation,
                    name,
                    waited_secs: started.elapsed().as_secs(),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_POLL);
            let url = format!("{base}/{version}/{name}");
            op = self.call(operation, Method::GET, &url, &[], None).await?;
        }
    }
}

/// A job (Cloud Run or Batch JSON) as an [`Instance`]: its name, short name and labels.
pub(crate) fn instance(job: &Value, status: InstanceStatus) -> Instance {
    let id = job["name"].as_str().unwrap_or_default().to_owned();
    let runner_name = id.rsplit('/').next().unwrap_or_default().to_owned();
    let tags = job["labels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    Instance {
        id,
        runner_name,
        status,
        tags,
    }
}
