//! A fake GitHub Actions runner that talks to the GitHub simulator.
//!
//! It takes a JIT config the way the real runner does (`ACTIONS_RUNNER_INPUT_JITCONFIG`, a
//! `--jitconfig` value, or `--jitconfig-file` for platforms that mount it as a file), decodes it
//! (base64 → JSON map of file names → base64 files → `.runner` / `.credentials` JSON), opens a
//! session at `{serverUrl}/_runner/sessions` with the credential, long-polls for a job, waits
//! while the simulator "runs" it, and exits after that one job (ephemeral). Without a job it
//! waits until killed or until the simulator says the runner was deregistered.
//!
//! Guarantees: the JIT config and the credential are never logged or shown by `Debug`.
//! Caveat: only the simulator speaks the session protocol; this is not the Actions service.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bus_schema::{ErrorKind, Secret};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

/// The environment variable the real runner reads its JIT config from.
pub const JITCONFIG_ENV: &str = "ACTIONS_RUNNER_INPUT_JITCONFIG";

/// The `.runner` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunnerSettings {
    pub agent_id: u64,
    pub agent_name: String,
    pub pool_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_name: Option<String>,
    pub server_url: String,
    pub git_hub_url: String,
    pub work_folder: String,
    #[serde(default)]
    pub ephemeral: bool,
    #[serde(default)]
    pub disable_update: bool,
    #[serde(default)]
    pub use_v2_flow: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_url_v2: Option<String>,
}

/// The `.credentials` file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// `OAuth`.
    pub scheme: String,
    pub data: CredentialData,
}

/// The `data` of `.credentials`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialData {
    /// Per runner; the simulator also treats it as the runner's session credential.
    pub client_id: String,
    pub authorization_url: String,
    #[serde(default)]
    pub require_fips_cryptography: String,
}

/// The `.credentials_rsaparams` file: the runner's RSA key, each field base64.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RsaParams {
    pub d: String,
    pub dp: String,
    pub dq: String,
    pub exponent: String,
    pub inverse_q: String,
    pub modulus: String,
    pub p: String,
    pub q: String,
}

/// The decoded files of a JIT config (`Debug` redacts the credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JitFiles {
    pub runner: RunnerSettings,
    pub credentials: Credentials,
    pub rsa_params: RsaParams,
}

macro_rules! redacted_debug {
    ($($t:ty),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($t), "([redacted])"))
            }
        }
    )*};
}

redacted_debug!(Credentials, CredentialData, RsaParams);

/// Where the runner finds its JIT config.
#[derive(Debug, Clone)]
pub enum JitConfigSource {
    /// [`JITCONFIG_ENV`].
    Env,
    /// The value itself (`--jitconfig`).
    Value(Secret),
    /// A file holding it (`--jitconfig-file`).
    File(PathBuf),
}

/// How to run the fake runner.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    pub jit_config: JitConfigSource,
    /// How long one long poll may wait on the simulator.
    pub poll_wait: Duration,
    /// How long to keep retrying an unreachable simulator before giving up.
    pub retry_budget: Duration,
}

/// A job the runner ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RanJob {
    pub job_id: u64,
    pub run_id: u64,
    pub name: String,
    /// `success`, `failure` or `cancelled`.
    pub conclusion: String,
}

/// How a run ended (both are a clean exit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerOutcome {
    pub runner_id: u64,
    pub runner_name: String,
    /// The one job it ran, if any.
    pub job: Option<RanJob>,
    /// Whether it stopped because it was deregistered without a job.
    pub deregistered: bool,
}

/// Why the fake runner failed.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("invalid arguments: {0}")]
    Args(String),
    #[error("no JIT config: set {JITCONFIG_ENV}, --jitconfig or --jitconfig-file")]
    MissingJitConfig,
    #[error("reading the JIT config file {path}")]
    ReadJitConfigFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("decoding the JIT config: {0}")]
    DecodeJitConfig(String),
    #[error("building the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("{operation}: the simulator could not be reached")]
    Unreachable {
        operation: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("opening the session: the simulator rejected the runner ({status})")]
    Rejected { status: u16 },
    #[error("{operation}: unexpected status {status}")]
    Protocol {
        operation: &'static str,
        status: u16,
    },
}

impl RunnerError {
    /// How a caller should treat the failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RunnerError::Unreachable { .. } => ErrorKind::Transient,
            RunnerError::Protocol { status, .. } if *status >= 500 => ErrorKind::Transient,
            _ => ErrorKind::Permanent,
        }
    }
}

/// The session-protocol messages shared with the simulator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum RunnerMessage {
    Job {
        job_id: u64,
        run_id: u64,
        name: String,
    },
    JobCompleted {
        job_id: u64,
        conclusion: String,
    },
    Deregistered,
}

/// `POST /_runner/sessions` body.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionRequest {
    pub(crate) agent_id: u64,
    pub(crate) client_id: String,
}

/// `POST /_runner/sessions` answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionResponse {
    pub(crate) session_id: String,
}

impl RunnerOptions {
    /// Options with defaults for `source`.
    pub fn new(jit_config: JitConfigSource) -> Self {
        RunnerOptions {
            jit_config,
            poll_wait: Duration::from_secs(20),
            retry_budget: Duration::from_secs(60),
        }
    }

    /// Parses `--jitconfig <value>` or `--jitconfig-file <path>` (program name excluded);
    /// with neither, the config comes from [`JITCONFIG_ENV`].
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Self, RunnerError> {
        let mut args = args.into_iter();
        let mut source = JitConfigSource::Env;
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .ok_or_else(|| RunnerError::Args(format!("{arg} needs a value")))
            };
            source = match arg.as_str() {
                "--jitconfig" => JitConfigSource::Value(Secret::new(value()?)),
                "--jitconfig-file" => JitConfigSource::File(PathBuf::from(value()?)),
                _ => return Err(RunnerError::Args(format!("unknown argument `{arg}`"))),
            };
        }
        Ok(RunnerOptions::new(source))
    }
}

impl JitConfigSource {
    fn read(&self) -> Result<Secret, RunnerError> {
        let value = match self {
            JitConfigSource::Env => {
                std::env::var(JITCONFIG_ENV).map_err(|_| RunnerError::MissingJitConfig)?
            }
            JitConfigSource::Value(secret) => secret.expose().to_owned(),
            JitConfigSource::File(path) => {
                std::fs::read_to_string(path).map_err(|source| RunnerError::ReadJitConfigFile {
                    path: path.clone(),
                    source,
                })?
            }
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(RunnerError::MissingJitConfig);
        }
        Ok(Secret::new(value))
    }
}

/// Decodes an `encoded_jit_config` into its files. Errors name the file, never its content.
pub fn decode_jit_config(encoded: &str) -> Result<JitFiles, RunnerError> {
    let bad = |what: &str| RunnerError::DecodeJitConfig(what.to_owned());
    let outer = STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad("the config is not base64"))?;
    let map: std::collections::BTreeMap<String, String> = serde_json::from_slice(&outer)
        .map_err(|_| bad("the config is not a JSON object of strings"))?;
    fn file<T: serde::de::DeserializeOwned>(
        map: &std::collections::BTreeMap<String, String>,
        name: &str,
    ) -> Result<T, RunnerError> {
        let bad = |why: &str| RunnerError::DecodeJitConfig(format!("file `{name}` {why}"));
        let content = map.get(name).ok_or_else(|| bad("is missing"))?;
        let bytes = STANDARD.decode(content).map_err(|_| bad("is not base64"))?;
        let text = String::from_utf8(bytes).map_err(|_| bad("is not UTF-8"))?;
        serde_json::from_str(text.trim_start_matches('\u{feff}'))
            .map_err(|_| bad("is not the expected JSON"))
    }
    Ok(JitFiles {
        runner: file(&map, ".runner")?,
        credentials: file(&map, ".credentials")?,
        rsa_params: file(&map, ".credentials_rsaparams")?,
    })
}

/// Runs the fake runner until its one job is done or it is deregistered.
pub async fn run(opts: RunnerOptions) -> Result<RunnerOutcome, RunnerError> {
    let files = decode_jit_config(opts.jit_config.read()?.expose())?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(opts.poll_wait + Duration::from_secs(30))
        .build()
        .map_err(RunnerError::Client)?;
    let base = files.runner.server_url.trim_end_matches('/').to_owned();
    let mut outcome = RunnerOutcome {
        runner_id: files.runner.agent_id,
        runner_name: files.runner.agent_name.clone(),
        job: None,
        deregistered: false,
    };
    let request = SessionRequest {
        agent_id: files.runner.agent_id,
        client_id: files.credentials.data.client_id.clone(),
    };
    let session: SessionResponse = retrying(opts.retry_budget, "opening the session", || async {
        let response = client
            .post(format!("{base}/_runner/sessions"))
            .json(&request)
            .send()
            .await
            .map_err(|source| RunnerError::Unreachable {
                operation: "opening the session",
                source,
            })?;
        match response.status() {
            s if s.is_success() => {
                response
                    .json()
                    .await
                    .map_err(|source| RunnerError::Unreachable {
                        operation: "opening the session",
                        source,
                    })
            }
            s if s.is_client_error() => Err(RunnerError::Rejected { status: s.as_u16() }),
            s => Err(RunnerError::Protocol {
                operation: "opening the session",
                status: s.as_u16(),
            }),
        }
    })
    .await?;
    tracing::info!(runner = %outcome.runner_name, "runner connected, listening for jobs");
    let message_url = format!(
        "{base}/_runner/sessions/{}/message?wait_ms={}",
        session.session_id,
        opts.poll_wait.as_millis()
    );
    loop {
        let message = retrying(opts.retry_budget, "polling for a message", || async {
            let response = client.get(&message_url).send().await.map_err(|source| {
                RunnerError::Unreachable {
                    operation: "polling for a message",
                    source,
                }
            })?;
            match response.status() {
                StatusCode::NO_CONTENT => Ok(None),
                StatusCode::OK => {
                    response
                        .json()
                        .await
                        .map(Some)
                        .map_err(|source| RunnerError::Unreachable {
                            operation: "polling for a message",
                            source,
                        })
                }
                s => Err(RunnerError::Protocol {
                    operation: "polling for a message",
                    status: s.as_u16(),
                }),
            }
        })
        .await?;
        match message {
            None => {}
            Some(RunnerMessage::Job {
                job_id,
                run_id,
                name,
            }) => {
                tracing::info!(job_id, run_id, "running job");
                outcome.job = Some(RanJob {
                    job_id,
                    run_id,
                    name,
                    conclusion: String::new(),
                });
            }
            Some(RunnerMessage::JobCompleted { job_id, conclusion }) => {
                tracing::info!(job_id, %conclusion, "job completed");
                if let Some(job) = outcome.job.as_mut().filter(|j| j.job_id == job_id) {
                    job.conclusion = conclusion;
                }
                break;
            }
            Some(RunnerMessage::Deregistered) => {
                tracing::info!("runner deregistered");
                outcome.deregistered = true;
                break;
            }
        }
    }
    let closed = client
        .delete(format!("{base}/_runner/sessions/{}", session.session_id))
        .send()
        .await;
    if let Err(error) = closed {
        tracing::warn!(error = %error, "closing the session failed");
    }
    Ok(outcome)
}

/// Retries transient failures (unreachable, 5xx) with a short backoff until `budget` is spent.
async fn retrying<T, F, Fut>(
    budget: Duration,
    operation: &'static str,
    mut call: F,
) -> Result<T, RunnerError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, RunnerError>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match call().await {
            Err(error) if error.kind() == ErrorKind::Transient && started.elapsed() < budget => {
                tracing::debug!(operation, error = %error, "retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_args_reads_value_file_or_env() {
        let value = RunnerOptions::from_args(["--jitconfig".to_owned(), "abc".to_owned()]).unwrap();
        assert!(matches!(value.jit_config, JitConfigSource::Value(s) if s.expose() == "abc"));
        let file =
            RunnerOptions::from_args(["--jitconfig-file".to_owned(), "/x".to_owned()]).unwrap();
        assert!(matches!(file.jit_config, JitConfigSource::File(p) if p.as_os_str() == "/x"));
        let env = RunnerOptions::from_args(Vec::new()).unwrap();
        assert!(matches!(env.jit_config, JitConfigSource::Env));
        assert!(RunnerOptions::from_args(["--jitconfig".to_owned()]).is_err());
    }

    #[test]
    fn decode_errors_name_the_file_not_the_content() {
        let map = serde_json::json!({".runner": STANDARD.encode("{}")});
        let encoded = STANDARD.encode(map.to_string());
        let error = decode_jit_config(&encoded).unwrap_err().to_string();
        assert!(error.contains(".runner"), "{error}");
        assert!(decode_jit_config("%%%").is_err());
    }
}
