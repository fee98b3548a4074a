//! Request and response types, decoded from GitHub's documented JSON shapes
//! (`runners`, `workflow_runs`, `jobs`, `encoded_jit_config`, …). Decoding is lenient: fields
//! the system does not need may be missing, unknown fields and status values are tolerated.

use bus_schema::{JobRef, Secret};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The result of a conditional (`If-None-Match`) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conditional<T> {
    /// 304: nothing changed since the given ETag. Free of primary rate limit on GitHub.
    NotModified,
    /// The current value and its ETag (for the next request), if GitHub sent one.
    Modified { value: T, etag: Option<String> },
}

/// The body of `POST …/actions/runners/generate-jitconfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JitRequest {
    /// The runner's name, unique within the scope.
    pub name: String,
    /// The runner group it joins (1 is the default group).
    pub runner_group_id: u64,
    /// Custom labels (1 to 100).
    pub labels: Vec<String>,
    /// The work directory relative to the runner install (GitHub's default: `_work`).
    pub work_folder: String,
}

/// A registered JIT runner and the config that starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JitConfig {
    pub runner_id: u64,
    pub runner_name: String,
    /// The value for `run.sh --jitconfig`. Never log it.
    pub encoded_jit_config: Secret,
}

/// A runner's connection state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunnerStatus {
    Online,
    Offline,
    #[default]
    #[serde(other)]
    Unknown,
}

/// A self-hosted runner as listed by GitHub.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "RunnerWire")]
pub struct Runner {
    pub id: u64,
    pub name: String,
    pub os: String,
    pub status: RunnerStatus,
    /// Whether it is running a job now.
    pub busy: bool,
    /// Label names (read-only and custom).
    pub labels: Vec<String>,
    pub runner_group_id: Option<u64>,
}

/// The status of a workflow run or job (`queued`, `in_progress`, `completed`, …).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    InProgress,
    Completed,
    Waiting,
    Requested,
    Pending,
    #[default]
    #[serde(other)]
    Unknown,
}

/// A workflow run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRun {
    pub id: u64,
    pub name: Option<String>,
    pub status: RunStatus,
    pub conclusion: Option<String>,
    pub run_attempt: u32,
    /// `owner/name`: `repository.full_name`, else the repository asked about.
    pub repo: String,
    pub event: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A workflow job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
    pub run_id: u64,
    pub run_attempt: u32,
    pub name: String,
    pub workflow_name: Option<String>,
    pub status: RunStatus,
    pub conclusion: Option<String>,
    pub labels: Vec<String>,
    /// The runner that took it; `None` while queued (GitHub sends null or 0).
    pub runner_id: Option<u64>,
    pub runner_name: Option<String>,
    pub runner_group_id: Option<u64>,
    /// `owner/name`. GitHub's job object has no repository field: this is the repository the
    /// job was listed or fetched from.
    pub repo: String,
    pub created_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
}

impl Job {
    /// The job as the bus describes it.
    pub fn job_ref(&self) -> JobRef {
        JobRef {
            job_id: self.id,
            run_id: self.run_id,
            repo: self.repo.clone(),
            labels: self.labels.clone(),
            name: self.name.clone(),
        }
    }
}

// ---- wire shapes ----

#[derive(Deserialize)]
struct LabelWire {
    name: String,
}

#[derive(Deserialize)]
struct RunnerWire {
    id: u64,
    name: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    status: RunnerStatus,
    #[serde(default)]
    busy: bool,
    #[serde(default)]
    labels: Vec<LabelWire>,
    #[serde(default)]
    runner_group_id: Option<u64>,
}

impl From<RunnerWire> for Runner {
    fn from(w: RunnerWire) -> Self {
        Self {
            id: w.id,
            name: w.name,
            os: w.os,
            status: w.status,
            busy: w.busy,
            labels: w.labels.into_iter().map(|l| l.name).collect(),
            runner_group_id: w.runner_group_id,
        }
    }
}

/// `201` of `generate-jitconfig`.
#[derive(Deserialize)]
pub(crate) struct JitConfigWire {
    runner: Runner,
    encoded_jit_config: Secret,
}

impl From<JitConfigWire> for JitConfig {
    fn from(w: JitConfigWire) -> Self {
        Self {
            runner_id: w.runner.id,
            runner_name: w.runner.name,
            encoded_jit_config: w.encoded_jit_config,
        }
    }
}

#[derive(Deserialize)]
struct RepositoryWire {
    full_name: String,
}

#[derive(Deserialize)]
pub(crate) struct WorkflowRunWire {
    id: u64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<RunStatus>,
    #[serde(default)]
    conclusion: Option<String>,
    #[serde(default)]
    run_attempt: Option<u32>,
    #[serde(default)]
    repository: Option<RepositoryWire>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    updated_at: Option<DateTime<Utc>>,
}

impl WorkflowRunWire {
    pub(crate) fn into_run(self, repo: &str) -> WorkflowRun {
        WorkflowRun {
            id: self.id,
            name: self.name,
            status: self.status.unwrap_or_default(),
            conclusion: self.conclusion,
            run_attempt: self.run_attempt.unwrap_or(1),
            repo: self
                .repository
                .map_or_else(|| repo.to_owned(), |r| r.full_name),
            event: self.event,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct JobWire {
    id: u64,
    run_id: u64,
    #[serde(default)]
    run_attempt: Option<u32>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    workflow_name: Option<String>,
    #[serde(default)]
    status: Option<RunStatus>,
    #[serde(default)]
    conclusion: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    runner_id: Option<u64>,
    #[serde(default)]
    runner_name: Option<String>,
    #[serde(default)]
    runner_group_id: Option<u64>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    started_at: Option<DateTime<Utc>>,
}

impl JobWire {
    pub(crate) fn into_job(self, repo: &str) -> Job {
        Job {
            id: self.id,
            run_id: self.run_id,
            run_attempt: self.run_attempt.unwrap_or(1),
            name: self.name.unwrap_or_default(),
            workflow_name: self.workflow_name,
            status: self.status.unwrap_or_default(),
            conclusion: self.conclusion,
            labels: self.labels,
            runner_id: self.runner_id.filter(|id| *id != 0),
            runner_name: self.runner_name.filter(|n| !n.is_empty()),
            runner_group_id: self.runner_group_id.filter(|id| *id != 0),
            repo: repo.to_owned(),
            created_at: self.created_at,
            started_at: self.started_at,
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct RepoWire {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) archived: bool,
    #[serde(default)]
    pub(crate) disabled: bool,
}

/// A page of a list endpoint: `{"total_count": …, "<items>": […]}`, or a bare array.
pub(crate) trait Page: serde::de::DeserializeOwned {
    type Item;
    fn into_items(self) -> Vec<Self::Item>;
}

#[derive(Deserialize)]
pub(crate) struct RunnersPage {
    runners: Vec<Runner>,
}

#[derive(Deserialize)]
pub(crate) struct RunsPage {
    workflow_runs: Vec<WorkflowRunWire>,
}

#[derive(Deserialize)]
pub(crate) struct JobsPage {
    jobs: Vec<JobWire>,
}

impl Page for RunnersPage {
    type Item = Runner;
    fn into_items(self) -> Vec<Runner> {
        self.runners
    }
}

impl Page for RunsPage {
    type Item = WorkflowRunWire;
    fn into_items(self) -> Vec<WorkflowRunWire> {
        self.workflow_runs
    }
}

impl Page for JobsPage {
    type Item = JobWire;
    fn into_items(self) -> Vec<JobWire> {
        self.jobs
    }
}

impl Page for Vec<RepoWire> {
    type Item = RepoWire;
    fn into_items(self) -> Vec<RepoWire> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jit_response_decodes_from_githubs_documented_shape() {
        let body = r#"{
            "runner": {"id": 23, "name": "New runner", "os": "unknown", "status": "offline",
                       "busy": false, "runner_group_id": 1,
                       "labels": [{"id": 5, "name": "self-hosted", "type": "read-only"},
                                  {"id": 7, "name": "cpu-2", "type": "custom"}]},
            "encoded_jit_config": "abc123"
        }"#;
        let jit: JitConfig = serde_json::from_str::<JitConfigWire>(body).unwrap().into();
        assert_eq!(
            (jit.runner_id, jit.runner_name.as_str()),
            (23, "New runner")
        );
        assert_eq!(jit.encoded_jit_config.expose(), "abc123");
        assert!(!format!("{jit:?}").contains("abc123"));
    }

    #[test]
    fn queued_job_with_zero_runner_id_has_no_runner() {
        let body = r#"{"id": 9, "run_id": 4, "status": "queued", "conclusion": null,
                       "labels": ["serverless-hosted-runner"], "runner_id": 0, "runner_name": "",
                       "name": "build", "brand_new_field": true}"#;
        let job = serde_json::from_str::<JobWire>(body)
            .unwrap()
            .into_job("acme/app");
        assert_eq!(job.status, RunStatus::Queued);
        assert_eq!((job.runner_id, job.runner_name.as_deref()), (None, None));
        assert_eq!(job.job_ref().repo, "acme/app");
    }

    #[test]
    fn unknown_status_values_are_tolerated() {
        let runner: Runner =
            serde_json::from_str(r#"{"id": 1, "name": "r", "status": "sleeping"}"#).unwrap();
        assert_eq!(runner.status, RunnerStatus::Unknown);
    }
}
