//! What the system is doing, read from the KV records: `shr status`, `shr runners list`,
//! `shr reap --dry-run`, the status page and the KV-derived metrics all use [`Snapshot`].
//!
//! A snapshot is built by a pure function ([`Snapshot::build`]) from the job and runner
//! records, the "seen" records (last webhook, last poll, rate budget) and, when there is one,
//! the configuration (tenants and registrations with nothing recorded yet still show).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use actors::reaper::{self, Action, Observed, Seen, Timeouts};
use bus_schema::{
    GitHubSeen, JobRecord, JobState, RunnerRecord, RunnerState, UnixMillis, WebhookSeen, subject,
};
use serde::Serialize;

/// How many startup samples the snapshot keeps for the chart.
pub const STARTUP_SAMPLES: usize = 60;

/// Everything read from KV at one moment.
#[derive(Debug, Clone, Default)]
pub struct Records {
    pub jobs: Vec<JobRecord>,
    pub runners: Vec<RunnerRecord>,
    pub webhook: Option<WebhookSeen>,
    pub github: Vec<GitHubSeen>,
}

/// One tenant's line.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TenantStatus {
    pub name: String,
    pub registrations: Vec<String>,
    pub jobs_queued: u64,
    pub jobs_in_progress: u64,
    pub runners_live: u64,
}

/// One registration's line.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RegistrationStatus {
    pub name: String,
    pub tenant: String,
    pub jobs_admitted: u64,
    pub jobs_declined: u64,
    pub last_poll_at: Option<UnixMillis>,
    pub rate_limit: Option<u64>,
    pub rate_remaining: Option<u64>,
    /// Unix seconds when the rate window resets.
    pub rate_reset: Option<u64>,
}

/// The oldest job still waiting for a runner.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OldestQueued {
    pub tenant: String,
    pub registration: String,
    pub job_id: u64,
    pub age_secs: u64,
}

/// One runner, as `shr runners list` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RunnerRow {
    pub name: String,
    pub tenant: String,
    pub registration: String,
    pub provider: String,
    pub state: String,
    pub job_id: u64,
    pub ran_job_id: Option<u64>,
    pub age_secs: u64,
    pub delete_attempts: u32,
    pub last_error: Option<String>,
    pub charge: String,
}

/// A job's startup, queued to in progress, for the chart.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Startup {
    pub job_id: u64,
    pub started_at: UnixMillis,
    pub secs: f64,
}

/// The state of the system.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Snapshot {
    pub generated_at: UnixMillis,
    pub tenants: Vec<TenantStatus>,
    pub registrations: Vec<RegistrationStatus>,
    /// Job records by state (`queued`, `provisioning`, `in_progress`, `completed`, `declined`).
    pub jobs: BTreeMap<String, u64>,
    /// Declined job records by reason.
    pub declined_by_reason: BTreeMap<String, u64>,
    /// Runner records by state, every state listed.
    pub runners: BTreeMap<String, u64>,
    pub pending_force_delete: Vec<String>,
    pub oldest_queued: Option<OldestQueued>,
    pub last_webhook_at: Option<UnixMillis>,
    /// Estimated startups of the most recent jobs that started (record creation to the
    /// record's move to in progress), oldest first.
    pub recent_startups: Vec<Startup>,
}

/// The `snake_case` name of a state.
pub fn state_name<T: Serialize>(state: &T) -> String {
    actors::observe::label(state)
}

/// A runner's charge labels as one metric label value, kept only when the configuration
/// names exactly that set (so a record cannot grow the label's cardinality); `other`
/// otherwise, and empty for none.
pub fn charge_label(rec: &RunnerRecord, allowed: &std::collections::BTreeSet<String>) -> String {
    let joined = rec
        .spec
        .as_ref()
        .map(|s| s.charge_labels.join(","))
        .unwrap_or_default();
    if joined.is_empty() || allowed.contains(&joined) {
        joined
    } else {
        "other".to_owned()
    }
}

/// The charge labels a registration's runners carry (its tenant's, then its own, without
/// repeats, as the runner spec resolves them), joined as one metric label value; empty for
/// a registration the configuration does not name.
pub fn registration_charge(config: &registration::Config, registration: &str) -> String {
    let Some(reg) = config.registration(registration) else {
        return String::new();
    };
    let tenant = config.tenants().find(|t| t.name == reg.tenant);
    let mut labels: Vec<&str> = Vec::new();
    for label in tenant
        .map(|t| t.charge_labels.as_slice())
        .unwrap_or_default()
        .iter()
        .chain(&reg.charge_labels)
    {
        if !labels.contains(&label.as_str()) {
            labels.push(label);
        }
    }
    labels.join(",")
}

/// The charge label sets the configuration can produce: each tenant's and registration's
/// labels alone, and a registration's after its tenant's.
pub fn allowed_charges(
    config: Option<&registration::Config>,
) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let Some(config) = config else {
        return out;
    };
    for tenant in config.tenants() {
        out.insert(tenant.charge_labels.join(","));
    }
    for reg in config.registrations() {
        out.insert(registration_charge(config, &reg.name));
        out.insert(reg.charge_labels.join(","));
        if let Some(tenant) = config.tenants().find(|t| t.name == reg.tenant) {
            let mut both = tenant.charge_labels.clone();
            both.extend(reg.charge_labels.iter().cloned());
            out.insert(both.join(","));
            let mut both = reg.charge_labels.clone();
            both.extend(tenant.charge_labels.iter().cloned());
            out.insert(both.join(","));
        }
    }
    out
}

fn age_secs(now: UnixMillis, then: UnixMillis) -> u64 {
    u64::try_from(now.saturating_sub(then)).unwrap_or(0) / 1000
}

impl Snapshot {
    /// Builds the snapshot of `records` at `now`.
    pub fn build(
        records: &Records,
        config: Option<&registration::Config>,
        now: UnixMillis,
    ) -> Snapshot {
        let mut snap = Snapshot {
            generated_at: now,
            last_webhook_at: records.webhook.as_ref().map(|w| w.at),
            ..Snapshot::default()
        };
        for state in JobState::ALL {
            snap.jobs.insert(state_name(&state), 0);
        }
        for state in RunnerState::ALL {
            snap.runners.insert(state_name(&state), 0);
        }
        let mut tenants: BTreeMap<String, TenantStatus> = BTreeMap::new();
        let mut regs: BTreeMap<String, RegistrationStatus> = BTreeMap::new();
        if let Some(config) = config {
            for tenant in config.tenants() {
                tenants.entry(tenant.name.clone()).or_default().name = tenant.name.clone();
            }
            for reg in config.registrations() {
                let entry = regs.entry(reg.name.clone()).or_default();
                entry.name = reg.name.clone();
                entry.tenant = reg.tenant.clone();
            }
        }
        for job in &records.jobs {
            *snap.jobs.entry(state_name(&job.state)).or_default() += 1;
            let tenant = tenants.entry(job.tenant.clone()).or_default();
            tenant.name = job.tenant.clone();
            let reg = regs.entry(job.registration.clone()).or_default();
            reg.name = job.registration.clone();
            reg.tenant = job.tenant.clone();
            match job.state {
                JobState::Declined => {
                    reg.jobs_declined += 1;
                    let reason = job
                        .declined_reason
                        .clone()
                        .unwrap_or_else(|| "unknown".to_owned());
                    *snap.declined_by_reason.entry(reason).or_default() += 1;
                }
                _ => reg.jobs_admitted += 1,
            }
            match job.state {
                JobState::Queued | JobState::Provisioning => {
                    tenant.jobs_queued += 1;
                    let age = age_secs(now, job.created_at);
                    if snap.oldest_queued.as_ref().is_none_or(|o| age > o.age_secs) {
                        snap.oldest_queued = Some(OldestQueued {
                            tenant: job.tenant.clone(),
                            registration: job.registration.clone(),
                            job_id: job.job.job_id,
                            age_secs: age,
                        });
                    }
                }
                JobState::InProgress => {
                    tenant.jobs_in_progress += 1;
                    snap.recent_startups.push(Startup {
                        job_id: job.job.job_id,
                        started_at: job.updated_at,
                        secs: job.updated_at.saturating_sub(job.created_at).max(0) as f64 / 1000.0,
                    });
                }
                _ => {}
            }
        }
        snap.recent_startups
            .sort_by_key(|s| (s.started_at, s.job_id));
        let keep = snap.recent_startups.len().saturating_sub(STARTUP_SAMPLES);
        snap.recent_startups.drain(..keep);
        for runner in &records.runners {
            *snap.runners.entry(state_name(&runner.state)).or_default() += 1;
            if runner.state == RunnerState::PendingForceDelete {
                snap.pending_force_delete.push(runner.name.clone());
            }
            if runner.state != RunnerState::Deleted {
                let tenant = tenants.entry(runner.tenant.clone()).or_default();
                tenant.name = runner.tenant.clone();
                tenant.runners_live += 1;
            }
        }
        for seen in &records.github {
            let reg = regs.entry(seen.registration.clone()).or_default();
            reg.name = seen.registration.clone();
            reg.last_poll_at = seen.last_poll_at;
            reg.rate_limit = seen.rate_limit;
            reg.rate_remaining = seen.rate_remaining;
            reg.rate_reset = seen.rate_reset;
        }
        for reg in regs.values() {
            if let Some(tenant) = tenants.get_mut(&reg.tenant) {
                tenant.registrations.push(reg.name.clone());
            }
        }
        snap.pending_force_delete.sort();
        snap.tenants = tenants.into_values().collect();
        snap.registrations = regs.into_values().collect();
        snap
    }

    /// The readable table `shr status` prints.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let ago = |at: Option<UnixMillis>| match at {
            Some(at) => format!("{}s ago", age_secs(self.generated_at, at)),
            None => "never".to_owned(),
        };
        let _ = writeln!(
            out,
            "TENANT            REGISTRATIONS            QUEUED  IN PROGRESS  LIVE RUNNERS"
        );
        for t in &self.tenants {
            let _ = writeln!(
                out,
                "{:<17} {:<24} {:>6}  {:>11}  {:>12}",
                t.name,
                t.registrations.join(","),
                t.jobs_queued,
                t.jobs_in_progress,
                t.runners_live
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "REGISTRATION      TENANT        ADMITTED  DECLINED  LAST POLL     GITHUB BUDGET"
        );
        for r in &self.registrations {
            let budget = match (r.rate_remaining, r.rate_limit) {
                (Some(rem), Some(limit)) => format!("{rem}/{limit}"),
                _ => "-".to_owned(),
            };
            let _ = writeln!(
                out,
                "{:<17} {:<13} {:>8}  {:>8}  {:<12}  {}",
                r.name,
                r.tenant,
                r.jobs_admitted,
                r.jobs_declined,
                ago(r.last_poll_at),
                budget
            );
        }
        let _ = writeln!(out);
        let line = |map: &BTreeMap<String, u64>| {
            map.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let _ = writeln!(out, "jobs:    {}", line(&self.jobs));
        if !self.declined_by_reason.is_empty() {
            let _ = writeln!(out, "declined: {}", line(&self.declined_by_reason));
        }
        let _ = writeln!(out, "runners: {}", line(&self.runners));
        match &self.oldest_queued {
            Some(o) => {
                let _ = writeln!(
                    out,
                    "oldest queued job: {} ({}/{}) waiting {}s",
                    o.job_id, o.tenant, o.registration, o.age_secs
                );
            }
            None => {
                let _ = writeln!(out, "oldest queued job: none");
            }
        }
        let _ = writeln!(out, "last webhook: {}", ago(self.last_webhook_at));
        if !self.pending_force_delete.is_empty() {
            let _ = writeln!(
                out,
                "pending_force_delete (an operator should look): {}",
                self.pending_force_delete.join(", ")
            );
        }
        out
    }
}

/// The runners, filtered, as rows.
pub fn runner_rows(
    records: &Records,
    config: Option<&registration::Config>,
    tenant: Option<&str>,
    state: Option<&str>,
    now: UnixMillis,
) -> Vec<RunnerRow> {
    let allowed = allowed_charges(config);
    let mut rows: Vec<RunnerRow> = records
        .runners
        .iter()
        .filter(|r| tenant.is_none_or(|t| r.tenant == t))
        .filter(|r| state.is_none_or(|s| state_name(&r.state) == s))
        .map(|r| RunnerRow {
            name: r.name.clone(),
            tenant: r.tenant.clone(),
            registration: r.registration.clone(),
            provider: r.provider.to_string(),
            state: state_name(&r.state),
            job_id: r.job_id,
            ran_job_id: r.ran_job_id,
            age_secs: age_secs(now, r.created_at),
            delete_attempts: r.delete_attempts,
            last_error: r.last_error.clone(),
            charge: charge_label(r, &allowed),
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

/// The rows as a table.
pub fn render_runner_rows(rows: &[RunnerRow]) -> String {
    let mut out = String::from(
        "RUNNER                          TENANT       PROVIDER      STATE                 JOB          AGE\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<31} {:<12} {:<13} {:<21} {:<12} {}s",
            r.name, r.tenant, r.provider, r.state, r.job_id, r.age_secs
        );
    }
    out
}

/// What the reaper would do with one runner on a periodic look, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReapPlan {
    pub runner: String,
    pub state: String,
    /// `delete`, `delete_if_idle` or `keep`.
    pub action: String,
    pub reason: String,
}

/// The reaper's and the sweep's verdict on every live runner record, from the records alone:
/// what the cloud and GitHub say is unknown here, so rules that need them are not applied.
pub fn reap_plan(
    records: &Records,
    config: Option<&registration::Config>,
    now: UnixMillis,
) -> Vec<ReapPlan> {
    let unknown = Observed {
        instance: Seen::Unknown,
        github_busy: Seen::Unknown,
    };
    let mut plans = Vec::new();
    for rec in records.runners.iter().filter(|r| r.state.is_live()) {
        let limits = config
            .and_then(|c| c.registration(&rec.registration))
            .map(|r| &r.limits);
        let t = Timeouts::for_record(limits, rec, reaper::DEFAULT_GRACE);
        let (action, reason) = match reaper::decide(rec, unknown, None, now, t) {
            Action::Keep(keep) => ("keep", format!("{keep:?}")),
            Action::ReapIfIdle(why) => ("delete_if_idle", state_name(&why)),
            Action::Delete(why) => ("delete", state_name(&why)),
        };
        let reason = match rec.state {
            RunnerState::PendingForceDelete => format!(
                "{reason}: {} failed deletes, last error: {}",
                rec.delete_attempts,
                rec.last_error.as_deref().unwrap_or("-")
            ),
            RunnerState::Orphaned => format!("{reason}: no live record; the sweep marked it"),
            _ => reason,
        };
        plans.push(ReapPlan {
            runner: rec.name.clone(),
            state: state_name(&rec.state),
            action: action.to_owned(),
            reason,
        });
    }
    plans.sort_by(|a, b| a.runner.cmp(&b.runner));
    plans
}

/// Reads every record the snapshot needs from the bus.
pub async fn load(bus: &shr_nats::Bus) -> anyhow::Result<Records> {
    let jobs = shr_nats::Records::<JobRecord>::new(bus.jobs.clone());
    let runners = shr_nats::Records::<RunnerRecord>::new(bus.runners.clone());
    let mut out = Records::default();
    for key in jobs.keys().await? {
        let entry = match bus.jobs.get(&key).await {
            Ok(Some(bytes)) => bytes,
            _ => continue,
        };
        out.absorb_job_bucket(&key, &entry);
    }
    for key in runners.keys().await? {
        if let Some((rec, _)) = runners.get(&key).await? {
            out.runners.push(rec);
        }
    }
    Ok(out)
}

impl Records {
    /// Takes one value of the jobs bucket: a job record, a seen record, or something else
    /// (slots, sequences), which is ignored.
    pub fn absorb_job_bucket(&mut self, key: &str, value: &[u8]) {
        if key == subject::WEBHOOK_SEEN_KEY {
            self.webhook = bus_schema::decode(value).ok();
        } else if key.starts_with("github.") {
            if let Ok(seen) = bus_schema::decode::<GitHubSeen>(value) {
                self.github.push(seen);
            }
        } else if key.split('.').count() == 3
            && let Ok(job) = bus_schema::decode::<JobRecord>(value)
        {
            self.jobs.push(job);
        }
    }
}

#[cfg(test)]
mod tests {
    use bus_schema::{JobRef, ProviderKind};

    use super::*;

    fn job(id: u64, state: JobState, created: i64, updated: i64) -> JobRecord {
        JobRecord {
            tenant: "acme".into(),
            registration: "main".into(),
            job: JobRef {
                job_id: id,
                run_id: 1,
                repo: "o/r".into(),
                labels: vec![],
                name: String::new(),
            },
            state,
            attempts: 1,
            runners: vec![],
            ran_on: None,
            conclusion: None,
            declined_reason: (state == JobState::Declined).then(|| "unknown_label".into()),
            declined_code: (state == JobState::Declined).then(|| "unknown_label".into()),
            created_at: created,
            updated_at: updated,
        }
    }

    fn runner(name: &str, state: RunnerState, created: i64) -> RunnerRecord {
        RunnerRecord {
            name: name.into(),
            tenant: "acme".into(),
            registration: "main".into(),
            provider: ProviderKind::Local,
            job_id: 1,
            state,
            ran_job_id: None,
            github_runner_id: None,
            instance_id: None,
            spec: None,
            delete_attempts: if state == RunnerState::PendingForceDelete {
                5
            } else {
                0
            },
            last_error: None,
            created_at: created,
            updated_at: created,
        }
    }

    #[test]
    fn the_snapshot_counts_states_reasons_and_the_oldest_queued_job() {
        let now = 100_000;
        let records = Records {
            jobs: vec![
                job(1, JobState::Queued, 40_000, 40_000),
                job(2, JobState::Provisioning, 10_000, 12_000),
                job(3, JobState::InProgress, 50_000, 53_500),
                job(4, JobState::Declined, 1, 1),
                job(5, JobState::Completed, 1, 2),
            ],
            runners: vec![
                runner("shr-acme-2-1", RunnerState::Creating, 12_000),
                runner("shr-acme-3-1", RunnerState::Busy, 50_000),
                runner("shr-acme-9-1", RunnerState::PendingForceDelete, 1),
                runner("shr-acme-8-1", RunnerState::Deleted, 1),
            ],
            webhook: Some(WebhookSeen {
                at: 95_000,
                accepted: 3,
            }),
            github: vec![GitHubSeen {
                registration: "main".into(),
                last_poll_at: Some(99_000),
                rate_limit: Some(5000),
                rate_remaining: Some(4990),
                rate_reset: Some(1),
                updated_at: 99_000,
            }],
        };
        let snap = Snapshot::build(&records, None, now);
        assert_eq!(snap.jobs["queued"], 1);
        assert_eq!(snap.jobs["provisioning"], 1);
        assert_eq!(snap.jobs["in_progress"], 1);
        assert_eq!(snap.jobs["declined"], 1);
        assert_eq!(snap.declined_by_reason["unknown_label"], 1);
        assert_eq!(snap.runners["pending_force_delete"], 1);
        assert_eq!(snap.runners["orphaned"], 0, "every state is listed");
        assert_eq!(snap.pending_force_delete, vec!["shr-acme-9-1".to_owned()]);
        let oldest = snap.oldest_queued.clone().unwrap();
        assert_eq!((oldest.job_id, oldest.age_secs), (2, 90));
        assert_eq!(snap.tenants.len(), 1);
        assert_eq!(snap.tenants[0].jobs_queued, 2);
        assert_eq!(
            snap.tenants[0].runners_live, 3,
            "deleted runners are not live"
        );
        assert_eq!(snap.registrations[0].jobs_admitted, 4);
        assert_eq!(snap.registrations[0].rate_remaining, Some(4990));
        assert_eq!(snap.recent_startups.len(), 1);
        assert!((snap.recent_startups[0].secs - 3.5).abs() < 1e-9);
        let text = snap.render_text();
        assert!(
            text.contains("oldest queued job: 2 (acme/main) waiting 90s"),
            "{text}"
        );
        assert!(text.contains("4990/5000"), "{text}");
        assert!(text.contains("last webhook: 5s ago"), "{text}");
        assert!(text.contains("pending_force_delete"), "{text}");
    }

    #[test]
    fn runner_rows_filter_by_tenant_and_state() {
        let mut other = runner("shr-beta-1-1", RunnerState::Running, 0);
        other.tenant = "beta".into();
        let records = Records {
            runners: vec![
                runner("shr-acme-1-1", RunnerState::Running, 0),
                runner("shr-acme-2-1", RunnerState::Busy, 0),
                other,
            ],
            ..Records::default()
        };
        let rows = runner_rows(&records, None, Some("acme"), Some("running"), 5_000);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].name, "shr-acme-1-1");
        assert_eq!(rows[0].age_secs, 5);
        assert_eq!(runner_rows(&records, None, None, None, 0).len(), 3);
    }

    #[test]
    fn the_reap_plan_names_the_rule_for_each_runner() {
        let now = 100_000_000;
        let records = Records {
            runners: vec![
                runner("shr-acme-1-1", RunnerState::Running, 0),
                runner("shr-acme-2-1", RunnerState::Running, now - 1000),
                runner("shr-acme-3-1", RunnerState::PendingForceDelete, 0),
                runner("shr-acme-4-1", RunnerState::Deleted, 0),
            ],
            ..Records::default()
        };
        let plan = reap_plan(&records, None, now);
        assert_eq!(plan.len(), 3, "deleted runners have no plan");
        assert_eq!(
            plan[0].action, "delete",
            "past the max runtime: {:?}",
            plan[0]
        );
        assert_eq!(plan[0].reason, "max_runtime");
        assert_eq!(plan[1].action, "keep");
        assert_eq!(plan[2].action, "delete");
        assert!(plan[2].reason.contains("5 failed deletes"), "{:?}", plan[2]);
    }

    #[test]
    fn charge_labels_outside_the_configuration_become_other() {
        let mut rec = runner("shr-acme-1-1", RunnerState::Running, 0);
        let allowed: std::collections::BTreeSet<String> = ["team=a".to_owned()].into();
        assert_eq!(charge_label(&rec, &allowed), "");
        let spec = bus_schema::RunnerSpec {
            charge_labels: vec!["team=a".into()],
            ..test_spec()
        };
        rec.spec = Some(spec.clone());
        assert_eq!(charge_label(&rec, &allowed), "team=a");
        rec.spec = Some(bus_schema::RunnerSpec {
            charge_labels: vec!["team=zzz".into()],
            ..spec
        });
        assert_eq!(charge_label(&rec, &allowed), "other");
    }

    #[test]
    fn a_registrations_charge_is_its_tenants_then_its_own_without_repeats() {
        let text = r#"
[controller]
id = "test"
actors = ["scheduler"]
[tenants.acme]
charge_labels = ["team-a", "cc-1"]
[tenants.acme.providers.local]
runner_command = "/bin/true"
[[registrations]]
name = "main"
tenant = "acme"
scope = "org"
url = "https://github.com/acme"
auth = { pat = "env:PAT" }
charge_labels = ["cc-1", "proj-x"]
"#;
        let config = registration::Config::parse(text, "t.toml", &::clouds::Registry)
            .unwrap_or_else(|e| panic!("{e}"));
        let charge = registration_charge(&config, "main");
        assert_eq!(charge, "team-a,cc-1,proj-x");
        assert_eq!(registration_charge(&config, "gone"), "");
        // What a runner of that registration carries is a value the gauge keeps as is.
        let mut rec = runner("shr-acme-1-1", RunnerState::Running, 0);
        rec.spec = Some(bus_schema::RunnerSpec {
            charge_labels: vec!["team-a".into(), "cc-1".into(), "proj-x".into()],
            ..test_spec()
        });
        assert_eq!(charge_label(&rec, &allowed_charges(Some(&config))), charge);
    }

    fn test_spec() -> bus_schema::RunnerSpec {
        serde_json::from_value(serde_json::json!({
            "provider": "local", "cpu_millis": 1000, "memory_mib": 1024, "image": "i",
            "labels": []
        }))
        .unwrap_or_else(|e| panic!("spec: {e}"))
    }
}
