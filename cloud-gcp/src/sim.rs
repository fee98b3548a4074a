//! A local simulator of the Google APIs the providers use: the OAuth token endpoint, Cloud
//! Run Admin v2 jobs, Batch v1 jobs, Secret Manager v1 secrets and long-running operations,
//! all served from one base URL (`Endpoints::all_at(handle.base_url())`).
//!
//! # What it checks, as Google does
//! - Token endpoint: the JWT-bearer grant, the RS256 signature against the configured
//!   service account's public key and `kid`, `iss`, `aud` (= this sim's token URL), `scope`
//!   and a ≤ 1 hour `iat`..`exp` window. Errors are `{"error", "error_description"}` with
//!   HTTP 400 (`invalid_grant` / "Invalid JWT Signature." for a wrong key).
//! - APIs: a bearer token it issued and that has not expired (else 401 `UNAUTHENTICATED`),
//!   the `cloud-platform` scope (else 403), the project, job and secret id formats, label
//!   syntax, required fields, Cloud Run CPU/memory combinations, env value length, that
//!   referenced secret versions exist, and duplicate ids (409 `ALREADY_EXISTS`). Errors are
//!   `{"error": {"code", "message", "status"}}`.
//! - Mutations answer with long-running operations that report `done` after
//!   [`SimConfig::operation_polls`] polls; a Cloud Run run operation is done only when its
//!   execution ends.
//!
//! # Runners
//! When a Cloud Run execution or a Batch job starts and [`SimConfig::launch`] is set, the sim
//! runs its container through the image model ([`simulators::image`]): the image, the
//! request's command and args (Cloud Run `command`/`args`, Batch `entrypoint`/`commands`) and
//! env (including `ACTIONS_RUNNER_INPUT_JITCONFIG`, read from Secret Manager), with a fake
//! `/home/runner/run.sh` that starts that program. The execution/job state follows the
//! process, deleting the job kills it, and a container that ends without a runner is counted
//! ([`SimHandle::exited_without_runner`]).

mod api;
mod conform;
mod lab_start;
mod launch;
mod state;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bus_schema::ProviderKind;
use serde_json::Value;
use simulators::cloud::{CloudFault, CloudSim, ServeHandle, SimInstanceTags};

use crate::config::Endpoints;
use state::State;
pub use state::{SimJob, SimSecret};

pub use lab_start::LAB;
pub use simulators::cloud::Launch;

/// The one service account the sim's token endpoint knows.
#[derive(Debug, Clone)]
pub struct SimServiceAccount {
    pub client_email: String,
    /// The key's `private_key_id`, expected as the JWT's `kid`.
    pub key_id: String,
    /// The public key, PEM (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`).
    pub public_key_pem: String,
}

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The only project id calls may name.
    pub project: String,
    pub service_account: SimServiceAccount,
    pub launch: Option<Launch>,
    /// How many `GET` of an operation answer `done: false` before it is done.
    pub operation_polls: u32,
    /// The largest (and default) page of a list call.
    pub max_page_size: usize,
    /// The lifetime of issued access tokens.
    pub token_ttl: Duration,
}

impl SimConfig {
    pub fn new(project: impl Into<String>, service_account: SimServiceAccount) -> Self {
        Self {
            project: project.into(),
            service_account,
            launch: None,
            operation_polls: 1,
            max_page_size: 100,
            token_ttl: Duration::from_secs(3599),
        }
    }
}

/// A failure the sim answers with instead of serving an API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 `RESOURCE_EXHAUSTED` about the request rate.
    Throttle,
    /// 429 `RESOURCE_EXHAUSTED` about a resource quota.
    Quota,
    /// 503 `UNAVAILABLE`.
    Unavailable,
    /// 500 `INTERNAL`.
    Internal,
    /// Serve the call, after this delay.
    Slow(Duration),
}

/// One API call the sim received (token exchanges are not recorded).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub body: Value,
}

/// The simulator.
#[derive(Debug)]
pub struct Sim;

impl Sim {
    /// Serves the simulator on `addr` (port 0 picks a free port).
    pub async fn start(config: SimConfig, addr: SocketAddr) -> std::io::Result<SimHandle> {
        let decoding_key = jsonwebtoken::DecodingKey::from_rsa_pem(
            config.service_account.public_key_pem.as_bytes(),
        )
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let base_url = format!("http://{local}");
        let state = Arc::new(Mutex::new(State::new(
            config,
            decoding_key,
            format!("{base_url}/token"),
        )));
        let app = axum::Router::new()
            .fallback(api::dispatch)
            .with_state(state.clone());
        let server = simulators::cloud::serve("google", listener, app)?;
        Ok(SimHandle {
            base_url,
            state,
            _server: server,
        })
    }
}

/// A running simulator; dropping it stops the server and kills every runner child.
#[derive(Debug)]
pub struct SimHandle {
    base_url: String,
    state: Arc<Mutex<State>>,
    _server: ServeHandle,
}

impl SimHandle {
    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Endpoints pointing every API and the token endpoint at this sim.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints::all_at(&self.base_url)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every Cloud Run job.
    pub fn run_jobs(&self) -> Vec<SimJob> {
        self.lock().run_jobs()
    }

    /// Every Batch job.
    pub fn batch_jobs(&self) -> Vec<SimJob> {
        self.lock().batch_jobs()
    }

    /// Every secret.
    pub fn secrets(&self) -> Vec<SimSecret> {
        self.lock().secrets()
    }

    /// Whether a job running as `account` (`None`: the default compute account) could read
    /// secret `projects/{p}/secrets/{id}`, as the simulator decides when it starts a runner.
    pub fn secret_readable_by(&self, secret: &str, account: Option<&str>) -> bool {
        self.lock().secret_readable_by(secret, account)
    }

    /// How many requests were refused for departing from the vendor's discovery documents
    /// (unknown query parameters or fields, values outside enums, wrong types).
    pub fn conformance_rejections(&self) -> usize {
        self.lock().conformance_rejections
    }

    /// Every API call received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// The short names of the jobs (Cloud Run and Batch) a runner process was started for,
    /// one entry per start (a name twice means a runner was launched twice).
    pub fn launched(&self) -> Vec<String> {
        self.lock().launched.clone()
    }

    /// How many jobs' containers ended, or failed to start, without starting a runner (a
    /// command the image model could not take to `/home/runner/run.sh`).
    pub fn exited_without_runner(&self) -> usize {
        self.lock().exited_without_runner
    }

    /// Creates a running Cloud Run job behind the system's back (`region`, short `name`).
    pub fn insert_run_job(&self, region: &str, name: &str, labels: BTreeMap<String, String>) {
        self.lock().insert_orphan(true, region, name, labels);
    }

    /// Creates a running Batch job behind the system's back.
    pub fn insert_batch_job(&self, region: &str, name: &str, labels: BTreeMap<String, String>) {
        self.lock().insert_orphan(false, region, name, labels);
    }

    /// The next `times` API calls fail with `fault`.
    pub fn inject(&self, fault: Fault, times: usize) {
        self.lock().faults.push(fault, times);
    }

    /// From now on, `percent` % of API calls fail with `UNAVAILABLE`, drawn from a seeded RNG.
    pub fn fail_percent(&self, percent: u8, seed: u64) {
        self.lock().set_failure_rate(percent, seed);
    }

    /// Forgets every issued token, as if they had all expired.
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        // The server stops with `_server`.
        self.lock().kill_all();
    }
}

/// The region the lab's provider sections name.
pub const LAB_REGION: &str = "europe-west1";

/// One simulator seen as one provider: Cloud Run jobs or Batch jobs (the same server plays
/// both). The lab's [`CloudSim`].
#[derive(Debug)]
pub struct LabSim {
    pub sim: SimHandle,
    /// [`ProviderKind::GcpCloudrun`] or [`ProviderKind::GcpBatch`].
    pub kind: ProviderKind,
}

impl CloudSim for LabSim {
    fn kind(&self) -> ProviderKind {
        self.kind
    }

    fn base_url(&self) -> String {
        self.sim.base_url().to_owned()
    }

    fn provider_config(&self, secret: &str) -> BTreeMap<String, String> {
        let base = self.sim.base_url();
        let project = self.sim.lock().config.project.clone();
        BTreeMap::from([
            ("endpoint".into(), base.to_owned()),
            (
                "token_endpoint".into(),
                format!("{}/token", base.trim_end_matches('/')),
            ),
            (
                "runner_service_account".into(),
                format!("shr-runner@{project}.iam.gserviceaccount.com"),
            ),
            ("project".into(), project),
            ("region".into(), LAB_REGION.into()),
            ("service_account_key".into(), secret.to_owned()),
        ])
    }

    fn instances(&self) -> Vec<SimInstanceTags> {
        let jobs = if self.kind == ProviderKind::GcpBatch {
            self.sim.batch_jobs()
        } else {
            self.sim.run_jobs()
        };
        jobs.into_iter()
            .map(|j| SimInstanceTags {
                name: j.name,
                tags: j.labels,
            })
            .collect()
    }

    fn controller_tag(&self, controller_id: &str) -> String {
        crate::labels::sanitize_value(controller_id)
    }

    fn launched(&self) -> Vec<String> {
        self.sim.launched()
    }

    fn create_orphan(&self, runner_name: &str, tags: BTreeMap<String, String>) {
        let labels = crate::labels::to_labels(&tags);
        if self.kind == ProviderKind::GcpBatch {
            self.sim.insert_batch_job(LAB_REGION, runner_name, labels);
        } else {
            self.sim.insert_run_job(LAB_REGION, runner_name, labels);
        }
    }

    fn inject(&self, fault: CloudFault, count: usize) {
        let fault = match fault {
            CloudFault::Throttle => Fault::Throttle,
            CloudFault::ServerError => Fault::Unavailable,
            CloudFault::Slow(d) => Fault::Slow(d),
        };
        self.sim.inject(fault, count);
    }

    fn set_failure_percent(&self, percent: u8, seed: u64) {
        self.sim.fail_percent(percent, seed);
    }

    fn exited_without_runner(&self) -> usize {
        self.sim.exited_without_runner()
    }
}
