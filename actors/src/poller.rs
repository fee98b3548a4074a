//! Poller actor: finds queued jobs through the REST API, healing lost webhooks.
//!
//! # Messages
//! - Consumes: GitHub REST (`actions/runs?status=queued`, run jobs, single jobs), per
//!   registration whose detection includes polling.
//! - Emits: the same [`JobQueued`], [`JobStarted`], [`JobCompleted`] events as the webhook,
//!   with message ids `poll-<job>-<status>` so repeated polls inside the duplicate window
//!   collapse, and the scheduler's compare-and-set absorbs the rest.
//!
//! # Guarantees
//! - One poller per registration across replicas: each poll runs under a lease in the
//!   leases bucket (renewed each round, expiring by the bucket's TTL if the holder dies).
//! - Conditional requests: the run list and each run's job list are fetched with the last
//!   ETag; an unchanged answer (304) costs no primary rate limit.
//! - Jobs this system is tracking (records not yet terminal) are re-checked one by one, so a
//!   lost `in_progress` or `completed` delivery is healed as well as a lost `queued` one.
//!
//! # Caveats
//! Enterprise scopes have no enterprise-wide runs endpoint; they rely on webhooks and the
//! re-check of tracked jobs.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bus_schema::{
    JobCompleted, JobEvent, JobQueued, JobSource, JobStarted, JobState, Scope, now_millis, subject,
};
use github_client::{Conditional, GitHubClient, Job, RunStatus, WorkflowRun};
use registration::Registration;
use shr_nats::Leases;
use tokio_util::sync::CancellationToken;

use crate::{Context, Error};

/// Runs one polling loop per polling registration until `cancel` fires.
pub async fn run(ctx: Context, holder: String, cancel: CancellationToken) -> Result<(), Error> {
    let mut tasks = tokio::task::JoinSet::new();
    for reg in ctx.config.registrations() {
        if !reg.detection.uses_poll() {
            continue;
        }
        let ctx = ctx.clone();
        let holder = holder.clone();
        let cancel = cancel.clone();
        let name = reg.name.clone();
        tasks.spawn(async move { poll_loop(ctx, name, holder, cancel).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| Error::bus("poller task", e))?;
    }
    Ok(())
}

/// ETags remembered between rounds, per repository and per run.
#[derive(Debug, Default)]
pub struct PollCache {
    runs: HashMap<String, (Option<String>, Vec<WorkflowRun>)>,
    jobs: HashMap<u64, (Option<String>, Vec<Job>)>,
}

async fn poll_loop(ctx: Context, registration: String, holder: String, cancel: CancellationToken) {
    let leases = Leases::new(ctx.bus.leases.clone());
    let Ok(key) = subject::poll_lease_key(&registration) else {
        return;
    };
    let interval = match ctx.registration(&registration) {
        Ok(reg) => Duration::from_secs(reg.poll_interval_secs.unwrap_or(30).max(1)),
        Err(_) => return,
    };
    let mut cache = PollCache::default();
    let mut lease = None;
    loop {
        lease = match lease.take() {
            Some(mut held) => match shr_nats::Lease::renew(&mut held).await {
                Ok(()) => Some(held),
                Err(error) => {
                    tracing::warn!(%registration, %error, "poll lease lost");
                    None
                }
            },
            None => leases
                .try_acquire(&key, &holder)
                .await
                .unwrap_or_else(|error| {
                    tracing::warn!(%registration, %error, "poll lease unavailable");
                    None
                }),
        };
        if lease.is_some()
            && let Err(error) = poll_once(&ctx, &registration, &mut cache).await
        {
            tracing::warn!(%registration, %error, "poll round failed");
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
    if let Some(held) = lease {
        let _ = held.release().await;
    }
}

/// One polling round for a registration. Returns how many events were published.
pub async fn poll_once(
    ctx: &Context,
    registration: &str,
    cache: &mut PollCache,
) -> Result<usize, Error> {
    let reg = ctx.registration(registration)?;
    let github = ctx.github(registration)?;
    let mut published = 0;
    for (owner, repo) in repositories(reg, github).await? {
        let full = format!("{owner}/{repo}");
        let etag = cache.runs.get(&full).and_then(|(e, _)| e.clone());
        let runs = match github
            .list_queued_runs(&owner, &repo, etag.as_deref())
            .await?
        {
            Conditional::NotModified => cache
                .runs
                .get(&full)
                .map(|(_, r)| r.clone())
                .unwrap_or_default(),
            Conditional::Modified { value, etag } => {
                cache.runs.insert(full.clone(), (etag, value.clone()));
                value
            }
        };
        for run in runs {
            let etag = cache.jobs.get(&run.id).and_then(|(e, _)| e.clone());
            let jobs = match github
                .list_run_jobs(&owner, &repo, run.id, etag.as_deref())
                .await?
            {
                Conditional::NotModified => cache
                    .jobs
                    .get(&run.id)
                    .map(|(_, j)| j.clone())
                    .unwrap_or_default(),
                Conditional::Modified { value, etag } => {
                    cache.jobs.insert(run.id, (etag, value.clone()));
                    value
                }
            };
            for job in jobs.iter().filter(|j| j.status == RunStatus::Queued) {
                publish(ctx, reg, job).await?;
                published += 1;
            }
        }
    }
    published += recheck_tracked(ctx, reg, github).await?;
    Ok(published)
}

async fn repositories(
    reg: &Registration,
    github: &GitHubClient,
) -> Result<Vec<(String, String)>, Error> {
    Ok(match reg.scope() {
        Scope::Repo { owner, repo } => vec![(owner, repo)],
        Scope::Org { org } => {
            let names = if reg.repos.is_empty() {
                github.list_org_repos(&org).await?
            } else {
                reg.repos.clone()
            };
            names.into_iter().map(|r| (org.clone(), r)).collect()
        }
        Scope::Enterprise { .. } => Vec::new(),
    })
}

/// Re-reads each job this registration is tracking and reports what changed.
async fn recheck_tracked(
    ctx: &Context,
    reg: &Registration,
    github: &GitHubClient,
) -> Result<usize, Error> {
    let prefix = format!("{}.{}.", reg.tenant, reg.name);
    let mut published = 0;
    let mut by_key = BTreeMap::new();
    for key in ctx.jobs.keys().await? {
        if !key.starts_with(&prefix) {
            continue;
        }
        if let Some((rec, _)) = ctx.jobs.get(&key).await?
            && !rec.state.is_terminal()
        {
            by_key.insert(key, rec);
        }
    }
    for rec in by_key.into_values() {
        let Some((owner, repo)) = rec.job.repo.split_once('/') else {
            continue;
        };
        let Some(job) = github.get_job(owner, repo, rec.job.job_id).await? else {
            continue;
        };
        let stale_start = job.status == RunStatus::InProgress && rec.state != JobState::InProgress;
        if job.status == RunStatus::Completed || stale_start {
            publish(ctx, reg, &job).await?;
            published += 1;
        }
    }
    Ok(published)
}

async fn publish(ctx: &Context, reg: &Registration, job: &Job) -> Result<(), Error> {
    let tenant = reg.tenant.clone();
    let registration = reg.name.clone();
    let observed_at = now_millis();
    let (event, status) = match job.status {
        RunStatus::Queued => (
            JobEvent::Queued(JobQueued {
                tenant,
                registration,
                job: job.job_ref(),
                source: JobSource::Poll,
                delivery_id: None,
                observed_at,
            }),
            "queued",
        ),
        RunStatus::InProgress => {
            let Some(runner_name) = job.runner_name.clone() else {
                return Ok(());
            };
            (
                JobEvent::Started(JobStarted {
                    tenant,
                    registration,
                    job: job.job_ref(),
                    runner_name,
                    runner_id: job.runner_id,
                    source: JobSource::Poll,
                    delivery_id: None,
                    observed_at,
                }),
                "started",
            )
        }
        RunStatus::Completed => (
            JobEvent::Completed(JobCompleted {
                tenant,
                registration,
                job: job.job_ref(),
                conclusion: job.conclusion.clone(),
                runner_name: job.runner_name.clone(),
                runner_id: job.runner_id,
                source: JobSource::Poll,
                delivery_id: None,
                observed_at,
            }),
            "completed",
        ),
        _ => return Ok(()),
    };
    let msg_id = format!("poll-{}-{}-{status}", reg.name, job.id);
    ctx.publish(event.subject()?, event.encode()?, Some(&msg_id))
        .await
}
