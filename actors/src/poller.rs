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
//!   leases bucket ([`LeasedLoop`]: renewed while a round works and between rounds, expiring
//!   by the bucket's TTL if the holder dies).
//! - Conditional requests: the run list and each run's job list are fetched with the last
//!   ETag; an unchanged answer (304) costs no primary rate limit.
//! - Jobs this system is tracking (records not yet terminal) are re-checked one by one, so a
//!   lost `in_progress` or `completed` delivery is healed as well as a lost `queued` one.
//! - Optional spending: a round is skipped while the credential's rate budget (shared by
//!   all replicas) is under its reserve ([`GitHubClient::spare`]).
//! - API economy with webhooks on (`webhook+poll`): the poller is only the backstop, so a
//!   run's jobs are listed only once the run has been active for [`webhook_grace`] (its
//!   webhooks should have done the work by then), and a finished run's jobs only if they were
//!   listed before. A healthy webhook-driven job costs the poller nothing but its share of
//!   the (conditional) run lists, and an idle round is all 304s: zero points.
//!
//! # Caveats
//! Enterprise scopes have no enterprise-wide runs endpoint; they rely on webhooks and the
//! re-check of tracked jobs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bus_schema::{
    JobCompleted, JobEvent, JobQueued, JobSource, JobStarted, JobState, Scope, now_millis, subject,
};
use github_client::{Conditional, GitHubClient, Job, RunStatus, WorkflowRun};
use registration::Registration;
use shr_nats::Leases;
use tokio_util::sync::CancellationToken;

use crate::leased::LeasedLoop;
use crate::{Context, Error};

/// Runs one polling loop per polling registration until `cancel` fires. Follows live
/// registrations ([`crate::live`]): an applied one starts polling, a removed (draining) one
/// stops.
pub async fn run(ctx: Context, holder: String, cancel: CancellationToken) -> Result<(), Error> {
    let wanted = |snapshot: &crate::live::Snapshot, reg: &Registration| {
        reg.detection.uses_poll() && !snapshot.draining.contains(&reg.name)
    };
    let start = |name: String, token: CancellationToken| {
        let (ctx, holder) = (ctx.clone(), holder.clone());
        async move { poll_loop(ctx, name, holder, token).await }
    };
    crate::live::per_registration(&ctx, &cancel, wanted, start).await;
    Ok(())
}

/// A conditional answer kept for the next round: its ETag and its value.
type Cached<T> = (Option<String>, Vec<T>);

/// What the poller remembers between rounds: ETags and answers per list, and what it last
/// reported per job.
#[derive(Debug, Default)]
pub struct PollCache {
    runs: HashMap<(String, &'static str), Cached<WorkflowRun>>,
    jobs: HashMap<u64, Cached<Job>>,
    /// Runs seen active last round, per repository: one that disappears has finished.
    active: HashMap<String, BTreeSet<u64>>,
    /// The status last published per job (started and completed are reported once).
    reported: HashMap<u64, RunStatus>,
    /// When each active run was first seen (for [`webhook_grace`]).
    first_seen: HashMap<u64, std::time::Instant>,
    /// When each repository's runs were last listed (with webhooks on, see [`lists_runs`]).
    listed_at: HashMap<String, std::time::Instant>,
}

/// With webhooks on, how long a run may be active before the poller lists its jobs itself:
/// three poll intervals, at least 30 s.
pub fn webhook_grace(poll_interval: Duration) -> Duration {
    (poll_interval * 3).max(Duration::from_secs(30))
}

/// Whether a repository's runs are listed this round. Pure. With webhooks on (`grace` is
/// `Some`), a run's jobs are looked at only after the grace anyway, so the run lists are
/// fetched at most every half grace: a busy repository's lists change every round and each
/// changed answer costs a point. Without webhooks, every round.
pub fn lists_runs(grace: Option<Duration>, since_listed: Option<Duration>) -> bool {
    match (grace, since_listed) {
        (Some(grace), Some(since)) => since >= grace / 2,
        _ => true,
    }
}

/// Whether a run's jobs are listed this round. Pure. `grace` is `None` when the poller is the
/// only detection (every run is listed); `listed_before` says the run's jobs are cached.
pub fn lists_jobs(
    grace: Option<Duration>,
    active_for: Duration,
    finished: bool,
    listed_before: bool,
) -> bool {
    match grace {
        None => true,
        Some(_) if finished => listed_before,
        Some(grace) => listed_before || active_for >= grace,
    }
}

async fn poll_loop(ctx: Context, registration: String, holder: String, cancel: CancellationToken) {
    let Ok(key) = subject::poll_lease_key(&registration) else {
        return;
    };
    let interval = match ctx.registration(&registration) {
        Ok(reg) => Duration::from_secs(reg.poll_interval_secs.unwrap_or(30).max(1)),
        Err(_) => return,
    };
    let leased = LeasedLoop {
        leases: Leases::new(ctx.bus.leases.clone()),
        key,
        holder,
        interval,
        what: "poll",
    };
    // Rounds never overlap; the lock only lets each round borrow the cache.
    let cache = std::sync::Arc::new(tokio::sync::Mutex::new(PollCache::default()));
    leased
        .run(cancel, || {
            let (ctx, registration, cache) = (ctx.clone(), registration.clone(), cache.clone());
            async move {
                let started = std::time::Instant::now();
                let mut cache = cache.lock().await;
                match poll_once(&ctx, &registration, &mut cache).await {
                    Ok(published) => {
                        crate::observe::poll_seen(&ctx, &registration).await;
                        tracing::debug!(%registration, published, elapsed = ?started.elapsed(), "poll round done")
                    }
                    Err(error) => tracing::warn!(%registration, %error, "poll round failed"),
                }
            }
        })
        .await;
}

/// One polling round for a registration. Returns how many events were published.
///
/// Per repository: the queued and in-progress run lists (conditional), each active run's
/// jobs (conditional), and once more the jobs of a run that left the active lists, which
/// tells how its jobs ended. Queued jobs are reported every round (the scheduler uses a
/// still-queued job to notice a runner that went elsewhere); started and completed once.
pub async fn poll_once(
    ctx: &Context,
    registration: &str,
    cache: &mut PollCache,
) -> Result<usize, Error> {
    let reg = ctx.registration(registration)?;
    let github = ctx.github(registration)?;
    let mut published = 0;
    // The poller is optional spending: with the credential's budget low (any replica's
    // reading), the round is skipped and the rest left to JIT registrations.
    if !github.spare() {
        tracing::info!(%registration, "rate budget low: skipping this poll round");
        return Ok(0);
    }
    let grace = reg.detection.uses_webhook().then(|| {
        webhook_grace(Duration::from_secs(
            reg.poll_interval_secs.unwrap_or(30).max(1),
        ))
    });
    let now = std::time::Instant::now();
    for (owner, repo) in repositories(&reg, &github).await? {
        let full = format!("{owner}/{repo}");
        let since_listed = cache.listed_at.get(&full).map(|t| now.duration_since(*t));
        if !lists_runs(grace, since_listed) {
            continue;
        }
        cache.listed_at.insert(full.clone(), now);
        let mut active = BTreeSet::new();
        for (status, token) in [
            (RunStatus::Queued, "queued"),
            (RunStatus::InProgress, "in_progress"),
        ] {
            let key = (full.clone(), token);
            let etag = cache.runs.get(&key).and_then(|(e, _)| e.clone());
            let runs = match github
                .list_runs(&owner, &repo, status, etag.as_deref())
                .await?
            {
                Conditional::NotModified => cache
                    .runs
                    .get(&key)
                    .map(|(_, r)| r.clone())
                    .unwrap_or_default(),
                Conditional::Modified { value, etag } => {
                    cache.runs.insert(key, (etag, value.clone()));
                    value
                }
            };
            active.extend(runs.iter().map(|r| r.id));
        }
        let finished: Vec<u64> = cache
            .active
            .get(&full)
            .map(|prev| prev.difference(&active).copied().collect())
            .unwrap_or_default();
        for &run_id in &active {
            cache.first_seen.entry(run_id).or_insert(now);
        }
        for run_id in active.iter().copied().chain(finished.iter().copied()) {
            let active_for = cache
                .first_seen
                .get(&run_id)
                .map_or(Duration::ZERO, |t| now.duration_since(*t));
            let listed_before = cache.jobs.contains_key(&run_id);
            if !lists_jobs(grace, active_for, !active.contains(&run_id), listed_before) {
                continue;
            }
            let etag = cache.jobs.get(&run_id).and_then(|(e, _)| e.clone());
            let jobs = match github
                .list_run_jobs(&owner, &repo, run_id, etag.as_deref())
                .await?
            {
                Conditional::NotModified => cache
                    .jobs
                    .get(&run_id)
                    .map(|(_, j)| j.clone())
                    .unwrap_or_default(),
                Conditional::Modified { value, etag } => {
                    cache.jobs.insert(run_id, (etag, value.clone()));
                    value
                }
            };
            for job in &jobs {
                let again = cache.reported.get(&job.id) == Some(&job.status);
                if job.status == RunStatus::Queued || !again {
                    tracing::trace!(job = job.id, status = ?job.status, "poll publishes");
                    publish(ctx, &reg, job).await?;
                    cache.reported.insert(job.id, job.status);
                    published += 1;
                }
            }
        }
        for run_id in &finished {
            cache.first_seen.remove(run_id);
            if let Some((_, jobs)) = cache.jobs.remove(run_id) {
                for job in jobs {
                    cache.reported.remove(&job.id);
                }
            }
        }
        cache.active.insert(full, active);
    }
    published += recheck_tracked(ctx, &reg, &github).await?;
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

/// How many tracked jobs one round may re-read individually.
const RECHECK_PER_ROUND: usize = 20;

/// Re-reads jobs this registration has tracked for a while without news (their run left
/// the lists unnoticed, or their webhooks were lost) and reports what changed. Bounded per
/// round to spare the rate limit.
async fn recheck_tracked(
    ctx: &Context,
    reg: &Registration,
    github: &GitHubClient,
) -> Result<usize, Error> {
    let prefix = format!("{}.{}.", reg.tenant, reg.name);
    let interval = Duration::from_secs(reg.poll_interval_secs.unwrap_or(30).max(1));
    // With webhooks on, a job is "quiet" only after the webhook grace (API economy).
    let quiet = if reg.detection.uses_webhook() {
        webhook_grace(interval)
    } else {
        interval * 2
    };
    let quiet_ms = i64::try_from(quiet.as_millis()).unwrap_or(i64::MAX);
    let now = now_millis();
    let mut published = 0;
    let mut by_key = BTreeMap::new();
    for key in ctx.jobs.keys().await? {
        if !key.starts_with(&prefix) {
            continue;
        }
        if let Some((rec, _)) = ctx.jobs.get(&key).await?
            && !rec.state.is_terminal()
            && now - rec.updated_at > quiet_ms
        {
            by_key.insert(key, rec);
        }
    }
    for rec in by_key.into_values().take(RECHECK_PER_ROUND) {
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
    // Queued is re-reported every round on purpose (a job still queued tells the scheduler
    // to check its runner); started and completed once per job, deduplicated by id.
    let msg_id = (status != "queued")
        .then(|| bus_schema::msg_id::poll(&reg.tenant, &reg.name, job.id, status));
    let span = tracing::info_span!("poll publish", job = job.id, %status, trace_id = tracing::field::Empty);
    let publish = ctx.publish(event.subject()?, event.encode()?, msg_id.as_deref());
    crate::trace::in_new_trace(span, publish).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_webhooks_a_run_is_listed_only_after_the_grace_or_if_listed_before() {
        let grace = Some(Duration::from_secs(30));
        let (young, old) = (Duration::from_secs(29), Duration::from_secs(30));
        // (grace, active for, finished, listed before) -> listed
        let table = [
            (None, Duration::ZERO, false, false, true),
            (None, Duration::ZERO, true, false, true),
            (grace, young, false, false, false),
            (grace, old, false, false, true),
            (grace, young, false, true, true),
            (grace, old, true, false, false),
            (grace, young, true, true, true),
        ];
        for (grace, active_for, finished, listed, want) in table {
            assert_eq!(
                lists_jobs(grace, active_for, finished, listed),
                want,
                "{grace:?} {active_for:?} finished={finished} listed={listed}"
            );
        }
        assert_eq!(
            webhook_grace(Duration::from_secs(5)),
            Duration::from_secs(30)
        );
        assert_eq!(
            webhook_grace(Duration::from_secs(60)),
            Duration::from_secs(180)
        );
    }

    #[test]
    fn with_webhooks_run_lists_are_fetched_at_most_every_half_grace() {
        let grace = Some(Duration::from_secs(30));
        let s = Duration::from_secs;
        assert!(lists_runs(grace, None), "first round lists");
        assert!(!lists_runs(grace, Some(s(5))));
        assert!(!lists_runs(grace, Some(s(14))));
        assert!(lists_runs(grace, Some(s(15))));
        assert!(
            lists_runs(None, Some(Duration::ZERO)),
            "poll only: every round"
        );
    }
}
