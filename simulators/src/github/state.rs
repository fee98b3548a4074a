//! The simulated world: repositories, workflow runs, jobs, runners and runner sessions.
//!
//! Plain data behind one lock, no I/O. Every mutation returns the [`Effect`]s it causes
//! (webhooks to send, job timers to start); the caller performs them.
//!
//! Guarantees: a job is assigned the way GitHub does it: to an online, idle runner whose labels
//! (plus the implied ones, case-insensitively) cover the job's labels and whose scope contains
//! the job's repository; queued jobs are served oldest first, runners lowest id first. Runners are
//! ephemeral: one job, then they are removed.

use std::collections::{BTreeMap, HashMap};

use bus_schema::Scope;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A job's status, as GitHub spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a runner.
    Queued,
    /// A runner has it.
    InProgress,
    /// Finished, see the conclusion.
    Completed,
}

impl JobStatus {
    /// The status as GitHub spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::InProgress => "in_progress",
            JobStatus::Completed => "completed",
        }
    }
}

/// How a completed job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    /// The job ran to its end.
    Success,
    /// The job failed (here: its runner vanished mid-job).
    Failure,
    /// The job was cancelled.
    Cancelled,
}

impl Conclusion {
    /// The conclusion as GitHub spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Conclusion::Success => "success",
            Conclusion::Failure => "failure",
            Conclusion::Cancelled => "cancelled",
        }
    }
}

/// A simulated `workflow_job`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: u64,
    pub run_id: u64,
    /// `owner/name`.
    pub repo: String,
    pub name: String,
    pub labels: Vec<String>,
    pub status: JobStatus,
    pub conclusion: Option<Conclusion>,
    pub runner_id: Option<u64>,
    pub runner_name: Option<String>,
    pub runner_group_id: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// A simulated workflow run; its status derives from its jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub id: u64,
    pub repo: String,
    pub run_number: u64,
    pub created_at: DateTime<Utc>,
    pub status: JobStatus,
    pub conclusion: Option<Conclusion>,
}

/// A registered (JIT, ephemeral) self-hosted runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runner {
    pub id: u64,
    pub name: String,
    pub scope: Scope,
    pub runner_group_id: u64,
    /// The labels it registered with (the implied `self-hosted` not included).
    pub labels: Vec<String>,
    /// Whether a fake runner holds a session for it.
    pub online: bool,
    /// The job it runs, if any.
    pub job_id: Option<u64>,
}

/// A snapshot of the simulator's world, for tests and `GET /_sim/state`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimState {
    pub runs: Vec<Run>,
    pub jobs: Vec<Job>,
    pub runners: Vec<Runner>,
    /// Runners that existed and are gone (deleted, or ephemeral after their job).
    pub removed_runners: Vec<Runner>,
}

impl SimState {
    /// The job with this id.
    pub fn job(&self, id: u64) -> Option<&Job> {
        self.jobs.iter().find(|j| j.id == id)
    }

    /// The current runner with this name.
    pub fn runner_named(&self, name: &str) -> Option<&Runner> {
        self.runners.iter().find(|r| r.name == name)
    }
}

/// A side effect of a mutation, performed by the caller once the world is updated.
#[derive(Debug, Clone)]
pub(crate) enum Effect {
    /// Send a `workflow_job` webhook with this action for this job (snapshot at event time).
    Webhook { action: &'static str, job: Job },
    /// Complete this job after the configured duration if the runner still has it.
    StartTimer { job_id: u64, runner_id: u64 },
}

/// What a runner session's poll finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PollResult {
    /// A job was assigned to the runner (first sight).
    Job(Job),
    /// The runner's job is over: the runner should exit.
    JobCompleted(Job),
    /// The runner was removed without a job: it should exit.
    Deregistered,
    /// Nothing yet.
    Nothing,
    /// The session is not known.
    UnknownSession,
}

/// Why a runner could not open a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectError {
    /// No runner with this id and credential.
    BadCredentials,
    /// A JIT config is single use: another process already holds the session.
    AlreadyConnected,
}

/// Why a runner could not be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeleteError {
    NotFound,
    Busy,
}

#[derive(Debug, Clone)]
struct Session {
    runner_id: u64,
    job_delivered: bool,
}

/// The mutable world. See the module docs.
#[derive(Debug)]
pub(crate) struct World {
    next_run: u64,
    next_job: u64,
    next_runner: u64,
    repos: BTreeMap<String, String>,
    runs: BTreeMap<u64, Run>,
    jobs: BTreeMap<u64, Job>,
    runners: BTreeMap<u64, Runner>,
    removed: Vec<Runner>,
    credentials: HashMap<u64, String>,
    sessions: HashMap<String, Session>,
    labels: BTreeMap<String, u64>,
    implied_labels: Vec<String>,
    steal: u32,
}

impl World {
    pub(crate) fn new(repos: &[String], implied_labels: &[String]) -> Self {
        let mut world = World {
            next_run: 10_000_000,
            next_job: 20_000_000,
            next_runner: 1,
            repos: BTreeMap::new(),
            runs: BTreeMap::new(),
            jobs: BTreeMap::new(),
            runners: BTreeMap::new(),
            removed: Vec::new(),
            credentials: HashMap::new(),
            sessions: HashMap::new(),
            labels: BTreeMap::new(),
            implied_labels: implied_labels.iter().map(|l| l.to_lowercase()).collect(),
            steal: 0,
        };
        for repo in repos {
            world.add_repo(repo);
        }
        world
    }

    /// Registers `owner/name` if new; returns its canonical spelling.
    pub(crate) fn add_repo(&mut self, full_name: &str) -> String {
        self.repos
            .entry(full_name.to_lowercase())
            .or_insert_with(|| full_name.to_owned())
            .clone()
    }

    /// The canonical spelling of a known repository.
    pub(crate) fn repo(&self, owner: &str, name: &str) -> Option<&str> {
        self.repos
            .get(&format!("{owner}/{name}").to_lowercase())
            .map(String::as_str)
    }

    /// Known repositories owned by `org` (case-insensitive), sorted.
    pub(crate) fn org_repos(&self, org: &str) -> Vec<String> {
        let org = org.to_lowercase();
        self.repos
            .iter()
            .filter(|(key, _)| key.split('/').next() == Some(org.as_str()))
            .map(|(_, name)| name.clone())
            .collect()
    }

    pub(crate) fn snapshot(&self) -> SimState {
        SimState {
            runs: self.runs.values().cloned().collect(),
            jobs: self.jobs.values().cloned().collect(),
            runners: self.runners.values().cloned().collect(),
            removed_runners: self.removed.clone(),
        }
    }

    pub(crate) fn run(&self, id: u64) -> Option<&Run> {
        self.runs.get(&id)
    }

    pub(crate) fn job(&self, id: u64) -> Option<&Job> {
        self.jobs.get(&id)
    }

    pub(crate) fn runs_of(&self, repo: &str) -> Vec<Run> {
        self.runs
            .values()
            .rev()
            .filter(|r| r.repo.eq_ignore_ascii_case(repo))
            .cloned()
            .collect()
    }

    pub(crate) fn jobs_of_run(&self, run_id: u64) -> Vec<Job> {
        self.jobs
            .values()
            .filter(|j| j.run_id == run_id)
            .cloned()
            .collect()
    }

    /// Runners registered at exactly this scope.
    pub(crate) fn runners_in(&self, scope: &Scope) -> Vec<Runner> {
        self.runners
            .values()
            .filter(|r| same_scope(&r.scope, scope))
            .cloned()
            .collect()
    }

    pub(crate) fn runner(&self, id: u64) -> Option<&Runner> {
        self.runners.get(&id)
    }

    /// A stable id for a label name (case-insensitive).
    pub(crate) fn label_id(&mut self, name: &str) -> u64 {
        let next = self.labels.len() as u64 + 1;
        *self.labels.entry(name.to_lowercase()).or_insert(next)
    }

    /// The labels implied for every self-hosted runner (e.g. `self-hosted`).
    pub(crate) fn implied_labels(&self) -> &[String] {
        &self.implied_labels
    }

    /// Makes the next `count` assignments go to a decoy job instead (see [`World::assign`]).
    pub(crate) fn steal(&mut self, count: u32) {
        self.steal += count;
    }

    /// Queues a job in a new run, or in `run_id` if it exists, and assigns what it can.
    pub(crate) fn queue_job(
        &mut self,
        repo: &str,
        labels: Vec<String>,
        name: Option<String>,
        run_id: Option<u64>,
    ) -> (Job, Vec<Effect>) {
        let job = self.insert_job(repo, labels, name, run_id);
        let mut effects = vec![Effect::Webhook {
            action: "queued",
            job: job.clone(),
        }];
        effects.extend(self.assign());
        (job, effects)
    }

    fn insert_job(
        &mut self,
        repo: &str,
        labels: Vec<String>,
        name: Option<String>,
        run_id: Option<u64>,
    ) -> Job {
        let repo = self.add_repo(repo);
        let now = Utc::now();
        let run_id = match run_id.filter(|id| self.runs.contains_key(id)) {
            Some(id) => id,
            None => {
                let id = self.next_run;
                self.next_run += 1;
                let run_number = self.runs.values().filter(|r| r.repo == repo).count() as u64 + 1;
                self.runs.insert(
                    id,
                    Run {
                        id,
                        repo: repo.clone(),
                        run_number,
                        created_at: now,
                        status: JobStatus::Queued,
                        conclusion: None,
                    },
                );
                id
            }
        };
        let id = self.next_job;
        self.next_job += 1;
        let job = Job {
            id,
            run_id,
            repo,
            name: name.unwrap_or_else(|| format!("job-{id}")),
            labels,
            status: JobStatus::Queued,
            conclusion: None,
            runner_id: None,
            runner_name: None,
            runner_group_id: None,
            created_at: now,
            started_at: None,
            completed_at: None,
        };
        self.jobs.insert(id, job.clone());
        self.refresh_run(run_id);
        job
    }

    /// Registers a runner; `None` when the name is taken in this scope.
    pub(crate) fn register_runner(
        &mut self,
        scope: Scope,
        name: &str,
        labels: Vec<String>,
        runner_group_id: u64,
        credential: String,
    ) -> Option<Runner> {
        let taken = self
            .runners
            .values()
            .any(|r| same_scope(&r.scope, &scope) && r.name.eq_ignore_ascii_case(name));
        if taken {
            return None;
        }
        for label in &labels {
            self.label_id(label);
        }
        let id = self.next_runner;
        self.next_runner += 1;
        let runner = Runner {
            id,
            name: name.to_owned(),
            scope,
            runner_group_id,
            labels,
            online: false,
            job_id: None,
        };
        self.runners.insert(id, runner.clone());
        self.credentials.insert(id, credential);
        Some(runner)
    }

    /// Deletes an idle runner (GitHub refuses to delete one that runs a job).
    pub(crate) fn delete_runner(&mut self, scope: &Scope, id: u64) -> Result<(), DeleteError> {
        match self.runners.get(&id) {
            Some(r) if same_scope(&r.scope, scope) => {
                if r.job_id.is_some() {
                    return Err(DeleteError::Busy);
                }
                self.remove_runner(id);
                Ok(())
            }
            _ => Err(DeleteError::NotFound),
        }
    }

    /// Opens a session for a runner presenting its JIT credential: the runner goes online.
    pub(crate) fn connect(
        &mut self,
        runner_id: u64,
        credential: &str,
        session_id: String,
    ) -> Result<Vec<Effect>, ConnectError> {
        if self.credentials.get(&runner_id).map(String::as_str) != Some(credential)
            || !self.runners.contains_key(&runner_id)
        {
            return Err(ConnectError::BadCredentials);
        }
        if self.sessions.values().any(|s| s.runner_id == runner_id) {
            return Err(ConnectError::AlreadyConnected);
        }
        self.sessions.insert(
            session_id,
            Session {
                runner_id,
                job_delivered: false,
            },
        );
        if let Some(r) = self.runners.get_mut(&runner_id) {
            r.online = true;
        }
        Ok(self.assign())
    }

    /// What the session's runner should do next.
    pub(crate) fn poll(&mut self, session_id: &str) -> PollResult {
        let Some(session) = self.sessions.get_mut(session_id) else {
            return PollResult::UnknownSession;
        };
        let runner_id = session.runner_id;
        let job = self
            .jobs
            .values()
            .rfind(|j| j.runner_id == Some(runner_id))
            .cloned();
        match job {
            Some(job) if job.status == JobStatus::Completed => PollResult::JobCompleted(job),
            Some(job) if !session.job_delivered => {
                session.job_delivered = true;
                PollResult::Job(job)
            }
            Some(_) => PollResult::Nothing,
            None if self.runners.contains_key(&runner_id) => PollResult::Nothing,
            None => PollResult::Deregistered,
        }
    }

    /// Ends a session. If the runner still ran a job (it vanished mid-job), the job fails.
    pub(crate) fn disconnect(&mut self, session_id: &str) -> Vec<Effect> {
        let Some(session) = self.sessions.remove(session_id) else {
            return Vec::new();
        };
        let Some(runner) = self.runners.get_mut(&session.runner_id) else {
            return Vec::new();
        };
        runner.online = false;
        match runner.job_id {
            Some(job_id) => self.complete_job(job_id, Conclusion::Failure),
            None => Vec::new(),
        }
    }

    /// Completes a job (if not already completed); its ephemeral runner is removed.
    pub(crate) fn complete_job(&mut self, job_id: u64, conclusion: Conclusion) -> Vec<Effect> {
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return Vec::new();
        };
        if job.status == JobStatus::Completed {
            return Vec::new();
        }
        job.status = JobStatus::Completed;
        job.conclusion = Some(conclusion);
        job.completed_at = Some(Utc::now());
        let (job, run_id, runner_id) = (job.clone(), job.run_id, job.runner_id);
        if let Some(runner_id) = runner_id {
            self.remove_runner(runner_id);
        }
        self.refresh_run(run_id);
        vec![Effect::Webhook {
            action: "completed",
            job,
        }]
    }

    /// Completes a job as the job timer fires: only if `runner_id` still runs it.
    pub(crate) fn finish_job(&mut self, job_id: u64, runner_id: u64) -> Vec<Effect> {
        match self.jobs.get(&job_id) {
            Some(j) if j.status == JobStatus::InProgress && j.runner_id == Some(runner_id) => {
                self.complete_job(job_id, Conclusion::Success)
            }
            _ => Vec::new(),
        }
    }

    /// Cancels a job that is not completed. `None` if unknown.
    pub(crate) fn cancel_job(&mut self, job_id: u64) -> Option<Vec<Effect>> {
        self.jobs
            .contains_key(&job_id)
            .then(|| self.complete_job(job_id, Conclusion::Cancelled))
    }

    /// Gives queued jobs to idle online runners that cover them.
    ///
    /// With a pending steal, the runner is first given a decoy job (same repository and labels,
    /// new run) that is queued just now, as if someone else's job had taken it.
    pub(crate) fn assign(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        loop {
            let pair = self
                .jobs
                .values()
                .filter(|j| j.status == JobStatus::Queued)
                .find_map(|job| {
                    self.runners
                        .values()
                        .find(|r| r.online && r.job_id.is_none() && self.covers(r, job))
                        .map(|r| (job.id, r.id))
                });
            let Some((mut job_id, runner_id)) = pair else {
                return effects;
            };
            if self.steal > 0 {
                self.steal -= 1;
                let (repo, labels) = match self.jobs.get(&job_id) {
                    Some(j) => (j.repo.clone(), j.labels.clone()),
                    None => return effects,
                };
                let decoy = self.insert_job(&repo, labels, Some("decoy".into()), None);
                effects.push(Effect::Webhook {
                    action: "queued",
                    job: decoy.clone(),
                });
                job_id = decoy.id;
            }
            effects.extend(self.start_job(job_id, runner_id));
        }
    }

    fn start_job(&mut self, job_id: u64, runner_id: u64) -> Vec<Effect> {
        let (Some(job), Some(runner)) =
            (self.jobs.get_mut(&job_id), self.runners.get_mut(&runner_id))
        else {
            return Vec::new();
        };
        runner.job_id = Some(job_id);
        job.status = JobStatus::InProgress;
        job.runner_id = Some(runner.id);
        job.runner_name = Some(runner.name.clone());
        job.runner_group_id = Some(runner.runner_group_id);
        job.started_at = Some(Utc::now());
        let (job, run_id) = (job.clone(), job.run_id);
        self.refresh_run(run_id);
        vec![
            Effect::Webhook {
                action: "in_progress",
                job,
            },
            Effect::StartTimer { job_id, runner_id },
        ]
    }

    fn covers(&self, runner: &Runner, job: &Job) -> bool {
        let in_scope = match &runner.scope {
            Scope::Enterprise { .. } => true,
            Scope::Org { org } => job
                .repo
                .split('/')
                .next()
                .is_some_and(|owner| owner.eq_ignore_ascii_case(org)),
            Scope::Repo { owner, repo } => {
                job.repo.eq_ignore_ascii_case(&format!("{owner}/{repo}"))
            }
        };
        in_scope
            && job.labels.iter().all(|wanted| {
                runner
                    .labels
                    .iter()
                    .chain(&self.implied_labels)
                    .any(|have| have.eq_ignore_ascii_case(wanted))
            })
    }

    fn remove_runner(&mut self, id: u64) {
        if let Some(mut runner) = self.runners.remove(&id) {
            self.credentials.remove(&id);
            runner.online = false;
            self.removed.push(runner);
        }
    }

    fn refresh_run(&mut self, run_id: u64) {
        let jobs: Vec<_> = self.jobs.values().filter(|j| j.run_id == run_id).collect();
        let status = if jobs.iter().all(|j| j.status == JobStatus::Completed) {
            JobStatus::Completed
        } else if jobs.iter().all(|j| j.status == JobStatus::Queued) {
            JobStatus::Queued
        } else {
            JobStatus::InProgress
        };
        let conclusion = (status == JobStatus::Completed).then(|| {
            let of = |c| jobs.iter().any(|j| j.conclusion == Some(c));
            if of(Conclusion::Failure) {
                Conclusion::Failure
            } else if of(Conclusion::Cancelled) {
                Conclusion::Cancelled
            } else {
                Conclusion::Success
            }
        });
        if let Some(run) = self.runs.get_mut(&run_id) {
            run.status = status;
            run.conclusion = conclusion;
        }
    }
}

/// Scopes compare case-insensitively, as GitHub names do.
pub(crate) fn same_scope(a: &Scope, b: &Scope) -> bool {
    match (a, b) {
        (Scope::Enterprise { enterprise: x }, Scope::Enterprise { enterprise: y })
        | (Scope::Org { org: x }, Scope::Org { org: y }) => x.eq_ignore_ascii_case(y),
        (
            Scope::Repo {
                owner: o1,
                repo: r1,
            },
            Scope::Repo {
                owner: o2,
                repo: r2,
            },
        ) => o1.eq_ignore_ascii_case(o2) && r1.eq_ignore_ascii_case(r2),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> Scope {
        Scope::Org { org: "acme".into() }
    }

    fn world() -> World {
        World::new(&["acme/app".into()], &["self-hosted".into()])
    }

    fn labels(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn covering_runner_gets_job_case_insensitively_with_implied_self_hosted() {
        let mut w = world();
        let (job, _) = w.queue_job("acme/app", labels(&["self-hosted", "CPU-2"]), None, None);
        let r = w
            .register_runner(org(), "r1", labels(&["cpu-2"]), 1, "c".into())
            .unwrap();
        let effects = w.connect(r.id, "c", "s".into()).unwrap();
        assert!(matches!(
            &effects[0],
            Effect::Webhook {
                action: "in_progress",
                ..
            }
        ));
        assert_eq!(w.job(job.id).unwrap().runner_id, Some(r.id));
        assert!(matches!(w.poll("s"), PollResult::Job(j) if j.id == job.id));
        assert_eq!(w.poll("s"), PollResult::Nothing);
        w.finish_job(job.id, r.id);
        assert!(matches!(w.poll("s"), PollResult::JobCompleted(_)));
        assert!(w.runner(r.id).is_none(), "ephemeral runner is removed");
    }

    #[test]
    fn runner_outside_scope_or_labels_gets_nothing() {
        let mut w = world();
        w.queue_job("acme/app", labels(&["gpu"]), None, None);
        w.queue_job("other/app", labels(&["cpu-2"]), None, None);
        let r = w
            .register_runner(org(), "r1", labels(&["cpu-2"]), 1, "c".into())
            .unwrap();
        assert!(w.connect(r.id, "c", "s".into()).unwrap().is_empty());
    }

    #[test]
    fn duplicate_name_in_scope_is_refused_and_credentials_are_checked() {
        let mut w = world();
        let r = w
            .register_runner(org(), "r1", labels(&["a"]), 1, "c".into())
            .unwrap();
        assert!(
            w.register_runner(org(), "R1", labels(&["a"]), 1, "d".into())
                .is_none()
        );
        assert_eq!(
            w.connect(r.id, "wrong", "s".into()).err(),
            Some(ConnectError::BadCredentials)
        );
        w.connect(r.id, "c", "s".into()).unwrap();
        assert_eq!(
            w.connect(r.id, "c", "t".into()).err(),
            Some(ConnectError::AlreadyConnected)
        );
    }

    #[test]
    fn steal_gives_the_runner_a_decoy_and_leaves_the_job_queued() {
        let mut w = world();
        let (job, _) = w.queue_job("acme/app", labels(&["a"]), None, None);
        w.steal(1);
        let r = w
            .register_runner(org(), "r1", labels(&["a"]), 1, "c".into())
            .unwrap();
        w.connect(r.id, "c", "s".into()).unwrap();
        assert_eq!(w.job(job.id).unwrap().status, JobStatus::Queued);
        let ran = w.runner(r.id).unwrap().job_id.unwrap();
        assert_ne!(ran, job.id);
    }

    #[test]
    fn vanished_runner_fails_its_job() {
        let mut w = world();
        let (job, _) = w.queue_job("acme/app", labels(&["a"]), None, None);
        let r = w
            .register_runner(org(), "r1", labels(&["a"]), 1, "c".into())
            .unwrap();
        w.connect(r.id, "c", "s".into()).unwrap();
        w.disconnect("s");
        assert_eq!(w.job(job.id).unwrap().conclusion, Some(Conclusion::Failure));
        assert_eq!(w.run(job.run_id).unwrap().status, JobStatus::Completed);
    }
}
