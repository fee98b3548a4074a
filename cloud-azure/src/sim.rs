//! A local simulator of the ACI subset the provider uses: the Entra ID v2.0 token endpoint
//! and ARM `containerGroups` PUT / GET / DELETE / list, plus the async-operation status URL.
//!
//! It checks what Azure checks: the client secret (wrong → 401 `invalid_client`,
//! AADSTS7000215), the bearer token on every ARM call (missing → `AuthenticationFailed`,
//! unknown → `InvalidAuthenticationToken`, expired → `ExpiredAuthenticationToken`),
//! api-version, subscription and resource group, name formats, required fields, cpu/memory
//! steps and maxima, tag and env sizes, and it answers with ARM's error JSON. GET never returns
//! `secureValue`s or storage keys. When a group starts, its first container runs through the
//! image model ([`simulators::image`]): its image, `command` and env (the JIT config as
//! `ACTIONS_RUNNER_INPUT_JITCONFIG`, never in argv), with the fake `/home/runner/run.sh`
//! starting the configured [`Launch`] program. The group's state follows the process, and
//! deleting the group kills it; a container that ends without a runner is counted.

mod arm;
mod auth;
mod lab_start;
mod launch;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bus_schema::ProviderKind;
pub use lab_start::LAB;
use secrecy::SecretString;
use serde_json::Value;
pub use simulators::cloud::Launch;
use simulators::cloud::{CloudFault, CloudSim, FaultPlan, ServeHandle, SimInstanceTags};

/// Token requests kept for [`SimHandle::token_requests`] (the oldest are dropped).
const MAX_RECORDED_TOKEN_REQUESTS: usize = 100;

/// What the simulated tenant, subscription and region look like.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub subscription_id: String,
    /// Resource groups that exist; others answer `ResourceGroupNotFound`.
    pub resource_groups: Vec<String>,
    pub location: String,
    /// api-versions ARM accepts for `containerGroups`.
    pub api_versions: Vec<String>,
    /// Per-group maxima, in cores and GB.
    pub max_cpu: f64,
    pub max_memory_gb: f64,
    pub token_ttl: Duration,
    /// Groups per list page (ARM pages with `nextLink`).
    pub page_size: usize,
    pub launch: Option<Launch>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            client_id: "535fb089-9ff3-47b6-9bfb-4f1264799865".into(),
            client_secret: SecretString::from("sim-client-secret"),
            subscription_id: "00000000-0000-0000-0000-000000000001".into(),
            resource_groups: vec!["shr-runners".into()],
            location: "westeurope".into(),
            api_versions: vec![crate::config::API_VERSION.into()],
            max_cpu: f64::from(crate::limits::DEFAULT_MAX_CPU_MILLIS) / 1000.0,
            max_memory_gb: f64::from(crate::limits::DEFAULT_MAX_MEMORY_MIB) / 1024.0,
            token_ttl: Duration::from_secs(3599),
            page_size: 100,
            launch: None,
        }
    }
}

/// A failure the sim injects into ARM calls (after the bearer check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 `SubscriptionRequestsThrottled` with `Retry-After`.
    Throttle { retry_after_secs: u64 },
    /// 500 `InternalServerError`.
    ServerError,
    /// 409 `ContainerGroupQuotaReached`.
    Quota,
    /// Answers normally, after this delay.
    Slow(Duration),
}

/// A container group's runtime state (`instanceView.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl GroupState {
    fn as_str(self) -> &'static str {
        match self {
            GroupState::Pending => "Pending",
            GroupState::Running => "Running",
            GroupState::Succeeded => "Succeeded",
            GroupState::Failed => "Failed",
        }
    }
}

/// A snapshot of one container group, with the request exactly as it arrived.
#[derive(Clone)]
pub struct SimInstance {
    pub name: String,
    pub resource_group: String,
    pub location: String,
    pub tags: BTreeMap<String, String>,
    /// The PUT body as received, secure values included: for assertions only.
    pub request: Value,
    pub provisioning_state: String,
    pub state: GroupState,
    pub exit_code: Option<i32>,
    /// The launched child's pid, while it runs.
    pub pid: Option<u32>,
    /// How many PUTs this group received.
    pub puts: u32,
}

impl std::fmt::Debug for SimInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimInstance")
            .field("name", &self.name)
            .field("resource_group", &self.resource_group)
            .field("tags", &self.tags)
            .field("provisioning_state", &self.provisioning_state)
            .field("state", &self.state)
            .field("exit_code", &self.exit_code)
            .field("puts", &self.puts)
            .finish_non_exhaustive()
    }
}

/// A token request as it arrived (its body holds the client secret).
#[derive(Clone)]
pub struct TokenRequest {
    pub path: String,
    pub content_type: Option<String>,
    pub body: String,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("path", &self.path)
            .field("content_type", &self.content_type)
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
}

struct Group {
    inst: SimInstance,
    /// Distinguishes a re-created group from the one a background task was started for.
    generation: u64,
    operation_id: String,
    /// The launched runner; dropping it kills the process.
    kill: Option<simulators::image::Running>,
}

#[derive(Default)]
struct Inner {
    groups: BTreeMap<(String, String), Group>,
    tokens: HashMap<String, Instant>,
    faults: FaultPlan<Fault>,
    token_requests: Vec<TokenRequest>,
    generation: u64,
    /// Names of the groups a runner process was started for, one entry per start.
    launched: Vec<String>,
    /// Groups whose container ended (or failed to start) without starting a runner.
    exited_without_runner: usize,
    /// PUT bodies refused for departing from the ContainerInstance swagger.
    conformance_rejections: usize,
}

struct Shared {
    cfg: SimConfig,
    base_url: String,
    inner: Mutex<Inner>,
}

impl Shared {
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
        let shared = Arc::new(Shared {
            cfg,
            base_url: format!("http://{local}"),
            inner: Mutex::new(Inner::default()),
        });
        let app = arm::router(shared.clone()).merge(auth::router(shared.clone()));
        let server = simulators::cloud::serve("aci", listener, app)
            .map_err(|source| SimError::Bind { addr, source })?;
        Ok(SimHandle {
            shared,
            _server: server,
        })
    }
}

/// A running simulator: its URL, its state, and its fault switches. Dropping it stops the
/// server; children still running are killed when their groups are deleted or the runtime ends.
pub struct SimHandle {
    shared: Arc<Shared>,
    _server: ServeHandle,
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
        // The server stops with `_server`; dropping the children kills them.
        for g in self.shared.lock().groups.values_mut() {
            g.kill = None;
        }
    }
}

impl SimHandle {
    /// Serves both ARM and the token endpoint.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Every container group, in every resource group.
    pub fn instances(&self) -> Vec<SimInstance> {
        self.shared
            .lock()
            .groups
            .values()
            .map(|g| g.inst.clone())
            .collect()
    }

    /// The group called `name`, in any resource group.
    pub fn instance(&self, name: &str) -> Option<SimInstance> {
        self.instances().into_iter().find(|i| i.name == name)
    }

    /// Creates a running group directly, as if someone made it behind the system's back.
    pub fn create_orphan(&self, resource_group: &str, name: &str, tags: BTreeMap<String, String>) {
        let mut inner = self.shared.lock();
        inner.generation += 1;
        let generation = inner.generation;
        let inst = SimInstance {
            name: name.to_owned(),
            resource_group: resource_group.to_owned(),
            location: self.shared.cfg.location.clone(),
            tags,
            request: serde_json::json!({"properties": {"osType": "Linux", "containers": []}}),
            provisioning_state: "Succeeded".into(),
            state: GroupState::Running,
            exit_code: None,
            pid: None,
            puts: 0,
        };
        inner.groups.insert(
            (resource_group.to_owned(), name.to_owned()),
            Group {
                inst,
                generation,
                operation_id: uuid::Uuid::new_v4().to_string(),
                kill: None,
            },
        );
    }

    /// Ends a group that has no child (no [`Launch`]) as if its container exited.
    pub fn finish(&self, name: &str, exit_code: i32) {
        let mut inner = self.shared.lock();
        if let Some(g) = inner.groups.values_mut().find(|g| g.inst.name == name) {
            g.inst.exit_code = Some(exit_code);
            g.inst.state = if exit_code == 0 {
                GroupState::Succeeded
            } else {
                GroupState::Failed
            };
        }
    }

    /// The next `count` ARM calls fail with `fault`.
    pub fn inject(&self, fault: Fault, count: usize) {
        self.shared.lock().faults.push(fault, count);
    }

    /// From now on, `percent` of ARM calls fail with 500, drawn from a seeded RNG.
    pub fn set_failure_rate(&self, percent: u8, seed: u64) {
        self.shared
            .lock()
            .faults
            .set_rate(percent, Fault::ServerError, seed);
    }

    /// Every issued token now counts as expired.
    pub fn expire_tokens(&self) {
        let past = Instant::now();
        for exp in self.shared.lock().tokens.values_mut() {
            *exp = past;
        }
    }

    /// The names of the groups a runner process was started for, one entry per start (a
    /// name twice means a runner was launched twice).
    pub fn launched(&self) -> Vec<String> {
        self.shared.lock().launched.clone()
    }

    /// How many groups' containers ended, or failed to start, without starting a runner
    /// (a command the image model could not take to `/home/runner/run.sh`).
    pub fn exited_without_runner(&self) -> usize {
        self.shared.lock().exited_without_runner
    }

    /// How many PUT bodies were refused for departing from the ContainerInstance 2025-09-01
    /// swagger (unknown or mistyped properties, missing required ones, values outside enums).
    pub fn conformance_rejections(&self) -> usize {
        self.shared.lock().conformance_rejections
    }

    /// Token requests received so far (the last 100).
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.shared.lock().token_requests.clone()
    }
}

impl CloudSim for SimHandle {
    fn kind(&self) -> ProviderKind {
        ProviderKind::AzureAci
    }

    fn base_url(&self) -> String {
        SimHandle::base_url(self)
    }

    fn provider_config(&self, secret: &str) -> BTreeMap<String, String> {
        let cfg = &self.shared.cfg;
        let base = SimHandle::base_url(self);
        let group = cfg.resource_groups.first().cloned().unwrap_or_default();
        let subnet = format!(
            "/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.Network/virtualNetworks/runners/subnets/default",
            cfg.subscription_id
        );
        BTreeMap::from([
            ("endpoint".into(), base.clone()),
            ("login_endpoint".into(), base),
            ("subscription_id".into(), cfg.subscription_id.clone()),
            ("resource_group".into(), group),
            ("location".into(), cfg.location.clone()),
            ("tenant_id".into(), cfg.tenant_id.clone()),
            ("client_id".into(), cfg.client_id.clone()),
            ("client_secret".into(), secret.to_owned()),
            ("subnet_id".into(), subnet),
        ])
    }

    fn instances(&self) -> Vec<SimInstanceTags> {
        SimHandle::instances(self)
            .into_iter()
            .map(|i| SimInstanceTags {
                name: i.name,
                tags: i.tags,
            })
            .collect()
    }

    fn launched(&self) -> Vec<String> {
        SimHandle::launched(self)
    }

    fn create_orphan(&self, runner_name: &str, tags: BTreeMap<String, String>) {
        let group = self.shared.cfg.resource_groups.first().cloned();
        SimHandle::create_orphan(
            self,
            group.as_deref().unwrap_or_default(),
            &crate::limits::group_name(runner_name),
            tags,
        );
    }

    fn inject(&self, fault: CloudFault, count: usize) {
        let fault = match fault {
            CloudFault::Throttle => Fault::Throttle {
                retry_after_secs: 1,
            },
            CloudFault::ServerError => Fault::ServerError,
            CloudFault::Slow(d) => Fault::Slow(d),
        };
        SimHandle::inject(self, fault, count);
    }

    fn set_failure_percent(&self, percent: u8, seed: u64) {
        self.set_failure_rate(percent, seed);
    }

    fn exited_without_runner(&self) -> usize {
        SimHandle::exited_without_runner(self)
    }
}
