//! `shr-lab demo`: the whole system on one machine, against local NATS and the simulators.
//!
//! It starts a nats-server (unless `--nats-url`), the GitHub simulator and every actor in
//! this process ([`crate::harness`]), or with `--placement centralized|agents` some of them
//! as `shr run` processes ([`crate::placement`]), queues `--jobs` jobs with mixed labels,
//! prints progress, and ends with one line, which must read `lost=0 duplicates=0 leaked=0`
//! (and every job completed, every instance reaped) for the exit code to be 0. The agents
//! placement also prints a `tenancy:` line and needs every job to have run on a runner its
//! own tenant's agent created.
//!
//! With `--hold` the whole system stays up after that line: it serves the
//! metrics listener and status page of `shr run`, prints where they, NATS and the `shr
//! status` command line are, and stops in order on SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bus_schema::ProviderKind;
use clap::Args;

use crate::harness::{Harness, HarnessOptions};
use crate::placement::Placement;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many jobs to queue.
    #[arg(long, default_value_t = 20)]
    pub jobs: usize,
    /// Where runners are hosted: local, alibaba-eci, azure-aci, gcp-cloudrun, gcp-batch,
    /// aws-fargate.
    #[arg(long, default_value = "local")]
    pub provider: ProviderKind,
    /// Working directory (NATS store, runner logs, generated config); wiped at start.
    #[arg(long, default_value = "work/demo")]
    pub work_dir: PathBuf,
    /// Use this NATS server instead of starting one.
    #[arg(long)]
    pub nats_url: Option<String>,
    /// How long each job runs on its runner, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub job_duration_ms: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// Switch webhook delivery off: the poller alone must find every job.
    #[arg(long)]
    pub no_webhooks: bool,
    /// Deliver every webhook twice.
    #[arg(long)]
    pub deliver_twice: bool,
    /// Run the actors as separate processes and kill them while jobs run ([`crate::chaos`]).
    #[arg(long)]
    pub chaos: bool,
    /// The chaos schedule's random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where the actors run (see the README's placements section): `distributed`, every
    /// actor in this process; `centralized`, provisioner and reaper in a second `shr run`
    /// process; `agents`, central `shr run` processes plus one agent process per tenant, each
    /// under its own NATS identity on the shipped security configuration. The last two need
    /// a cloud: `--provider local` becomes `alibaba-eci`.
    #[arg(long, value_enum, default_value_t = Placement::Distributed)]
    pub placement: Placement,
    /// How many tenants the agents placement runs.
    #[arg(long, default_value_t = 3)]
    pub tenants: usize,
    /// Keep everything running after the summary, until SIGINT (Ctrl-C) or SIGTERM, and
    /// print where the status page, the metrics and NATS are.
    #[arg(long, conflicts_with = "chaos")]
    pub hold: bool,
}

/// The label sets the demo cycles through: default size, a sized runner, a pinned runner
/// with generic labels, a small one.
pub const LABEL_SETS: [&[&str]; 4] = [
    &["serverless-hosted-runner"],
    &["serverless-hosted-runner", "cpu-2", "memory-4"],
    &[
        "self-hosted",
        "linux",
        "serverless-hosted-runner",
        "sid-build",
    ],
    &["serverless-hosted-runner", "memory-1"],
];

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if args.chaos {
        return crate::chaos::run(args).await;
    }
    let started = Instant::now();
    let mut options = HarnessOptions::new(&args.work_dir);
    options.provider = match (args.placement, args.provider) {
        (Placement::Distributed, kind) => kind,
        (_, ProviderKind::Local) => ProviderKind::AlibabaEci,
        (_, kind) => kind,
    };
    options.placement = args.placement;
    options.tenants = args.tenants;
    options.nats_url = args.nats_url.clone();
    options.job_duration = Duration::from_millis(args.job_duration_ms);
    options.webhooks = !args.no_webhooks;
    options.deliver_twice = args.deliver_twice;
    if args.no_webhooks {
        options.poll_interval_secs = 5;
    }
    let mut harness = Harness::start(options).await?;
    println!(
        "demo: {} jobs, provider {}, placement {}, nats {}, GitHub simulator {}, config {}",
        args.jobs,
        harness.options.provider,
        args.placement,
        harness.nats_url,
        harness.sim.base_url(),
        harness.config_path.display()
    );
    // Held: the listener starts before the jobs, so its page charts their startups.
    let listener = match args.hold {
        true => Some(start_listener(&harness).await?),
        false => None,
    };
    let processes = harness.children.names();
    if !processes.is_empty() {
        println!(
            "processes: {} (logs in {})",
            processes.join(", "),
            harness.options.work_dir.join("logs").display()
        );
    }
    if args.placement == Placement::Agents {
        harness.queue_tenant_jobs(args.jobs, &LABEL_SETS);
    } else {
        harness.queue_jobs(args.jobs, &LABEL_SETS);
    }
    let summary = harness
        .wait_settled(Duration::from_secs(args.timeout_secs), true)
        .await?;
    if summary.lost > 0 {
        print!("{}", harness.explain_lost().await?);
    }
    for exited in harness.children.exited() {
        println!("process {exited}");
    }
    let tenancy = (args.placement == Placement::Agents).then(|| harness.tenant_creates());
    if let Some(tenancy) = &tenancy {
        for violation in &tenancy.violations {
            println!("tenancy violation: {violation}");
        }
        println!("{tenancy}");
    }
    if let Some(stats) = harness
        .running
        .as_ref()
        .and_then(|r| r.webhook_stats.clone())
    {
        use std::sync::atomic::Ordering::Relaxed;
        println!(
            "webhook: accepted={} duplicates={} bad_signature={} unrouted={} ignored={}",
            stats.accepted.load(Relaxed),
            stats.duplicates.load(Relaxed),
            stats.bad_signature.load(Relaxed),
            stats.unrouted.load(Relaxed),
            stats.ignored_event.load(Relaxed) + stats.ignored_action.load(Relaxed),
        );
    }
    if let Some(running) = harness.running.as_ref() {
        let declined = running.ctx.stats.declined();
        if !declined.is_empty() {
            println!("declined jobs by reason: {declined:?}");
        }
    }
    if let Some(listener) = &listener {
        println!("{summary}");
        hold(&harness, listener).await?;
    }
    harness.stop().await;
    println!("wall time {:.1}s", started.elapsed().as_secs_f64());
    println!("{summary}");
    let tenancy_ok = tenancy.is_none_or(|t| t.violations.is_empty() && t.own == summary.jobs);
    Ok(if summary.ok() && tenancy_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Serves the metrics listener of `shr run` (status page at `/`) beside the demo's actors; it
/// stops with them.
async fn start_listener(harness: &Harness) -> anyhow::Result<shr::metrics_server::MetricsServer> {
    use anyhow::Context as _;
    let running = harness
        .running
        .as_ref()
        .context("the demo's actors are not running")?;
    shr::metrics_server::start(running, running.cancel_token()).await
}

/// `--hold`: prints where everything is, and returns on SIGINT or SIGTERM. The caller then
/// stops the actors (which stops the listener with them), the simulators and NATS.
async fn hold(
    harness: &Harness,
    listener: &shr::metrics_server::MetricsServer,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use tokio::signal::unix::{SignalKind, signal};
    // Handlers first: a signal that arrives once the addresses are out must stop in order.
    let mut term = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let base = format!("http://{}", listener.addr);
    println!("demo held: everything keeps running until SIGINT (Ctrl-C) or SIGTERM");
    println!("  status page: {base}/");
    println!("  metrics:     {base}/metrics");
    println!("  readiness:   {base}/readyz");
    println!("  nats:        {}", harness.nats_url);
    println!("  github sim:  {}", harness.sim.base_url());
    println!("  config:      {}", harness.config_path.display());
    println!(
        "  shr status:  {} status --config {}",
        shr_command(),
        harness.config_path.display()
    );
    let got = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    println!("received {got}; stopping the demo");
    Ok(())
}

/// How to run `shr` here: `$SHR_BIN`, else the `shr` next to this executable (both are in
/// `target/<profile>/` after `cargo build`), else `shr` from `PATH`.
fn shr_command() -> String {
    std::env::var_os("SHR_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            let sibling = exe.parent()?.join(crate::bins::PRODUCT);
            sibling.is_file().then_some(sibling)
        })
        .map_or_else(
            || crate::bins::PRODUCT.to_owned(),
            |p| p.display().to_string(),
        )
}
