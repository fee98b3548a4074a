//! Reaper actor: converges runners toward deleted.
//!
//! # Messages
//! - Consumes: `shr.v1.runner.reap.<tenant>` ([`ReapRunner`]), durable `reaper-<tenant>`.
//! - Emits: `shr.v1.runner.event.<tenant>` ([`RunnerEvent::Deleted`]).
//!
//! # Guarantees
//! - A command only says "look at runner K": the reaper reads the record, deregisters the
//!   GitHub runner, deletes the instance and records `Deleted`. Running it twice, or after a
//!   crash, is safe; a missing GitHub runner or instance counts as gone.
//! - Deregister first, then delete: a runner that is idle is removed from GitHub before its
//!   instance goes, so it cannot take a job mid-teardown. GitHub refuses to remove a busy
//!   runner; such a runner is left alone (its job's completion reaps it).
//! - Provider errors are retried with backoff (the command is nak'ed).

use std::collections::BTreeMap;
use std::sync::Arc;

use bus_schema::subject::{self, REAP_STREAM};
use bus_schema::{ReapReason, ReapRunner, RunnerDeleted, RunnerEvent, RunnerState, now_millis};
use tokio_util::sync::CancellationToken;

use crate::cas::cas;
use crate::consume::{self, ConsumerSpec, lane_key};
use crate::provisioner::ProviderSet;
use crate::{Context, Error};

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
            durable: format!("reaper-{tenant}"),
            filters: vec![subject::reap(&tenant)?],
            lanes: 8,
            ack_wait: std::time::Duration::from_secs(120),
        };
        tasks.spawn(consume::run(
            ctx.bus.js.clone(),
            spec,
            cancel.clone(),
            |msg| lane_key(msg.payload.as_ref()),
            move |msg| {
                let ctx = ctx.clone();
                let providers = providers.clone();
                async move {
                    let result = match bus_schema::decode::<ReapRunner>(&msg.payload) {
                        Ok(cmd) => reap(&ctx, &providers, cmd).await,
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

/// Converges one runner. Public so tests can drive it directly.
pub async fn reap(ctx: &Context, providers: &ProviderSet, cmd: ReapRunner) -> Result<(), Error> {
    let name = &cmd.runner_name;
    let Some((rec, _)) = ctx.runners.get(name).await? else {
        tracing::debug!(runner = %name, "reap: no record; the sweep handles strays");
        return Ok(());
    };
    // A runner that took a job is reaped when that job completes, never for being "unneeded".
    let only_if_idle = matches!(cmd.reason, ReapReason::JobGone | ReapReason::IdleTimeout);
    if only_if_idle && rec.ran_job_id.is_some() && rec.state != RunnerState::Completed {
        tracing::info!(runner = %name, reason = ?cmd.reason, "reap skipped: runner is busy with a job");
        return Ok(());
    }
    // 1. Deregister from GitHub. GitHub refuses (422) while the runner runs a job.
    if let Some(id) = rec.github_runner_id {
        let reg = ctx.registration(&rec.registration)?;
        match ctx
            .github(&rec.registration)?
            .delete_runner(&reg.scope(), id)
            .await
        {
            Ok(()) => {}
            Err(error) if error.status() == Some(422) && only_if_idle => {
                tracing::info!(runner = %name, "reap skipped: GitHub says the runner is busy");
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        }
    }
    cas(&ctx.runners, name, |current| {
        Ok(match current {
            Some(r)
                if r.state != RunnerState::Deleting
                    && r.state.can_transition_to(RunnerState::Deleting) =>
            {
                let mut r = r.clone();
                r.transition(RunnerState::Deleting, now_millis())?;
                (Some(r), ())
            }
            _ => (None, ()),
        })
    })
    .await?;
    // 2. Delete the instance; missing is success.
    let provider = providers
        .get(&(rec.tenant.clone(), rec.provider))
        .ok_or_else(|| {
            Error::Config(format!(
                "no {} provider for tenant {}",
                rec.provider, rec.tenant
            ))
        })?;
    if let Err(error) = provider.delete(name).await {
        cas(&ctx.runners, name, |current| {
            Ok(match current {
                Some(r) => {
                    let mut r = r.clone();
                    r.delete_attempts += 1;
                    r.last_error = Some(error.to_string());
                    (Some(r), ())
                }
                None => (None, ()),
            })
        })
        .await?;
        return Err(error.into());
    }
    // 3. Record it.
    let was_deleted = cas(&ctx.runners, name, |current| {
        Ok(match current {
            Some(r) if r.state == RunnerState::Deleted => (None, true),
            Some(r) => {
                let mut r = r.clone();
                if r.state != RunnerState::Deleting {
                    r.transition(RunnerState::Deleting, now_millis())?;
                }
                r.transition(RunnerState::Deleted, now_millis())?;
                (Some(r), false)
            }
            None => (None, true),
        })
    })
    .await?;
    if !was_deleted {
        let event = RunnerEvent::Deleted(RunnerDeleted {
            tenant: rec.tenant.clone(),
            runner_name: name.clone(),
            provider: provider.kind(),
            reason: cmd.reason,
            at: now_millis(),
        });
        ctx.publish(
            subject::runner_event(&rec.tenant)?,
            bus_schema::encode(&event)?,
            Some(&format!("deleted-{name}")),
        )
        .await?;
        tracing::info!(runner = %name, reason = ?cmd.reason, "runner reaped");
    }
    Ok(())
}
