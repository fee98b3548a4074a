#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The reaper and its sweep: the decision table with injected time, then each rule against a
//! real nats-server, the GitHub simulator and the local process provider.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use actors::reaper::{
    self, Action, Clock, KeepReason, MAX_DELETE_ATTEMPTS, Observed, Outcome, Seen, Timeouts,
};
use actors::sweep::{self, SweepReport};
use actors::{Context, ProviderSet};
use bus_schema::{
    ErrorKind, Network, ProviderKind, ReapReason, ReapRunner, RunnerName, RunnerRecord, RunnerSpec,
    RunnerState, Scope, Secret, UnixMillis, now_millis,
};
use github_client::{GitHubClient, JitConfig, JitRequest};
use providers::local::{LocalConfig, LocalProvider};
use providers::{Capabilities, CreateRequest, Instance, InstanceStatus, Provider, ProviderError};
use secrecy::SecretString;
use shr_nats::NatsServer;
use simulators::github::{Fault, GitHubSim, GitHubSimHandle, NewJob, SimConfig};
use simulators::runner::{JitConfigSource, RunnerOptions};
use tokio_util::sync::CancellationToken;

const TENANT: &str = "acme";
const REGISTRATION: &str = "acme-org";
const CONTROLLER: &str = "shr-test";
const PAT: &str = "ghp_reaper_test_token";
const LABEL: &str = "serverless-hosted-runner";
const IDLE_TIMEOUT_MS: i64 = 600_000;
const MAX_RUNTIME_MS: i64 = 3_600_000;
const MINUTE: i64 = 60_000;

// ---- the decision table ----

fn rec(state: RunnerState, ran_job_id: Option<u64>) -> RunnerRecord {
    RunnerRecord {
        name: "shr-acme-1-1".into(),
        tenant: TENANT.into(),
        registration: REGISTRATION.into(),
        provider: ProviderKind::Local,
        job_id: 1,
        state,
        ran_job_id,
        github_runner_id: Some(7),
        instance_id: Some("local-1".into()),
        spec: None,
        delete_attempts: 0,
        last_error: None,
        created_at: 0,
        updated_at: 0,
    }
}

fn seen(instance: Seen<InstanceStatus>, github_busy: Seen<bool>) -> Observed {
    Observed {
        instance,
        github_busy,
    }
}

const TIMEOUTS: Timeouts = Timeouts {
    idle_timeout_ms: IDLE_TIMEOUT_MS,
    max_runtime_ms: MAX_RUNTIME_MS,
    grace_ms: MINUTE,
};

#[test]
fn a_cloud_only_orphan_waits_out_the_create_retry_window() {
    use ReapReason::Orphan;
    let window = i64::try_from(reaper::CREATE_RETRY_WINDOW.as_millis()).unwrap();
    // A sweep with a short grace (a fast sweep interval).
    let t = Timeouts {
        grace_ms: 1_000,
        ..TIMEOUTS
    };
    let alive = seen(Seen::Present(InstanceStatus::Running), Seen::Absent);
    let cloud_only = RunnerRecord {
        github_runner_id: None,
        ..rec(RunnerState::Orphaned, None)
    };
    for (age, want) in [
        (1_000, Action::Keep(KeepReason::NotDue)),
        (window - 1, Action::Keep(KeepReason::NotDue)),
        (window, Action::ReapIfIdle(Orphan)),
    ] {
        assert_eq!(
            reaper::decide(&cloud_only, alive, None, age, t),
            want,
            "age {age}"
        );
    }
    // One GitHub also knows is due after the grace alone.
    let with_github = rec(RunnerState::Orphaned, None);
    assert_eq!(
        reaper::decide(&with_github, alive, None, 1_000, t),
        Action::ReapIfIdle(Orphan)
    );
}

#[test]
fn decide_applies_each_rule() {
    use Action::*;
    use InstanceStatus::{Running as Up, Stopped};
    use KeepReason::*;
    use ReapReason::*;
    use RunnerState as S;
    use Seen::*;
    let alive = seen(Present(Up), Present(false));
    let busy = seen(Present(Up), Present(true));
    let dead = seen(Present(Stopped), Absent);
    let blind = seen(Unknown, Unknown);
    // (case, record, observed, asked, now, expected)
    let table = vec![
        (
            "deleted stays deleted",
            rec(S::Deleted, None),
            alive,
            Some(Manual),
            0,
            Keep(Deleted),
        ),
        // Orders.
        (
            "job completed",
            rec(S::Busy, Some(1)),
            busy,
            Some(JobCompleted),
            0,
            Delete(JobCompleted),
        ),
        (
            "manual",
            rec(S::Running, None),
            busy,
            Some(Manual),
            0,
            Delete(Manual),
        ),
        (
            "provision failed",
            rec(S::Failed, None),
            blind,
            Some(ProvisionFailed),
            0,
            Delete(ProvisionFailed),
        ),
        // On the way out: a periodic look waits out the grace, a command does not.
        (
            "completed, fresh, periodic",
            rec(S::Completed, Some(1)),
            dead,
            None,
            MINUTE - 1,
            Keep(NotDue),
        ),
        (
            "completed, stuck",
            rec(S::Completed, Some(1)),
            dead,
            None,
            MINUTE,
            Delete(JobCompleted),
        ),
        (
            "deleting, stuck",
            rec(S::Deleting, None),
            alive,
            None,
            MINUTE,
            Delete(JobGone),
        ),
        (
            "deleting, retried command",
            rec(S::Deleting, None),
            alive,
            Some(IdleTimeout),
            0,
            Delete(IdleTimeout),
        ),
        (
            "pending force delete, every sweep",
            rec(S::PendingForceDelete, None),
            alive,
            None,
            1,
            Delete(JobGone),
        ),
        (
            "failed, stuck",
            rec(S::Failed, None),
            blind,
            None,
            MINUTE,
            Delete(ProvisionFailed),
        ),
        // Max runtime: a hard stop, busy or not.
        (
            "busy, before max runtime",
            rec(S::Busy, Some(1)),
            busy,
            None,
            MAX_RUNTIME_MS - 1,
            Keep(Busy),
        ),
        (
            "busy, max runtime",
            rec(S::Busy, Some(1)),
            busy,
            None,
            MAX_RUNTIME_MS,
            Delete(MaxRuntime),
        ),
        (
            "creating, max runtime",
            rec(S::Creating, None),
            blind,
            Some(IdleTimeout),
            MAX_RUNTIME_MS,
            Delete(MaxRuntime),
        ),
        // Orphans: kept while busy, deleted once the mark is old enough.
        (
            "orphan, fresh mark",
            rec(S::Orphaned, None),
            alive,
            None,
            MINUTE - 1,
            Keep(NotDue),
        ),
        (
            "orphan, old mark",
            rec(S::Orphaned, None),
            alive,
            None,
            MINUTE,
            ReapIfIdle(Orphan),
        ),
        (
            "orphan, busy",
            rec(S::Orphaned, None),
            busy,
            None,
            MINUTE,
            Keep(Busy),
        ),
        // Dead instance.
        (
            "running, instance stopped",
            rec(S::Running, None),
            dead,
            None,
            MINUTE,
            Delete(ProvisionFailed),
        ),
        (
            "busy, instance gone",
            rec(S::Busy, Some(1)),
            seen(Absent, Absent),
            None,
            MINUTE,
            Delete(JobCompleted),
        ),
        (
            "running, instance stopped, recent",
            rec(S::Running, None),
            dead,
            None,
            MINUTE - 1,
            Keep(NotDue),
        ),
        (
            "running, instance stopped, GitHub busy",
            rec(S::Running, None),
            seen(Present(Stopped), Present(true)),
            None,
            MINUTE,
            Keep(Busy),
        ),
        (
            "creating, no instance yet",
            rec(S::Creating, None),
            seen(Absent, Absent),
            None,
            MINUTE,
            Keep(NotDue),
        ),
        // Busy runners are not scaled down.
        (
            "busy by record",
            rec(S::Running, Some(1)),
            alive,
            Some(JobGone),
            IDLE_TIMEOUT_MS,
            Keep(Busy),
        ),
        (
            "busy by GitHub (started event not seen yet)",
            rec(S::Running, None),
            busy,
            None,
            IDLE_TIMEOUT_MS,
            Keep(Busy),
        ),
        // Scale-down of idle runners.
        (
            "job gone",
            rec(S::Running, None),
            alive,
            Some(JobGone),
            0,
            ReapIfIdle(JobGone),
        ),
        (
            "idle, before timeout",
            rec(S::Running, None),
            alive,
            None,
            IDLE_TIMEOUT_MS - 1,
            Keep(NotDue),
        ),
        (
            "idle timeout",
            rec(S::Running, None),
            alive,
            None,
            IDLE_TIMEOUT_MS,
            ReapIfIdle(IdleTimeout),
        ),
        (
            "idle timeout, GitHub unknown",
            rec(S::Running, None),
            seen(Present(Up), Unknown),
            Some(IdleTimeout),
            IDLE_TIMEOUT_MS,
            ReapIfIdle(IdleTimeout),
        ),
        (
            "requested, never made",
            rec(S::Requested, None),
            blind,
            None,
            IDLE_TIMEOUT_MS,
            ReapIfIdle(IdleTimeout),
        ),
    ];
    for (case, record, observed, asked, now, expected) in table {
        assert_eq!(
            reaper::decide(&record, observed, asked, now, TIMEOUTS),
            expected,
            "{case}"
        );
    }
}

#[test]
fn max_runtime_is_the_smaller_of_limit_and_spec() {
    let config = registration::Config::parse(
        &config_text("/tmp", "/tmp/pat", "http://127.0.0.1:1/"),
        "t.toml",
        &clouds::Registry,
    )
    .unwrap();
    let limits = &config.registration(REGISTRATION).unwrap().limits;
    let mut record = rec(RunnerState::Running, None);
    let t = Timeouts::for_record(Some(limits), &record, Duration::from_secs(30));
    assert_eq!(
        (t.idle_timeout_ms, t.max_runtime_ms, t.grace_ms),
        (IDLE_TIMEOUT_MS, MAX_RUNTIME_MS, 30_000)
    );
    record.spec = Some(spec(120));
    assert_eq!(
        Timeouts::for_record(Some(limits), &record, Duration::ZERO).max_runtime_ms,
        120_000
    );
    record.spec = Some(spec(999_999));
    assert_eq!(
        Timeouts::for_record(Some(limits), &record, Duration::ZERO).max_runtime_ms,
        MAX_RUNTIME_MS
    );
}

// ---- the environment ----

fn config_text(work: &str, pat: &str, api: &str) -> String {
    format!(
        r#"
[controller]
id = "{CONTROLLER}"
work_dir = "{work}"

[tenants.{TENANT}.defaults]
provider = "local"

[tenants.{TENANT}.providers.local]

[[registrations]]
name = "{REGISTRATION}"
tenant = "{TENANT}"
scope = "org"
url = "https://github.com/{TENANT}"
api_url = "{api}"
auth = {{ pat = "file:{pat}" }}
detection = "poll"
poll_interval_secs = 30

[registrations.limits]
idle_timeout_secs = 600
max_runtime_secs = 3600
"#
    )
}

fn spec(max_runtime_secs: u64) -> RunnerSpec {
    RunnerSpec {
        provider: ProviderKind::Local,
        region: None,
        cpu_millis: 1000,
        memory_mib: 2048,
        image: "local".into(),
        network: Network::default(),
        disk_bucket: None,
        dind: false,
        runner_group_id: 1,
        labels: vec![LABEL.into()],
        charge_labels: vec![],
        max_runtime_secs,
    }
}

/// A provider whose deletes fail a set number of times before reaching the real one.
#[derive(Debug)]
struct FlakyDeletes {
    inner: LocalProvider,
    failures_left: AtomicU32,
    delete_calls: AtomicU32,
}

#[async_trait::async_trait]
impl Provider for FlakyDeletes {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Local
    }

    async fn create(&self, request: &CreateRequest) -> Result<Instance, ProviderError> {
        self.inner.create(request).await
    }

    async fn delete(&self, runner_name: &str) -> Result<(), ProviderError> {
        self.delete_calls.fetch_add(1, Ordering::SeqCst);
        let fail = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(ProviderError::new(
                ProviderKind::Local,
                "delete",
                ErrorKind::Transient,
                "injected: the cloud is down",
            ));
        }
        self.inner.delete(runner_name).await
    }

    async fn get(&self, runner_name: &str) -> Result<Option<Instance>, ProviderError> {
        self.inner.get(runner_name).await
    }

    async fn list(&self) -> Result<Vec<Instance>, ProviderError> {
        self.inner.list().await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

struct Env {
    ctx: Context,
    providers: ProviderSet,
    provider: Arc<FlakyDeletes>,
    sim: GitHubSimHandle,
    github: GitHubClient,
    scope: Scope,
    _nats: NatsServer,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let pat = dir.path().join("pat");
        std::fs::write(&pat, PAT).unwrap();
        let sim = GitHubSim::start(
            SimConfig {
                tokens: vec![SecretString::from(PAT)],
                repos: vec![format!("{TENANT}/app")],
                job_duration: Duration::from_secs(300),
                jit_per_minute: Some(6000),
                ..SimConfig::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let text = config_text(
            &dir.path().display().to_string(),
            &pat.display().to_string(),
            &sim.base_url(),
        );
        let config = Arc::new(
            registration::Config::parse(&text, "reaper-test.toml", &clouds::Registry).unwrap(),
        );
        let reg = config.registration(REGISTRATION).unwrap();
        let github = GitHubClient::new(
            reg.api_url(),
            github_client::Auth::Pat(SecretString::from(PAT)),
            github_client::ClientOptions {
                jit_per_minute: 6000,
                max_retries: 0,
                ..Default::default()
            },
        )
        .unwrap();
        let scope = reg.scope();
        let nats = NatsServer::start(Default::default()).await.unwrap();
        let client = shr_nats::connect(&nats.url()).await.unwrap();
        let bus = shr_nats::ensure_bus(&client).await.unwrap();
        let ctx = Context::new(
            config,
            bus,
            BTreeMap::from([(REGISTRATION.to_owned(), github.clone())]),
        );
        let provider = Arc::new(FlakyDeletes {
            inner: LocalProvider::new(LocalConfig {
                controller_id: CONTROLLER.into(),
                program: "/bin/sh".into(),
                args: vec!["-c".into(), "sleep 60".into()],
                state_dir: dir.path().join("local"),
            })
            .unwrap(),
            failures_left: AtomicU32::new(0),
            delete_calls: AtomicU32::new(0),
        });
        let providers: ProviderSet = BTreeMap::from([(
            (TENANT.to_owned(), ProviderKind::Local),
            provider.clone() as Arc<dyn Provider>,
        )]);
        Env {
            ctx,
            providers,
            provider,
            sim,
            github,
            scope,
            _nats: nats,
            _dir: dir,
        }
    }

    /// Starts an instance in the provider, behind the records' back.
    async fn instance(&self, name: &str) -> Instance {
        self.provider
            .create(&CreateRequest {
                controller_id: CONTROLLER.into(),
                tenant: TENANT.into(),
                registration: REGISTRATION.into(),
                runner_name: name.into(),
                spec: spec(0),
                jit_config: Secret::new("not-a-real-jit-config"),
            })
            .await
            .unwrap()
    }

    /// Starts an instance tagged with another deployment's controller id, in the same place
    /// as ours (a shared cloud account), and returns that deployment's view of the provider.
    async fn foreign_instance(&self, name: &str) -> LocalProvider {
        let theirs = LocalProvider::new(LocalConfig {
            controller_id: "another-deployment".into(),
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "sleep 60".into()],
            state_dir: self._dir.path().join("local"),
        })
        .unwrap();
        theirs
            .create(&CreateRequest {
                controller_id: "another-deployment".into(),
                tenant: TENANT.into(),
                registration: REGISTRATION.into(),
                runner_name: name.into(),
                spec: spec(0),
                jit_config: Secret::new("not-a-real-jit-config"),
            })
            .await
            .unwrap();
        theirs
    }

    async fn instance_exists(&self, name: &str) -> bool {
        self.provider.get(name).await.unwrap().is_some()
    }

    /// Registers a JIT runner in the simulator, behind the records' back.
    async fn jit(&self, name: &str) -> JitConfig {
        self.github
            .generate_jit_config(
                &self.scope,
                &JitRequest {
                    name: name.into(),
                    runner_group_id: 1,
                    labels: vec![LABEL.into()],
                    work_folder: "_work".into(),
                },
            )
            .await
            .unwrap()
    }

    fn github_runner_exists(&self, name: &str) -> bool {
        self.sim.state().runner_named(name).is_some()
    }

    /// A runner with a record in `state`, an instance and a registered GitHub runner.
    async fn runner(&self, name: &str, state: RunnerState, created_at: UnixMillis) -> JitConfig {
        let jit = self.jit(name).await;
        let instance = self.instance(name).await;
        let mut record = new_record(name, state, created_at);
        record.github_runner_id = Some(jit.runner_id);
        record.instance_id = Some(instance.id);
        self.ctx.runners.create(name, &record).await.unwrap();
        jit
    }

    /// Starts a fake runner on `jit` and gives it a job: the simulator then reports it busy.
    async fn make_busy(&self, name: &str, jit: &JitConfig) -> tokio::task::JoinHandle<()> {
        let options = RunnerOptions::new(JitConfigSource::Value(jit.encoded_jit_config.clone()));
        let runner = tokio::spawn(async move {
            let _ = simulators::runner::run(options).await;
        });
        self.sim.queue_job(NewJob {
            repo: format!("{TENANT}/app"),
            labels: vec![LABEL.into()],
            ..NewJob::default()
        });
        self.sim
            .wait_for(Duration::from_secs(15), |state, _| {
                state.runner_named(name).and_then(|r| r.job_id)
            })
            .await
            .unwrap();
        runner
    }

    async fn state(&self, name: &str) -> Option<RunnerRecord> {
        self.ctx.runners.get(name).await.unwrap().map(|(r, _)| r)
    }

    async fn reconcile(&self, name: &str, asked: Option<ReapReason>, now: UnixMillis) -> Outcome {
        reaper::reconcile(&self.ctx, &self.providers, name, asked, clock(now))
            .await
            .unwrap()
    }

    async fn sweep(&self, now: UnixMillis) -> SweepReport {
        sweep::sweep_once(&self.ctx, &self.providers, TENANT, clock(now))
            .await
            .unwrap()
    }
}

fn clock(now: UnixMillis) -> Clock {
    Clock {
        now,
        grace: Duration::from_secs(30),
    }
}

fn new_record(name: &str, state: RunnerState, created_at: UnixMillis) -> RunnerRecord {
    RunnerRecord {
        name: name.into(),
        tenant: TENANT.into(),
        registration: REGISTRATION.into(),
        provider: ProviderKind::Local,
        job_id: name.parse::<RunnerName>().unwrap().job_id,
        state,
        ran_job_id: None,
        github_runner_id: None,
        instance_id: None,
        spec: Some(spec(0)),
        delete_attempts: 0,
        last_error: None,
        created_at,
        updated_at: created_at,
    }
}

// ---- each rule against the real thing ----

#[tokio::test]
async fn completed_runner_is_deleted_with_its_github_runner() {
    let env = Env::start().await;
    let name = "shr-acme-10-1";
    env.runner(name, RunnerState::Completed, now_millis()).await;
    let cmd = ReapRunner {
        tenant: TENANT.into(),
        runner_name: name.into(),
        reason: ReapReason::JobCompleted,
        requested_at: now_millis(),
    };
    reaper::reap(&env.ctx, &env.providers, cmd.clone())
        .await
        .unwrap();
    assert!(!env.instance_exists(name).await);
    assert!(!env.github_runner_exists(name));
    assert_eq!(env.state(name).await.unwrap().state, RunnerState::Deleted);
    // Twice is safe.
    reaper::reap(&env.ctx, &env.providers, cmd).await.unwrap();
    assert_eq!(env.state(name).await.unwrap().state, RunnerState::Deleted);
}

#[tokio::test]
async fn a_runner_that_ran_its_job_is_deleted_without_a_github_call() {
    let env = Env::start().await;
    let name = "shr-acme-14-1";
    env.runner(name, RunnerState::Running, now_millis()).await;
    let (mut record, revision) = env.ctx.runners.get(name).await.unwrap().unwrap();
    record.transition(RunnerState::Busy, now_millis()).unwrap();
    record
        .transition(RunnerState::Completed, now_millis())
        .unwrap();
    record.ran_job_id = Some(14);
    let key = bus_schema::subject::runner_key(name).unwrap();
    env.ctx
        .runners
        .0
        .update(&key, &record, revision)
        .await
        .unwrap();
    let before = env.sim.exchanges().len();
    let cmd = ReapRunner {
        tenant: TENANT.into(),
        runner_name: name.into(),
        reason: ReapReason::JobCompleted,
        requested_at: now_millis(),
    };
    reaper::reap(&env.ctx, &env.providers, cmd).await.unwrap();
    assert!(!env.instance_exists(name).await);
    assert_eq!(env.state(name).await.unwrap().state, RunnerState::Deleted);
    // GitHub removes an ephemeral runner after its job: neither a look nor a DELETE.
    let calls: Vec<_> = env.sim.exchanges()[before..]
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    assert!(calls.is_empty(), "{calls:?}");
}

#[tokio::test]
async fn idle_runner_is_deregistered_then_deleted_after_idle_timeout() {
    let env = Env::start().await;
    let name = "shr-acme-11-1";
    let t0 = now_millis();
    env.runner(name, RunnerState::Running, t0).await;
    let before = env.reconcile(name, None, t0 + IDLE_TIMEOUT_MS - 1).await;
    assert_eq!(before, Outcome::Kept(KeepReason::NotDue));
    assert!(env.instance_exists(name).await && env.github_runner_exists(name));
    let after = env.reconcile(name, None, t0 + IDLE_TIMEOUT_MS).await;
    assert_eq!(after, Outcome::Deleted(ReapReason::IdleTimeout));
    assert!(!env.instance_exists(name).await);
    assert!(!env.github_runner_exists(name));
    assert_eq!(env.state(name).await.unwrap().state, RunnerState::Deleted);
}

#[tokio::test]
async fn runner_past_max_runtime_is_stopped_even_when_busy() {
    let env = Env::start().await;
    let name = "shr-acme-12-1";
    let t0 = now_millis();
    let jit = env.runner(name, RunnerState::Running, t0).await;
    let fake = env.make_busy(name, &jit).await;
    assert_eq!(
        env.reconcile(name, None, t0 + MAX_RUNTIME_MS - 1).await,
        Outcome::Kept(KeepReason::Busy)
    );
    assert_eq!(
        env.reconcile(name, None, t0 + MAX_RUNTIME_MS).await,
        Outcome::Deleted(ReapReason::MaxRuntime)
    );
    assert!(!env.instance_exists(name).await);
    assert_eq!(env.state(name).await.unwrap().state, RunnerState::Deleted);
    fake.abort();
}

#[tokio::test]
async fn runner_that_takes_a_job_while_being_reaped_for_idleness_is_kept() {
    let env = Env::start().await;
    let name = "shr-acme-13-1";
    let t0 = now_millis();
    let jit = env.runner(name, RunnerState::Running, t0).await;
    // The runner took a job, but the record has not heard of it yet (no started event).
    let fake = env.make_busy(name, &jit).await;
    let due = t0 + IDLE_TIMEOUT_MS;
    // GitHub is not asked first (that would cost a call): the deregistration is the check,
    // and GitHub refuses it (422) while the runner runs a job.
    assert_eq!(
        env.reconcile(name, Some(ReapReason::IdleTimeout), due)
            .await,
        Outcome::Kept(KeepReason::Busy)
    );
    let runner_path = format!("/orgs/{TENANT}/actions/runners/{}", jit.runner_id);
    let calls: Vec<_> = env
        .sim
        .exchanges()
        .into_iter()
        .filter(|e| e.path == runner_path)
        .map(|e| (e.method, e.status))
        .collect();
    assert_eq!(calls, [("DELETE".to_owned(), 422)], "one call, refused");
    // A deregistration that fails (502) leaves everything as it was, to be retried.
    env.sim.inject_fault(Fault {
        status: 502,
        count: 1,
        path_prefix: Some(runner_path),
        retry_after: None,
    });
    let failed = reaper::reconcile(
        &env.ctx,
        &env.providers,
        name,
        Some(ReapReason::IdleTimeout),
        clock(due),
    )
    .await;
    assert!(failed.is_err(), "{failed:?}");
    assert!(
        env.instance_exists(name).await,
        "the job's instance must live"
    );
    let state = env.sim.state();
    let runner = state.runner_named(name).unwrap();
    assert!(runner.job_id.is_some(), "the job still runs");
    let record = env.state(name).await.unwrap();
    assert_eq!(
        (record.state, record.delete_attempts),
        (RunnerState::Running, 0)
    );
    fake.abort();
}

#[tokio::test]
async fn reaper_deletes_orphan_after_two_sweeps() {
    let env = Env::start().await;
    let stray_instance = "shr-acme-9001-1";
    let stray_github = "shr-acme-9002-1";
    let live = "shr-acme-9003-1";
    let foreign = "shr-other-9004-1";
    let t0 = now_millis();
    env.instance(stray_instance).await;
    env.jit(stray_github).await;
    env.jit(foreign).await;
    env.runner(live, RunnerState::Running, t0).await;

    let first = env.sweep(t0).await;
    assert_eq!(
        first.marked,
        vec![stray_instance.to_owned(), stray_github.to_owned()]
    );
    assert!(first.deleted.is_empty(), "{first:?}");
    assert!(env.instance_exists(stray_instance).await);
    assert!(env.github_runner_exists(stray_github));
    assert_eq!(
        env.state(stray_instance).await.unwrap().state,
        RunnerState::Orphaned
    );

    let second = env.sweep(t0 + 60_000).await;
    assert_eq!(
        second.deleted,
        vec![stray_instance.to_owned(), stray_github.to_owned()]
    );
    assert_eq!(second.errors, 0, "{second:?}");
    assert!(!env.instance_exists(stray_instance).await);
    assert!(!env.github_runner_exists(stray_github));
    for name in [stray_instance, stray_github] {
        assert_eq!(env.state(name).await.unwrap().state, RunnerState::Deleted);
    }
    // A live runner within its idle timeout, and another tenant's runner, are left alone.
    assert!(env.instance_exists(live).await && env.github_runner_exists(live));
    assert_eq!(env.state(live).await.unwrap().state, RunnerState::Running);
    assert!(env.github_runner_exists(foreign));
    // Nothing left to do.
    assert_eq!(env.sweep(t0 + 120_000).await, SweepReport::default());
}

#[tokio::test]
async fn a_planted_instance_of_another_controller_survives_the_sweep() {
    let env = Env::start().await;
    let foreign = "shr-acme-9101-1";
    let ours = "shr-acme-9102-1";
    let theirs = env.foreign_instance(foreign).await;
    env.instance(ours).await;
    let t0 = now_millis();
    // Mark, then sweep before and after the create-retry window has passed.
    let first = env.sweep(t0).await;
    assert_eq!(first.marked, vec![ours.to_owned()], "{first:?}");
    let window = i64::try_from(reaper::CREATE_RETRY_WINDOW.as_millis()).unwrap();
    let early = env.sweep(t0 + window - 1).await;
    assert!(early.deleted.is_empty(), "{early:?}");
    assert!(env.instance_exists(ours).await);
    let late = env.sweep(t0 + window).await;
    assert_eq!(late.deleted, vec![ours.to_owned()], "{late:?}");
    env.sweep(t0 + 10 * window).await;
    // Ours is gone; theirs was never marked, never deleted, and still runs.
    assert!(!env.instance_exists(ours).await);
    assert!(env.state(foreign).await.is_none());
    let survivor = theirs
        .get(foreign)
        .await
        .unwrap()
        .expect("foreign instance survives");
    assert_eq!(survivor.status, InstanceStatus::Running);
    assert_eq!(env.provider.delete_calls.load(Ordering::SeqCst), 1);
    theirs.delete(foreign).await.unwrap();
}

#[tokio::test]
async fn sweep_removes_leftovers_of_deleted_runners_and_reaps_timers() {
    let env = Env::start().await;
    let t0 = now_millis();
    // A runner deleted while busy: its GitHub runner survived the hard stop.
    let leftover = "shr-acme-20-1";
    let jit = env.jit(leftover).await;
    let mut record = new_record(leftover, RunnerState::Deleted, t0);
    record.github_runner_id = Some(jit.runner_id);
    env.ctx.runners.create(leftover, &record).await.unwrap();
    // An idle runner past its idle timeout, found by the sweep's timer scan.
    let idle = "shr-acme-21-1";
    env.runner(idle, RunnerState::Running, t0 - IDLE_TIMEOUT_MS)
        .await;

    let report = env.sweep(t0 + 10_000).await;
    assert!(
        report.cleaned.is_empty(),
        "deleted too recently: {report:?}"
    );
    assert_eq!(report.deleted, vec![idle.to_owned()]);
    assert!(!env.instance_exists(idle).await && !env.github_runner_exists(idle));
    assert!(env.github_runner_exists(leftover));

    let report = env.sweep(t0 + 60_000).await;
    assert_eq!(report.cleaned, vec![leftover.to_owned()]);
    assert!(!env.github_runner_exists(leftover));
}

#[tokio::test]
async fn delete_failures_end_in_pending_force_delete_and_the_sweep_retries() {
    let env = Env::start().await;
    let name = "shr-acme-30-1";
    env.runner(name, RunnerState::Completed, now_millis()).await;
    env.provider
        .failures_left
        .store(MAX_DELETE_ATTEMPTS, Ordering::SeqCst);
    let cmd = ReapRunner {
        tenant: TENANT.into(),
        runner_name: name.into(),
        reason: ReapReason::JobCompleted,
        requested_at: now_millis(),
    };
    for attempt in 1..MAX_DELETE_ATTEMPTS {
        let error = reaper::reap(&env.ctx, &env.providers, cmd.clone())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Transient, "a retryable failure");
        let record = env.state(name).await.unwrap();
        assert_eq!(
            (record.state, record.delete_attempts),
            (RunnerState::Deleting, attempt)
        );
    }
    // The last try gives up: the command is done, the record waits for operators and sweeps.
    reaper::reap(&env.ctx, &env.providers, cmd).await.unwrap();
    let record = env.state(name).await.unwrap();
    assert_eq!(record.state, RunnerState::PendingForceDelete);
    assert_eq!(record.delete_attempts, MAX_DELETE_ATTEMPTS);
    assert!(record.last_error.unwrap().contains("the cloud is down"));
    assert!(env.instance_exists(name).await);
    assert_eq!(
        env.provider.delete_calls.load(Ordering::SeqCst),
        MAX_DELETE_ATTEMPTS
    );

    // The cloud is back: the next sweep finishes it.
    let report = env.sweep(now_millis()).await;
    assert_eq!(report.deleted, vec![name.to_owned()]);
    assert!(!env.instance_exists(name).await);
    assert_eq!(env.state(name).await.unwrap().state, RunnerState::Deleted);
}

#[tokio::test]
async fn sweeper_removes_orphans_under_its_lease() {
    let env = Env::start().await;
    let name = "shr-acme-40-1";
    // Known to GitHub too, so only the sweep's grace applies (not the create-retry window).
    env.instance(name).await;
    env.jit(name).await;
    let cancel = CancellationToken::new();
    let sweeper = tokio::spawn(sweep::run_sweeper(
        env.ctx.clone(),
        env.providers.clone(),
        "replica-1".into(),
        Duration::from_millis(300),
        cancel.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    // The record turns `Deleted` last, after the instance is gone.
    while env.state(name).await.map(|r| r.state) != Some(RunnerState::Deleted) {
        assert!(tokio::time::Instant::now() < deadline, "orphan not swept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!env.instance_exists(name).await);
    let lease_key = bus_schema::subject::sweep_lease_key(TENANT).unwrap();
    let holder = env.ctx.bus.leases.get(&lease_key).await.unwrap().unwrap();
    assert_eq!(holder.as_ref(), b"replica-1");
    cancel.cancel();
    sweeper.await.unwrap().unwrap();
    // Released on the way out.
    assert!(env.ctx.bus.leases.get(&lease_key).await.unwrap().is_none());
}
