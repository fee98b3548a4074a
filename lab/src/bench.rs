//! `shr-lab bench …`: measured numbers for the README (never timed assertions in tests).
//!
//! `shr-lab bench webhook` starts a local nats-server and the webhook router in this process and
//! sends signed `workflow_job` `queued` deliveries (GitHub's published example payload, with a
//! fresh job id and delivery id each) over HTTP/1.1 keep-alive connections:
//!
//! 1. `--count` deliveries one at a time: latency of each request (200 required);
//! 2. `--count` deliveries with `--concurrency` in flight: deliveries per second;
//! 3. `--e2e-count` deliveries one at a time, timed from sending the request until
//!    a. a durable pull consumer on the jobs stream receives the event, and
//!    b. (on a fresh nats-server, with the GitHub simulator and the webhook and scheduler
//!    actors started by [`shr::wiring::start`]) the `runner.provision` command is published.
//!
//! Bodies and signatures are made before each phase, so the sender's own work is not timed.
//! Targets for a release build: p50 ≤ 500 µs in phase 1 and ≥ 5,000 deliveries/s in phase 2.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actors::routing::{Route, Routing};
use actors::webhook::{self, WebhookState};
use anyhow::{Context as _, bail};
use bus_schema::subject::{self, JOBS_STREAM, JobEventKind};
use bus_schema::{JobEvent, ProvisionRunner};
use clap::{Args, Subcommand};
use futures::StreamExt as _;
use secrecy::SecretString;
use shr_nats::NatsServer;
use shr_nats::async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use simulators::github::{GitHubSim, SimConfig};

/// GitHub's published `workflow_job` `queued` example, the template of every delivery.
const QUEUED_TEMPLATE: &str =
    include_str!("../../actors/tests/fixtures/workflow_job.queued.payload.json");
const TENANT: &str = "bench";
const REGISTRATION: &str = "bench-org";
const REPO: &str = "bench-org/app";
const LABEL: &str = "serverless-hosted-runner";
const SECRET: &str = "bench-webhook-secret";
const PATH: &str = "/webhook";
/// How long one delivery may take to show up downstream before the bench gives up.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Signed `workflow_job` deliveries against the webhook actor and a local nats-server.
    Webhook(WebhookBench),
}

#[derive(Debug, Args)]
pub struct WebhookBench {
    /// Deliveries in phases 1 and 2.
    #[arg(long, default_value_t = 5000)]
    pub count: usize,
    /// Deliveries in flight in phase 2.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Deliveries in phase 3 (end to end, one at a time).
    #[arg(long, default_value_t = 300)]
    pub e2e_count: usize,
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Webhook(args) => webhook_bench(args).await,
    }
}

/// Every repository belongs to [`TENANT`] / [`REGISTRATION`].
struct AnyRepo;

impl Routing for AnyRepo {
    fn route(&self, _: &str, _: &str, _: Option<&str>, _: Option<&str>) -> Option<Route> {
        Some(Route {
            tenant: TENANT.into(),
            registration: REGISTRATION.into(),
        })
    }
}

/// One delivery, ready to send.
struct Prepared {
    job_id: u64,
    delivery_id: String,
    body: Vec<u8>,
    signature: String,
}

/// Makes deliveries with unique job ids and delivery ids from the fixture.
struct Deliveries {
    template: serde_json::Value,
    next_job_id: u64,
}

impl Deliveries {
    fn new() -> anyhow::Result<Self> {
        let mut template: serde_json::Value =
            serde_json::from_str(QUEUED_TEMPLATE).context("parsing the queued fixture")?;
        template["repository"]["full_name"] = REPO.into();
        template["organization"] = serde_json::json!({ "login": REGISTRATION });
        template["workflow_job"]["labels"] = serde_json::json!([LABEL]);
        Ok(Self {
            template,
            next_job_id: 5_000_000_000,
        })
    }

    fn make(&mut self, n: usize) -> anyhow::Result<Vec<Prepared>> {
        (0..n)
            .map(|_| {
                self.next_job_id += 1;
                let job_id = self.next_job_id;
                self.template["workflow_job"]["id"] = job_id.into();
                self.template["workflow_job"]["run_id"] = (job_id / 10).into();
                let body = serde_json::to_vec(&self.template)?;
                Ok(Prepared {
                    job_id,
                    delivery_id: uuid::Uuid::new_v4().to_string(),
                    signature: webhook::sign(SECRET.as_bytes(), &body),
                    body,
                })
            })
            .collect()
    }
}

/// Sends one delivery and checks for 200.
async fn send(client: &reqwest::Client, url: &str, d: &Prepared) -> anyhow::Result<()> {
    let resp = client
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-GitHub-Event", "workflow_job")
        .header("X-GitHub-Delivery", &d.delivery_id)
        .header("X-Hub-Signature-256", &d.signature)
        .body(d.body.clone())
        .send()
        .await
        .context("sending a delivery")?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status != reqwest::StatusCode::OK {
        bail!(
            "delivery {} answered {status}: {}",
            d.delivery_id,
            text.trim()
        );
    }
    Ok(())
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(64)
        .build()
        .context("building the HTTP client")
}

/// Latency percentiles of one phase.
#[derive(Debug)]
struct Row {
    phase: &'static str,
    n: usize,
    latencies: Vec<Duration>,
    rate: Option<f64>,
}

impl Row {
    fn new(phase: &'static str, mut latencies: Vec<Duration>, rate: Option<f64>) -> Self {
        latencies.sort();
        Self {
            phase,
            n: latencies.len(),
            latencies,
            rate,
        }
    }

    fn pct(&self, p: f64) -> String {
        if self.latencies.is_empty() {
            return "-".into();
        }
        let i = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[i].as_micros().to_string()
    }

    fn print(&self) {
        let rate = self.rate.map_or("-".into(), |r| format!("{r:.0}"));
        println!(
            "{:<44} {:>6} {:>8} {:>8} {:>8} {:>9} {:>9}",
            self.phase,
            self.n,
            self.pct(50.0),
            self.pct(90.0),
            self.pct(99.0),
            self.pct(100.0),
            rate
        );
    }
}

async fn webhook_bench(args: WebhookBench) -> anyhow::Result<ExitCode> {
    if args.count == 0 || args.concurrency == 0 {
        bail!("--count and --concurrency must be at least 1");
    }
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let server = NatsServer::start(Default::default()).await?;
    let nats = shr_nats::connect(&server.url()).await?;
    let bus = shr_nats::ensure_bus(&nats).await?;
    let state = WebhookState::new(SecretString::from(SECRET), bus.clone(), Arc::new(AnyRepo));
    let stats = state.stats.clone();
    let router = webhook::router(state, PATH, 1 << 20);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}{PATH}", listener.local_addr()?);
    let served = tokio::spawn(async move { axum::serve(listener, router).await });
    let client = http_client()?;
    let mut deliveries = Deliveries::new()?;
    let mut rows = Vec::new();

    // Warm-up: connections, JIT-free code paths, the stream's first blocks.
    for d in deliveries.make(50)? {
        send(&client, &url, &d).await?;
    }

    // Phase 1: one at a time.
    let batch = deliveries.make(args.count)?;
    let mut latencies = Vec::with_capacity(batch.len());
    for d in &batch {
        let t0 = Instant::now();
        send(&client, &url, d).await?;
        latencies.push(t0.elapsed());
    }
    rows.push(Row::new("1 one at a time: request → 200", latencies, None));

    // Phase 2: `concurrency` in flight.
    let batch = Arc::new(deliveries.make(args.count)?);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (batch, next, client, url) = (batch.clone(), next.clone(), client.clone(), url.clone());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(d) = batch.get(i) else {
                    return anyhow::Ok(latencies);
                };
                let t0 = Instant::now();
                send(&client, &url, d).await?;
                latencies.push(t0.elapsed());
            }
        });
    }
    let mut latencies = Vec::with_capacity(batch.len());
    while let Some(done) = workers.join_next().await {
        latencies.extend(done??);
    }
    let rate = batch.len() as f64 / started.elapsed().as_secs_f64();
    let phase2 = if args.concurrency == 8 {
        "2 8 in flight: request → 200"
    } else {
        "2 --concurrency in flight: request → 200"
    };
    rows.push(Row::new(phase2, latencies, Some(rate)));

    // Phase 3a: to a durable pull consumer on the jobs stream.
    let batch = deliveries.make(args.e2e_count)?;
    let latencies = to_consumer(&bus, &client, &url, &batch).await?;
    rows.push(Row::new(
        "3a request → jobs-stream consumer",
        latencies,
        None,
    ));

    // Phase 3b: through the scheduler to the provision command.
    let batch = deliveries.make(args.e2e_count)?;
    match to_provision(&client, &batch).await {
        Ok(latencies) => rows.push(Row::new(
            "3b request → provision command (scheduler)",
            latencies,
            None,
        )),
        Err(error) => eprintln!("phase 3b skipped: {error:#}"),
    }

    println!(
        "shr-lab bench webhook ({profile} build): count={} concurrency={} e2e-count={}",
        args.count, args.concurrency, args.e2e_count
    );
    println!(
        "{:<44} {:>6} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "phase", "n", "p50 µs", "p90 µs", "p99 µs", "max µs", "per s"
    );
    for row in &rows {
        row.print();
    }
    println!(
        "webhook counters: accepted={} duplicates={} publish_failed={}",
        stats.accepted.load(Ordering::Relaxed),
        stats.duplicates.load(Ordering::Relaxed),
        stats.publish_failed.load(Ordering::Relaxed)
    );
    println!("targets (release build): phase 1 p50 ≤ 500 µs; phase 2 ≥ 5000 per s");
    served.abort();
    drop((nats, bus, server));
    Ok(ExitCode::SUCCESS)
}

/// Sends one at a time; each latency ends when the consumer task receives that job's event.
async fn to_consumer(
    bus: &shr_nats::Bus,
    client: &reqwest::Client,
    url: &str,
    batch: &[Prepared],
) -> anyhow::Result<Vec<Duration>> {
    let stream = bus.js.get_stream(JOBS_STREAM).await?;
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("bench".into()),
            filter_subject: subject::job_event(JobEventKind::Queued, TENANT)?,
            deliver_policy: DeliverPolicy::New,
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = messages.next().await {
            let at = Instant::now();
            if let Ok(event) = JobEvent::decode(&msg.subject, &msg.payload) {
                let _ = tx.send((event.job().job_id, at));
            }
            let _ = msg.ack().await;
        }
    });
    let mut latencies = Vec::with_capacity(batch.len());
    for d in batch {
        let t0 = Instant::now();
        send(client, url, d).await?;
        let at = wait_for(&mut rx, d.job_id).await?;
        latencies.push(at.saturating_duration_since(t0));
    }
    reader.abort();
    Ok(latencies)
}

/// Waits for `job_id` on `rx`, skipping others, for at most [`WAIT`].
async fn wait_for(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(u64, Instant)>,
    job_id: u64,
) -> anyhow::Result<Instant> {
    let found = tokio::time::timeout(WAIT, async {
        while let Some((id, at)) = rx.recv().await {
            if id == job_id {
                return Some(at);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(at)) => Ok(at),
        _ => bail!("job {job_id} did not arrive within {WAIT:?}"),
    }
}

/// The scheduler's configuration: webhook and scheduler actors, one org registration at
/// the GitHub simulator, local provider (no provisioner runs, so nothing starts).
fn e2e_config(dir: &std::path::Path, nats_url: &str, api_url: &str) -> String {
    format!(
        r#"# Generated by `shr-lab bench webhook`.
[controller]
id = "shr-bench"
nats_url = "{nats_url}"
work_dir = "{work}"
actors = ["webhook", "scheduler"]

[webhook]
listen = "127.0.0.1:0"
path = "{PATH}"
secret = "file:{hook}"

[tenants.{TENANT}.defaults]
provider = "local"

[tenants.{TENANT}.providers.local]

[[registrations]]
name = "{REGISTRATION}"
tenant = "{TENANT}"
scope = "org"
url = "https://github.com/{REGISTRATION}"
api_url = "{api_url}"
auth = {{ pat = "file:{pat}" }}
labels = ["{LABEL}"]
detection = "webhook"
jit_per_minute = 1000000
"#,
        work = dir.display(),
        hook = dir.join("webhook-secret").display(),
        pat = dir.join("github-token").display(),
    )
}

/// Sends one at a time through webhook and scheduler; each latency ends when the provision
/// command for that job is seen on a core subscription.
async fn to_provision(
    client: &reqwest::Client,
    batch: &[Prepared],
) -> anyhow::Result<Vec<Duration>> {
    let dir = tempfile::Builder::new().prefix("shr-bench-").tempdir()?;
    let pat = format!("bench-token-{}", uuid::Uuid::new_v4().simple());
    std::fs::write(dir.path().join("github-token"), &pat)?;
    std::fs::write(dir.path().join("webhook-secret"), SECRET)?;
    let server = NatsServer::start(Default::default()).await?;
    let sim = GitHubSim::start(
        SimConfig {
            tokens: vec![pat.into()],
            repos: vec![REPO.into()],
            rate_limit: 1_000_000,
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let config_path = dir.path().join("bench.toml");
    std::fs::write(
        &config_path,
        e2e_config(dir.path(), &server.url(), &sim.base_url()),
    )?;
    let config = match registration::Config::load(&config_path, &::clouds::Registry) {
        Ok(config) => Arc::new(config),
        Err(errors) => bail!("generated bench config is invalid:\n{errors}"),
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}{PATH}", listener.local_addr()?);
    let running = shr::wiring::start(
        config,
        shr::wiring::StartOptions {
            nats_url: server.url(),
            holder_id: shr::holder_id(),
            work_dir: dir.path().to_owned(),
            local_runner: None,
            webhook_listener: Some(listener),
            sweep_interval: actors::sweep::DEFAULT_INTERVAL,
        },
    )
    .await?;

    let nats = shr_nats::connect(&server.url()).await?;
    let mut provisions = nats.subscribe(subject::ALL_PROVISION).await?;
    // A server round trip, so the subscription is in place before the first delivery.
    let _ = nats.request("_bench.sync", "".into()).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(msg) = provisions.next().await {
            let at = Instant::now();
            if let Ok(cmd) = bus_schema::decode::<ProvisionRunner>(&msg.payload) {
                let _ = tx.send((cmd.job_id, at));
            }
        }
    });
    let mut latencies = Vec::with_capacity(batch.len());
    let mut failure = None;
    for d in batch {
        let t0 = Instant::now();
        if let Err(error) = send(client, &url, d).await {
            failure = Some(error);
            break;
        }
        match wait_for(&mut rx, d.job_id).await {
            Ok(at) => latencies.push(at.saturating_duration_since(t0)),
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    reader.abort();
    running.stop().await;
    match failure {
        Some(error) => Err(error),
        None => Ok(latencies),
    }
}
