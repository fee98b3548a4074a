//! A local simulator of the ECS and Secrets Manager subset the provider uses, held to AWS's
//! own API description: every request is validated against the botocore model extracts in
//! `vendor/` ([`model`]) before it is acted on, and every answer the simulator gives is
//! validated against the operation's output shape (a mismatch is a 500 and a recorded
//! violation, so a drifting simulator fails its tests).
//!
//! It checks what AWS checks: SigV4 signatures ([`sigv4`], independent of `aws-sigv4`),
//! required and unknown members, enums and lengths (`InvalidParameterException` for ECS,
//! `ValidationException` for Secrets Manager), the Fargate CPU/memory table, cluster,
//! subnet and security group existence, `clientToken` idempotency (same token, same request →
//! the same task; different request → `ConflictException`), and the container-override size
//! limit. It injects `ThrottlingException`, `ServerException`, slow answers and Fargate Spot
//! capacity failures.
//!
//! Tasks run through the shared image model (module `launch`): the container's command really
//! runs, so the provider's entrypoint fetches the task role's credentials from the
//! simulator's `/v2/credentials/<id>` (the ECS agent's endpoint), reads its JIT secret with a
//! SigV4-signed `GetSecretValue` under them (allowed only once the secret carries the reader
//! tag naming this task's session), and execs `run.sh`, which starts the configured
//! [`Launch`] program with the JIT config as `ACTIONS_RUNNER_INPUT_JITCONFIG` (never in
//! argv). The task's state follows the container and `StopTask` kills it. Injected faults
//! hit the controller's calls only, not the tasks' own `GetSecretValue`.

mod api;
mod lab;
mod launch;
pub mod model;
pub mod sigv4;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use secrecy::SecretString;
use serde_json::Value;

pub use lab::LAB;
/// The program the sim runs for each task whose entrypoint would start `run.sh`.
pub use simulators::cloud::Launch;

/// What the simulated account looks like.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub region: String,
    pub account_id: String,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    /// Clusters that exist (names).
    pub clusters: Vec<String>,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    /// The task role tasks may use, and its unique id.
    pub task_role_arn: String,
    pub task_role_id: String,
    /// How long a task's entrypoint tries to read its secret: the script's 30 tries, each
    /// `sleep` taking a thirtieth of this in simulated time.
    pub secret_wait: Duration,
    /// Whether `FARGATE_SPOT` has capacity at start.
    pub spot_capacity: bool,
    pub launch: Option<Launch>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            region: "eu-west-1".into(),
            account_id: "123456789012".into(),
            access_key_id: "AKIASIMULATOR0000001".into(),
            secret_access_key: SecretString::from("sim-secret-access-key"),
            clusters: vec!["shr-runners".into()],
            subnets: vec!["subnet-0a1b2c3d".into(), "subnet-0e1f2a3b".into()],
            security_groups: vec!["sg-0123abcd".into(), "sg-0456cdef".into()],
            task_role_arn: "arn:aws:iam::123456789012:role/shr-runner-task".into(),
            task_role_id: "AROASIMULATORTASKROLE".into(),
            // The entrypoint's own budget: 30 tries, 2 s apart.
            secret_wait: Duration::from_secs(60),
            spot_capacity: true,
            launch: None,
        }
    }
}

/// A failure the sim injects (after the signature check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 400 `ThrottlingException` "Rate exceeded".
    Throttle,
    /// 500 `ServerException`.
    ServerError,
    /// Answers normally, after this delay.
    Slow(Duration),
}

/// One task as the sim holds it.
#[derive(Debug, Clone)]
pub struct SimTask {
    pub arn: String,
    pub id: String,
    pub cluster: String,
    pub task_definition_arn: String,
    pub started_by: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub last_status: String,
    pub desired_status: String,
    pub stopped_reason: Option<String>,
    pub stop_code: Option<String>,
    pub exit_code: Option<i32>,
    /// `FARGATE` or `FARGATE_SPOT`.
    pub capacity_provider: String,
    pub cpu: String,
    pub memory: String,
    /// The `overrides` as sent (what `DescribeTasks` shows).
    pub overrides: Value,
    pub created_at: f64,
    /// The launched child's pid, while it runs.
    pub pid: Option<u32>,
}

/// One secret as the sim holds it; its value is never in `Debug`.
#[derive(Clone)]
pub struct SimSecret {
    pub arn: String,
    pub name: String,
    pub value: SecretString,
    pub tags: BTreeMap<String, String>,
}

impl std::fmt::Debug for SimSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimSecret")
            .field("arn", &self.arn)
            .field("name", &self.name)
            .field("tags", &self.tags)
            .finish_non_exhaustive()
    }
}

/// The simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("binding the simulator to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("loading the botocore extract: {0}")]
    Model(#[source] serde_json::Error),
}

struct Task {
    inst: SimTask,
    generation: u64,
    /// The running container; dropping it kills the process.
    kill: Option<simulators::image::Running>,
}

/// A task's role credentials, served once at its credentials URI.
struct Session {
    task_id: String,
    role_arn: String,
    secret_access_key: SecretString,
    token: SecretString,
}

struct TaskDefinition {
    arn: String,
    family: String,
    revision: u64,
    body: Value,
}

#[derive(Default)]
struct Inner {
    tasks: BTreeMap<String, Task>,
    task_definitions: Vec<TaskDefinition>,
    secrets: BTreeMap<String, SimSecret>,
    /// clientToken → (request fingerprint, the answer given).
    run_tokens: HashMap<String, (String, Value)>,
    faults: VecDeque<Fault>,
    /// Faults aimed at one operation (`TagResource`), served before `faults`.
    op_faults: HashMap<String, VecDeque<Fault>>,
    failure_rate: Option<(u8, StdRng)>,
    spot_capacity: bool,
    generation: u64,
    launched: Vec<String>,
    calls: Vec<String>,
    violations: Vec<String>,
    /// Tasks whose container ended without starting the runner (no `run.sh` in its
    /// command, or its JIT secret never became readable).
    exited_without_runner: usize,
    /// Running tasks' role sessions, by access key id.
    sessions: HashMap<String, Session>,
    /// Credentials URI id → the session's access key id.
    credential_uris: HashMap<String, String>,
}

struct Shared {
    cfg: SimConfig,
    base_url: String,
    ecs: model::Model,
    secrets: model::Model,
    inner: Mutex<Inner>,
}

impl Shared {
    #[cfg(test)]
    fn for_tests() -> Self {
        Shared {
            cfg: SimConfig::default(),
            base_url: "http://127.0.0.1:9".into(),
            ecs: model::Model::parse(model::ECS_MODEL).unwrap_or_else(|e| panic!("{e}")),
            secrets: model::Model::parse(model::SECRETS_MODEL).unwrap_or_else(|e| panic!("{e}")),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Starts simulators.
#[derive(Debug)]
pub struct Sim;

impl Sim {
    /// Serves the simulator on `addr` (port 0 picks a free port).
    pub async fn start(cfg: SimConfig, addr: SocketAddr) -> Result<SimHandle, SimError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let inner = Inner {
            spot_capacity: cfg.spot_capacity,
            ..Inner::default()
        };
        let shared = Arc::new(Shared {
            ecs: model::Model::parse(model::ECS_MODEL).map_err(SimError::Model)?,
            secrets: model::Model::parse(model::SECRETS_MODEL).map_err(SimError::Model)?,
            cfg,
            base_url: format!("http://{local}"),
            inner: Mutex::new(inner),
        });
        let app = api::router(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "AWS simulator stopped");
            }
        });
        Ok(SimHandle { shared, server })
    }
}

/// A running simulator. Dropping it stops the server and kills the children it launched.
pub struct SimHandle {
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.server.abort();
        let running: Vec<_> = self
            .shared
            .lock()
            .tasks
            .values_mut()
            .filter_map(|t| t.kill.take())
            .collect();
        drop(running);
    }
}

impl SimHandle {
    /// Serves ECS and Secrets Manager (told apart by `X-Amz-Target`).
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn config(&self) -> &SimConfig {
        &self.shared.cfg
    }

    /// Every task, running or stopped.
    pub fn tasks(&self) -> Vec<SimTask> {
        self.shared
            .lock()
            .tasks
            .values()
            .map(|t| t.inst.clone())
            .collect()
    }

    /// Tasks whose desired status is not `STOPPED`.
    pub fn live_tasks(&self) -> Vec<SimTask> {
        self.tasks()
            .into_iter()
            .filter(|t| t.desired_status != "STOPPED")
            .collect()
    }

    /// Every secret that exists.
    pub fn secrets(&self) -> Vec<SimSecret> {
        self.shared.lock().secrets.values().cloned().collect()
    }

    /// Starts a running task directly, as if someone ran it behind the system's back.
    pub fn create_orphan(&self, cluster: &str, tags: BTreeMap<String, String>) -> String {
        let mut inner = self.shared.lock();
        inner.generation += 1;
        let generation = inner.generation;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let cfg = &self.shared.cfg;
        let arn = format!(
            "arn:aws:ecs:{}:{}:task/{cluster}/{id}",
            cfg.region, cfg.account_id
        );
        let inst = SimTask {
            arn: arn.clone(),
            id,
            cluster: cluster.to_owned(),
            task_definition_arn: String::new(),
            started_by: tags.get("shr-runner").cloned(),
            tags,
            last_status: "RUNNING".into(),
            desired_status: "RUNNING".into(),
            stopped_reason: None,
            stop_code: None,
            exit_code: None,
            capacity_provider: "FARGATE".into(),
            cpu: "256".into(),
            memory: "512".into(),
            overrides: serde_json::json!({}),
            created_at: api::now_secs(),
            pid: None,
        };
        inner.tasks.insert(
            arn.clone(),
            Task {
                inst,
                generation,
                kill: None,
            },
        );
        arn
    }

    /// The next `count` calls fail with `fault`.
    pub fn inject(&self, fault: Fault, count: usize) {
        self.shared
            .lock()
            .faults
            .extend(std::iter::repeat_n(fault, count));
    }

    /// The next `count` calls of operation `op` (e.g. `TagResource`) fail with `fault`.
    pub fn inject_for(&self, op: &str, fault: Fault, count: usize) {
        self.shared
            .lock()
            .op_faults
            .entry(op.to_owned())
            .or_default()
            .extend(std::iter::repeat_n(fault, count));
    }

    /// From now on `percent` of calls fail with `ServerException`, from a seeded RNG.
    pub fn set_failure_rate(&self, percent: u8, seed: u64) {
        use rand::SeedableRng;
        self.shared.lock().failure_rate =
            (percent > 0).then(|| (percent.min(100), StdRng::seed_from_u64(seed)));
    }

    /// Whether `FARGATE_SPOT` has capacity.
    pub fn set_spot_capacity(&self, available: bool) {
        self.shared.lock().spot_capacity = available;
    }

    /// Task ids whose runner container was started, one entry per start.
    pub fn launched(&self) -> Vec<String> {
        self.shared.lock().launched.clone()
    }

    /// Tasks whose container ended, or failed to start, without reaching `run.sh`.
    pub fn exited_without_runner(&self) -> usize {
        self.shared.lock().exited_without_runner
    }

    /// `X-Amz-Target`s received, in order (bodies are not kept: some hold JIT configs).
    pub fn calls(&self) -> Vec<String> {
        self.shared.lock().calls.clone()
    }

    /// Requests or answers that did not validate against the botocore extract.
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }
}
