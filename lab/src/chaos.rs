//! `shr-lab demo --chaos`: the system as separate processes, killed and restarted while jobs run.
//!
//! A [`Harness`] runs NATS, the GitHub simulator and a cloud simulator (which fails a share
//! of its API calls) in this process, with no actors of its own. The actors run as
//! `shr run --config <role>.toml` children: edge (webhook + poller) once, and scheduler,
//! provisioner and reaper (with the sweeper) twice each. Jobs arrive in batches over
//! [`ChaosOptions::arrival`]. While jobs run, every 1–3 s something gets `SIGKILL`: most
//! often a random role process (the edge, a scheduler, a provisioner or a reaper), which
//! comes back 0–2 s later; one time in five a runner process the cloud simulator started.
//! The NATS server is killed and restarted once, about a third of the way through; extra
//! cloud faults (throttling, server errors, slow answers and timeouts) are queued now and
//! then. Then the killing stops, every role is brought back, and the run must settle with
//! the demo's verdict, observed twice a quiet period apart ([`Harness::settle`]): every job
//! concluded exactly once, every instance reaped, nothing leaked. A runner killed before it
//! took a job leaves its job queued, to be served by another runner; one killed mid-job makes
//! GitHub fail that job, which the summary reports as `failed` (allowed up to the number of
//! runners killed), never as lost.
//!
//! With [`ChaosOptions::nats_nodes`] > 1 (`--nats-nodes 3`), NATS is a JetStream cluster with
//! every stream and bucket on 3 replicas; instead of the restart, one node is killed a third
//! of the way through and stays down. The edge is replicated too: two webhook replicas on
//! ports of their own behind a small TCP balancer on the port GitHub delivers to, and two
//! poller replicas, all of them killable like the rest.
//!
//! With [`ChaosOptions::placement`] `Agents` (`--placement agents`), the processes are the
//! agents placement's ([`crate::placement`]), on the tenancy security configuration (on every
//! node of a cluster): `webhook` (webhook identity, behind the balancer), `central` (poller
//! and scheduler) and one `agent-<tenant>` (provisioner and reaper) per tenant under its own
//! identity and cloud account, each twice. Jobs go to the tenants in turn, the extra cloud
//! faults to a random tenant's cloud, the kills first to a kind of process not killed yet,
//! and the run also needs a client without credentials refused and every job on a runner
//! its own tenant's agent created ([`TenantCreates`]).
//!
//! Everything random comes from one seeded generator, and the cloud simulator's failure
//! rate draws from the same seed, so a seed replays the same fault plan (process timing
//! still varies). Child logs go to `<work_dir>/logs/<role>.log`
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
use crate::placement::{Placement, TenantCreates};

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
    /// NATS nodes: 1 is one server, killed and restarted once; 3 is a JetStream cluster
    /// with state on 3 replicas, one node of which is killed for good a third of the way in,
    /// and the poller then also runs as a second, killable replica.
    pub nats_nodes: usize,
    /// `Distributed` (the default): every process under the operator's identity, one
    /// tenant. `Agents`: the agents placement's processes ([`crate::placement`]) on the
    /// tenancy security configuration, each replicated twice; `Centralized` is refused.
    pub placement: Placement,
    /// How many tenants the agents placement runs.
    pub tenants: usize,
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
            nats_nodes: 1,
            placement: Placement::Distributed,
            tenants: 3,
        }
    }
}

/// What a chaos run did and found.
#[derive(Debug, Clone)]
pub struct ChaosReport {
    pub summary: Summary,
    /// `SIGKILL`s sent to role processes.
    pub kills: usize,
    /// `SIGKILL`s sent to runner processes the cloud simulator started.
    pub runner_kills: usize,
    /// Role processes started again (after a kill or an exit of their own).
    pub restarts: usize,
    /// Role processes that ended without being killed.
    pub unexpected_exits: usize,
    pub nats_restarts: usize,
    /// NATS cluster nodes killed and left down (`nats_nodes` > 1).
    pub nats_nodes_lost: usize,
    /// The random failure rate of cloud API calls, in percent.
    pub cloud_fault_rate: u32,
    /// Faults queued on top of the rate: (throttling, server errors, slow, timeouts).
    pub injected_faults: [usize; 4],
    /// How long the chaos phase (killing) lasted.
    pub chaos: Duration,
    pub wall: Duration,
    /// The kinds of role process killed at least once (`webhook`, `central`, …).
    pub killed_kinds: std::collections::BTreeSet<String>,
    /// The kinds of role process the run had.
    pub kinds: std::collections::BTreeSet<String>,
    /// The agents placement: whose agent created the runner each job ran on.
    pub tenancy: Option<TenantCreates>,
    /// The agents placement: whether NATS refused a client without credentials at the
    /// start (the security accounts are in force on the nodes).
    pub anonymous_refused: Option<bool>,
}

impl ChaosReport {
    /// The run is good: see [`Summary::ok`]; jobs GitHub failed because a runner was
    /// killed mid-job are allowed, up to the number of runners killed.
    pub fn ok(&self) -> bool {
        self.summary.ok_but_reported_failures()
            && self.summary.failed <= self.runner_kills
            && self.tenancy.as_ref().is_none_or(|t| {
                t.violations.is_empty() && t.own == self.summary.jobs && t.checked == t.own
            })
            && self.anonymous_refused != Some(false)
    }
}

impl std::fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [throttle, server, slow, timeout] = self.injected_faults;
        write!(
            f,
            "chaos: kills={} runner_kills={} restarts={} unexpected_exits={} nats_restarts={} cloud_fault_rate={}% \
             injected_faults=throttle:{throttle},5xx:{server},slow:{slow},timeout:{timeout} \
             chaos_phase={:.1}s wall={:.1}s nats_nodes_lost={} killed_kinds={}/{}:{}{}",
            self.kills,
            self.runner_kills,
            self.restarts,
            self.unexpected_exits,
            self.nats_restarts,
            self.cloud_fault_rate,
            self.chaos.as_secs_f64(),
            self.wall.as_secs_f64(),
            self.nats_nodes_lost,
            self.killed_kinds.len(),
            self.kinds.len(),
            self.killed_kinds
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(","),
            match self.anonymous_refused {
                Some(refused) => format!(" anonymous_refused={refused}"),
                None => String::new(),
            },
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
    options.nats_nodes = usize::try_from(args.nats_nodes).unwrap_or(1);
    options.placement = args.placement;
    options.tenants = args.tenants;
    let report = run_chaos(options).await?;
    println!("{}", report.summary);
    if let Some(tenancy) = &report.tenancy {
        for violation in &tenancy.violations {
            println!("tenancy violation: {violation}");
        }
        println!("{tenancy}");
    }
    println!("{report}");
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// SplitMix64: small, seedable, good enough to pick victims and delays.
#[derive(Debug, Clone)]
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

/// The next extra cloud fault: what it is, its slot in [`ChaosReport::injected_faults`], and
/// how many calls it hits.
fn draw_fault(rng: &mut Rng) -> (CloudFault, usize, usize) {
    let (fault, slot) = match rng.below(0, 10) {
        0..=3 => (CloudFault::Throttle, 0),
        4..=5 => (CloudFault::ServerError, 1),
        6..=8 => (CloudFault::Slow(rng.millis(1000, 5000)), 2),
        // Past the clients' 30 s request timeout.
        _ => (CloudFault::Slow(Duration::from_secs(32)), 3),
    };
    let count = usize::try_from(rng.below(1, 4)).unwrap_or(1);
    (fault, slot, count)
}

/// Whether the next kill takes a runner process (one in five) rather than a role.
fn draw_runner_kill(rng: &mut Rng) -> bool {
    rng.below(0, 5) == 0
}

/// Runner processes (`<lab> sim runner`) descended from this process, the ones the cloud
/// simulator started, oldest pid first. Linux only (reads `/proc`).
fn runner_pids() -> Vec<u32> {
    let me = std::process::id();
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid ...`; comm may hold spaces, so split after the last `)`.
        let rest = &stat[stat.rfind(')')? + 1..];
        rest.split_whitespace().nth(1)?.parse().ok()
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            args.windows(2).any(|w| w[0] == b"sim" && w[1] == b"runner")
        })
        .filter(|&pid| {
            let mut at = pid;
            for _ in 0..8 {
                match parent(at) {
                    Some(p) if p == me => return true,
                    Some(p) if p > 1 => at = p,
                    _ => return false,
                }
            }
            false
        })
        .collect();
    out.sort_unstable();
    out
}

/// `SIGKILL`s one random runner process of this run; false when none runs.
fn kill_runner(rng: &mut Rng) -> bool {
    let pids = runner_pids();
    if pids.is_empty() {
        return false;
    }
    let pick = usize::try_from(rng.below(0, pids.len() as u64)).unwrap_or(0);
    let pid = pids[pick];
    let target = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
    match nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL) {
        Ok(()) => {
            println!("chaos: SIGKILL runner process {pid}");
            true
        }
        Err(error) => {
            println!("chaos: killing runner process {pid} failed: {error}");
            false
        }
    }
}

/// One role process: its configuration, log and current child.
#[derive(Debug)]
struct Role {
    name: String,
    /// What it runs (`webhook`, `central`, `agent-acme`, …); replicas share it.
    kind: String,
    config: PathBuf,
    log: PathBuf,
    /// Whether the chaos phase may kill it (every role is, today).
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
    /// Kill first a kind of role not killed yet, so every kind is killed at least once.
    cover_kinds: bool,
    killed_kinds: std::collections::BTreeSet<String>,
    restarts: usize,
    unexpected_exits: usize,
}

impl Roles {
    /// The role processes. With `replicated_edge`, the webhook and the poller run as two
    /// killable replicas each, the webhooks on ports of their own behind
    /// [`WebhookBalancer`] (returned with their addresses); otherwise one unkilled edge.
    fn write(
        harness: &Harness,
        bin: PathBuf,
        replicated_edge: bool,
    ) -> anyhow::Result<(Roles, Vec<std::net::SocketAddr>)> {
        let dir = harness.options.work_dir.join("roles");
        let logs = harness.options.work_dir.join("logs");
        std::fs::create_dir_all(&dir)?;
        std::fs::create_dir_all(&logs)?;
        if harness.options.placement == Placement::Agents {
            return Self::write_agents(harness, bin, &dir, &logs);
        }
        let edge: Vec<(&str, &[Actor], usize, bool)> = if replicated_edge {
            vec![
                ("webhook", &[Actor::Webhook], 2, true),
                ("poller", &[Actor::Poller], 2, true),
            ]
        } else {
            vec![("edge", &[Actor::Webhook, Actor::Poller], 1, true)]
        };
        let layout: Vec<(&str, &[Actor], usize, bool)> = [
            edge,
            vec![
                ("scheduler", &[Actor::Scheduler], 2, true),
                ("provisioner", &[Actor::Provisioner], 2, true),
                ("reaper", &[Actor::Reaper], 2, true),
            ],
        ]
        .concat();
        let front = webhook_addr(harness)?;
        let mut backends = Vec::new();
        let mut roles = Vec::new();
        for (kind, actors, replicas, killable) in layout {
            let config = dir.join(format!("{kind}.toml"));
            harness.config_for_actors(actors, &config)?;
            for i in 1..=replicas {
                let name = format!("{kind}-{i}");
                let config = if kind == "webhook" {
                    // Its own port; the balancer listens on the one GitHub delivers to.
                    let port = std::net::TcpListener::bind("127.0.0.1:0")?
                        .local_addr()?
                        .port();
                    let own = dir.join(format!("{name}.toml"));
                    let text = std::fs::read_to_string(&config)?.replace(
                        &format!("listen = \"{front}\""),
                        &format!("listen = \"127.0.0.1:{port}\""),
                    );
                    std::fs::write(&own, text)?;
                    backends.push(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
                    own
                } else {
                    config.clone()
                };
                roles.push(Role {
                    log: logs.join(format!("{name}.log")),
                    kind: kind.to_owned(),
                    name,
                    config,
                    killable,
                    child: None,
                    restart_at: None,
                });
            }
        }
        let roles = Roles {
            bin,
            roles,
            cover_kinds: false,
            killed_kinds: Default::default(),
            restarts: 0,
            unexpected_exits: 0,
        };
        Ok((roles, backends))
    }

    /// The agents placement's processes, two killable replicas of each: `webhook` (webhook
    /// identity, on ports of their own behind [`WebhookBalancer`]), `central` (poller and
    /// scheduler, central identity) and `agent-<tenant>` (provisioner and reaper, that
    /// tenant's identity and secrets).
    fn write_agents(
        harness: &Harness,
        bin: PathBuf,
        dir: &Path,
        logs: &Path,
    ) -> anyhow::Result<(Roles, Vec<std::net::SocketAddr>)> {
        let front = webhook_addr(harness)?;
        let mut backends = Vec::new();
        let mut roles = Vec::new();
        for (kind, config) in &harness.process_configs {
            for i in 1..=2 {
                let name = format!("{kind}-{i}");
                let config = if kind == "webhook" {
                    let port = std::net::TcpListener::bind("127.0.0.1:0")?
                        .local_addr()?
                        .port();
                    let own = dir.join(format!("{name}.toml"));
                    let text = std::fs::read_to_string(config)?.replace(
                        &format!("listen = \"{front}\""),
                        &format!("listen = \"127.0.0.1:{port}\""),
                    );
                    std::fs::write(&own, text)?;
                    backends.push(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
                    own
                } else {
                    config.clone()
                };
                roles.push(Role {
                    log: logs.join(format!("{name}.log")),
                    kind: kind.clone(),
                    name,
                    config,
                    killable: true,
                    child: None,
                    restart_at: None,
                });
            }
        }
        let roles = Roles {
            bin,
            roles,
            cover_kinds: true,
            killed_kinds: Default::default(),
            restarts: 0,
            unexpected_exits: 0,
        };
        Ok((roles, backends))
    }

    /// Every kind of role process.
    fn kinds(&self) -> std::collections::BTreeSet<String> {
        self.roles.iter().map(|r| r.kind.clone()).collect()
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
        let mut alive: Vec<usize> = (0..self.roles.len())
            .filter(|&i| self.roles[i].killable && self.roles[i].child.is_some())
            .collect();
        if self.cover_kinds {
            let fresh: Vec<usize> = (alive.iter().copied())
                .filter(|&i| !self.killed_kinds.contains(&self.roles[i].kind))
                .collect();
            if !fresh.is_empty() {
                alive = fresh;
            }
        }
        if alive.is_empty() {
            return Ok(false);
        }
        let pick = usize::try_from(rng.below(0, alive.len() as u64)).unwrap_or(0);
        let role = &mut self.roles[alive[pick]];
        self.killed_kinds.insert(role.kind.clone());
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

/// Where the simulator delivers webhooks.
fn webhook_addr(harness: &Harness) -> anyhow::Result<std::net::SocketAddr> {
    let config = registration::Config::load(&harness.config_path, &::clouds::Registry)
        .map_err(|e| anyhow::anyhow!("generated config is invalid:\n{e}"))?;
    Ok(config.webhook.listen)
}

/// A TCP balancer in front of webhook replicas, as a load balancer would be: each
/// connection goes to the next replica that accepts it. Stops when dropped.
#[derive(Debug)]
struct WebhookBalancer(tokio::task::JoinHandle<()>);

impl WebhookBalancer {
    async fn start(
        front: std::net::SocketAddr,
        backends: Vec<std::net::SocketAddr>,
    ) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(front)
            .await
            .with_context(|| format!("binding the webhook balancer to {front}"))?;
        let task = tokio::spawn(async move {
            let mut next = 0usize;
            while let Ok((mut inbound, _)) = listener.accept().await {
                next = next.wrapping_add(1);
                let order: Vec<_> = (0..backends.len())
                    .map(|i| backends[(next + i) % backends.len()])
                    .collect();
                tokio::spawn(async move {
                    for backend in order {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(backend).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            return;
                        }
                    }
                });
            }
        });
        Ok(Self(task))
    }
}

impl Drop for WebhookBalancer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits until the edge's webhook accepts connections (the simulator delivers there).
async fn wait_for_webhook(harness: &Harness, timeout: Duration) -> anyhow::Result<()> {
    let addr = webhook_addr(harness)?;
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
    hopts.nats_nodes = options.nats_nodes;
    hopts.seed = options.seed;
    anyhow::ensure!(
        options.placement != Placement::Centralized,
        "the chaos suite runs the distributed or the agents placement"
    );
    hopts.placement = options.placement;
    hopts.tenants = options.tenants;
    hopts.start_processes = false;
    let mut harness = Harness::start(hopts).await?;
    let anonymous_refused = match options.placement {
        Placement::Agents => Some(refuses_anonymous(&harness.nats_url).await),
        _ => None,
    };
    let replicated_edge = options.nats_nodes > 1 || options.placement == Placement::Agents;
    let (mut roles, backends) = Roles::write(&harness, options.shr_bin.clone(), replicated_edge)?;
    let _balancer = if replicated_edge {
        Some(WebhookBalancer::start(webhook_addr(&harness)?, backends).await?)
    } else {
        None
    };
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
    let result = drive(&mut harness, &mut roles, &mut rng, &options, started)
        .await
        .map(|report| ChaosReport {
            anonymous_refused,
            ..report
        });
    roles.stop().await;
    let failed = !result.as_ref().is_ok_and(ChaosReport::ok);
    if failed {
        let lost = !result.as_ref().is_ok_and(|report| report.summary.lost == 0);
        if lost && let Ok(text) = harness.explain_lost().await {
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
    let (mut kills, mut runner_kills, mut nats_restarts, mut nats_nodes_lost) = (0, 0, 0, 0);
    let cluster = harness.nats_nodes() > 1;
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
            queue(harness, due - queued);
            queued = due;
        }
        roles.tend(false)?;
        let done = completed(harness);
        if now >= next_kill {
            if draw_runner_kill(rng) {
                if kill_runner(rng) {
                    runner_kills += 1;
                }
            } else {
                let delay = rng.millis(0, 2000);
                if roles.kill_one(rng, delay).await? {
                    kills += 1;
                }
            }
            next_kill = now + rng.millis(1000, 3000);
        }
        if cluster && nats_nodes_lost == 0 && done * 3 >= options.jobs {
            let node = usize::try_from(rng.below(0, harness.nats_nodes() as u64)).unwrap_or(0);
            println!(
                "chaos: SIGKILL nats node {} for good ({done} jobs completed)",
                node + 1
            );
            harness.kill_nats_node(node).await?;
            nats_nodes_lost += 1;
        }
        if !cluster && nats_restarts == 0 && done * 3 >= options.jobs {
            println!("chaos: killing and restarting nats-server ({done} jobs completed)");
            harness.restart_nats().await?;
            nats_restarts += 1;
        }
        let clouds: Vec<&crate::clouds::DemoCloud> = (harness.cloud.iter())
            .chain(harness.tenants.iter().map(|t| &t.cloud))
            .collect();
        if !clouds.is_empty() && now >= next_fault {
            // One cloud draws nothing, so a distributed run's seed keeps its plan.
            let cloud = match clouds.len() {
                1 => clouds[0],
                n => clouds[usize::try_from(rng.below(0, n as u64)).unwrap_or(0) % n],
            };
            let (fault, slot, count) = draw_fault(rng);
            if let CloudFault::Slow(delay) = fault {
                harness.note_fault_delay(delay);
            }
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
        let nats_hit = nats_restarts > 0 || nats_nodes_lost > 0;
        if (mostly_done && nats_hit) || chaos_started.elapsed() >= chaos_budget {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let chaos = chaos_started.elapsed();
    if queued < options.jobs {
        queue(harness, options.jobs - queued);
    }
    if !cluster && nats_restarts == 0 {
        harness.restart_nats().await?;
        nats_restarts += 1;
    }
    if cluster && nats_nodes_lost == 0 {
        harness.kill_nats_node(0).await?;
        nats_nodes_lost += 1;
    }
    println!(
        "chaos: phase over after {:.1}s ({kills} kills); every role running again, settling",
        chaos.as_secs_f64()
    );
    roles.tend(true)?;
    // Settle: no more kills; roles that die on their own still come back.
    let summary = harness
        .settle(deadline, options.print, || roles.tend(false))
        .await?;
    let tenancy =
        (harness.options.placement == Placement::Agents).then(|| harness.tenant_creates());
    Ok(ChaosReport {
        summary,
        kills,
        runner_kills,
        restarts: roles.restarts,
        unexpected_exits: roles.unexpected_exits,
        nats_restarts,
        nats_nodes_lost,
        cloud_fault_rate: options.cloud_failure_percent,
        injected_faults: injected,
        chaos,
        wall: started.elapsed(),
        killed_kinds: roles.killed_kinds.clone(),
        kinds: roles.kinds(),
        tenancy,
        anonymous_refused: None,
    })
}

/// Whether every NATS node refuses a client that brings no credentials.
async fn refuses_anonymous(urls: &str) -> bool {
    for url in urls.split(',') {
        let attempt = tokio::time::timeout(Duration::from_secs(10), async_nats::connect(url));
        // Refused means an error from the server; a client that connects, or an attempt
        // that neither connects nor fails, is not a refusal.
        if !matches!(attempt.await, Ok(Err(_))) {
            return false;
        }
    }
    true
}

/// Queues `n` jobs: the agents placement's across its tenants, otherwise the demo's.
fn queue(harness: &mut Harness, n: usize) {
    if harness.options.placement == Placement::Agents {
        harness.queue_tenant_jobs(n, &LABEL_SETS);
    } else {
        harness.queue_jobs(n, &LABEL_SETS);
    }
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

    /// The kills and the extra cloud faults a seed draws, in order.
    fn plan(seed: u64) -> Vec<(bool, Duration, CloudFault, usize)> {
        let mut rng = Rng(seed);
        (0..50)
            .map(|_| {
                let runner = draw_runner_kill(&mut rng);
                let delay = rng.millis(0, 2000);
                let (fault, _, count) = draw_fault(&mut rng);
                (runner, delay, fault, count)
            })
            .collect()
    }

    #[test]
    fn a_seed_replays_the_same_fault_plan_and_another_seed_does_not() {
        assert_eq!(plan(42), plan(42));
        assert_ne!(plan(42), plan(43));
        let plan = plan(42);
        assert!(plan.iter().any(|p| p.0), "some kills take a runner");
        assert!(plan.iter().any(|p| !p.0), "most kills take a role");
        assert!(
            plan.iter()
                .any(|p| p.2 == CloudFault::Slow(Duration::from_secs(32))),
            "the plan holds timeouts"
        );
    }
}
