//! Every metric name, and the families kept in process memory.
//!
//! Names are the exposed names, counters with their `_total` suffix. Two kinds of metric:
//! - **in process**: counters and histograms of what this process did ([`Metrics`], one per
//!   process through [`global`]). They start at zero with the process, as Prometheus counters
//!   do; `rate()` handles the reset.
//! - **derived from KV** at scrape time by the binary: runners by state, jobs by state,
//!   admitted and declined jobs, the oldest queued job, the last webhook and poll. These
//!   survive restarts because the records do, and read the same on every process.

use std::sync::OnceLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Histogram: seconds from a job's record being created (queued) to the job starting on a
/// runner (in progress). Labels `tenant`, `charge`. ARC calls its twin
/// `gha_job_startup_duration_seconds`.
pub const JOB_STARTUP_SECONDS: &str = "shr_job_startup_duration_seconds";
/// Histogram: seconds a provider's create call took, labels `provider`, `outcome`
/// (`created`, `failed`, `retry`).
pub const PROVISION_SECONDS: &str = "shr_provision_duration_seconds";
/// Counter: provider calls that failed, labels `provider`, `op` (`create`, `delete`, `list`,
/// `get`), `kind` (`transient`, `not_found`, `quota`, `permanent`, …).
pub const PROVIDER_ERRORS: &str = "shr_provider_errors_total";
/// Counter: runners the sweep found with no live record (marked orphaned), label `tenant`.
pub const ORPHANS_FOUND: &str = "shr_orphans_found_total";
/// Counter: orphans the sweep deleted on its second pass, label `tenant`.
pub const ORPHANS_REAPED: &str = "shr_orphans_reaped_total";
/// Counter: runners the reaper finished deleting, labels `tenant`, `reason`.
pub const RUNNERS_REAPED: &str = "shr_runners_reaped_total";
/// Counter: webhook deliveries by `outcome` (`accepted`, `duplicate`, `bad_signature`, …).
pub const WEBHOOK_DELIVERIES: &str = "shr_webhook_deliveries_total";
/// Counter: deliveries dropped as duplicates (the same `X-GitHub-Delivery` seen again).
pub const WEBHOOK_DUPLICATES: &str = "shr_webhook_duplicates_dropped_total";
/// Counter: GitHub REST requests sent, labels `registration`, `class` (`jit`, `runners`,
/// `runs`, `jobs`, `repos`, `token`, `other`).
pub const GITHUB_REQUESTS: &str = "shr_github_requests_total";
/// Gauge: requests left in the credential's rate window, label `registration`.
pub const GITHUB_RATE_REMAINING: &str = "shr_github_rate_remaining";
/// Gauge: the credential's rate window size, label `registration`.
pub const GITHUB_RATE_LIMIT: &str = "shr_github_rate_limit";
/// Gauge (KV): runner records by `tenant`, `provider`, `state`, `charge`.
pub const RUNNERS: &str = "shr_runners";
/// Gauge (KV): runners in `pending_force_delete`, labels `tenant`, `provider`.
pub const RUNNERS_PENDING_FORCE_DELETE: &str = "shr_runners_pending_force_delete";
/// Gauge (KV): job records by `tenant`, `state`.
pub const JOBS: &str = "shr_jobs";
/// Gauge (KV): job records admitted (every state but declined), labels `tenant`,
/// `registration`, over the record retention.
pub const JOBS_ADMITTED: &str = "shr_jobs_admitted";
/// Gauge (KV): job records declined, labels `tenant`, `reason`, over the record retention.
pub const JOBS_DECLINED: &str = "shr_jobs_declined";
/// Gauge (KV): age in seconds of the oldest job still queued or provisioning.
pub const OLDEST_QUEUED_SECONDS: &str = "shr_oldest_queued_job_age_seconds";
/// Gauge (KV): Unix time of the last webhook delivery any process accepted.
pub const LAST_WEBHOOK_SECONDS: &str = "shr_last_webhook_timestamp_seconds";
/// Gauge (KV): Unix time of the last poll round, label `registration`.
pub const LAST_POLL_SECONDS: &str = "shr_last_poll_timestamp_seconds";
/// Gauge: 1 while this process is ready (bus reachable, consumers bound), else 0.
pub const READY: &str = "shr_ready";

/// Every name above, for documentation checks and scrape tests.
pub const ALL: [&str; 22] = [
    JOB_STARTUP_SECONDS,
    PROVISION_SECONDS,
    PROVIDER_ERRORS,
    ORPHANS_FOUND,
    ORPHANS_REAPED,
    RUNNERS_REAPED,
    WEBHOOK_DELIVERIES,
    WEBHOOK_DUPLICATES,
    GITHUB_REQUESTS,
    GITHUB_RATE_REMAINING,
    GITHUB_RATE_LIMIT,
    RUNNERS,
    RUNNERS_PENDING_FORCE_DELETE,
    JOBS,
    JOBS_ADMITTED,
    JOBS_DECLINED,
    OLDEST_QUEUED_SECONDS,
    LAST_WEBHOOK_SECONDS,
    LAST_POLL_SECONDS,
    READY,
    "shr_build_info",
    "shr_process_start_time_seconds",
];

/// Label pairs of one series.
pub type Labels = Vec<(&'static str, String)>;

/// Buckets of [`JOB_STARTUP_SECONDS`]: 0.25 s to about 17 minutes.
pub const STARTUP_BUCKETS: [f64; 12] = [
    0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 1000.0,
];
/// Buckets of [`PROVISION_SECONDS`]: 10 ms to 5 minutes.
pub const PROVISION_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0,
];

fn startup_histogram() -> Histogram {
    Histogram::new(STARTUP_BUCKETS)
}

fn provision_histogram() -> Histogram {
    Histogram::new(PROVISION_BUCKETS)
}

/// The metrics one process keeps in memory. Clones of a family share its series.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub job_startup: Family<Labels, Histogram, fn() -> Histogram>,
    pub provision: Family<Labels, Histogram, fn() -> Histogram>,
    pub provider_errors: Family<Labels, Counter>,
    pub orphans_found: Family<Labels, Counter>,
    pub orphans_reaped: Family<Labels, Counter>,
    pub runners_reaped: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            job_startup: Family::new_with_constructor(startup_histogram),
            provision: Family::new_with_constructor(provision_histogram),
            provider_errors: Family::default(),
            orphans_found: Family::default(),
            orphans_reaped: Family::default(),
            runners_reaped: Family::default(),
        }
    }
}

impl Metrics {
    /// Counts a failed provider call.
    pub fn provider_error(&self, provider: &str, op: &'static str, kind: &str) {
        self.provider_errors
            .get_or_create(&vec![
                ("provider", provider.to_owned()),
                ("op", op.to_owned()),
                ("kind", kind.to_owned()),
            ])
            .inc();
    }

    /// Records how long a provider's create call took.
    pub fn provision_took(&self, provider: &str, outcome: &'static str, seconds: f64) {
        self.provision
            .get_or_create(&vec![
                ("provider", provider.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .observe(seconds);
    }

    /// Records a job's startup time (queued to in progress).
    pub fn job_started(&self, tenant: &str, charge: &str, seconds: f64) {
        self.job_startup
            .get_or_create(&vec![
                ("tenant", tenant.to_owned()),
                ("charge", charge.to_owned()),
            ])
            .observe(seconds);
    }

    /// Counts a runner the sweep marked orphaned.
    pub fn orphan_found(&self, tenant: &str) {
        self.orphans_found
            .get_or_create(&vec![("tenant", tenant.to_owned())])
            .inc();
    }

    /// Counts an orphan the sweep deleted.
    pub fn orphan_reaped(&self, tenant: &str) {
        self.orphans_reaped
            .get_or_create(&vec![("tenant", tenant.to_owned())])
            .inc();
    }

    /// Counts a runner the reaper finished deleting.
    pub fn runner_reaped(&self, tenant: &str, reason: &str) {
        self.runners_reaped
            .get_or_create(&vec![
                ("tenant", tenant.to_owned()),
                ("reason", reason.to_owned()),
            ])
            .inc();
    }

    /// Adds every family to `registry` under its name.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            metric_name(JOB_STARTUP_SECONDS),
            "Seconds from a job being queued to it starting on a runner",
            self.job_startup.clone(),
        );
        registry.register(
            metric_name(PROVISION_SECONDS),
            "Seconds a provider's create call took",
            self.provision.clone(),
        );
        registry.register(
            metric_name(PROVIDER_ERRORS),
            "Failed provider calls by provider, operation and error kind",
            self.provider_errors.clone(),
        );
        registry.register(
            metric_name(ORPHANS_FOUND),
            "Runners the sweep found with no live record",
            self.orphans_found.clone(),
        );
        registry.register(
            metric_name(ORPHANS_REAPED),
            "Orphaned runners the sweep deleted",
            self.orphans_reaped.clone(),
        );
        registry.register(
            metric_name(RUNNERS_REAPED),
            "Runners the reaper deleted, by reason",
            self.runners_reaped.clone(),
        );
    }
}

/// The name to register a metric under: prometheus-client adds `_total` to counters itself.
pub fn metric_name(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

/// This process's in-memory metrics.
pub fn global() -> &'static Metrics {
    static GLOBAL: OnceLock<Metrics> = OnceLock::new();
    GLOBAL.get_or_init(Metrics::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_unique_prefixed_and_valid() {
        let mut seen = std::collections::BTreeSet::new();
        for name in ALL {
            assert!(name.starts_with("shr_"), "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            assert!(seen.insert(name), "{name} twice");
        }
    }

    #[test]
    fn the_readme_lists_every_metric() {
        let readme = include_str!("../../README.md");
        let operations = readme
            .split("\n## Operations")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .unwrap_or_default();
        for name in ALL {
            assert!(
                operations.contains(&format!("`{name}`")),
                "{name} is not in the README's operations section"
            );
        }
    }

    #[test]
    fn registered_families_render_under_their_constant_names() {
        let metrics = Metrics::default();
        metrics.provider_error("azure-aci", "create", "quota");
        metrics.provider_error("azure-aci", "create", "quota");
        metrics.provision_took("azure-aci", "created", 0.3);
        metrics.job_started("acme", "", 1.5);
        metrics.orphan_found("acme");
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(
                "shr_provider_errors_total{provider=\"azure-aci\",op=\"create\",kind=\"quota\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("shr_orphans_found_total{tenant=\"acme\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("shr_provision_duration_seconds_bucket{le=\"0.5\",provider=\"azure-aci\",outcome=\"created\"} 1")
                || text.contains("shr_provision_duration_seconds_bucket{provider=\"azure-aci\",outcome=\"created\",le=\"0.5\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("shr_job_startup_duration_seconds_count{tenant=\"acme\",charge=\"\"} 1"),
            "{text}"
        );
    }
}
