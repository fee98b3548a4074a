//! The scheduler's rules as pure functions: records, an event, `now` and the provider's
//! capabilities in; the record to write and the actions to take out. No I/O, no clock.
//!
//! The glue in [`crate::scheduler`] reads the records, asks here inside a compare-and-set
//! (so a lost race decides again on the fresh record), and then carries the actions out.
//!
//! # Rules (by event)
//! - **queued**: a job we have not seen gets a record; one we decline (labels, or a shape the
//!   provider cannot run) is recorded `Declined` with the reason before any JIT registration
//!   is spent; one without a free `max_runners` slot waits `Queued`; otherwise runner attempt
//!   1 is provisioned. A job still `Provisioning` whose latest runner went elsewhere gets the
//!   next attempt (bounded by its budget, see [`attempt_budget`]); else its latest runner is
//!   resumed (crash safety).
//! - **started**: the job is `InProgress` on that runner; a runner of ours is bound to it.
//! - **stolen** (the runner made for job B started job A): B gets a re-bound idle runner of A,
//!   or the next attempt, or nothing once its attempts are spent.
//! - **completed** (cancelled included): the job is `Completed`; the runner that ran it is
//!   bound, marked completed and reaped; every other runner made for it is dropped.
//! - **runner failed**: the job's latest runner failing to start gives it the next attempt.

use bus_schema::{
    Capabilities, IllegalTransition, JobCompleted, JobQueued, JobRecord, JobRef, JobStarted,
    JobState, ReapReason, RunnerName, RunnerRecord, RunnerSpec, RunnerState, UnixMillis,
};

/// Why a job is not served: a metric code and a reason for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decline {
    pub code: &'static str,
    pub reason: String,
}

/// A job's runner spec, or why it is declined.
pub type Admission = Result<RunnerSpec, Decline>;

/// What became of the latest runner of a job that is still queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latest {
    /// It can still take the job.
    Serving,
    /// It took another job, failed, or is gone: the job needs another runner.
    Gone,
    /// GitHub no longer knows it: the job needs another runner, and the leftover is reaped.
    Unregistered,
}

/// What the records alone say about the latest runner (see [`look_at_latest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    Known(Latest),
    /// It has waited long while `Running`: ask GitHub about this runner id.
    AskGitHub(u64),
}

/// The facts every decision may use besides the job record and the event.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub now: UnixMillis,
    /// The job's attempt budget ([`attempt_budget`]).
    pub max_attempts: u32,
    /// The records of the job's runners that exist (read before deciding).
    pub runners: &'a [RunnerRecord],
}

/// An event as the rules see it, with what the glue looked up for it.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    Queued {
        queued: &'a JobQueued,
        admission: &'a Admission,
        /// The latest runner the glue looked at, and what it found.
        latest: Option<(&'a str, Latest)>,
        /// Whether the runner [`wanted_runner`] names holds a `max_runners` slot.
        has_slot: bool,
    },
    Started {
        started: &'a JobStarted,
        /// Whether the runner is one of this tenant's.
        ours: bool,
    },
    Completed {
        completed: &'a JobCompleted,
        /// Whether the job is ours (admissible labels, or ran on our runner).
        ours: bool,
        /// The event's runner, if it is one of ours.
        ran_on_ours: Option<&'a str>,
    },
    RunnerFailed {
        runner: &'a str,
    },
    /// `runner`, made for this job, ran another; `rebound` is an idle runner claimed for it.
    Stolen {
        runner: &'a str,
        rebound: Option<&'a str>,
    },
}

/// What to do after (or instead of) the record write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Count and log a declined job.
    Decline(Decline),
    /// Make sure this runner of the job exists: slot, record, JIT config, provision command.
    Provision { runner: String, job_id: u64 },
    /// Publish a reap command.
    Reap { runner: String, reason: ReapReason },
    /// Record that `runner` took `job`, and repair the job it was made for. `seen_at`: when
    /// the event that told was observed (the same on every redelivery).
    Bind {
        runner: String,
        job: Box<JobRecord>,
        seen_at: UnixMillis,
    },
    /// Move the runner that ran the job to `Completed`.
    MarkCompleted { runner: String, job_id: u64 },
    /// A runner made for a finished job that never ran it: mark it for deletion, reap it.
    DropUnneeded { runner: String, job_id: u64 },
    /// An idle runner of another job now serves this one.
    Rebound { runner: String },
    /// The job's runners keep failing or going elsewhere and its attempts are spent: no more
    /// runners are made for it.
    AttemptsExhausted { job_id: u64 },
}

/// The outcome of [`decide`]: the record to write (compare-and-set) and the actions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub write: Option<JobRecord>,
    pub actions: Vec<Action>,
}

/// Why no decision could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The record moved on since its runner was looked at: decide again later.
    #[error("job {0} changed while its runner was looked at")]
    InFlight(u64),
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
}

/// The name of attempt `attempt` of a job.
pub fn runner_name(tenant: &str, job_id: u64, attempt: u32) -> String {
    RunnerName {
        tenant: tenant.to_owned(),
        job_id,
        attempt,
    }
    .to_string()
}

/// Admission: the spec from the labels, checked against what the provider can run. A shape
/// the cloud cannot run is declined here, before any JIT registration is spent. `None`
/// capabilities (not declared) admit everything.
pub fn admit(spec: Result<RunnerSpec, Decline>, caps: Option<&Capabilities>) -> Admission {
    let spec = spec?;
    let Some(caps) = caps else {
        return Ok(spec);
    };
    let refuse = |what: String| Decline {
        code: "unsupported_shape",
        reason: format!("provider {} cannot run {what}", spec.provider),
    };
    if !caps.allows(spec.cpu_millis, spec.memory_mib) {
        return Err(refuse(format!(
            "{} mCPU with {} MiB",
            spec.cpu_millis, spec.memory_mib
        )));
    }
    if spec.dind && !caps.dind {
        return Err(refuse("docker-in-docker".into()));
    }
    if spec.disk_bucket.is_some() && !caps.disk_mount {
        return Err(refuse("a disk bucket mount".into()));
    }
    Ok(spec)
}

/// The attempts a job may use: `max_attempts` for runners that failed or vanished, plus one
/// for every runner of the job that ran another job. A steal is not a failure, and counting
/// it would strand the larger jobs of a burst whose runners the smaller ones keep taking.
pub fn attempt_budget(job: &JobRecord, runners: &[RunnerRecord], max_attempts: u32) -> u32 {
    let stolen = runners
        .iter()
        .filter(|r| job.runners.contains(&r.name))
        .filter(|r| r.ran_job_id.is_some_and(|ran| ran != job.job.job_id))
        .count();
    max_attempts.saturating_add(u32::try_from(stolen).unwrap_or(u32::MAX))
}

/// The latest runner of a job that is `Provisioning`.
pub fn latest_runner(job: Option<&JobRecord>) -> Option<&str> {
    job.filter(|j| j.state == JobState::Provisioning)
        .and_then(|j| j.runners.last())
        .map(String::as_str)
}

/// Whether `rec` (the latest runner of queued job `job_id`) can still serve it. `None` (no
/// record: a crash, or no slot yet) resumes the same attempt. A `Running` runner that has
/// not changed for `check_after_ms` is checked with GitHub when `ask_github` (a fresh poll).
pub fn look_at_latest(
    rec: Option<&RunnerRecord>,
    job_id: u64,
    ask_github: bool,
    check_after_ms: i64,
    now: UnixMillis,
) -> Look {
    let Some(rec) = rec else {
        return Look::Known(Latest::Serving);
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
        return Look::Known(Latest::Gone);
    }
    match (rec.state, rec.github_runner_id) {
        (RunnerState::Running, Some(id)) if ask_github && now - rec.updated_at > check_after_ms => {
            Look::AskGitHub(id)
        }
        _ => Look::Known(Latest::Serving),
    }
}

/// The runner a queued job would provision now, which must first take a `max_runners` slot.
pub fn wanted_runner(
    job: Option<&JobRecord>,
    queued: &JobQueued,
    admission: &Admission,
    latest: Option<Latest>,
    facts: &Facts<'_>,
) -> Option<String> {
    let gone = matches!(latest, Some(Latest::Gone | Latest::Unregistered));
    let attempt = match job {
        _ if admission.is_err() => return None,
        None => 1,
        Some(rec) if rec.state == JobState::Queued => 1,
        Some(rec) if gone && rec.attempts < facts.max_attempts => rec.attempts + 1,
        Some(_) => return None,
    };
    Some(runner_name(&queued.tenant, queued.job.job_id, attempt))
}

/// The rules: what to write over `current` and what to do, for `event`.
pub fn decide(
    current: Option<&JobRecord>,
    event: Event<'_>,
    facts: &Facts<'_>,
) -> Result<Decision, Refusal> {
    match event {
        Event::Queued {
            queued,
            admission,
            latest,
            has_slot,
        } => on_queued(current, queued, admission, latest, has_slot, facts),
        Event::Started { started, ours } => on_started(current, started, ours, facts.now),
        Event::Completed {
            completed,
            ours,
            ran_on_ours,
        } => on_completed(current, completed, ours, ran_on_ours, facts.now),
        Event::RunnerFailed { runner } => Ok(next_attempt(current, runner, facts, None)),
        Event::Stolen { runner, rebound } => Ok(next_attempt(current, runner, facts, rebound)),
    }
}

fn new_record(
    tenant: &str,
    registration: &str,
    job: &JobRef,
    state: JobState,
    now: i64,
) -> JobRecord {
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
        declined_code: None,
        created_at: now,
        updated_at: now,
    }
}

/// Moves `rec` to a new `Provisioning` attempt and names its runner.
fn add_attempt(rec: &mut JobRecord, now: UnixMillis) -> Action {
    rec.attempts += 1;
    rec.updated_at = now;
    let runner = runner_name(&rec.tenant, rec.job.job_id, rec.attempts);
    rec.runners.push(runner.clone());
    Action::Provision {
        runner,
        job_id: rec.job.job_id,
    }
}

fn on_queued(
    current: Option<&JobRecord>,
    e: &JobQueued,
    admission: &Admission,
    latest: Option<(&str, Latest)>,
    has_slot: bool,
    facts: &Facts<'_>,
) -> Result<Decision, Refusal> {
    let now = facts.now;
    let Some(rec) = current else {
        let mut rec = new_record(&e.tenant, &e.registration, &e.job, JobState::Queued, now);
        let actions = match admission {
            Err(decline) => {
                rec.state = JobState::Declined;
                rec.declined_reason = Some(decline.reason.clone());
                rec.declined_code = Some(decline.code.to_owned());
                vec![Action::Decline(decline.clone())]
            }
            Ok(_) if !has_slot => Vec::new(),
            Ok(_) => {
                rec.state = JobState::Provisioning;
                vec![add_attempt(&mut rec, now)]
            }
        };
        return Ok(Decision {
            write: Some(rec),
            actions,
        });
    };
    match rec.state {
        JobState::Queued if admission.is_ok() && has_slot => {
            let mut rec = rec.clone();
            rec.transition(JobState::Provisioning, now)?;
            rec.attempts = 0;
            let provision = add_attempt(&mut rec, now);
            Ok(Decision {
                write: Some(rec),
                actions: vec![provision],
            })
        }
        JobState::Provisioning
            if admission.is_ok()
                && rec.runners.last().map(String::as_str) == latest.map(|l| l.0) =>
        {
            Ok(retry_or_resume(rec, latest, has_slot, facts))
        }
        JobState::Provisioning if admission.is_ok() => Err(Refusal::InFlight(rec.job.job_id)),
        _ => Ok(Decision::default()),
    }
}

/// A queued job whose latest runner we looked at: the next attempt if that runner is gone,
/// else make sure the latest one went through (crash resume; it may be a re-bound runner).
fn retry_or_resume(
    rec: &JobRecord,
    latest: Option<(&str, Latest)>,
    has_slot: bool,
    facts: &Facts<'_>,
) -> Decision {
    let gone = matches!(latest, Some((_, Latest::Gone | Latest::Unregistered)));
    let mut actions = Vec::new();
    if let Some((old, Latest::Unregistered)) = latest {
        actions.push(Action::Reap {
            runner: old.to_owned(),
            reason: ReapReason::JobGone,
        });
    }
    if gone && rec.attempts < facts.max_attempts && has_slot {
        let mut rec = rec.clone();
        actions.push(add_attempt(&mut rec, facts.now));
        return Decision {
            write: Some(rec),
            actions,
        };
    }
    match rec.runners.last() {
        Some(name) => actions.push(Action::Provision {
            runner: name.clone(),
            job_id: rec.job.job_id,
        }),
        None => actions.clear(),
    }
    Decision {
        write: None,
        actions,
    }
}

fn on_started(
    current: Option<&JobRecord>,
    e: &JobStarted,
    ours: bool,
    now: UnixMillis,
) -> Result<Decision, Refusal> {
    let (write, record) = match current {
        None if !ours => return Ok(Decision::default()),
        None => {
            let mut rec = new_record(
                &e.tenant,
                &e.registration,
                &e.job,
                JobState::InProgress,
                now,
            );
            rec.ran_on = Some(e.runner_name.clone());
            (Some(rec.clone()), rec)
        }
        Some(rec) if rec.state.is_terminal() => (None, rec.clone()),
        Some(rec) => {
            let mut rec = rec.clone();
            rec.transition(JobState::InProgress, now)?;
            rec.ran_on = Some(e.runner_name.clone());
            (Some(rec.clone()), rec)
        }
    };
    let actions = if ours {
        vec![Action::Bind {
            runner: e.runner_name.clone(),
            job: Box::new(record),
            seen_at: e.observed_at,
        }]
    } else {
        Vec::new()
    };
    Ok(Decision { write, actions })
}

fn on_completed(
    current: Option<&JobRecord>,
    e: &JobCompleted,
    ours: bool,
    ran_on_ours: Option<&str>,
    now: UnixMillis,
) -> Result<Decision, Refusal> {
    let (write, record) = match current {
        None if !ours => return Ok(Decision::default()),
        // Completed before we saw it queued: a tombstone keeps a late `queued` from
        // provisioning a runner nobody needs.
        None => {
            let mut rec = new_record(&e.tenant, &e.registration, &e.job, JobState::Completed, now);
            rec.conclusion = e.conclusion.clone();
            rec.ran_on = e.runner_name.clone();
            (Some(rec.clone()), rec)
        }
        Some(rec) if rec.state.is_terminal() => (None, rec.clone()),
        Some(rec) => {
            let mut rec = rec.clone();
            rec.transition(JobState::Completed, now)?;
            rec.conclusion = e.conclusion.clone();
            if e.runner_name.is_some() {
                rec.ran_on = e.runner_name.clone();
            }
            (Some(rec.clone()), rec)
        }
    };
    let job_id = e.job.job_id;
    let mut actions = Vec::new();
    if let Some(runner) = ran_on_ours {
        // The `started` event may have been lost: bind now, then reap the runner.
        actions.push(Action::Bind {
            runner: runner.to_owned(),
            job: Box::new(record.clone()),
            seen_at: e.observed_at,
        });
        actions.push(Action::MarkCompleted {
            runner: runner.to_owned(),
            job_id,
        });
        actions.push(Action::Reap {
            runner: runner.to_owned(),
            reason: ReapReason::JobCompleted,
        });
    }
    for name in record
        .runners
        .iter()
        .filter(|n| Some(n.as_str()) != ran_on_ours)
    {
        actions.push(Action::DropUnneeded {
            runner: name.clone(),
            job_id,
        });
    }
    Ok(Decision { write, actions })
}

/// Whether job `b` still waits on `runner` (its latest runner, while `Provisioning`).
pub fn needs_runner(b: &JobRecord, runner: &str) -> bool {
    b.state == JobState::Provisioning && b.runners.last().map(String::as_str) == Some(runner)
}

/// The job's latest runner failed or ran another job: a re-bound runner, the next attempt,
/// or a report that the attempts are spent.
fn next_attempt(
    current: Option<&JobRecord>,
    runner: &str,
    facts: &Facts<'_>,
    rebound: Option<&str>,
) -> Decision {
    let Some(b) = current.filter(|b| needs_runner(b, runner)) else {
        return Decision::default();
    };
    let mut b = b.clone();
    if let Some(name) = rebound {
        b.updated_at = facts.now;
        b.runners.push(name.to_owned());
        let actions = vec![Action::Rebound {
            runner: name.to_owned(),
        }];
        return Decision {
            write: Some(b),
            actions,
        };
    }
    if b.attempts < facts.max_attempts {
        let provision = add_attempt(&mut b, facts.now);
        return Decision {
            write: Some(b),
            actions: vec![provision],
        };
    }
    // Spent: nothing more is provisioned, and the caller reports it (a job whose runners
    // keep failing must not go quiet).
    Decision {
        write: None,
        actions: vec![Action::AttemptsExhausted {
            job_id: b.job.job_id,
        }],
    }
}

/// Whether a runner with `runner_labels` may be given a job with `job_labels` (GitHub's rule).
pub fn covers(runner_labels: &[String], job_labels: &[String]) -> bool {
    job_labels.iter().all(|j| {
        j.eq_ignore_ascii_case("self-hosted")
            || runner_labels.iter().any(|r| r.eq_ignore_ascii_case(j))
    })
}

/// Parses a runner name of this tenant, if the runner is ours.
pub fn our_runner(tenant: &str, name: &str) -> Option<RunnerName> {
    name.parse::<RunnerName>()
        .ok()
        .filter(|n| n.tenant == tenant)
}

/// `rec` moved to `state` (if legal from where it is) and marked as having run `ran_job`;
/// `None` when that changes nothing.
pub fn mark(
    rec: &RunnerRecord,
    state: RunnerState,
    ran_job: Option<u64>,
    now: UnixMillis,
) -> Result<Option<RunnerRecord>, IllegalTransition> {
    let mut next = rec.clone();
    if ran_job.is_some() && next.ran_job_id.is_none() {
        next.ran_job_id = ran_job;
    }
    if next.state.can_transition_to(state) {
        next.transition(state, now)?;
    }
    Ok((next != *rec).then_some(next))
}

/// A runner made for finished job `job_id`: whether it is unneeded (it never ran a job), and
/// the record marked for deletion if its instance does not exist yet (so a provisioner that
/// has not got to it creates nothing).
pub fn drop_unneeded(
    rec: Option<&RunnerRecord>,
    job_id: u64,
    now: UnixMillis,
) -> Result<(Option<RunnerRecord>, bool), IllegalTransition> {
    match rec {
        Some(r) if r.job_id == job_id && r.ran_job_id.is_none() => {
            if matches!(r.state, RunnerState::Requested | RunnerState::Creating) {
                let mut r = r.clone();
                r.transition(RunnerState::Deleting, now)?;
                Ok((Some(r), true))
            } else {
                Ok((None, true))
            }
        }
        _ => Ok((None, false)),
    }
}

/// The idle runners made for `job` that took no job, other than `runner` (which took it).
pub fn free_runners(job: &JobRecord, records: &[RunnerRecord], runner: &str) -> Vec<RunnerRecord> {
    records
        .iter()
        .filter(|r| r.name != runner && job.runners.contains(&r.name))
        .filter(|r| {
            matches!(
                r.state,
                RunnerState::Requested | RunnerState::Creating | RunnerState::Running
            ) && r.ran_job_id.is_none()
                && r.job_id == job.job.job_id
        })
        .cloned()
        .collect()
}

/// The free runners that may be re-bound to job `b`: their labels cover its labels. One
/// still being requested (no JIT config yet) is re-bound before it is provisioned: its maker
/// finishes it for the job the record names then ([`rebound_while_made`]), so no second
/// runner is made for `b`.
pub fn rebind_candidates<'a>(free: &'a [RunnerRecord], b: &JobRecord) -> Vec<&'a RunnerRecord> {
    free.iter()
        .filter(|f| {
            f.spec
                .as_ref()
                .is_some_and(|s| covers(&s.labels, &b.job.labels))
        })
        .collect()
}

/// The maker of runner `claimed` (claimed for `job_id`) found the record changed after its
/// JIT call: if the only change is a re-bind to another job (still `Requested`, no GitHub
/// runner id, same spec, no job run), the record to write with GitHub runner id
/// `github_runner_id`, so the runner is made for the job it now serves. `None` otherwise
/// (taken over, marked for deletion, or changed in any other way): the maker drops its work.
pub fn rebound_while_made(
    claimed: &RunnerRecord,
    fresh: &RunnerRecord,
    github_runner_id: u64,
    now: UnixMillis,
) -> Option<RunnerRecord> {
    let rebound = fresh.state == RunnerState::Requested
        && fresh.github_runner_id.is_none()
        && fresh.ran_job_id.is_none()
        && fresh.job_id != claimed.job_id
        && fresh.spec == claimed.spec;
    rebound.then(|| {
        let mut rec = fresh.clone();
        rec.github_runner_id = Some(github_runner_id);
        rec.updated_at = now;
        rec
    })
}

/// A job waiting for a runner that free runner `free` can serve (its labels cover the
/// job's): one that found no `max_runners` slot (`Queued`, no runner yet), or one whose latest
/// runner was just taken by another job (`Provisioning`, `latest_taken`). The job record to
/// write, with `free` as its latest runner and no attempt of its own spent; `None` when the
/// job is not waiting, or `free` cannot serve it.
pub fn adopt_for_waiting(
    current: Option<&JobRecord>,
    free: &RunnerRecord,
    latest_taken: bool,
    now: UnixMillis,
) -> Result<Option<JobRecord>, IllegalTransition> {
    let Some(job) = current.filter(|j| {
        let waiting = match j.state {
            JobState::Queued => j.runners.is_empty(),
            JobState::Provisioning => latest_taken && !j.runners.is_empty(),
            _ => false,
        };
        waiting && j.tenant == free.tenant && j.registration == free.registration
    }) else {
        return Ok(None);
    };
    if !free
        .spec
        .as_ref()
        .is_some_and(|s| covers(&s.labels, &job.job.labels))
    {
        return Ok(None);
    }
    let mut job = job.clone();
    if job.state == JobState::Queued {
        job.transition(JobState::Provisioning, now)?;
        job.attempts = 0;
    }
    job.updated_at = now;
    job.runners.push(free.name.clone());
    Ok(Some(job))
}

/// Whether free runner `free` can stand in for runner `unmade`, made for another job and not
/// handed to the provisioner yet (`Requested`: no create has begun, so none can finish and
/// start a runner that takes a job while it is being deleted): same registration, and
/// `free`'s labels cover the labels `unmade` was made with. Then `unmade` is never created.
pub fn stands_in_for(free: &RunnerRecord, unmade: &RunnerRecord) -> bool {
    unmade.state == RunnerState::Requested
        && unmade.instance_id.is_none()
        && unmade.ran_job_id.is_none()
        && unmade.job_id != 0
        && unmade.job_id != free.job_id
        && unmade.name != free.name
        && unmade.tenant == free.tenant
        && unmade.registration == free.registration
        && match (&free.spec, &unmade.spec) {
            (Some(f), Some(u)) => covers(&f.labels, &u.labels),
            _ => false,
        }
}

/// The job record of a job whose latest runner is `unmade`, with free runner `free` as its
/// latest runner instead; `None` when `unmade` is no longer the runner the job waits for.
pub fn stand_in(
    current: Option<&JobRecord>,
    free: &RunnerRecord,
    unmade: &str,
    now: UnixMillis,
) -> Option<JobRecord> {
    let job = current.filter(|j| needs_runner(j, unmade) && j.tenant == free.tenant)?;
    let mut job = job.clone();
    job.runners.push(free.name.clone());
    job.updated_at = now;
    Some(job)
}

/// Whether runner `rec` (not a pool runner) is forgotten: it took no job, has not moved for
/// `quiet_ms`, and the job it names (`job`, its record) does not wait for it: the job is
/// finished or gone, or its latest runner is another. A crash between re-binding a free
/// runner and recording it on its new job leaves one; it is dropped like any unneeded runner.
pub fn forgotten(
    rec: &RunnerRecord,
    job: Option<&JobRecord>,
    now: UnixMillis,
    quiet_ms: i64,
) -> bool {
    let idle = rec.job_id != 0
        && rec.ran_job_id.is_none()
        && matches!(
            rec.state,
            RunnerState::Requested | RunnerState::Creating | RunnerState::Running
        )
        && now.saturating_sub(rec.updated_at) >= quiet_ms;
    idle && !job.is_some_and(|j| needs_runner(j, &rec.name))
}

/// Claims idle runner `rec` of job `from` for job `to`; `None` if it took a job or moved.
pub fn claim_for(
    rec: Option<&RunnerRecord>,
    from: u64,
    to: u64,
    now: UnixMillis,
) -> Option<RunnerRecord> {
    let rec = rec.filter(|r| r.ran_job_id.is_none() && r.job_id == from)?;
    let mut rec = rec.clone();
    rec.job_id = to;
    rec.updated_at = now;
    Some(rec)
}

/// A runner to request: who it is for and with what spec.
#[derive(Debug, Clone, Copy)]
pub struct NewRunner<'a> {
    pub name: &'a str,
    pub tenant: &'a str,
    pub registration: &'a str,
    pub job_id: u64,
    pub spec: &'a RunnerSpec,
}

/// How claiming a runner record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// A new `Requested` record.
    Created,
    /// A stale `Requested` record taken over; its GitHub runner (if any) must be deleted.
    TakenOver { stale: Option<u64> },
    /// Past `Requested`: nothing to do.
    Done,
    /// Someone else is making it right now.
    InFlight,
    /// There is no record and no slot for one.
    NoSlot,
}

/// Claims the record of runner `new`: create it (with a slot), or take over a `Requested`
/// one older than `claim_ms`.
pub fn claim(
    current: Option<&RunnerRecord>,
    new: NewRunner<'_>,
    has_slot: bool,
    claim_ms: i64,
    now: UnixMillis,
) -> (Option<RunnerRecord>, Claim) {
    match current {
        None if !has_slot => (None, Claim::NoSlot),
        None => (
            Some(RunnerRecord {
                name: new.name.to_owned(),
                tenant: new.tenant.to_owned(),
                registration: new.registration.to_owned(),
                provider: new.spec.provider,
                job_id: new.job_id,
                state: RunnerState::Requested,
                ran_job_id: None,
                github_runner_id: None,
                instance_id: None,
                spec: Some(new.spec.clone()),
                delete_attempts: 0,
                last_error: None,
                created_at: now,
                updated_at: now,
            }),
            Claim::Created,
        ),
        Some(rec) if rec.state != RunnerState::Requested => (None, Claim::Done),
        Some(rec) if now - rec.updated_at < claim_ms => (None, Claim::InFlight),
        Some(rec) => {
            let mut rec = rec.clone();
            let stale = rec.github_runner_id.take();
            rec.updated_at = now;
            // A re-bound runner now serves this job: its new JIT config follows this spec.
            rec.spec = Some(new.spec.clone());
            (Some(rec), Claim::TakenOver { stale })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

    use bus_schema::{JobSource, Network, ProviderKind};

    use super::*;

    const NOW: UnixMillis = 1_000_000;

    fn v(labels: &[&str]) -> Vec<String> {
        labels.iter().map(|s| s.to_string()).collect()
    }

    fn job_ref(job_id: u64) -> JobRef {
        JobRef {
            job_id,
            run_id: 9,
            repo: "acme/app".into(),
            labels: v(&["serverless-hosted-runner"]),
            name: "build".into(),
        }
    }

    fn spec() -> RunnerSpec {
        RunnerSpec {
            provider: ProviderKind::Local,
            region: None,
            cpu_millis: 2000,
            memory_mib: 4096,
            image: "runner:latest".into(),
            network: Network::default(),
            disk_bucket: None,
            dind: false,
            runner_group_id: 1,
            labels: v(&["serverless-hosted-runner"]),
            charge_labels: Vec::new(),
            max_runtime_secs: 3600,
        }
    }

    fn job(job_id: u64, state: JobState, runners: &[&str]) -> JobRecord {
        JobRecord {
            tenant: "acme".into(),
            registration: "org".into(),
            job: job_ref(job_id),
            state,
            attempts: u32::try_from(runners.len()).unwrap(),
            runners: v(runners),
            ran_on: None,
            conclusion: None,
            declined_reason: None,
            declined_code: None,
            created_at: 1,
            updated_at: 1,
        }
    }

    fn runner(name: &str, job_id: u64, state: RunnerState, ran: Option<u64>) -> RunnerRecord {
        RunnerRecord {
            name: name.into(),
            tenant: "acme".into(),
            registration: "org".into(),
            provider: ProviderKind::Local,
            job_id,
            state,
            ran_job_id: ran,
            github_runner_id: Some(5),
            instance_id: None,
            spec: Some(spec()),
            delete_attempts: 0,
            last_error: None,
            created_at: 1,
            updated_at: 1,
        }
    }

    fn queued(job_id: u64) -> JobQueued {
        JobQueued {
            tenant: "acme".into(),
            registration: "org".into(),
            job: job_ref(job_id),
            source: JobSource::Webhook,
            delivery_id: None,
            observed_at: NOW,
        }
    }

    fn started(job_id: u64, runner: &str) -> JobStarted {
        JobStarted {
            tenant: "acme".into(),
            registration: "org".into(),
            job: job_ref(job_id),
            runner_name: runner.into(),
            runner_id: Some(5),
            source: JobSource::Webhook,
            delivery_id: None,
            observed_at: NOW,
        }
    }

    fn completed(job_id: u64, conclusion: &str, runner: Option<&str>) -> JobCompleted {
        JobCompleted {
            tenant: "acme".into(),
            registration: "org".into(),
            job: job_ref(job_id),
            conclusion: Some(conclusion.into()),
            runner_name: runner.map(Into::into),
            runner_id: None,
            source: JobSource::Webhook,
            delivery_id: None,
            observed_at: NOW,
        }
    }

    fn facts(runners: &[RunnerRecord]) -> Facts<'_> {
        Facts {
            now: NOW,
            max_attempts: 3,
            runners,
        }
    }

    fn provision(runner: &str, job_id: u64) -> Action {
        Action::Provision {
            runner: runner.into(),
            job_id,
        }
    }

    fn reap(runner: &str, reason: ReapReason) -> Action {
        Action::Reap {
            runner: runner.into(),
            reason,
        }
    }

    /// One row of the decision table: the record before, the event, and what must come out.
    struct Row<'a> {
        rule: &'a str,
        current: Option<JobRecord>,
        event: Event<'a>,
        runners: &'a [RunnerRecord],
        /// The state written, or `None` for no write.
        writes: Option<JobState>,
        actions: Vec<Action>,
    }

    /// The events and records the decision table uses (leaked: tests only).
    struct Fixture {
        q7: &'static JobQueued,
        admitted: &'static Admission,
        too_big: &'static Admission,
        s_own: &'static JobStarted,
        s_steal: &'static JobStarted,
        done: &'static JobCompleted,
        cancelled: &'static JobCompleted,
        own: &'static [RunnerRecord],
    }

    fn leak<T>(value: T) -> &'static T {
        Box::leak(Box::new(value))
    }

    fn fixture() -> Fixture {
        let caps = Capabilities {
            shapes: Vec::new(),
            max_cpu_millis: 4000,
            max_memory_mib: 8192,
            dind: false,
            disk_mount: false,
        };
        let big = RunnerSpec {
            cpu_millis: 64_000,
            ..spec()
        };
        Fixture {
            q7: leak(queued(7)),
            admitted: leak(Ok(spec())),
            too_big: leak(admit(Ok(big), Some(&caps))),
            s_own: leak(started(7, "shr-acme-7-1")),
            s_steal: leak(started(7, "shr-acme-8-1")),
            done: leak(completed(7, "success", Some("shr-acme-7-1"))),
            cancelled: leak(completed(7, "cancelled", None)),
            own: leak([runner("shr-acme-7-1", 7, RunnerState::Running, None)]),
        }
    }

    impl Fixture {
        /// The bind of job 7, started on `runner`.
        fn bound(&self, runner: &str) -> Action {
            Action::Bind {
                runner: runner.into(),
                job: Box::new(JobRecord {
                    state: JobState::InProgress,
                    ran_on: Some(runner.into()),
                    updated_at: NOW,
                    ..job(7, JobState::Provisioning, &["shr-acme-7-1"])
                }),
                seen_at: NOW,
            }
        }
    }

    fn check(rows: Vec<Row<'_>>) {
        for row in rows {
            let decision = decide(row.current.as_ref(), row.event, &facts(row.runners))
                .unwrap_or_else(|e| panic!("{}: refused: {e}", row.rule));
            let written = decision.write.as_ref().map(|w| w.state);
            assert_eq!(written, row.writes, "{}", row.rule);
            assert_eq!(decision.actions, row.actions, "{}", row.rule);
            if let Some(write) = &decision.write {
                let fresh = write.updated_at == NOW || row.current.is_none();
                assert!(fresh, "{}: clock", row.rule);
                // Every attempt names a runner; a re-bound runner joins without an attempt.
                assert!(
                    write.attempts as usize <= write.runners.len(),
                    "{}",
                    row.rule
                );
            }
        }
    }

    #[test]
    fn scheduler_table_queued() {
        let f = fixture();
        check(vec![
            Row {
                rule: "queued: a new job gets runner attempt 1",
                current: None,
                event: Event::Queued {
                    queued: f.q7,
                    admission: f.admitted,
                    latest: None,
                    has_slot: true,
                },
                runners: &[],
                writes: Some(JobState::Provisioning),
                actions: vec![provision("shr-acme-7-1", 7)],
            },
            Row {
                rule: "no slot: the job waits queued and nothing is provisioned",
                current: None,
                event: Event::Queued {
                    queued: f.q7,
                    admission: f.admitted,
                    latest: None,
                    has_slot: false,
                },
                runners: &[],
                writes: Some(JobState::Queued),
                actions: vec![],
            },
            Row {
                rule: "capability decline: recorded with the reason, no runner requested",
                current: None,
                event: Event::Queued {
                    queued: f.q7,
                    admission: f.too_big,
                    latest: None,
                    has_slot: true,
                },
                runners: &[],
                writes: Some(JobState::Declined),
                actions: vec![Action::Decline(f.too_big.clone().unwrap_err())],
            },
            Row {
                rule: "queued again while its runner serves: resume that runner, no new attempt",
                current: Some(job(7, JobState::Provisioning, &["shr-acme-7-1"])),
                event: Event::Queued {
                    queued: f.q7,
                    admission: f.admitted,
                    latest: Some(("shr-acme-7-1", Latest::Serving)),
                    has_slot: true,
                },
                runners: f.own,
                writes: None,
                actions: vec![provision("shr-acme-7-1", 7)],
            },
            Row {
                rule: "queued while its runner is unregistered: reap it, next attempt",
                current: Some(job(7, JobState::Provisioning, &["shr-acme-7-1"])),
                event: Event::Queued {
                    queued: f.q7,
                    admission: f.admitted,
                    latest: Some(("shr-acme-7-1", Latest::Unregistered)),
                    has_slot: true,
                },
                runners: f.own,
                writes: Some(JobState::Provisioning),
                actions: vec![
                    reap("shr-acme-7-1", ReapReason::JobGone),
                    provision("shr-acme-7-2", 7),
                ],
            },
        ]);
    }

    #[test]
    fn scheduler_table_started_and_stolen() {
        let f = fixture();
        check(vec![
            Row {
                rule: "started by its own runner: in progress, bind",
                current: Some(job(7, JobState::Provisioning, &["shr-acme-7-1"])),
                event: Event::Started {
                    started: f.s_own,
                    ours: true,
                },
                runners: &[],
                writes: Some(JobState::InProgress),
                actions: vec![f.bound("shr-acme-7-1")],
            },
            Row {
                rule: "started by another job's runner (steal): in progress, bind the thief",
                current: Some(job(7, JobState::Provisioning, &["shr-acme-7-1"])),
                event: Event::Started {
                    started: f.s_steal,
                    ours: true,
                },
                runners: &[],
                writes: Some(JobState::InProgress),
                actions: vec![f.bound("shr-acme-8-1")],
            },
            Row {
                rule: "steal, the robbed job's side: its next attempt is provisioned",
                current: Some(job(8, JobState::Provisioning, &["shr-acme-8-1"])),
                event: Event::Stolen {
                    runner: "shr-acme-8-1",
                    rebound: None,
                },
                runners: &[],
                writes: Some(JobState::Provisioning),
                actions: vec![provision("shr-acme-8-2", 8)],
            },
            Row {
                rule: "steal with a free runner to re-bind: no new attempt",
                current: Some(job(8, JobState::Provisioning, &["shr-acme-8-1"])),
                event: Event::Stolen {
                    runner: "shr-acme-8-1",
                    rebound: Some("shr-acme-7-1"),
                },
                runners: &[],
                writes: Some(JobState::Provisioning),
                actions: vec![Action::Rebound {
                    runner: "shr-acme-7-1".into(),
                }],
            },
            Row {
                rule: "steal after the attempts are spent: reported, nothing provisioned",
                current: Some(job(
                    8,
                    JobState::Provisioning,
                    &["shr-acme-8-1", "shr-acme-8-2", "shr-acme-8-3"],
                )),
                event: Event::Stolen {
                    runner: "shr-acme-8-3",
                    rebound: None,
                },
                runners: &[],
                writes: None,
                actions: vec![Action::AttemptsExhausted { job_id: 8 }],
            },
        ]);
    }

    #[test]
    fn scheduler_table_completed_cancelled_and_failed() {
        let f = fixture();
        check(vec![
            Row {
                rule: "completed: bind, mark and reap the runner that ran it; drop the others",
                current: Some(job(
                    7,
                    JobState::InProgress,
                    &["shr-acme-7-1", "shr-acme-7-2"],
                )),
                event: Event::Completed {
                    completed: f.done,
                    ours: true,
                    ran_on_ours: Some("shr-acme-7-1"),
                },
                runners: &[],
                writes: Some(JobState::Completed),
                actions: vec![
                    Action::Bind {
                        runner: "shr-acme-7-1".into(),
                        job: Box::new(JobRecord {
                            state: JobState::Completed,
                            ran_on: Some("shr-acme-7-1".into()),
                            conclusion: Some("success".into()),
                            updated_at: NOW,
                            ..job(7, JobState::InProgress, &["shr-acme-7-1", "shr-acme-7-2"])
                        }),
                        seen_at: NOW,
                    },
                    Action::MarkCompleted {
                        runner: "shr-acme-7-1".into(),
                        job_id: 7,
                    },
                    reap("shr-acme-7-1", ReapReason::JobCompleted),
                    Action::DropUnneeded {
                        runner: "shr-acme-7-2".into(),
                        job_id: 7,
                    },
                ],
            },
            Row {
                rule: "cancelled before any runner took it: completed, its runner dropped",
                current: Some(job(7, JobState::Provisioning, &["shr-acme-7-1"])),
                event: Event::Completed {
                    completed: f.cancelled,
                    ours: true,
                    ran_on_ours: None,
                },
                runners: &[],
                writes: Some(JobState::Completed),
                actions: vec![Action::DropUnneeded {
                    runner: "shr-acme-7-1".into(),
                    job_id: 7,
                }],
            },
            Row {
                rule: "cancelled before it was seen queued: a tombstone, nothing else",
                current: None,
                event: Event::Completed {
                    completed: f.cancelled,
                    ours: true,
                    ran_on_ours: None,
                },
                runners: &[],
                writes: Some(JobState::Completed),
                actions: vec![],
            },
        ]);
    }

    #[test]
    fn scheduler_table_runner_failed() {
        check(vec![
            Row {
                rule: "runner failed: the next attempt",
                current: Some(job(7, JobState::Provisioning, &["shr-acme-7-1"])),
                event: Event::RunnerFailed {
                    runner: "shr-acme-7-1",
                },
                runners: &[],
                writes: Some(JobState::Provisioning),
                actions: vec![provision("shr-acme-7-2", 7)],
            },
            Row {
                rule: "runner failed after the attempts are spent: reported, nothing provisioned",
                current: Some(job(
                    7,
                    JobState::Provisioning,
                    &["shr-acme-7-1", "shr-acme-7-2", "shr-acme-7-3"],
                )),
                event: Event::RunnerFailed {
                    runner: "shr-acme-7-3",
                },
                runners: &[],
                writes: None,
                actions: vec![Action::AttemptsExhausted { job_id: 7 }],
            },
            Row {
                rule: "runner failed that is not the latest: nothing",
                current: Some(job(
                    7,
                    JobState::Provisioning,
                    &["shr-acme-7-1", "shr-acme-7-2"],
                )),
                event: Event::RunnerFailed {
                    runner: "shr-acme-7-1",
                },
                runners: &[],
                writes: None,
                actions: vec![],
            },
        ]);
    }

    #[test]
    fn a_record_that_moved_on_since_its_runner_was_looked_at_is_decided_again() {
        let q = queued(7);
        let admitted: Admission = Ok(spec());
        let current = job(7, JobState::Provisioning, &["shr-acme-7-1", "shr-acme-7-2"]);
        let event = Event::Queued {
            queued: &q,
            admission: &admitted,
            latest: Some(("shr-acme-7-1", Latest::Gone)),
            has_slot: true,
        };
        assert_eq!(
            decide(Some(&current), event, &facts(&[])),
            Err(Refusal::InFlight(7))
        );
    }

    #[test]
    fn steals_do_not_use_up_attempts() {
        let b = job(8, JobState::Provisioning, &["shr-acme-8-1", "shr-acme-8-2"]);
        let records = [
            runner("shr-acme-8-1", 8, RunnerState::Busy, Some(7)),
            runner("shr-acme-8-2", 8, RunnerState::Failed, None),
        ];
        assert_eq!(attempt_budget(&b, &records, 3), 4);
    }

    #[test]
    fn capabilities_decline_shapes_the_cloud_cannot_run() {
        let caps = Capabilities {
            shapes: vec![(2000, 4096)],
            max_cpu_millis: 4000,
            max_memory_mib: 8192,
            dind: false,
            disk_mount: false,
        };
        assert!(admit(Ok(spec()), Some(&caps)).is_ok());
        assert!(admit(Ok(spec()), None).is_ok());
        let odd = RunnerSpec {
            memory_mib: 3000,
            ..spec()
        };
        assert_eq!(
            admit(Ok(odd), Some(&caps)).unwrap_err().code,
            "unsupported_shape"
        );
        let dind = RunnerSpec {
            dind: true,
            ..spec()
        };
        assert!(
            admit(Ok(dind), Some(&caps))
                .unwrap_err()
                .reason
                .contains("docker-in-docker")
        );
        let disk = RunnerSpec {
            disk_bucket: Some("b".into()),
            ..spec()
        };
        assert!(admit(Ok(disk), Some(&caps)).is_err());
    }

    #[test]
    fn a_long_waiting_running_runner_is_checked_with_github_on_a_poll_only() {
        let mut rec = runner("shr-acme-7-1", 7, RunnerState::Running, None);
        rec.updated_at = NOW - 20_000;
        assert_eq!(
            look_at_latest(Some(&rec), 7, true, 10_000, NOW),
            Look::AskGitHub(5)
        );
        assert_eq!(
            look_at_latest(Some(&rec), 7, false, 10_000, NOW),
            Look::Known(Latest::Serving)
        );
        let stolen = runner("shr-acme-7-1", 7, RunnerState::Busy, Some(9));
        assert_eq!(
            look_at_latest(Some(&stolen), 7, true, 10_000, NOW),
            Look::Known(Latest::Gone)
        );
        assert_eq!(
            look_at_latest(None, 7, true, 10_000, NOW),
            Look::Known(Latest::Serving)
        );
    }

    #[test]
    fn a_stale_request_is_taken_over_and_a_fresh_one_left_alone() {
        let new = NewRunner {
            name: "shr-acme-7-1",
            tenant: "acme",
            registration: "org",
            job_id: 7,
            spec: &spec(),
        };
        let mut rec = runner("shr-acme-7-1", 7, RunnerState::Requested, None);
        rec.updated_at = NOW - 100;
        assert_eq!(
            claim(Some(&rec), new, false, 60_000, NOW).1,
            Claim::InFlight
        );
        rec.updated_at = NOW - 60_000;
        let (write, how) = claim(Some(&rec), new, false, 60_000, NOW);
        assert_eq!(how, Claim::TakenOver { stale: Some(5) });
        assert_eq!(
            write.map(|w| (w.github_runner_id, w.updated_at)),
            Some((None, NOW))
        );
        assert_eq!(claim(None, new, false, 60_000, NOW), (None, Claim::NoSlot));
        assert_eq!(claim(None, new, true, 60_000, NOW).1, Claim::Created);
    }

    #[test]
    fn a_runner_re_bound_while_being_made_is_finished_for_its_new_job_and_nothing_else_is() {
        let mut claimed = runner("shr-acme-7-1", 7, RunnerState::Requested, None);
        claimed.github_runner_id = None;
        let mut rebound = claimed.clone();
        rebound.job_id = 9;
        rebound.updated_at = NOW + 5;
        let next = rebound_while_made(&claimed, &rebound, 42, NOW + 10).unwrap();
        assert_eq!(
            (next.job_id, next.github_runner_id, next.state),
            (9, Some(42), RunnerState::Requested)
        );
        // Not a re-bind: taken over (same job), marked for deletion, or given another spec.
        let mut taken = claimed.clone();
        taken.updated_at = NOW + 5;
        assert!(rebound_while_made(&claimed, &taken, 42, NOW).is_none());
        let mut deleting = rebound.clone();
        deleting.state = RunnerState::Deleting;
        assert!(rebound_while_made(&claimed, &deleting, 42, NOW).is_none());
        let mut respec = rebound.clone();
        respec.spec.as_mut().unwrap().labels.push("cpu-8".into());
        assert!(rebound_while_made(&claimed, &respec, 42, NOW).is_none());
        let mut registered = rebound.clone();
        registered.github_runner_id = Some(3);
        assert!(rebound_while_made(&claimed, &registered, 42, NOW).is_none());
    }

    #[test]
    fn a_runner_still_being_made_is_a_rebind_candidate_when_its_labels_cover() {
        let b = job(9, JobState::Provisioning, &["shr-acme-9-1"]);
        let mut made = runner("shr-acme-7-1", 7, RunnerState::Requested, None);
        made.github_runner_id = None;
        let free = vec![made];
        let names: Vec<_> = rebind_candidates(&free, &b)
            .iter()
            .map(|r| r.name.clone())
            .collect();
        assert_eq!(names, ["shr-acme-7-1"]);
    }

    #[test]
    fn a_free_runner_is_adopted_only_by_a_waiting_job_it_covers() {
        let free = runner("shr-acme-7-1", 7, RunnerState::Running, None);
        let waiting = job(9, JobState::Queued, &[]);
        let adopted = adopt_for_waiting(Some(&waiting), &free, false, 50)
            .unwrap()
            .expect("a waiting job takes a runner that covers it");
        assert_eq!(adopted.state, JobState::Provisioning);
        assert_eq!(adopted.runners, ["shr-acme-7-1"]);
        assert_eq!(adopted.attempts, 0, "no attempt of its own is spent");
        assert_eq!(adopted.updated_at, 50);

        let mut sized = waiting.clone();
        sized.job.labels.push("cpu-8".into());
        let mut other_tenant = waiting.clone();
        other_tenant.tenant = "globex".into();
        let mut other_registration = waiting.clone();
        other_registration.registration = "other".into();
        for (why, rec) in [
            ("labels not covered", Some(&sized)),
            ("another tenant", Some(&other_tenant)),
            ("another registration", Some(&other_registration)),
            (
                "already has a runner",
                Some(&job(9, JobState::Provisioning, &["shr-acme-9-1"])),
            ),
            (
                "a queued record with a runner",
                Some(&job(9, JobState::Queued, &["shr-acme-9-1"])),
            ),
            ("finished", Some(&job(9, JobState::Completed, &[]))),
            ("no record", None),
        ] {
            assert_eq!(
                adopt_for_waiting(rec, &free, false, 50).unwrap(),
                None,
                "{why}"
            );
        }
        // A job whose runner another job took waits too, once that is known.
        let robbed = job(9, JobState::Provisioning, &["shr-acme-9-1"]);
        assert_eq!(
            adopt_for_waiting(Some(&robbed), &free, false, 50).unwrap(),
            None
        );
        let adopted = adopt_for_waiting(Some(&robbed), &free, true, 50)
            .unwrap()
            .expect("its latest runner was taken");
        assert_eq!(adopted.runners, ["shr-acme-9-1", "shr-acme-7-1"]);
        assert_eq!(adopted.attempts, 1);
        assert!(needs_runner(&adopted, "shr-acme-7-1"));
    }

    #[test]
    fn a_free_runner_stands_in_only_for_an_uncreated_runner_it_covers() {
        let free = runner("shr-acme-7-1", 7, RunnerState::Running, None);
        let unmade = runner("shr-acme-9-1", 9, RunnerState::Requested, None);
        assert!(stands_in_for(&free, &unmade));
        let creating = runner("shr-acme-9-1", 9, RunnerState::Creating, None);
        let mut created = creating.clone();
        created.instance_id = Some("i-9".into());
        let mut sized = unmade.clone();
        sized.spec.as_mut().unwrap().labels.push("cpu-8".into());
        let mut other_registration = unmade.clone();
        other_registration.registration = "other".into();
        for (why, candidate) in [
            (
                "being created: the create could finish and its runner take a job",
                creating,
            ),
            ("already created", created),
            (
                "online",
                runner("shr-acme-9-1", 9, RunnerState::Running, None),
            ),
            (
                "took a job",
                runner("shr-acme-9-1", 9, RunnerState::Busy, Some(9)),
            ),
            ("labels not covered", sized),
            ("another registration", other_registration),
            ("itself", free.clone()),
            (
                "a pool runner",
                runner("shr-acme-pool-1", 0, RunnerState::Requested, None),
            ),
        ] {
            assert!(!stands_in_for(&free, &candidate), "{why}");
        }

        let waiting_for_it = job(9, JobState::Provisioning, &["shr-acme-9-1"]);
        let next = stand_in(Some(&waiting_for_it), &free, "shr-acme-9-1", 60).unwrap();
        assert_eq!(next.runners, ["shr-acme-9-1", "shr-acme-7-1"]);
        assert_eq!(next.attempts, 1);
        assert!(needs_runner(&next, "shr-acme-7-1"));
        let moved_on = job(9, JobState::Provisioning, &["shr-acme-9-1", "shr-acme-9-2"]);
        assert_eq!(stand_in(Some(&moved_on), &free, "shr-acme-9-1", 60), None);
        let started = job(9, JobState::InProgress, &["shr-acme-9-1"]);
        assert_eq!(stand_in(Some(&started), &free, "shr-acme-9-1", 60), None);
        assert_eq!(stand_in(None, &free, "shr-acme-9-1", 60), None);
    }

    #[test]
    fn a_quiet_idle_runner_its_job_does_not_wait_for_is_forgotten() {
        let quiet = 60_000;
        let now = 1 + quiet;
        let rec = runner("shr-acme-9-1", 9, RunnerState::Requested, None);
        let waits = job(9, JobState::Provisioning, &["shr-acme-9-1"]);
        assert!(
            !forgotten(&rec, Some(&waits), now, quiet),
            "its job waits for it"
        );
        for (why, job) in [
            ("no job record", None),
            (
                "job finished",
                Some(job(9, JobState::Completed, &["shr-acme-9-1"])),
            ),
            (
                "job ran elsewhere",
                Some(job(9, JobState::InProgress, &["shr-acme-9-1"])),
            ),
            (
                "the job's latest runner is another",
                Some(job(
                    9,
                    JobState::Provisioning,
                    &["shr-acme-9-1", "shr-acme-9-2"],
                )),
            ),
            (
                "re-bound but never recorded",
                Some(job(9, JobState::Provisioning, &[])),
            ),
        ] {
            assert!(forgotten(&rec, job.as_ref(), now, quiet), "{why}");
        }
        let gone = job(9, JobState::Completed, &[]);
        assert!(
            !forgotten(&rec, Some(&gone), now - 1, quiet),
            "not quiet long enough"
        );
        let busy = runner("shr-acme-9-1", 9, RunnerState::Busy, Some(9));
        assert!(!forgotten(&busy, Some(&gone), now, quiet), "it took a job");
        let pool = runner("shr-acme-0-1", 0, RunnerState::Running, None);
        assert!(
            !forgotten(&pool, None, now, quiet),
            "a pool runner has no job"
        );
        let deleting = runner("shr-acme-9-1", 9, RunnerState::Deleting, None);
        assert!(
            !forgotten(&deleting, Some(&gone), now, quiet),
            "already on its way out"
        );
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
