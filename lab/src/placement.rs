//! Placements of the demo (`shr-lab demo --placement …`), as the README's placements section
//! defines them:
//!
//! - [`Placement::Distributed`]: one team's complete deployment, every actor in one process
//!   for its own tenant (the demo as it always ran);
//! - [`Placement::Centralized`]: the central actors (webhook, poller, scheduler) in the demo
//!   process, the tenant's provisioner and reaper in a separate `shr run` process run by the
//!   same operator, sharing the central configuration, its cloud keys and its NATS access;
//! - [`Placement::Agents`]: the central placement as `shr run` processes (`webhook` under the
//!   webhook identity, `central` with poller and scheduler) plus one agent process
//!   (provisioner + reaper) per tenant, each with its own NATS nkey identity written by
//!   [`shr_nats::security::generate`] (what `shr-nats-config` runs), its own cloud account
//!   (a cloud simulator of its own with its own secret), its own GitHub token and its own JIT
//!   key pair, on a nats-server running the shipped `nats/conf/secure.conf` with the
//!   generated `accounts.conf`. The demo process itself only observes, as `central`.
//!
//! In the agents placement every tenant's registration covers the same repository with its
//! own label (`<tenant>-runner`), so deliveries for one repository reach three tenants by
//! label. [`tenant_creates`] checks, from each tenant's cloud create log, that every job ran
//! on a runner its own tenant's agent created.
//!
//! Owns: the per-placement configuration files, the key material of the demo tenants (under
//! the work directory, files of mode 0600) and the child processes; dropping [`Children`]
//! kills them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context as _;
use registration::Actor;
use shr_nats::security::{self, Role};
use tokio::process::{Child, Command};

/// Where the actors run; see the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Placement {
    /// Every actor in one process, for one tenant.
    #[default]
    Distributed,
    /// Central actors here, provisioner and reaper in a second process of the operator.
    Centralized,
    /// Central processes plus one agent process per tenant, each under its own identity.
    Agents,
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Placement::Distributed => "distributed",
            Placement::Centralized => "centralized",
            Placement::Agents => "agents",
        })
    }
}

/// How often the child processes sweep (`SHR_SWEEP_INTERVAL_SECS`), so a demo run sees
/// orphans found and removed.
pub const SWEEP_INTERVAL_SECS: u64 = 5;

/// The repository every tenant's registration covers in the agents placement.
pub const SHARED_REPO: &str = "shared-org/app";

/// The names of `n` demo tenants: `acme`, `globex`, `initech`, then `tenant4`, ….
pub fn tenant_names(n: usize) -> Vec<String> {
    const NAMES: [&str; 3] = ["acme", "globex", "initech"];
    (0..n)
        .map(|i| match NAMES.get(i) {
            Some(name) => (*name).to_owned(),
            None => format!("tenant{}", i + 1),
        })
        .collect()
}

/// The runs-on label that selects `tenant`'s registration.
pub fn tenant_label(tenant: &str) -> String {
    format!("{tenant}-runner")
}

/// The registration of `tenant`.
pub fn registration_name(tenant: &str) -> String {
    format!("{tenant}-app")
}

/// One tenant of the agents placement and where its secrets are.
#[derive(Debug)]
pub struct TenantSetup {
    pub name: String,
    /// Its GitHub token (`file:`), known to the central process and its own agent.
    pub pat: PathBuf,
    /// Its JIT private key (`file:`), known to its agent only.
    pub jit_private_key: PathBuf,
    pub jit_public_key: String,
    /// Its own cloud account: a simulator nobody else has the secret of.
    pub cloud: crate::clouds::DemoCloud,
}

impl TenantSetup {
    /// The file holding this tenant's cloud secret (known to its agent only).
    pub fn cloud_secret(&self) -> PathBuf {
        self.cloud.secret_path().to_owned()
    }
}

/// The identities' seeds and the server configuration: `shr-nats-config`'s output plus the
/// shipped `secure.conf` beside it, without its monitoring port (so runs can overlap) and
/// store directory (the server refuses one in both the file and the command line); the
/// address, port and store directory come from the command line.
pub fn write_nats_security(dir: &Path, tenants: &[String]) -> anyhow::Result<PathBuf> {
    security::generate(dir, tenants).context("generating the NATS identities")?;
    let shipped = include_str!("../../nats/conf/secure.conf");
    let conf: String = shipped
        .lines()
        .filter(|line| {
            let line = line.trim_start();
            !(line.starts_with("http:") || line.starts_with("store_dir:"))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let path = dir.join("secure.conf");
    std::fs::write(&path, conf).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The `[tenants.*]` sections and registrations of the agents placement. `agent` names the
/// one tenant an agent's file is for (its secrets included, nobody else's); `None` writes
/// the central file: every tenant, public keys only, and cloud sections whose secrets point
/// at a file that does not exist (the central processes never resolve them).
pub fn tenants_toml(
    tenants: &[TenantSetup],
    agent: Option<&str>,
    api_url: &str,
    no_secret: &Path,
    detection: &str,
    poll_secs: u64,
) -> String {
    let mut out = String::new();
    for t in tenants.iter().filter(|t| agent.is_none_or(|a| a == t.name)) {
        let name = &t.name;
        out.push_str(&format!(
            "[tenants.{name}]\ncharge_labels = [\"{name}-team\"]\njit_public_key = \"{}\"\n",
            t.jit_public_key
        ));
        if agent.is_some() {
            out.push_str(&format!(
                "jit_private_key = \"file:{}\"\n",
                t.jit_private_key.display()
            ));
        }
        out.push_str(&format!(
            "\n[tenants.{name}.defaults]\nprovider = \"{}\"\ncpu = 2\nmemory = 2\n\n",
            t.cloud.kind()
        ));
        let mut section = t.cloud.provider_toml(name);
        if agent.is_none() {
            section = section
                .lines()
                .map(|line| match line.split_once(" = \"file:") {
                    Some((field, _)) => {
                        format!("{field} = \"file:{}\"\n", no_secret.join(name).display())
                    }
                    None => format!("{line}\n"),
                })
                .collect();
        }
        out.push_str(&section);
        out.push_str(&format!(
            r#"
[[registrations]]
name = "{registration}"
tenant = "{name}"
scope = "repo"
url = "https://github.com/{SHARED_REPO}"
api_url = "{api_url}"
auth = {{ pat = "file:{pat}" }}
labels = ["{label}"]
detection = "{detection}"
{poll}jit_per_minute = 6000

[registrations.limits]
max_cpu = 4
max_memory = 8
max_attempts = 5

"#,
            registration = registration_name(name),
            pat = t.pat.display(),
            label = tenant_label(name),
            poll = if detection == "webhook" {
                String::new()
            } else {
                format!("poll_interval_secs = {poll_secs}\n")
            },
        ));
    }
    out
}

/// The `[controller]` section of one process.
pub fn controller_toml(
    controller_id: &str,
    nats_url: &str,
    work_dir: &Path,
    actors: &[Actor],
    tenant: Option<&str>,
    seed: &Path,
) -> String {
    let actors: Vec<String> = actors.iter().map(|a| format!("\"{}\"", a.name())).collect();
    let tenants = tenant.map_or(String::new(), |t| format!("tenants = [\"{t}\"]\n"));
    // A cluster (comma-separated URLs): the first node as `nats_url`, the others as
    // `nats_servers`, state on up to 3 replicas.
    let mut urls = nats_url.split(',');
    let first = urls.next().unwrap_or_default();
    let others: Vec<String> = urls.map(|u| format!("\"{u}\"")).collect();
    let cluster = if others.is_empty() {
        String::new()
    } else {
        format!(
            "nats_servers = [{}]\nnats_replicas = {}\n",
            others.join(", "),
            (others.len() + 1).min(3)
        )
    };
    format!(
        "# Generated by the lab (`shr-lab demo --placement agents`).\n[controller]\n\
         id = \"{controller_id}\"\nnats_url = \"{first}\"\n{cluster}work_dir = \"{}\"\n\
         actors = [{}]\n{tenants}nats_nkey_seed = \"file:{}\"\n\n",
        work_dir.display(),
        actors.join(", "),
        seed.display()
    )
}

/// The configuration files of the agents placement's processes: `webhook.toml`,
/// `central.toml` and `agent-<tenant>.toml` in `dir`. Returns (process name, file).
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
pub fn write_agents_configs(
    dir: &Path,
    work_dir: &Path,
    controller_id: &str,
    nats_url: &str,
    keys: &Path,
    webhook_toml: &str,
    tenants: &[TenantSetup],
    api_url: &str,
    detection: &str,
    poll_secs: u64,
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    std::fs::create_dir_all(dir)?;
    let no_secret = work_dir.join("central-holds-no-cloud-secret");
    let central_tenants = tenants_toml(tenants, None, api_url, &no_secret, detection, poll_secs);
    let mut files = Vec::new();
    let mut write = |name: String, text: String| -> anyhow::Result<()> {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        files.push((name, path));
        Ok(())
    };
    let controller = |actors: &[Actor], tenant: Option<&str>, role: &Role, wd: PathBuf| {
        controller_toml(
            controller_id,
            nats_url,
            &wd,
            actors,
            tenant,
            &security::seed_path(keys, role),
        )
    };
    write(
        "webhook".into(),
        controller(
            &[Actor::Webhook],
            None,
            &Role::Webhook,
            work_dir.join("webhook"),
        ) + webhook_toml
            + &central_tenants,
    )?;
    write(
        "central".into(),
        controller(
            &[Actor::Poller, Actor::Scheduler],
            None,
            &Role::Central,
            work_dir.join("central"),
        ) + &central_tenants,
    )?;
    for t in tenants {
        let role = Role::Agent(t.name.clone());
        let text = controller(
            &[Actor::Provisioner, Actor::Reaper],
            Some(&t.name),
            &role,
            work_dir.join("agents").join(&t.name),
        ) + &tenants_toml(
            tenants,
            Some(&t.name),
            api_url,
            &no_secret,
            detection,
            poll_secs,
        );
        write(format!("agent-{}", t.name), text)?;
    }
    Ok(files)
}

/// `shr run --config <file>` children, logging to `<logs>/<name>.log` and sweeping every
/// [`SWEEP_INTERVAL_SECS`]; killed on drop.
#[derive(Debug, Default)]
pub struct Children {
    children: Vec<(String, PathBuf, Child)>,
}

impl Children {
    /// Starts `shr run --config config` as `name`.
    pub fn spawn(
        &mut self,
        bin: &Path,
        name: &str,
        config: &Path,
        logs: &Path,
    ) -> anyhow::Result<()> {
        std::fs::create_dir_all(logs)?;
        let log_path = logs.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let err = log.try_clone()?;
        let level = std::env::var("SHR_LOG").unwrap_or_else(|_| "info".into());
        let child = Command::new(bin)
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("SHR_LOG", level)
            .env("SHR_SWEEP_INTERVAL_SECS", SWEEP_INTERVAL_SECS.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name} ({})", bin.display()))?;
        self.children.push((name.to_owned(), log_path, child));
        Ok(())
    }

    /// The children that have exited, with their status and log file.
    pub fn exited(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, log, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                out.push(format!("{name} exited ({status}); see {}", log.display()));
            }
        }
        out
    }

    /// The process names, in start order.
    pub fn names(&self) -> Vec<String> {
        self.children.iter().map(|(n, _, _)| n.clone()).collect()
    }

    /// Stops every child (`SIGTERM`, then `SIGKILL` after `grace`) and waits for it.
    pub async fn stop(&mut self, grace: std::time::Duration) {
        for (_, _, child) in &mut self.children {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        for (_, _, child) in &mut self.children {
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
        self.children.clear();
    }
}

/// What [`tenant_creates`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TenantCreates {
    /// Jobs whose runner is in their own tenant's create log.
    pub own: usize,
    /// Jobs checked (those that ran on a runner).
    pub checked: usize,
    /// Each violation: a job that ran on a runner its tenant did not create, or a create
    /// in a tenant's account for another tenant's runner.
    pub violations: Vec<String>,
}

impl std::fmt::Display for TenantCreates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tenancy: jobs_checked={} created_by_own_agent={} violations={}",
            self.checked,
            self.own,
            self.violations.len()
        )
    }
}

/// Checks each job against the create logs: the runner a job ran on (the GitHub
/// simulator's record) must be in the create log of the job's tenant's cloud, and every
/// name in a tenant's create log must be one of that tenant's runners (`shr-<tenant>-…`).
/// `job_tenant` maps job ids to tenants; `launched` maps tenants to their cloud's create log;
/// `ran_on` maps job ids to the runner the job ran on.
pub fn tenant_creates(
    job_tenant: &BTreeMap<u64, String>,
    launched: &BTreeMap<String, Vec<String>>,
    ran_on: &BTreeMap<u64, String>,
) -> TenantCreates {
    let mut report = TenantCreates::default();
    for (tenant, names) in launched {
        let prefix = format!("shr-{tenant}-");
        for name in names.iter().filter(|n| !n.starts_with(&prefix)) {
            report
                .violations
                .push(format!("{tenant}'s cloud created {name}"));
        }
    }
    for (job, tenant) in job_tenant {
        let Some(runner) = ran_on.get(job) else {
            continue;
        };
        report.checked += 1;
        let own = launched
            .get(tenant)
            .is_some_and(|names| names.iter().any(|n| n == runner));
        if own {
            report.own += 1;
        } else {
            report.violations.push(format!(
                "job {job} of {tenant} ran on {runner}, not created in {tenant}'s account"
            ));
        }
    }
    report
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use super::*;

    #[test]
    fn a_job_on_another_tenants_runner_or_a_foreign_create_is_a_violation() {
        let jobs = BTreeMap::from([(1, "a".to_owned()), (2, "b".to_owned())]);
        let ran = BTreeMap::from([(1, "shr-a-1-1".to_owned()), (2, "shr-b-2-1".to_owned())]);
        let good = BTreeMap::from([
            ("a".to_owned(), vec!["shr-a-1-1".to_owned()]),
            ("b".to_owned(), vec!["shr-b-2-1".to_owned()]),
        ]);
        let report = tenant_creates(&jobs, &good, &ran);
        assert_eq!((report.checked, report.own), (2, 2));
        assert!(report.violations.is_empty());
        // b's runner made in a's account.
        let bad = BTreeMap::from([(
            "a".to_owned(),
            vec!["shr-a-1-1".to_owned(), "shr-b-2-1".to_owned()],
        )]);
        let report = tenant_creates(&jobs, &bad, &ran);
        assert_eq!(report.own, 1);
        assert_eq!(report.violations.len(), 2, "{:?}", report.violations);
    }

    #[test]
    fn tenants_are_named_and_labelled_apart() {
        let names = tenant_names(4);
        assert_eq!(names, ["acme", "globex", "initech", "tenant4"]);
        assert_eq!(tenant_label("acme"), "acme-runner");
    }
}
