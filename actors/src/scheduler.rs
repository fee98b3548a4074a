//! Scheduler actor: turns job events into exactly one runner per job.
//!
//! # Messages
//! - Consumes: `shr.v1.job.{queued,started,completed}.<tenant>` (durable `scheduler`) and
//!   `shr.v1.runner.event.<tenant>` (durable `scheduler-runner-events`).
//! - Emits: `shr.v1.runner.provision.<tenant>.<provider>` ([`ProvisionRunner`]) and
//!   `shr.v1.runner.reap.<tenant>` ([`ReapRunner`]).
//! - Calls GitHub for JIT configs (paced per credential by the GitHub client).
//!
//! # Guarantees
//! - One runner per job attempt: the job record moves to `Provisioning` by compare-and-set,
//!   so a replayed or duplicated event (webhook redelivery, poller, both) never provisions twice.
//! - Crash safe: the runner record is written (state `Requested`) before the JIT call, and its
//!   GitHub runner id before the command is published. A `Requested` record older than
//!   [`CLAIM_TIMEOUT`] is taken over: the stale GitHub runner is deleted and a fresh JIT
//!   config made; the provisioner drops commands whose GitHub runner id no longer matches.
//! - Job binding: GitHub may give a runner made for job B to job A. When A starts on it, A's
//!   own idle runner is re-bound to B if its labels cover B's, else B is provisioned again
//!   (bounded by the registration's `max_attempts`); runners nobody needs are reaped.
//! - A job still queued whose latest runner went elsewhere gets another one: a fresh
//!   `queued` observation (the poller reports queued jobs every round) checks the runner's
//!   record and, once it has waited [`RUNNER_CHECK_AFTER`], asks GitHub whether it still
//!   exists and is idle. This heals bindings whose events were never seen.
//! - A job completed or cancelled before its runner took it gets its runners reaped; one not
//!   yet created is marked for deletion at once, and a runner is never made for a job that
//!   has finished.
//! - Limits (pool hook): a runner record is written only with one of its registration's
//!   `max_runners` slots; a job without one waits `Queued`. Warm pool runners: [`crate::pool`].
//!
//! # Assumptions
//! Events about one job are handled one at a time per process (lanes keyed by job id);
//! replicas are kept apart by compare-and-set alone.

use std::time::Duration;

use bus_schema::subject::{
    self, ALL_JOB_EVENTS, ALL_RUNNER_EVENTS, JOBS_STREAM, RUNNER_EVENTS_STREAM,
};
use bus_schema::{
    JobCompleted, JobEvent, JobQueued, JobRecord, JobRef, JobStarted, JobState, ProvisionRunner,
    ReapReason, ReapRunner, RunnerEvent, RunnerName, RunnerRecord, RunnerSpec, RunnerState,
    now_millis,
};
use tokio_util::sync::CancellationToken;

use crate::cas::cas;
use crate::consume::{self, ConsumerSpec, lane_key};
use crate::{Context, Error};

/// How long a `Requested` runner record may stay unfinished before another worker takes over.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one scheduler handler may run (JIT pacing can queue calls for a while).
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs the scheduler until `cancel` fires.
pub async fn run(ctx: Context, cancel: CancellationToken) -> Result<(), Error> {
    let jobs = {
        let ctx = ctx.clone();
        consume::run(
            ctx.bus.js.clone(),
            ConsumerSpec {
                stream: JOBS_STREAM,
                durable: subject::SCHEDULER_CONSUMER.into(),
                filters: vec![ALL_JOB_EVENTS.into()],
                lanes: 16,
                handler_timeout: HANDLER_TIMEOUT,
            },
            cancel.clone(),
            |msg| {
                JobEvent::decode(&msg.subject, &msg.payload)
                    .map(|e| lane_key((e.tenant().to_owned(), e.job().job_id)))
                    .unwrap_or(0)
            },
            move |msg| {
                let ctx = ctx.clone();
                async move {
                    let result = match JobEvent::decode(&msg.subject, &msg.payload) {
                        Ok(event) => on_job_event(&ctx, event).await,
                        Err(error) => Err(Error::Config(format!("undecodable job event: {error}"))),
                    };
                    (msg, result)
                }
            },
        )
    };
    let runner_events = {
        let ctx = ctx.clone();
        consume::run(
            ctx.bus.js.clone(),
            ConsumerSpec {
                stream: RUNNER_EVENTS_STREAM,
                durable: subject::SCHEDULER_RUNNER_EVENTS_CONSUMER.into(),
                filters: vec![ALL_RUNNER_EVENTS.into()],
                lanes: 4,
                handler_timeout: HANDLER_TIMEOUT,
            },
            cancel.clone(),
            |msg| lane_key(msg.payload.as_ref()),
            move |msg| {
                let ctx = ctx.clone();
                async move {
                    let result = match bus_schema::decode::<RunnerEvent>(&msg.payload) {
                        Ok(event) => on_runner_event(&ctx, event).await,
                        Err(error) => Err(error.into()),
                    };
                    (msg, result)
                }
            },
        )
    };
    let (a, b) = tokio::join!(jobs, runner_events);
    a.and(b)
}

/// Handles one job event. Public so tests can drive the scheduler without a consumer.
pub async fn on_job_event(ctx: &Context, event: JobEvent) -> Result<(), Error> {
    match event {
        JobEvent::Queued(e) => on_queued(ctx, e).await,
        JobEvent::Started(e) => on_started(ctx, e).await,
        JobEvent::Completed(e) => on_completed(ctx, e).await,
    }
}

fn runner_name(tenant: &str, job_id: u64, attempt: u32) -> String {
    RunnerName {
        tenant: tenant.to_owned(),
        job_id,
        attempt,
    }
    .to_string()
}

fn new_job_record(tenant: &str, registration: &str, job: &JobRef, state: JobState) -> JobRecord {
    let now = now_millis();
    JobRecord {
        tenant: tenant.to_owned(),
        registration: registration.to_owned(),
        job: job.clone(),
        state,
        attempts: 0,
        runners: Vec::new(),
        ran_on: None,
        conclusion: None,
        declined_reason: None,
        created_at: now,
        updated_at: now,
    }
}

/// The runner spec for a job, or why it is not ours.
fn resolve(
    ctx: &Context,
    registration: &str,
    tenant: &str,
    labels: &[String],
) -> Result<Result<RunnerSpec, (&'static str, String)>, Error> {
    let reg = ctx.registration(registration)?;
    let tenant = ctx
        .config
        .tenant(tenant)
        .ok_or_else(|| Error::Config(format!("unknown tenant `{tenant}`")))?;
    Ok(registration::labels::resolve(labels, reg, tenant).map_err(|d| (d.code(), d.to_string())))
}

enum QueuedOutcome {
    Declined(&'static str, String),
    /// Make sure this runner of the job exists (a new attempt, or the latest one resumed).
    Provision(String),
    Nothing(JobState),
}

/// The attempts a job may use: the registration's `max_attempts` for runners that failed or
/// vanished, plus one for every runner of the job that ran another of our jobs. A steal is
/// not a failure (that runner served a job, whose own runner is then spare), and it is
/// bounded by the jobs queued, so counting steals against `max_attempts` would only strand
/// the larger jobs of a burst whose runners the smaller ones keep taking.
async fn attempt_budget(ctx: &Context, job: &JobRecord, max_attempts: u32) -> Result<u32, Error> {
    let mut stolen = 0u32;
    for name in &job.runners {
        if let Some((r, _)) = ctx.runners.get(name).await?
            && r.ran_job_id.is_some_and(|ran| ran != job.job.job_id)
        {
            stolen += 1;
        }
    }
    Ok(max_attempts.saturating_add(stolen))
}

/// How long a runner may wait for its job before a fresh `queued` observation makes the
/// scheduler ask GitHub whether the runner went elsewhere.
pub const RUNNER_CHECK_AFTER: Duration = Duration::from_secs(10);

/// What became of the latest runner of a job that is still queued.
#[derive(Debug, PartialEq, Eq)]
enum Latest {
    /// It can still take the job.
    Serving,
    /// It took another job, failed, or is gone: the job needs another runner.
    Gone,
    /// GitHub no longer knows it (ephemeral runners vanish after their one job): the job
    /// needs another runner, and the leftover instance is reaped.
    Unregistered,
}

/// Decides whether `runner` can still serve queued job `job_id`. Records answer most cases;
/// for a runner that has waited long, a fresh observation (`ask_github`) checks GitHub,
/// which catches a runner that ran a job whose events were never seen.
async fn latest_runner(
    ctx: &Context,
    runner: &str,
    job_id: u64,
    ask_github: bool,
) -> Result<Latest, Error> {
    let Some((rec, _)) = ctx.runners.get(runner).await? else {
        // Pool hook: never written (a crash, or no free `max_runners` slot): the same
        // attempt is resumed rather than a new one spent.
        return Ok(Latest::Serving);
    };
    let serving = rec.job_id == job_id
        && rec.ran_job_id.is_none_or(|ran| ran == job_id)
        && matches!(
            rec.state,
            RunnerState::Requested
                | RunnerState::Creating
                | RunnerState::Running
                | RunnerState::Busy
        );
    if !serving {
        return Ok(Latest::Gone);
    }
    let waited = now_millis() - rec.updated_at
        > i64::try_from(RUNNER_CHECK_AFTER.as_millis()).unwrap_or(i64::MAX);
    let (true, true, Some(id), RunnerState::Running) =
        (ask_github, waited, rec.github_runner_id, rec.state)
    else {
        return Ok(Latest::Serving);
    };
    let scope = ctx.registration(&rec.registration)?.scope();
    Ok(
        match ctx
            .github(&rec.registration)?
            .get_runner(&scope, id)
            .await?
        {
            None => Latest::Unregistered,
            Some(r) if r.busy => Latest::Gone,
            Some(_) => Latest::Serving,
        },
    )
}

async fn on_queued(ctx: &Context, e: JobQueued) -> Result<(), Error> {
    let key = subject::job_key(&e.tenant, &e.registration, e.job.job_id)?;
    let spec = resolve(ctx, &e.registration, &e.tenant, &e.job.labels)?;
    let max_attempts = ctx.registration(&e.registration)?.limits.max_attempts;
    // A job still queued whose latest runner went elsewhere (or away) needs another one.
    // Pool hook: the record is kept (`current`) to decide below whether a slot is needed.
    let current = ctx.jobs.get(&key).await?.map(|(rec, _)| rec);
    let latest = match &current {
        Some(rec) if rec.state == JobState::Provisioning => rec.runners.last().cloned(),
        _ => None,
    };
    let fresh = e.source == bus_schema::JobSource::Poll;
    let latest_state = match &latest {
        Some(name) => Some(latest_runner(ctx, name, e.job.job_id, fresh).await?),
        None => None,
    };
    let latest_gone = matches!(latest_state, Some(Latest::Gone | Latest::Unregistered));
    let max_attempts = match (&current, latest_gone) {
        (Some(rec), true) => attempt_budget(ctx, rec, max_attempts).await?,
        _ => max_attempts,
    };
    tracing::debug!(job = e.job.job_id, source = ?e.source, ?latest, ?latest_state, "queued event");
    // Pool hook: a first runner, or a new one after the latest went elsewhere, needs one of
    // the registration's `max_runners` slots; without one the job waits `Queued` and is
    // poked when a slot frees (see `pool`).
    let next_attempt = match &current {
        _ if spec.is_err() => None,
        None => Some(1),
        Some(rec) if rec.state == JobState::Queued => Some(1),
        Some(rec) if latest_gone && rec.attempts < max_attempts => Some(rec.attempts + 1),
        Some(_) => None,
    };
    let has_slot = match next_attempt {
        Some(attempt) => {
            let name = runner_name(&e.tenant, e.job.job_id, attempt);
            crate::pool::take_slot(ctx, &e.registration, &name, e.job.job_id).await?
        }
        None => true,
    };
    let outcome = cas(&ctx.jobs, &key, |current| {
        Ok(match current {
            None => {
                let mut rec = new_job_record(&e.tenant, &e.registration, &e.job, JobState::Queued);
                match &spec {
                    Err((code, reason)) => {
                        rec.state = JobState::Declined;
                        rec.declined_reason = Some(reason.clone());
                        (Some(rec), QueuedOutcome::Declined(code, reason.clone()))
                    }
                    // Pool hook: no slot, the job waits.
                    Ok(_) if !has_slot => (Some(rec), QueuedOutcome::Nothing(JobState::Queued)),
                    Ok(_) => {
                        rec.state = JobState::Provisioning;
                        rec.attempts = 1;
                        let name = runner_name(&e.tenant, e.job.job_id, 1);
                        rec.runners.push(name.clone());
                        (Some(rec), QueuedOutcome::Provision(name))
                    }
                }
            }
            // Pool hook: a job that waited for a slot and now has one.
            Some(rec) if rec.state == JobState::Queued && spec.is_ok() && has_slot => {
                let mut rec = rec.clone();
                rec.transition(JobState::Provisioning, now_millis())?;
                rec.attempts = 1;
                let name = runner_name(&rec.tenant, rec.job.job_id, 1);
                rec.runners.push(name.clone());
                (Some(rec), QueuedOutcome::Provision(name))
            }
            Some(rec)
                if rec.state == JobState::Provisioning && rec.runners.last() == latest.as_ref() =>
            {
                // Pool hook: `has_slot`; without one the resume below is a no-op.
                if latest_gone && rec.attempts < max_attempts && has_slot {
                    let mut rec = rec.clone();
                    rec.attempts += 1;
                    rec.updated_at = now_millis();
                    let name = runner_name(&rec.tenant, rec.job.job_id, rec.attempts);
                    rec.runners.push(name.clone());
                    (Some(rec), QueuedOutcome::Provision(name))
                } else {
                    // Make sure the latest runner went through (crash resume). It may be a
                    // runner re-bound from another job, so resume it by name.
                    match rec.runners.last() {
                        Some(name) => (None, QueuedOutcome::Provision(name.clone())),
                        None => (None, QueuedOutcome::Nothing(rec.state)),
                    }
                }
            }
            // The record moved on since we looked at its runner: decide again on redelivery.
            Some(rec) if rec.state == JobState::Provisioning => {
                return Err(Error::InFlight(format!("job {}", rec.job.job_id)));
            }
            Some(rec) => (None, QueuedOutcome::Nothing(rec.state)),
        })
    })
    .await?;
    match (outcome, spec) {
        (QueuedOutcome::Declined(code, reason), _) => {
            ctx.stats.count_decline(code);
            tracing::info!(code,tenant = %e.tenant, registration = %e.registration, job = e.job.job_id, labels = ?e.job.labels, %reason, "job declined");
            Ok(())
        }
        (QueuedOutcome::Provision(name), Ok(spec)) => {
            if latest_gone && latest.as_ref() != Some(&name) {
                tracing::info!(job = e.job.job_id, runner = %name, source = ?e.source, "job still queued but its runner went elsewhere; provisioning again");
            }
            if let (Some(Latest::Unregistered), Some(old)) = (&latest_state, &latest) {
                reap(ctx, &e.tenant, old, ReapReason::JobGone).await?;
            }
            ensure_runner(ctx, &e.tenant, &e.registration, e.job.job_id, &name, &spec).await
        }
        (QueuedOutcome::Provision(_), Err(_)) => Ok(()),
        (QueuedOutcome::Nothing(state), _) => {
            tracing::debug!(
                job = e.job.job_id,
                ?state,
                "queued event for a job already handled"
            );
            Ok(())
        }
    }
}

/// Makes sure runner `attempt` of a job exists as a record, has a JIT config and a published
/// provision command. Idempotent; see the module's guarantees for the claim rules.
pub async fn ensure_provisioned(
    ctx: &Context,
    tenant: &str,
    registration: &str,
    job_id: u64,
    attempt: u32,
    spec: &RunnerSpec,
) -> Result<(), Error> {
    let name = runner_name(tenant, job_id, attempt);
    ensure_runner(ctx, tenant, registration, job_id, &name, spec).await
}

/// [`ensure_provisioned`] for a runner known by name (a re-bound runner keeps its name).
async fn ensure_runner(
    ctx: &Context,
    tenant: &str,
    registration: &str,
    job_id: u64,
    name: &str,
    spec: &RunnerSpec,
) -> Result<(), Error> {
    let name = name.to_owned();
    let claim_ms = i64::try_from(CLAIM_TIMEOUT.as_millis()).unwrap_or(i64::MAX);
    // Claim the record: create it, or take over a stale `Requested` one.
    let claimed_revision = loop {
        let now = now_millis();
        match ctx.runners.get(&name).await? {
            None => {
                // Pool hook: every runner record holds a `max_runners` slot; without one the
                // job is remembered as waiting and poked when a slot frees.
                if !crate::pool::take_slot(ctx, registration, &name, job_id).await? {
                    return Ok(());
                }
                let rec = RunnerRecord {
                    name: name.clone(),
                    tenant: tenant.to_owned(),
                    registration: registration.to_owned(),
                    provider: spec.provider,
                    job_id,
                    state: RunnerState::Requested,
                    ran_job_id: None,
                    github_runner_id: None,
                    instance_id: None,
                    spec: Some(spec.clone()),
                    delete_attempts: 0,
                    last_error: None,
                    created_at: now,
                    updated_at: now,
                };
                match ctx.runners.create(&name, &rec).await {
                    Ok(revision) => break revision,
                    Err(error) if error.is_conflict() => continue,
                    Err(error) => return Err(error.into()),
                }
            }
            Some((rec, _)) if rec.state != RunnerState::Requested => return Ok(()),
            Some((rec, _)) if now - rec.updated_at < claim_ms => {
                // Someone else is making this runner right now; look again later.
                return Err(Error::InFlight(name));
            }
            Some((mut rec, revision)) => {
                tracing::warn!(runner = %name, "taking over a stale runner request");
                if let Some(stale) = rec.github_runner_id.take() {
                    delete_github_runner(ctx, registration, stale).await?;
                }
                rec.updated_at = now;
                // A re-bound runner now serves this job: its new JIT config follows this spec.
                rec.spec = Some(spec.clone());
                match ctx.runners.update(&name, &rec, revision).await {
                    Ok(revision) => break revision,
                    Err(error) if error.is_conflict() => continue,
                    Err(error) => return Err(error.into()),
                }
            }
        }
    };

    // The job may have finished while this runner was being decided on (its completion saw
    // no record of this runner yet). Then the runner is not needed: give the name up.
    if job_id != crate::pool::POOL_JOB_ID {
        let job_key = subject::job_key(tenant, registration, job_id)?;
        if let Some((job, _)) = ctx.jobs.get(&job_key).await?
            && job.state.is_terminal()
        {
            cas(&ctx.runners, &name, |current| {
                Ok(match current {
                    Some(r) if r.state == RunnerState::Requested => {
                        let mut r = r.clone();
                        r.transition(RunnerState::Deleting, now_millis())?;
                        (Some(r), ())
                    }
                    _ => (None, ()),
                })
            })
            .await?;
            tracing::info!(runner = %name, job = job_id, "job finished before its runner was made; not making it");
            return reap(ctx, tenant, &name, ReapReason::JobGone).await;
        }
    }

    let reg = ctx.registration(registration)?;
    let github = ctx.github(registration)?;
    let request = github_client::JitRequest {
        name: name.clone(),
        runner_group_id: spec.runner_group_id.max(1),
        labels: spec.labels.clone(),
        work_folder: "_work".into(),
    };
    let scope = reg.scope();
    let jit = match github.generate_jit_config(&scope, &request).await {
        Ok(jit) => jit,
        Err(error) if error.status() == Some(409) => {
            // A runner of this name exists from an earlier, interrupted attempt: replace it.
            if let Some(existing) = github
                .list_runners(&scope)
                .await?
                .into_iter()
                .find(|r| r.name == name)
            {
                delete_github_runner(ctx, registration, existing.id).await?;
            }
            github.generate_jit_config(&scope, &request).await?
        }
        Err(error) => {
            release_claim(ctx, &name, claimed_revision).await;
            return Err(error.into());
        }
    };

    // Record the GitHub runner id, but only if nobody touched the record since the claim.
    let mut rec = match ctx.runners.get(&name).await? {
        Some((rec, revision)) if revision == claimed_revision => rec,
        _ => {
            tracing::warn!(runner = %name, "runner record changed during JIT; dropping this attempt");
            delete_github_runner(ctx, registration, jit.runner_id).await?;
            return Ok(());
        }
    };
    rec.github_runner_id = Some(jit.runner_id);
    rec.updated_at = now_millis();
    if let Err(error) = ctx.runners.update(&name, &rec, claimed_revision).await {
        delete_github_runner(ctx, registration, jit.runner_id).await?;
        return if error.is_conflict() {
            Ok(())
        } else {
            Err(error.into())
        };
    }
    let command = ProvisionRunner {
        tenant: tenant.to_owned(),
        registration: registration.to_owned(),
        runner_name: name.clone(),
        job_id,
        attempt: name.parse::<RunnerName>().map_or(0, |n| n.attempt),
        spec: spec.clone(),
        github_runner_id: jit.runner_id,
        jit_config: jit.encoded_jit_config,
        requested_at: now_millis(),
    };
    let msg_id = format!("{name}-{}", jit.runner_id);
    ctx.publish(
        subject::provision(tenant, spec.provider)?,
        bus_schema::encode(&command)?,
        Some(&msg_id),
    )
    .await?;
    tracing::info!(runner = %name, job = job_id, provider = %spec.provider, cpu_millis = spec.cpu_millis, memory_mib = spec.memory_mib, "runner requested");
    Ok(())
}

/// Lets a retry take the claim at once instead of waiting out [`CLAIM_TIMEOUT`].
async fn release_claim(ctx: &Context, name: &str, revision: u64) {
    if let Ok(Some((mut rec, rev))) = ctx.runners.get(name).await
        && rev == revision
        && rec.state == RunnerState::Requested
    {
        rec.updated_at = 0;
        let _ = ctx.runners.update(name, &rec, revision).await;
    }
}

async fn delete_github_runner(ctx: &Context, registration: &str, id: u64) -> Result<(), Error> {
    let reg = ctx.registration(registration)?;
    ctx.github(registration)?
        .delete_runner(&reg.scope(), id)
        .await
        .map_err(Error::from)
}

/// Whether a runner with `runner_labels` may be given a job with `job_labels` (GitHub's rule).
fn covers(runner_labels: &[String], job_labels: &[String]) -> bool {
    job_labels.iter().all(|j| {
        j.eq_ignore_ascii_case("self-hosted")
            || runner_labels.iter().any(|r| r.eq_ignore_ascii_case(j))
    })
}

/// Parses a runner name of this tenant, if the runner is ours.
fn our_runner(tenant: &str, name: &str) -> Option<RunnerName> {
    name.parse::<RunnerName>()
        .ok()
        .filter(|n| n.tenant == tenant)
}

async fn on_started(ctx: &Context, e: JobStarted) -> Result<(), Error> {
    let key = subject::job_key(&e.tenant, &e.registration, e.job.job_id)?;
    let ours = our_runner(&e.tenant, &e.runner_name).is_some();
    let record = cas(&ctx.jobs, &key, |current| {
        Ok(match current {
            None if !ours => (None, None),
            None => {
                let mut rec =
                    new_job_record(&e.tenant, &e.registration, &e.job, JobState::InProgress);
                rec.ran_on = Some(e.runner_name.clone());
                (Some(rec.clone()), Some(rec))
            }
            Some(rec) if rec.state.is_terminal() => (None, Some(rec.clone())),
            Some(rec) => {
                let mut rec = rec.clone();
                rec.transition(JobState::InProgress, now_millis())?;
                rec.ran_on = Some(e.runner_name.clone());
                (Some(rec.clone()), Some(rec))
            }
        })
    })
    .await?;
    tracing::debug!(job = e.job.job_id, runner = %e.runner_name, source = ?e.source, state = ?record.as_ref().map(|r| r.state), "started event");
    if let (true, Some(record)) = (ours, record) {
        bind(ctx, &record, &e.runner_name).await?;
    }
    Ok(())
}

async fn on_completed(ctx: &Context, e: JobCompleted) -> Result<(), Error> {
    let key = subject::job_key(&e.tenant, &e.registration, e.job.job_id)?;
    // Jobs that were never ours (GitHub-hosted ones in the same org) leave no record.
    let ours = resolve(ctx, &e.registration, &e.tenant, &e.job.labels)?.is_ok()
        || e.runner_name
            .as_deref()
            .is_some_and(|r| our_runner(&e.tenant, r).is_some());
    let record = cas(&ctx.jobs, &key, |current| {
        Ok(match current {
            None if !ours => (None, None),
            // Completed before we saw it queued: a tombstone keeps a late `queued` from
            // provisioning a runner nobody needs.
            None => {
                let mut rec =
                    new_job_record(&e.tenant, &e.registration, &e.job, JobState::Completed);
                rec.conclusion = e.conclusion.clone();
                rec.ran_on = e.runner_name.clone();
                (Some(rec.clone()), Some(rec))
            }
            Some(rec) if rec.state.is_terminal() => (None, Some(rec.clone())),
            Some(rec) => {
                let mut rec = rec.clone();
                rec.transition(JobState::Completed, now_millis())?;
                rec.conclusion = e.conclusion.clone();
                if e.runner_name.is_some() {
                    rec.ran_on = e.runner_name.clone();
                }
                (Some(rec.clone()), Some(rec))
            }
        })
    })
    .await?;
    let Some(record) = record else {
        return Ok(());
    };
    tracing::debug!(job = e.job.job_id, runner = ?e.runner_name, source = ?e.source, state = ?record.state, runners = ?record.runners, "completed event");
    let ran_on = e
        .runner_name
        .as_deref()
        .filter(|name| our_runner(&e.tenant, name).is_some());
    if let Some(runner) = ran_on {
        // The `started` event may have been lost: bind now, then reap the runner.
        bind(ctx, &record, runner).await?;
        mark_runner(ctx, runner, RunnerState::Completed, Some(e.job.job_id)).await?;
        reap(ctx, &e.tenant, runner, ReapReason::JobCompleted).await?;
    }
    // Runners made for this job that never ran it are no longer needed. One whose instance
    // does not exist yet is marked for deletion at once, so a provisioner that has not got to
    // it yet creates nothing (it skips runners being deleted, and undoes a create that races).
    for name in record.runners.iter().filter(|n| Some(n.as_str()) != ran_on) {
        let job_id = e.job.job_id;
        let unneeded = cas(&ctx.runners, name, |current| {
            Ok(match current {
                Some(r) if r.job_id == job_id && r.ran_job_id.is_none() => {
                    if matches!(r.state, RunnerState::Requested | RunnerState::Creating) {
                        let mut r = r.clone();
                        r.transition(RunnerState::Deleting, now_millis())?;
                        (Some(r), true)
                    } else {
                        (None, true)
                    }
                }
                _ => (None, false),
            })
        })
        .await?;
        if unneeded {
            reap(ctx, &e.tenant, name, ReapReason::JobGone).await?;
        }
    }
    Ok(())
}

/// Moves a runner record to `state` if that is legal from where it is.
async fn mark_runner(
    ctx: &Context,
    name: &str,
    state: RunnerState,
    ran_job: Option<u64>,
) -> Result<Option<RunnerRecord>, Error> {
    cas(&ctx.runners, name, |current| {
        Ok(match current {
            None => (None, None),
            Some(rec) => {
                let mut next = rec.clone();
                if ran_job.is_some() && next.ran_job_id.is_none() {
                    next.ran_job_id = ran_job;
                }
                if next.state.can_transition_to(state) {
                    next.transition(state, now_millis())?;
                }
                if next == *rec {
                    (None, Some(next))
                } else {
                    (Some(next.clone()), Some(next))
                }
            }
        })
    })
    .await
}

/// Records that `runner` took `job`, and repairs the job the runner was made for.
async fn bind(ctx: &Context, job: &JobRecord, runner: &str) -> Result<(), Error> {
    let Some(runner_rec) =
        mark_runner(ctx, runner, RunnerState::Busy, Some(job.job.job_id)).await?
    else {
        return Ok(());
    };
    if runner_rec.job_id == job.job.job_id {
        return Ok(());
    }
    // `runner` was made for job B but ran job A (`job`): A's own idle runners are free.
    let mut free = Vec::new();
    for name in job.runners.iter().filter(|n| n.as_str() != runner) {
        if let Some((rec, _)) = ctx.runners.get(name).await? {
            let idle = matches!(
                rec.state,
                RunnerState::Requested | RunnerState::Creating | RunnerState::Running
            );
            if idle && rec.ran_job_id.is_none() && rec.job_id == job.job.job_id {
                free.push(rec);
            }
        }
    }
    let b_id = runner_rec.job_id;
    // Pool hook: `runner` was a warm pool runner; A's idle runners refill the pool if they
    // fit, the rest are reaped.
    if b_id == crate::pool::POOL_JOB_ID {
        let adopted = crate::pool::adopt(ctx, &runner_rec.registration, &free).await?;
        free.retain(|f| !adopted.contains(&f.name));
        return reap_all(ctx, &free).await;
    }
    let b_key = subject::job_key(&runner_rec.tenant, &runner_rec.registration, b_id)?;
    let max_attempts = ctx
        .registration(&runner_rec.registration)?
        .limits
        .max_attempts;
    let Some((b, _)) = ctx.jobs.get(&b_key).await? else {
        return reap_all(ctx, &free).await;
    };
    // `runner` itself is one of B's runners that ran another job: it counts as a steal.
    let max_attempts = attempt_budget(ctx, &b, max_attempts).await?;
    let needs_runner = |b: &JobRecord| {
        b.state == JobState::Provisioning && b.runners.last().map(String::as_str) == Some(runner)
    };
    if !needs_runner(&b) {
        return reap_all(ctx, &free).await;
    }
    // Re-bind a free runner of A that covers B: claim the runner first (it must not have
    // taken a job meanwhile), then add it to B.
    let mut rebound = None;
    // A runner still being requested (no JIT config yet) is not re-bound: its maker would
    // drop it when the record changes under it.
    for f in free.iter().filter(|f| {
        let being_made = f.state == RunnerState::Requested && f.github_runner_id.is_none();
        !being_made
            && f.spec
                .as_ref()
                .is_some_and(|s| covers(&s.labels, &b.job.labels))
    }) {
        let claimed = cas(&ctx.runners, &f.name, |current| {
            Ok(match current {
                Some(rec) if rec.ran_job_id.is_none() && rec.job_id == job.job.job_id => {
                    let mut rec = rec.clone();
                    rec.job_id = b_id;
                    rec.updated_at = now_millis();
                    (Some(rec), true)
                }
                _ => (None, false),
            })
        })
        .await?;
        if claimed {
            rebound = Some(f.name.clone());
            break;
        }
    }
    enum Repair {
        None,
        Rebound(String),
        Provision(Box<JobRecord>, u32),
        Stuck,
    }
    let repair = cas(&ctx.jobs, &b_key, |current| {
        Ok(match current {
            Some(b) if needs_runner(b) => {
                let mut b = b.clone();
                b.updated_at = now_millis();
                if let Some(name) = &rebound {
                    b.runners.push(name.clone());
                    (Some(b), Repair::Rebound(name.clone()))
                } else if b.attempts < max_attempts {
                    b.attempts += 1;
                    let attempt = b.attempts;
                    b.runners
                        .push(runner_name(&b.tenant, b.job.job_id, attempt));
                    (Some(b.clone()), Repair::Provision(Box::new(b), attempt))
                } else {
                    (None, Repair::Stuck)
                }
            }
            _ => (None, Repair::None),
        })
    })
    .await?;
    match &repair {
        Repair::Rebound(name) => {
            free.retain(|f| &f.name != name);
            tracing::info!(runner, ran = job.job.job_id, made_for = b_id, rebound = %name, "runner taken by another job; re-bound a free runner");
        }
        Repair::Provision(b, attempt) => {
            tracing::info!(
                runner,
                ran = job.job.job_id,
                made_for = b_id,
                attempt,
                "runner taken by another job; provisioning again"
            );
            match resolve(ctx, &b.registration, &b.tenant, &b.job.labels)? {
                Ok(spec) => {
                    ensure_provisioned(ctx, &b.tenant, &b.registration, b_id, *attempt, &spec)
                        .await?
                }
                Err((_, reason)) => tracing::warn!(job = b_id, %reason, "job no longer admissible"),
            }
        }
        Repair::Stuck => {
            tracing::error!(
                job = b_id,
                max_attempts,
                "job's runners keep going elsewhere; attempts exhausted"
            );
        }
        Repair::None => {}
    }
    // A runner claimed for B that B no longer needed is surplus too (it points at B now).
    if let (Some(name), false) = (&rebound, matches!(repair, Repair::Rebound(_))) {
        reap(ctx, &job.tenant, name, ReapReason::JobGone).await?;
        free.retain(|f| &f.name != name);
    }
    reap_all(ctx, &free).await
}

async fn reap_all(ctx: &Context, runners: &[RunnerRecord]) -> Result<(), Error> {
    for f in runners {
        reap(ctx, &f.tenant, &f.name, ReapReason::JobGone).await?;
    }
    Ok(())
}

async fn reap(ctx: &Context, tenant: &str, runner: &str, reason: ReapReason) -> Result<(), Error> {
    let command = ReapRunner {
        tenant: tenant.to_owned(),
        runner_name: runner.to_owned(),
        reason,
        requested_at: now_millis(),
    };
    let msg_id = format!("reap-{runner}-{reason:?}");
    ctx.publish(
        subject::reap(tenant)?,
        bus_schema::encode(&command)?,
        Some(&msg_id),
    )
    .await
}

async fn on_runner_event(ctx: &Context, event: RunnerEvent) -> Result<(), Error> {
    let failed = match event {
        RunnerEvent::Failed(failed) => failed,
        // Pool hook: a deleted runner frees its `max_runners` slot for waiting jobs.
        RunnerEvent::Deleted(deleted) => {
            return crate::pool::on_runner_deleted(ctx, &deleted).await;
        }
        RunnerEvent::Created(_) => return Ok(()),
    };
    let key = subject::job_key(&failed.tenant, &failed.registration, failed.job_id)?;
    let max_attempts = ctx.registration(&failed.registration)?.limits.max_attempts;
    let retry = cas(&ctx.jobs, &key, |current| {
        Ok(match current {
            Some(b)
                if b.state == JobState::Provisioning
                    && b.runners.last() == Some(&failed.runner_name)
                    && b.attempts < max_attempts =>
            {
                let mut b = b.clone();
                b.attempts += 1;
                b.updated_at = now_millis();
                b.runners
                    .push(runner_name(&b.tenant, b.job.job_id, b.attempts));
                let attempt = b.attempts;
                (Some(b.clone()), Some((b, attempt)))
            }
            _ => (None, None),
        })
    })
    .await?;
    if let Some((b, attempt)) = retry {
        tracing::warn!(job = b.job.job_id, runner = %failed.runner_name, reason = %failed.reason, attempt, "runner failed to start; provisioning again");
        if let Ok(spec) = resolve(ctx, &b.registration, &b.tenant, &b.job.labels)? {
            ensure_provisioned(
                ctx,
                &b.tenant,
                &b.registration,
                b.job.job_id,
                attempt,
                &spec,
            )
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(labels: &[&str]) -> Vec<String> {
        labels.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn coverage_follows_githubs_rule() {
        let runner = v(&["serverless-hosted-runner", "cpu-2", "memory-4"]);
        assert!(covers(&runner, &v(&["serverless-hosted-runner"])));
        assert!(covers(
            &runner,
            &v(&["self-hosted", "SERVERLESS-hosted-runner", "cpu-2"])
        ));
        assert!(!covers(
            &v(&["serverless-hosted-runner"]),
            &v(&["serverless-hosted-runner", "cpu-2"])
        ));
    }

    #[test]
    fn only_this_tenants_runner_names_are_ours() {
        assert!(our_runner("acme", "shr-acme-12-1").is_some());
        assert!(our_runner("acme", "shr-other-12-1").is_none());
        assert!(our_runner("acme", "GitHub Actions 5").is_none());
    }
}
