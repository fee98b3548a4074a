//! KV records and their state machines.
//!
//! Every state change is a compare-and-set on the record's KV revision, made through
//! [`JobRecord::transition`] / [`RunnerRecord::transition`], which reject illegal moves. The
//! caller writes the result back with the revision it read; a conflict means someone else
//! moved first, so the caller re-reads and decides again.

use serde::{Deserialize, Serialize};

use crate::{JobRef, ProviderKind, RunnerSpec, UnixMillis};

/// A move between two states that the state machine forbids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal {machine} transition {from:?} -> {to:?}")]
pub struct IllegalTransition {
    pub machine: &'static str,
    pub from: String,
    pub to: String,
}

/// Where a job stands, as far as this system knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Seen queued, no runner requested yet.
    Queued,
    /// A runner was requested for it (see `attempts`).
    Provisioning,
    /// A runner took it.
    InProgress,
    /// Finished (any conclusion, including cancelled).
    Completed,
    /// Not ours: the labels were refused. Kept so a replay does not re-decide.
    Declined,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Provisioning,
        JobState::InProgress,
        JobState::Completed,
        JobState::Declined,
    ];

    /// Whether a record in `self` may move to `to`. Staying in the same state (to update
    /// other fields) is allowed except in terminal states.
    pub fn can_transition_to(self, to: JobState) -> bool {
        use JobState::*;
        match (self, to) {
            (Queued, Queued | Provisioning | InProgress | Completed | Declined) => true,
            // Provisioning -> Provisioning is a new attempt after the runner went elsewhere.
            (Provisioning, Provisioning | InProgress | Completed) => true,
            // InProgress -> Provisioning: the runner that took it vanished before completing
            // and GitHub re-queued the job.
            (InProgress, InProgress | Provisioning | Completed) => true,
            (Completed | Declined, _) => false,
            (Provisioning | InProgress, _) => false,
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Completed | JobState::Declined)
    }
}

/// The job record, key [`crate::subject::job_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub tenant: String,
    pub registration: String,
    pub job: JobRef,
    pub state: JobState,
    /// How many runners were requested for this job.
    #[serde(default)]
    pub attempts: u32,
    /// Names of every runner made for it, oldest first.
    #[serde(default)]
    pub runners: Vec<String>,
    /// The runner that actually took it, once known.
    #[serde(default)]
    pub ran_on: Option<String>,
    /// The conclusion once completed.
    #[serde(default)]
    pub conclusion: Option<String>,
    /// Why it was declined.
    #[serde(default)]
    pub declined_reason: Option<String>,
    /// The decline's code (`exceeds_policy`, `unknown_label`, …): one of a small fixed set,
    /// so metrics can use it as a label where the reason's text would not do. Absent on
    /// records written before it existed, and on jobs not declined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declined_code: Option<String>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

impl JobRecord {
    /// Moves the record to `to`, or refuses.
    pub fn transition(&mut self, to: JobState, at: UnixMillis) -> Result<(), IllegalTransition> {
        if !self.state.can_transition_to(to) {
            return Err(IllegalTransition {
                machine: "job",
                from: format!("{:?}", self.state),
                to: format!("{to:?}"),
            });
        }
        self.state = to;
        self.updated_at = at;
        Ok(())
    }
}

/// Where a runner stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunnerState {
    /// JIT config made, provision command published.
    Requested,
    /// The provisioner is creating the instance.
    Creating,
    /// The instance exists; the runner is online and idle.
    Running,
    /// The runner took a job.
    Busy,
    /// Its job finished.
    Completed,
    /// The reaper is deleting the instance and the GitHub runner.
    Deleting,
    /// Both are gone. Terminal.
    Deleted,
    /// Create failed for good; awaits cleanup.
    Failed,
    /// Found with no live record; deleted on the next sweep.
    Orphaned,
    /// Deletes kept failing; an operator should look. The reaper keeps trying.
    PendingForceDelete,
}

impl RunnerState {
    pub const ALL: [RunnerState; 10] = [
        RunnerState::Requested,
        RunnerState::Creating,
        RunnerState::Running,
        RunnerState::Busy,
        RunnerState::Completed,
        RunnerState::Deleting,
        RunnerState::Deleted,
        RunnerState::Failed,
        RunnerState::Orphaned,
        RunnerState::PendingForceDelete,
    ];

    /// Whether a record in `self` may move to `to`. Staying in the same state (to update
    /// other fields) is allowed except when deleted.
    pub fn can_transition_to(self, to: RunnerState) -> bool {
        use RunnerState::*;
        match (self, to) {
            (Deleted, _) => false,
            (a, b) if a == b => true,
            // Any live runner can be told to go away.
            (Requested | Creating | Running | Busy | Completed | Failed | Orphaned, Deleting) => {
                true
            }
            (Requested, Creating | Failed) => true,
            // A runner may take a job before its created event is recorded.
            (Requested | Creating, Running | Busy) => true,
            (Creating, Failed) => true,
            (Running, Busy | Completed | Failed) => true,
            (Busy, Completed | Failed) => true,
            (Deleting, Deleted | PendingForceDelete) => true,
            (PendingForceDelete, Deleting | Deleted) => true,
            _ => false,
        }
    }

    /// Whether the runner still has, or may still get, a cloud instance.
    pub fn is_live(self) -> bool {
        !matches!(self, RunnerState::Deleted)
    }
}

/// The runner record, key = runner name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerRecord {
    pub name: String,
    pub tenant: String,
    pub registration: String,
    pub provider: ProviderKind,
    /// The job it was made for.
    pub job_id: u64,
    pub state: RunnerState,
    /// The job it actually took, once known (may differ from `job_id`).
    #[serde(default)]
    pub ran_job_id: Option<u64>,
    #[serde(default)]
    pub github_runner_id: Option<u64>,
    #[serde(default)]
    pub instance_id: Option<String>,
    /// The resolved spec, without the JIT config.
    #[serde(default)]
    pub spec: Option<RunnerSpec>,
    /// Failed delete attempts so far.
    #[serde(default)]
    pub delete_attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

impl RunnerRecord {
    /// Moves the record to `to`, or refuses.
    pub fn transition(&mut self, to: RunnerState, at: UnixMillis) -> Result<(), IllegalTransition> {
        if !self.state.can_transition_to(to) {
            return Err(IllegalTransition {
                machine: "runner",
                from: format!("{:?}", self.state),
                to: format!("{to:?}"),
            });
        }
        self.state = to;
        self.updated_at = at;
        Ok(())
    }
}

/// A runner's name: `shr-<tenant>-<job id>-<attempt>`. Unique per job attempt, valid as a
/// GitHub runner name, a KV key and a container-group name on every provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunnerName {
    pub tenant: String,
    pub job_id: u64,
    pub attempt: u32,
}

/// A string that is not a runner name of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a runner name of the form shr-<tenant>-<job id>-<attempt>")]
pub struct RunnerNameError(pub String);

impl RunnerName {
    /// The prefix every runner of ours carries, for sweeps over GitHub and the clouds.
    pub const PREFIX: &'static str = "shr-";
}

impl std::fmt::Display for RunnerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shr-{}-{}-{}", self.tenant, self.job_id, self.attempt)
    }
}

impl std::str::FromStr for RunnerName {
    type Err = RunnerNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || RunnerNameError(s.to_owned());
        let rest = s.strip_prefix(Self::PREFIX).ok_or_else(err)?;
        let (rest, attempt) = rest.rsplit_once('-').ok_or_else(err)?;
        let (tenant, job_id) = rest.rsplit_once('-').ok_or_else(err)?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        let tenant_ok = !tenant.is_empty()
            && tenant
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !digits(job_id) || !digits(attempt) || !tenant_ok {
            return Err(err());
        }
        Ok(RunnerName {
            tenant: tenant.to_owned(),
            job_id: job_id.parse().map_err(|_| err())?,
            attempt: attempt.parse().map_err(|_| err())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_state_transition_table() {
        use JobState::*;
        // Every pair, written out: (from, to, allowed).
        let allowed = [
            (Queued, [true, true, true, true, true]),
            (Provisioning, [false, true, true, true, false]),
            (InProgress, [false, true, true, true, false]),
            (Completed, [false, false, false, false, false]),
            (Declined, [false, false, false, false, false]),
        ];
        for (from, row) in allowed {
            for (to, expected) in JobState::ALL.into_iter().zip(row) {
                assert_eq!(from.can_transition_to(to), expected, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn runner_state_transition_table() {
        use RunnerState::*;
        // Columns follow RunnerState::ALL: Req Cre Run Busy Comp Del'ing Del'd Fail Orph PFD.
        let t = true;
        let f = false;
        let table = [
            (Requested, [t, t, t, t, f, t, f, t, f, f]),
            (Creating, [f, t, t, t, f, t, f, t, f, f]),
            (Running, [f, f, t, t, t, t, f, t, f, f]),
            (Busy, [f, f, f, t, t, t, f, t, f, f]),
            (Completed, [f, f, f, f, t, t, f, f, f, f]),
            (Deleting, [f, f, f, f, f, t, t, f, f, t]),
            (Deleted, [f, f, f, f, f, f, f, f, f, f]),
            (Failed, [f, f, f, f, f, t, f, t, f, f]),
            (Orphaned, [f, f, f, f, f, t, f, f, t, f]),
            (PendingForceDelete, [f, f, f, f, f, t, t, f, f, t]),
        ];
        assert_eq!(table.len(), RunnerState::ALL.len());
        for (from, row) in table {
            for (to, expected) in RunnerState::ALL.into_iter().zip(row) {
                assert_eq!(from.can_transition_to(to), expected, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn illegal_transition_leaves_the_record_unchanged() {
        let mut rec = JobRecord {
            tenant: "t".into(),
            registration: "r".into(),
            job: JobRef {
                job_id: 1,
                run_id: 2,
                repo: "o/r".into(),
                labels: vec![],
                name: String::new(),
            },
            state: JobState::Completed,
            attempts: 1,
            runners: vec![],
            ran_on: None,
            conclusion: None,
            declined_reason: None,
            declined_code: None,
            created_at: 1,
            updated_at: 1,
        };
        let err = rec.transition(JobState::Provisioning, 5).unwrap_err();
        assert_eq!(err.machine, "job");
        assert_eq!(rec.state, JobState::Completed);
        assert_eq!(rec.updated_at, 1);
    }

    #[test]
    fn runner_names_round_trip_and_reject_strangers() {
        let name = RunnerName {
            tenant: "team-a".into(),
            job_id: 42,
            attempt: 1,
        };
        assert_eq!(name.to_string(), "shr-team-a-42-1");
        assert_eq!("shr-team-a-42-1".parse::<RunnerName>().unwrap(), name);
        for bad in [
            "shr-42-1",
            "runner-a-1-1",
            "shr-a-x-1",
            "shr-a-1-",
            "shr--1-1",
            "shr-A-1-1",
        ] {
            assert!(bad.parse::<RunnerName>().is_err(), "{bad}");
        }
    }
}
