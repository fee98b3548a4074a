//! What every cloud simulator shares, and the one interface the lab drives them through.
//!
//! - [`CloudSim`]: base URL, the provider section that points a tenant at the simulator, the
//!   instances it holds, its launch log, fault injection and a failure rate. Each cloud crate
//!   implements it under its `sim` feature; the lab holds a `Box<dyn CloudSim>`.
//! - [`Launch`] and [`spawn_runner`]: the runner program a started instance runs, as a child
//!   process that dies with its [`RunnerChild`] handle.
//! - [`FaultPlan`]: queued faults ahead of a seeded random failure rate.
//! - [`serve`] and [`ServeHandle`]: an axum router on a bound listener, stopped on drop.
//! - [`SimPlugin`]: how the lab starts a cloud's simulator, exported by each cloud crate.
//!
//! # Guarantees
//! - A runner child gets its inputs (the JIT config included) through its environment and the
//!   files the simulator wrote; only the configured args and the extra args the cloud passes
//!   (paths, never secrets) are on its command line.
//! - Dropping a [`RunnerChild`] kills the process; a child that exits by itself reports its
//!   exit code once, through the callback given to [`spawn_runner`].
//! - A [`FaultPlan`] with a seed draws the same failures in the same order on every run.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bus_schema::ProviderKind;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::sync::oneshot;

/// A transient failure every cloud can play, mapped onto each platform's own: throttling
/// (ECI `Throttling.User`, ARM 429 with `Retry-After: 1`, Google 429), a server error (ECI
/// 500, ARM 500, Google 503), or a normal answer after a delay (longer than the client's
/// request timeout, it is a timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudFault {
    Throttle,
    ServerError,
    Slow(Duration),
}

/// One instance a cloud simulator holds (running or stopped, not deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimInstanceTags {
    /// The instance's name on the platform (a container group, a job).
    pub name: String,
    /// Its tags or labels, as the platform stores them.
    pub tags: BTreeMap<String, String>,
}

/// A running cloud simulator, as the lab sees it. Dropping the value stops the simulator and
/// kills the runner processes it launched.
pub trait CloudSim: Send + Sync + std::fmt::Debug {
    /// The provider this simulator plays.
    fn kind(&self) -> ProviderKind;

    /// The simulator's base URL.
    fn base_url(&self) -> String;

    /// The fields of the `[tenants.<t>.providers.<kind>]` section that points a tenant at
    /// this simulator. `secret` is the reference (`file:…`) to the sim-only credential the
    /// simulator was started with.
    fn provider_config(&self, secret: &str) -> BTreeMap<String, String>;

    /// Fields of that section whose value is a list of strings (e.g. AWS `subnets`), beside
    /// [`CloudSim::provider_config`]'s string fields.
    fn provider_config_lists(&self) -> BTreeMap<String, Vec<String>> {
        BTreeMap::new()
    }

    /// Every instance the simulator holds (running or stopped, not deleted).
    fn instances(&self) -> Vec<SimInstanceTags>;

    /// The tag value an instance of `controller_id` carries (clouds with a restricted label
    /// syntax store a sanitized form).
    fn controller_tag(&self, controller_id: &str) -> String {
        controller_id.to_owned()
    }

    /// The create log: the instance names a runner process was started for, one entry per
    /// start (a name twice means an instance was started twice).
    fn launched(&self) -> Vec<String>;

    /// Creates a running instance behind the system's back, tagged with `tags`; `runner_name`
    /// is a valid runner name, which the simulator turns into its platform's instance name.
    fn create_orphan(&self, runner_name: &str, tags: BTreeMap<String, String>);

    /// Makes the next `count` API calls fail with `fault` (ahead of the failure rate).
    fn inject(&self, fault: CloudFault, count: usize);

    /// Makes `percent`% of API calls fail with the platform's transient error, drawn from an
    /// RNG seeded with `seed`; 0 clears the rate.
    fn set_failure_percent(&self, percent: u8, seed: u64);

    /// Instances whose container ended, or failed to start, without starting a runner (the
    /// image model ran their command and it never reached the runner's `run.sh`).
    fn exited_without_runner(&self) -> usize;
}

/// A cloud simulator started for the lab, and the sim-only credential it accepts (the lab
/// writes it to a file and points the provider section at it with a `file:` reference).
#[derive(Debug)]
pub struct StartedSim {
    pub sim: Box<dyn CloudSim>,
    pub secret: secrecy::SecretString,
}

/// Why a cloud simulator did not start.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// What [`SimPlugin::start`] returns.
pub type StartFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<StartedSim, StartError>> + Send>>;

/// How the lab starts one cloud's simulator. Each cloud crate exports one under its `sim`
/// feature, and the lab finds it through one list (`clouds::SIMS`), so the lab holds no
/// per-cloud code.
#[derive(Debug, Clone, Copy)]
pub struct SimPlugin {
    /// The providers this simulator plays.
    pub kinds: &'static [ProviderKind],
    /// Starts the simulator for `kind` (one of [`SimPlugin::kinds`]) on `listen`, with fresh
    /// sim-only credentials; every instance that starts runs [`Launch`] through the image
    /// model.
    pub start: fn(kind: ProviderKind, listen: SocketAddr, launch: Launch) -> StartFuture,
}

/// The program a simulator starts for each instance that starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// A runner process started by [`spawn_runner`]. Dropping it kills the process.
#[derive(Debug)]
pub struct RunnerChild {
    pid: Option<u32>,
    _kill: oneshot::Sender<()>,
}

impl RunnerChild {
    /// The process id, if the process had one when it started.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }
}

/// Starts `launch` with `extra_args` after its own and `env` added to its environment.
/// `on_exit(code)` runs when the child exits by itself (`None`: killed by a signal or not
/// waitable); it does not run when the [`RunnerChild`] is dropped first.
///
/// Must be called inside a tokio runtime.
pub fn spawn_runner<K, V>(
    launch: &Launch,
    extra_args: &[OsString],
    env: impl IntoIterator<Item = (K, V)>,
    on_exit: impl FnOnce(Option<i32>) + Send + 'static,
) -> std::io::Result<RunnerChild>
where
    K: AsRef<std::ffi::OsStr>,
    V: AsRef<std::ffi::OsStr>,
{
    let mut child = tokio::process::Command::new(&launch.program)
        .args(&launch.args)
        .args(extra_args)
        .envs(env)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id();
    let (kill, killed) = oneshot::channel::<()>();
    tokio::spawn(async move {
        tokio::select! {
            status = child.wait() => on_exit(status.ok().and_then(|s| s.code())),
            _ = killed => {
                let _ = child.kill().await;
            }
        }
    });
    Ok(RunnerChild { pid, _kill: kill })
}

/// Faults a simulator serves instead of calls: a queue drained first, then a seeded random
/// rate of one fault.
#[derive(Debug)]
pub struct FaultPlan<F> {
    queue: VecDeque<F>,
    rate: Option<(u8, F, StdRng)>,
}

impl<F> Default for FaultPlan<F> {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
            rate: None,
        }
    }
}

impl<F: Copy> FaultPlan<F> {
    /// Queues `fault` for the next `count` calls.
    pub fn push(&mut self, fault: F, count: usize) {
        self.queue.extend(std::iter::repeat_n(fault, count));
    }

    /// From now on `percent`% of calls (that find the queue empty) fail with `fault`, drawn
    /// from an RNG seeded with `seed`; 0 clears the rate.
    pub fn set_rate(&mut self, percent: u8, fault: F, seed: u64) {
        self.rate = (percent > 0).then(|| (percent.min(100), fault, StdRng::seed_from_u64(seed)));
    }

    /// Drops the queue and the rate.
    pub fn clear(&mut self) {
        self.queue.clear();
        self.rate = None;
    }

    /// The fault this call suffers, if one is due.
    pub fn next_fault(&mut self) -> Option<F> {
        if let Some(fault) = self.queue.pop_front() {
            return Some(fault);
        }
        let (percent, fault, rng) = self.rate.as_mut()?;
        (rng.random_range(0..100u8) < *percent).then_some(*fault)
    }
}

/// A served router; dropping it stops the server.
#[derive(Debug)]
pub struct ServeHandle {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl ServeHandle {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ServeHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` on `listener` until the handle is dropped. `name` labels the warning
/// logged if the server stops with an error.
pub fn serve(
    name: &'static str,
    listener: tokio::net::TcpListener,
    router: axum::Router,
) -> std::io::Result<ServeHandle> {
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::warn!(simulator = name, %error, "simulator stopped");
        }
    });
    Ok(ServeHandle { addr, task })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn fault_plan_drains_the_queue_before_the_rate_and_repeats_with_its_seed() {
        let draw = |seed| {
            let mut plan = FaultPlan::default();
            plan.set_rate(30, 'r', seed);
            plan.push('q', 2);
            (0..200).map(|_| plan.next_fault()).collect::<Vec<_>>()
        };
        let first = draw(5);
        assert_eq!(first[..2], [Some('q'), Some('q')]);
        let rated = first[2..].iter().filter(|f| f.is_some()).count();
        assert!((30..90).contains(&rated), "about 30% of 198: {rated}");
        assert_eq!(first, draw(5), "same seed, same failures");
    }

    #[test]
    fn fault_plan_rate_zero_and_clear_stop_failures() {
        let mut plan = FaultPlan::default();
        plan.set_rate(100, 1u8, 1);
        assert_eq!(plan.next_fault(), Some(1));
        plan.set_rate(0, 1, 1);
        assert_eq!(plan.next_fault(), None);
        plan.push(2, 3);
        plan.clear();
        assert_eq!(plan.next_fault(), None);
    }

    #[tokio::test]
    async fn runner_child_reports_its_exit_code_and_dies_with_its_handle() {
        let sh = |script: &str| Launch {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
        };
        let (tx, rx) = oneshot::channel();
        let child = spawn_runner(&sh("exit \"$CODE\""), &[], [("CODE", "3")], move |code| {
            let _ = tx.send(code);
        })
        .unwrap();
        assert!(child.pid().is_some());
        assert_eq!(rx.await.unwrap(), Some(3));

        let (tx, rx) = oneshot::channel::<Option<i32>>();
        let child = spawn_runner(&sh("sleep 30"), &[], [("A", "b")], move |code| {
            let _ = tx.send(code);
        })
        .unwrap();
        let pid = child.pid().unwrap();
        drop(child);
        // The exit callback never runs for a killed child: its sender is dropped instead.
        assert!(rx.await.is_err());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.contains(") Z") {
                break; // a zombie is dead; its parent reaps it later
            }
            assert!(
                std::time::Instant::now() < deadline,
                "child {pid} still alive"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
