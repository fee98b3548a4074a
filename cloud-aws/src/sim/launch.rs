//! Running a task: what the provider's entrypoint would do in the official runner image.
//!
//! The command must be `sh -c <script>` where the script reads `$SHR_JIT_SECRET_ID`, exports
//! the fetched value as `ACTIONS_RUNNER_INPUT_JITCONFIG` and ends by exec-ing
//! `/home/runner/run.sh`; anything else exits at once without starting a runner. The secret is
//! read as the task role would: it succeeds once the secret carries the reader tag naming
//! `{role id}:{task id}` and the task runs under the simulated task role; until then it is
//! retried, for [`super::SimConfig::secret_wait`], and then the task stops with exit 70.
//! The child gets the container's env plus the JIT config, and only the configured args.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret as _;
use tokio::sync::oneshot;

use super::Shared;
use crate::entrypoint;
use crate::provider::READER_TAG;

/// How often the simulated entrypoint retries reading its secret.
const SECRET_POLL: Duration = Duration::from_millis(50);

/// Whether `command` is an entrypoint that would start `run.sh` with the JIT config from
/// the secret named by `SHR_JIT_SECRET_ID`, without the value on any command line.
pub fn starts_runner(command: &[String]) -> bool {
    let [sh, c, script] = command else {
        return false;
    };
    let exports = format!("export {}=", entrypoint::JIT_ENV);
    sh == "sh"
        && c == "-c"
        && script.contains(&format!("${{{}}}", entrypoint::SECRET_ENV))
        && script.contains(&exports)
        && script
            .trim_end()
            .ends_with(&format!("exec {}", entrypoint::RUN_SH))
        && !script.contains("--jitconfig")
}

pub(super) fn start(shared: Arc<Shared>, arn: String, generation: u64, role: Option<String>) {
    tokio::spawn(async move {
        let update = |f: &dyn Fn(&mut super::Task)| {
            let mut inner = shared.lock();
            match inner.tasks.get_mut(&arn) {
                Some(t) if t.generation == generation && t.inst.desired_status != "STOPPED" => {
                    f(t);
                    true
                }
                _ => false,
            }
        };
        let stop = |code: i32, reason: &str| {
            update(&|t| {
                t.inst.last_status = "STOPPED".into();
                t.inst.desired_status = "STOPPED".into();
                t.inst.exit_code = Some(code);
                t.inst.stop_code = Some("EssentialContainerExited".into());
                t.inst.stopped_reason = Some(reason.to_owned());
                t.inst.pid = None;
                t.kill = None;
            })
        };
        let Some((task_id, overrides)) = shared
            .lock()
            .tasks
            .get(&arn)
            .map(|t| (t.inst.id.clone(), t.inst.overrides.clone()))
        else {
            return;
        };
        update(&|t| t.inst.last_status = "PENDING".into());
        let container = overrides["containerOverrides"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "runner"))
            .cloned()
            .unwrap_or_default();
        let command: Vec<String> = container["command"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        let env: Vec<(String, String)> = container["environment"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some((
                    e["name"].as_str()?.to_owned(),
                    e["value"].as_str()?.to_owned(),
                ))
            })
            .collect();
        if !starts_runner(&command) {
            shared.lock().exited_without_runner += 1;
            stop(0, "Essential container in task exited");
            return;
        }
        let secret_id = env
            .iter()
            .find(|(k, _)| k == entrypoint::SECRET_ENV)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let reader = format!("{}:{task_id}", shared.cfg.task_role_id);
        let under_task_role = role.as_deref() == Some(shared.cfg.task_role_arn.as_str());
        let deadline = Instant::now() + shared.cfg.secret_wait;
        let value = loop {
            let found = shared
                .lock()
                .secrets
                .values()
                .find(|s| s.arn == secret_id || s.name == secret_id)
                .filter(|s| under_task_role && s.tags.get(READER_TAG) == Some(&reader))
                .map(|s| s.value.clone());
            if let Some(v) = found {
                break v;
            }
            if Instant::now() >= deadline {
                shared.lock().exited_without_runner += 1;
                stop(
                    entrypoint::EXIT_NO_SECRET,
                    "Essential container in task exited",
                );
                return;
            }
            // The script's own retry loop, in simulated time.
            tokio::time::sleep(SECRET_POLL).await;
        };
        let Some(launch) = shared.cfg.launch.clone() else {
            update(&|t| t.inst.last_status = "RUNNING".into());
            return;
        };
        let spawned = tokio::process::Command::new(&launch.program)
            .args(&launch.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(
                env.iter()
                    .filter(|(k, _)| k != entrypoint::SECRET_ENV)
                    .cloned(),
            )
            .env(entrypoint::JIT_ENV, value.expose_secret())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                tracing::warn!(program = %launch.program.display(), error = %e, "sim launch failed");
                stop(127, "CannotStartContainerError");
                return;
            }
        };
        let (tx, rx) = oneshot::channel();
        let pid = child.id();
        let tx = std::sync::Mutex::new(Some(tx));
        let alive = update(&|t| {
            t.inst.last_status = "RUNNING".into();
            t.inst.pid = pid;
            t.kill = tx.lock().ok().and_then(|mut s| s.take());
        });
        if !alive {
            let _ = child.kill().await;
            return;
        }
        shared.lock().launched.push(task_id.clone());
        tokio::select! {
            status = child.wait() => {
                let code = status.ok().and_then(|s| s.code()).unwrap_or(-1);
                stop(code, "Essential container in task exited");
            }
            _ = rx => {
                let _ = child.kill().await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_entrypoint_shape_starts_a_runner() {
        assert!(starts_runner(&entrypoint::command()));
        let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(!starts_runner(&s(&[
            "/home/runner/run.sh",
            "--jitconfig",
            "x"
        ])));
        assert!(!starts_runner(&s(&[
            "sh",
            "-c",
            "exec /home/runner/run.sh"
        ])));
        let leaky = entrypoint::SCRIPT.replace(
            "exec /home/runner/run.sh",
            "exec /home/runner/run.sh --jitconfig \"$value\"",
        );
        assert!(!starts_runner(&s(&["sh", "-c", &leaky])));
    }
}
