//! `shr-lab bench`: the numbers in the README, each next to a floor measured in the same run.
//!
//! One command starts a local nats-server, the GitHub simulator and the product, and drives
//! them with a load generator in its own process (`shr-lab bench-load`, [`load`]). Absolute
//! times on a shared machine move from run to run; the ratio of a figure to its floor, both
//! measured minutes apart on the same machine, moves much less. Figures:
//!
//! 1. floors: a bare HTTP handler with the webhook's HMAC check answering 202; a JetStream
//!    publish awaited to its ack; a core NATS publish → subscription over one hop;
//! 2. webhook ack (signature checked, event acked by JetStream): p50/p99 one at a time,
//!    deliveries/s at 8 and 32 in flight, each against the HTTP floor and HTTP + publish;
//! 3. webhook → `runner.provision` published (the scheduler's JIT call to the simulator
//!    included): p50/p99 and their ratios to the publish floor (the headline figures), and
//!    the GitHub API calls each provision cost (the simulator's `x-ratelimit-used` before and
//!    after);
//! 4. an all-in-one `shr run` (every actor, one tenant) as its own process: time from spawn to
//!    `/readyz` answering 200, and idle RSS;
//! 5. the product with many tenants (every actor but the provisioner, which would start a
//!    runner per job) as its own process: ready time and idle RSS (no target: they grow with
//!    the tenants), then a burst of jobs published straight onto the jobs stream with JIT
//!    pacing lifted: jobs/s through the one scheduler, lost and duplicated provision
//!    commands, and the RSS with every job tracked;
//! 6. JIT pacing: two replicas sharing one credential at 150 per (scaled-down) window, the
//!    busiest window (`economy::pacing`);
//! 7. GitHub calls per job through the whole pipeline (lab harness, local runners) with
//!    webhooks and by polling alone, and the points an idle poll round costs
//!    (`economy::api_cost`).
//!
//! Prints progress on stderr, then one table and one `bench: name=value` line per figure on
//! stdout. `--quick` shrinks every phase (2,000 jobs over 20 tenants) to finish in under a
//! minute. Never run by tests: timing assertions on a shared machine would be flaky.

mod economy;
pub mod load;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actors::routing::{Route, Routing};
use actors::webhook::{self, WebhookState};
use anyhow::{Context as _, bail};
use bus_schema::subject::{self, PROVISION_STREAM};
use bus_schema::{JobEvent, JobQueued, JobRef, JobSource, ProvisionRunner};
use clap::Args;
use futures::StreamExt as _;
use secrecy::SecretString;
use shr_nats::NatsServer;
use simulators::github::{GitHubSim, GitHubSimHandle, SimConfig};

pub use load::{LoadArgs, LoadReport, run as run_load};

/// GitHub's published `workflow_job` `queued` example, the template of every delivery.
const QUEUED_TEMPLATE: &str =
    include_str!("../../actors/tests/fixtures/workflow_job.queued.payload.json");
const TENANT: &str = "bench";
const REGISTRATION: &str = "bench-org";
const REPO: &str = "bench-org/app";
const LABEL: &str = "serverless-hosted-runner";
/// A bench-only webhook secret, known to both processes (never a real secret).
const SECRET: &str = "bench-webhook-secret";
const PATH: &str = "/webhook";
/// How long one operation may take before the bench gives up.
const WAIT: Duration = Duration::from_secs(10);
/// How long a burst may take before the bench gives up on it.
const BURST_DEADLINE: Duration = Duration::from_secs(180);

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Smaller phases; finishes in under a minute.
    #[arg(long)]
    pub quick: bool,
}

/// How much each phase sends.
struct Sizes {
    latency: usize,
    throughput: usize,
    provision: usize,
    burst_jobs: usize,
    burst_tenants: usize,
}

impl Sizes {
    fn of(quick: bool) -> Self {
        if quick {
            Self {
                latency: 300,
                throughput: 1000,
                provision: 100,
                burst_jobs: 2000,
                burst_tenants: 20,
            }
        } else {
            Self {
                latency: 2000,
                throughput: 5000,
                provision: 500,
                burst_jobs: 10_000,
                burst_tenants: 100,
            }
        }
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
pub(crate) struct Prepared {
    pub(crate) job_id: u64,
    delivery_id: String,
    body: Vec<u8>,
    signature: String,
}

/// Makes deliveries with unique job ids and delivery ids from the fixture.
pub(crate) struct Deliveries {
    template: serde_json::Value,
    next_job_id: u64,
}

impl Deliveries {
    pub(crate) fn new(first_job_id: u64) -> anyhow::Result<Self> {
        let mut template: serde_json::Value =
            serde_json::from_str(QUEUED_TEMPLATE).context("parsing the queued fixture")?;
        template["repository"]["full_name"] = REPO.into();
        template["organization"] = serde_json::json!({ "login": REGISTRATION });
        template["workflow_job"]["labels"] = serde_json::json!([LABEL]);
        Ok(Self {
            template,
            next_job_id: first_job_id,
        })
    }

    pub(crate) fn make(&mut self, n: usize) -> anyhow::Result<Vec<Prepared>> {
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

/// Sends one delivery and checks for a 2xx answer.
pub(crate) async fn send(client: &reqwest::Client, url: &str, d: &Prepared) -> anyhow::Result<()> {
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
    if !status.is_success() {
        bail!(
            "delivery {} answered {status}: {}",
            d.delivery_id,
            text.trim()
        );
    }
    Ok(())
}

pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(64)
        .build()
        .context("building the HTTP client")
}

/// One measured figure, and the target it is held to.
struct Figure {
    name: String,
    value: f64,
    unit: &'static str,
    /// `(comparison, bound)`: the figure must be `≤`/`≥` the bound.
    target: Option<(&'static str, f64)>,
}

impl Figure {
    fn verdict(&self) -> &'static str {
        match self.target {
            None => "",
            Some(("≤", bound)) if self.value <= bound => "ok",
            Some(("≥", bound)) if self.value >= bound => "ok",
            Some(_) => "MISS",
        }
    }
}

/// The figures, in the order they were measured, with progress on stderr.
struct Figures {
    rows: Vec<Figure>,
    step: usize,
    steps: usize,
    started: Instant,
}

impl Figures {
    fn progress(&mut self, what: &str) {
        self.step += 1;
        eprintln!(
            "bench [{}/{}] {:>5.1}s {what}",
            self.step,
            self.steps,
            self.started.elapsed().as_secs_f64()
        );
    }

    fn add(&mut self, name: &str, value: f64, unit: &'static str) {
        self.rows.push(Figure {
            name: name.into(),
            value,
            unit,
            target: None,
        });
    }

    fn held(&mut self, name: &str, value: f64, unit: &'static str, cmp: &'static str, b: f64) {
        self.rows.push(Figure {
            name: name.into(),
            value,
            unit,
            target: Some((cmp, b)),
        });
    }

    fn latencies(&mut self, prefix: &str, report: &LoadReport) -> (f64, f64) {
        let (p50, p99) = (
            pct(&report.latencies_us, 50.0),
            pct(&report.latencies_us, 99.0),
        );
        self.add(&format!("{prefix}_p50_us"), p50, "µs");
        self.add(&format!("{prefix}_p99_us"), p99, "µs");
        (p50, p99)
    }

    fn print(&self, profile: &str, quick: bool) {
        println!(
            "shr-lab bench ({profile} build{}), {:.1}s",
            if quick { ", --quick" } else { "" },
            self.started.elapsed().as_secs_f64()
        );
        println!(
            "{:<34} {:>12} {:<6} {:<12}",
            "figure", "value", "unit", "target"
        );
        for f in &self.rows {
            let target = f
                .target
                .map_or(String::new(), |(cmp, b)| format!("{cmp} {}", fmt(b)));
            println!(
                "{:<34} {:>12} {:<6} {:<12} {}",
                f.name,
                fmt(f.value),
                f.unit,
                target,
                f.verdict()
            );
        }
        for f in &self.rows {
            println!("bench: {}={}", f.name, fmt(f.value));
        }
    }
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The `p`th percentile (nearest rank) of unsorted samples; 0 when empty.
fn pct(samples: &[u64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64
}

/// Operations per second of a load run.
fn rate(report: &LoadReport) -> f64 {
    report.latencies_us.len() as f64 / (report.elapsed_us.max(1) as f64 / 1e6)
}

/// Runs the load generator in its own process and reads its report.
async fn load(mode: &str, args: &[String]) -> anyhow::Result<LoadReport> {
    let bin = crate::bins::lab_binary()?;
    let out = tokio::process::Command::new(&bin)
        .arg("bench-load")
        .arg(mode)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .with_context(|| format!("starting {}", bin.display()))?;
    if !out.status.success() {
        bail!("bench-load {mode} failed ({})", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .last()
        .context("bench-load printed nothing")?;
    serde_json::from_str(line).context("reading bench-load's report")
}

/// Hands out disjoint job-id ranges, so no run's deliveries collide with another's.
struct JobIds(u64);

impl JobIds {
    fn next(&mut self) -> String {
        self.0 += 10_000_000;
        self.0.to_string()
    }
}

fn args(pairs: &[(&str, String)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(k, v)| [format!("--{k}"), v.clone()])
        .collect()
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let sizes = Sizes::of(args.quick);
    let mut figures = Figures {
        rows: Vec::new(),
        step: 0,
        steps: 13,
        started: Instant::now(),
    };
    let mut ids = JobIds(5_000_000_000);
    figures.progress("starting nats-server");
    let server = NatsServer::start(Default::default()).await?;
    let publish_p50 = nats_floors(&mut figures, &server, &sizes).await?;
    // The HTTP floor is measured before and after the webhook and the better run kept, so
    // a burst of load from elsewhere on the machine cannot flatter the webhook's ratios.
    let before = http_floor(&mut figures, &mut ids, &sizes).await?;
    let hook = webhook_ack(&mut figures, &mut ids, &server, &sizes).await?;
    let after = http_floor(&mut figures, &mut ids, &sizes).await?;
    let floors = Floors {
        http_p50: before.p50.min(after.p50),
        http_rps_8: before.rps_8.max(after.rps_8),
        http_rps_32: before.rps_32.max(after.rps_32),
        publish_p50,
    };
    figures.add("floor_http_p50_us", floors.http_p50, "µs");
    figures.add("floor_http_p99_us", before.p99.min(after.p99), "µs");
    figures.add("floor_http_rps_8", floors.http_rps_8, "/s");
    figures.add("floor_http_rps_32", floors.http_rps_32, "/s");
    hook.add_to(&mut figures, &floors);
    drop(server);
    provision(&mut figures, &mut ids, &sizes, &floors).await?;
    all_in_one(&mut figures).await?;
    product(&mut figures, &sizes).await?;
    economy::pacing(&mut figures, args.quick).await?;
    economy::api_cost(&mut figures, args.quick).await?;
    figures.print(profile, args.quick);
    Ok(ExitCode::SUCCESS)
}

/// The floors' p50s and throughputs, for the ratios.
struct Floors {
    http_p50: f64,
    http_rps_8: f64,
    http_rps_32: f64,
    publish_p50: f64,
}

/// One run of the HTTP floor.
struct HttpRun {
    p50: f64,
    p99: f64,
    rps_8: f64,
    rps_32: f64,
}

/// JetStream publish + ack and core pub → sub; the publish p50.
async fn nats_floors(
    figures: &mut Figures,
    server: &NatsServer,
    sizes: &Sizes,
) -> anyhow::Result<f64> {
    figures.progress("floor: JetStream publish + ack; core NATS pub → sub");
    let nats_args = args(&[("count", sizes.latency.to_string()), ("nats", server.url())]);
    let publish = load("publish", &nats_args).await?;
    let (publish_p50, _) = figures.latencies("floor_publish", &publish);
    let core = load("core", &nats_args).await?;
    figures.latencies("floor_core", &core);
    Ok(publish_p50)
}

/// The bare HTTP floor, one at a time and 8 and 32 in flight.
async fn http_floor(
    figures: &mut Figures,
    ids: &mut JobIds,
    sizes: &Sizes,
) -> anyhow::Result<HttpRun> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}{PATH}", listener.local_addr()?);
    let router = axum::Router::new().route(PATH, axum::routing::post(floor_handler));
    let served = tokio::spawn(async move { axum::serve(listener, router).await });
    figures.progress("floor: bare HTTP + HMAC → 202, one at a time, 8 and 32 in flight");
    let measured = HttpRun::measure(&url, ids, sizes).await;
    served.abort();
    measured
}

impl HttpRun {
    async fn measure(url: &str, ids: &mut JobIds, sizes: &Sizes) -> anyhow::Result<Self> {
        let one = load(
            "http",
            &http_args(url, &sizes.latency.to_string(), "1", ids),
        )
        .await?;
        let t = sizes.throughput.to_string();
        let r8 = load("http", &http_args(url, &t, "8", ids)).await?;
        let r32 = load("http", &http_args(url, &t, "32", ids)).await?;
        Ok(Self {
            p50: pct(&one.latencies_us, 50.0),
            p99: pct(&one.latencies_us, 99.0),
            rps_8: rate(&r8),
            rps_32: rate(&r32),
        })
    }

    /// The webhook's figures and their ratios to the floors.
    fn add_to(&self, figures: &mut Figures, floors: &Floors) {
        figures.add("webhook_ack_p50_us", self.p50, "µs");
        figures.add("webhook_ack_p99_us", self.p99, "µs");
        figures.add(
            "webhook_ack_p50_ratio_http",
            self.p50 / floors.http_p50,
            "×",
        );
        figures.held(
            "webhook_ack_p50_ratio_http_publish",
            self.p50 / (floors.http_p50 + floors.publish_p50),
            "×",
            "≤",
            1.5,
        );
        figures.add("webhook_rps_8", self.rps_8, "/s");
        figures.held(
            "webhook_rps_8_ratio_http",
            self.rps_8 / floors.http_rps_8,
            "×",
            "≥",
            0.7,
        );
        figures.add("webhook_rps_32", self.rps_32, "/s");
        figures.add(
            "webhook_rps_32_ratio_http",
            self.rps_32 / floors.http_rps_32,
            "×",
        );
    }
}

fn http_args(url: &str, count: &str, concurrency: &str, ids: &mut JobIds) -> Vec<String> {
    args(&[
        ("url", url.into()),
        ("count", count.into()),
        ("concurrency", concurrency.into()),
        ("first-job-id", ids.next()),
    ])
}

/// The HTTP floor: the webhook's signature check and nothing else.
async fn floor_handler(
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let signature = headers
        .get("X-Hub-Signature-256")
        .and_then(|v| v.to_str().ok());
    if webhook::signature_valid(SECRET.as_bytes(), &body, signature) {
        axum::http::StatusCode::ACCEPTED
    } else {
        axum::http::StatusCode::UNAUTHORIZED
    }
}

/// The webhook actor's router over JetStream, measured like the HTTP floor.
async fn webhook_ack(
    figures: &mut Figures,
    ids: &mut JobIds,
    server: &NatsServer,
    sizes: &Sizes,
) -> anyhow::Result<HttpRun> {
    let nats = shr_nats::connect(&server.url()).await?;
    let bus = shr_nats::ensure_bus(&nats).await?;
    let state = WebhookState::new(SecretString::from(SECRET), bus, Arc::new(AnyRepo));
    let router = webhook::router(state, PATH, 1 << 20);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}{PATH}", listener.local_addr()?);
    let served = tokio::spawn(async move { axum::serve(listener, router).await });
    figures.progress("webhook ack (HMAC, JetStream ack), one at a time, 8 and 32 in flight");
    let measured = HttpRun::measure(&url, ids, sizes).await;
    served.abort();
    measured
}

/// A temporary directory with the PAT and webhook secret files a generated config names.
struct Files {
    dir: tempfile::TempDir,
    pat: String,
}

impl Files {
    fn new() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("shr-bench-").tempdir()?;
        let pat = format!("bench-token-{}", uuid::Uuid::new_v4().simple());
        std::fs::write(dir.path().join("github-token"), &pat)?;
        std::fs::write(dir.path().join("webhook-secret"), SECRET)?;
        Ok(Self { dir, pat })
    }
}

/// The GitHub simulator with one PAT and the given orgs' `app` repositories, unlimited.
async fn github(files: &Files, orgs: &[String]) -> anyhow::Result<GitHubSimHandle> {
    Ok(GitHubSim::start(
        SimConfig {
            tokens: vec![files.pat.clone().into()],
            repos: orgs.iter().map(|o| format!("{o}/app")).collect(),
            rate_limit: 10_000_000,
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse()?,
    )
    .await?)
}

/// The PAT's `used` count at the simulator (asking does not count).
async fn github_used(sim: &GitHubSimHandle, pat: &str) -> anyhow::Result<f64> {
    let body: serde_json::Value = http_client()?
        .get(format!(
            "{}/rate_limit",
            sim.base_url().trim_end_matches('/')
        ))
        .header("Authorization", format!("Bearer {pat}"))
        .header("User-Agent", "shr-bench")
        .send()
        .await?
        .json()
        .await?;
    body["rate"]["used"]
        .as_f64()
        .context("the simulator's /rate_limit has no rate.used")
}

/// A product configuration: `tenants` tenants, one org registration each at the simulator.
fn config(
    files: &Files,
    nats_url: &str,
    api_url: &str,
    actors: &str,
    listen: &str,
    metrics_listen: Option<&str>,
    tenants: &[String],
) -> String {
    let dir = files.dir.path();
    let metrics = metrics_listen
        .map(|m| format!("metrics_listen = \"{m}\"\n"))
        .unwrap_or_default();
    let mut out = format!(
        r#"# Generated by `shr-lab bench`.
[controller]
id = "shr-bench"
nats_url = "{nats_url}"
work_dir = "{work}"
actors = [{actors}]
{metrics}
[webhook]
listen = "{listen}"
path = "{PATH}"
secret = "file:{hook}"
"#,
        work = dir.display(),
        hook = dir.join("webhook-secret").display(),
    );
    for (i, tenant) in tenants.iter().enumerate() {
        out.push_str(&format!(
            r#"
[tenants.{tenant}.defaults]
provider = "local"

[tenants.{tenant}.providers.local]
# Never run: the bench places no provisioner.
runner_command = "/bin/true"

[[registrations]]
name = "{org}"
tenant = "{tenant}"
scope = "org"
url = "https://github.com/{org}"
api_url = "{api_url}"
auth = {{ pat = "file:{pat}" }}
labels = ["{LABEL}"]
detection = "webhook"
jit_per_minute = 100000000
limits = {{ max_runners = 1000000 }}
"#,
            org = org_of(tenants.len(), i),
            pat = dir.join("github-token").display(),
        ));
    }
    out
}

/// The org of tenant `i`: [`REGISTRATION`] when there is one tenant.
fn org_of(tenants: usize, i: usize) -> String {
    if tenants == 1 {
        REGISTRATION.into()
    } else {
        format!("org-{i}")
    }
}

async fn provision(
    figures: &mut Figures,
    ids: &mut JobIds,
    sizes: &Sizes,
    floors: &Floors,
) -> anyhow::Result<()> {
    figures.progress("webhook → provision command (scheduler, JIT at the simulator)");
    let files = Files::new()?;
    let server = NatsServer::start(Default::default()).await?;
    let sim = github(&files, &[REGISTRATION.into()]).await?;
    let path = files.dir.path().join("bench.toml");
    let text = config(
        &files,
        &server.url(),
        &sim.base_url(),
        r#""webhook", "scheduler""#,
        "127.0.0.1:0",
        None,
        &[TENANT.into()],
    );
    std::fs::write(&path, text)?;
    let config = match registration::Config::load(&path, &::clouds::Registry) {
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
            work_dir: files.dir.path().to_owned(),
            local_runner: None,
            webhook_listener: Some(listener),
            sweep_interval: actors::sweep::DEFAULT_INTERVAL,
        },
    )
    .await?;
    let used_before = github_used(&sim, &files.pat).await?;
    let report = load(
        "provision",
        &args(&[
            ("url", url),
            ("nats", server.url()),
            ("count", sizes.provision.to_string()),
            ("first-job-id", ids.next()),
        ]),
    )
    .await;
    let used_after = github_used(&sim, &files.pat).await?;
    running.stop().await;
    let report = report?;
    let (p50, p99) = figures.latencies("provision", &report);
    figures.held(
        "provision_p50_ratio",
        p50 / floors.publish_p50,
        "×",
        "≤",
        10.0,
    );
    figures.held(
        "provision_p99_ratio",
        p99 / floors.publish_p50,
        "×",
        "≤",
        20.0,
    );
    // The scheduler's share only (JIT registrations); the whole pipeline's cost per job is
    // `github_calls_per_job_webhook` (`economy::api_cost`).
    figures.held(
        "github_calls_per_provision",
        (used_after - used_before) / report.sent.max(1) as f64,
        "calls",
        "≤",
        1.2,
    );
    Ok(())
}

/// An all-in-one `shr run` (every actor, one tenant, the local provider) as its own process:
/// the time from spawn to `/readyz` answering 200, and its idle RSS.
async fn all_in_one(figures: &mut Figures) -> anyhow::Result<()> {
    figures.progress("all-in-one: `shr run` start → /readyz, idle RSS");
    let files = Files::new()?;
    let server = NatsServer::start(Default::default()).await?;
    let sim = github(&files, &[REGISTRATION.to_owned()]).await?;
    let (listen, metrics) = (free_listen()?, free_listen()?);
    let path = files.dir.path().join("all-in-one.toml");
    let actors = registration::Actor::ALL
        .iter()
        .map(|a| format!("\"{}\"", a.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let text = config(
        &files,
        &server.url(),
        &sim.base_url(),
        &actors,
        &listen,
        Some(&metrics),
        &[TENANT.to_owned()],
    );
    std::fs::write(&path, text)?;
    let (mut child, pid, ready) = start_product(&path, &metrics).await?;
    figures.held("ready_ms", ready * 1e3, "ms", "≤", 300.0);
    // Let start-up work (consumers, leases, the first sweep) finish before the reading.
    tokio::time::sleep(Duration::from_secs(1)).await;
    figures.held("rss_idle_mb", rss_mb(pid)?, "MB", "≤", 40.0);
    let _ = child.start_kill();
    let _ = child.wait().await;
    drop(sim);
    Ok(())
}

/// A free local address to listen on.
fn free_listen() -> anyhow::Result<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok(format!("127.0.0.1:{port}"))
}

/// Starts `shr run --config path` and waits for `/readyz` on its metrics listener
/// `metrics` (the bus reachable, every consumer bound): the process, its pid and the
/// seconds from spawn to ready.
async fn start_product(
    path: &std::path::Path,
    metrics: &str,
) -> anyhow::Result<(tokio::process::Child, u32, f64)> {
    let bin = crate::bins::product_binary()?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(&bin)
        .args(["run", "--config"])
        .arg(path)
        .env("SHR_LOG", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id().context("the product exited at once")?;
    let ready_url = format!("http://{metrics}/readyz");
    let client = http_client()?;
    let ready_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(resp) = client.get(&ready_url).send().await
            && resp.status().is_success()
        {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("the product exited before it was ready ({status})");
        }
        if Instant::now() > ready_deadline {
            bail!("the product was not ready within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok((child, pid, started.elapsed().as_secs_f64()))
}

/// The product as its own process: ready time, RSS idle and with a burst of jobs tracked,
/// scheduling throughput, lost and duplicated provision commands.
async fn product(figures: &mut Figures, sizes: &Sizes) -> anyhow::Result<()> {
    figures.progress(&format!(
        "product: `shr run` with {} tenants start → /readyz, idle RSS",
        sizes.burst_tenants
    ));
    let files = Files::new()?;
    let server = NatsServer::start(Default::default()).await?;
    let tenants: Vec<String> = (0..sizes.burst_tenants).map(|i| format!("t{i}")).collect();
    let orgs: Vec<String> = (0..tenants.len())
        .map(|i| org_of(tenants.len(), i))
        .collect();
    let sim = github(&files, &orgs).await?;
    let (listen, metrics) = (free_listen()?, free_listen()?);
    let path = files.dir.path().join("bench.toml");
    let text = config(
        &files,
        &server.url(),
        &sim.base_url(),
        r#""webhook", "scheduler", "reaper""#,
        &listen,
        Some(&metrics),
        &tenants,
    );
    std::fs::write(&path, text)?;
    // The bus exists before the product starts, so the burst can be published at once.
    let nats = shr_nats::connect(&server.url()).await?;
    let bus = shr_nats::ensure_bus(&nats).await?;
    let mut provisions = nats.subscribe(subject::ALL_PROVISION).await?;
    nats.flush().await?;
    let seen: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(msg) = provisions.next().await {
                if let Ok(cmd) = bus_schema::decode::<ProvisionRunner>(&msg.payload) {
                    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                    *seen.entry(cmd.job_id).or_default() += 1;
                }
            }
        })
    };

    let (mut child, pid, ready) = start_product(&path, &metrics).await?;
    // Let start-up work (consumers, leases) finish before the idle reading.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let n = tenants.len();
    figures.add(&format!("ready_{n}_tenants_ms"), ready * 1e3, "ms");
    figures.add(&format!("rss_idle_{n}_tenants_mb"), rss_mb(pid)?, "MB");

    figures.progress(&format!(
        "product: burst of {} jobs over {} tenants",
        sizes.burst_jobs,
        tenants.len()
    ));
    let events: Vec<JobEvent> = (0..sizes.burst_jobs)
        .map(|i| {
            let t = i % tenants.len();
            let job_id = 9_000_000_000 + i as u64;
            JobEvent::Queued(JobQueued {
                tenant: tenants[t].clone(),
                registration: orgs[t].clone(),
                job: JobRef {
                    job_id,
                    run_id: job_id,
                    repo: format!("{}/app", orgs[t]),
                    labels: vec![LABEL.into()],
                    name: "bench".into(),
                },
                source: JobSource::Webhook,
                delivery_id: Some(format!("bench-{job_id}")),
                observed_at: bus_schema::now_millis(),
            })
        })
        .collect();
    let t0 = Instant::now();
    let published: Vec<_> = futures::stream::iter(events.iter())
        .map(|e| webhook::publish(&bus, e))
        .buffer_unordered(64)
        .collect()
        .await;
    for p in published {
        p.context("publishing a queued job")?;
    }
    let deadline = t0 + BURST_DEADLINE;
    let unique = loop {
        let unique = seen.lock().unwrap_or_else(|p| p.into_inner()).len();
        if unique >= sizes.burst_jobs || Instant::now() > deadline {
            break unique;
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("the product exited during the burst ({status})");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let elapsed = t0.elapsed().as_secs_f64();
    figures.held(
        "schedule_jobs_per_s",
        unique as f64 / elapsed,
        "/s",
        "≥",
        2000.0,
    );
    figures.held(
        &format!("rss_{}_jobs_mb", sizes.burst_jobs),
        rss_mb(pid)?,
        "MB",
        "≤",
        150.0,
    );
    figures.progress("product: quiet second, then lost and duplicated");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (unique, total) = {
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        (
            seen.len(),
            seen.values().map(|&n| n as usize).sum::<usize>(),
        )
    };
    let stream_messages = bus
        .js
        .get_stream(PROVISION_STREAM)
        .await?
        .info()
        .await?
        .state
        .messages;
    figures.add("burst_jobs", sizes.burst_jobs as f64, "jobs");
    figures.held(
        "burst_lost",
        (sizes.burst_jobs - unique.min(sizes.burst_jobs)) as f64,
        "jobs",
        "≤",
        0.0,
    );
    figures.held(
        "burst_duplicated",
        (total - unique) as f64,
        "jobs",
        "≤",
        0.0,
    );
    figures.add(
        "burst_provision_stream_messages",
        stream_messages as f64,
        "msgs",
    );
    reader.abort();
    let _ = child.start_kill();
    let _ = child.wait().await;
    drop(sim);
    Ok(())
}

/// Resident set size of a process, from `/proc/<pid>/status`, in MB (10⁶ bytes).
fn rss_mb(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/<pid>/status")?;
    Ok(kb * 1024.0 / 1e6)
}
