//! Requesting one runner: a `max_runners` slot, the runner record, a JIT config from GitHub
//! and the provision command; and publishing reap commands. Shared by the scheduler and the
//! warm pool, which call this and never each other.
//!
//! # Guarantees
//! - Crash safe: the runner record is written (state `Requested`) before the JIT call, and
//!   its GitHub runner id before the command is published. A `Requested` record older than
//!   [`CLAIM_TIMEOUT`] is taken over: a fresh JIT config is made and the stale GitHub runner
//!   deleted; the provisioner drops commands whose GitHub runner id no longer matches.
//! - A runner is never made for a job that has finished: it is marked for deletion instead.
//! - Idempotent: [`ensure_runner`] on a runner past `Requested` does nothing.

use std::time::Duration;

use bus_schema::{
    ProvisionRunner, ReapReason, ReapRunner, RunnerName, RunnerRecord, RunnerSpec, RunnerState,
    now_millis, subject,
};
use github_client::JitConfig;

use crate::cas::{cas, cas_revision, replace_at};
use crate::scheduler::decide::{self, Claim, NewRunner};
use crate::slots::{self, POOL_JOB_ID};
use crate::{Context, Error};

/// How long a `Requested` runner record may stay unfinished before another worker takes over.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(60);

/// [`CLAIM_TIMEOUT`] in milliseconds.
pub fn claim_ms() -> i64 {
    i64::try_from(CLAIM_TIMEOUT.as_millis()).unwrap_or(i64::MAX)
}

/// Makes sure runner `attempt` of a job exists as a record, has a JIT config and a published
/// provision command. Idempotent.
pub async fn ensure_provisioned(
    ctx: &Context,
    tenant: &str,
    registration: &str,
    job_id: u64,
    attempt: u32,
    spec: &RunnerSpec,
) -> Result<(), Error> {
    let name = decide::runner_name(tenant, job_id, attempt);
    ensure_runner(ctx, tenant, registration, job_id, &name, spec).await
}

/// [`ensure_provisioned`] for a runner known by name (a re-bound runner keeps its name).
pub async fn ensure_runner(
    ctx: &Context,
    tenant: &str,
    registration: &str,
    job_id: u64,
    name: &str,
    spec: &RunnerSpec,
) -> Result<(), Error> {
    let new = NewRunner {
        name,
        tenant,
        registration,
        job_id,
        spec,
    };
    let Some((rec, revision)) = claim(ctx, new).await? else {
        return Ok(());
    };
    if job_finished(ctx, new).await? {
        return Ok(());
    }
    let jit = match jit_config(ctx, new).await {
        Ok(jit) => jit,
        Err(error) => {
            release_claim(ctx, name, rec, revision).await;
            return Err(error);
        }
    };
    // Record the GitHub runner id, but only if nobody touched the record since the claim.
    let mut rec = rec;
    rec.github_runner_id = Some(jit.runner_id);
    rec.updated_at = now_millis();
    if replace_at(&ctx.runners, name, &rec, revision)
        .await?
        .is_none()
    {
        // Re-bound to another job while being made: finish it for that job.
        if let Some(job_id) = finish_rebound(ctx, &rec, jit.runner_id).await? {
            let rebound = NewRunner { job_id, ..new };
            return publish_provision(ctx, rebound, jit).await;
        }
        // Another worker moved the record meanwhile: an expected race.
        tracing::debug!(runner = %name, "runner record changed during JIT; dropping this attempt");
        return delete_github_runner(ctx, registration, jit.runner_id).await;
    }
    publish_provision(ctx, new, jit).await
}

/// The record of `claimed` changed during its JIT call. If it was only re-bound to another
/// job ([`decide::rebound_while_made`]), records the GitHub runner id on it and returns the
/// job it now serves; `None` when the work is to be dropped.
async fn finish_rebound(
    ctx: &Context,
    claimed: &RunnerRecord,
    github_runner_id: u64,
) -> Result<Option<u64>, Error> {
    let Some((fresh, revision)) = ctx.runners.get(&claimed.name).await? else {
        return Ok(None);
    };
    let Some(next) = decide::rebound_while_made(claimed, &fresh, github_runner_id, now_millis())
    else {
        return Ok(None);
    };
    let written = replace_at(&ctx.runners, &claimed.name, &next, revision).await?;
    Ok(written.map(|_| next.job_id))
}

/// Claims the record of `new`: `Some` (the record and its revision) when this worker is to
/// make the runner.
async fn claim(ctx: &Context, new: NewRunner<'_>) -> Result<Option<(RunnerRecord, u64)>, Error> {
    // Every runner record holds a `max_runners` slot; without one the job is remembered as
    // waiting and poked when a slot frees.
    let now = now_millis();
    let has_slot = match ctx.runners.get(new.name).await? {
        Some(_) => false,
        None => slots::take_slot(ctx, new.registration, new.name, new.job_id, now).await?,
    };
    let (claimed, revision) = cas_revision(&ctx.runners, new.name, |current| {
        let (write, claim) = decide::claim(current, new, has_slot, claim_ms(), now);
        Ok((write.clone(), (claim, write)))
    })
    .await?;
    match claimed {
        (Claim::Created, Some(rec)) => Ok(revision.map(|r| (rec, r))),
        (Claim::TakenOver { stale }, Some(rec)) => {
            // A worker died mid-request; its message came back to this one.
            tracing::info!(runner = %new.name, "taking over a stale runner request");
            if let Some(stale) = stale {
                delete_github_runner(ctx, new.registration, stale).await?;
            }
            Ok(revision.map(|r| (rec, r)))
        }
        (Claim::InFlight, _) => Err(Error::InFlight(new.name.to_owned())),
        _ => Ok(None),
    }
}

/// The job may have finished while this runner was being decided on (its completion saw no
/// record of this runner yet). Then the runner is not needed: it is marked for deletion and
/// reaped. Returns whether that happened.
async fn job_finished(ctx: &Context, new: NewRunner<'_>) -> Result<bool, Error> {
    if new.job_id == POOL_JOB_ID {
        return Ok(false);
    }
    let job_key = subject::job_key(new.tenant, new.registration, new.job_id)?;
    let finished = ctx
        .jobs
        .get(&job_key)
        .await?
        .is_some_and(|(job, _)| job.state.is_terminal());
    if !finished {
        return Ok(false);
    }
    let now = now_millis();
    cas(&ctx.runners, new.name, |current| {
        Ok(match current {
            Some(r) if r.state == RunnerState::Requested => {
                let mut r = r.clone();
                r.transition(RunnerState::Deleting, now)?;
                (Some(r), ())
            }
            _ => (None, ()),
        })
    })
    .await?;
    tracing::info!(runner = %new.name, job = new.job_id, "job finished before its runner was made; not making it");
    reap(ctx, new.tenant, new.name, ReapReason::JobGone).await?;
    Ok(true)
}

/// A JIT config for `new`; a GitHub runner of the same name left by an interrupted attempt
/// is replaced.
async fn jit_config(ctx: &Context, new: NewRunner<'_>) -> Result<JitConfig, Error> {
    let scope = ctx.registration(new.registration)?.scope();
    let github = ctx.github(new.registration)?;
    let request = github_client::JitRequest {
        name: new.name.to_owned(),
        runner_group_id: new.spec.runner_group_id.max(1),
        labels: new.spec.labels.clone(),
        work_folder: "_work".into(),
    };
    match github.generate_jit_config(&scope, &request).await {
        Ok(jit) => Ok(jit),
        Err(error) if error.status() == Some(409) => {
            if let Some(existing) = github
                .list_runners(&scope)
                .await?
                .into_iter()
                .find(|r| r.name == new.name)
            {
                delete_github_runner(ctx, new.registration, existing.id).await?;
            }
            Ok(github.generate_jit_config(&scope, &request).await?)
        }
        Err(error) => Err(error.into()),
    }
}

async fn publish_provision(ctx: &Context, new: NewRunner<'_>, jit: JitConfig) -> Result<(), Error> {
    let spec = new.spec;
    // Sealed to the tenant's agent when the tenant has a key: the stream and every other
    // reader see ciphertext only.
    let (jit_config, sealed_jit_config) = match ctx.jit_keys.public(new.tenant) {
        Some(key) => {
            let sealed = (key.seal(&jit.encoded_jit_config))
                .map_err(|e| Error::Config(format!("sealing the JIT config: {e}")))?;
            (bus_schema::Secret::default(), Some(sealed))
        }
        None => (jit.encoded_jit_config, None),
    };
    let command = ProvisionRunner {
        tenant: new.tenant.to_owned(),
        registration: new.registration.to_owned(),
        runner_name: new.name.to_owned(),
        job_id: new.job_id,
        attempt: new.name.parse::<RunnerName>().map_or(0, |n| n.attempt),
        spec: spec.clone(),
        github_runner_id: jit.runner_id,
        jit_config,
        requested_at: now_millis(),
        sealed_jit_config,
    };
    let msg_id = bus_schema::msg_id::provision(new.tenant, new.name, jit.runner_id);
    ctx.publish(
        subject::provision(new.tenant, spec.provider)?,
        bus_schema::encode(&command)?,
        Some(&msg_id),
    )
    .await?;
    tracing::info!(runner = %new.name, job = new.job_id, provider = %spec.provider, cpu_millis = spec.cpu_millis, memory_mib = spec.memory_mib, "runner requested");
    Ok(())
}

/// Lets a retry take the claim at once instead of waiting out [`CLAIM_TIMEOUT`].
async fn release_claim(ctx: &Context, name: &str, mut rec: RunnerRecord, revision: u64) {
    rec.updated_at = 0;
    let _ = replace_at(&ctx.runners, name, &rec, revision).await;
}

/// Deregisters GitHub runner `id` of `registration` (a missing one is success).
pub async fn delete_github_runner(ctx: &Context, registration: &str, id: u64) -> Result<(), Error> {
    let reg = ctx.registration(registration)?;
    ctx.github(registration)?
        .delete_runner(&reg.scope(), id)
        .await
        .map_err(Error::from)
}

/// Publishes a reap command for `runner`. Tenants publish into the reap stream too, so its
/// message id is unguessable rather than deduplicating (the reaper is idempotent).
pub async fn reap(
    ctx: &Context,
    tenant: &str,
    runner: &str,
    reason: ReapReason,
) -> Result<(), Error> {
    let command = ReapRunner {
        tenant: tenant.to_owned(),
        runner_name: runner.to_owned(),
        reason,
        requested_at: now_millis(),
    };
    let msg_id = Context::unguessable_id(tenant, &format!("reap-{reason:?}"), runner);
    ctx.publish(
        subject::reap(tenant)?,
        bus_schema::encode(&command)?,
        Some(&msg_id),
    )
    .await
}

/// A runner made for a finished job: marked for deletion if not created yet, and reaped if
/// it never ran a job.
pub async fn drop_unneeded(
    ctx: &Context,
    tenant: &str,
    name: &str,
    job_id: u64,
) -> Result<(), Error> {
    let now = now_millis();
    let unneeded = cas(&ctx.runners, name, |current| {
        Ok(decide::drop_unneeded(current, job_id, now)?)
    })
    .await?;
    if unneeded {
        reap(ctx, tenant, name, ReapReason::JobGone).await?;
    }
    Ok(())
}
