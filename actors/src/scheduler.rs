//! Scheduler actor: turns job events into exactly one runner per job.
//!
//! # Messages
//! - Consumes: `shr.v1.job.{queued,started,completed}.<tenant>` (durable `scheduler`, lanes
//!   keyed by job) and `shr.v1.runner.event.<tenant>` (durable `scheduler-runner-events`,
//!   lanes keyed by runner name).
//! - Emits: `shr.v1.runner.provision.<tenant>.<provider>` ([`ProvisionRunner`](bus_schema::ProvisionRunner))
//!   and `shr.v1.runner.reap.<tenant>` ([`ReapRunner`](bus_schema::ReapRunner)), through [`crate::request`].
//! - Calls GitHub for JIT configs (paced per credential by the GitHub client).
//!
//! # A reconciler
//! The rules are pure functions in [`decide`]: the job record, its runners' records, the event,
//! `now` and the provider's capabilities in; the record to write and a list of actions out.
//! This module is the glue: it reads the records, asks [`decide::decide`] inside a
//! compare-and-set on the job record (a lost race decides again on the fresh record, with the
//! same `now`, read outside), then carries the actions out (JIT and provision through
//! [`crate::request`], reap commands, runner record writes). The warm pool
//! ([`crate::pool`]) sits behind three calls (adopt, a runner deleted, and slots through
//! [`crate::slots`]) and never calls back.
//!
//! # Guarantees
//! - One runner per job attempt: the job record moves to `Provisioning` by compare-and-set,
//!   so a replayed or duplicated event (webhook redelivery, poller, both) never provisions twice.
//! - Admission: a job is declined (recorded, counted, logged with the reason) when its labels
//!   are refused or its shape is one the provider cannot run, before any JIT registration.
//! - Crash safe: see [`crate::request`] for the claim rules of a runner record.
//! - Job binding: GitHub may give a runner made for job B to job A. When A starts on it, A's
//!   own idle runner is re-bound to B if its labels cover B's (even one still being made:
//!   its maker then finishes it for B); else B waits [`STEAL_SETTLE`] for a runner freed by
//!   the same wave of steals, then is provisioned again (bounded by the registration's
//!   `max_attempts` plus the steals). A's idle runner, if B cannot use it, goes to the job
//!   that has waited longest for a runner and that it covers, or stands in for a runner of
//!   another job not created yet; only then is it reaped (one not created yet is marked for
//!   deletion so it never is). A runner left re-bound but unrecorded by a crash is dropped by
//!   the pool round ([`crate::pool`]).
//! - A job still queued whose latest runner went elsewhere gets another one: a fresh
//!   `queued` observation (the poller reports queued jobs every round) checks the runner's
//!   record and, once it has waited [`RUNNER_CHECK_AFTER`], asks GitHub whether it still
//!   exists and is idle. This heals bindings whose events were never seen.
//! - A job completed or cancelled before its runner took it gets its runners reaped; one not
//!   yet created is marked for deletion at once, and a runner is never made for a job that
//!   has finished.
//! - Limits: a runner record is written only with one of its registration's `max_runners`
//!   slots ([`crate::slots`]); a job without one waits `Queued`.
//!
//! # Assumptions
//! Events about one job are handled one at a time per process (lanes keyed by job id);
//! replicas are kept apart by compare-and-set alone.

pub mod decide;

use std::time::Duration;

use bus_schema::subject::{
    self, ALL_JOB_EVENTS, ALL_RUNNER_EVENTS, JOBS_STREAM, RUNNER_EVENTS_STREAM,
};
use bus_schema::{
    JobCompleted, JobEvent, JobQueued, JobRecord, JobSource, JobStarted, ReapReason, RunnerEvent,
    RunnerFailed, RunnerRecord, RunnerSpec, RunnerState, UnixMillis, now_millis,
};
use tokio_util::sync::CancellationToken;

use crate::cas::cas;
use crate::consume::{self, ConsumerSpec};
use crate::request::{self, drop_unneeded, reap};
use crate::slots::{self, POOL_JOB_ID};
use crate::{Context, Error};
use decide::{Action, Admission, Decision, Decline, Event, Facts, Latest, Look, Refusal};

pub use crate::request::{CLAIM_TIMEOUT, ensure_provisioned};

/// How long one scheduler handler may run (JIT pacing can queue calls for a while).
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a runner may wait for its job before a fresh `queued` observation makes the
/// scheduler ask GitHub whether the runner went elsewhere.
pub const RUNNER_CHECK_AFTER: Duration = Duration::from_secs(10);

/// Runs the scheduler until `cancel` fires.
pub async fn run(ctx: Context, cancel: CancellationToken) -> Result<(), Error> {
    let jobs = consume::run(
        ctx.bus.js.clone(),
        ConsumerSpec {
            stream: JOBS_STREAM,
            durable: subject::SCHEDULER_CONSUMER.into(),
            filter: ALL_JOB_EVENTS.into(),
            lanes: 16,
            handler_timeout: HANDLER_TIMEOUT,
        },
        cancel.clone(),
        |msg| {
            JobEvent::decode(&msg.subject, &msg.payload)
                .map(|e| format!("{}.{}", e.tenant(), e.job().job_id))
                .unwrap_or_default()
        },
        {
            let ctx = ctx.clone();
            move |msg| {
                let ctx = ctx.clone();
                async move {
                    let result = match JobEvent::decode(&msg.subject, &msg.payload) {
                        Ok(event) => {
                            match consume::registration_of(
                                &ctx,
                                event.tenant(),
                                event.registration(),
                            ) {
                                Ok(()) => on_job_event(&ctx, event).await,
                                Err(error) => consume::refuse(&msg.subject, &error),
                            }
                        }
                        Err(error @ bus_schema::JobEventError::TenantMismatch { .. }) => {
                            consume::refuse(&msg.subject, &error)
                        }
                        Err(error) => Err(Error::Config(format!("undecodable job event: {error}"))),
                    };
                    (msg, result)
                }
            }
        },
    );
    let runner_events = consume::run(
        ctx.bus.js.clone(),
        ConsumerSpec {
            stream: RUNNER_EVENTS_STREAM,
            durable: subject::SCHEDULER_RUNNER_EVENTS_CONSUMER.into(),
            filter: ALL_RUNNER_EVENTS.into(),
            lanes: 4,
            handler_timeout: HANDLER_TIMEOUT,
        },
        cancel.clone(),
        |msg| {
            bus_schema::decode::<RunnerEvent>(&msg.payload)
                .map(|e| e.runner_name().to_owned())
                .unwrap_or_default()
        },
        move |msg| {
            let ctx = ctx.clone();
            async move {
                let result = match bus_schema::decode::<RunnerEvent>(&msg.payload) {
                    Ok(event) => match runner_event_confined(&ctx, &msg.subject, &event) {
                        Ok(()) => on_runner_event(&ctx, event).await,
                        Err(error) => consume::refuse(&msg.subject, &error),
                    },
                    Err(error) => Err(error.into()),
                };
                (msg, result)
            }
        },
    );
    let (a, b) = tokio::join!(jobs, runner_events);
    a.and(b)
}

/// Whether a runner event is about the tenant of the subject it came on: its tenant, its
/// runner's name and (for a failure) its registration. The tenant comes from the subject,
/// which NATS permissions vouch for; a tenant agent can publish only on its own.
pub fn runner_event_confined(
    ctx: &Context,
    subject_str: &str,
    event: &RunnerEvent,
) -> Result<(), Error> {
    let tenant = subject::parse_runner_tenant(subject_str)?;
    subject::confined_to(&tenant, event.tenant(), Some(event.runner_name()))?;
    match event {
        RunnerEvent::Failed(failed) => consume::registration_of(ctx, &tenant, &failed.registration),
        RunnerEvent::Created(created) => {
            consume::registration_of(ctx, &tenant, &created.registration)
        }
        RunnerEvent::Deleted(_) => Ok(()),
    }
}

/// Handles one job event. Public so tests can drive the scheduler without a consumer.
pub async fn on_job_event(ctx: &Context, event: JobEvent) -> Result<(), Error> {
    match event {
        JobEvent::Queued(e) => on_queued(ctx, e).await,
        JobEvent::Started(e) => on_started(ctx, e).await,
        JobEvent::Completed(e) => on_completed(ctx, e).await,
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::InFlight(job) => Error::InFlight(format!("job {job}")),
            Refusal::Illegal(e) => Error::Transition(e),
        }
    }
}

/// The runner spec for a job from its labels alone, or why it is declined.
fn resolve(
    ctx: &Context,
    registration: &str,
    tenant: &str,
    labels: &[String],
) -> Result<Result<RunnerSpec, Decline>, Error> {
    let reg = ctx.registration(registration)?;
    let config = ctx.config();
    let tenant = config
        .tenant(tenant)
        .ok_or_else(|| Error::Config(format!("unknown tenant `{tenant}`")))?;
    Ok(
        registration::labels::resolve(labels, &reg, tenant).map_err(|d| Decline {
            code: d.code(),
            reason: d.to_string(),
        }),
    )
}

/// Admission: [`resolve`], then the provider's capabilities ([`decide::admit`]).
fn admit(
    ctx: &Context,
    registration: &str,
    tenant: &str,
    labels: &[String],
) -> Result<Admission, Error> {
    let spec = resolve(ctx, registration, tenant, labels)?;
    let config = ctx.config();
    let caps = match (&spec, config.tenant(tenant)) {
        (Ok(spec), Some(t)) => t.providers.capabilities(spec.provider),
        _ => None,
    };
    Ok(decide::admit(spec, caps.as_ref()))
}

/// The records of the job's runners that exist.
async fn runner_records(
    ctx: &Context,
    job: Option<&JobRecord>,
) -> Result<Vec<RunnerRecord>, Error> {
    let mut records = Vec::new();
    for name in job.map(|j| j.runners.as_slice()).unwrap_or_default() {
        if let Some((rec, _)) = ctx.runners.get(name).await? {
            records.push(rec);
        }
    }
    Ok(records)
}

/// Decides on the job record at `key` by compare-and-set; returns the decision made.
async fn decide_job(
    ctx: &Context,
    key: &str,
    event: Event<'_>,
    facts: &Facts<'_>,
) -> Result<Decision, Error> {
    cas(&ctx.jobs, key, |current| {
        let decision = decide::decide(current, event, facts)?;
        Ok((decision.write.clone(), decision))
    })
    .await
}

/// What became of the latest runner `name` of queued job `job`: the records first, then
/// GitHub for a runner that has waited long (only on a fresh `poll` observation). A runner
/// GitHub shows busy may be running this very job (it started after the poll saw the job
/// queued, and its `started` event is still on its way): the job itself is asked then, and
/// only a job still waiting for a runner has lost it.
async fn latest_state(
    ctx: &Context,
    name: &str,
    records: &[RunnerRecord],
    job: &bus_schema::JobRef,
    fresh: bool,
    now: UnixMillis,
) -> Result<Latest, Error> {
    let job_id = job.job_id;
    let rec = records.iter().find(|r| r.name == name);
    let check_ms = i64::try_from(RUNNER_CHECK_AFTER.as_millis()).unwrap_or(i64::MAX);
    let (Look::AskGitHub(id), Some(rec)) = (
        decide::look_at_latest(rec, job_id, fresh, check_ms, now),
        rec,
    ) else {
        return Ok(
            match decide::look_at_latest(rec, job_id, fresh, check_ms, now) {
                Look::Known(latest) => latest,
                Look::AskGitHub(_) => Latest::Serving,
            },
        );
    };
    let scope = ctx.registration(&rec.registration)?.scope();
    let runner = ctx
        .github(&rec.registration)?
        .get_runner(&scope, id)
        .await?;
    Ok(match runner {
        None => Latest::Unregistered,
        Some(r) if r.busy => {
            let github = ctx.github(&rec.registration)?;
            let (owner, repo) = job.repo.split_once('/').unwrap_or((job.repo.as_str(), ""));
            match github.get_job(owner, repo, job_id).await? {
                Some(j) if j.runner_name.as_deref() == Some(name) => Latest::Serving,
                Some(j) if j.status != github_client::RunStatus::Queued => Latest::Serving,
                _ => Latest::Gone,
            }
        }
        Some(_) => Latest::Serving,
    })
}

async fn on_queued(ctx: &Context, e: JobQueued) -> Result<(), Error> {
    let key = subject::job_key(&e.tenant, &e.registration, e.job.job_id)?;
    let admission = admit(ctx, &e.registration, &e.tenant, &e.job.labels)?;
    let max_attempts = ctx.registration(&e.registration)?.limits.max_attempts;
    let now = now_millis();
    let current = ctx.jobs.get(&key).await?.map(|(rec, _)| rec);
    let records = runner_records(ctx, current.as_ref()).await?;
    let latest = match decide::latest_runner(current.as_ref()) {
        Some(name) => {
            let fresh = e.source == JobSource::Poll;
            let state = latest_state(ctx, name, &records, &e.job, fresh, now).await?;
            Some((name.to_owned(), state))
        }
        None => None,
    };
    let budget = match (&current, &latest) {
        (Some(rec), Some((_, Latest::Gone | Latest::Unregistered))) => {
            decide::attempt_budget(rec, &records, max_attempts)
        }
        _ => max_attempts,
    };
    let facts = Facts {
        now,
        max_attempts: budget,
        runners: &records,
    };
    tracing::debug!(job = e.job.job_id, source = ?e.source, ?latest, "queued event");
    let latest_state = latest.as_ref().map(|(_, s)| *s);
    let has_slot =
        match decide::wanted_runner(current.as_ref(), &e, &admission, latest_state, &facts) {
            Some(name) => slots::take_slot(ctx, &e.registration, &name, e.job.job_id, now).await?,
            None => true,
        };
    let event = Event::Queued {
        queued: &e,
        admission: &admission,
        latest: latest.as_ref().map(|(n, s)| (n.as_str(), *s)),
        has_slot,
    };
    let decision = decide_job(ctx, &key, event, &facts).await?;
    if decision.actions.is_empty() {
        tracing::debug!(job = e.job.job_id, "queued event for a job already handled");
    }
    let gone_from = latest
        .filter(|(_, s)| *s != Latest::Serving)
        .map(|(n, _)| n);
    for action in &decision.actions {
        if let (Action::Provision { runner, .. }, Some(old)) = (action, &gone_from)
            && runner != old
        {
            tracing::info!(job = e.job.job_id, %runner, source = ?e.source, "job still queued but its runner went elsewhere; provisioning again");
        }
    }
    let spec = admission.as_ref().ok();
    carry_out(
        ctx,
        &e.tenant,
        &e.registration,
        e.job.job_id,
        decision.actions,
        spec,
    )
    .await
}

/// Carries out the actions of a decision about job `job` of `registration`; `spec` is the
/// job's admitted spec, for provisioning.
async fn carry_out(
    ctx: &Context,
    tenant: &str,
    registration: &str,
    job: u64,
    actions: Vec<Action>,
    spec: Option<&RunnerSpec>,
) -> Result<(), Error> {
    for action in actions {
        match action {
            Action::Decline(decline) => {
                ctx.stats.count_decline(decline.code);
                // The one line per declined job: only the write that created the record
                // as declined carries this action.
                tracing::info!(job, code = decline.code, tenant, registration, reason = %decline.reason, trace_id = %crate::trace::current_id(), "job declined");
            }
            Action::Provision { runner, job_id } => match spec {
                Some(spec) => {
                    request::ensure_runner(ctx, tenant, registration, job_id, &runner, spec).await?
                }
                None => tracing::info!(job = job_id, "job no longer admissible; no runner"),
            },
            Action::Reap { runner, reason } => reap(ctx, tenant, &runner, reason).await?,
            Action::Bind {
                runner,
                job,
                seen_at,
            } => bind(ctx, &job, &runner, seen_at).await?,
            Action::MarkCompleted { runner, job_id } => {
                mark_runner(ctx, &runner, RunnerState::Completed, Some(job_id)).await?;
            }
            Action::DropUnneeded { runner, job_id } => {
                drop_unneeded(ctx, tenant, &runner, job_id).await?;
            }
            Action::Rebound { runner } => {
                tracing::info!(rebound = %runner, "runner taken by another job; re-bound a free runner");
            }
            Action::AttemptsExhausted { job_id } => {
                tracing::error!(
                    job = job_id,
                    "job's runners keep going elsewhere; attempts exhausted"
                );
            }
        }
    }
    Ok(())
}

async fn on_started(ctx: &Context, e: JobStarted) -> Result<(), Error> {
    let key = subject::job_key(&e.tenant, &e.registration, e.job.job_id)?;
    let ours = decide::our_runner(&e.tenant, &e.runner_name).is_some();
    let facts = Facts {
        now: now_millis(),
        max_attempts: 0,
        runners: &[],
    };
    let decision = decide_job(ctx, &key, Event::Started { started: &e, ours }, &facts).await?;
    tracing::debug!(job = e.job.job_id, runner = %e.runner_name, source = ?e.source, "started event");
    carry_out(
        ctx,
        &e.tenant,
        &e.registration,
        e.job.job_id,
        decision.actions,
        None,
    )
    .await
}

async fn on_completed(ctx: &Context, e: JobCompleted) -> Result<(), Error> {
    let key = subject::job_key(&e.tenant, &e.registration, e.job.job_id)?;
    let ran_on_ours = e
        .runner_name
        .as_deref()
        .filter(|name| decide::our_runner(&e.tenant, name).is_some());
    // Jobs that were never ours (GitHub-hosted ones in the same org) leave no record.
    let ours =
        resolve(ctx, &e.registration, &e.tenant, &e.job.labels)?.is_ok() || ran_on_ours.is_some();
    let facts = Facts {
        now: now_millis(),
        max_attempts: 0,
        runners: &[],
    };
    let event = Event::Completed {
        completed: &e,
        ours,
        ran_on_ours,
    };
    let decision = decide_job(ctx, &key, event, &facts).await?;
    tracing::debug!(job = e.job.job_id, runner = ?e.runner_name, source = ?e.source, actions = decision.actions.len(), "completed event");
    carry_out(
        ctx,
        &e.tenant,
        &e.registration,
        e.job.job_id,
        decision.actions,
        None,
    )
    .await
}

/// Moves a runner record to `state` if that is legal from where it is; returns the record.
async fn mark_runner(
    ctx: &Context,
    name: &str,
    state: RunnerState,
    ran_job: Option<u64>,
) -> Result<Option<RunnerRecord>, Error> {
    let now = now_millis();
    cas(&ctx.runners, name, |current| {
        Ok(match current {
            None => (None, None),
            Some(rec) => match decide::mark(rec, state, ran_job, now)? {
                Some(next) => (Some(next.clone()), Some(next)),
                None => (None, Some(rec.clone())),
            },
        })
    })
    .await
}

/// Records that `runner` took `job` (as seen at `seen_at`), and repairs the job the runner
/// was made for.
async fn bind(
    ctx: &Context,
    job: &JobRecord,
    runner: &str,
    seen_at: UnixMillis,
) -> Result<(), Error> {
    let Some(runner_rec) =
        mark_runner(ctx, runner, RunnerState::Busy, Some(job.job.job_id)).await?
    else {
        return Ok(());
    };
    if runner_rec.job_id == job.job.job_id {
        return Ok(());
    }
    // `runner` was made for job B but ran job A (`job`): A's own idle runners are free.
    let records = runner_records(ctx, Some(job)).await?;
    let mut free = decide::free_runners(job, &records, runner);
    // `runner` was a warm pool runner: A's idle runners refill the pool if they fit, the
    // rest are reaped.
    if runner_rec.job_id == POOL_JOB_ID {
        let adopted = crate::pool::adopt(ctx, &runner_rec.registration, &free).await?;
        free.retain(|f| !adopted.contains(&f.name));
    } else {
        let rebound = repair_stolen(ctx, job, &runner_rec, &free, seen_at).await?;
        free.retain(|f| Some(&f.name) != rebound.as_ref());
    }
    // The free runners nobody needs are dropped; one whose instance does not exist yet is
    // marked for deletion first, so it is never created (it would only stand idle, or take a
    // job another runner was made for and start another round of re-binding).
    for f in &free {
        if !hand_to_waiting(ctx, f).await? && !stand_in_for_unmade(ctx, f).await? {
            drop_unneeded(ctx, &f.tenant, &f.name, f.job_id).await?;
        }
    }
    Ok(())
}

/// Whether the latest runner of job `job` ran another job.
async fn latest_taken(ctx: &Context, job: &JobRecord) -> Result<bool, Error> {
    let Some(latest) = job.runners.last() else {
        return Ok(false);
    };
    Ok(ctx
        .runners
        .get(latest)
        .await?
        .is_some_and(|(r, _)| r.ran_job_id.is_some_and(|ran| ran != job.job.job_id)))
}

/// How many runner records a free runner looks at for one to stand in for.
const UNMADE_LOOKUP: usize = 16;

/// Lets free runner `free` serve a queued job whose own runner is not being created yet and
/// that `free` covers (a job provisioned again after a steal, or a young one: their runners
/// are the least likely to be past `Requested`); that runner is then dropped, never created.
/// Returns whether `free` is taken care of ([`hand_to_waiting`]).
async fn stand_in_for_unmade(ctx: &Context, free: &RunnerRecord) -> Result<bool, Error> {
    let mut names: Vec<(u32, u64, String)> = ctx
        .runners
        .names_of(&free.tenant)
        .await?
        .into_iter()
        .filter_map(|n| decide::our_runner(&free.tenant, &n).map(|r| (r.attempt, r.job_id, n)))
        .filter(|(_, job, _)| *job != free.job_id && *job != POOL_JOB_ID)
        .collect();
    // Later attempts first (a job provisioned again after a steal, just now), then the
    // youngest jobs.
    names.sort_unstable_by(|a, b| b.cmp(a));
    let now = now_millis();
    for (_, job_id, name) in names.into_iter().take(UNMADE_LOOKUP) {
        let Some((unmade, _)) = ctx.runners.get(&name).await? else {
            continue;
        };
        if !decide::stands_in_for(free, &unmade) {
            continue;
        }
        let key = subject::job_key(&free.tenant, &free.registration, unmade.job_id)?;
        let current = ctx.jobs.get(&key).await?.map(|(rec, _)| rec);
        if decide::stand_in(current.as_ref(), free, &name, now).is_none() {
            continue;
        }
        let moved = move_free_runner(ctx, free, job_id, &key, |current| {
            Ok(decide::stand_in(current, free, &name, now))
        })
        .await?;
        if !moved {
            return Ok(true);
        }
        drop_unneeded(ctx, &free.tenant, &name, job_id).await?;
        tracing::info!(runner = %free.name, job = job_id, instead_of = %name, made_for = free.job_id, "free runner stands in for a runner not created yet");
        return Ok(true);
    }
    Ok(false)
}

/// Moves free runner `free` to job `job_id` (record `key`): the runner first, so it never
/// serves two jobs, then the job record `write` makes of its current one (`None`: the job no
/// longer wants it). Returns whether the job took it; either way `free` is taken care of: it
/// moved on by itself meanwhile (took a job, or was claimed elsewhere), or it is dropped.
async fn move_free_runner(
    ctx: &Context,
    free: &RunnerRecord,
    job_id: u64,
    key: &str,
    mut write: impl FnMut(Option<&JobRecord>) -> Result<Option<JobRecord>, Error>,
) -> Result<bool, Error> {
    let now = now_millis();
    let claimed = cas(&ctx.runners, &free.name, |current| {
        let next = decide::claim_for(current, free.job_id, job_id, now);
        Ok((next.clone(), next.is_some()))
    })
    .await?;
    if !claimed {
        return Ok(false);
    }
    let written = cas(&ctx.jobs, key, |current| {
        let next = write(current)?;
        Ok((next.clone(), next.is_some()))
    })
    .await?;
    if !written {
        drop_unneeded(ctx, &free.tenant, &free.name, job_id).await?;
    }
    Ok(written)
}

/// How many jobs waiting for a slot a free runner is offered to.
const WAITING_LOOKUP: usize = 16;

/// Hands free runner `free` (made for a job that another runner took) to the job of its
/// registration that has waited longest for a runner (no `max_runners` slot, or its runner
/// was just taken) and that it can serve, so that job needs no runner of its own: a runner
/// made is not wasted. Returns whether the runner is taken care of (handed on, moved on by
/// itself, or dropped because the job got another runner meanwhile); `false` leaves it to
/// the caller.
async fn hand_to_waiting(ctx: &Context, free: &RunnerRecord) -> Result<bool, Error> {
    let now = now_millis();
    for job_id in slots::waiting(ctx, &free.registration)
        .await?
        .into_iter()
        .take(WAITING_LOOKUP)
    {
        let key = subject::job_key(&free.tenant, &free.registration, job_id)?;
        let Some((current, _)) = ctx.jobs.get(&key).await? else {
            continue;
        };
        let latest_taken = latest_taken(ctx, &current).await?;
        if decide::adopt_for_waiting(Some(&current), free, latest_taken, now)?.is_none() {
            continue;
        }
        let moved = move_free_runner(ctx, free, job_id, &key, |current| {
            Ok(decide::adopt_for_waiting(current, free, latest_taken, now)?)
        })
        .await?;
        if !moved {
            return Ok(true);
        }
        slots::forget_waiting(ctx, &free.registration, job_id).await?;
        tracing::info!(runner = %free.name, job = job_id, made_for = free.job_id, "free runner handed to a job waiting for a slot");
        return Ok(true);
    }
    Ok(false)
}

/// How long a job that lost its runner (seen at `seen_at`) waits before another runner is
/// made for it. Steals come in waves when many runners come online at once (GitHub gives
/// each the oldest job it covers); the runners freed by the same wave are handed to the jobs
/// that lost theirs rather than making new ones. The started event is redelivered (0.5 s,
/// then 1 s later), so the wait survives a crash.
pub const STEAL_SETTLE: Duration = Duration::from_millis(1500);

/// Job B lost its runner `stolen` to job A: re-binds a free runner of A that covers B, or,
/// once the steal is [`STEAL_SETTLE`] old and no freed runner was handed to B meanwhile,
/// provisions B again. Returns the free runner that now serves B, if any.
async fn repair_stolen(
    ctx: &Context,
    a: &JobRecord,
    stolen: &RunnerRecord,
    free: &[RunnerRecord],
    seen_at: UnixMillis,
) -> Result<Option<String>, Error> {
    let b_key = subject::job_key(&stolen.tenant, &stolen.registration, stolen.job_id)?;
    let Some((b, _)) = ctx.jobs.get(&b_key).await? else {
        return Ok(None);
    };
    if !decide::needs_runner(&b, &stolen.name) {
        return Ok(None);
    }
    let max_attempts = ctx.registration(&stolen.registration)?.limits.max_attempts;
    let records = runner_records(ctx, Some(&b)).await?;
    // `stolen` itself is one of B's runners that ran another job: it counts as a steal.
    let budget = decide::attempt_budget(&b, &records, max_attempts);
    let rebound = claim_free_runner(ctx, free, &b, a.job.job_id).await?;
    let settle_ms = i64::try_from(STEAL_SETTLE.as_millis()).unwrap_or(i64::MAX);
    if rebound.is_none() && now_millis().saturating_sub(seen_at) < settle_ms {
        slots::note_waiting(ctx, &b.registration, b.job.job_id, now_millis()).await?;
        return Err(Error::Settling(b.job.job_id));
    }
    if rebound.is_some() {
        // Noted as waiting by an earlier delivery of this event, perhaps.
        slots::forget_waiting(ctx, &b.registration, b.job.job_id).await?;
    }
    let facts = Facts {
        now: now_millis(),
        max_attempts: budget,
        runners: &records,
    };
    let event = Event::Stolen {
        runner: &stolen.name,
        rebound: rebound.as_deref(),
    };
    let decision = decide_job(ctx, &b_key, event, &facts).await?;
    let used = decision
        .actions
        .iter()
        .any(|a| matches!(a, Action::Rebound { .. }));
    if decision
        .actions
        .iter()
        .any(|a| matches!(a, Action::Provision { .. }))
    {
        tracing::info!(runner = %stolen.name, ran = a.job.job_id, made_for = b.job.job_id, "runner taken by another job; provisioning again");
    }
    let spec = admit(ctx, &b.registration, &b.tenant, &b.job.labels)?.ok();
    // Boxed: carrying out B's actions never binds again, but the compiler cannot know that.
    Box::pin(carry_out(
        ctx,
        &b.tenant,
        &b.registration,
        b.job.job_id,
        decision.actions,
        spec.as_ref(),
    ))
    .await?;
    // A runner claimed for B that B no longer needed is surplus (it points at B now).
    if let (Some(name), false) = (&rebound, used) {
        reap(ctx, &a.tenant, name, ReapReason::JobGone).await?;
    }
    Ok(rebound)
}

/// Claims the first free runner of job `from` that can serve job `b`.
async fn claim_free_runner(
    ctx: &Context,
    free: &[RunnerRecord],
    b: &JobRecord,
    from: u64,
) -> Result<Option<String>, Error> {
    let now = now_millis();
    for f in decide::rebind_candidates(free, b) {
        let claimed = cas(&ctx.runners, &f.name, |current| {
            let next = decide::claim_for(current, from, b.job.job_id, now);
            Ok((next.clone(), next.is_some()))
        })
        .await?;
        if claimed {
            return Ok(Some(f.name.clone()));
        }
    }
    Ok(None)
}

async fn on_runner_event(ctx: &Context, event: RunnerEvent) -> Result<(), Error> {
    match event {
        RunnerEvent::Failed(failed) => on_runner_failed(ctx, &failed).await,
        // A deleted runner frees its `max_runners` slot for waiting jobs.
        RunnerEvent::Deleted(deleted) => crate::pool::on_runner_deleted(ctx, &deleted).await,
        RunnerEvent::Created(_) => Ok(()),
    }
}

async fn on_runner_failed(ctx: &Context, failed: &RunnerFailed) -> Result<(), Error> {
    let key = subject::job_key(&failed.tenant, &failed.registration, failed.job_id)?;
    let max_attempts = ctx.registration(&failed.registration)?.limits.max_attempts;
    let facts = Facts {
        now: now_millis(),
        max_attempts,
        runners: &[],
    };
    let event = Event::RunnerFailed {
        runner: &failed.runner_name,
    };
    let decision = decide_job(ctx, &key, event, &facts).await?;
    let Some(b) = decision.write.as_ref() else {
        if decision.actions.contains(&Action::AttemptsExhausted {
            job_id: failed.job_id,
        }) {
            // The job stays queued on GitHub with no runner of ours: say so, once, loudly.
            ctx.stats.count_decline("attempts_exhausted");
            tracing::error!(job = failed.job_id, runner = %failed.runner_name, reason = %failed.reason, kind = ?failed.kind, max_attempts, "runner failed to start and the job's attempts are spent; no more runners will be made for it");
        }
        return Ok(());
    };
    // The provisioner logged the cloud's failure; this is the decision that follows it.
    tracing::info!(job = b.job.job_id, runner = %failed.runner_name, reason = %failed.reason, attempt = b.attempts, "runner failed to start; provisioning again");
    let spec = admit(ctx, &b.registration, &b.tenant, &b.job.labels)?.ok();
    carry_out(
        ctx,
        &b.tenant,
        &b.registration,
        b.job.job_id,
        decision.actions,
        spec.as_ref(),
    )
    .await
}
