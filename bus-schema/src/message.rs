//! Events (past tense) and commands (imperative) carried on the bus.

use serde::{Deserialize, Serialize};

use crate::subject::{self, JobEventKind, SubjectError};
use crate::{ErrorKind, JobRef, ProviderKind, RunnerSpec, SealedSecret, Secret, UnixMillis};

/// Which actor observed a job event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobSource {
    /// A signed `workflow_job` webhook delivery.
    Webhook,
    /// The poller's REST listing.
    Poll,
}

/// A job is waiting for a runner. Subject: `shr.v1.job.queued.<tenant>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobQueued {
    pub tenant: String,
    pub registration: String,
    pub job: JobRef,
    pub source: JobSource,
    /// `X-GitHub-Delivery` of the webhook, or a poller-made id; also the JetStream message id.
    #[serde(default)]
    pub delivery_id: Option<String>,
    pub observed_at: UnixMillis,
}

/// A runner picked the job up. Subject: `shr.v1.job.started.<tenant>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStarted {
    pub tenant: String,
    pub registration: String,
    pub job: JobRef,
    /// `workflow_job.runner_name`: which runner actually took the job.
    pub runner_name: String,
    /// `workflow_job.runner_id`.
    #[serde(default)]
    pub runner_id: Option<u64>,
    pub source: JobSource,
    #[serde(default)]
    pub delivery_id: Option<String>,
    pub observed_at: UnixMillis,
}

/// The job finished, or was cancelled before or while running.
/// Subject: `shr.v1.job.completed.<tenant>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCompleted {
    pub tenant: String,
    pub registration: String,
    pub job: JobRef,
    /// `workflow_job.conclusion`: `success`, `failure`, `cancelled`, `skipped`, …
    #[serde(default)]
    pub conclusion: Option<String>,
    /// The runner that ran it; `None` when it never started.
    #[serde(default)]
    pub runner_name: Option<String>,
    #[serde(default)]
    pub runner_id: Option<u64>,
    pub source: JobSource,
    #[serde(default)]
    pub delivery_id: Option<String>,
    pub observed_at: UnixMillis,
}

/// Any job event, as read from the jobs stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEvent {
    Queued(JobQueued),
    Started(JobStarted),
    Completed(JobCompleted),
}

/// A job event that could not be read off the bus.
#[derive(Debug, thiserror::Error)]
pub enum JobEventError {
    #[error(transparent)]
    Subject(#[from] SubjectError),
    #[error(transparent)]
    Codec(#[from] crate::CodecError),
    /// The payload names another tenant than the subject it arrived on.
    #[error("job event on tenant `{subject}`'s subject names tenant `{payload}`")]
    TenantMismatch { subject: String, payload: String },
}

impl JobEvent {
    /// Decodes a job event, taking its kind from the subject it arrived on.
    pub fn decode(subject_str: &str, payload: &[u8]) -> Result<Self, JobEventError> {
        let parsed = subject::parse_job_event(subject_str)?;
        let event = match parsed.kind {
            JobEventKind::Queued => JobEvent::Queued(crate::decode(payload)?),
            JobEventKind::Started => JobEvent::Started(crate::decode(payload)?),
            JobEventKind::Completed => JobEvent::Completed(crate::decode(payload)?),
        };
        // The subject is what NATS permissions vouch for; a payload naming another tenant
        // is refused.
        if event.tenant() != parsed.tenant {
            return Err(JobEventError::TenantMismatch {
                subject: parsed.tenant,
                payload: event.tenant().to_owned(),
            });
        }
        Ok(event)
    }

    /// The subject this event is published on.
    pub fn subject(&self) -> Result<String, SubjectError> {
        subject::job_event(self.kind(), self.tenant())
    }

    /// Encodes the payload.
    pub fn encode(&self) -> Result<Vec<u8>, crate::CodecError> {
        match self {
            JobEvent::Queued(e) => crate::encode(e),
            JobEvent::Started(e) => crate::encode(e),
            JobEvent::Completed(e) => crate::encode(e),
        }
    }

    pub fn kind(&self) -> JobEventKind {
        match self {
            JobEvent::Queued(_) => JobEventKind::Queued,
            JobEvent::Started(_) => JobEventKind::Started,
            JobEvent::Completed(_) => JobEventKind::Completed,
        }
    }

    pub fn tenant(&self) -> &str {
        match self {
            JobEvent::Queued(e) => &e.tenant,
            JobEvent::Started(e) => &e.tenant,
            JobEvent::Completed(e) => &e.tenant,
        }
    }

    pub fn registration(&self) -> &str {
        match self {
            JobEvent::Queued(e) => &e.registration,
            JobEvent::Started(e) => &e.registration,
            JobEvent::Completed(e) => &e.registration,
        }
    }

    pub fn job(&self) -> &JobRef {
        match self {
            JobEvent::Queued(e) => &e.job,
            JobEvent::Started(e) => &e.job,
            JobEvent::Completed(e) => &e.job,
        }
    }

    pub fn delivery_id(&self) -> Option<&str> {
        match self {
            JobEvent::Queued(e) => e.delivery_id.as_deref(),
            JobEvent::Started(e) => e.delivery_id.as_deref(),
            JobEvent::Completed(e) => e.delivery_id.as_deref(),
        }
    }
}

/// Create one runner. Subject: `shr.v1.runner.provision.<tenant>.<provider>`.
///
/// The provisioner acks it only after the instance exists, so a crash replays it; the create
/// is idempotent by `runner_name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionRunner {
    pub tenant: String,
    pub registration: String,
    pub runner_name: String,
    /// The job the runner was made for (GitHub may give it another one).
    pub job_id: u64,
    pub attempt: u32,
    pub spec: RunnerSpec,
    /// The GitHub runner id the JIT config registered.
    pub github_runner_id: u64,
    /// The encoded JIT config in clear; empty when [`Self::sealed_jit_config`] is set.
    /// Redacted in `Debug`.
    pub jit_config: Secret,
    pub requested_at: UnixMillis,
    /// The JIT config sealed to the tenant's public key (see [`crate::JitPublicKey`]); only
    /// the tenant's agent opens it. Absent from commands of tenants without a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_jit_config: Option<SealedSecret>,
}

/// Why a runner is to be reaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReapReason {
    /// The job it ran has completed.
    JobCompleted,
    /// The job it was made for finished or was cancelled before the runner took it.
    JobGone,
    /// It never took a job within the idle timeout.
    IdleTimeout,
    /// It outlived the maximum runtime.
    MaxRuntime,
    /// Found in a cloud or in GitHub with no live record.
    Orphan,
    /// Its create failed for good.
    ProvisionFailed,
    /// An operator asked.
    Manual,
}

/// Converge one runner toward deleted. Subject: `shr.v1.runner.reap.<tenant>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReapRunner {
    pub tenant: String,
    pub runner_name: String,
    pub reason: ReapReason,
    pub requested_at: UnixMillis,
}

/// The instance for a runner exists. Part of [`RunnerEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerCreated {
    pub tenant: String,
    pub registration: String,
    pub runner_name: String,
    pub job_id: u64,
    pub provider: ProviderKind,
    /// The provider's id for the instance.
    pub instance_id: String,
    pub at: UnixMillis,
}

/// A runner could not be created. Part of [`RunnerEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerFailed {
    pub tenant: String,
    pub registration: String,
    pub runner_name: String,
    pub job_id: u64,
    pub provider: ProviderKind,
    pub kind: ErrorKind,
    /// A human-readable reason, free of secrets.
    pub reason: String,
    pub at: UnixMillis,
}

/// A runner's instance and GitHub registration are gone. Part of [`RunnerEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerDeleted {
    pub tenant: String,
    pub runner_name: String,
    pub provider: ProviderKind,
    pub reason: ReapReason,
    pub at: UnixMillis,
}

/// Runner lifecycle events. Subject: `shr.v1.runner.event.<tenant>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunnerEvent {
    Created(RunnerCreated),
    Failed(RunnerFailed),
    Deleted(RunnerDeleted),
}

impl RunnerEvent {
    pub fn tenant(&self) -> &str {
        match self {
            RunnerEvent::Created(e) => &e.tenant,
            RunnerEvent::Failed(e) => &e.tenant,
            RunnerEvent::Deleted(e) => &e.tenant,
        }
    }

    pub fn runner_name(&self) -> &str {
        match self {
            RunnerEvent::Created(e) => &e.runner_name,
            RunnerEvent::Failed(e) => &e.runner_name,
            RunnerEvent::Deleted(e) => &e.runner_name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(tenant: &str) -> JobQueued {
        JobQueued {
            tenant: tenant.into(),
            registration: "reg".into(),
            job: JobRef {
                job_id: 1,
                run_id: 2,
                repo: "o/r".into(),
                labels: vec![],
                name: String::new(),
            },
            source: JobSource::Webhook,
            delivery_id: None,
            observed_at: 0,
        }
    }

    #[test]
    fn a_job_event_naming_another_tenant_than_its_subject_is_refused() {
        let payload = crate::encode(&queued("b")).unwrap();
        let err = JobEvent::decode("shr.v1.job.queued.a", &payload).unwrap_err();
        assert!(matches!(err, JobEventError::TenantMismatch { .. }), "{err}");
        let ok = JobEvent::decode("shr.v1.job.queued.b", &payload).unwrap();
        assert_eq!(ok.tenant(), "b");
    }
}
