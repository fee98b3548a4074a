//! A GitHub simulator: the REST subset this project uses, webhooks, and job assignment to
//! runners, served by axum on a local address.
//!
//! REST (GitHub's JSON shapes, `x-ratelimit-*` headers on every response, `Bad credentials` 401):
//! App installation tokens (RS256 JWT checked), self-hosted runners for repo/org/enterprise
//! scopes (generate-jitconfig with 409 on a taken name and 422 on missing fields, list with
//! pagination, get, delete), workflow runs (`status=` filter) and their jobs with ETag/304, one
//! job, an org's repositories, `/rate_limit`. Requests are validated against GitHub's published
//! description (`@octokit/openapi`, extracts in `simulators/vendor/github/`) and get its `422
//! Validation Failed` or `400` answers; every exchange is recorded ([`GitHubSimHandle::exchanges`])
//! so tests can hold requests and responses to that description ([`vendor`]).
//!
//! The world: queued jobs go to online runners whose labels (plus
//! [`SimConfig::implied_labels`]) cover theirs, case-insensitively; a runner is online while a [fake runner](crate::runner) holds a
//! session; an assigned job completes after [`SimConfig::job_duration`]; ephemeral runners vanish
//! after their job. `workflow_job` webhooks (queued, in_progress, completed) are signed and
//! delivered in order with retries.
//!
//! Tests drive it in process through [`GitHubSimHandle`] or over HTTP under `/_sim/`:
//! `POST /_sim/jobs`, `POST /_sim/jobs/{id}/cancel`, `GET /_sim/state`, `GET /_sim/deliveries`,
//! `POST /_sim/faults`, `POST /_sim/webhooks`, `POST /_sim/steal`.
//!
//! Caveats: one webhook target; a runner killed between two polls stays online until its next
//! poll would have come (a killed runner with a poll in flight goes offline at once and its job
//! fails).

mod admin;
mod jit;
mod limits;
mod routes;
mod shapes;
mod state;
pub mod vendor;
mod webhooks;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use limits::Fault;
pub use state::{Conclusion, Job, JobStatus, Run, Runner, SimState};
pub use webhooks::{Delivery, DeliveryStatus, MAX_ATTEMPTS, WebhookTarget, sign};

use shapes::Urls;
use state::{Effect, World};

/// A GitHub App the simulator accepts JWTs from.
#[derive(Debug, Clone)]
pub struct SimApp {
    pub app_id: u64,
    pub installation_id: u64,
    /// The App's public key (PEM), to verify RS256 JWTs.
    pub public_key_pem: String,
}

/// What the simulator accepts and how it behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Valid personal access tokens (`Authorization: Bearer …` or `token …`).
    pub tokens: Vec<SecretString>,
    /// GitHub Apps whose installations may get access tokens.
    pub apps: Vec<SimApp>,
    /// Where `workflow_job` webhooks go.
    pub webhook: Option<WebhookTarget>,
    /// How long an assigned job "runs" before it completes with success.
    pub job_duration: Duration,
    /// The secondary limit on generate-jitconfig calls per caller per minute.
    pub jit_per_minute: Option<u32>,
    /// The primary limit: requests per caller per hour.
    pub rate_limit: u32,
    /// Repositories (`owner/name`) that exist; each owner is an organization. Queuing a job for
    /// another repository creates it.
    pub repos: Vec<String>,
    /// The enterprise slug that exists.
    pub enterprise: String,
    /// Labels every runner has without registering them.
    pub implied_labels: Vec<String>,
    /// The web base for `html_url`s and `.runner`'s `gitHubUrl`.
    pub html_url: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            tokens: Vec::new(),
            apps: Vec::new(),
            webhook: None,
            job_duration: Duration::from_millis(200),
            jit_per_minute: None,
            rate_limit: 5000,
            repos: vec!["acme/app".to_owned()],
            enterprise: "acme-ent".to_owned(),
            implied_labels: vec!["self-hosted".to_owned()],
            html_url: "https://github.com".to_owned(),
        }
    }
}

/// A job to queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewJob {
    /// `owner/name`.
    pub repo: String,
    pub labels: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// Add the job to this existing run instead of a new one.
    #[serde(default)]
    pub run_id: Option<u64>,
}

/// The ids of a queued job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedJob {
    pub job_id: u64,
    pub run_id: u64,
}

/// Changes to webhook delivery; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WebhookSettings {
    pub enabled: Option<bool>,
    /// Send every delivery twice with the same delivery id.
    pub deliver_twice: Option<bool>,
    pub url: Option<String>,
    pub secret: Option<SecretString>,
}

/// Why the simulator failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("binding the GitHub simulator to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("waiting for a simulator condition: not met within {waited:?}")]
    Timeout { waited: Duration },
}

/// The GitHub simulator.
#[derive(Debug)]
pub struct GitHubSim;

/// A running simulator. Dropping it stops the server and webhook delivery.
#[derive(Debug)]
pub struct GitHubSimHandle {
    sim: Arc<Sim>,
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

/// A caller the API guard recognized: its rate-limit bucket.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) key: String,
}

/// An installation access token the simulator issued.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Issued {
    pub(crate) installation_id: u64,
    pub(crate) expires: Instant,
}

/// The shared simulator state behind the routes.
#[derive(Debug)]
pub(crate) struct Sim {
    pub(crate) config: SimConfig,
    pub(crate) urls: Urls,
    world: Mutex<World>,
    pub(crate) limits: Mutex<limits::Limits>,
    pub(crate) hooks: Arc<webhooks::Webhooks>,
    pub(crate) issued: Mutex<HashMap<String, Issued>>,
    /// Every REST exchange, in order, for the conformance tests.
    pub(crate) exchanges: Mutex<Vec<vendor::Exchange>>,
    changed: watch::Sender<u64>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl GitHubSim {
    /// Starts the simulator on `addr` (use port 0 in tests).
    pub async fn start(config: SimConfig, addr: SocketAddr) -> Result<GitHubSimHandle, SimError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let (hooks, queue) = webhooks::Webhooks::new(config.webhook.clone());
        let sim = Arc::new(Sim {
            urls: Urls {
                api: format!("http://{addr}"),
                html: config.html_url.trim_end_matches('/').to_owned(),
            },
            world: Mutex::new(World::new(&config.repos, &config.implied_labels)),
            limits: Mutex::new(limits::Limits::default()),
            hooks: hooks.clone(),
            issued: Mutex::new(HashMap::new()),
            exchanges: Mutex::new(Vec::new()),
            changed: watch::Sender::new(0),
            config,
        });
        let app = routes::router(sim.clone()).merge(admin::router(sim.clone()));
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(error = %error, "GitHub simulator stopped");
            }
        });
        let delivery = tokio::spawn(hooks.run(queue));
        tracing::info!(%addr, "GitHub simulator listening");
        Ok(GitHubSimHandle {
            sim,
            addr,
            tasks: vec![server, delivery],
        })
    }
}

impl GitHubSimHandle {
    /// The API base URL, with a trailing slash: `http://127.0.0.1:PORT/`.
    pub fn base_url(&self) -> String {
        format!("{}/", self.sim.urls.api)
    }

    /// The address the simulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues a job (webhook `queued`), assigning it at once if a runner covers it.
    pub fn queue_job(&self, job: NewJob) -> QueuedJob {
        self.sim.queue_job(job)
    }

    /// Cancels a job: completed/cancelled with a webhook. `false` if the job is unknown.
    pub fn cancel_job(&self, job_id: u64) -> bool {
        self.sim.cancel_job(job_id).is_some()
    }

    /// A snapshot of runs, jobs and runners.
    pub fn state(&self) -> SimState {
        self.sim.snapshot()
    }

    /// The webhook delivery log, in event order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.sim.hooks.log()
    }

    /// Every REST exchange so far (request and response), in order: what the client sent, to
    /// check against the vendor description ([`vendor`]).
    pub fn exchanges(&self) -> Vec<vendor::Exchange> {
        lock(&self.sim.exchanges).clone()
    }

    /// Rate-limit points spent so far, over every caller's current window (a `304` is free,
    /// as on GitHub).
    pub fn points_used(&self) -> u64 {
        lock(&self.sim.limits).used()
    }

    /// Makes the next matching REST requests fail.
    pub fn inject_fault(&self, fault: Fault) {
        lock(&self.sim.limits).add_fault(fault);
    }

    /// Switches webhook delivery, duplicate mode or target.
    pub fn set_webhooks(&self, settings: WebhookSettings) {
        self.sim.configure_webhooks(settings);
    }

    /// The next `count` assignments give the runner a decoy job (same repository and labels,
    /// queued just then) instead of the job it would have taken, which stays queued.
    pub fn steal_next(&self, count: u32) {
        self.sim.mutate(|w| {
            w.steal(count);
            ((), Vec::new())
        });
    }

    /// Polls the state and the delivery log until `check` returns `Some`, or `timeout` passes.
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&SimState, &[Delivery]) -> Option<T>,
    ) -> Result<T, SimError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = check(&self.state(), &self.deliveries()) {
                return Ok(found);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SimError::Timeout { waited: timeout });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for GitHubSimHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Sim {
    /// Reads the world without signalling a change.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut lock(&self.world))
    }

    /// Changes the world, then sends its webhooks (in order, under the lock), wakes long polls
    /// and starts job timers.
    pub(crate) fn mutate<R>(self: &Arc<Self>, f: impl FnOnce(&mut World) -> (R, Vec<Effect>)) -> R {
        let (out, timers) = {
            let mut world = lock(&self.world);
            let (out, effects) = f(&mut world);
            let mut timers = Vec::new();
            for effect in effects {
                match effect {
                    Effect::Webhook { action, job } => self.emit_job(action, &job),
                    Effect::StartTimer { job_id, runner_id } => timers.push((job_id, runner_id)),
                }
            }
            (out, timers)
        };
        self.changed.send_modify(|v| *v += 1);
        self.start_timers(timers);
        out
    }

    /// Completes each `(job, runner)` after the job duration if the runner still has the job.
    fn start_timers(self: &Arc<Self>, timers: Vec<(u64, u64)>) {
        for (job_id, runner_id) in timers {
            let sim = self.clone();
            let duration = self.config.job_duration;
            let spawned = tokio::runtime::Handle::try_current().map(|rt| {
                rt.spawn(async move {
                    tokio::time::sleep(duration).await;
                    sim.finish_job(job_id, runner_id);
                })
            });
            if spawned.is_err() {
                tracing::warn!(job_id, "no runtime to time the job");
            }
        }
    }

    fn finish_job(self: &Arc<Self>, job_id: u64, runner_id: u64) {
        self.mutate(|w| ((), w.finish_job(job_id, runner_id)));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn emit_job(&self, action: &'static str, job: &Job) {
        let owner = job.repo.split('/').next().unwrap_or_default();
        let payload = serde_json::json!({
            "action": action,
            "workflow_job": shapes::job(job, &self.urls),
            "repository": shapes::repository(&job.repo, &self.urls),
            "organization": shapes::organization(owner, &self.urls),
            "sender": {"login": "sim-user", "id": 1, "type": "User"},
        });
        self.hooks.emit("workflow_job", action, job.id, payload);
    }

    pub(crate) fn queue_job(self: &Arc<Self>, job: NewJob) -> QueuedJob {
        self.mutate(|w| {
            let (job, effects) = w.queue_job(&job.repo, job.labels, job.name, job.run_id);
            (
                QueuedJob {
                    job_id: job.id,
                    run_id: job.run_id,
                },
                effects,
            )
        })
    }

    pub(crate) fn cancel_job(self: &Arc<Self>, job_id: u64) -> Option<Job> {
        self.mutate(|w| match w.cancel_job(job_id) {
            Some(effects) => (w.job(job_id).cloned(), effects),
            None => (None, Vec::new()),
        })
    }

    pub(crate) fn snapshot(&self) -> SimState {
        self.read(|w| w.snapshot())
    }

    pub(crate) fn configure_webhooks(&self, settings: WebhookSettings) {
        self.hooks.configure(
            settings.enabled,
            settings.deliver_twice,
            settings.url,
            settings.secret,
        );
    }
}
