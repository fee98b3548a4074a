//! Provisioner actor: creates the cloud instance for each provision command.
//!
//! # Messages
//! - Consumes: `shr.v1.runner.provision.<tenant>.<provider>` ([`ProvisionRunner`]), one durable
//!   consumer per tenant and provider (`provision-<tenant>-<provider>`), disjoint filters.
//! - Emits: `shr.v1.runner.event.<tenant>` ([`RunnerEvent::Created`] / [`RunnerEvent::Failed`])
//!   and, when it must undo a create, `shr.v1.runner.reap.<tenant>`.
//!
//! # Guarantees
//! - Acks a command only after the instance exists (or the command is known to be moot), so a
//!   crash replays it; the create is idempotent by runner name.
//! - A command whose GitHub runner id differs from the record's is stale (the scheduler took
//!   over and made a new JIT config) and is dropped.
//! - A create that finishes after the runner was marked for deletion is undone at once.
//! - Transient provider errors are retried with backoff (the command is nak'ed); permanent
//!   ones mark the runner failed and tell the scheduler, which may provision again.
//! - A sealed JIT config is opened with the tenant's private key (from [`Context::jit_keys`])
//!   only here, right before the create; one that does not open fails the runner for good.
//! - The provision stream has work-queue retention: an acked command leaves the stream.

use std::collections::BTreeMap;
use std::sync::Arc;

use bus_schema::subject::{self, PROVISION_STREAM};
use bus_schema::{
    ErrorKind, ProviderKind, ProvisionRunner, ReapReason, ReapRunner, RunnerCreated, RunnerEvent,
    RunnerFailed, RunnerState, now_millis,
};
use providers::{CreateRequest, Provider};
use tokio_util::sync::CancellationToken;

use crate::cas::cas;
use crate::consume::{self, ConsumerSpec};
use crate::{Context, Error};

/// The providers of one process, by tenant and kind.
pub type ProviderSet = BTreeMap<(String, ProviderKind), Arc<dyn Provider>>;

/// Runs one consumer per (tenant, provider) in `providers` until `cancel` fires.
pub async fn run(
    ctx: Context,
    providers: ProviderSet,
    controller_id: String,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let mut tasks = tokio::task::JoinSet::new();
    for ((tenant, kind), provider) in providers {
        let ctx = ctx.clone();
        let controller_id = controller_id.clone();
        let cancel = cancel.clone();
        let spec = ConsumerSpec {
            stream: PROVISION_STREAM,
            durable: subject::provisioner_consumer(&tenant, kind)?,
            filter: subject::provision(&tenant, kind)?,
            lanes: 16,
            // Cloud creates can be slow; progress reports keep the message meanwhile.
            handler_timeout: std::time::Duration::from_secs(600),
        };
        tasks.spawn(consume::run(
            ctx.bus.js.clone(),
            spec,
            cancel,
            // One runner's provision commands are handled one at a time.
            |msg| {
                bus_schema::decode::<ProvisionRunner>(&msg.payload)
                    .map(|cmd| cmd.runner_name)
                    .unwrap_or_default()
            },
            move |msg| {
                let ctx = ctx.clone();
                let provider = provider.clone();
                let controller_id = controller_id.clone();
                async move {
                    let result = match bus_schema::decode::<ProvisionRunner>(&msg.payload) {
                        Ok(cmd) => match confined(&ctx, &msg.subject, provider.kind(), &cmd) {
                            Ok(()) => provision(&ctx, provider.as_ref(), &controller_id, cmd).await,
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
        done.map_err(|e| Error::bus("provisioner task", e))??;
    }
    Ok(())
}

/// Whether a provision command is about the tenant and provider of the subject it came on,
/// and names a registration of that tenant. NATS permissions vouch for the subject only.
pub fn confined(
    ctx: &Context,
    subject_str: &str,
    provider: ProviderKind,
    cmd: &ProvisionRunner,
) -> Result<(), Error> {
    let on = subject::parse_provision(subject_str)?;
    subject::confined_to(&on.tenant, &cmd.tenant, Some(&cmd.runner_name))?;
    if on.provider != provider || cmd.spec.provider != provider {
        return Err(Error::Config(format!(
            "provision command for {} arrived on {subject_str}",
            cmd.spec.provider
        )));
    }
    consume::registration_of(ctx, &on.tenant, &cmd.registration)
}

/// Handles one provision command. Public so tests can drive it directly.
pub async fn provision(
    ctx: &Context,
    provider: &dyn Provider,
    controller_id: &str,
    cmd: ProvisionRunner,
) -> Result<(), Error> {
    let name = cmd.runner_name.clone();
    // Move Requested -> Creating, or learn that there is nothing to do.
    let now = now_millis();
    let go = cas(&ctx.runners, &name, |current| {
        Ok(match current {
            None => (None, false),
            Some(rec) if rec.github_runner_id != Some(cmd.github_runner_id) => (None, false),
            Some(rec) => match rec.state {
                RunnerState::Requested => {
                    let mut rec = rec.clone();
                    rec.transition(RunnerState::Creating, now)?;
                    (Some(rec), true)
                }
                // Resume a create interrupted by a crash.
                RunnerState::Creating => (None, true),
                _ => (None, false),
            },
        })
    })
    .await?;
    if !go {
        tracing::debug!(runner = %name, "provision command is stale or already done");
        return Ok(());
    }
    let jit_config = match (&cmd.sealed_jit_config, ctx.jit_keys.private(&cmd.tenant)) {
        (None, _) => cmd.jit_config.clone(),
        (Some(sealed), Some(key)) => match key.open(sealed) {
            Ok(jit) => jit,
            Err(error) => {
                let reason = error.to_string();
                return fail(ctx, &cmd, provider.kind(), ErrorKind::Permanent, reason).await;
            }
        },
        (Some(_), None) => {
            let reason = format!(
                "the JIT config is sealed but this process has no jit_private_key for tenant {}",
                cmd.tenant
            );
            return fail(ctx, &cmd, provider.kind(), ErrorKind::Permanent, reason).await;
        }
    };
    let request = CreateRequest {
        controller_id: controller_id.to_owned(),
        tenant: cmd.tenant.clone(),
        registration: cmd.registration.clone(),
        runner_name: name.clone(),
        spec: cmd.spec.clone(),
        jit_config,
    };
    let started = std::time::Instant::now();
    let created = provider.create(&request).await;
    let metrics = telemetry::metrics::global();
    let took = started.elapsed().as_secs_f64();
    let kind_label = provider.kind().to_string();
    let instance = match created {
        Ok(instance) => {
            metrics.provision_took(&kind_label, "created", took);
            instance
        }
        Err(error) if error.kind().is_retryable() => {
            metrics.provision_took(&kind_label, "retry", took);
            metrics.provider_error(&kind_label, "create", &crate::observe::label(&error.kind()));
            return Err(error.into());
        }
        Err(error) => {
            metrics.provision_took(&kind_label, "failed", took);
            metrics.provider_error(&kind_label, "create", &crate::observe::label(&error.kind()));
            return fail(ctx, &cmd, provider.kind(), error.kind(), error.to_string()).await;
        }
    };
    if !record_instance(ctx, &name, &instance.id).await? {
        tracing::info!(runner = %name, "runner was reaped while it was being created; deleting");
        provider.delete(&name).await?;
        return Ok(());
    }
    let event = RunnerEvent::Created(RunnerCreated {
        tenant: cmd.tenant.clone(),
        registration: cmd.registration.clone(),
        runner_name: name.clone(),
        job_id: cmd.job_id,
        provider: provider.kind(),
        instance_id: instance.id.clone(),
        at: now_millis(),
    });
    ctx.publish(
        subject::runner_event(&cmd.tenant)?,
        bus_schema::encode(&event)?,
        Some(&Context::unguessable_id(&cmd.tenant, "created", &name)),
    )
    .await?;
    tracing::info!(runner = %name, instance = %instance.id, provider = %provider.kind(), "runner instance created");
    Ok(())
}

/// Records the created instance on the runner record (moving it to `Running`). `false` when
/// the runner was reaped meanwhile, or its record is gone: the create must be undone.
async fn record_instance(ctx: &Context, name: &str, instance_id: &str) -> Result<bool, Error> {
    let now = now_millis();
    cas(&ctx.runners, name, |current| {
        Ok(match current {
            None => (None, false),
            Some(rec) if matches!(rec.state, RunnerState::Deleting | RunnerState::Deleted) => {
                (None, false)
            }
            Some(rec) => {
                let mut rec = rec.clone();
                rec.instance_id = Some(instance_id.to_owned());
                if rec.state.can_transition_to(RunnerState::Running)
                    && rec.state != RunnerState::Busy
                {
                    rec.transition(RunnerState::Running, now)?;
                }
                (Some(rec), true)
            }
        })
    })
    .await
}

async fn fail(
    ctx: &Context,
    cmd: &ProvisionRunner,
    provider: ProviderKind,
    kind: ErrorKind,
    reason: String,
) -> Result<(), Error> {
    tracing::error!(runner = %cmd.runner_name, %reason, ?kind, "runner create failed");
    let now = now_millis();
    cas(&ctx.runners, &cmd.runner_name, |current| {
        Ok(match current {
            Some(rec) if rec.state.can_transition_to(RunnerState::Failed) => {
                let mut rec = rec.clone();
                rec.transition(RunnerState::Failed, now)?;
                rec.last_error = Some(reason.clone());
                (Some(rec), ())
            }
            _ => (None, ()),
        })
    })
    .await?;
    let event = RunnerEvent::Failed(RunnerFailed {
        tenant: cmd.tenant.clone(),
        registration: cmd.registration.clone(),
        runner_name: cmd.runner_name.clone(),
        job_id: cmd.job_id,
        provider,
        kind,
        reason,
        at: now_millis(),
    });
    ctx.publish(
        subject::runner_event(&cmd.tenant)?,
        bus_schema::encode(&event)?,
        Some(&Context::unguessable_id(
            &cmd.tenant,
            "failed",
            &cmd.runner_name,
        )),
    )
    .await?;
    let reap = ReapRunner {
        tenant: cmd.tenant.clone(),
        runner_name: cmd.runner_name.clone(),
        reason: ReapReason::ProvisionFailed,
        requested_at: now_millis(),
    };
    ctx.publish(
        subject::reap(&cmd.tenant)?,
        bus_schema::encode(&reap)?,
        Some(&Context::unguessable_id(
            &cmd.tenant,
            "reap-failed",
            &cmd.runner_name,
        )),
    )
    .await
}
