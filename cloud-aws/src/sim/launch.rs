//! Running a task: its runner container through the shared image model
//! ([`simulators::image::ImageModel`]), the same way every cloud simulator judges `img-` and
//! the container command.
//!
//! ECS's rules map onto the model's: the task definition's `entryPoint` replaces the image's
//! ENTRYPOINT (the model's `command`), and the override's `command` (else the task
//! definition's) replaces its CMD (the model's `args`). The environment is the task
//! definition's, then the override's, plus what the ECS agent adds for a task with a task
//! role: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, naming fresh per-task role credentials the
//! simulator serves at `/v2/credentials/<id>`.
//!
//! The provider's entrypoint script then really runs (a host `sh`, `curl` and `jq`, which the
//! official runner image ships): it fetches the role credentials, calls `GetSecretValue`
//! signed by curl's `--aws-sigv4` with them, and execs the model's fake `run.sh`. Around the
//! image the simulated platform provides two tools ([`simulators::image::ContainerRun::tools`]):
//! a `curl` that reaches the simulator where a task reaches the agent's link-local endpoint
//! `169.254.170.2`, and a `sleep` that waits [`super::SimConfig::secret_wait`] / 30 (2 s, as
//! the script asks, by default) so its 30 tries span `secret_wait`. The secret is readable only once
//! it carries the reader tag naming this task's session (see `api::secrets`).
//!
//! A task whose container ends without reaching `run.sh` is counted
//! ([`super::SimHandle`]'s `exited_without_runner`) and stops with its exit code.

use std::path::PathBuf;
use std::sync::Arc;

use rand::Rng as _;
use secrecy::SecretString;
use serde_json::Value;
use simulators::image::{ContainerRun, Exit, ImageModel};

use super::{Session, Shared};

/// The env var the ECS agent sets for a task with a task role.
pub const CREDENTIALS_URI_ENV: &str = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
/// The ECS agent's credential endpoint, as a task sees it.
const AGENT_ENDPOINT: &str = "http://169.254.170.2";

fn random(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

/// Fresh role credentials for `task_id`, registered with the simulator; the relative URI
/// that serves them.
fn new_session(shared: &Shared, task_id: &str, role_arn: &str) -> String {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const KEY: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let access_key_id = format!("ASIA{}", random(UPPER, 16));
    let uri_id = uuid::Uuid::new_v4().to_string();
    let session = Session {
        task_id: task_id.to_owned(),
        role_arn: role_arn.to_owned(),
        secret_access_key: SecretString::from(random(KEY, 40)),
        token: SecretString::from(random(KEY, 120)),
    };
    let mut inner = shared.lock();
    inner
        .credential_uris
        .insert(uri_id.clone(), access_key_id.clone());
    inner.sessions.insert(access_key_id, session);
    format!("/v2/credentials/{uri_id}")
}

/// The first `name` on the host's `PATH`.
fn host_program(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The platform's tools: `curl` with the agent endpoint mapped to the simulator, and a
/// shortened `sleep`.
fn tools(shared: &Shared) -> Vec<(String, String)> {
    let mut tools = Vec::new();
    if let Some(curl) = host_program("curl") {
        tools.push((
            "curl".to_owned(),
            format!(
                "#!/bin/sh\n# The task network: the ECS agent's endpoint is the simulator.\n\
                 n=$#\nwhile [ \"$n\" -gt 0 ]; do\n  a=$1; shift; n=$((n - 1))\n  \
                 case $a in {AGENT_ENDPOINT}/*) a={base}\"${{a#{AGENT_ENDPOINT}}}\" ;; esac\n  \
                 set -- \"$@\" \"$a\"\ndone\nexec {curl} \"$@\"\n",
                base = quote(&shared.base_url),
                curl = quote(&curl.to_string_lossy()),
            ),
        ));
    }
    if let Some(sleep) = host_program("sleep") {
        let secs = shared.cfg.secret_wait.as_secs_f64() / 30.0;
        tools.push((
            "sleep".to_owned(),
            format!(
                "#!/bin/sh\n# Simulated time: the entrypoint's retry pause, shortened.\nexec {} {secs:.3}\n",
                quote(&sleep.to_string_lossy())
            ),
        ));
    }
    tools
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

fn env_pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_owned(),
                e["value"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// The runner container as ECS runs it: the task definition's essential container (the
/// provider's `runner`) with the task's overrides applied.
fn container_run(
    shared: &Shared,
    task_id: &str,
    task_definition: &Value,
    overrides: &Value,
    role: Option<&str>,
) -> ContainerRun {
    let definitions = task_definition["containerDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let container = definitions
        .iter()
        .find(|c| c["essential"].as_bool().unwrap_or(true))
        .cloned()
        .unwrap_or_default();
    let name = container["name"].as_str().unwrap_or_default();
    let over = overrides["containerOverrides"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["name"].as_str() == Some(name)))
        .cloned()
        .unwrap_or_default();
    let args = if over["command"].is_array() {
        strings(&over["command"])
    } else {
        strings(&container["command"])
    };
    let mut env = env_pairs(&container["environment"]);
    for (k, v) in env_pairs(&over["environment"]) {
        env.retain(|(name, _)| *name != k);
        env.push((k, v));
    }
    if let Some(role) = role {
        env.push((
            CREDENTIALS_URI_ENV.to_owned(),
            new_session(shared, task_id, role),
        ));
    }
    ContainerRun {
        image: container["image"].as_str().unwrap_or_default().to_owned(),
        command: strings(&container["entryPoint"]),
        args,
        env,
        tools: tools(shared),
        ..ContainerRun::default()
    }
}

pub(super) fn start(shared: Arc<Shared>, arn: String, generation: u64, role: Option<String>) {
    tokio::spawn(async move {
        let live =
            |shared: &Shared| {
                shared.lock().tasks.get(&arn).is_some_and(|t| {
                    t.generation == generation && t.inst.desired_status != "STOPPED"
                })
            };
        let Some((task_id, overrides, td_arn)) = shared.lock().tasks.get(&arn).map(|t| {
            (
                t.inst.id.clone(),
                t.inst.overrides.clone(),
                t.inst.task_definition_arn.clone(),
            )
        }) else {
            return;
        };
        let task_definition = shared
            .lock()
            .task_definitions
            .iter()
            .find(|d| d.arn == td_arn)
            .map(|d| d.body.clone())
            .unwrap_or_default();
        set_status(&shared, &arn, generation, "PENDING");
        let Some(launch) = shared.cfg.launch.clone() else {
            set_status(&shared, &arn, generation, "RUNNING");
            return;
        };
        let run = container_run(
            &shared,
            &task_id,
            &task_definition,
            &overrides,
            role.as_deref(),
        );
        let model = ImageModel::new(launch.program, launch.args);
        let on_exit = {
            let (shared, arn) = (shared.clone(), arn.clone());
            move |exit: Exit| {
                if !exit.runner_started {
                    shared.lock().exited_without_runner += 1;
                    tracing::warn!(task = %arn, code = ?exit.code, "AWS simulator: the container exited without starting a runner");
                }
                stop(&shared, &arn, generation, exit.code.unwrap_or(-1));
            }
        };
        match model.spawn(&run, on_exit) {
            Ok(running) => {
                let pid = running.pid();
                let mut inner = shared.lock();
                if let Some(t) = inner.tasks.get_mut(&arn)
                    && t.generation == generation
                    && t.inst.desired_status != "STOPPED"
                {
                    t.inst.last_status = "RUNNING".into();
                    t.inst.pid = pid;
                    t.kill = Some(running);
                    inner.launched.push(task_id);
                }
                // Otherwise the task was stopped meanwhile: dropping `running` kills it.
            }
            Err(error) => {
                tracing::warn!(task = %arn, %error, "AWS simulator could not start the container");
                if live(&shared) {
                    shared.lock().exited_without_runner += 1;
                }
                stop(&shared, &arn, generation, 127);
            }
        }
    });
}

fn set_status(shared: &Shared, arn: &str, generation: u64, status: &str) {
    if let Some(t) = shared.lock().tasks.get_mut(arn)
        && t.generation == generation
        && t.inst.desired_status != "STOPPED"
    {
        t.inst.last_status = status.to_owned();
    }
}

/// The container ended by itself with `code`: the task stops, its role session ends.
fn stop(shared: &Shared, arn: &str, generation: u64, code: i32) {
    let mut inner = shared.lock();
    let task_id = match inner.tasks.get_mut(arn) {
        Some(t) if t.generation == generation && t.inst.desired_status != "STOPPED" => {
            t.inst.last_status = "STOPPED".into();
            t.inst.desired_status = "STOPPED".into();
            t.inst.exit_code = Some(code);
            t.inst.stop_code = Some("EssentialContainerExited".into());
            t.inst.stopped_reason = Some("Essential container in task exited".into());
            t.inst.pid = None;
            t.kill = None;
            t.inst.id.clone()
        }
        _ => return,
    };
    inner.sessions.retain(|_, s| s.task_id != task_id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entrypoint;
    use serde_json::json;

    #[test]
    fn ecs_command_override_replaces_cmd_and_entry_point_stays() {
        let td = json!({"containerDefinitions": [{
            "name": "runner", "image": "ghcr.io/actions/actions-runner:2.330.0",
            "essential": true, "entryPoint": ["/ep"], "command": ["default"],
            "environment": [{"name": "A", "value": "td"}, {"name": "B", "value": "td"}],
        }]});
        let overrides = json!({"containerOverrides": [{
            "name": "runner", "command": entrypoint::command(),
            "environment": [{"name": "B", "value": "override"}],
        }]});
        let shared = Shared::for_tests();
        let run = container_run(&shared, "t1", &td, &overrides, None);
        assert_eq!(run.command, ["/ep"]);
        assert_eq!(run.args, entrypoint::command());
        assert_eq!(
            run.env,
            [("A".into(), "td".into()), ("B".into(), "override".into())]
        );
        let plain = container_run(&shared, "t1", &td, &json!({}), None);
        assert_eq!(
            plain.args,
            ["default"],
            "no override: the task definition's command"
        );
        let with_role = container_run(&shared, "t2", &td, &json!({}), Some("arn:role"));
        let uri = with_role
            .env
            .iter()
            .find(|(k, _)| k == CREDENTIALS_URI_ENV)
            .map(|(_, v)| v.clone())
            .unwrap();
        assert!(uri.starts_with("/v2/credentials/"), "{uri}");
        assert_eq!(shared.lock().sessions.len(), 1);
    }
}
