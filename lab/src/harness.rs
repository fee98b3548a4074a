//! The whole system on one machine: a nats-server, the GitHub simulator, a cloud (the local
//! provider or a cloud simulator) and the actors, wired from a generated configuration.
//!
//! `shr-lab demo` drives it from the command line; the system tests drive it from Rust. Both read
//! the same [`Summary`], computed from what the simulators and the records say, never from
//! what the actors claim.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bins;
use anyhow::Context as _;
use bus_schema::{JobRecord, ProviderKind, RunnerRecord, RunnerState};
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
    /// Where the actors run ([`crate::placement`]); `Centralized` and `Agents` need a cloud
    /// provider and run some actors as `shr` processes.
    pub placement: Placement,
    /// How many tenants the agents placement runs.
    pub tenants: usize,
    /// The agents placement: poll as well as take webhooks (with `webhooks`); off, every
    /// job must arrive through a webhook delivery.
    pub poll: bool,
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
            placement: Placement::Distributed,
            tenants: 3,
            poll: true,
        }
    }
}

/// What the harness counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Jobs queued.
    pub jobs: usize,
    /// Runner instances created (a job whose runner was taken by another job may need a
    /// second one, so this can exceed `jobs`).
    pub provisioned: usize,
    /// Jobs the simulator ran to success.
    pub completed: usize,
    /// Instances created and deleted again.
    pub reaped: usize,
    /// Jobs not completed.
    pub lost: usize,
    /// Runner processes started twice for one runner name.
    pub duplicates: usize,
    /// Instances still present plus GitHub runners still registered.
    pub leaked: usize,
    /// Cloud instances whose container ended without starting a runner (image model).
    pub no_runner: usize,
}

impl Summary {
    /// The run is good: every job completed once and nothing is left.
    pub fn ok(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.leaked == 0
            && self.no_runner == 0
            && self.completed == self.jobs
            && self.reaped == self.provisioned
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "summary: jobs={} provisioned={} completed={} reaped={} lost={} duplicates={} leaked={} no_runner={}",
            self.jobs,
            self.provisioned,
            self.completed,
            self.reaped,
            self.lost,
            self.duplicates,
            self.leaked,
            self.no_runner
        )
    }
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
    nats: Option<shr_nats::NatsServer>,
    listener_port: u16,
    /// The tenants of the agents placement, each with its own cloud.
    pub tenants: Vec<TenantSetup>,
    /// The tenant of each job queued by [`Harness::queue_tenant_jobs`].
    pub job_tenant: BTreeMap<u64, String>,
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
    format!(
        r#"# Generated by the lab harness (`shr-lab demo`).
[controller]
id = "{CONTROLLER_ID}"
nats_url = "{nats_url}"
work_dir = "{work}"
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
        nats_url = i.nats_url,
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
                    7,
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
                7,
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
            nats,
            listener_port: webhook_port,
            tenants,
            job_tenant: BTreeMap::new(),
            children: Children::default(),
        };
        harness.start_actors(listener).await?;
        if harness.options.placement == Placement::Centralized {
            let path = harness.options.work_dir.join("provisioner-reaper.toml");
            harness.config_for_actors(&[Actor::Provisioner, Actor::Reaper], &path)?;
            agent_configs.push(("provisioner-reaper".into(), path));
        }
        if !agent_configs.is_empty() {
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
                    sweep_interval: actors::sweep::DEFAULT_INTERVAL,
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

    /// Counts what the simulators, the providers and the records say now. Returns the
    /// summary, whether everything has settled, and a progress line.
    pub async fn measure(&self) -> anyhow::Result<(Summary, bool, String)> {
        let running = self.running.as_ref().context("actors are not running")?;
        let state = self.sim.state();
        let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
        let mut completed = 0;
        for job in state.jobs.iter().filter(|j| self.jobs.contains(&j.id)) {
            *by_status.entry(job.status.as_str()).or_default() += 1;
            let success = job.conclusion.is_some_and(|c| c.as_str() == "success");
            if job.status == JobStatus::Completed && success {
                completed += 1;
            }
        }
        let runners = self.runner_records().await?;
        let mut runner_states: BTreeMap<String, usize> = BTreeMap::new();
        for r in &runners {
            *runner_states
                .entry(format!("{:?}", r.state).to_lowercase())
                .or_default() += 1;
        }
        let created = runners.iter().filter(|r| r.instance_id.is_some()).count();
        let reaped = runners
            .iter()
            .filter(|r| r.instance_id.is_some() && r.state == RunnerState::Deleted)
            .count();
        // The cloud simulator's own view when there is one (the actors may run elsewhere);
        // otherwise what the local provider lists.
        let mut live_instances = 0;
        match &self.cloud {
            Some(cloud) => live_instances = cloud.live_instances_of(CONTROLLER_ID),
            None => {
                for provider in running.providers.values() {
                    live_instances += provider.list().await.map(|l| l.len()).unwrap_or(0);
                }
            }
        }
        let (mut spawns, mut distinct) = match &self.cloud {
            Some(cloud) => cloud.launches(),
            None => spawn_counts(&self.options.work_dir),
        };
        // The agents placement: each tenant's own cloud.
        for t in &self.tenants {
            live_instances += t.cloud.live_instances_of(CONTROLLER_ID);
            let (s, d) = t.cloud.launches();
            spawns += s;
            distinct += d;
        }
        let registered = state.runners.len();
        let settled = completed == self.jobs.len()
            && runners.iter().all(|r| r.state == RunnerState::Deleted)
            && live_instances == 0
            && registered == 0;
        let summary = Summary {
            jobs: self.jobs.len(),
            provisioned: created,
            completed,
            reaped,
            lost: self.jobs.len() - completed,
            duplicates: spawns - distinct,
            leaked: live_instances + registered,
            no_runner: self
                .cloud
                .as_ref()
                .map_or(0, crate::clouds::DemoCloud::exited_without_runner)
                + (self.tenants.iter())
                    .map(|t| t.cloud.exited_without_runner())
                    .sum::<usize>(),
        };
        let budget = running
            .ctx
            .github
            .values()
            .filter_map(|g| g.rate_budget())
            .map(|b| b.remaining)
            .min();
        let budget = budget.map_or_else(|| "-".to_owned(), |r| r.to_string());
        let progress = format!(
            "jobs {by_status:?} | runners {runner_states:?} | instances live={live_instances} | github runners={registered} | api budget={budget}"
        );
        Ok((summary, settled, progress))
    }

    /// Polls [`Harness::measure`] until everything settles or `timeout` passes; prints
    /// progress once a second when `print` is set.
    pub async fn wait_settled(&self, timeout: Duration, print: bool) -> anyhow::Result<Summary> {
        let started = Instant::now();
        let mut last_print: Option<Instant> = None;
        loop {
            let (summary, settled, progress) = self.measure().await?;
            let due = last_print.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if print && (due || settled) {
                println!("[{:>6.1}s] {progress}", started.elapsed().as_secs_f64());
                last_print = Some(Instant::now());
            }
            if settled || started.elapsed() >= timeout {
                return Ok(summary);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
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

/// (processes started, distinct runner names) from the local provider's spawn logs.
fn spawn_counts(work_dir: &Path) -> (usize, usize) {
    let mut total = 0;
    let mut names = BTreeSet::new();
    let Ok(tenants) = std::fs::read_dir(work_dir.join("local")) else {
        return (0, 0);
    };
    for tenant in tenants.flatten() {
        if let Ok(text) = std::fs::read_to_string(tenant.path().join("created.log")) {
            for line in text.lines() {
                total += 1;
                names.insert(line.to_owned());
            }
        }
    }
    (total, names.len())
}
