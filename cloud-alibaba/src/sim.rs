//! A local simulator of the ECI API subset the provider uses (`CreateContainerGroup`,
//! `DeleteContainerGroup`, `DescribeContainerGroups`), served by axum on 127.0.0.1.
//!
//! # What it checks, like ECI does
//! - The RPC signature (HMAC-SHA1 with the configured AccessKeySecret) →
//!   `SignatureDoesNotMatch`; unknown AccessKeyId → `InvalidAccessKeyId.NotFound`;
//!   missing/unsupported signature parameters → `IncompleteSignature`; timestamp skew →
//!   `InvalidTimeStamp.Expired`; a reused `SignatureNonce` → `SignatureNonceUsed`.
//! - Required parameters (`MissingParameter`), the container group name format, the
//!   vCPU/memory specification table, env values over 256 characters, tag limits, volume
//!   references (`InvalidParameter`), and `ClientToken` idempotency (same token and
//!   parameters → the same `ContainerGroupId`; different parameters →
//!   `IdempotentParameterMismatch`).
//!
//! - Every request against the ECI 2018-08-08 metadata ([`simulators::conformance::eci`]):
//!   an unknown parameter or a bad value → `InvalidParameter`, a missing one → `MissingParameter`.
//!
//! Errors are ECI's JSON body `{RequestId, HostId, Code, Message, Recommend}`.
//!
//! # Lifecycle
//! A group starts `Pending`. With [`SimConfig::launch`] set, the sim runs the first container
//! through the image model ([`simulators::image`]): image, `Command.N`, `Arg.N` and env, with
//! the `ConfigFileVolume` files written at their mount paths, by a real `sh` whose fake
//! `/home/runner/run.sh` starts the launch program (the JIT config never on its command
//! line). The group turns `Running`, then `Succeeded`/`Failed` with the process's exit status,
//! or `Failed` when `ActiveDeadlineSeconds` passes. Deleting the group kills the process. A
//! container that ends without starting a runner is counted
//! ([`SimHandle::exited_without_runner`]). Without `launch` the group just turns `Running`.

mod actions;
mod lab_start;
mod launch;
mod server;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bus_schema::ProviderKind;
pub use lab_start::LAB;
use secrecy::SecretString;
pub use simulators::cloud::Launch;
use simulators::cloud::{CloudFault, CloudSim, FaultPlan, ServeHandle, SimInstanceTags};
use tokio::sync::oneshot;

/// How the simulator is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub region: String,
    pub access_key_id: String,
    pub access_key_secret: SecretString,
    /// The largest accepted difference between a request's `Timestamp` and now.
    pub max_clock_skew: Duration,
    /// The program started for each group, if any.
    pub launch: Option<Launch>,
}

impl SimConfig {
    /// A config with a 15-minute skew window and no launch.
    pub fn new(
        region: impl Into<String>,
        access_key_id: impl Into<String>,
        access_key_secret: SecretString,
    ) -> Self {
        Self {
            region: region.into(),
            access_key_id: access_key_id.into(),
            access_key_secret,
            max_clock_skew: Duration::from_secs(15 * 60),
            launch: None,
        }
    }
}

/// A failure the sim injects instead of serving a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 400 `Throttling.User`.
    Throttling,
    /// HTTP 500 `InternalError`.
    ServerError,
    /// HTTP 503 `ServiceUnavailable`.
    Unavailable,
    /// HTTP 403 `OperationDenied.NoStock`.
    NoStock,
    /// Serve normally after this delay.
    Slow(Duration),
}

/// A group's state as ECI reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl GroupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupStatus::Pending => "Pending",
            GroupStatus::Running => "Running",
            GroupStatus::Succeeded => "Succeeded",
            GroupStatus::Failed => "Failed",
        }
    }
}

/// Request parameters as received; `Debug` shows only the names (values may hold secrets).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Fields(pub BTreeMap<String, String>);

impl std::fmt::Debug for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Fields {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// A snapshot of one container group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimGroup {
    pub id: String,
    pub name: String,
    pub status: GroupStatus,
    pub tags: BTreeMap<String, String>,
    /// The `CreateContainerGroup` parameters, minus the common (signature) ones.
    pub fields: Fields,
}

/// A failed simulator start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("binding the ECI simulator to {addr} failed: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

struct Group {
    snapshot: SimGroup,
    kill: Option<oneshot::Sender<()>>,
}

struct State {
    groups: BTreeMap<String, Group>,
    /// ClientToken → (parameter fingerprint, group id).
    tokens: HashMap<String, (u64, String)>,
    nonces: HashSet<String>,
    faults: FaultPlan<Fault>,
    calls: Vec<String>,
    /// Names of the groups a container process was started for, one entry per start.
    launched: Vec<String>,
    /// Groups whose container ended (or failed to start) without starting a runner.
    exited_without_runner: usize,
    /// Requests refused for departing from the ECI metadata.
    conformance_rejections: usize,
    next_id: u64,
}

struct Shared {
    config: SimConfig,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_status(&self, id: &str, status: GroupStatus) {
        if let Some(group) = self.state().groups.get_mut(id) {
            group.snapshot.status = status;
        }
    }
}

/// Starts simulators.
#[derive(Debug)]
pub struct Sim;

/// A running simulator. Dropping it stops the server and kills every launched child.
#[derive(Debug)]
pub struct SimHandle {
    shared: Arc<Shared>,
    server: ServeHandle,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("region", &self.config.region)
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// Binds `addr` (port 0 picks one) and serves until the handle is dropped.
    pub async fn start(config: SimConfig, addr: SocketAddr) -> Result<SimHandle, SimError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State {
                groups: BTreeMap::new(),
                tokens: HashMap::new(),
                nonces: HashSet::new(),
                faults: FaultPlan::default(),
                calls: Vec::new(),
                launched: Vec::new(),
                exited_without_runner: 0,
                conformance_rejections: 0,
                next_id: 1,
            }),
        });
        let server = simulators::cloud::serve("eci", listener, server::router(shared.clone()))
            .map_err(|source| SimError::Bind { addr, source })?;
        Ok(SimHandle { shared, server })
    }
}

impl SimHandle {
    /// `http://127.0.0.1:<port>/`, to use as the provider's endpoint.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.server.addr())
    }

    /// Every group, ordered by id.
    pub fn groups(&self) -> Vec<SimGroup> {
        self.shared
            .state()
            .groups
            .values()
            .map(|g| g.snapshot.clone())
            .collect()
    }

    /// The group named `name`, if any.
    pub fn group_named(&self, name: &str) -> Option<SimGroup> {
        self.groups().into_iter().find(|g| g.name == name)
    }

    /// The actions served so far (after authentication), in order.
    pub fn calls(&self) -> Vec<String> {
        self.shared.state().calls.clone()
    }

    /// The names of the groups a runner process was started for, one entry per start (a
    /// name twice means a runner was launched twice).
    pub fn launched(&self) -> Vec<String> {
        self.shared.state().launched.clone()
    }

    /// How many groups' containers ended, or failed to start, without starting a runner
    /// (a command the image model could not take to `/home/runner/run.sh`).
    pub fn exited_without_runner(&self) -> usize {
        self.shared.state().exited_without_runner
    }

    /// How many requests were refused for departing from the ECI 2018-08-08 metadata
    /// (unknown parameters, missing required ones, wrong types or values).
    pub fn conformance_rejections(&self) -> usize {
        self.shared.state().conformance_rejections
    }

    /// Creates a running group behind the provider's back (an orphan); returns its id.
    pub fn create_orphan(&self, name: &str, tags: BTreeMap<String, String>) -> String {
        let mut state = self.shared.state();
        let id = actions::next_id(&mut state);
        state.groups.insert(
            id.clone(),
            Group {
                snapshot: SimGroup {
                    id: id.clone(),
                    name: name.to_owned(),
                    status: GroupStatus::Running,
                    tags,
                    fields: Fields::default(),
                },
                kill: None,
            },
        );
        id
    }

    /// Forces a group's status (e.g. to simulate a finished job without a child).
    pub fn set_status(&self, id: &str, status: GroupStatus) {
        self.shared.set_status(id, status);
    }

    /// The next `n` authenticated calls fail with `fault`.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        self.shared.state().faults.push(fault, n);
    }

    /// From now on `percent`% of authenticated calls fail with `fault`, drawn from an RNG
    /// seeded with `seed` (reproducible).
    pub fn set_failure_rate(&self, percent: u8, fault: Fault, seed: u64) {
        self.shared.state().faults.set_rate(percent, fault, seed);
    }

    /// Removes every pending and random fault.
    pub fn clear_faults(&self) {
        self.shared.state().faults.clear();
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        // The server stops when `self.server` drops.
        for group in self.shared.state().groups.values_mut() {
            if let Some(kill) = group.kill.take() {
                let _ = kill.send(());
            }
        }
    }
}

/// The vSwitch and security group the lab's provider section names.
pub const LAB_VSWITCH: &str = "vsw-sim0001";
pub const LAB_SECURITY_GROUP: &str = "sg-sim0001";

impl CloudSim for SimHandle {
    fn kind(&self) -> ProviderKind {
        ProviderKind::AlibabaEci
    }

    fn base_url(&self) -> String {
        SimHandle::base_url(self)
    }

    fn provider_config(&self, secret: &str) -> BTreeMap<String, String> {
        let config = &self.shared.config;
        BTreeMap::from([
            ("endpoint".into(), SimHandle::base_url(self)),
            ("region".into(), config.region.clone()),
            ("access_key_id".into(), config.access_key_id.clone()),
            ("access_key_secret".into(), secret.to_owned()),
            ("vswitch_id".into(), LAB_VSWITCH.into()),
            ("security_group_id".into(), LAB_SECURITY_GROUP.into()),
        ])
    }

    fn instances(&self) -> Vec<SimInstanceTags> {
        self.groups()
            .into_iter()
            .map(|g| SimInstanceTags {
                name: g.name,
                tags: g.tags,
            })
            .collect()
    }

    fn launched(&self) -> Vec<String> {
        SimHandle::launched(self)
    }

    fn create_orphan(&self, runner_name: &str, tags: BTreeMap<String, String>) {
        SimHandle::create_orphan(self, runner_name, tags);
    }

    fn inject(&self, fault: CloudFault, count: usize) {
        let fault = match fault {
            CloudFault::Throttle => Fault::Throttling,
            CloudFault::ServerError => Fault::ServerError,
            CloudFault::Slow(d) => Fault::Slow(d),
        };
        self.fail_next(count, fault);
    }

    fn set_failure_percent(&self, percent: u8, seed: u64) {
        self.set_failure_rate(percent, Fault::Throttling, seed);
    }

    fn exited_without_runner(&self) -> usize {
        SimHandle::exited_without_runner(self)
    }
}
