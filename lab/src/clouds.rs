//! The cloud simulators as a demo/test fixture.
//!
//! [`start_demo_cloud`] / [`start_cloud_sim`] start one cloud simulator that launches a given
//! program for every started instance, with sim-only credentials written as files, and
//! [`DemoCloud::provider_toml`] gives the provider section that points a tenant at it. The
//! lab holds no per-cloud code: it finds each simulator through [`clouds::SIMS`] (the
//! [`simulators::cloud::SimPlugin`] each cloud crate exports) and drives it only through
//! [`simulators::cloud::CloudSim`].
//!
//! Guarantees: the simulator's secrets live only in files under the fixture's directory
//! (mode 0600) and in memory, and are never logged.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bus_schema::ProviderKind;
use providers::tags;
use secrecy::ExposeSecret as _;
pub use simulators::cloud::CloudFault;
use simulators::cloud::{CloudSim, Launch};

/// One running cloud simulator and the sim-only credentials that reach it. Dropping it stops
/// the simulator and kills the runner processes it launched.
#[derive(Debug)]
pub struct DemoCloud {
    sim: Box<dyn CloudSim>,
    /// The `file:` secret (AccessKey secret, client secret or key JSON).
    secret_path: PathBuf,
}

/// [`start_cloud_sim`] on a free port of 127.0.0.1.
///
/// `kind` must be a cloud: `local` has no simulator and is an error.
pub async fn start_demo_cloud(
    kind: ProviderKind,
    dir: &Path,
    launch_program: PathBuf,
    launch_args: Vec<String>,
    failure_percent: u32,
    seed: u64,
) -> anyhow::Result<DemoCloud> {
    start_cloud_sim(
        kind,
        SocketAddr::from(([127, 0, 0, 1], 0)),
        dir,
        Launch {
            program: launch_program,
            args: launch_args,
        },
        failure_percent,
        seed,
    )
    .await
}

/// Starts the simulator of `kind` on `listen`, found through [`clouds::SIMS`]. Every instance
/// that starts runs `launch` with the JIT config the way the simulator delivers it (env
/// `ACTIONS_RUNNER_INPUT_JITCONFIG`, or `--jitconfig-file` for ECI's config-file volume).
/// The sim-only secret is written under `dir` (created if needed). `failure_percent` of API
/// calls fail (see [`DemoCloud::set_failure_percent`]).
pub async fn start_cloud_sim(
    kind: ProviderKind,
    listen: SocketAddr,
    dir: &Path,
    launch: Launch,
    failure_percent: u32,
    seed: u64,
) -> anyhow::Result<DemoCloud> {
    let plugin = clouds::sim(kind)
        .ok_or_else(|| anyhow::anyhow!("the {kind} provider has no cloud simulator"))?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let started = (plugin.start)(kind, listen, launch)
        .await
        .map_err(|e| anyhow::anyhow!(e))
        .with_context(|| format!("starting the {kind} simulator"))?;
    let secret_path = dir.join(format!("{kind}-secret"));
    write_secret(&secret_path, started.secret.expose_secret())?;
    let cloud = DemoCloud {
        sim: started.sim,
        secret_path,
    };
    cloud.set_failure_percent(failure_percent, seed);
    Ok(cloud)
}

/// Writes a secret file readable by its owner only.
fn write_secret(path: &Path, value: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

impl DemoCloud {
    pub fn kind(&self) -> ProviderKind {
        self.sim.kind()
    }

    /// The file holding the simulator's sim-only secret (`file:` reference target).
    pub fn secret_path(&self) -> &Path {
        &self.secret_path
    }

    /// The simulator's base URL.
    pub fn base_url(&self) -> String {
        self.sim.base_url()
    }

    /// The `[tenants.<tenant>.providers.<kind>]` section that points `tenant` at this
    /// simulator, its secret as a `file:` reference.
    pub fn provider_toml(&self, tenant: &str) -> String {
        let bare = !tenant.is_empty()
            && tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let key = if bare {
            tenant.to_owned()
        } else {
            toml_str(tenant)
        };
        let secret = format!("file:{}", self.secret_path.display());
        let mut out = format!("[tenants.{key}.providers.{}]\n", self.kind());
        for (field, value) in self.sim.provider_config(&secret) {
            out.push_str(&format!("{field} = {}\n", toml_str(&value)));
        }
        for (field, values) in self.sim.provider_config_lists() {
            let values: Vec<String> = values.iter().map(|v| toml_str(v)).collect();
            out.push_str(&format!("{field} = [{}]\n", values.join(", ")));
        }
        out
    }

    /// The tags of every instance the simulator holds (running or stopped, not deleted).
    fn instance_tags(&self) -> Vec<BTreeMap<String, String>> {
        self.sim.instances().into_iter().map(|i| i.tags).collect()
    }

    /// Instances the simulator still holds (running or stopped, not deleted) that carry a
    /// controller tag, whatever its value (the demo has one controller; orphans made by
    /// [`Self::create_orphan`] count too).
    pub fn live_instances(&self) -> usize {
        self.instance_tags()
            .iter()
            .filter(|t| t.contains_key(tags::CONTROLLER))
            .count()
    }

    /// Like [`Self::live_instances`], counting only instances of `controller_id`.
    pub fn live_instances_of(&self, controller_id: &str) -> usize {
        let want = self.sim.controller_tag(controller_id);
        self.instance_tags()
            .iter()
            .filter(|t| t.get(tags::CONTROLLER) == Some(&want))
            .count()
    }

    /// (runner processes launched, distinct instance names launched): a difference means an
    /// instance was started twice.
    pub fn launches(&self) -> (usize, usize) {
        let launched = self.sim.launched();
        let distinct = launched.iter().collect::<BTreeSet<_>>().len();
        (launched.len(), distinct)
    }

    /// The create log: the instance names a runner process was started for, in order.
    pub fn launched(&self) -> Vec<String> {
        self.sim.launched()
    }

    /// Instances whose container ended, or failed to start, without starting a runner (the
    /// image model ran their command and it never reached `/home/runner/run.sh`).
    pub fn exited_without_runner(&self) -> usize {
        self.sim.exited_without_runner()
    }

    /// Creates a running instance directly in the simulator, behind the system's back,
    /// tagged with `controller_id` and runner name `name` (which must be a valid instance
    /// name on the platform, as the system's runner names are).
    pub fn create_orphan(&self, controller_id: &str, name: &str) {
        let tags = BTreeMap::from([
            (tags::CONTROLLER.to_owned(), controller_id.to_owned()),
            (tags::RUNNER.to_owned(), name.to_owned()),
        ]);
        self.sim.create_orphan(name, tags);
    }

    /// Makes the next `count` API calls of this simulator fail with `fault` (ahead of the
    /// random failure rate; those calls draw no random failure).
    pub fn inject(&self, fault: CloudFault, count: usize) {
        self.sim.inject(fault, count);
    }

    /// Makes `percent`% of API calls fail, drawn from an RNG seeded with `seed`; 0 clears.
    /// The failure is the platform's own transient error: ECI `Throttling.User` (400), ARM
    /// `InternalServerError` (500), Google `UNAVAILABLE` (503).
    pub fn set_failure_percent(&self, percent: u32, seed: u64) {
        let percent = u8::try_from(percent.min(100)).unwrap_or(100);
        self.sim.set_failure_percent(percent, seed);
    }
}
