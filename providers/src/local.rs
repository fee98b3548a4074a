//! The local process provider: each runner is a child process on this host.
//!
//! It starts the program it is given (an `actions/runner` `run.sh`, or in the lab the fake
//! runner `shr-lab sim runner`) with the JIT config in the child's environment as
//! `ACTIONS_RUNNER_INPUT_JITCONFIG`, never on its command line.
//!
//! # Guarantees
//! - Crash safe: each instance is a small JSON file under `<state_dir>/instances/`, written
//!   before the create returns, holding the pid, its start time and our tags. A restarted
//!   provisioner or reaper sees and deletes what an earlier process started.
//! - Idempotent create by runner name: an existing state file with a live process is returned.
//! - Delete of a missing instance is success. A recycled pid is never killed: the process
//!   start time must match the recorded one.
//! - `get`, `list` and `delete` see only instances carrying this controller's tag.
//!
//! # Caveats
//! Linux only (reads `/proc`). For development and tests, not for production isolation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use bus_schema::{ErrorKind, ProviderKind};
use serde::{Deserialize, Serialize};

use crate::{Capabilities, CreateRequest, Instance, InstanceStatus, Provider, ProviderError, tags};

mod settings;

pub use settings::{LocalSettings, capabilities};

/// The environment variable the runner reads its JIT config from.
pub const JITCONFIG_ENV: &str = "ACTIONS_RUNNER_INPUT_JITCONFIG";

/// Configuration of the local provider.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub controller_id: String,
    /// The program started per runner, and its arguments.
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Where instance state files and runner logs live.
    pub state_dir: PathBuf,
}

/// Runs each runner as a child process.
#[derive(Debug)]
pub struct LocalProvider {
    config: LocalConfig,
}

#[derive(Debug, Serialize, Deserialize)]
struct InstanceFile {
    pid: u32,
    /// Start time of the process in clock ticks since boot (`/proc/<pid>/stat` field 22).
    start_ticks: u64,
    tags: BTreeMap<String, String>,
}

impl LocalProvider {
    pub fn new(config: LocalConfig) -> Result<Self, ProviderError> {
        std::fs::create_dir_all(config.state_dir.join("instances"))
            .and_then(|()| std::fs::create_dir_all(config.state_dir.join("logs")))
            .map_err(|e| io_err("new", ErrorKind::Permanent, "state dir", e))?;
        Ok(Self { config })
    }

    fn state_path(&self, runner_name: &str) -> Result<PathBuf, ProviderError> {
        let safe = !runner_name.is_empty()
            && runner_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !safe {
            return Err(err(
                "create",
                ErrorKind::Permanent,
                format!("invalid runner name `{runner_name}`"),
            ));
        }
        Ok(self
            .config
            .state_dir
            .join("instances")
            .join(format!("{runner_name}.json")))
    }

    fn read_instance(path: &Path) -> Option<(String, InstanceFile)> {
        let name = path.file_stem()?.to_str()?.to_owned();
        let text = std::fs::read_to_string(path).ok()?;
        Some((name, serde_json::from_str(&text).ok()?))
    }

    /// Whether `file` carries this controller's tag.
    fn ours(&self, file: &InstanceFile) -> bool {
        file.tags.get(tags::CONTROLLER) == Some(&self.config.controller_id)
    }

    fn to_instance(name: String, file: &InstanceFile) -> Instance {
        let status = match proc_state(file.pid, file.start_ticks) {
            ProcState::Alive => InstanceStatus::Running,
            ProcState::Gone => InstanceStatus::Stopped,
        };
        Instance {
            id: format!("local-{}", file.pid),
            runner_name: name,
            status,
            tags: file.tags.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Provider for LocalProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Local
    }

    async fn create(&self, request: &CreateRequest) -> Result<Instance, ProviderError> {
        let path = self.state_path(&request.runner_name)?;
        if let Some((name, file)) = Self::read_instance(&path) {
            return Ok(Self::to_instance(name, &file));
        }
        let log_path = self
            .config
            .state_dir
            .join("logs")
            .join(format!("{}.log", request.runner_name));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| io_err("create", ErrorKind::Transient, "runner log", e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| io_err("create", ErrorKind::Transient, "runner log", e))?;
        let mut child = tokio::process::Command::new(&self.config.program)
            .args(&self.config.args)
            .env(JITCONFIG_ENV, request.jit_config.expose())
            .env("SHR_RUNNER_NAME", &request.runner_name)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| {
                io_err(
                    "create",
                    ErrorKind::Permanent,
                    format!("starting {}", self.config.program.display()),
                    e,
                )
            })?;
        let pid = child
            .id()
            .ok_or_else(|| err("create", ErrorKind::Transient, "child exited at once"))?;
        let file = InstanceFile {
            pid,
            start_ticks: start_ticks(pid).unwrap_or(0),
            tags: request.tags(),
        };
        let json = serde_json::to_vec(&file).map_err(|e| {
            ProviderError::new(ProviderKind::Local, "create", ErrorKind::Permanent, e)
        })?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| io_err("create", ErrorKind::Transient, "state file", e))?;
        // One line per process started: lets the demo prove no runner was started twice.
        let mut spawn_log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.config.state_dir.join("created.log"))
            .map_err(|e| io_err("create", ErrorKind::Transient, "spawn log", e))?;
        std::io::Write::write_all(
            &mut spawn_log,
            format!("{}\n", request.runner_name).as_bytes(),
        )
        .map_err(|e| io_err("create", ErrorKind::Transient, "spawn log", e))?;
        // Reap the child when it exits so it does not linger as a zombie.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        Ok(Self::to_instance(request.runner_name.clone(), &file))
    }

    async fn delete(&self, runner_name: &str) -> Result<(), ProviderError> {
        let path = self.state_path(runner_name)?;
        // Missing, or another controller's: nothing of ours to delete.
        let Some((_, file)) = Self::read_instance(&path).filter(|(_, f)| self.ours(f)) else {
            return Ok(());
        };
        if proc_state(file.pid, file.start_ticks) == ProcState::Alive {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(file.pid).unwrap_or(i32::MAX));
            match nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => {
                    return Err(io_err("delete", ErrorKind::Transient, "kill", e.into()));
                }
            }
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("delete", ErrorKind::Transient, "state file", e)),
        }
    }

    async fn get(&self, runner_name: &str) -> Result<Option<Instance>, ProviderError> {
        let path = self.state_path(runner_name)?;
        Ok(Self::read_instance(&path)
            .filter(|(_, file)| self.ours(file))
            .map(|(name, file)| Self::to_instance(name, &file)))
    }

    async fn list(&self) -> Result<Vec<Instance>, ProviderError> {
        let dir = self.config.state_dir.join("instances");
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| io_err("list", ErrorKind::Transient, dir.display().to_string(), e))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            if let Some((name, file)) = Self::read_instance(&path)
                && self.ours(&file)
            {
                out.push(Self::to_instance(name, &file));
            }
        }
        out.sort_by(|a, b| a.runner_name.cmp(&b.runner_name));
        Ok(out)
    }

    fn capabilities(&self) -> Capabilities {
        capabilities()
    }
}

fn err(operation: &'static str, kind: ErrorKind, message: impl Into<String>) -> ProviderError {
    ProviderError::new(ProviderKind::Local, operation, kind, message.into())
}

/// A local provider failure caused by the operating system, keeping the `io::Error`.
fn io_err(
    operation: &'static str,
    kind: ErrorKind,
    what: impl Into<String>,
    source: std::io::Error,
) -> ProviderError {
    let what = what.into();
    ProviderError::new(
        ProviderKind::Local,
        operation,
        kind,
        LocalIoError { what, source },
    )
}

/// What the local provider was doing when the operating system refused.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct LocalIoError {
    /// The file, directory or program involved.
    pub what: String,
    #[source]
    pub source: std::io::Error,
}

#[derive(Debug, PartialEq, Eq)]
enum ProcState {
    Alive,
    Gone,
}

/// Field 22 of `/proc/<pid>/stat`: the process start time, which tells a recycled pid apart.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it follow the last ')'.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state), so field 22 is index 19.
    fields.get(19)?.parse().ok()
}

fn proc_state(pid: u32, expected_start: u64) -> ProcState {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return ProcState::Gone;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z" | "X")) {
        return ProcState::Gone;
    }
    match start_ticks(pid) {
        Some(t) if expected_start == 0 || t == expected_start => ProcState::Alive,
        _ => ProcState::Gone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bus_schema::{Network, RunnerSpec, Secret};

    fn request(name: &str) -> CreateRequest {
        CreateRequest {
            controller_id: "ctl".into(),
            tenant: "t".into(),
            registration: "r".into(),
            runner_name: name.into(),
            spec: RunnerSpec {
                provider: ProviderKind::Local,
                region: None,
                cpu_millis: 1000,
                memory_mib: 2048,
                image: "local".into(),
                network: Network::default(),
                disk_bucket: None,
                dind: false,
                runner_group_id: 1,
                labels: vec!["serverless-hosted-runner".into()],
                charge_labels: vec![],
                max_runtime_secs: 60,
            },
            jit_config: Secret::new("SECRET-JIT"),
        }
    }

    fn provider(dir: &Path, script: &str) -> LocalProvider {
        provider_of(dir, script, "ctl")
    }

    fn provider_of(dir: &Path, script: &str, controller_id: &str) -> LocalProvider {
        LocalProvider::new(LocalConfig {
            controller_id: controller_id.into(),
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            state_dir: dir.to_path_buf(),
        })
        .unwrap()
    }

    async fn wait_for_file(path: &Path) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Ok(text) = std::fs::read_to_string(path)
                && !text.is_empty()
            {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} never written",
                path.display()
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn create_is_idempotent_passes_jit_in_env_and_delete_kills() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("seen");
        let script = format!(
            "echo \"$ACTIONS_RUNNER_INPUT_JITCONFIG $0 $*\" > {}; exec sleep 30",
            out.display()
        );
        let p = provider(dir.path(), &script);
        let first = p.create(&request("shr-t-1-1")).await.unwrap();
        let second = p.create(&request("shr-t-1-1")).await.unwrap();
        assert_eq!(
            first.id, second.id,
            "second create must return the same instance"
        );
        let seen = wait_for_file(&out).await;
        assert!(
            seen.starts_with("SECRET-JIT"),
            "JIT config reaches the env: {seen}"
        );
        assert_eq!(
            seen.matches("SECRET-JIT").count(),
            1,
            "and not argv: {seen}"
        );

        let listed = p.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].tags.get(tags::RUNNER).unwrap(), "shr-t-1-1");
        assert_eq!(listed[0].status, InstanceStatus::Running);

        p.delete("shr-t-1-1").await.unwrap();
        assert!(p.get("shr-t-1-1").await.unwrap().is_none());
        assert!(p.list().await.unwrap().is_empty());
        // Deleting again, or something never created, is success.
        p.delete("shr-t-1-1").await.unwrap();
        p.delete("shr-t-9-9").await.unwrap();
    }

    #[tokio::test]
    async fn a_restarted_provider_still_sees_and_deletes_earlier_instances() {
        let dir = tempfile::tempdir().unwrap();
        let first = provider(dir.path(), "exec sleep 30");
        let inst = first.create(&request("shr-t-2-1")).await.unwrap();
        drop(first);
        let second = provider(dir.path(), "exec sleep 30");
        let listed = second.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, inst.id);
        second.delete("shr-t-2-1").await.unwrap();
        assert!(second.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn instances_of_other_controllers_are_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let p = provider(dir.path(), "exit 0");
        let mut other = request("shr-t-3-1");
        other.controller_id = "someone-else".into();
        p.create(&other).await.unwrap();
        assert!(p.list().await.unwrap().is_empty());
        assert!(p.get("shr-t-3-1").await.unwrap().is_none());
        // Deleting through this controller leaves the other's instance in place.
        p.delete("shr-t-3-1").await.unwrap();
        let theirs = provider_of(dir.path(), "exit 0", "someone-else");
        assert!(theirs.get("shr-t-3-1").await.unwrap().is_some());
    }

    #[test]
    fn names_that_could_escape_the_state_dir_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = provider(dir.path(), "exit 0");
        assert!(p.state_path("../x").is_err());
        assert!(p.state_path("").is_err());
    }
}
