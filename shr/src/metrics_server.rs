//! The metrics listener every `shr run` process serves: `/metrics` (Prometheus text),
//! `/healthz`, `/readyz`, `/status.json` and `/`, a read-only status page.
//!
//! The process keeps a mirror of the job and runner buckets, fed by KV watches, so a scrape
//! never scans the store. The same mirror sees each job move to in progress, which is when
//! [`telemetry::metrics::JOB_STARTUP_SECONDS`] is observed.
//!
//! # Guarantees
//! - `/readyz` answers 200 only while the NATS connection is up, the mirror's watches run,
//!   and every durable consumer of the actors this process runs exists on the server.
//! - KV-derived gauges read the same on every process: query them from one (or with `max`).
//!
//! # Caveats
//! "Consumer bound" is checked as "the durable exists"; a consumer bound by another replica
//! of the same actor counts too.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use bus_schema::{JobRecord, JobState, RunnerRecord, RunnerState, subject};
use futures::StreamExt as _;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use registration::{Actor, Config};
use telemetry::metrics::{self as names, Labels, metric_name};
use tokio_util::sync::CancellationToken;

use crate::status::{self, Records, Snapshot};

/// `Content-Type` of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the listener reads.
#[derive(Clone)]
pub struct ServerState {
    config: Arc<Config>,
    bus: shr_nats::Bus,
    mirror: Arc<RwLock<Mirror>>,
    mirror_live: Arc<AtomicBool>,
    github: Arc<BTreeMap<String, github_client::GitHubClient>>,
    webhook: Option<Arc<actors::webhook::WebhookStats>>,
    started_at: i64,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState").finish_non_exhaustive()
    }
}

/// The job and runner buckets as last seen.
#[derive(Debug, Default)]
struct Mirror {
    jobs: BTreeMap<String, Vec<u8>>,
    job_states: BTreeMap<String, JobRecord>,
    runners: BTreeMap<String, RunnerRecord>,
    /// Startups this process saw happen, newest last, for the page's chart.
    startups: std::collections::VecDeque<status::Startup>,
}

impl Mirror {
    fn records(&self) -> Records {
        let mut out = Records::default();
        for (key, value) in &self.jobs {
            out.absorb_job_bucket(key, value);
        }
        out.runners = self.runners.values().cloned().collect();
        out
    }
}

/// A running listener.
#[derive(Debug)]
pub struct MetricsServer {
    pub addr: SocketAddr,
    tasks: tokio::task::JoinSet<()>,
}

impl MetricsServer {
    /// Waits until the listener and the mirror have stopped, which they do once the `cancel`
    /// token given to [`start`] fires (and open scrapes finish), or until `within` passes.
    /// `true` when they stopped in time; what is left is aborted.
    pub async fn stopped(mut self, within: std::time::Duration) -> bool {
        let drained = async { while self.tasks.join_next().await.is_some() {} };
        let done = tokio::time::timeout(within, drained).await.is_ok();
        if !done {
            self.tasks.shutdown().await;
        }
        done
    }
}

/// Binds `[controller] metrics_listen` (or a free port on 127.0.0.1), starts the mirror and
/// serves until `cancel` fires. `shr run` passes the actors' token
/// ([`crate::wiring::Running::cancel_token`]), so a drain stops the listener too.
pub async fn start(
    running: &crate::wiring::Running,
    cancel: CancellationToken,
) -> anyhow::Result<MetricsServer> {
    let config = running.ctx.config.clone();
    let addr = config
        .controller
        .metrics_listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics listener to {addr}"))?;
    let addr = listener.local_addr()?;
    let state = ServerState {
        config,
        bus: running.ctx.bus.clone(),
        mirror: Arc::default(),
        mirror_live: Arc::default(),
        github: running.ctx.github.clone(),
        webhook: running.webhook_stats.clone(),
        started_at: bus_schema::now_millis(),
    };
    let mut tasks = tokio::task::JoinSet::new();
    // A tenant agent or the webhook may not watch every record: no mirror, and readiness
    // does not wait for one.
    if crate::wiring::reads_all_records(&state.config) {
        tasks.spawn(run_mirror(state.clone(), cancel.clone()));
    } else {
        state.mirror_live.store(true, Ordering::Relaxed);
    }
    let app = router(state);
    tasks.spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "metrics listener stopped");
        }
    });
    tracing::info!(%addr, "metrics listening");
    Ok(MetricsServer { addr, tasks })
}

/// The routes.
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/status.json", get(status_json))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Keeps the mirror current: one watch per bucket, restarted after a failure.
async fn run_mirror(state: ServerState, cancel: CancellationToken) {
    loop {
        let watched = async {
            let mut jobs = state.bus.jobs.watch_with_history(">").await?;
            let mut runners = state.bus.runners.watch_with_history(">").await?;
            state.mirror_live.store(true, Ordering::Relaxed);
            loop {
                tokio::select! {
                    entry = jobs.next() => match entry {
                        Some(entry) => on_job_entry(&state, entry?),
                        None => return anyhow::Ok(()),
                    },
                    entry = runners.next() => match entry {
                        Some(entry) => on_runner_entry(&state, entry?),
                        None => return anyhow::Ok(()),
                    },
                }
            }
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            result = watched => {
                state.mirror_live.store(false, Ordering::Relaxed);
                if let Err(error) = result {
                    tracing::debug!(%error, "status mirror watch ended; restarting");
                }
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

fn removed(op: async_nats::jetstream::kv::Operation) -> bool {
    !matches!(op, async_nats::jetstream::kv::Operation::Put)
}

fn on_job_entry(state: &ServerState, entry: async_nats::jetstream::kv::Entry) {
    let mut mirror = state
        .mirror
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if removed(entry.operation) {
        mirror.jobs.remove(&entry.key);
        mirror.job_states.remove(&entry.key);
        return;
    }
    if entry.key.split('.').count() == 3
        && let Ok(job) = bus_schema::decode::<JobRecord>(&entry.value)
    {
        let was = mirror.job_states.get(&entry.key).map(|j| j.state);
        if matches!(was, Some(JobState::Queued | JobState::Provisioning))
            && job.state == JobState::InProgress
        {
            let secs = job.updated_at.saturating_sub(job.created_at).max(0) as f64 / 1000.0;
            let charge = status::registration_charge(&state.config, &job.registration);
            telemetry::metrics::global().job_started(&job.tenant, &charge, secs);
            mirror.startups.push_back(status::Startup {
                job_id: job.job.job_id,
                started_at: job.updated_at,
                secs,
            });
            while mirror.startups.len() > status::STARTUP_SAMPLES {
                mirror.startups.pop_front();
            }
        }
        mirror.job_states.insert(entry.key.clone(), job);
    }
    mirror.jobs.insert(entry.key, entry.value.to_vec());
}

fn on_runner_entry(state: &ServerState, entry: async_nats::jetstream::kv::Entry) {
    let mut mirror = state
        .mirror
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if removed(entry.operation) {
        mirror.runners.remove(&entry.key);
    } else if let Ok(rec) = bus_schema::decode::<RunnerRecord>(&entry.value) {
        mirror.runners.insert(entry.key, rec);
    }
}

impl ServerState {
    fn records(&self) -> Records {
        self.mirror
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .records()
    }

    /// The snapshot, with the startups this process saw added to those still in progress.
    fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot::build(
            &self.records(),
            Some(&self.config),
            bus_schema::now_millis(),
        );
        let seen: Vec<status::Startup> = self
            .mirror
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .startups
            .iter()
            .copied()
            .collect();
        let known: BTreeSet<u64> = snap.recent_startups.iter().map(|s| s.job_id).collect();
        snap.recent_startups
            .extend(seen.into_iter().filter(|s| !known.contains(&s.job_id)));
        snap.recent_startups
            .sort_by_key(|s| (s.started_at, s.job_id));
        let keep = snap
            .recent_startups
            .len()
            .saturating_sub(status::STARTUP_SAMPLES);
        snap.recent_startups.drain(..keep);
        snap
    }

    /// Why this process is not ready, or `None` when it is.
    async fn not_ready(&self) -> Option<String> {
        if self.bus.client.connection_state() != async_nats::connection::State::Connected {
            return Some("NATS is not connected".into());
        }
        if !self.mirror_live.load(Ordering::Relaxed) {
            return Some("the KV watches are not running".into());
        }
        for (stream, durable) in expected_consumers(&self.config) {
            // Consumer info by name only: what a tenant agent's grant allows.
            let found = async {
                let stream = self.bus.js.get_stream_no_info(stream).await.ok()?;
                stream.consumer_info(&durable).await.ok()
            };
            if found.await.is_none() {
                return Some(format!("consumer {durable} on {stream} is not bound"));
            }
        }
        None
    }
}

/// The durable consumers the actors of this process bind.
fn expected_consumers(config: &Config) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if config.runs(Actor::Scheduler) {
        out.push((subject::JOBS_STREAM, subject::SCHEDULER_CONSUMER.to_owned()));
        out.push((
            subject::RUNNER_EVENTS_STREAM,
            subject::SCHEDULER_RUNNER_EVENTS_CONSUMER.to_owned(),
        ));
    }
    for tenant in config.tenants().filter(|t| config.serves_tenant(&t.name)) {
        if config.runs(Actor::Provisioner) {
            for kind in tenant.providers.kinds() {
                if let Ok(durable) = subject::provisioner_consumer(&tenant.name, kind) {
                    out.push((subject::PROVISION_STREAM, durable));
                }
            }
        }
        if config.runs(Actor::Reaper)
            && !tenant.providers.kinds().is_empty()
            && let Ok(durable) = subject::reaper_consumer(&tenant.name)
        {
            out.push((subject::REAP_STREAM, durable));
        }
    }
    out
}

async fn readyz(State(state): State<ServerState>) -> (StatusCode, String) {
    match state.not_ready().await {
        None => (StatusCode::OK, "ready\n".into()),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

async fn status_json(State(state): State<ServerState>) -> Response {
    match serde_json::to_string_pretty(&state.snapshot()) {
        Ok(json) => ([(CONTENT_TYPE, "application/json")], json).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

async fn page(State(state): State<ServerState>) -> Html<String> {
    Html(crate::status_page::render(&state.snapshot()))
}

async fn metrics(State(state): State<ServerState>) -> Response {
    let ready = state.not_ready().await.is_none();
    let text = render_metrics(&state, ready);
    ([(CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response()
}

fn gauge_family() -> Family<Labels, Gauge> {
    Family::default()
}

fn set(family: &Family<Labels, Gauge>, labels: Labels, value: i64) {
    family.get_or_create(&labels).set(value);
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Every metric of this process as OpenMetrics text.
fn render_metrics(state: &ServerState, ready: bool) -> String {
    let mut registry = Registry::default();
    telemetry::metrics::global().register(&mut registry);
    let records = state.records();
    let now = bus_schema::now_millis();
    let allowed = status::allowed_charges(Some(&state.config));

    // Runners by tenant, provider, state, charge; every state of a seen tenant/provider.
    let runners = gauge_family();
    let pfd = gauge_family();
    let mut counts: BTreeMap<(String, String, String, String), i64> = BTreeMap::new();
    let mut seen_pairs: BTreeSet<(String, String)> = BTreeSet::new();
    for tenant in state.config.tenants() {
        for kind in tenant.providers.kinds() {
            seen_pairs.insert((tenant.name.clone(), kind.to_string()));
        }
    }
    for rec in &records.runners {
        let provider = rec.provider.to_string();
        seen_pairs.insert((rec.tenant.clone(), provider.clone()));
        *counts
            .entry((
                rec.tenant.clone(),
                provider,
                status::state_name(&rec.state),
                status::charge_label(rec, &allowed),
            ))
            .or_default() += 1;
    }
    for (tenant, provider) in &seen_pairs {
        for s in RunnerState::ALL {
            let key = (
                tenant.clone(),
                provider.clone(),
                status::state_name(&s),
                String::new(),
            );
            counts.entry(key).or_default();
        }
        let stuck = records
            .runners
            .iter()
            .filter(|r| {
                &r.tenant == tenant
                    && &r.provider.to_string() == provider
                    && r.state == RunnerState::PendingForceDelete
            })
            .count();
        set(
            &pfd,
            vec![("tenant", tenant.clone()), ("provider", provider.clone())],
            i64::try_from(stuck).unwrap_or(i64::MAX),
        );
    }
    for ((tenant, provider, state_name, charge), n) in counts {
        set(
            &runners,
            vec![
                ("tenant", tenant),
                ("provider", provider),
                ("state", state_name),
                ("charge", charge),
            ],
            n,
        );
    }
    registry.register(
        names::RUNNERS,
        "Runner records by tenant, provider, state and charge labels",
        runners,
    );
    registry.register(
        names::RUNNERS_PENDING_FORCE_DELETE,
        "Runners whose deletes keep failing: an operator should look",
        pfd,
    );

    // Jobs by state, admitted and declined.
    let jobs = gauge_family();
    let admitted = gauge_family();
    let declined = gauge_family();
    let mut job_counts: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut admitted_counts: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut declined_counts: BTreeMap<(String, String), i64> = BTreeMap::new();
    for reg in state.config.registrations() {
        admitted_counts
            .entry((reg.tenant.clone(), reg.name.clone()))
            .or_default();
        for s in JobState::ALL {
            job_counts
                .entry((reg.tenant.clone(), status::state_name(&s)))
                .or_default();
        }
    }
    for job in &records.jobs {
        *job_counts
            .entry((job.tenant.clone(), status::state_name(&job.state)))
            .or_default() += 1;
        if job.state == JobState::Declined {
            // The code, not the text: the text names the job's own labels, and a label's
            // values must come from a small fixed set.
            let reason = job
                .declined_code
                .clone()
                .unwrap_or_else(|| "unknown".into());
            *declined_counts
                .entry((job.tenant.clone(), reason))
                .or_default() += 1;
        } else {
            *admitted_counts
                .entry((job.tenant.clone(), job.registration.clone()))
                .or_default() += 1;
        }
    }
    for ((tenant, s), n) in job_counts {
        set(&jobs, vec![("tenant", tenant), ("state", s)], n);
    }
    for ((tenant, reg), n) in admitted_counts {
        set(
            &admitted,
            vec![("tenant", tenant), ("registration", reg)],
            n,
        );
    }
    for ((tenant, reason), n) in declined_counts {
        set(&declined, vec![("tenant", tenant), ("reason", reason)], n);
    }
    registry.register(names::JOBS, "Job records by tenant and state", jobs);
    registry.register(
        names::JOBS_ADMITTED,
        "Job records admitted, over the record retention",
        admitted,
    );
    registry.register(
        names::JOBS_DECLINED,
        "Job records declined by reason, over the record retention",
        declined,
    );

    let snap = Snapshot::build(&records, Some(&state.config), now);
    let oldest: Gauge = Gauge::default();
    oldest.set(
        snap.oldest_queued
            .as_ref()
            .map_or(0, |o| to_i64(o.age_secs)),
    );
    registry.register(
        names::OLDEST_QUEUED_SECONDS,
        "Age of the oldest job still waiting for a runner",
        oldest,
    );
    let last_webhook: Gauge = Gauge::default();
    last_webhook.set(snap.last_webhook_at.map_or(0, |at| at / 1000));
    registry.register(
        names::LAST_WEBHOOK_SECONDS,
        "Unix time of the last accepted webhook delivery",
        last_webhook,
    );
    let last_poll = gauge_family();
    for reg in &snap.registrations {
        if let Some(at) = reg.last_poll_at {
            set(
                &last_poll,
                vec![("registration", reg.name.clone())],
                at / 1000,
            );
        }
    }
    registry.register(
        names::LAST_POLL_SECONDS,
        "Unix time of a registration's last poll round",
        last_poll,
    );

    // GitHub: this process's requests, and the budget it last saw per credential.
    let requests: Family<Labels, prometheus_client::metrics::counter::Counter> = Family::default();
    let remaining = gauge_family();
    let limit = gauge_family();
    for (reg, client) in state.github.iter() {
        for (class, n) in client.request_counts() {
            requests
                .get_or_create(&vec![
                    ("registration", reg.clone()),
                    ("class", class.to_owned()),
                ])
                .inc_by(n);
        }
        if let Some(budget) = client.rate_budget() {
            set(
                &remaining,
                vec![("registration", reg.clone())],
                to_i64(budget.remaining),
            );
            set(
                &limit,
                vec![("registration", reg.clone())],
                to_i64(budget.limit),
            );
        }
    }
    registry.register(
        metric_name(names::GITHUB_REQUESTS),
        "GitHub REST requests by registration and endpoint class",
        requests,
    );
    registry.register(
        names::GITHUB_RATE_REMAINING,
        "Requests left in the credential's rate window",
        remaining,
    );
    registry.register(
        names::GITHUB_RATE_LIMIT,
        "The credential's rate window size",
        limit,
    );

    // Webhook deliveries, when this process runs the webhook.
    if let Some(stats) = &state.webhook {
        let deliveries: Family<Labels, prometheus_client::metrics::counter::Counter> =
            Family::default();
        for (outcome, counter) in stats.outcomes() {
            deliveries
                .get_or_create(&vec![("outcome", outcome.to_owned())])
                .inc_by(counter.load(Ordering::Relaxed));
        }
        let duplicates: prometheus_client::metrics::counter::Counter =
            prometheus_client::metrics::counter::Counter::default();
        duplicates.inc_by(stats.duplicates.load(Ordering::Relaxed));
        registry.register(
            metric_name(names::WEBHOOK_DELIVERIES),
            "GitHub webhook deliveries by outcome",
            deliveries,
        );
        registry.register(
            metric_name(names::WEBHOOK_DUPLICATES),
            "Webhook deliveries dropped as duplicates",
            duplicates,
        );
    }

    let ready_gauge: Gauge = Gauge::default();
    ready_gauge.set(i64::from(ready));
    registry.register(names::READY, "1 while this process is ready", ready_gauge);
    let info = gauge_family();
    let actors: Vec<&str> = Actor::ALL
        .into_iter()
        .filter(|a| state.config.runs(*a))
        .map(Actor::name)
        .collect();
    set(
        &info,
        vec![
            ("version", env!("CARGO_PKG_VERSION").to_owned()),
            ("actors", actors.join(",")),
        ],
        1,
    );
    registry.register(
        "shr_build_info",
        "The version and the actors of this process",
        info,
    );
    let start: Gauge = Gauge::default();
    start.set(state.started_at / 1000);
    registry.register(
        "shr_process_start_time_seconds",
        "Unix time this process started",
        start,
    );

    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        tracing::warn!(%error, "encoding metrics failed");
    }
    text
}
