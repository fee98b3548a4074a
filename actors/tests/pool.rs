#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Warm pool and `max_runners`: against a real nats-server, the GitHub simulator and an
//! in-memory provider.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actors::pool::{self, POOL_JOB_ID, Slots};
use actors::reaper::{self, Clock, Outcome};
use actors::{Context, ProviderSet, scheduler};
use bus_schema::subject;
use bus_schema::{
    JobCompleted, JobEvent, JobQueued, JobRef, JobSource, JobStarted, JobState, ProviderKind,
    ReapReason, RunnerRecord, RunnerState, now_millis,
};
use futures::StreamExt;
use github_client::GitHubClient;
use providers::{Capabilities, CreateRequest, Instance, InstanceStatus, Provider, ProviderError};
use secrecy::SecretString;
use shr_nats::{Bus, NatsServer, Records};
use simulators::github::{GitHubSim, GitHubSimHandle, SimConfig};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const TENANT: &str = "acme";
const REGISTRATION: &str = "acme-org";
const PAT: &str = "ghp_pool_test_token";
const LABEL: &str = "serverless-hosted-runner";
const IDLE_TIMEOUT_MS: i64 = 600_000;

/// Instances in memory: created and deleted at once.
#[derive(Debug, Default)]
struct Memory {
    instances: Mutex<BTreeMap<String, Instance>>,
}

#[async_trait::async_trait]
impl Provider for Memory {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Local
    }

    async fn create(&self, request: &CreateRequest) -> Result<Instance, ProviderError> {
        let instance = Instance {
            id: format!("mem-{}", request.runner_name),
            runner_name: request.runner_name.clone(),
            status: InstanceStatus::Running,
            tags: BTreeMap::new(),
        };
        let mut map = self.instances.lock().unwrap();
        Ok(map
            .entry(request.runner_name.clone())
            .or_insert(instance)
            .clone())
    }

    async fn delete(&self, runner_name: &str) -> Result<(), ProviderError> {
        self.instances.lock().unwrap().remove(runner_name);
        Ok(())
    }

    async fn get(&self, runner_name: &str) -> Result<Option<Instance>, ProviderError> {
        Ok(self.instances.lock().unwrap().get(runner_name).cloned())
    }

    async fn list(&self) -> Result<Vec<Instance>, ProviderError> {
        Ok(self.instances.lock().unwrap().values().cloned().collect())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            shapes: Vec::new(),
            max_cpu_millis: 64_000,
            max_memory_mib: 256 * 1024,
            dind: false,
            disk_mount: false,
        }
    }
}

fn config(api: &str, pat: &str, min_idle: u32, max_runners: u32) -> Arc<registration::Config> {
    let text = format!(
        r#"
[controller]
id = "shr-test"

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
min_idle = {min_idle}
max_runners = {max_runners}
idle_timeout_secs = 600
max_runtime_secs = 3600
"#
    );
    Arc::new(registration::Config::parse(&text, "pool-test.toml", &clouds::Registry).unwrap())
}

struct Env {
    sim: GitHubSimHandle,
    nats: NatsServer,
    pat: String,
    github: GitHubClient,
    provider: Arc<Memory>,
    providers: ProviderSet,
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
                jit_per_minute: Some(60_000),
                ..SimConfig::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let api = config(&sim.base_url(), "/unused", 0, 1)
            .registration(REGISTRATION)
            .unwrap()
            .api_url();
        let github = GitHubClient::new(
            api,
            github_client::Auth::Pat(SecretString::from(PAT)),
            github_client::ClientOptions {
                jit_per_minute: 60_000,
                max_retries: 0,
                ..Default::default()
            },
        )
        .unwrap();
        let nats = NatsServer::start(Default::default()).await.unwrap();
        let provider = Arc::new(Memory::default());
        let providers: ProviderSet = BTreeMap::from([(
            (TENANT.to_owned(), ProviderKind::Local),
            provider.clone() as Arc<dyn Provider>,
        )]);
        Env {
            sim,
            nats,
            pat: pat.display().to_string(),
            github,
            provider,
            providers,
            _dir: dir,
        }
    }

    /// A context of its own (its own NATS connection), as a scheduler replica has.
    async fn ctx(&self, min_idle: u32, max_runners: u32) -> Context {
        let client = shr_nats::connect(&self.nats.url()).await.unwrap();
        let bus: Bus = shr_nats::ensure_bus(&client).await.unwrap();
        Context::new(
            config(&self.sim.base_url(), &self.pat, min_idle, max_runners),
            bus,
            BTreeMap::from([(REGISTRATION.to_owned(), self.github.clone())]),
        )
    }
}

fn job(job_id: u64, labels: &[&str]) -> JobRef {
    JobRef {
        job_id,
        run_id: 1000 + job_id,
        repo: format!("{TENANT}/app"),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        name: format!("job {job_id}"),
    }
}

fn queued(job_id: u64) -> JobEvent {
    JobEvent::Queued(JobQueued {
        tenant: TENANT.into(),
        registration: REGISTRATION.into(),
        job: job(job_id, &[LABEL]),
        source: JobSource::Webhook,
        delivery_id: Some(format!("d-{job_id}")),
        observed_at: now_millis(),
    })
}

fn started(job_id: u64, runner: &str) -> JobEvent {
    JobEvent::Started(JobStarted {
        tenant: TENANT.into(),
        registration: REGISTRATION.into(),
        job: job(job_id, &[LABEL]),
        runner_name: runner.into(),
        runner_id: None,
        source: JobSource::Webhook,
        delivery_id: Some(format!("s-{job_id}")),
        observed_at: now_millis(),
    })
}

fn completed(job_id: u64, runner: &str) -> JobEvent {
    JobEvent::Completed(JobCompleted {
        tenant: TENANT.into(),
        registration: REGISTRATION.into(),
        job: job(job_id, &[LABEL]),
        conclusion: Some("success".into()),
        runner_name: Some(runner.into()),
        runner_id: None,
        source: JobSource::Webhook,
        delivery_id: Some(format!("c-{job_id}")),
        observed_at: now_millis(),
    })
}

async fn publish(ctx: &Context, event: &JobEvent) {
    ctx.publish(
        event.subject().unwrap(),
        event.encode().unwrap(),
        event.delivery_id(),
    )
    .await
    .unwrap();
}

async fn runner(ctx: &Context, name: &str) -> RunnerRecord {
    ctx.runners.get(name).await.unwrap().unwrap().0
}

async fn all_runners(ctx: &Context) -> Vec<RunnerRecord> {
    let mut out = Vec::new();
    for key in ctx.runners.names().await.unwrap() {
        if let Some((rec, _)) = ctx.runners.get(&key).await.unwrap() {
            out.push(rec);
        }
    }
    out
}

async fn idle_pool(ctx: &Context) -> BTreeSet<String> {
    all_runners(ctx)
        .await
        .into_iter()
        .filter(pool::is_idle_pool_runner)
        .map(|r| r.name)
        .collect()
}

async fn slots(ctx: &Context) -> Slots {
    let records: Records<Slots> = Records::new(ctx.bus.jobs.clone());
    records
        .get(&subject::slots_key(REGISTRATION).unwrap())
        .await
        .unwrap()
        .map(|(s, _)| s)
        .unwrap_or_default()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn pool_fills_to_min_idle_and_stays_there() {
    let env = Env::start().await;
    let ctx = env.ctx(2, 10).await;
    let report = pool::refill_once(&ctx, REGISTRATION).await.unwrap();
    assert_eq!(report.idle, 0);
    assert_eq!(report.created, vec!["shr-acme-0-1", "shr-acme-0-2"]);
    for name in &report.created {
        let rec = runner(&ctx, name).await;
        assert_eq!(
            (rec.job_id, rec.state, rec.ran_job_id),
            (POOL_JOB_ID, RunnerState::Requested, None)
        );
        assert_eq!(rec.spec.unwrap().labels, vec![LABEL.to_owned()]);
        let registered = env.sim.state();
        let gh = registered
            .runner_named(name)
            .expect("JIT runner registered");
        assert_eq!(Some(gh.id), rec.github_runner_id);
    }
    // Full: another round makes nothing.
    let again = pool::refill_once(&ctx, REGISTRATION).await.unwrap();
    assert_eq!((again.idle, again.created.len()), (2, 0));
    assert_eq!(
        slots(&ctx)
            .await
            .holders
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        names(&["shr-acme-0-1", "shr-acme-0-2"])
    );
}

#[tokio::test]
async fn job_on_a_pool_runner_hands_its_own_runner_to_the_pool_and_the_pool_refills() {
    let env = Env::start().await;
    let ctx = env.ctx(2, 10).await;
    pool::refill_once(&ctx, REGISTRATION).await.unwrap();
    // Job 7 gets its own runner, then GitHub gives it the warm pool runner instead.
    scheduler::on_job_event(&ctx, queued(7)).await.unwrap();
    assert_eq!(runner(&ctx, "shr-acme-7-1").await.job_id, 7);
    scheduler::on_job_event(&ctx, started(7, "shr-acme-0-1"))
        .await
        .unwrap();
    let taken = runner(&ctx, "shr-acme-0-1").await;
    assert_eq!(
        (taken.state, taken.ran_job_id),
        (RunnerState::Busy, Some(7))
    );
    // Its own runner, idle and of the pool's spec, joined the pool: nothing to create.
    assert_eq!(runner(&ctx, "shr-acme-7-1").await.job_id, POOL_JOB_ID);
    assert_eq!(
        idle_pool(&ctx).await,
        names(&["shr-acme-0-2", "shr-acme-7-1"])
    );
    let report = pool::refill_once(&ctx, REGISTRATION).await.unwrap();
    assert_eq!((report.idle, report.created.len()), (2, 0));

    // Job 8 (its queued event never reached us) takes a pool runner: the pool refills.
    scheduler::on_job_event(&ctx, started(8, "shr-acme-0-2"))
        .await
        .unwrap();
    let report = pool::refill_once(&ctx, REGISTRATION).await.unwrap();
    assert_eq!(report.idle, 1);
    assert_eq!(report.created, vec!["shr-acme-0-3"]);
    assert_eq!(
        idle_pool(&ctx).await,
        names(&["shr-acme-0-3", "shr-acme-7-1"])
    );

    // A pool runner a job ran on is reaped when the job completes, like any other.
    scheduler::on_job_event(&ctx, completed(7, "shr-acme-0-1"))
        .await
        .unwrap();
    assert_eq!(
        runner(&ctx, "shr-acme-0-1").await.state,
        RunnerState::Completed
    );
    let job7 = ctx
        .jobs
        .get(&subject::job_key(TENANT, REGISTRATION, 7).unwrap())
        .await
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(job7.state, JobState::Completed);
    // The adopted runner is no longer job 7's: its completion leaves it in the pool.
    assert!(idle_pool(&ctx).await.contains("shr-acme-7-1"));
}

#[tokio::test]
async fn a_job_without_a_slot_stays_queued_and_is_poked_when_one_frees() {
    let env = Env::start().await;
    let ctx = env.ctx(0, 1).await;
    scheduler::on_job_event(&ctx, queued(1)).await.unwrap();
    scheduler::on_job_event(&ctx, queued(2)).await.unwrap();
    let key2 = subject::job_key(TENANT, REGISTRATION, 2).unwrap();
    let job2 = ctx.jobs.get(&key2).await.unwrap().unwrap().0;
    assert_eq!((job2.state, job2.runners.len()), (JobState::Queued, 0));
    assert!(ctx.runners.get("shr-acme-2-1").await.unwrap().is_none());
    assert_eq!(
        slots(&ctx)
            .await
            .waiting
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![2]
    );
    // A redelivered event changes nothing while the cap is reached.
    scheduler::on_job_event(&ctx, queued(2)).await.unwrap();
    assert_eq!(
        ctx.jobs.get(&key2).await.unwrap().unwrap().0.state,
        JobState::Queued
    );

    // Job 1 runs and is reaped: its slot goes to job 2.
    scheduler::on_job_event(&ctx, started(1, "shr-acme-1-1"))
        .await
        .unwrap();
    scheduler::on_job_event(&ctx, completed(1, "shr-acme-1-1"))
        .await
        .unwrap();
    let outcome = reaper::reconcile(
        &ctx,
        &env.providers,
        "shr-acme-1-1",
        Some(ReapReason::JobCompleted),
        Clock::wall(),
    )
    .await
    .unwrap();
    assert_eq!(outcome, Outcome::Deleted(ReapReason::JobCompleted));
    // The scheduler's runner-event consumer would do this on the `Deleted` event; here the
    // pool round finds the slot and pokes.
    let report = pool::refill_once(&ctx, REGISTRATION).await.unwrap();
    assert_eq!(
        (report.reclaimed.clone(), report.poked),
        (vec!["shr-acme-1-1".to_owned()], 1)
    );
    // The poke is a `queued` event on the bus; handle it as the scheduler would.
    let poked = next_queued(&ctx, 2).await;
    scheduler::on_job_event(&ctx, poked).await.unwrap();
    let job2 = ctx.jobs.get(&key2).await.unwrap().unwrap().0;
    assert_eq!(
        (job2.state, job2.runners),
        (JobState::Provisioning, vec!["shr-acme-2-1".to_owned()])
    );
    assert_eq!(
        slots(&ctx).await,
        Slots {
            holders: BTreeMap::from([(
                "shr-acme-2-1".to_owned(),
                slots(&ctx).await.holders["shr-acme-2-1"]
            )]),
            waiting: BTreeMap::new(),
        }
    );
}

/// The last `queued` event for `job_id` on the jobs stream.
async fn next_queued(ctx: &Context, job_id: u64) -> JobEvent {
    let stream = ctx.bus.js.get_stream(subject::JOBS_STREAM).await.unwrap();
    let subject = subject::job_event(subject::JobEventKind::Queued, TENANT).unwrap();
    let msg = stream
        .get_last_raw_message_by_subject(&subject)
        .await
        .unwrap();
    let event = JobEvent::decode(&msg.subject, &msg.payload).unwrap();
    assert_eq!(event.job().job_id, job_id);
    event
}

#[tokio::test]
async fn cap_holds_across_two_schedulers_and_every_job_gets_a_runner() {
    const CAP: u32 = 3;
    const JOBS: u64 = 3 * CAP as u64;
    let env = Env::start().await;
    let replicas = [env.ctx(0, CAP).await, env.ctx(0, CAP).await];
    let ctx = replicas[0].clone();
    // Every runner record write, in the bucket's order: the live count at every moment.
    let mut watch = ctx.runners.0.store().watch_all().await.unwrap();
    let peak = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let peak = peak.clone();
        tokio::spawn(async move {
            let mut live: BTreeMap<String, bool> = BTreeMap::new();
            while let Some(Ok(entry)) = watch.next().await {
                let rec: RunnerRecord = bus_schema::decode(&entry.value).unwrap();
                live.insert(entry.key.clone(), rec.state != RunnerState::Deleted);
                peak.fetch_max(live.values().filter(|l| **l).count(), Ordering::SeqCst);
            }
        })
    };
    let cancel = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, replica) in replicas.iter().enumerate() {
        tasks.spawn(scheduler::run(replica.clone(), cancel.clone()));
        tasks.spawn(pool::run_pool(
            replica.clone(),
            format!("r{i}"),
            cancel.clone(),
        ));
    }
    tasks.spawn(actors::provisioner::run(
        ctx.clone(),
        env.providers.clone(),
        "shr-test".into(),
        cancel.clone(),
    ));
    tasks.spawn(actors::reaper::run(
        ctx.clone(),
        env.providers.clone(),
        cancel.clone(),
    ));
    let publishing: Vec<_> = (1..=JOBS)
        .map(|j| {
            let replica = replicas[usize::from(j % 2 == 0)].clone();
            tokio::spawn(async move { publish(&replica, &queued(j)).await })
        })
        .collect();
    for p in publishing {
        p.await.unwrap();
    }
    // Play GitHub: each runner that comes up runs its job, which then completes.
    let mut ran = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        for rec in all_runners(&ctx).await {
            if rec.state == RunnerState::Running && ran.insert(rec.job_id) {
                publish(&ctx, &started(rec.job_id, &rec.name)).await;
                publish(&ctx, &completed(rec.job_id, &rec.name)).await;
            }
        }
        let mut done = 0;
        for j in 1..=JOBS {
            let key = subject::job_key(TENANT, REGISTRATION, j).unwrap();
            if let Some((rec, _)) = ctx.jobs.get(&key).await.unwrap()
                && rec.state == JobState::Completed
            {
                done += 1;
            }
        }
        let all_deleted = all_runners(&ctx)
            .await
            .iter()
            .all(|r| r.state == RunnerState::Deleted);
        if done == JOBS && all_deleted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done}/{JOBS} jobs done; slots {:?}",
            slots(&ctx).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ran, (1..=JOBS).collect::<BTreeSet<_>>());
    cancel.cancel();
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    watcher.abort();
    assert_eq!(
        peak.load(Ordering::SeqCst),
        CAP as usize,
        "never more live runner records than the cap, and the cap was reached"
    );
    assert!(env.provider.instances.lock().unwrap().is_empty());
}

#[tokio::test]
async fn scaling_to_zero_makes_no_pool_runners_and_idle_ones_time_out() {
    let env = Env::start().await;
    let warm = env.ctx(1, 10).await;
    let created = pool::refill_once(&warm, REGISTRATION)
        .await
        .unwrap()
        .created;
    assert_eq!(created, vec!["shr-acme-0-1"]);
    // The registration scales to zero: no more pool runners, and the idle one times out.
    let zero = env.ctx(0, 10).await;
    let report = pool::refill_once(&zero, REGISTRATION).await.unwrap();
    assert_eq!((report.idle, report.created.len()), (1, 0));
    let created_at = runner(&zero, "shr-acme-0-1").await.created_at;
    let clock = Clock {
        now: created_at + IDLE_TIMEOUT_MS,
        grace: Duration::from_secs(30),
    };
    let outcome = reaper::reconcile(&zero, &env.providers, "shr-acme-0-1", None, clock)
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Deleted(ReapReason::IdleTimeout));
    assert!(env.sim.state().runner_named("shr-acme-0-1").is_none());
    let report = pool::refill_once(&zero, REGISTRATION).await.unwrap();
    assert_eq!(report.reclaimed, vec!["shr-acme-0-1"]);
    assert!(slots(&zero).await.holders.is_empty());
    assert!(idle_pool(&zero).await.is_empty());
}

#[tokio::test]
async fn run_pool_fills_the_pool_under_its_lease() {
    let env = Env::start().await;
    let replicas = [env.ctx(2, 10).await, env.ctx(2, 10).await];
    let cancel = CancellationToken::new();
    let tasks: Vec<_> = replicas
        .iter()
        .enumerate()
        .map(|(i, r)| tokio::spawn(pool::run_pool(r.clone(), format!("r{i}"), cancel.clone())))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while idle_pool(&replicas[0]).await.len() < 2 {
        assert!(Instant::now() < deadline, "pool not filled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let key = subject::pool_lease_key(REGISTRATION).unwrap();
    let holder = replicas[0].bus.leases.get(&key).await.unwrap().unwrap();
    assert!([b"r0".as_slice(), b"r1".as_slice()].contains(&holder.as_ref()));
    assert_eq!(idle_pool(&replicas[0]).await.len(), 2);
    cancel.cancel();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert!(replicas[0].bus.leases.get(&key).await.unwrap().is_none());
}

/// A runner record of job `job_id`, `Requested` and unchanged for longer than the claim
/// timeout, holding a slot.
async fn quiet_requested_runner(ctx: &Context, name: &str, job_id: u64) {
    let long_ago = now_millis() - actors::request::claim_ms() - 1_000;
    assert!(
        actors::slots::take_slot(ctx, REGISTRATION, name, job_id, long_ago)
            .await
            .unwrap()
    );
    let spec = pool::pool_spec(ctx, &ctx.registration(REGISTRATION).unwrap()).unwrap();
    let rec = RunnerRecord {
        name: name.into(),
        tenant: TENANT.into(),
        registration: REGISTRATION.into(),
        provider: ProviderKind::Local,
        job_id,
        state: RunnerState::Requested,
        ran_job_id: None,
        github_runner_id: Some(job_id),
        instance_id: None,
        spec: Some(spec),
        delete_attempts: 0,
        last_error: None,
        created_at: long_ago,
        updated_at: long_ago,
    };
    ctx.runners.create(name, &rec).await.unwrap();
}

/// A job record of job `job_id` in `state` that names `runners`.
async fn job_record(ctx: &Context, job_id: u64, state: JobState, runners: &[&str]) {
    let key = subject::job_key(TENANT, REGISTRATION, job_id).unwrap();
    let rec = bus_schema::JobRecord {
        tenant: TENANT.into(),
        registration: REGISTRATION.into(),
        job: job(job_id, &[LABEL]),
        state,
        attempts: u32::try_from(runners.len()).unwrap(),
        runners: runners.iter().map(|r| r.to_string()).collect(),
        ran_on: None,
        conclusion: None,
        declined_reason: None,
        declined_code: None,
        created_at: 1,
        updated_at: 1,
    };
    ctx.jobs.create(&key, &rec).await.unwrap();
}

#[tokio::test]
async fn the_pool_round_drops_a_runner_its_job_forgot_and_keeps_one_it_waits_for() {
    let env = Env::start().await;
    let ctx = env.ctx(0, 10).await;
    // Re-bound to job 9 by a process that died before job 9 recorded it; job 9 then ran
    // elsewhere and finished.
    quiet_requested_runner(&ctx, "shr-acme-9-1", 9).await;
    job_record(&ctx, 9, JobState::Completed, &[]).await;
    // Job 10 still waits for its runner (its maker is slow or gone: the job's next `queued`
    // observation takes it over, not the pool).
    quiet_requested_runner(&ctx, "shr-acme-10-1", 10).await;
    job_record(&ctx, 10, JobState::Provisioning, &["shr-acme-10-1"]).await;
    // Job 11 has no record at all.
    quiet_requested_runner(&ctx, "shr-acme-11-1", 11).await;

    let report = pool::refill_once(&ctx, REGISTRATION).await.unwrap();
    assert_eq!(
        report.dropped.iter().collect::<BTreeSet<_>>(),
        names(&["shr-acme-9-1", "shr-acme-11-1"]).iter().collect()
    );
    assert_eq!(
        runner(&ctx, "shr-acme-9-1").await.state,
        RunnerState::Deleting
    );
    assert_eq!(
        runner(&ctx, "shr-acme-11-1").await.state,
        RunnerState::Deleting
    );
    assert_eq!(
        runner(&ctx, "shr-acme-10-1").await.state,
        RunnerState::Requested
    );
    // Once marked, a second round leaves them to the reaper.
    let again = pool::refill_once(&ctx, REGISTRATION).await.unwrap();
    assert!(again.dropped.is_empty(), "{:?}", again.dropped);
}
