//! The whole system on one machine: a nats-server, the GitHub simulator, a cloud (the local
//! provider or a cloud simulator) and the actors, wired from a generated configuration.
//!
//! `shr-lab demo` drives it from the command line; the system tests drive it from Rust. Both read
//! the same [`Summary`], observed from outside the controller: the GitHub simulator's jobs and
//! runners, the cloud simulator's (or the local provider's) create and delete logs, the
//! instances and per-runner artefacts still there. The controller's records only feed the
//! progress line. [`Harness::wait_settled`] observes twice, a quiet period apart
//! ([`Harness::quiet_period`]), and trusts the summary only when both agree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bins;
use anyhow::Context as _;
use bus_schema::{JobRecord, ProviderKind, RunnerRecord};
use registration::Actor;
use simulators::github::{
    GitHubSim, GitHubSimHandle, JobStatus, NewJob, SimConfig, WebhookSettings, WebhookTarget,
};

use shr::wiring;

use crate::placement::{self, Children, Placement, TenantSetup};

/// The tenant and registration the harness configures.
pub const TENANT: &str = "demo";
pub const REGISTRATION: &str = "demo-org";
pub const CONTROLLER_ID: &str = "shr-demo";

/// How to set the harness up.
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    pub provider: ProviderKind,
    /// Wiped and recreated.
    pub work_dir: PathBuf,
    /// Use this NATS server instead of starting one.
    pub nats_url: Option<String>,
    pub job_duration: Duration,
    pub webhooks: bool,
    pub deliver_twice: bool,
    pub poll_interval_secs: u64,
    /// The actors started in this process.
    pub actors: Vec<Actor>,
    /// Share of cloud API calls the cloud simulator fails (throttling, 5xx), in percent.
    pub cloud_failure_percent: u32,
    /// The lab binary runners run (`<it> sim runner`); `None` finds it ([`bins::lab_binary`]).
    pub lab_binary: Option<PathBuf>,
    /// The NATS nkey seed file this process connects with (`[controller] nats_nkey_seed`).
    pub nats_nkey_seed: Option<PathBuf>,
    /// Nodes of the NATS the harness starts: 1 is one server; more is a JetStream cluster
    /// on loopback, with every stream and bucket replicated to `min(nodes, 3)` nodes.
    pub nats_nodes: usize,
    /// Seeds every random choice of the run, the cloud simulator's failures included.
    pub seed: u64,
    /// How often the reaper sweeps for orphans.
    pub sweep_interval: Duration,
    /// Where the actors run ([`crate::placement`]); `Centralized` and `Agents` need a cloud
    /// provider and run some actors as `shr` processes.
    pub placement: Placement,
    /// How many tenants the agents placement runs.
    pub tenants: usize,
    /// The agents placement: poll as well as take webhooks (with `webhooks`); off, every
    /// job must arrive through a webhook delivery.
    pub poll: bool,
    /// The centralized and agents placements: start their `shr run` processes (off, the
    /// caller starts them from [`Harness::process_configs`], as the chaos suite does).
    pub start_processes: bool,
}

impl HarnessOptions {
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        Self {
            provider: ProviderKind::Local,
            work_dir: work_dir.into(),
            nats_url: None,
            job_duration: Duration::from_millis(500),
            webhooks: true,
            deliver_twice: false,
            poll_interval_secs: 5,
            actors: Actor::ALL.to_vec(),
            cloud_failure_percent: 0,
            lab_binary: None,
            nats_nkey_seed: None,
            nats_nodes: 1,
            seed: 1,
            sweep_interval: actors::sweep::DEFAULT_INTERVAL,
            placement: Placement::Distributed,
            tenants: 3,
            start_processes: true,
            poll: true,
        }
    }
}

/// What the harness observes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Jobs queued.
    pub jobs: usize,
    /// Instances created, from the cloud simulator's (or the local provider's) create log.
    /// A job whose runner was taken by another job may need a second one, so this can
    /// exceed `jobs`.
    pub provisioned: usize,
    /// Jobs GitHub concluded `success`.
    pub completed: usize,
    /// Jobs GitHub concluded otherwise (their runner died mid-job): reported, not lost.
    pub failed: usize,
    /// Created instances that went away again, from the delete log.
    pub reaped: usize,
    /// Jobs GitHub never concluded.
    pub lost: usize,
    /// Runner processes started twice for one instance.
    pub duplicates: usize,
    /// Everything left behind: instances, GitHub runners and per-runner artefacts.
    pub leaked: usize,
    /// Instances of this controller still present (planted orphans included).
    pub leaked_instances: usize,
    /// Runners still registered in the GitHub simulator.
    pub leaked_runners: usize,
    /// Per-runner artefacts still held (GCP and AWS secrets with JIT configs).
    pub leaked_artefacts: usize,
    /// Cloud instances whose container ended without starting a runner (image model).
    pub no_runner: usize,
}

impl Summary {
    /// The run is good: every job completed once and nothing is left.
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.ok_but_reported_failures()
    }

    /// As [`Summary::ok`], but jobs GitHub reported failed (a runner killed mid-job) are
    /// allowed; the caller bounds them.
    pub fn ok_but_reported_failures(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.leaked == 0
            && self.no_runner == 0
            && self.completed + self.failed == self.jobs
            && self.reaped == self.provisioned
    }

    /// Instances created beyond one per job, in percent of the jobs.
    pub fn extra_runner_percent(&self) -> f64 {
        if self.jobs == 0 {
            return 0.0;
        }
        self.provisioned.saturating_sub(self.jobs) as f64 * 100.0 / self.jobs as f64
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "summary: jobs={} provisioned={} completed={} failed={} reaped={} lost={} duplicates={} leaked={} no_runner={}",
            self.jobs,
            self.provisioned,
            self.completed,
            self.failed,
            self.reaped,
            self.lost,
            self.duplicates,
            self.leaked,
            self.no_runner
        )?;
        if self.leaked > 0 {
            write!(
                f,
                " (instances={} github_runners={} artefacts={})",
                self.leaked_instances, self.leaked_runners, self.leaked_artefacts
            )?;
        }
        Ok(())
    }
}

/// What one look at the world found.
#[derive(Debug, Clone)]
pub struct Observation {
    pub summary: Summary,
    /// Every job concluded and nothing is left: worth a second look after the quiet period.
    pub clean: bool,
    /// One progress line.
    pub progress: String,
}

/// A running system under test.
#[derive(Debug)]
pub struct Harness {
    pub sim: GitHubSimHandle,
    pub running: Option<wiring::Running>,
    pub options: HarnessOptions,
    pub nats_url: String,
    pub config_path: PathBuf,
    pub jobs: BTreeSet<u64>,
    /// The cloud simulator, when the provider is a cloud.
    pub cloud: Option<crate::clouds::DemoCloud>,
    /// The longest delay a fault injected into the cloud simulator holds a call for; the
    /// quiet period outlasts it ([`Harness::note_fault_delay`]).
    longest_fault: std::sync::atomic::AtomicU64,
    nats: Option<shr_nats::NatsServer>,
    cluster: Option<shr_nats::NatsCluster>,
    listener_port: u16,
    /// The tenants of the agents placement, each with its own cloud.
    pub tenants: Vec<TenantSetup>,
    /// The tenant of each job queued by [`Harness::queue_tenant_jobs`].
    pub job_tenant: BTreeMap<u64, String>,
    /// The configuration files of the centralized and agents placements' `shr run`
    /// processes: (process name, file).
    pub process_configs: Vec<(String, PathBuf)>,
    /// The `shr run` processes of the centralized and agents placements.
    pub children: Children,
}

fn write_secret(dir: &Path, name: &str) -> anyhow::Result<(PathBuf, String)> {
    let value = format!("{name}-{}", uuid::Uuid::new_v4().simple());
    let path = dir.join(name);
    std::fs::write(&path, &value)?;
    Ok((path, value))
}

struct ConfigInputs<'a> {
    /// The cloud provider's section, when the provider is a cloud simulator.
    cloud_toml: Option<String>,
    nats_url: &'a str,
    webhook_port: u16,
    api_url: &'a str,
    pat: &'a Path,
    hook: &'a Path,
}

fn config_text(o: &HarnessOptions, i: &ConfigInputs<'_>) -> String {
    let detection = if o.webhooks { "webhook+poll" } else { "poll" };
    // 2 vCPU / 2 GiB is a shape every cloud accepts, and so are the demo's label sizes on it.
    // The local provider runs the lab's runner (passed to the wiring, not configured): only
    // the local demo has that section, so `shr run` processes (the chaos suite) need none.
    let (sizes, local) = if o.provider == ProviderKind::Local {
        ("", format!("[tenants.{TENANT}.providers.local]\n"))
    } else {
        ("cpu = 2\nmemory = 2\n", String::new())
    };
    let cloud = i.cloud_toml.clone().unwrap_or_default();
    // No actors in this process: the file still names them all (a configuration must name
    // one), as the template for `config_for_actors`; `start_actors` runs none.
    let listed: &[Actor] = if o.actors.is_empty() {
        &Actor::ALL
    } else {
        &o.actors
    };
    let actors: Vec<String> = listed.iter().map(|a| format!("\"{}\"", a.name())).collect();
    let seed = o.nats_nkey_seed.as_ref().map_or(String::new(), |path| {
        format!("nats_nkey_seed = \"file:{}\"\n", path.display())
    });
    // A cluster: the first node as `nats_url`, the others as `nats_servers`, state on 3.
    let mut urls = i.nats_url.split(',');
    let first = urls.next().unwrap_or_default();
    let others: Vec<String> = urls.map(|u| format!("\"{u}\"")).collect();
    let cluster = if others.is_empty() {
        String::new()
    } else {
        format!(
            "nats_servers = [{}]\nnats_replicas = {}\n",
            others.join(", "),
            (others.len() + 1).min(3)
        )
    };
    format!(
        r#"# Generated by the lab harness (`shr-lab demo`).
[controller]
id = "{CONTROLLER_ID}"
nats_url = "{first}"
{cluster}work_dir = "{work}"
actors = [{actors}]
{seed}
[webhook]
listen = "127.0.0.1:{webhook_port}"
path = "/webhook"
secret = "file:{hook}"

[tenants.{TENANT}]
charge_labels = ["demo-team"]

[tenants.{TENANT}.defaults]
provider = "{provider}"
{sizes}
{local}
{cloud}

[[registrations]]
name = "{REGISTRATION}"
tenant = "{TENANT}"
scope = "org"
url = "https://github.com/demo-org"
api_url = "{api_url}"
auth = {{ pat = "file:{pat}" }}
labels = ["serverless-hosted-runner"]
detection = "{detection}"
poll_interval_secs = {poll}
jit_per_minute = 6000

[registrations.limits]
max_cpu = 4
max_memory = 8
max_attempts = 5
# What `vsw-`, `sg-` and `subnet-` labels may ask for: `runners-b` names a subnet on the
# clouds that name them (Azure, GCP), `0e1f2a3b` is the AWS simulator's second subnet id
# (label `subnet-0e1f2a3b`).
allowed_vswitches = ["vsw-demo2"]
allowed_security_groups = ["sg-demo2"]
allowed_subnets = ["runners-b", "0e1f2a3b"]
"#,
        webhook_port = i.webhook_port,
        api_url = i.api_url,
        work = o.work_dir.display(),
        actors = actors.join(", "),
        provider = o.provider,
        hook = i.hook.display(),
        pat = i.pat.display(),
        poll = o.poll_interval_secs,
    )
}

impl Harness {
    /// Starts NATS (unless given), the GitHub simulator and the configured actors.
    pub async fn start(options: HarnessOptions) -> anyhow::Result<Harness> {
        if options.work_dir.exists() {
            std::fs::remove_dir_all(&options.work_dir)
                .with_context(|| format!("clearing {}", options.work_dir.display()))?;
        }
        let secrets = options.work_dir.join("secrets");
        std::fs::create_dir_all(&secrets)?;
        let options = HarnessOptions {
            work_dir: std::fs::canonicalize(&options.work_dir)?,
            ..options
        };
        let mut cluster = None;
        let mut options = options;
        let tenant_names = match options.placement {
            Placement::Agents => placement::tenant_names(options.tenants),
            _ => Vec::new(),
        };
        if options.placement != Placement::Distributed {
            anyhow::ensure!(
                options.provider != ProviderKind::Local,
                "the {} placement needs a cloud provider (its simulator's create log is what the \
                 demo reads)",
                options.placement
            );
        }
        // The agents placement: the shipped security configuration with fresh identities; this
        // process observes as `central` and runs no actor.
        let keys = options.work_dir.join("nats-keys");
        let server_config = if options.placement == Placement::Agents {
            anyhow::ensure!(
                options.nats_url.is_none(),
                "the agents placement starts its own nats-server (fresh identities)"
            );
            options.nats_nkey_seed = Some(shr_nats::security::seed_path(
                &keys,
                &shr_nats::security::Role::Central,
            ));
            options.actors.clear();
            Some(placement::write_nats_security(&keys, &tenant_names)?)
        } else {
            None
        };
        if options.placement == Placement::Centralized {
            options.actors = vec![Actor::Webhook, Actor::Poller, Actor::Scheduler];
        }
        let (nats_url, nats) = match &options.nats_url {
            Some(url) => (url.clone(), None),
            None if options.nats_nodes > 1 => {
                // The agents placement: every node includes the same generated accounts.
                let accounts = server_config.as_ref().map(|_| keys.join("accounts.conf"));
                let started =
                    shr_nats::NatsCluster::start(options.nats_nodes, accounts.as_deref()).await?;
                let url = started.url();
                cluster = Some(started);
                (url, None)
            }
            None => {
                let server = shr_nats::NatsServer::start(shr_nats::ServerOptions {
                    store_dir: Some(options.work_dir.join("nats")),
                    config: server_config,
                    // Ctrl-C on a held demo reaches the demo only, which stops NATS last.
                    own_process_group: true,
                    ..Default::default()
                })
                .await?;
                (server.url(), Some(server))
            }
        };
        let (pat_path, pat) = write_secret(&secrets, "github-token")?;
        let (hook_path, hook) = write_secret(&secrets, "webhook-secret")?;
        let mut tokens = vec![secrecy::SecretString::from(pat)];
        let mut tenant_pats = Vec::new();
        for tenant in &tenant_names {
            let dir = secrets.join(tenant);
            std::fs::create_dir_all(&dir)?;
            let (path, token) = write_secret(&dir, "github-token")?;
            tokens.push(token.into());
            tenant_pats.push(path);
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let webhook_port = listener.local_addr()?.port();
        let sim = GitHubSim::start(
            SimConfig {
                tokens,
                webhook: Some(WebhookTarget {
                    url: format!("http://127.0.0.1:{webhook_port}/webhook"),
                    secret: hook.into(),
                }),
                job_duration: options.job_duration,
                jit_per_minute: Some(6000),
                // The demo is about throughput; the client's rate-limit handling has its own tests.
                rate_limit: 100_000,
                repos: vec![
                    "demo-org/app".into(),
                    "demo-org/lib".into(),
                    placement::SHARED_REPO.into(),
                ],
                ..SimConfig::default()
            },
            "127.0.0.1:0".parse()?,
        )
        .await?;
        sim.set_webhooks(WebhookSettings {
            enabled: Some(options.webhooks),
            deliver_twice: Some(options.deliver_twice),
            ..Default::default()
        });
        let runner = runner_program(&options)?;
        let cloud = match options.provider {
            ProviderKind::Local => None,
            _ if options.placement == Placement::Agents => None,
            kind => Some(
                crate::clouds::start_demo_cloud(
                    kind,
                    &secrets,
                    runner.program.clone(),
                    runner.args.clone(),
                    options.cloud_failure_percent,
                    options.seed,
                )
                .await?,
            ),
        };
        // Each tenant's own cloud account, GitHub token and JIT key pair.
        let mut tenants = Vec::new();
        for (name, pat) in tenant_names.iter().zip(tenant_pats) {
            let dir = secrets.join(name);
            let cloud = crate::clouds::start_demo_cloud(
                options.provider,
                &dir.join("cloud"),
                runner.program.clone(),
                runner.args.clone(),
                options.cloud_failure_percent,
                // Each tenant's cloud its own failure draws, all from the run's seed.
                options.seed.wrapping_add(tenants.len() as u64 + 1),
            )
            .await?;
            let key = bus_schema::JitPrivateKey::generate();
            let jit_private_key = dir.join("jit.key");
            shr::keys_cmd::write_private_key(&jit_private_key, &key)?;
            tenants.push(TenantSetup {
                name: name.clone(),
                pat,
                jit_private_key,
                jit_public_key: key.public_key().to_string(),
                cloud,
            });
        }
        let config_path = options.work_dir.join("demo.toml");
        let inputs = ConfigInputs {
            cloud_toml: cloud.as_ref().map(|c| c.provider_toml(TENANT)),
            nats_url: &nats_url,
            webhook_port,
            api_url: &sim.base_url(),
            pat: &pat_path,
            hook: &hook_path,
        };
        let detection = match (options.webhooks, options.poll) {
            (true, true) => "webhook+poll",
            (true, false) => "webhook",
            (false, _) => "poll",
        };
        let webhook_toml = format!(
            "[webhook]\nlisten = \"127.0.0.1:{webhook_port}\"\npath = \"/webhook\"\nsecret = \"file:{}\"\n\n",
            hook_path.display()
        );
        let mut agent_configs = Vec::new();
        if options.placement == Placement::Agents {
            // This process's file is the central one (it runs no actor of it).
            let seed = options.nats_nkey_seed.clone().unwrap_or_default();
            let central = placement::controller_toml(
                CONTROLLER_ID,
                &nats_url,
                &options.work_dir,
                &[Actor::Webhook, Actor::Poller, Actor::Scheduler],
                None,
                &seed,
            ) + &webhook_toml
                + &placement::tenants_toml(
                    &tenants,
                    None,
                    &sim.base_url(),
                    &options.work_dir.join("central-holds-no-cloud-secret"),
                    detection,
                    options.poll_interval_secs,
                );
            std::fs::write(&config_path, central)?;
            agent_configs = placement::write_agents_configs(
                &options.work_dir.join("processes"),
                &options.work_dir,
                CONTROLLER_ID,
                &nats_url,
                &keys,
                &webhook_toml,
                &tenants,
                &sim.base_url(),
                detection,
                options.poll_interval_secs,
            )?;
        } else {
            let mut text = config_text(&options, &inputs);
            if options.placement == Placement::Centralized {
                // Scheduler and provisioner in two processes: seal with a key pair the
                // operator holds (an all-in-one process makes one for itself).
                let key = bus_schema::JitPrivateKey::generate();
                let path = secrets.join("jit.key");
                shr::keys_cmd::write_private_key(&path, &key)?;
                let anchor = "charge_labels = [\"demo-team\"]\n";
                text = text.replacen(
                    anchor,
                    &format!(
                        "{anchor}jit_public_key = \"{}\"\njit_private_key = \"file:{}\"\n",
                        key.public_key(),
                        path.display()
                    ),
                    1,
                );
            }
            std::fs::write(&config_path, text)?;
        }
        let listener = (options.placement != Placement::Agents).then_some(listener);
        let mut harness = Harness {
            sim,
            running: None,
            options,
            nats_url,
            config_path,
            jobs: BTreeSet::new(),
            cloud,
            longest_fault: std::sync::atomic::AtomicU64::new(0),
            nats,
            cluster,
            listener_port: webhook_port,
            tenants,
            job_tenant: BTreeMap::new(),
            process_configs: Vec::new(),
            children: Children::default(),
        };
        harness.start_actors(listener).await?;
        if harness.options.placement == Placement::Centralized {
            let path = harness.options.work_dir.join("provisioner-reaper.toml");
            harness.config_for_actors(&[Actor::Provisioner, Actor::Reaper], &path)?;
            agent_configs.push(("provisioner-reaper".into(), path));
        }
        harness.process_configs = agent_configs.clone();
        if !agent_configs.is_empty() && harness.options.start_processes {
            let bin = bins::product_binary()?;
            let logs = harness.options.work_dir.join("logs");
            for (name, config) in &agent_configs {
                harness.children.spawn(&bin, name, config, &logs)?;
            }
        }
        Ok(harness)
    }

    /// (Re)starts the actors from the generated configuration.
    pub async fn start_actors(
        &mut self,
        listener: Option<std::net::TcpListener>,
    ) -> anyhow::Result<()> {
        let config = match registration::Config::load(&self.config_path, &::clouds::Registry) {
            Ok(mut config) => {
                if self.options.actors.is_empty() {
                    config.controller.actors.clear();
                }
                Arc::new(config)
            }
            Err(errors) => anyhow::bail!("generated config is invalid:\n{errors}"),
        };
        let listener = match listener {
            Some(l) => Some(l),
            None if config.runs(Actor::Webhook) => Some(std::net::TcpListener::bind((
                "127.0.0.1",
                self.listener_port,
            ))?),
            None => None,
        };
        self.running = Some(
            wiring::start(
                config,
                wiring::StartOptions {
                    nats_url: self.nats_url.clone(),
                    holder_id: shr::holder_id(),
                    work_dir: self.options.work_dir.clone(),
                    local_runner: Some(runner_program(&self.options)?),
                    webhook_listener: listener,
                    sweep_interval: self.options.sweep_interval,
                },
            )
            .await?,
        );
        Ok(())
    }

    /// Stops the actors (the simulators and NATS keep running).
    pub async fn stop_actors(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    /// Queues `n` jobs cycling through `label_sets`, alternating two repositories.
    pub fn queue_jobs(&mut self, n: usize, label_sets: &[&[&str]]) -> Vec<u64> {
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let labels = label_sets[i % label_sets.len()];
            let repo = if i % 2 == 0 {
                "demo-org/app"
            } else {
                "demo-org/lib"
            };
            let queued = self.sim.queue_job(NewJob {
                repo: repo.into(),
                labels: labels.iter().map(|l| (*l).to_owned()).collect(),
                name: Some(format!("job-{}", self.jobs.len())),
                run_id: None,
            });
            self.jobs.insert(queued.job_id);
            ids.push(queued.job_id);
        }
        ids
    }

    fn ctx(&self) -> anyhow::Result<&actors::Context> {
        self.running
            .as_ref()
            .map(|r| &r.ctx)
            .context("actors are not running")
    }

    /// Every runner record.
    pub async fn runner_records(&self) -> anyhow::Result<Vec<RunnerRecord>> {
        let ctx = self.ctx()?;
        let mut out = Vec::new();
        for key in ctx.runners.names().await? {
            if let Some((rec, _)) = ctx.runners.get(&key).await? {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// The job record of a simulator job.
    pub async fn job_record(&self, job_id: u64) -> anyhow::Result<Option<JobRecord>> {
        let key = bus_schema::subject::job_key(TENANT, REGISTRATION, job_id)?;
        Ok(self.ctx()?.jobs.get(&key).await?.map(|(r, _)| r))
    }

    /// What the outside world shows now: the GitHub simulator's jobs and runners, the create
    /// and delete logs, the instances and artefacts still there. The controller's records
    /// (read when the actors run here) only go into the progress line.
    pub async fn observe(&self) -> anyhow::Result<Observation> {
        let state = self.sim.state();
        let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
        let (mut completed, mut failed) = (0, 0);
        for job in state.jobs.iter().filter(|j| self.jobs.contains(&j.id)) {
            *by_status.entry(job.status.as_str()).or_default() += 1;
            if job.status == JobStatus::Completed {
                match job.conclusion {
                    Some(c) if c.as_str() == "success" => completed += 1,
                    _ => failed += 1,
                }
            }
        }
        let mut world = match &self.cloud {
            Some(cloud) => cloud_world(cloud),
            None => local_world(&self.options.work_dir),
        };
        // The agents placement: each tenant's own cloud.
        for t in &self.tenants {
            let more = cloud_world(&t.cloud);
            world.created.extend(more.created);
            world.deleted.extend(more.deleted);
            world.launched.extend(more.launched);
            world.live_instances += more.live_instances;
            world.artefacts += more.artefacts;
        }
        let provisioned = world.created.len();
        let reaped = matched(&world.created, &world.deleted);
        let launched = world.launched.len();
        let distinct = world.launched.iter().collect::<BTreeSet<_>>().len();
        let registered = state.runners.len();
        let leaked = world.live_instances + registered + world.artefacts;
        let summary = Summary {
            jobs: self.jobs.len(),
            provisioned,
            completed,
            failed,
            reaped,
            lost: self.jobs.len() - completed - failed,
            duplicates: launched - distinct,
            leaked,
            leaked_instances: world.live_instances,
            leaked_runners: registered,
            leaked_artefacts: world.artefacts,
            no_runner: self
                .cloud
                .as_ref()
                .map_or(0, crate::clouds::DemoCloud::exited_without_runner)
                + (self.tenants.iter())
                    .map(|t| t.cloud.exited_without_runner())
                    .sum::<usize>(),
        };
        let clean = summary.lost == 0 && leaked == 0;
        let records = match self.record_states().await {
            Ok(states) => format!("{states:?}"),
            Err(_) => "-".to_owned(),
        };
        let budget = self
            .running
            .as_ref()
            .and_then(|r| {
                r.ctx
                    .live
                    .snapshot()
                    .github
                    .values()
                    .filter_map(|g| g.rate_budget())
                    .map(|b| b.remaining)
                    .min()
            })
            .map_or_else(|| "-".to_owned(), |r| r.to_string());
        let progress = format!(
            "jobs {by_status:?} | records {records} | created={provisioned} deleted={reaped} live={} artefacts={} | github runners={registered} | api budget={budget}",
            world.live_instances, world.artefacts
        );
        Ok(Observation {
            summary,
            clean,
            progress,
        })
    }

    /// Runner records by state, for the progress line.
    async fn record_states(&self) -> anyhow::Result<BTreeMap<String, usize>> {
        let mut states = BTreeMap::new();
        for r in self.runner_records().await? {
            *states
                .entry(format!("{:?}", r.state).to_lowercase())
                .or_default() += 1;
        }
        Ok(states)
    }

    /// [`Harness::observe`] as (summary, clean, progress).
    pub async fn measure(&self) -> anyhow::Result<(Summary, bool, String)> {
        let o = self.observe().await?;
        Ok((o.summary, o.clean, o.progress))
    }

    /// Records that a fault may hold a cloud call for `delay`; the quiet period outlasts it.
    pub fn note_fault_delay(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.longest_fault
            .fetch_max(millis, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long nothing may change before an observation is trusted: longer than the
    /// longest delay after which anything in the system retries: the consumers' redelivery
    /// backoff at its cap and their ack wait, the reaper's create retry window, and the
    /// longest fault injected into the cloud simulator.
    pub fn quiet_period(&self) -> Duration {
        let fault = Duration::from_millis(
            self.longest_fault
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        let longest = [
            actors::consume::backoff(i64::MAX),
            actors::consume::ACK_WAIT,
            actors::reaper::CREATE_RETRY_WINDOW,
            fault,
        ]
        .into_iter()
        .max()
        .unwrap_or_default();
        longest + QUIET_MARGIN
    }

    /// Observes until the world is clean (or `timeout` passes), then observes again over a
    /// quiet period ([`Harness::quiet_period`]); returns the summary only when nothing changed
    /// in between. A change sends it back to waiting; past the deadline, a change is an
    /// error naming both observations. Prints progress once a second when `print` is set.
    pub async fn wait_settled(&self, timeout: Duration, print: bool) -> anyhow::Result<Summary> {
        self.settle(Instant::now() + timeout, print, || Ok(()))
            .await
    }

    /// [`Harness::wait_settled`] with a deadline, calling `tend` between observations (the
    /// chaos suite restarts role processes there). An observation that fails (NATS down) is
    /// retried until the deadline.
    pub async fn settle(
        &self,
        deadline: Instant,
        print: bool,
        mut tend: impl FnMut() -> anyhow::Result<()>,
    ) -> anyhow::Result<Summary> {
        let started = Instant::now();
        let mut last_print: Option<Instant> = None;
        let mut print_line = |progress: &str, force: bool| {
            let due = last_print.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if print && (due || force) {
                println!("[{:>6.1}s] {progress}", started.elapsed().as_secs_f64());
                last_print = Some(Instant::now());
            }
        };
        loop {
            tend()?;
            let first = match self.observe().await {
                Ok(o) => o,
                Err(error) if Instant::now() >= deadline => {
                    return Err(error.context("observing the run"));
                }
                Err(error) => {
                    print_line(&format!("observing failed (will retry): {error:#}"), true);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            };
            print_line(&first.progress, first.clean);
            let late = Instant::now() >= deadline;
            if !first.clean && !late {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            // A second look after the quiet period; any change before it ends sends us back.
            let quiet = self.quiet_period();
            print_line(
                &format!(
                    "{}; observing again over a {:.0}s quiet period",
                    if first.clean {
                        "settled"
                    } else {
                        "deadline passed unsettled"
                    },
                    quiet.as_secs_f64()
                ),
                true,
            );
            let quiet_end = Instant::now() + quiet;
            let mut changed = None;
            while Instant::now() < quiet_end {
                tokio::time::sleep(Duration::from_millis(500)).await;
                tend()?;
                let Ok(again) = self.observe().await else {
                    continue;
                };
                print_line(&format!("quiet period | {}", again.progress), false);
                if again.summary != first.summary {
                    changed = Some(again);
                    break;
                }
            }
            match changed {
                None => return Ok(first.summary),
                Some(again) if late => anyhow::bail!(
                    "the run did not settle: past the deadline, the world still changed within \
                     the {:.0}s quiet period\n  before: {}\n  after:  {}",
                    quiet.as_secs_f64(),
                    first.summary,
                    again.summary
                ),
                Some(again) => print_line(
                    &format!(
                        "changed during the quiet period ({}), waiting again",
                        again.summary
                    ),
                    true,
                ),
            }
        }
    }

    /// Describes each job that did not complete, from its records.
    pub async fn explain_lost(&self) -> anyhow::Result<String> {
        let mut out = String::new();
        let js = &self.ctx()?.bus.js;
        // The scheduler's consumer: a stalled one shows as pending or unacked messages.
        let durable = bus_schema::subject::SCHEDULER_CONSUMER;
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = js
            .get_stream(bus_schema::subject::JOBS_STREAM)
            .await?
            .get_consumer(durable)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let info = consumer.info().await?;
        out.push_str(&format!(
            "consumer {durable}: pending={} ack_pending={} redelivered={} waiting={} delivered={:?} ack_floor={:?}\n",
            info.num_pending, info.num_ack_pending, info.num_redelivered, info.num_waiting, info.delivered, info.ack_floor
        ));
        let state = self.sim.state();
        for job in state
            .jobs
            .iter()
            .filter(|j| self.jobs.contains(&j.id) && j.status != JobStatus::Completed)
        {
            let record = self.job_record(job.id).await?;
            out.push_str(&format!(
                "lost job {} labels {:?} status {}: {:?}\n",
                job.id,
                job.labels,
                job.status.as_str(),
                record.as_ref().map(|r| (r.state, r.attempts))
            ));
            for name in record.map(|r| r.runners).unwrap_or_default() {
                let rec = self.ctx()?.runners.get(&name).await?.map(|(r, _)| r);
                out.push_str(&format!(
                    "  runner {name}: {:?}\n",
                    rec.map(|r| (r.state, r.job_id, r.ran_job_id))
                ));
                // What GitHub says the runner did, and what we recorded for that job.
                let ran = state
                    .jobs
                    .iter()
                    .find(|j| j.runner_name.as_deref() == Some(name.as_str()));
                if let Some(other) = ran {
                    let other_rec = self.job_record(other.id).await?;
                    out.push_str(&format!(
                        "    github: it ran job {} ({}); our record of that job: {:?}\n",
                        other.id,
                        other.status.as_str(),
                        other_rec.map(|r| (r.state, r.ran_on, r.runners))
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Kills node `index` of the NATS cluster (`kill -9`); it stays down until
    /// [`Harness::restart_nats_node`].
    pub async fn kill_nats_node(&mut self, index: usize) -> anyhow::Result<()> {
        let cluster = (self.cluster.as_mut()).context("the harness runs no NATS cluster")?;
        cluster.kill(index).await?;
        Ok(())
    }

    /// Starts node `index` of the NATS cluster again on its port and store.
    pub async fn restart_nats_node(&mut self, index: usize) -> anyhow::Result<()> {
        let cluster = (self.cluster.as_mut()).context("the harness runs no NATS cluster")?;
        cluster.restart(index).await?;
        Ok(())
    }

    /// Whether the harness runs a NATS cluster.
    pub fn nats_nodes(&self) -> usize {
        self.cluster.as_ref().map_or(1, shr_nats::NatsCluster::len)
    }

    /// Registers a runner named `name` in the GitHub simulator behind the system's back, the
    /// way anyone holding the PAT could (a JIT config for the organization); it never
    /// connects. The summary must count it as leaked.
    pub async fn plant_stray_runner(&self, name: &str) -> anyhow::Result<()> {
        let pat = std::fs::read_to_string(self.options.work_dir.join("secrets/github-token"))
            .context("reading the harness's PAT")?;
        let org = REGISTRATION;
        let url = format!(
            "{}/orgs/{org}/actions/runners/generate-jitconfig",
            self.sim.base_url().trim_end_matches('/')
        );
        let response = reqwest::Client::new()
            .post(url)
            .bearer_auth(pat.trim())
            .header("accept", "application/vnd.github+json")
            .header("user-agent", "shr-lab")
            .json(&serde_json::json!({
                "name": name,
                "runner_group_id": 1,
                "labels": ["serverless-hosted-runner"],
            }))
            .send()
            .await
            .context("registering a stray runner")?;
        anyhow::ensure!(
            response.status().is_success(),
            "registering a stray runner: {}",
            response.status()
        );
        Ok(())
    }

    /// Kills the NATS server (`kill -9`) and starts it again on the same port and store.
    pub async fn restart_nats(&mut self) -> anyhow::Result<()> {
        let server = self
            .nats
            .as_mut()
            .context("the harness did not start this NATS server")?;
        server.restart().await?;
        Ok(())
    }

    /// The generated configuration file with `[controller] actors` replaced, for running
    /// some actors in another process (`shr run --config`).
    pub fn config_for_actors(&self, actors: &[Actor], path: &Path) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(&self.config_path)?;
        let list: Vec<String> = actors.iter().map(|a| format!("\"{}\"", a.name())).collect();
        let replaced: Vec<String> = text
            .lines()
            .map(|line| {
                if line.starts_with("actors = ") {
                    format!("actors = [{}]", list.join(", "))
                } else {
                    line.to_owned()
                }
            })
            .collect();
        std::fs::write(path, replaced.join("\n") + "\n")?;
        Ok(())
    }

    /// Queues `n` jobs of the agents placement's tenants, in turn, on the repository they
    /// share: each with its tenant's label in place of `serverless-hosted-runner` in the
    /// label sets, cycled per tenant. Records each job's tenant in [`Harness::job_tenant`].
    pub fn queue_tenant_jobs(&mut self, n: usize, label_sets: &[&[&str]]) -> Vec<u64> {
        let names: Vec<String> = self.tenants.iter().map(|t| t.name.clone()).collect();
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let Some(tenant) = names.get(i % names.len().max(1)) else {
                break;
            };
            let own = placement::tenant_label(tenant);
            let labels = label_sets[(i / names.len()) % label_sets.len()]
                .iter()
                .map(|l| {
                    if *l == "serverless-hosted-runner" {
                        own.clone()
                    } else {
                        (*l).to_owned()
                    }
                })
                .collect();
            let queued = self.sim.queue_job(NewJob {
                repo: placement::SHARED_REPO.into(),
                labels,
                name: Some(format!("job-{}", self.jobs.len())),
                run_id: None,
            });
            self.jobs.insert(queued.job_id);
            self.job_tenant.insert(queued.job_id, tenant.clone());
            ids.push(queued.job_id);
        }
        ids
    }

    /// [`placement::tenant_creates`] for the jobs of [`Harness::queue_tenant_jobs`]: the
    /// GitHub simulator says which runner each job ran on, each tenant's cloud simulator
    /// which runners it created.
    pub fn tenant_creates(&self) -> placement::TenantCreates {
        let launched = (self.tenants.iter())
            .map(|t| (t.name.clone(), t.cloud.launched()))
            .collect();
        let ran_on = (self.sim.state().jobs.iter())
            .filter_map(|j| Some((j.id, j.runner_name.clone()?)))
            .collect();
        placement::tenant_creates(&self.job_tenant, &launched, &ran_on)
    }

    /// Stops everything.
    pub async fn stop(mut self) {
        self.children.stop(Duration::from_secs(10)).await;
        self.stop_actors().await;
        drop(self.nats.take());
        drop(self.cluster.take());
    }
}

/// The program runners run: the lab binary's `sim runner`.
pub fn runner_program(options: &HarnessOptions) -> anyhow::Result<wiring::LocalRunner> {
    let program = match &options.lab_binary {
        Some(path) => path.clone(),
        None => bins::lab_binary()?,
    };
    Ok(wiring::LocalRunner {
        program,
        args: vec!["sim".into(), "runner".into()],
    })
}

/// A quiet period is this much longer than the longest retry delay.
const QUIET_MARGIN: Duration = Duration::from_secs(2);

/// What the cloud (or the local provider's state directory) shows.
#[derive(Debug, Default)]
struct CloudWorld {
    created: Vec<String>,
    deleted: Vec<String>,
    live_instances: usize,
    artefacts: usize,
    launched: Vec<String>,
}

/// How many entries of `deleted` match an entry of `created` (as multisets): deletes of
/// instances nobody created through the API (planted orphans) do not count.
fn matched(created: &[String], deleted: &[String]) -> usize {
    let mut left: BTreeMap<&str, usize> = BTreeMap::new();
    for name in created {
        *left.entry(name.as_str()).or_default() += 1;
    }
    deleted
        .iter()
        .filter(|name| match left.get_mut(name.as_str()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        })
        .count()
}

/// What one cloud simulator shows.
fn cloud_world(cloud: &crate::clouds::DemoCloud) -> CloudWorld {
    CloudWorld {
        created: cloud.created(),
        deleted: cloud.deleted(),
        live_instances: cloud.live_instances_of(CONTROLLER_ID),
        artefacts: cloud.live_artefacts_of(CONTROLLER_ID),
        launched: cloud.launched(),
    }
}

/// The local provider's state directories (`<work>/local/<tenant>/`), read from disk: the
/// create log (one line per process started), the delete log, and the instance files still
/// there that carry this controller's tag.
fn local_world(work_dir: &Path) -> CloudWorld {
    let mut world = CloudWorld::default();
    let Ok(tenants) = std::fs::read_dir(work_dir.join("local")) else {
        return world;
    };
    let lines = |path: PathBuf| -> Vec<String> {
        std::fs::read_to_string(path)
            .map(|text| text.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    for tenant in tenants.flatten() {
        let dir = tenant.path();
        world.created.extend(lines(dir.join("created.log")));
        world.deleted.extend(lines(dir.join("deleted.log")));
        let Ok(instances) = std::fs::read_dir(dir.join("instances")) else {
            continue;
        };
        for entry in instances.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let ours = serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| {
                v["tags"][providers::tags::CONTROLLER].as_str() == Some(CONTROLLER_ID)
            });
            world.live_instances += usize::from(ours);
        }
    }
    world.launched = world.created.clone();
    world
}
