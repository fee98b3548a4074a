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
# What `vsw-`, `sg-` and `subnet-` labels may ask for.
allowed_vswitches = ["vsw-demo2"]
allowed_security_groups = ["sg-demo2"]
allowed_subnets = ["runners-b"]
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
        let (nats_url, nats) = match &options.nats_url {
            Some(url) => (url.clone(), None),
            None => {
                let server = shr_nats::NatsServer::start(shr_nats::ServerOptions {
                    store_dir: Some(options.work_dir.join("nats")),
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
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let webhook_port = listener.local_addr()?.port();
        let sim = GitHubSim::start(
            SimConfig {
                tokens: vec![pat.into()],
                webhook: Some(WebhookTarget {
                    url: format!("http://127.0.0.1:{webhook_port}/webhook"),
                    secret: hook.into(),
                }),
                job_duration: options.job_duration,
                jit_per_minute: Some(6000),
                // The demo is about throughput; the client's rate-limit handling has its own tests.
                rate_limit: 100_000,
                repos: vec!["demo-org/app".into(), "demo-org/lib".into()],
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
            kind => Some(
                crate::clouds::start_demo_cloud(
                    kind,
                    &secrets,
                    runner.program,
                    runner.args,
                    options.cloud_failure_percent,
                    7,
                )
                .await?,
            ),
        };
        let config_path = options.work_dir.join("demo.toml");
        let inputs = ConfigInputs {
            cloud_toml: cloud.as_ref().map(|c| c.provider_toml(TENANT)),
            nats_url: &nats_url,
            webhook_port,
            api_url: &sim.base_url(),
            pat: &pat_path,
            hook: &hook_path,
        };
        std::fs::write(&config_path, config_text(&options, &inputs))?;
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
        };
        harness.start_actors(Some(listener)).await?;
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
        let (spawns, distinct) = match &self.cloud {
            Some(cloud) => cloud.launches(),
            None => spawn_counts(&self.options.work_dir),
        };
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
                .map_or(0, crate::clouds::DemoCloud::exited_without_runner),
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

    /// Stops everything.
    pub async fn stop(mut self) {
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
