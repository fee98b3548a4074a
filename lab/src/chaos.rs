//! `shr-lab demo --chaos`: the system as separate processes, killed and restarted while jobs run.
//!
//! A [`Harness`] runs NATS, the GitHub simulator and a cloud simulator (which fails a share
//! of its API calls) in this process, with no actors of its own. The actors run as
//! `shr run --config <role>.toml` children: edge (webhook + poller) once, and scheduler,
//! provisioner and reaper (with the sweeper) twice each. Jobs arrive in batches over
//! [`ChaosOptions::arrival`]. While jobs run, every 1–3 s a
//! random scheduler, provisioner or reaper gets `SIGKILL` and comes back 0–2 s later; the
//! NATS server is killed and restarted once, about a third of the way through; extra cloud
//! faults (throttling, server errors, slow answers and timeouts) are queued now and then.
//! Then the killing stops, every role is brought back, and the run must settle with the
//! demo's verdict: every job completed exactly once, every instance reaped, nothing leaked.
//!
//! Everything random comes from one seeded generator, so a seed replays the same schedule
//! (process timing still varies). Child logs go to `<work_dir>/logs/<role>.log`
//! (`SHR_LOG=info`); the children sweep every [`SWEEP_INTERVAL_SECS`] seconds.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bus_schema::ProviderKind;
use registration::Actor;
use simulators::github::JobStatus;
use tokio::process::{Child, Command};

use crate::clouds::CloudFault;
use crate::demo::{DemoArgs, LABEL_SETS};
use crate::harness::{Harness, HarnessOptions, Summary};

/// The sweep interval of the chaos children (`SHR_SWEEP_INTERVAL_SECS`).
pub const SWEEP_INTERVAL_SECS: u64 = 5;
/// The default share of cloud API calls that fail.
pub const DEFAULT_CLOUD_FAILURE_PERCENT: u32 = 20;

/// How to run the chaos suite.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    pub jobs: usize,
    /// A cloud simulator (`local` has none and is refused).
    pub provider: ProviderKind,
    /// Wiped and recreated.
    pub work_dir: PathBuf,
    pub seed: u64,
    pub job_duration: Duration,
    /// Jobs are queued in batches spread over this long, so events keep coming during kills.
    pub arrival: Duration,
    /// Give up after this long (chaos and settling together); the chaos phase ends at half
    /// of it at the latest.
    pub timeout: Duration,
    pub cloud_failure_percent: u32,
    /// The `shr` binary the role processes run.
    pub shr_bin: PathBuf,
    /// The lab binary runners run; `None` finds it ([`crate::bins::lab_binary`]).
    pub lab_binary: Option<PathBuf>,
    /// Print progress once a second.
    pub print: bool,
}

impl ChaosOptions {
    pub fn new(jobs: usize, work_dir: impl Into<PathBuf>, shr_bin: impl Into<PathBuf>) -> Self {
        Self {
            jobs,
            provider: ProviderKind::AzureAci,
            work_dir: work_dir.into(),
            seed: 1,
            job_duration: Duration::from_millis(500),
            // About 10 jobs a second, at least 20 s and at most 200 s of arrivals.
            arrival: Duration::from_secs((jobs as u64 / 10).clamp(20, 200)),
            timeout: Duration::from_secs(600),
            cloud_failure_percent: DEFAULT_CLOUD_FAILURE_PERCENT,
            shr_bin: shr_bin.into(),
            lab_binary: None,
            print: true,
        }
    }
}

/// What a chaos run did and found.
#[derive(Debug, Clone)]
pub struct ChaosReport {
    pub summary: Summary,
    /// `SIGKILL`s sent to role processes.
    pub kills: usize,
    /// Role processes started again (after a kill or an exit of their own).
    pub restarts: usize,
    /// Role processes that ended without being killed.
    pub unexpected_exits: usize,
    pub nats_restarts: usize,
    /// The random failure rate of cloud API calls, in percent.
    pub cloud_fault_rate: u32,
    /// Faults queued on top of the rate: (throttling, server errors, slow, timeouts).
    pub injected_faults: [usize; 4],
    /// How long the chaos phase (killing) lasted.
    pub chaos: Duration,
    pub wall: Duration,
}

impl ChaosReport {
    /// The run is good: see [`Summary::ok`].
    pub fn ok(&self) -> bool {
        self.summary.ok()
    }
}

impl std::fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [throttle, server, slow, timeout] = self.injected_faults;
        write!(
            f,
            "chaos: kills={} restarts={} unexpected_exits={} nats_restarts={} cloud_fault_rate={}% \
             injected_faults=throttle:{throttle},5xx:{server},slow:{slow},timeout:{timeout} \
             chaos_phase={:.1}s wall={:.1}s",
            self.kills,
            self.restarts,
            self.unexpected_exits,
            self.nats_restarts,
            self.cloud_fault_rate,
            self.chaos.as_secs_f64(),
            self.wall.as_secs_f64()
        )
    }
}

/// `shr-lab demo --chaos`.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let shr_bin = crate::bins::product_binary()?;
    let mut options = ChaosOptions::new(args.jobs, &args.work_dir, shr_bin);
    options.provider = match args.provider {
        ProviderKind::Local => ProviderKind::AzureAci,
        cloud => cloud,
    };
    options.seed = args.seed;
    options.job_duration = Duration::from_millis(args.job_duration_ms);
    options.timeout = Duration::from_secs(args.timeout_secs);
    let report = run_chaos(options).await?;
    println!("{}", report.summary);
    println!("{report}");
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// SplitMix64: small, seedable, good enough to pick victims and delays.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`lo` when the range is empty).
    fn below(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.next() % (hi - lo)
        }
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.below(lo, hi))
    }
}

/// One role process: its configuration, log and current child.
#[derive(Debug)]
struct Role {
    name: String,
    config: PathBuf,
    log: PathBuf,
    /// Scheduler, provisioner and reaper replicas are killed; the edge is not.
    killable: bool,
    child: Option<Child>,
    restart_at: Option<Instant>,
}

impl Role {
    fn spawn(&mut self, bin: &Path) -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        writeln!(log, "---- chaos: starting {}", self.name)?;
        let err = log.try_clone()?;
        let child = Command::new(bin)
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .env("SHR_LOG", "info")
            .env("SHR_SWEEP_INTERVAL_SECS", SWEEP_INTERVAL_SECS.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} ({})", self.name, bin.display()))?;
        self.child = Some(child);
        self.restart_at = None;
        Ok(())
    }

    /// `SIGKILL`, then reap the child.
    async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .await
                .with_context(|| format!("killing {}", self.name))?;
        }
        Ok(())
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }
}

/// The role processes of one run.
#[derive(Debug)]
struct Roles {
    bin: PathBuf,
    roles: Vec<Role>,
    restarts: usize,
    unexpected_exits: usize,
}

impl Roles {
    fn write(harness: &Harness, bin: PathBuf) -> anyhow::Result<Roles> {
        let dir = harness.options.work_dir.join("roles");
        let logs = harness.options.work_dir.join("logs");
        std::fs::create_dir_all(&dir)?;
        std::fs::create_dir_all(&logs)?;
        let layout: [(&str, &[Actor], usize, bool); 4] = [
            ("edge", &[Actor::Webhook, Actor::Poller], 1, false),
            ("scheduler", &[Actor::Scheduler], 2, true),
            ("provisioner", &[Actor::Provisioner], 2, true),
            ("reaper", &[Actor::Reaper], 2, true),
        ];
        let mut roles = Vec::new();
        for (kind, actors, replicas, killable) in layout {
            let config = dir.join(format!("{kind}.toml"));
            harness.config_for_actors(actors, &config)?;
            for i in 1..=replicas {
                let name = format!("{kind}-{i}");
                roles.push(Role {
                    log: logs.join(format!("{name}.log")),
                    name,
                    config: config.clone(),
                    killable,
                    child: None,
                    restart_at: None,
                });
            }
        }
        Ok(Roles {
            bin,
            roles,
            restarts: 0,
            unexpected_exits: 0,
        })
    }

    fn start_all(&mut self) -> anyhow::Result<()> {
        for role in &mut self.roles {
            role.spawn(&self.bin)?;
        }
        Ok(())
    }

    /// Notices children that ended on their own and schedules them to come back in 1 s;
    /// restarts every role whose time has come (all down roles at once with `now_all`).
    fn tend(&mut self, now_all: bool) -> anyhow::Result<()> {
        let now = Instant::now();
        for role in &mut self.roles {
            if let Some(child) = role.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                println!(
                    "chaos: {} exited on its own ({status}); see {}",
                    role.name,
                    role.log.display()
                );
                role.child = None;
                role.restart_at = Some(now + Duration::from_secs(1));
                self.unexpected_exits += 1;
            }
            let due = role.restart_at.is_some_and(|t| now_all || now >= t);
            if role.child.is_none() && (due || now_all) {
                role.spawn(&self.bin)?;
                self.restarts += 1;
            }
        }
        Ok(())
    }

    /// Kills a random running killable role; it comes back after `delay`.
    async fn kill_one(&mut self, rng: &mut Rng, delay: Duration) -> anyhow::Result<bool> {
        let alive: Vec<usize> = (0..self.roles.len())
            .filter(|&i| self.roles[i].killable && self.roles[i].child.is_some())
            .collect();
        if alive.is_empty() {
            return Ok(false);
        }
        let pick = usize::try_from(rng.below(0, alive.len() as u64)).unwrap_or(0);
        let role = &mut self.roles[alive[pick]];
        println!(
            "chaos: SIGKILL {} (pid {}), back in {:.1}s",
            role.name,
            role.pid().unwrap_or_default(),
            delay.as_secs_f64()
        );
        role.kill().await?;
        role.restart_at = Some(Instant::now() + delay);
        Ok(true)
    }

    async fn stop(&mut self) {
        for role in &mut self.roles {
            let _ = role.kill().await;
        }
    }
}

/// Jobs of the harness the GitHub simulator shows completed.
fn completed(harness: &Harness) -> usize {
    harness
        .sim
        .state()
        .jobs
        .iter()
        .filter(|j| harness.jobs.contains(&j.id) && j.status == JobStatus::Completed)
        .count()
}

/// Waits until the edge's webhook accepts connections (the simulator delivers there).
async fn wait_for_webhook(harness: &Harness, timeout: Duration) -> anyhow::Result<()> {
    let config = registration::Config::load(&harness.config_path, &::clouds::Registry)
        .map_err(|e| anyhow::anyhow!("generated config is invalid:\n{e}"))?;
    let addr = config.webhook.listen;
    let deadline = Instant::now() + timeout;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the edge's webhook did not listen on {addr} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Runs the chaos suite (see the module docs) and reports what happened.
pub async fn run_chaos(options: ChaosOptions) -> anyhow::Result<ChaosReport> {
    anyhow::ensure!(
        options.provider != ProviderKind::Local,
        "the chaos suite needs a cloud simulator (the local provider's runners are children of the provisioner)"
    );
    let started = Instant::now();
    let mut rng = Rng(options.seed);
    let mut hopts = HarnessOptions::new(&options.work_dir);
    hopts.provider = options.provider;
    hopts.job_duration = options.job_duration;
    hopts.actors = Vec::new();
    hopts.cloud_failure_percent = options.cloud_failure_percent;
    hopts.lab_binary = options.lab_binary.clone();
    let mut harness = Harness::start(hopts).await?;
    let mut roles = Roles::write(&harness, options.shr_bin.clone())?;
    if options.print {
        println!(
            "chaos: {} jobs, provider {}, seed {}, cloud failure rate {}%, nats {}, logs {}",
            options.jobs,
            options.provider,
            options.seed,
            options.cloud_failure_percent,
            harness.nats_url,
            harness.options.work_dir.join("logs").display()
        );
    }
    roles.start_all()?;
    let result = drive(&mut harness, &mut roles, &mut rng, &options, started).await;
    roles.stop().await;
    if let Ok(report) = &result
        && !report.ok()
    {
        if report.summary.lost > 0
            && let Ok(text) = harness.explain_lost().await
        {
            print!("{text}");
        }
        match describe_unsettled(&harness).await {
            Ok(text) => print!("{text}"),
            Err(error) => println!("chaos: describing what is left failed: {error:#}"),
        }
    }
    harness.stop().await;
    result
}

async fn drive(
    harness: &mut Harness,
    roles: &mut Roles,
    rng: &mut Rng,
    options: &ChaosOptions,
    started: Instant,
) -> anyhow::Result<ChaosReport> {
    wait_for_webhook(harness, Duration::from_secs(60)).await?;
    let deadline = started + options.timeout;
    // Jobs arrive in proportion to the time passed, over `arrival`.
    let arrival_ms = options.arrival.as_millis().max(1);
    let mut queued = 0;
    let mut next_kill = Instant::now() + rng.millis(1000, 3000);
    let mut next_fault = Instant::now() + rng.millis(2000, 5000);
    let mut next_print = Instant::now();
    let mut lines = 0u64;
    let (mut kills, mut nats_restarts) = (0, 0);
    let mut injected = [0usize; 4];
    let chaos_budget = options.timeout / 2;
    let chaos_started = Instant::now();
    // Chaos phase.
    loop {
        let now = Instant::now();
        let due = usize::try_from(
            (chaos_started.elapsed().as_millis() * options.jobs as u128 / arrival_ms)
                .min(options.jobs as u128),
        )
        .unwrap_or(options.jobs)
        .clamp(options.jobs.min(1), options.jobs);
        if queued < due {
            harness.queue_jobs(due - queued, &LABEL_SETS);
            queued = due;
        }
        roles.tend(false)?;
        let done = completed(harness);
        if now >= next_kill {
            let delay = rng.millis(0, 2000);
            if roles.kill_one(rng, delay).await? {
                kills += 1;
            }
            next_kill = now + rng.millis(1000, 3000);
        }
        if nats_restarts == 0 && done * 3 >= options.jobs {
            println!("chaos: killing and restarting nats-server ({done} jobs completed)");
            harness.restart_nats().await?;
            nats_restarts += 1;
        }
        if let Some(cloud) = &harness.cloud
            && now >= next_fault
        {
            let (fault, slot) = match rng.below(0, 10) {
                0..=3 => (CloudFault::Throttle, 0),
                4..=5 => (CloudFault::ServerError, 1),
                6..=8 => (CloudFault::Slow(rng.millis(1000, 5000)), 2),
                // Past the clients' 30 s request timeout.
                _ => (CloudFault::Slow(Duration::from_secs(32)), 3),
            };
            let count = usize::try_from(rng.below(1, 4)).unwrap_or(1);
            cloud.inject(fault, count);
            injected[slot] += count;
            next_fault = now + rng.millis(2000, 5000);
        }
        if options.print && now >= next_print {
            next_print = now + Duration::from_secs(1);
            lines += 1;
            print_progress(
                harness,
                started,
                [kills, roles.restarts, nats_restarts],
                lines,
            )
            .await;
        }
        let mostly_done = queued == options.jobs && done * 10 >= options.jobs * 9;
        if (mostly_done && nats_restarts > 0) || chaos_started.elapsed() >= chaos_budget {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let chaos = chaos_started.elapsed();
    if queued < options.jobs {
        harness.queue_jobs(options.jobs - queued, &LABEL_SETS);
    }
    if nats_restarts == 0 {
        harness.restart_nats().await?;
        nats_restarts += 1;
    }
    println!(
        "chaos: phase over after {:.1}s ({kills} kills); every role running again, settling",
        chaos.as_secs_f64()
    );
    roles.tend(true)?;
    // Settle: no more kills; roles that die on their own still come back.
    let summary = loop {
        roles.tend(false)?;
        let measured = harness.measure().await;
        let now = Instant::now();
        match measured {
            Ok((summary, settled, progress)) => {
                if options.print && (now >= next_print || settled) {
                    next_print = now + Duration::from_secs(1);
                    println!(
                        "[{:>6.1}s] settling | {progress}",
                        started.elapsed().as_secs_f64()
                    );
                }
                if settled || now >= deadline {
                    break summary;
                }
            }
            Err(error) if now >= deadline => return Err(error.context("measuring the run")),
            Err(error) => println!("chaos: measuring failed (will retry): {error:#}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    Ok(ChaosReport {
        summary,
        kills,
        restarts: roles.restarts,
        unexpected_exits: roles.unexpected_exits,
        nats_restarts,
        cloud_fault_rate: options.cloud_failure_percent,
        injected_faults: injected,
        chaos,
        wall: started.elapsed(),
    })
}

/// Every runner record not yet `Deleted` and every GitHub runner still registered.
async fn describe_unsettled(harness: &Harness) -> anyhow::Result<String> {
    let now = bus_schema::now_millis();
    let mut out = String::new();
    for r in harness.runner_records().await? {
        if r.state != bus_schema::RunnerState::Deleted {
            out.push_str(&format!(
                "left: runner {} {:?} job {} ran {:?} github id {:?} instance {:?} unchanged for {}s\n",
                r.name,
                r.state,
                r.job_id,
                r.ran_job_id,
                r.github_runner_id,
                r.instance_id,
                (now - r.updated_at) / 1000
            ));
        }
    }
    for r in harness.sim.state().runners {
        out.push_str(&format!(
            "left: GitHub runner {} (id {}) online={} job={:?}\n",
            r.name, r.id, r.online, r.job_id
        ));
    }
    Ok(out)
}

/// One progress line. The records (one KV read each) only every tenth line, so a large run
/// keeps its pace; the other lines count what the simulators hold.
async fn print_progress(harness: &Harness, started: Instant, counts: [usize; 3], line: u64) {
    let [kills, restarts, nats_restarts] = counts;
    let progress = if line.is_multiple_of(10) {
        match harness.measure().await {
            Ok((_, _, progress)) => progress,
            Err(error) => format!("(records unavailable: {error:#})"),
        }
    } else {
        let state = harness.sim.state();
        let mut by_status: std::collections::BTreeMap<&str, usize> = Default::default();
        for job in state.jobs.iter().filter(|j| harness.jobs.contains(&j.id)) {
            *by_status.entry(job.status.as_str()).or_default() += 1;
        }
        let live = harness
            .cloud
            .as_ref()
            .map_or(0, |c| c.live_instances_of(crate::harness::CONTROLLER_ID));
        format!(
            "jobs {by_status:?} | instances live={live} | github runners={}",
            state.runners.len()
        )
    };
    println!(
        "[{:>6.1}s] kills={kills} restarts={restarts} nats_restarts={nats_restarts} | {progress}",
        started.elapsed().as_secs_f64()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_seeded_and_in_range() {
        let (mut a, mut b) = (Rng(7), Rng(7));
        for _ in 0..100 {
            let x = a.below(1000, 3000);
            assert_eq!(x, b.below(1000, 3000));
            assert!((1000..3000).contains(&x));
        }
        assert_eq!(a.below(5, 5), 5);
    }
}
