//! Subjects, streams and buckets: the only place in the workspace that spells them.
//!
//! Subjects carry the tenant (and the provider, for commands aimed at one), so NATS
//! permissions can confine a tenant agent to `shr.v1.*.*.<tenant>.>` style grants.
//!
//! | subject | payload | stream |
//! | --- | --- | --- |
//! | `shr.v1.job.queued.<tenant>` | [`JobQueued`](crate::JobQueued) | [`JOBS_STREAM`] |
//! | `shr.v1.job.started.<tenant>` | [`JobStarted`](crate::JobStarted) | [`JOBS_STREAM`] |
//! | `shr.v1.job.completed.<tenant>` | [`JobCompleted`](crate::JobCompleted) | [`JOBS_STREAM`] |
//! | `shr.v1.runner.provision.<tenant>.<provider>` | [`ProvisionRunner`](crate::ProvisionRunner) | [`PROVISION_STREAM`] |
//! | `shr.v1.runner.reap.<tenant>` | [`ReapRunner`](crate::ReapRunner) | [`REAP_STREAM`] |
//! | `shr.v1.runner.event.<tenant>` | [`RunnerEvent`](crate::RunnerEvent) | [`RUNNER_EVENTS_STREAM`] |

use crate::ProviderKind;

/// Prefix shared by every v1 subject.
pub const PREFIX: &str = "shr.v1";

/// Stream of job events from the webhook and the poller (limits retention, duplicate window).
pub const JOBS_STREAM: &str = "SHR_JOBS";
/// Work-queue stream of provision commands.
pub const PROVISION_STREAM: &str = "SHR_PROVISION";
/// Work-queue stream of reap commands.
pub const REAP_STREAM: &str = "SHR_REAP";
/// Stream of runner events from provisioners and reapers.
pub const RUNNER_EVENTS_STREAM: &str = "SHR_RUNNER_EVENTS";

/// KV bucket of [`JobRecord`](crate::JobRecord)s, keyed by [`job_key`]; also holds the
/// scheduler's per-registration [`slots_key`] and per-tenant [`pool_sequence_key`] records.
pub const JOBS_BUCKET: &str = "shr-jobs";
/// KV bucket of [`RunnerRecord`](crate::RunnerRecord)s, keyed by [`runner_key`]
/// (`<tenant>.<runner name>`).
pub const RUNNERS_BUCKET: &str = "shr-runners";
/// KV bucket of leases (poller per registration, reaper sweep), entries expire by TTL.
pub const LEASES_BUCKET: &str = "shr-leases";

/// KV bucket of [`LiveRegistration`](crate::LiveRegistration)s (registrations applied at run
/// time), keyed by [`registration_key`] (`<tenant>.<name>`).
pub const REGISTRATIONS_BUCKET: &str = "shr-registrations";

/// Header carrying W3C trace context across the bus.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// The kinds of job event, the fourth subject token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobEventKind {
    Queued,
    Started,
    Completed,
}

impl JobEventKind {
    fn token(self) -> &'static str {
        match self {
            JobEventKind::Queued => "queued",
            JobEventKind::Started => "started",
            JobEventKind::Completed => "completed",
        }
    }

    fn from_token(token: &str) -> Option<Self> {
        [Self::Queued, Self::Started, Self::Completed]
            .into_iter()
            .find(|k| k.token() == token)
    }
}

/// Why a subject or a subject token was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// A token that would change the subject's shape or match more than itself.
    #[error("invalid {what} token `{token}`: {reason}")]
    InvalidToken {
        what: &'static str,
        token: String,
        reason: &'static str,
    },
    /// A payload that names another tenant (directly, or through a runner name) than the
    /// subject it arrived on. NATS permissions vouch for the subject only.
    #[error("message on tenant `{subject_tenant}`'s subject names tenant `{named}`")]
    ForeignTenant {
        subject_tenant: String,
        named: String,
    },
    /// A subject that is not one of ours.
    #[error("`{subject}` is not a {expected} subject")]
    Unrecognised {
        subject: String,
        expected: &'static str,
    },
}

/// Checks that `token` can stand as one subject token: non-empty, no `.`, `*`, `>` or
/// whitespace. Tenant names are held to a stricter syntax by the registration crate.
pub fn validate_token(what: &'static str, token: &str) -> Result<(), SubjectError> {
    let reason = if token.is_empty() {
        Some("it is empty")
    } else if token.contains('.') {
        Some("it contains `.`")
    } else if token.contains('*') || token.contains('>') {
        Some("it contains a wildcard (`*` or `>`)")
    } else if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("it contains whitespace or a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(SubjectError::InvalidToken {
            what,
            token: token.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Checks that a message that arrived on `subject_tenant`'s subject is about that tenant
/// only: its payload's tenant and, if given, the tenant in its runner name. Consumers call
/// this before acting, and refuse (ack, log, change nothing) a message that fails it.
pub fn confined_to(
    subject_tenant: &str,
    payload_tenant: &str,
    runner_name: Option<&str>,
) -> Result<(), SubjectError> {
    let foreign = |named: &str| SubjectError::ForeignTenant {
        subject_tenant: subject_tenant.to_owned(),
        named: named.to_owned(),
    };
    if payload_tenant != subject_tenant {
        return Err(foreign(payload_tenant));
    }
    if let Some(name) = runner_name {
        match tenant_of_runner(name) {
            Some(t) if t == subject_tenant => {}
            Some(t) => return Err(foreign(&t)),
            None => return Err(foreign(name)),
        }
    }
    Ok(())
}

/// `shr.v1.job.<kind>.<tenant>`.
pub fn job_event(kind: JobEventKind, tenant: &str) -> Result<String, SubjectError> {
    validate_token("tenant", tenant)?;
    Ok(format!("{PREFIX}.job.{}.{tenant}", kind.token()))
}

/// `shr.v1.runner.provision.<tenant>.<provider>`.
pub fn provision(tenant: &str, provider: ProviderKind) -> Result<String, SubjectError> {
    validate_token("tenant", tenant)?;
    Ok(format!(
        "{PREFIX}.runner.provision.{tenant}.{}",
        provider.token()
    ))
}

/// `shr.v1.runner.reap.<tenant>`.
pub fn reap(tenant: &str) -> Result<String, SubjectError> {
    validate_token("tenant", tenant)?;
    Ok(format!("{PREFIX}.runner.reap.{tenant}"))
}

/// `shr.v1.runner.event.<tenant>`.
pub fn runner_event(tenant: &str) -> Result<String, SubjectError> {
    validate_token("tenant", tenant)?;
    Ok(format!("{PREFIX}.runner.event.{tenant}"))
}

/// Every job event of every tenant: the jobs stream's subject space.
pub const ALL_JOB_EVENTS: &str = "shr.v1.job.*.*";
/// Every provision command: the provision stream's subject space.
pub const ALL_PROVISION: &str = "shr.v1.runner.provision.*.*";
/// Every reap command: the reap stream's subject space.
pub const ALL_REAP: &str = "shr.v1.runner.reap.*";
/// Every runner event: the runner events stream's subject space.
pub const ALL_RUNNER_EVENTS: &str = "shr.v1.runner.event.*";

/// Filter for one tenant's job events (all kinds).
pub fn job_events_of(tenant: &str) -> Result<String, SubjectError> {
    validate_token("tenant", tenant)?;
    Ok(format!("{PREFIX}.job.*.{tenant}"))
}

/// A parsed job event subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEventSubject {
    pub kind: JobEventKind,
    pub tenant: String,
}

/// Parses `shr.v1.job.<kind>.<tenant>`.
pub fn parse_job_event(subject: &str) -> Result<JobEventSubject, SubjectError> {
    let unrecognised = || SubjectError::Unrecognised {
        subject: subject.to_owned(),
        expected: "job event",
    };
    let rest = subject
        .strip_prefix(PREFIX)
        .and_then(|r| r.strip_prefix(".job."))
        .ok_or_else(unrecognised)?;
    let (kind, tenant) = rest.split_once('.').ok_or_else(unrecognised)?;
    let kind = JobEventKind::from_token(kind).ok_or_else(unrecognised)?;
    validate_token("tenant", tenant)?;
    Ok(JobEventSubject {
        kind,
        tenant: tenant.to_owned(),
    })
}

/// A parsed provision subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionSubject {
    pub tenant: String,
    pub provider: ProviderKind,
}

/// Parses `shr.v1.runner.provision.<tenant>.<provider>`.
pub fn parse_provision(subject: &str) -> Result<ProvisionSubject, SubjectError> {
    let unrecognised = || SubjectError::Unrecognised {
        subject: subject.to_owned(),
        expected: "provision",
    };
    let rest = subject
        .strip_prefix(PREFIX)
        .and_then(|r| r.strip_prefix(".runner.provision."))
        .ok_or_else(unrecognised)?;
    let (tenant, provider) = rest.split_once('.').ok_or_else(unrecognised)?;
    validate_token("tenant", tenant)?;
    validate_token("provider", provider)?;
    let provider = provider.parse().map_err(|_| SubjectError::InvalidToken {
        what: "provider",
        token: provider.to_owned(),
        reason: "it is not a known provider",
    })?;
    Ok(ProvisionSubject {
        tenant: tenant.to_owned(),
        provider,
    })
}

/// Parses the tenant out of `shr.v1.runner.reap.<tenant>` or `shr.v1.runner.event.<tenant>`.
pub fn parse_runner_tenant(subject: &str) -> Result<String, SubjectError> {
    let unrecognised = || SubjectError::Unrecognised {
        subject: subject.to_owned(),
        expected: "runner reap or event",
    };
    let rest = subject
        .strip_prefix(PREFIX)
        .and_then(|r| {
            r.strip_prefix(".runner.reap.")
                .or_else(|| r.strip_prefix(".runner.event."))
        })
        .ok_or_else(unrecognised)?;
    validate_token("tenant", rest)?;
    Ok(rest.to_owned())
}

/// Durable consumer of the scheduler on the jobs stream.
pub const SCHEDULER_CONSUMER: &str = "scheduler";
/// Durable consumer of the scheduler on the runner events stream.
pub const SCHEDULER_RUNNER_EVENTS_CONSUMER: &str = "scheduler-runner-events";

/// Durable consumer of one tenant's provisioner for one provider: `provision-<tenant>-<provider>`.
/// Fixed names let NATS permissions confine a tenant agent to its own consumers.
pub fn provisioner_consumer(tenant: &str, provider: ProviderKind) -> Result<String, SubjectError> {
    validate_token("tenant", tenant)?;
    Ok(format!("provision-{tenant}-{}", provider.token()))
}

/// Durable consumer of one tenant's reaper: `reap-<tenant>`.
pub fn reaper_consumer(tenant: &str) -> Result<String, SubjectError> {
    validate_token("tenant", tenant)?;
    Ok(format!("reap-{tenant}"))
}

/// The KV key of a job record: `<tenant>.<registration>.<job id>`.
pub fn job_key(tenant: &str, registration: &str, job_id: u64) -> Result<String, SubjectError> {
    validate_token("tenant", tenant)?;
    validate_token("registration", registration)?;
    Ok(format!("{tenant}.{registration}.{job_id}"))
}

/// The KV key of a runner record in [`RUNNERS_BUCKET`]: `<tenant>.<runner name>`, the tenant
/// taken from the name (`shr-<tenant>-<job id>-<attempt>`). The tenant leads, so a grant on
/// `$KV.shr-runners.<tenant>.>` confines a tenant agent to its own runners.
pub fn runner_key(runner_name: &str) -> Result<String, SubjectError> {
    validate_token("runner name", runner_name)?;
    let name: crate::RunnerName = runner_name
        .parse()
        .map_err(|_| SubjectError::InvalidToken {
            what: "runner name",
            token: runner_name.to_owned(),
            reason: "it is not of the form shr-<tenant>-<job id>-<attempt>",
        })?;
    validate_token("tenant", &name.tenant)?;
    Ok(format!("{}.{runner_name}", name.tenant))
}

/// The runner name held in a [`runner_key`], if `key` is one.
pub fn runner_name_of_key(key: &str) -> Option<&str> {
    let (tenant, name) = key.split_once('.')?;
    let parsed: crate::RunnerName = name.parse().ok()?;
    (parsed.tenant == tenant).then_some(name)
}

/// The KV key filter (below the bucket's `$KV.<bucket>.` prefix) of one tenant's runner
/// records: `<tenant>.>`.
pub fn runner_keys_of(tenant: &str) -> Result<String, SubjectError> {
    validate_token("tenant", tenant)?;
    Ok(format!("{tenant}.>"))
}

/// The tenant a runner name belongs to (`shr-<tenant>-…`), if it is one of ours.
pub fn tenant_of_runner(runner_name: &str) -> Option<String> {
    runner_name
        .parse::<crate::RunnerName>()
        .ok()
        .map(|n| n.tenant)
}

/// The KV key of a live registration in [`REGISTRATIONS_BUCKET`]: `<tenant>.<name>`. The
/// tenant leads, so a grant on `$KV.shr-registrations.<tenant>.>` lets a tenant apply and
/// remove its own registrations and no other tenant's.
pub fn registration_key(tenant: &str, name: &str) -> Result<String, SubjectError> {
    validate_token("tenant", tenant)?;
    validate_token("registration", name)?;
    Ok(format!("{tenant}.{name}"))
}

/// The KV key filter of one tenant's live registrations: `<tenant>.*`.
pub fn registration_keys_of(tenant: &str) -> Result<String, SubjectError> {
    validate_token("tenant", tenant)?;
    Ok(format!("{tenant}.*"))
}

/// The KV key of a poller lease for one registration.
pub fn poll_lease_key(registration: &str) -> Result<String, SubjectError> {
    validate_token("registration", registration)?;
    Ok(format!("poll.{registration}"))
}

/// The KV key of the reaper's sweep lease for one tenant.
pub fn sweep_lease_key(tenant: &str) -> Result<String, SubjectError> {
    validate_token("tenant", tenant)?;
    Ok(format!("sweep.{tenant}"))
}

/// The KV key of the warm-pool lease for one registration.
pub fn pool_lease_key(registration: &str) -> Result<String, SubjectError> {
    validate_token("registration", registration)?;
    Ok(format!("pool.{registration}"))
}

/// The KV key, in [`JOBS_BUCKET`], of a registration's runner slots (its `max_runners` cap
/// and the jobs waiting for a slot). Two tokens, so it never collides with a [`job_key`].
pub fn slots_key(registration: &str) -> Result<String, SubjectError> {
    validate_token("registration", registration)?;
    Ok(format!("slots.{registration}"))
}

/// The KV key, in [`JOBS_BUCKET`], of a tenant's pool runner name sequence. Two tokens, so
/// it never collides with a [`job_key`].
pub fn pool_sequence_key(tenant: &str) -> Result<String, SubjectError> {
    validate_token("tenant", tenant)?;
    Ok(format!("poolseq.{tenant}"))
}

/// The KV key, in [`JOBS_BUCKET`], of the last accepted webhook delivery
/// ([`WebhookSeen`](crate::WebhookSeen)). Two tokens, so it never collides with a [`job_key`].
pub const WEBHOOK_SEEN_KEY: &str = "seen.webhook";

/// The KV key, in [`JOBS_BUCKET`], of a registration's last poll and GitHub rate budget
/// ([`GitHubSeen`](crate::GitHubSeen)). Two tokens, so it never collides with a [`job_key`].
pub fn github_seen_key(registration: &str) -> Result<String, SubjectError> {
    validate_token("registration", registration)?;
    Ok(format!("github.{registration}"))
}

/// The KV key, in [`JOBS_BUCKET`], of a GitHub credential's cluster-wide JIT pacing
/// ([`CredentialPace`](crate::CredentialPace)). `credential` names the credential without
/// revealing it (a digest of a PAT, an App's ids). Two tokens, so it never collides with a
/// [`job_key`].
pub fn credential_pace_key(credential: &str) -> Result<String, SubjectError> {
    validate_token("credential", credential)?;
    Ok(format!("pace.{credential}"))
}

/// The KV key, in [`JOBS_BUCKET`], of a GitHub credential's last known rate budget
/// ([`CredentialBudget`](crate::CredentialBudget)), shared by every replica. Two tokens.
pub fn credential_budget_key(credential: &str) -> Result<String, SubjectError> {
    validate_token("credential", credential)?;
    Ok(format!("budget.{credential}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_keys_are_two_tokens() {
        assert_eq!(credential_pace_key("pat-0a1b").unwrap(), "pace.pat-0a1b");
        assert_eq!(credential_budget_key("app-1-2").unwrap(), "budget.app-1-2");
        assert!(credential_pace_key("a.b").is_err());
    }

    #[test]
    fn builders_and_parsers_round_trip() {
        let s = job_event(JobEventKind::Started, "acme").unwrap();
        assert_eq!(s, "shr.v1.job.started.acme");
        assert_eq!(
            parse_job_event(&s).unwrap(),
            JobEventSubject {
                kind: JobEventKind::Started,
                tenant: "acme".into()
            }
        );
        let p = provision("acme", ProviderKind::AzureAci).unwrap();
        assert_eq!(p, "shr.v1.runner.provision.acme.azure-aci");
        assert_eq!(
            parse_provision(&p).unwrap().provider,
            ProviderKind::AzureAci
        );
        assert_eq!(parse_runner_tenant(&reap("t-1").unwrap()).unwrap(), "t-1");
        assert_eq!(
            parse_runner_tenant(&runner_event("t-1").unwrap()).unwrap(),
            "t-1"
        );
    }

    #[test]
    fn malformed_tenant_tokens_are_rejected() {
        for bad in ["", "a.b", "*", ">", "a b", "tab\t", "x*", "new\nline"] {
            assert!(job_event(JobEventKind::Queued, bad).is_err(), "{bad:?}");
            assert!(provision(bad, ProviderKind::Local).is_err(), "{bad:?}");
            assert!(reap(bad).is_err(), "{bad:?}");
            assert!(runner_event(bad).is_err(), "{bad:?}");
            assert!(job_key(bad, "reg", 1).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parsers_reject_foreign_and_malformed_subjects() {
        for bad in [
            "shr.v1.job.queued",
            "shr.v1.job.exploded.acme",
            "shr.v1.job.queued.a.b",
            "shr.v2.job.queued.acme",
            "other.v1.job.queued.acme",
        ] {
            assert!(parse_job_event(bad).is_err(), "{bad}");
        }
        for bad in [
            "shr.v1.runner.provision.acme",
            "shr.v1.runner.provision.acme.aws",
            "shr.v1.runner.provision.acme.local.x",
            "shr.v1.runner.provision..local",
        ] {
            assert!(parse_provision(bad).is_err(), "{bad}");
        }
        assert!(parse_runner_tenant("shr.v1.runner.reap.a.b").is_err());
        assert!(parse_runner_tenant("shr.v1.runner.reap.").is_err());
    }

    #[test]
    fn pool_keys_never_look_like_job_keys() {
        assert_eq!(pool_lease_key("reg").unwrap(), "pool.reg");
        assert_eq!(slots_key("reg").unwrap(), "slots.reg");
        assert_eq!(pool_sequence_key("acme").unwrap(), "poolseq.acme");
        for key in [slots_key("a").unwrap(), pool_sequence_key("a").unwrap()] {
            assert_eq!(key.matches('.').count(), 1, "{key}");
        }
        assert!(slots_key("a.b").is_err() && pool_sequence_key("*").is_err());
    }

    #[test]
    fn messages_naming_another_tenant_are_not_confined() {
        assert!(confined_to("a", "a", Some("shr-a-1-1")).is_ok());
        assert!(confined_to("a", "a", None).is_ok());
        for (payload, runner) in [
            ("b", Some("shr-a-1-1")),
            ("a", Some("shr-b-1-1")),
            ("a", Some("not-a-runner")),
        ] {
            assert!(
                matches!(
                    confined_to("a", payload, runner),
                    Err(SubjectError::ForeignTenant { .. })
                ),
                "{payload} {runner:?}"
            );
        }
    }

    #[test]
    fn runner_keys_lead_with_the_tenant_of_the_name() {
        assert_eq!(
            runner_key("shr-team-a-42-1").unwrap(),
            "team-a.shr-team-a-42-1"
        );
        assert_eq!(
            runner_name_of_key("team-a.shr-team-a-42-1"),
            Some("shr-team-a-42-1")
        );
        // A key whose tenant prefix disagrees with the name is not a runner key.
        assert_eq!(runner_name_of_key("team-b.shr-team-a-42-1"), None);
        assert_eq!(runner_keys_of("team-a").unwrap(), "team-a.>");
        assert_eq!(
            tenant_of_runner("shr-team-a-42-1").as_deref(),
            Some("team-a")
        );
        for bad in ["runner-1", "shr-a.b-1-1", "shr-*-1-1", "", "shr--1-1"] {
            assert!(runner_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn per_tenant_filters_are_disjoint_from_each_other() {
        assert_eq!(job_events_of("a").unwrap(), "shr.v1.job.*.a");
        assert_ne!(
            provision("a", ProviderKind::Local),
            provision("b", ProviderKind::Local)
        );
    }
}
