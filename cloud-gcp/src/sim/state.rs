//! The simulator's state: jobs, executions, secrets, operations, tokens and faults.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Fault, RecordedRequest, SimConfig};
use simulators::cloud::FaultPlan;

/// A job as the sim holds it, for tests to inspect.
#[derive(Debug, Clone, PartialEq)]
pub struct SimJob {
    /// The full resource name.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The create request body as received (`Null` for orphans).
    pub request: Value,
    /// Cloud Run: the latest execution's completion status (`EXECUTION_RUNNING`, …), or
    /// `NONE`; Batch: the job state (`RUNNING`, …).
    pub state: String,
    /// Executions started (Cloud Run) or 1 (Batch).
    pub executions: usize,
    /// Whether a runner child is alive for it.
    pub child_running: bool,
}

/// A Secret Manager secret.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSecret {
    /// `projects/{p}/secrets/{id}`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The payload of each version, oldest first.
    pub versions: Vec<String>,
    /// Members granted `roles/secretmanager.secretAccessor` by the secret's own IAM policy
    /// (`serviceAccount:…`); `None` when no policy was set, so project-level access (the
    /// default compute account) reads it.
    pub accessors: Option<Vec<String>>,
}

/// A Google API error: `{"error": {"code", "message", "status"}}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub http: StatusCode,
    pub status: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(http: StatusCode, status: &'static str, message: impl Into<String>) -> Self {
        Self {
            http,
            status,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    pub fn exists(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "ALREADY_EXISTS", message)
    }

    pub fn of_fault(fault: Fault) -> Option<Self> {
        let (http, status, message) = match fault {
            Fault::Throttle => (
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                "Rate limit exceeded: quota metric 'Requests' and limit 'Requests per minute'.",
            ),
            Fault::Quota => (
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for total allowable CPU in this region.",
            ),
            Fault::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "The service is currently unavailable.",
            ),
            Fault::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "Internal error encountered.",
            ),
            Fault::Slow(_) => return None,
        };
        Some(Self::new(http, status, message))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": {
            "code": self.http.as_u16(),
            "message": self.message,
            "status": self.status,
        }});
        (self.http, axum::Json(body)).into_response()
    }
}

/// One Cloud Run execution.
#[derive(Debug)]
pub(crate) struct Execution {
    pub name: String,
    pub create_time: String,
    /// `EXECUTION_RUNNING`, `EXECUTION_SUCCEEDED`, `EXECUTION_FAILED`, `EXECUTION_CANCELLED`.
    pub status: &'static str,
    pub child: Option<super::launch::Child>,
}

/// A Cloud Run or Batch job.
#[derive(Debug)]
pub(crate) struct Job {
    /// The stored resource (without live status fields).
    pub resource: Value,
    pub request: Value,
    pub executions: Vec<Execution>,
    /// Batch: the job state.
    pub batch_state: &'static str,
}

impl Job {
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.resource["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn child_running(&self) -> bool {
        self.executions.iter().any(|e| e.child.is_some())
    }
}

/// What completes an operation.
#[derive(Debug)]
pub(crate) enum OpKind {
    /// Done after `remaining` more polls, with `response`; then `remove_batch_job`, if set.
    Countdown {
        remaining: u32,
        response: Value,
        remove_batch_job: Option<String>,
    },
    /// Done when this Cloud Run execution is no longer running.
    Execution { job: String, execution: String },
}

#[derive(Debug)]
pub(crate) struct Operation {
    pub metadata: Value,
    pub kind: OpKind,
}

pub(crate) struct State {
    pub config: SimConfig,
    pub decoding_key: jsonwebtoken::DecodingKey,
    pub token_url: String,
    /// Access token → (expiry, scope).
    pub tokens: HashMap<String, (Instant, String)>,
    pub run_jobs: BTreeMap<String, Job>,
    pub batch_jobs: BTreeMap<String, Job>,
    pub secrets: BTreeMap<String, SimSecret>,
    pub operations: HashMap<String, Operation>,
    pub faults: FaultPlan<Fault>,
    pub requests: Vec<RecordedRequest>,
    /// Requests refused because they departed from the discovery documents.
    pub conformance_rejections: usize,
    /// Short names of the jobs a runner process was started for, one entry per start.
    pub launched: Vec<String>,
    /// Jobs whose container ended (or failed to start) without starting a runner.
    pub exited_without_runner: usize,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("project", &self.config.project)
            .field("run_jobs", &self.run_jobs.len())
            .field("batch_jobs", &self.batch_jobs.len())
            .finish_non_exhaustive()
    }
}

/// RFC 3339 now, as Google timestamps are written.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl State {
    pub fn new(
        config: SimConfig,
        decoding_key: jsonwebtoken::DecodingKey,
        token_url: String,
    ) -> Self {
        Self {
            config,
            decoding_key,
            token_url,
            tokens: HashMap::new(),
            run_jobs: BTreeMap::new(),
            batch_jobs: BTreeMap::new(),
            secrets: BTreeMap::new(),
            operations: HashMap::new(),
            faults: FaultPlan::default(),
            requests: Vec::new(),
            conformance_rejections: 0,
            launched: Vec::new(),
            exited_without_runner: 0,
        }
    }

    pub fn set_failure_rate(&mut self, percent: u8, seed: u64) {
        self.faults.set_rate(percent, Fault::Unavailable, seed);
    }

    /// The fault this call suffers, if any.
    pub fn next_fault(&mut self) -> Option<Fault> {
        self.faults.next_fault()
    }

    pub fn run_jobs(&self) -> Vec<SimJob> {
        self.run_jobs
            .iter()
            .map(|(name, job)| SimJob {
                name: name.clone(),
                labels: job.labels(),
                request: job.request.clone(),
                state: job
                    .executions
                    .last()
                    .map_or("NONE", |e| e.status)
                    .to_owned(),
                executions: job.executions.len(),
                child_running: job.child_running(),
            })
            .collect()
    }

    pub fn batch_jobs(&self) -> Vec<SimJob> {
        self.batch_jobs
            .iter()
            .map(|(name, job)| SimJob {
                name: name.clone(),
                labels: job.labels(),
                request: job.request.clone(),
                state: job.batch_state.to_owned(),
                executions: job.executions.len(),
                child_running: job.child_running(),
            })
            .collect()
    }

    pub fn secrets(&self) -> Vec<SimSecret> {
        self.secrets.values().cloned().collect()
    }

    pub fn insert_orphan(
        &mut self,
        cloud_run: bool,
        region: &str,
        name: &str,
        labels: BTreeMap<String, String>,
    ) {
        let full = format!(
            "projects/{}/locations/{region}/jobs/{name}",
            self.config.project
        );
        let execution = Execution {
            name: format!("{full}/executions/{name}-orphn"),
            create_time: now(),
            status: "EXECUTION_RUNNING",
            child: None,
        };
        let job = Job {
            resource: json!({ "name": full, "uid": uuid::Uuid::new_v4().to_string(),
                "labels": labels, "createTime": now() }),
            request: Value::Null,
            executions: vec![execution],
            batch_state: "RUNNING",
        };
        if cloud_run {
            self.run_jobs.insert(full, job);
        } else {
            self.batch_jobs.insert(full, job);
        }
    }

    pub fn kill_all(&mut self) {
        for job in self
            .run_jobs
            .values_mut()
            .chain(self.batch_jobs.values_mut())
        {
            for execution in &mut job.executions {
                execution.child = None;
            }
        }
    }

    /// Whether a job running as `account` (`None`: the default compute account) may read
    /// `secret`: any account when the secret has no policy of its own, else only its members.
    pub fn secret_readable_by(&self, secret: &str, account: Option<&str>) -> bool {
        match self.secrets.get(secret).map(|s| &s.accessors) {
            Some(Some(members)) => {
                account.is_some_and(|a| members.contains(&format!("serviceAccount:{a}")))
            }
            _ => true,
        }
    }

    /// The payload of `projects/{p}/secrets/{id}/versions/{v}` (`v` may be `latest`).
    pub fn secret_payload(&self, secret: &str, version: &str) -> Option<String> {
        let secret = self.secrets.get(secret)?;
        match version {
            "latest" => secret.versions.last().cloned(),
            n => {
                let index: usize = n.parse().ok()?;
                secret.versions.get(index.checked_sub(1)?).cloned()
            }
        }
    }

    /// Registers an operation and returns its JSON as first answered.
    pub fn start_operation(&mut self, location: &str, metadata: Value, kind: OpKind) -> Value {
        let name = format!("{location}/operations/{}", uuid::Uuid::new_v4());
        self.operations
            .insert(name.clone(), Operation { metadata, kind });
        self.poll_operation(&name, false)
            .unwrap_or_else(|| json!({ "name": name, "done": false }))
    }

    /// The operation's JSON; `count` consumes one poll of a countdown.
    pub fn poll_operation(&mut self, name: &str, count: bool) -> Option<Value> {
        let op = self.operations.get_mut(name)?;
        let metadata = op.metadata.clone();
        let (done, response, remove) = match &mut op.kind {
            OpKind::Countdown {
                remaining,
                response,
                remove_batch_job,
            } => {
                if count && *remaining > 0 {
                    *remaining -= 1;
                }
                let done = *remaining == 0;
                let remove = if done { remove_batch_job.take() } else { None };
                (done, response.clone(), remove)
            }
            OpKind::Execution { job, execution } => {
                let exec = self
                    .run_jobs
                    .get(job.as_str())
                    .and_then(|j| j.executions.iter().find(|e| &e.name == execution));
                match exec {
                    Some(e) => (
                        e.status != "EXECUTION_RUNNING",
                        execution_json(job, e),
                        None,
                    ),
                    None => (true, json!({ "name": execution }), None),
                }
            }
        };
        if let Some(job) = remove {
            self.batch_jobs.remove(&job);
        }
        let mut out = json!({ "name": name, "metadata": metadata, "done": done });
        if done {
            out["response"] = response;
        }
        Some(out)
    }
}

/// A Cloud Run `Execution` resource.
pub(crate) fn execution_json(job: &str, e: &Execution) -> Value {
    let count = |s: &str| u32::from(e.status == s);
    json!({
        "@type": "type.googleapis.com/google.cloud.run.v2.Execution",
        "name": e.name,
        "job": job.rsplit('/').next().unwrap_or_default(),
        "createTime": e.create_time,
        "taskCount": 1,
        "runningCount": count("EXECUTION_RUNNING"),
        "succeededCount": count("EXECUTION_SUCCEEDED"),
        "failedCount": count("EXECUTION_FAILED"),
        "cancelledCount": count("EXECUTION_CANCELLED"),
    })
}
