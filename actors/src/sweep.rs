//! The reaper's periodic sweep: finds what no event brought to the reaper.
//!
//! # What one sweep of a tenant does ([`sweep_once`])
//! 1. Lists the instances in each of the tenant's providers ([`Provider::list`](providers::Provider::list): those tagged
//!    with our controller id) and the GitHub runners in each of its registrations' scopes,
//!    keeping the names of the form `shr-<tenant>-<job>-<attempt>`.
//! 2. Reads the record of every name seen there or among the runner record keys of the tenant.
//! 3. No record: the sweep writes a runner record in state `Orphaned` (the mark) holding what
//!    it found. On a later sweep, once the mark is `grace` old, the reaper deregisters and
//!    deletes it (rule 5 of [`crate::reaper`]).
//! 4. A `Deleted` record with leftovers (say a GitHub runner whose deregistration failed during
//!    a hard stop): the record cannot change any more (`Deleted` is terminal), so it is its own
//!    mark: once it has been deleted for `grace`, the sweep deregisters the GitHub runner
//!    (unless busy) and deletes the instances directly.
//! 5. Live records: [`reaper::decide`] on the listings (idle timeout, max runtime, dead
//!    instance, stuck `Completed`/`Deleting`, `PendingForceDelete`); if a rule fires,
//!    [`reaper::reconcile`] looks again and acts.
//!
//! [`run_sweeper`] sweeps each tenant every `interval` with `grace` = half the interval, so an
//! orphan is marked on one sweep and deleted on the next.
//!
//! # Guarantees
//! - Listings first, records second: the scheduler writes a record before it registers the
//!   GitHub runner, and the provisioner creates instances only for existing records, so a name
//!   seen in a listing whose record is absent when read afterwards is truly unrecorded.
//! - A failed listing makes that source unknown, never empty: nothing is deleted for being
//!   missing from a listing that failed.
//! - Marks live in KV (the `Orphaned` records), so they survive a restart or a failover; the
//!   mark's age, not the number of sweeps, gates the delete, so two replicas sweeping back to
//!   back cannot delete a fresh orphan.
//! - One sweeper per tenant at a time: the sweep holds the lease
//!   [`sweep_lease_key`](bus_schema::subject::sweep_lease_key), renewed while it works; a
//!   sweep that loses its lease stops.
//!
//! # Caveats
//! `Deleted` records are never purged here, and each sweep reads every record key of the
//! tenant; retention belongs to the bucket.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bus_schema::subject;
use bus_schema::{ProviderKind, RunnerName, RunnerRecord, RunnerState, now_millis};
use github_client::Runner;
use providers::{Instance, tags};
use shr_nats::Leases;
use tokio_util::sync::CancellationToken;

use crate::cas::cas;
use crate::leased::LeasedLoop;
use crate::provisioner::ProviderSet;
use crate::reaper::{self, Action, Clock, Observed, Outcome, Seen, Timeouts};
use crate::{Context, Error};

/// The sweep interval when the configuration names none.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// What one sweep did, by runner name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Strays newly marked `Orphaned`.
    pub marked: Vec<String>,
    /// Runners the reaper deleted (orphans included).
    pub deleted: Vec<String>,
    /// `Deleted` records whose leftovers were removed.
    pub cleaned: Vec<String>,
    /// Runners whose deletes keep failing.
    pub pending_force_delete: Vec<String>,
    /// Steps that failed (logged); they are tried again on the next sweep.
    pub errors: usize,
}

/// What the listings hold under one runner name.
#[derive(Debug, Default)]
struct Found {
    instances: Vec<(ProviderKind, Instance)>,
    /// With the registration whose scope listed it.
    github: Vec<(String, Runner)>,
}

/// The listings of one tenant and which of them succeeded.
#[derive(Debug, Default)]
struct Listings {
    found: BTreeMap<String, Found>,
    providers_ok: BTreeSet<ProviderKind>,
    registrations_ok: BTreeSet<String>,
}

/// Sweeps every tenant of `providers` every `interval`, under the tenant's sweep lease, until
/// `cancel` fires.
pub async fn run_sweeper(
    ctx: Context,
    providers: ProviderSet,
    holder: String,
    interval: Duration,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let tenants: BTreeSet<String> = providers.keys().map(|(t, _)| t.clone()).collect();
    let providers = Arc::new(providers);
    let mut tasks = tokio::task::JoinSet::new();
    for tenant in tenants {
        let key = subject::sweep_lease_key(&tenant)?;
        let (ctx, providers, holder, cancel) = (
            ctx.clone(),
            providers.clone(),
            holder.clone(),
            cancel.clone(),
        );
        let span = tracing::info_span!("sweeper", %tenant);
        tasks.spawn(tracing::Instrument::instrument(
            sweep_loop(ctx, providers, tenant, key, holder, interval, cancel),
            span,
        ));
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| Error::bus("sweeper task", e))?;
    }
    Ok(())
}

async fn sweep_loop(
    ctx: Context,
    providers: Arc<ProviderSet>,
    tenant: String,
    key: String,
    holder: String,
    interval: Duration,
    cancel: CancellationToken,
) {
    let leased = LeasedLoop {
        leases: Leases::new(ctx.bus.leases.clone()),
        key,
        holder,
        interval,
        what: "sweep",
    };
    let grace = interval / 2;
    leased
        .run(cancel, || {
            let (ctx, providers, tenant) = (ctx.clone(), providers.clone(), tenant.clone());
            async move {
                let clock = Clock {
                    now: now_millis(),
                    grace,
                };
                match sweep_once(&ctx, &providers, &tenant, clock).await {
                    Ok(report) if report != SweepReport::default() => {
                        tracing::info!(?report, "sweep done");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "sweep failed"),
                }
            }
        })
        .await;
}

/// One sweep of `tenant` at `clock` (see the module docs). Only a failure to list the record
/// keys aborts it; other failures are counted in the report and logged.
pub async fn sweep_once(
    ctx: &Context,
    providers: &ProviderSet,
    tenant: &str,
    clock: Clock,
) -> Result<SweepReport, Error> {
    let mut report = SweepReport::default();
    let listings = list(ctx, providers, tenant, &mut report).await;
    let mut names: BTreeSet<String> = ctx
        .runners
        .names_of(tenant)
        .await?
        .into_iter()
        .filter(|k| ours(tenant, k))
        .collect();
    names.extend(listings.found.keys().cloned());
    for name in names {
        if let Err(error) =
            sweep_name(ctx, providers, tenant, &name, &listings, clock, &mut report).await
        {
            tracing::warn!(runner = %name, %error, "sweep step failed");
            report.errors += 1;
        }
    }
    Ok(report)
}

async fn sweep_name(
    ctx: &Context,
    providers: &ProviderSet,
    tenant: &str,
    name: &str,
    listings: &Listings,
    clock: Clock,
    report: &mut SweepReport,
) -> Result<(), Error> {
    let found = listings.found.get(name);
    let grace_ms = i64::try_from(clock.grace.as_millis()).unwrap_or(i64::MAX);
    match ctx.runners.get(name).await? {
        None => {
            if let Some(found) = found
                && in_trace(name, mark(ctx, providers, tenant, name, found, clock)).await?
            {
                report.marked.push(name.to_owned());
            }
        }
        Some((rec, _)) if rec.state == RunnerState::Deleted => {
            if let Some(found) = found
                && clock.now.saturating_sub(rec.updated_at) >= grace_ms
                && in_trace(name, clean(ctx, providers, tenant, name, found)).await?
            {
                report.cleaned.push(name.to_owned());
            }
        }
        Some((rec, _)) if rec.tenant != tenant => {
            tracing::warn!(runner = %name, record_tenant = %rec.tenant, "runner record names another tenant; skipped");
        }
        Some((rec, _)) => {
            let limits = ctx
                .config
                .registration(&rec.registration)
                .map(|r| &r.limits);
            let timeouts = Timeouts::for_record(limits, &rec, clock.grace);
            let seen = snapshot(&rec, found, listings);
            if let Action::Keep(_) = reaper::decide(&rec, seen, None, clock.now, timeouts) {
                return Ok(());
            }
            match in_trace(name, reaper::reconcile(ctx, providers, name, None, clock)).await? {
                Outcome::Deleted(_) => report.deleted.push(name.to_owned()),
                Outcome::PendingForceDelete => report.pending_force_delete.push(name.to_owned()),
                Outcome::NoRecord | Outcome::Kept(_) => {}
            }
        }
    }
    Ok(())
}

/// Runs one sweep step about runner `name` as a trace of its own, so what it logs and
/// publishes (the reap, its `Deleted` event) carries a trace id like event-driven work does.
async fn in_trace<F: std::future::Future>(name: &str, step: F) -> F::Output {
    let span = tracing::info_span!("sweep", runner = %name, trace_id = tracing::field::Empty);
    crate::trace::in_new_trace(span, step).await
}

/// Lists instances and GitHub runners of `tenant`; failures are logged and leave the source
/// out of the `*_ok` sets.
async fn list(
    ctx: &Context,
    providers: &ProviderSet,
    tenant: &str,
    report: &mut SweepReport,
) -> Listings {
    let mut listings = Listings::default();
    for ((_, kind), provider) in providers.iter().filter(|((t, _), _)| t == tenant) {
        match provider.list().await {
            Ok(instances) => {
                listings.providers_ok.insert(*kind);
                for instance in instances {
                    let tenant_tag = instance.tags.get(tags::TENANT).map(String::as_str);
                    if ours(tenant, &instance.runner_name) && tenant_tag.is_none_or(|t| t == tenant)
                    {
                        listings
                            .found
                            .entry(instance.runner_name.clone())
                            .or_default()
                            .instances
                            .push((*kind, instance));
                    }
                }
            }
            Err(error) => {
                telemetry::metrics::global().provider_error(
                    &kind.to_string(),
                    "list",
                    &crate::observe::label(&error.kind()),
                );
                tracing::warn!(provider = %kind, %error, "sweep: listing instances failed");
                report.errors += 1;
            }
        }
    }
    for reg in ctx
        .config
        .registrations()
        .iter()
        .filter(|r| r.tenant == tenant)
    {
        let listed = match ctx.github(&reg.name) {
            Ok(client) => client.list_runners(&reg.scope()).await.map_err(Error::from),
            Err(error) => Err(error),
        };
        match listed {
            Ok(runners) => {
                listings.registrations_ok.insert(reg.name.clone());
                for runner in runners.into_iter().filter(|r| ours(tenant, &r.name)) {
                    listings
                        .found
                        .entry(runner.name.clone())
                        .or_default()
                        .github
                        .push((reg.name.clone(), runner));
                }
            }
            Err(error) => {
                tracing::warn!(registration = %reg.name, %error, "sweep: listing GitHub runners failed");
                report.errors += 1;
            }
        }
    }
    listings
}

/// What the listings say about a live record's instance and GitHub runner.
fn snapshot(rec: &RunnerRecord, found: Option<&Found>, listings: &Listings) -> Observed {
    let instance = if listings.providers_ok.contains(&rec.provider) {
        found
            .and_then(|f| f.instances.iter().find(|(k, _)| *k == rec.provider))
            .map_or(Seen::Absent, |(_, i)| Seen::Present(i.status))
    } else {
        Seen::Unknown
    };
    let github_busy = match rec.github_runner_id {
        Some(id) if listings.registrations_ok.contains(&rec.registration) => found
            .and_then(|f| f.github.iter().find(|(_, r)| r.id == id))
            .map_or(Seen::Absent, |(_, r)| Seen::Present(r.busy)),
        _ => Seen::Unknown,
    };
    Observed {
        instance,
        github_busy,
    }
}

/// Writes the `Orphaned` mark for an unrecorded name. `false` if a record appeared meanwhile.
async fn mark(
    ctx: &Context,
    providers: &ProviderSet,
    tenant: &str,
    name: &str,
    found: &Found,
    clock: Clock,
) -> Result<bool, Error> {
    let instance = found.instances.first();
    let github = found.github.first();
    let tenant_registrations: Vec<&str> = ctx
        .config
        .registrations()
        .iter()
        .filter(|r| r.tenant == tenant)
        .map(|r| r.name.as_str())
        .collect();
    let registration = instance
        .and_then(|(_, i)| i.tags.get(tags::REGISTRATION))
        .map(String::as_str)
        .filter(|r| tenant_registrations.contains(r))
        .or(github.map(|(r, _)| r.as_str()))
        .or(tenant_registrations.first().copied())
        .unwrap_or_default();
    let Some(provider) = instance
        .map(|(k, _)| *k)
        .or_else(|| providers.keys().find(|(t, _)| t == tenant).map(|(_, k)| *k))
    else {
        return Ok(false);
    };
    let rec = RunnerRecord {
        name: name.to_owned(),
        tenant: tenant.to_owned(),
        registration: registration.to_owned(),
        provider,
        job_id: name.parse::<RunnerName>().map_or(0, |n| n.job_id),
        state: RunnerState::Orphaned,
        ran_job_id: None,
        github_runner_id: github.map(|(_, r)| r.id),
        instance_id: instance.map(|(_, i)| i.id.clone()),
        spec: None,
        delete_attempts: 0,
        last_error: None,
        created_at: clock.now,
        updated_at: clock.now,
    };
    // Only where there is still no record: one written meanwhile is not a stray.
    let marked = cas(&ctx.runners, name, |current| {
        Ok(match current {
            None => (Some(rec.clone()), true),
            Some(_) => (None, false),
        })
    })
    .await?;
    if marked {
        tracing::info!(runner = %name, instance = ?rec.instance_id, github_runner = ?rec.github_runner_id, trace_id = %crate::trace::current_id(), "found a runner with no record; marked orphaned");
        telemetry::metrics::global().orphan_found(tenant);
    }
    Ok(marked)
}

/// Removes what is left of a `Deleted` record. `false` when GitHub says it is busy.
async fn clean(
    ctx: &Context,
    providers: &ProviderSet,
    tenant: &str,
    name: &str,
    found: &Found,
) -> Result<bool, Error> {
    if found.github.iter().any(|(_, r)| r.busy) {
        tracing::debug!(runner = %name, "deleted runner is busy on GitHub; leaving it for now");
        return Ok(false);
    }
    for (registration, runner) in &found.github {
        let scope = ctx.registration(registration)?.scope();
        match ctx
            .github(registration)?
            .delete_runner(&scope, runner.id)
            .await
        {
            Ok(()) => {}
            Err(error) if error.status() == Some(422) => return Ok(false),
            Err(error) => return Err(error.into()),
        }
    }
    for (kind, _) in &found.instances {
        if let Some(provider) = providers.get(&(tenant.to_owned(), *kind)) {
            provider.delete(name).await?;
        }
    }
    tracing::info!(runner = %name, trace_id = %crate::trace::current_id(), "removed the leftovers of a deleted runner");
    Ok(true)
}

/// Whether `name` is a runner name of `tenant`.
fn ours(tenant: &str, name: &str) -> bool {
    name.parse::<RunnerName>().is_ok_and(|n| n.tenant == tenant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_tenants_runner_names_are_swept() {
        assert!(ours("acme", "shr-acme-1-1"));
        assert!(!ours("acme", "shr-acme-b-1-1"));
        assert!(ours("acme-b", "shr-acme-b-1-1"));
        assert!(!ours("acme", "GitHub Actions 3"));
        assert!(!ours("acme", "shr-acme-x-1"));
    }
}
