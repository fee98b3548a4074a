//! Reaper actor: converges runners toward deleted.
//!
//! # Messages
//! - Consumes: `shr.v1.runner.reap.<tenant>` ([`ReapRunner`]), durable `reap-<tenant>` ([`subject::reaper_consumer`]).
//! - Emits: `shr.v1.runner.event.<tenant>` ([`RunnerEvent::Deleted`]).
//!
//! # Reconciling
//! A command only says "look at runner K". [`reconcile`] reads the record, the cloud instance
//! and the GitHub runner, asks the pure [`decide`] what to do, and does it. The periodic sweep
//! ([`crate::sweep`]) calls the same function for whatever no event brought here. The rules,
//! first match wins:
//! 1. `Deleted`: nothing to do.
//! 2. An order (job completed, provision failed, manual): delete.
//! 3. `Completed`, `Failed`, `Deleting`, `PendingForceDelete`: delete. A periodic look (no
//!    command) first gives such a record `grace` to finish a reap already under way, except
//!    `PendingForceDelete`, which every sweep retries.
//! 4. Older than the max runtime (the registration's limit, or the spec's if smaller): hard
//!    stop, busy or not.
//! 5. `Orphaned` (marked by the sweep): kept while GitHub says busy, else deregistered and
//!    deleted once the mark is `grace` old. A cloud-only orphan (no GitHub runner) waits at
//!    least [`CREATE_RETRY_WINDOW`] too: a create still being retried is not a stray. The sweep
//!    only ever marks instances that [`Provider::list`] returns, which are those carrying this
//!    deployment's controller tag.
//! 6. `Running`/`Busy` whose instance is gone or stopped, that GitHub does not report busy and
//!    whose record has not changed for `grace`: delete (its runner is dead).
//! 7. Took a job (record `Busy` or `ran_job_id`, or GitHub says busy): keep; the job's
//!    completion reaps it.
//! 8. Its job is gone (`JobGone`), or it took no job within the idle timeout: deregister, then
//!    delete.
//!
//! # Guarantees
//! - Idempotent and crash safe: every step is safe to repeat; a missing GitHub runner or
//!   instance counts as gone; state changes are compare-and-set through
//!   [`RunnerRecord::transition`]; the `Deleted` event is published by whoever made the
//!   `Deleting -> Deleted` write, with a dedup id.
//! - Scale-down race (rules 5 and 8): the GitHub runner is deregistered first. GitHub refuses
//!   (422) while it runs a job, and the reaper then keeps the runner. After a successful
//!   deregistration it checks again (GitHub shows it gone or idle, and the record, in the same
//!   compare-and-set that moves it to `Deleting`, has no job) before deleting the instance.
//! - API economy: GitHub is read only when its answer could change the decision
//!   ([`needs_github`]); an ephemeral runner that took a job, or whose instance has exited, is
//!   not deregistered (GitHub removes a runner that ran its job; an exited idle one is offline
//!   and the sweep's single runner listing finds it as a leftover of a `Deleted` record).
//! - Hard deletes (rules 2, 3, 4, 6) deregister best effort: a busy or unreachable GitHub
//!   runner does not stop the instance delete; the sweep removes the leftover later.
//! - A failed instance delete is counted in `delete_attempts` and retried with the consumer's
//!   backoff; after [`MAX_DELETE_ATTEMPTS`] the record moves to `PendingForceDelete` (logged
//!   at error level, visible in KV) and the sweep keeps retrying it.
//!
//! # Assumptions
//! Runner names are unique per job attempt and never reused, so a `Deleted` record stays
//! deleted. Time comes in as [`Clock`], so tests decide with any `now`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bus_schema::subject::{self, REAP_STREAM};
use bus_schema::{
    ReapReason, ReapRunner, RunnerDeleted, RunnerEvent, RunnerRecord, RunnerState, Scope,
    UnixMillis, now_millis,
};
use github_client::GitHubClient;
use providers::{InstanceStatus, Provider};
use tokio_util::sync::CancellationToken;

use crate::cas::cas;
use crate::consume::{self, ConsumerSpec};
use crate::provisioner::ProviderSet;
use crate::{Context, Error};

/// Failed instance deletes before a record moves to `PendingForceDelete`.
pub const MAX_DELETE_ATTEMPTS: u32 = 5;
/// The grace a command-driven look uses (see the rules); the sweep uses half its interval.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);
/// The longest a provisioner keeps retrying one create before the record fails: the
/// consumer's redelivery backoff cap ([`consume::backoff`]) and ack wait
/// ([`consume::ACK_WAIT`]). A cloud-only orphan younger than this is never deleted.
pub const CREATE_RETRY_WINDOW: Duration = Duration::from_secs(30);
/// Limits for a record whose registration is gone from the configuration (the config's
/// defaults).
const FALLBACK_IDLE_TIMEOUT_SECS: u64 = 600;
const FALLBACK_MAX_RUNTIME_SECS: u64 = 21_600;

/// What the reaper saw of something outside the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen<T> {
    Present(T),
    Absent,
    /// The look failed or was not possible: neither present nor absent.
    Unknown,
}

/// The outside world of one runner, as [`decide`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// The cloud instance's status.
    pub instance: Seen<InstanceStatus>,
    /// Whether the GitHub runner is running a job.
    pub github_busy: Seen<bool>,
}

/// The time limits that apply to one runner, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub idle_timeout_ms: i64,
    pub max_runtime_ms: i64,
    /// How long a periodic look leaves a record that may be mid-change, and how old an
    /// orphan mark must be before the orphan is deleted.
    pub grace_ms: i64,
}

/// When a look happens, and the grace it grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub now: UnixMillis,
    pub grace: Duration,
}

/// Why a runner is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepReason {
    /// Already deleted.
    Deleted,
    /// It runs (or ran) a job.
    Busy,
    /// No rule applies yet.
    NotDue,
}

/// What [`decide`] says to do with a runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Keep(KeepReason),
    /// Deregister from GitHub (refused while busy), check it is still idle, then delete.
    ReapIfIdle(ReapReason),
    /// Delete, busy or not.
    Delete(ReapReason),
}

/// What [`reconcile`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No record: the sweep handles strays.
    NoRecord,
    Kept(KeepReason),
    /// The instance is gone and the record is `Deleted`.
    Deleted(ReapReason),
    /// The instance delete keeps failing; the record waits for the sweep.
    PendingForceDelete,
}

/// The GitHub runner of a record, and the client and scope to reach it.
struct GitHubSide {
    client: GitHubClient,
    scope: Scope,
    id: u64,
}

impl Clock {
    /// Now, with [`DEFAULT_GRACE`].
    pub fn wall() -> Self {
        Self {
            now: now_millis(),
            grace: DEFAULT_GRACE,
        }
    }
}

impl Timeouts {
    /// The limits of `rec`: its registration's (`None` when the registration is gone), the
    /// spec's max runtime if smaller, and `grace`.
    pub fn for_record(
        limits: Option<&registration::Limits>,
        rec: &RunnerRecord,
        grace: Duration,
    ) -> Self {
        let (idle, max) = limits.map_or(
            (FALLBACK_IDLE_TIMEOUT_SECS, FALLBACK_MAX_RUNTIME_SECS),
            |l| (l.idle_timeout_secs, l.max_runtime_secs),
        );
        let max = match rec.spec.as_ref().map(|s| s.max_runtime_secs) {
            Some(spec) if spec > 0 => spec.min(max),
            _ => max,
        };
        let ms = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        Self {
            idle_timeout_ms: ms(idle),
            max_runtime_ms: ms(max),
            grace_ms: i64::try_from(grace.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

/// The reaping rules (see the module docs). `asked` is the command's reason, `None` for a
/// periodic look. Pure: everything it needs comes in.
pub fn decide(
    rec: &RunnerRecord,
    seen: Observed,
    asked: Option<ReapReason>,
    now: UnixMillis,
    t: Timeouts,
) -> Action {
    use RunnerState::*;
    if rec.state == Deleted {
        return Action::Keep(KeepReason::Deleted);
    }
    if let Some(
        order @ (ReapReason::JobCompleted | ReapReason::ProvisionFailed | ReapReason::Manual),
    ) = asked
    {
        return Action::Delete(order);
    }
    let age = now.saturating_sub(rec.created_at);
    let quiet = now.saturating_sub(rec.updated_at);
    let github_busy = seen.github_busy == Seen::Present(true);
    match rec.state {
        Completed | Failed | Deleting | PendingForceDelete => {
            if asked.is_none() && rec.state != PendingForceDelete && quiet < t.grace_ms {
                Action::Keep(KeepReason::NotDue)
            } else {
                Action::Delete(asked.unwrap_or_else(|| ending_reason(rec)))
            }
        }
        _ if age >= t.max_runtime_ms => Action::Delete(ReapReason::MaxRuntime),
        Orphaned if github_busy => Action::Keep(KeepReason::Busy),
        Orphaned if age >= orphan_due_ms(rec, t) => Action::ReapIfIdle(ReapReason::Orphan),
        Orphaned => Action::Keep(KeepReason::NotDue),
        Requested | Creating | Running | Busy => {
            let took_job = rec.state == Busy || rec.ran_job_id.is_some();
            let instance_gone = matches!(
                seen.instance,
                Seen::Absent | Seen::Present(InstanceStatus::Stopped)
            );
            if matches!(rec.state, Running | Busy)
                && instance_gone
                && !github_busy
                && quiet >= t.grace_ms
            {
                Action::Delete(if took_job {
                    ReapReason::JobCompleted
                } else {
                    ReapReason::ProvisionFailed
                })
            } else if took_job || github_busy {
                Action::Keep(KeepReason::Busy)
            } else if asked == Some(ReapReason::JobGone) {
                Action::ReapIfIdle(ReapReason::JobGone)
            } else if age >= t.idle_timeout_ms {
                Action::ReapIfIdle(ReapReason::IdleTimeout)
            } else {
                Action::Keep(KeepReason::NotDue)
            }
        }
        // Unreachable: `Deleted` returned above.
        Deleted => Action::Keep(KeepReason::Deleted),
    }
}

/// How old an orphan mark must be before the orphan is deleted: `grace`, and for a cloud-only
/// orphan (no GitHub runner) at least [`CREATE_RETRY_WINDOW`].
fn orphan_due_ms(rec: &RunnerRecord, t: Timeouts) -> i64 {
    if rec.github_runner_id.is_some() {
        t.grace_ms
    } else {
        let window = i64::try_from(CREATE_RETRY_WINDOW.as_millis()).unwrap_or(i64::MAX);
        t.grace_ms.max(window)
    }
}

/// The best reason to give for finishing a record that is already on its way out.
fn ending_reason(rec: &RunnerRecord) -> ReapReason {
    match rec.state {
        RunnerState::Failed => ReapReason::ProvisionFailed,
        RunnerState::Orphaned => ReapReason::Orphan,
        _ if rec.ran_job_id.is_some() => ReapReason::JobCompleted,
        _ => ReapReason::JobGone,
    }
}

/// Runs one reaper consumer per tenant that has providers in `providers`.
pub async fn run(
    ctx: Context,
    providers: ProviderSet,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let mut by_tenant: BTreeMap<String, ProviderSet> = BTreeMap::new();
    for ((tenant, kind), provider) in providers {
        by_tenant
            .entry(tenant.clone())
            .or_default()
            .insert((tenant, kind), provider);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (tenant, providers) in by_tenant {
        let ctx = ctx.clone();
        let providers = Arc::new(providers);
        let spec = ConsumerSpec {
            stream: REAP_STREAM,
            durable: subject::reaper_consumer(&tenant)?,
            filter: subject::reap(&tenant)?,
            lanes: 8,
            handler_timeout: Duration::from_secs(120),
        };
        tasks.spawn(consume::run(
            ctx.bus.js.clone(),
            spec,
            cancel.clone(),
            // One runner's reap commands are handled one at a time.
            |msg| {
                bus_schema::decode::<ReapRunner>(&msg.payload)
                    .map(|cmd| cmd.runner_name)
                    .unwrap_or_default()
            },
            move |msg| {
                let ctx = ctx.clone();
                let providers = providers.clone();
                async move {
                    let result = match bus_schema::decode::<ReapRunner>(&msg.payload) {
                        Ok(cmd) => match subject::parse_runner_tenant(&msg.subject).and_then(|t| {
                            subject::confined_to(&t, &cmd.tenant, Some(&cmd.runner_name))
                        }) {
                            Ok(()) => reap(&ctx, &providers, cmd).await,
                            Err(error) => consume::refuse(&msg.subject, &error),
                        },
                        Err(error) => Err(error.into()),
                    };
                    (msg, result)
                }
            },
        ));
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| Error::bus("reaper task", e))??;
    }
    Ok(())
}

/// Handles one reap command: [`reconcile`] now, with [`DEFAULT_GRACE`].
pub async fn reap(ctx: &Context, providers: &ProviderSet, cmd: ReapRunner) -> Result<(), Error> {
    reconcile(
        ctx,
        providers,
        &cmd.runner_name,
        Some(cmd.reason),
        Clock::wall(),
    )
    .await
    .map(|_| ())
}

/// Converges runner `name`: reads its record, instance and GitHub runner, [`decide`]s and acts.
/// `asked` is the reason of the command that brought it here, `None` for a periodic look.
pub async fn reconcile(
    ctx: &Context,
    providers: &ProviderSet,
    name: &str,
    asked: Option<ReapReason>,
    clock: Clock,
) -> Result<Outcome, Error> {
    let Some((rec, _)) = ctx.runners.get(name).await? else {
        tracing::debug!(runner = %name, "reap: no record; the sweep handles strays");
        return Ok(Outcome::NoRecord);
    };
    if rec.state == RunnerState::Deleted {
        return Ok(Outcome::Kept(KeepReason::Deleted));
    }
    let provider = providers
        .get(&(rec.tenant.clone(), rec.provider))
        .ok_or_else(|| {
            Error::Config(format!(
                "no {} provider for tenant {}",
                rec.provider, rec.tenant
            ))
        })?
        .as_ref();
    let github = match rec.github_runner_id {
        Some(id) => Some(GitHubSide {
            client: ctx.github(&rec.registration)?,
            scope: ctx.registration(&rec.registration)?.scope(),
            id,
        }),
        None => None,
    };
    let config = ctx.config();
    let limits = config.registration(&rec.registration).map(|r| &r.limits);
    let timeouts = Timeouts::for_record(limits, &rec, clock.grace);
    let instance = observe_instance(provider, name).await;
    // GitHub is asked only when its answer could change the decision (API economy).
    let seen = if needs_github(&rec, instance, asked, clock.now, timeouts) {
        Observed {
            instance,
            github_busy: observe_github(github.as_ref(), name).await,
        }
    } else {
        Observed {
            instance,
            github_busy: Seen::Unknown,
        }
    };
    let action = decide(&rec, seen, asked, clock.now, timeouts);
    tracing::debug!(runner = %name, state = ?rec.state, ?asked, ?seen, ?action, "reap decision");
    match action {
        Action::Keep(why) => Ok(Outcome::Kept(why)),
        Action::ReapIfIdle(reason) => {
            // An exited runner cannot take a job any more: it either ran one (GitHub removed
            // the ephemeral runner itself, a DELETE would find nothing) or died idle (offline;
            // the sweep's listing finds it and deregisters it). Only a live one is asked.
            let live = seen.instance != Seen::Present(InstanceStatus::Stopped);
            if let Some(gh) = github.as_ref().filter(|_| live) {
                // The record may have learnt of a job since it was read (a steal's `started`
                // event races the reap of the thief's own runner): then the DELETE would be
                // refused or, once the job is done, hit a runner GitHub already removed.
                if took_job_since(ctx, name).await? {
                    tracing::debug!(runner = %name, ?reason, "reap skipped: the runner took a job");
                    return Ok(Outcome::Kept(KeepReason::Busy));
                }
                match gh.client.delete_runner(&gh.scope, gh.id).await {
                    Ok(()) => {}
                    Err(error) if error.status() == Some(422) => {
                        // The scale-down race, expected: the job's completion reaps it.
                        tracing::debug!(runner = %name, ?reason, "reap skipped: GitHub says the runner is busy");
                        return Ok(Outcome::Kept(KeepReason::Busy));
                    }
                    Err(error) => return Err(error.into()),
                }
                // A successful DELETE means GitHub had it idle and now has it gone: no
                // re-check is needed; the record is re-checked below.
            }
            // Re-check the record in the same write that claims it for deletion.
            if mark_deleting(ctx, name, true, clock.now).await?.is_none() {
                tracing::debug!(runner = %name, ?reason, "reap skipped: the runner took a job");
                return Ok(Outcome::Kept(KeepReason::Busy));
            }
            delete_instance(ctx, provider, &rec, reason, clock.now).await
        }
        Action::Delete(reason) => {
            let Some(marked) = mark_deleting(ctx, name, false, clock.now).await? else {
                return Ok(Outcome::Kept(KeepReason::Deleted));
            };
            // Judged on the record as just written, not as first read: a job learnt of since
            // means GitHub removes the ephemeral runner itself.
            if let Some(gh) = &github
                && needs_deregistration(&marked)
                && let Err(error) = gh.client.delete_runner(&gh.scope, gh.id).await
            {
                // Heals by itself (the sweep deregisters the leftover), so not a warning.
                tracing::info!(runner = %name, ?reason, %error, "deregistering failed; deleting the instance anyway, the sweep removes the GitHub runner later");
            }
            delete_instance(ctx, provider, &rec, reason, clock.now).await
        }
    }
}

/// Whether GitHub's view of the runner could change what [`decide`] does: the decision with
/// GitHub saying "busy" differs from the one without an answer (a runner is looked up only
/// when something about it is suspect, such as a dead instance). Pure.
pub fn needs_github(
    rec: &RunnerRecord,
    instance: Seen<InstanceStatus>,
    asked: Option<ReapReason>,
    now: UnixMillis,
    t: Timeouts,
) -> bool {
    rec.github_runner_id.is_some() && {
        let with = |github_busy| {
            decide(
                rec,
                Observed {
                    instance,
                    github_busy,
                },
                asked,
                now,
                t,
            )
        };
        match (with(Seen::Present(true)), with(Seen::Unknown)) {
            (busy, unknown) if busy == unknown => false,
            // Deregistering is itself the check: GitHub refuses (422) while the runner is busy.
            (Action::Keep(KeepReason::Busy), Action::ReapIfIdle(_)) => false,
            _ => true,
        }
    }
}

/// Whether deleting this runner must deregister it from GitHub. An ephemeral runner that took
/// its job is removed by GitHub itself once the job ends, so it needs no call (if it is still
/// running a job GitHub would refuse anyway; the sweep removes any leftover).
pub fn needs_deregistration(rec: &RunnerRecord) -> bool {
    rec.github_runner_id.is_some() && rec.ran_job_id.is_none() && rec.state != RunnerState::Busy
}

async fn observe_instance(provider: &dyn Provider, name: &str) -> Seen<InstanceStatus> {
    match provider.get(name).await {
        Ok(Some(instance)) => Seen::Present(instance.status),
        Ok(None) => Seen::Absent,
        Err(error) => {
            tracing::debug!(runner = %name, %error, "instance look-up failed");
            Seen::Unknown
        }
    }
}

async fn observe_github(github: Option<&GitHubSide>, name: &str) -> Seen<bool> {
    match github {
        None => Seen::Unknown,
        // Optional: with the budget low, decide without it (GitHub's word only refines).
        Some(gh) if !gh.client.spare() => {
            tracing::debug!(runner = %name, "rate budget low: not asking GitHub");
            Seen::Unknown
        }
        Some(gh) => match gh.client.get_runner(&gh.scope, gh.id).await {
            Ok(Some(runner)) => Seen::Present(runner.busy),
            Ok(None) => Seen::Absent,
            Err(error) => {
                tracing::debug!(runner = %name, %error, "GitHub runner look-up failed");
                Seen::Unknown
            }
        },
    }
}

/// Moves the record to `Deleting` and returns it. `None` when there is nothing to delete any
/// more, or (with `only_if_idle`) when the record says the runner took a job.
async fn mark_deleting(
    ctx: &Context,
    name: &str,
    only_if_idle: bool,
    now: UnixMillis,
) -> Result<Option<RunnerRecord>, Error> {
    cas(&ctx.runners, name, |current| {
        Ok(match current {
            None => (None, None),
            Some(r) if r.state == RunnerState::Deleted => (None, None),
            Some(r) if only_if_idle && took_job(r) => (None, None),
            Some(r) if r.state == RunnerState::Deleting => (None, Some(r.clone())),
            Some(r) => {
                let mut r = r.clone();
                r.transition(RunnerState::Deleting, now)?;
                (Some(r.clone()), Some(r))
            }
        })
    })
    .await
}

fn took_job(rec: &RunnerRecord) -> bool {
    rec.ran_job_id.is_some() || rec.state == RunnerState::Busy
}

/// Whether runner `name`'s record, read again now, says it took a job.
async fn took_job_since(ctx: &Context, name: &str) -> Result<bool, Error> {
    Ok(ctx
        .runners
        .get(name)
        .await?
        .is_some_and(|(rec, _)| took_job(&rec)))
}

/// Deletes the instance and records the result: `Deleted`, a counted failure, or
/// `PendingForceDelete` after [`MAX_DELETE_ATTEMPTS`].
async fn delete_instance(
    ctx: &Context,
    provider: &dyn Provider,
    rec: &RunnerRecord,
    reason: ReapReason,
    now: UnixMillis,
) -> Result<Outcome, Error> {
    let name = &rec.name;
    if let Err(error) = provider.delete(name).await {
        telemetry::metrics::global().provider_error(
            &rec.provider.to_string(),
            "delete",
            &crate::observe::label(&error.kind()),
        );
        let message = error.to_string();
        let attempts = cas(&ctx.runners, name, |current| {
            Ok(match current {
                Some(r) if r.state == RunnerState::Deleting => {
                    let mut r = r.clone();
                    r.delete_attempts += 1;
                    r.last_error = Some(message.clone());
                    r.updated_at = now;
                    if r.delete_attempts >= MAX_DELETE_ATTEMPTS {
                        r.transition(RunnerState::PendingForceDelete, now)?;
                    }
                    let attempts = r.delete_attempts;
                    (Some(r), Some(attempts))
                }
                _ => (None, None),
            })
        })
        .await?;
        if let Some(attempts) = attempts.filter(|a| *a >= MAX_DELETE_ATTEMPTS) {
            tracing::error!(runner = %name, provider = %rec.provider, attempts, %error, "instance delete keeps failing; runner is pending force delete, the sweep keeps retrying");
            return Ok(Outcome::PendingForceDelete);
        }
        return Err(error.into());
    }
    let changed = cas(&ctx.runners, name, |current| {
        Ok(match current {
            Some(r) if r.state != RunnerState::Deleted => {
                let mut r = r.clone();
                if r.state != RunnerState::Deleting {
                    r.transition(RunnerState::Deleting, now)?;
                }
                r.transition(RunnerState::Deleted, now)?;
                (Some(r), true)
            }
            _ => (None, false),
        })
    })
    .await?;
    if changed {
        let event = RunnerEvent::Deleted(RunnerDeleted {
            tenant: rec.tenant.clone(),
            runner_name: name.clone(),
            provider: rec.provider,
            reason,
            at: now,
        });
        ctx.publish(
            subject::runner_event(&rec.tenant)?,
            bus_schema::encode(&event)?,
            Some(&Context::unguessable_id(&rec.tenant, "deleted", name)),
        )
        .await?;
        // The one line per reap: only the `Deleting -> Deleted` write gets here.
        tracing::info!(runner = %name, job = rec.job_id, reason = %crate::observe::label(&reason), trace_id = %crate::trace::current_id(), "runner reaped");
        let metrics = telemetry::metrics::global();
        metrics.runner_reaped(&rec.tenant, &crate::observe::label(&reason));
        if reason == ReapReason::Orphan {
            metrics.orphan_reaped(&rec.tenant);
        }
    }
    Ok(Outcome::Deleted(reason))
}
