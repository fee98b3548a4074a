//! Warm pool and runner limits, per registration.
//!
//! # What it keeps
//! - **Cap**: at most `limits.max_runners` live runners per registration, across every
//!   scheduler replica. A runner record is created only after its name took a slot in the
//!   registration's [`Slots`] record (key [`slots_key`](bus_schema::subject::slots_key) in
//!   the jobs bucket) by compare-and-set; the slot is freed when the runner is `Deleted`.
//! - **Warm pool**: `limits.min_idle` idle JIT runners, made ahead of jobs. A pool runner is a
//!   runner record with `job_id` [`POOL_JOB_ID`], named `shr-<tenant>-0-<n>` with `n` from a
//!   per-tenant sequence, and labelled with all of the registration's labels at its default
//!   size. GitHub gives a job to any idle runner whose labels cover the job's, so a pool
//!   runner serves exactly the jobs whose labels are registration labels (plus
//!   `self-hosted`); a job asking for `cpu-2`, `img-…` and the like always gets its own runner.
//!
//! # Messages
//! - Consumes nothing of its own. Its narrow interface to the scheduler is two calls:
//!   [`on_runner_deleted`] for `runner.event` `Deleted`, and [`adopt`] when a job started on
//!   a pool runner; slots are taken through [`crate::slots`] before any runner record is
//!   written. The pool never calls the scheduler: it requests runners through
//!   [`crate::request`], like the scheduler does.
//! - Emits `shr.v1.job.queued.<tenant>` for jobs that waited for a slot once one frees, and
//!   (through [`request::ensure_provisioned`]) provision commands for pool runners.
//!
//! # Guarantees
//! - The cap holds cluster-wide: the slot record is the one place that admits a runner, and
//!   every admission is a compare-and-set on its revision. Freeing is idempotent (the record
//!   holds names, not a count), so a replayed `Deleted` event frees nothing twice.
//! - A job that finds no slot stays `Queued` and is remembered in the slot record; each freed
//!   slot pokes the oldest waiting job (re-publishes its `queued` event), and [`refill_once`]
//!   pokes as many as there are free slots, so a lost `Deleted` event delays a job by at most
//!   one pool round. Waiting jobs go before pool refills.
//! - Slots of runners whose `Deleted` event was lost, or whose record was never written
//!   (a crash between the slot and the record), are reclaimed by [`refill_once`]: a `Deleted`
//!   record frees its slot at once, a missing one after [`request::CLAIM_TIMEOUT`].
//! - The pool refills under a lease per registration
//!   ([`pool_lease_key`](bus_schema::subject::pool_lease_key)), so replicas do not overfill it.
//! - When a job starts on a pool runner, the job's own idle runners join the pool if they have
//!   the pool's spec and the pool is short; the scheduler reaps the rest.
//! - A runner that took no job, has not moved for [`request::CLAIM_TIMEOUT`] and is not the
//!   runner its job waits for (a crash between re-binding and recording it) is dropped by
//!   [`refill_once`], well before its idle timeout.
//!
//! # Caveats
//! - Pool runners are reaped at the idle timeout like any idle runner and then replaced, so a
//!   warm pool turns over once per `idle_timeout_secs`. `min_idle = 0` scales to zero.
//! - Records that did not come through [`take_slot`] (sweep `Orphaned` marks, runners made
//!   before this module existed) hold no slot.
//! - No strict order among waiting jobs: a new job may take a slot before a poked one.

use std::time::Duration;

use bus_schema::subject;
use bus_schema::{
    JobEvent, JobQueued, JobSource, JobState, PoolSequence, RunnerDeleted, RunnerName,
    RunnerRecord, RunnerSpec, RunnerState, UnixMillis, now_millis,
};
use registration::Registration;
use shr_nats::{LEASE_TTL, Leases};
use tokio_util::sync::CancellationToken;

use crate::cas::cas;
use crate::leased::LeasedLoop;
use crate::request;
use crate::slots::{self, release, take_slot};
use crate::{Context, Error};

pub use crate::slots::POOL_JOB_ID;
pub use bus_schema::Slots;

/// How often [`run_pool`] looks at each registration.
pub const POOL_INTERVAL: Duration = Duration::from_secs(5);
/// Pool runners one round creates at most, so a round stays well inside the lease TTL.
pub const MAX_CREATES_PER_ROUND: usize = 4;

/// What one [`refill_once`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolReport {
    /// Idle pool runners before the refill.
    pub idle: usize,
    /// Pool runners requested.
    pub created: Vec<String>,
    /// Slots reclaimed from deleted or never-written runners.
    pub reclaimed: Vec<String>,
    /// Waiting jobs whose `queued` event was re-published.
    pub poked: usize,
    /// Forgotten runners dropped: idle, quiet for [`request::CLAIM_TIMEOUT`], and not the
    /// runner their job waits for.
    pub dropped: Vec<String>,
}

/// Whether `rec` is a pool runner that can still take a job.
pub fn is_idle_pool_runner(rec: &RunnerRecord) -> bool {
    rec.job_id == POOL_JOB_ID
        && rec.ran_job_id.is_none()
        && matches!(
            rec.state,
            RunnerState::Requested | RunnerState::Creating | RunnerState::Running
        )
}

/// The spec of a registration's pool runners: all its labels, at its default size.
pub fn pool_spec(ctx: &Context, reg: &Registration) -> Result<RunnerSpec, Error> {
    let config = ctx.config();
    let tenant = config
        .tenant(&reg.tenant)
        .ok_or_else(|| Error::Config(format!("unknown tenant `{}`", reg.tenant)))?;
    registration::labels::resolve(&reg.labels, reg, tenant)
        .map_err(|d| Error::Config(format!("pool runners of `{}`: {d}", reg.name)))
}

/// Frees a deleted runner's slot and pokes as many waiting jobs as there are free slots.
/// Safe to repeat.
pub async fn on_runner_deleted(ctx: &Context, deleted: &RunnerDeleted) -> Result<(), Error> {
    let Some((rec, _)) = ctx.runners.get(&deleted.runner_name).await? else {
        return Ok(());
    };
    let config = ctx.config();
    let Some(reg) = config.registration(&rec.registration) else {
        return Ok(());
    };
    let slots = release(ctx, &reg.name, std::slice::from_ref(&rec.name)).await?;
    poke(ctx, reg, &slots, Some(&rec.name)).await.map(|_| ())
}

/// Re-publishes the `queued` event of the oldest waiting jobs, one per free slot. A poked job
/// stays in `waiting` until it actually takes a slot ([`take_slot`] forgets it then): forgetting
/// it here could race with a replica that handles the poke first, finds no slot, and leaves
/// the job waiting on nobody. Jobs that finished meanwhile are forgotten. `cause` dedups the
/// events of one freed slot. Returns how many were published.
async fn poke(
    ctx: &Context,
    reg: &Registration,
    slots: &Slots,
    cause: Option<&str>,
) -> Result<usize, Error> {
    let max = usize::try_from(reg.limits.max_runners).unwrap_or(usize::MAX);
    let free = max.saturating_sub(slots.holders.len());
    let mut oldest: Vec<(UnixMillis, u64)> = slots.waiting.iter().map(|(j, t)| (*t, *j)).collect();
    oldest.sort_unstable();
    let chosen: Vec<u64> = oldest.into_iter().take(free).map(|(_, j)| j).collect();
    if chosen.is_empty() {
        return Ok(0);
    }
    let mut published = 0;
    let mut finished = Vec::new();
    for job_id in &chosen {
        let key = subject::job_key(&reg.tenant, &reg.name, *job_id)?;
        let Some((job, _)) = ctx.jobs.get(&key).await? else {
            finished.push(*job_id);
            continue;
        };
        if !matches!(job.state, JobState::Queued | JobState::Provisioning) {
            finished.push(*job_id);
            continue;
        }
        let event = JobEvent::Queued(JobQueued {
            tenant: job.tenant.clone(),
            registration: job.registration.clone(),
            job: job.job.clone(),
            source: JobSource::Webhook,
            delivery_id: None,
            observed_at: now_millis(),
        });
        let msg_id = cause.map(|c| bus_schema::msg_id::slot(&reg.tenant, &reg.name, *job_id, c));
        ctx.publish(event.subject()?, event.encode()?, msg_id.as_deref())
            .await?;
        published += 1;
    }
    let key = subject::slots_key(&reg.name)?;
    cas(&slots::records(ctx), &key, |current| {
        let Some(current) = current else {
            return Ok((None, ()));
        };
        let mut slots = current.clone();
        slots.waiting.retain(|j, _| !finished.contains(j));
        Ok(((slots != *current).then_some(slots), ()))
    })
    .await?;
    tracing::info!(registration = %reg.name, published, "slots freed; poked waiting jobs");
    Ok(published)
}

/// Reclaims dead slots; returns the slot record afterwards, the live records holding slots,
/// and the reclaimed names.
async fn reclaim(
    ctx: &Context,
    reg: &Registration,
) -> Result<(Slots, Vec<RunnerRecord>, Vec<String>), Error> {
    let key = subject::slots_key(&reg.name)?;
    let slots = slots::records(ctx)
        .get(&key)
        .await?
        .map(|(s, _)| s)
        .unwrap_or_default();
    let claim_ms = request::claim_ms();
    let now = now_millis();
    let mut live = Vec::new();
    let mut dead = Vec::new();
    for (name, taken_at) in &slots.holders {
        match ctx.runners.get(name).await? {
            Some((rec, _)) if rec.state == RunnerState::Deleted => dead.push(name.clone()),
            Some((rec, _)) => live.push(rec),
            None if now - taken_at > claim_ms => dead.push(name.clone()),
            None => {}
        }
    }
    if dead.is_empty() {
        return Ok((slots, live, dead));
    }
    let slots = release(ctx, &reg.name, &dead).await?;
    tracing::info!(registration = %reg.name, reclaimed = ?dead, "reclaimed slots of gone runners");
    Ok((slots, live, dead))
}

/// Drops the runners among `live` (slot holders) that took no job, have not moved for
/// [`request::CLAIM_TIMEOUT`], and whose job does not wait for them
/// ([`forgotten`](crate::scheduler::decide::forgotten)): a crash between re-binding a free runner and recording it on
/// its new job, for example, leaves one that nothing else would reap before its idle
/// timeout. Returns their names.
async fn drop_forgotten(ctx: &Context, live: &[RunnerRecord]) -> Result<Vec<String>, Error> {
    let (quiet_ms, now) = (request::claim_ms(), now_millis());
    let mut dropped = Vec::new();
    for rec in live {
        if !crate::scheduler::decide::forgotten(rec, None, now, quiet_ms) {
            // Not even without a job record: busy, moving, or a pool runner.
            continue;
        }
        let key = subject::job_key(&rec.tenant, &rec.registration, rec.job_id)?;
        let job = ctx.jobs.get(&key).await?.map(|(j, _)| j);
        if !crate::scheduler::decide::forgotten(rec, job.as_ref(), now, quiet_ms) {
            continue;
        }
        tracing::warn!(runner = %rec.name, job = rec.job_id, state = ?rec.state, "runner forgotten by its job (an interrupted re-bind?); dropping it");
        request::drop_unneeded(ctx, &rec.tenant, &rec.name, rec.job_id).await?;
        dropped.push(rec.name.clone());
    }
    Ok(dropped)
}

/// The next pool runner number of `tenant`, unique across the tenant's registrations.
async fn next_sequence(ctx: &Context, tenant: &str) -> Result<u32, Error> {
    let key = subject::pool_sequence_key(tenant)?;
    let records: shr_nats::Records<PoolSequence> = shr_nats::Records::new(ctx.bus.jobs.clone());
    cas(&records, &key, |current| {
        let next = current.map_or(1, |s| s.next.saturating_add(1));
        Ok((Some(PoolSequence { next }), next))
    })
    .await
}

/// One look at `registration`: reclaims dead slots, resumes pool runners whose request
/// stalled, requests pool runners up to `min_idle` (leaving free slots to waiting jobs
/// first), and pokes waiting jobs if slots are free.
pub async fn refill_once(ctx: &Context, registration: &str) -> Result<PoolReport, Error> {
    let reg = ctx.registration(registration)?;
    let (slots, live, reclaimed) = reclaim(ctx, &reg).await?;
    let idle: Vec<&RunnerRecord> = live.iter().filter(|r| is_idle_pool_runner(r)).collect();
    let mut report = PoolReport {
        idle: idle.len(),
        reclaimed,
        ..PoolReport::default()
    };
    report.dropped = drop_forgotten(ctx, &live).await?;
    let min_idle = usize::try_from(reg.limits.min_idle).unwrap_or(usize::MAX);
    if min_idle > 0 {
        let spec = pool_spec(ctx, &reg)?;
        let (claim_ms, now) = (request::claim_ms(), now_millis());
        for rec in idle
            .iter()
            .filter(|r| r.state == RunnerState::Requested && now - r.updated_at >= claim_ms)
        {
            if let Ok(name) = rec.name.parse::<RunnerName>()
                && name.job_id == POOL_JOB_ID
            {
                request::ensure_provisioned(
                    ctx,
                    &reg.tenant,
                    &reg.name,
                    POOL_JOB_ID,
                    name.attempt,
                    &spec,
                )
                .await?;
            }
        }
        let max = usize::try_from(reg.limits.max_runners).unwrap_or(usize::MAX);
        let room = max.saturating_sub(slots.holders.len() + slots.waiting.len());
        let wanted = min_idle
            .saturating_sub(idle.len())
            .min(room)
            .min(MAX_CREATES_PER_ROUND);
        for _ in 0..wanted {
            let attempt = next_sequence(ctx, &reg.tenant).await?;
            let name = RunnerName {
                tenant: reg.tenant.clone(),
                job_id: POOL_JOB_ID,
                attempt,
            }
            .to_string();
            if !take_slot(ctx, &reg.name, &name, POOL_JOB_ID, now_millis()).await? {
                break;
            }
            request::ensure_provisioned(ctx, &reg.tenant, &reg.name, POOL_JOB_ID, attempt, &spec)
                .await?;
            report.created.push(name);
        }
    }
    if !slots.waiting.is_empty() {
        report.poked = poke(ctx, &reg, &slots, None).await?;
    }
    Ok(report)
}

/// Lets the idle runners in `free` (made for a job that ran on a pool runner of
/// `registration` instead) join the pool, as long as the pool is short and they have the
/// pool's spec. Returns the names adopted; the caller reaps the others.
pub async fn adopt(
    ctx: &Context,
    registration: &str,
    free: &[RunnerRecord],
) -> Result<Vec<String>, Error> {
    let reg = ctx.registration(registration)?;
    let min_idle = usize::try_from(reg.limits.min_idle).unwrap_or(usize::MAX);
    let mut adopted = Vec::new();
    if min_idle == 0 {
        return Ok(adopted);
    }
    let spec = pool_spec(ctx, &reg)?;
    let (_, live, _) = reclaim(ctx, &reg).await?;
    let mut short = min_idle.saturating_sub(live.iter().filter(|r| is_idle_pool_runner(r)).count());
    for f in free.iter().filter(|f| f.registration == reg.name) {
        if short == 0 {
            break;
        }
        if f.spec.as_ref() != Some(&spec) {
            continue;
        }
        let now = now_millis();
        let claimed = cas(&ctx.runners, &f.name, |current| {
            Ok(match current {
                Some(rec)
                    if rec.job_id == f.job_id
                        && rec.ran_job_id.is_none()
                        && matches!(
                            rec.state,
                            RunnerState::Requested | RunnerState::Creating | RunnerState::Running
                        ) =>
                {
                    let mut rec = rec.clone();
                    rec.job_id = POOL_JOB_ID;
                    rec.updated_at = now;
                    (Some(rec), true)
                }
                _ => (None, false),
            })
        })
        .await?;
        if claimed {
            tracing::info!(runner = %f.name, made_for = f.job_id, "idle runner joined the warm pool");
            adopted.push(f.name.clone());
            short -= 1;
        }
    }
    Ok(adopted)
}

/// Keeps every registration's pool and slots (see [`refill_once`]) every [`POOL_INTERVAL`],
/// each under its pool lease, until `cancel` fires. Runs beside the scheduler.
pub async fn run_pool(
    ctx: Context,
    holder: String,
    cancel: CancellationToken,
) -> Result<(), Error> {
    // Every registration, live ones included (a draining one still frees and reclaims its
    // slots; `take_slot` admits no new runner for it).
    let start = |name: String, token: CancellationToken| {
        let (ctx, holder) = (ctx.clone(), holder.clone());
        let span = tracing::info_span!("pool", registration = %name);
        tracing::Instrument::instrument(
            async move {
                if let Ok(key) = subject::pool_lease_key(&name) {
                    pool_loop(ctx, name, key, holder, token).await;
                }
            },
            span,
        )
    };
    crate::live::per_registration(&ctx, &cancel, |_, _| true, start).await;
    Ok(())
}

async fn pool_loop(
    ctx: Context,
    registration: String,
    key: String,
    holder: String,
    cancel: CancellationToken,
) {
    let leased = LeasedLoop {
        leases: Leases::new(ctx.bus.leases.clone()),
        key,
        holder,
        interval: POOL_INTERVAL,
        what: "pool",
    };
    leased
        .run(cancel, || {
            let (ctx, registration) = (ctx.clone(), registration.clone());
            async move {
                match tokio::time::timeout(LEASE_TTL / 2, refill_once(&ctx, &registration)).await {
                    Ok(Ok(report))
                        if !report.created.is_empty()
                            || !report.reclaimed.is_empty()
                            || report.poked > 0 =>
                    {
                        tracing::info!(?report, "pool round");
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => tracing::warn!(%error, "pool round failed"),
                    Err(_) => tracing::warn!("pool round took too long; continuing next round"),
                }
            }
        })
        .await;
}
