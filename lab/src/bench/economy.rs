//! The bench's GitHub API economy figures: calls per job in webhook and in poll mode, the
//! points an idle poll round costs, and whether JIT pacing holds across two replicas.
//!
//! Calls are read from the GitHub simulator's exchange log (a `304` is free, as on GitHub,
//! and `/rate_limit` is never charged); the whole pipeline runs in the lab harness with local
//! runners, so every call a job causes, from its JIT registration to its runner's removal, is
//! counted.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actors::credential::KvCredential;
use anyhow::Context as _;
use futures::StreamExt as _;
use github_client::SharedCredential as _;
use shr_nats::NatsServer;

use super::Figures;
use crate::demo::LABEL_SETS;
use crate::harness::{Harness, HarnessOptions};

const SETTLE: Duration = Duration::from_secs(300);

/// Charged calls so far: every exchange but a `304` and `/rate_limit`.
fn charged(h: &Harness) -> usize {
    h.sim
        .exchanges()
        .iter()
        .filter(|e| e.status != 304 && e.path != "/rate_limit")
        .count()
}

fn run_lists(h: &Harness) -> usize {
    h.sim
        .exchanges()
        .iter()
        .filter(|e| e.path.ends_with("/actions/runs"))
        .count()
}

/// Waits for `n` more run-list requests (the poller's rounds).
async fn wait_for_run_lists(h: &Harness, n: usize) -> anyhow::Result<()> {
    let target = run_lists(h) + n;
    let deadline = Instant::now() + Duration::from_secs(120);
    while run_lists(h) < target {
        anyhow::ensure!(Instant::now() < deadline, "the poller stopped polling");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Runs `jobs` jobs through the whole pipeline; returns the harness (still running) and the
/// charged calls per job.
async fn run_jobs(
    dir: &tempfile::TempDir,
    jobs: usize,
    webhooks: bool,
) -> anyhow::Result<(Harness, f64)> {
    let mut options = HarnessOptions::new(dir.path().join("work"));
    options.job_duration = Duration::from_millis(300);
    options.webhooks = webhooks;
    // With webhooks, the backstop poll at its default interval for webhook-and-poll
    // registrations (a round at start, then every 5 minutes), as the API-cost test has it;
    // polling alone every 5 s.
    options.poll_interval_secs = if webhooks { 300 } else { 5 };
    let mut h = Harness::start(options).await?;
    h.queue_jobs(jobs, &LABEL_SETS);
    wait_drained(&h).await?;
    let per_job = charged(&h) as f64 / jobs as f64;
    Ok((h, per_job))
}

/// Waits until the run is settled and nothing is left to happen: the summary is clean (every
/// job concluded, no instance or GitHub runner left), and no durable consumer of any stream
/// has a message pending or unacknowledged (a message nak'ed for a later retry counts as
/// unacknowledged); both hold twice, [`DRAINED_CONFIRM`] apart, with the same summary. The
/// bench's stand-in for the demo's quiet period: a call still to come has a message behind
/// it, so it is not missed, and the longest retry delay need not be waited out.
async fn wait_drained(h: &Harness) -> anyhow::Result<()> {
    let js = &h
        .running
        .as_ref()
        .context("the API-cost harness runs the actors in process")?
        .ctx
        .bus
        .js;
    let deadline = Instant::now() + SETTLE;
    let mut confirmed: Option<crate::harness::Summary> = None;
    loop {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the API-cost run did not settle within {SETTLE:?}: {}",
            h.observe().await?.summary
        );
        let seen = h.observe().await?;
        let quiet = seen.clean && seen.summary.ok() && consumers_drained(js).await?;
        match (&confirmed, quiet) {
            (Some(before), true) if *before == seen.summary => return Ok(()),
            (_, true) => {
                confirmed = Some(seen.summary);
                tokio::time::sleep(DRAINED_CONFIRM).await;
            }
            (_, false) => {
                confirmed = None;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// How far apart the two drained observations of [`wait_drained`] are.
const DRAINED_CONFIRM: Duration = Duration::from_secs(2);

/// Whether every durable consumer of every stream has nothing pending or unacknowledged.
async fn consumers_drained(js: &async_nats::jetstream::Context) -> anyhow::Result<bool> {
    let mut streams = js.stream_names();
    while let Some(name) = streams.next().await {
        let stream = js.get_stream(name?).await?;
        let mut consumers = stream.consumers();
        while let Some(info) = consumers.next().await {
            let info = info?;
            if info.config.durable_name.is_some()
                && (info.num_pending > 0 || info.num_ack_pending > 0)
            {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// GitHub calls per job in both modes and the points of an idle poll round.
pub(crate) async fn api_cost(figures: &mut Figures, quick: bool) -> anyhow::Result<()> {
    let (webhook_jobs, poll_jobs) = if quick { (20, 10) } else { (100, 50) };
    figures.progress(&format!(
        "GitHub calls per job: {webhook_jobs} jobs through webhooks (simulator's call log)"
    ));
    let dir = tempfile::tempdir()?;
    let (h, per_job) = run_jobs(&dir, webhook_jobs, true).await?;
    h.stop().await;
    figures.held("github_calls_per_job_webhook", per_job, "calls", "≤", 1.2);

    figures.progress(&format!(
        "GitHub calls per job: {poll_jobs} jobs by polling alone, then idle poll rounds"
    ));
    let dir = tempfile::tempdir()?;
    let (h, per_job) = run_jobs(&dir, poll_jobs, false).await?;
    figures.add("github_calls_per_job_poll", per_job, "calls");
    // One round (2 repositories x queued/in progress) to see the settled state, then rounds
    // (5 s apart) whose points are counted by the simulator's budget.
    wait_for_run_lists(&h, 4).await?;
    let points = h.sim.points_used();
    let rounds = if quick { 1 } else { 3 };
    wait_for_run_lists(&h, 4 * rounds).await?;
    let idle = (h.sim.points_used() - points) as f64 / rounds as f64;
    h.stop().await;
    figures.held("points_per_idle_poll_round", idle, "points", "≤", 0.0);
    Ok(())
}

/// Two replicas sharing one credential at 150 calls per window, every caller asking at once:
/// the most calls any window held. The window is scaled down from GitHub's minute (the same
/// pacer, in wall-clock time, with a shorter window) so the bench stays short.
pub(crate) async fn pacing(figures: &mut Figures, quick: bool) -> anyhow::Result<()> {
    let (rate, window) = (150u32, Duration::from_secs(if quick { 1 } else { 4 }));
    figures.progress(&format!(
        "JIT pacing: 2 replicas, one credential, {rate} per {window:?} window"
    ));
    let server = NatsServer::start(Default::default()).await?;
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let nats = shr_nats::connect(&server.url()).await?;
        let bus = shr_nats::ensure_bus(&nats).await?;
        replicas.push(Arc::new(KvCredential::new(
            bus.jobs.clone(),
            "pat-bench",
            rate,
            window,
        )?));
    }
    let released = Arc::new(Mutex::new(Vec::new()));
    let calls = 3 * rate as usize;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..calls {
        let (credential, released) = (replicas[i % 2].clone(), released.clone());
        tasks.spawn(async move {
            credential.pace().await;
            released
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Instant::now());
        });
    }
    while tasks.join_next().await.is_some() {}
    let mut times = released.lock().unwrap_or_else(|p| p.into_inner()).clone();
    times.sort();
    let most = (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| t.duration_since(times[i]) < window)
                .count()
        })
        .max()
        .unwrap_or(0);
    figures.held(
        "pacing_max_per_window",
        most as f64,
        "calls",
        "≤",
        f64::from(rate),
    );
    Ok(())
}
