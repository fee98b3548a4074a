//! Runs a simulated container group: starts the configured program the way the container
//! would see its inputs, and moves the group's status with the child.
//!
//! The first container's `ConfigFileVolume` files are written into a private temp dir and
//! the program gets `--jitconfig-file <dir>/<path>` plus the container's env vars, with
//! `ACTIONS_RUNNER_INPUT_JITCONFIG_FILE` pointed at the written file. The content is never
//! an argument.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use simulators::cloud::spawn_runner;
use tokio::sync::oneshot;

use super::{GroupStatus, Shared, SimGroup};
use crate::provider::JITCONFIG_FILE_ENV;

pub(super) async fn run(shared: Arc<Shared>, group: SimGroup, killed: oneshot::Receiver<()>) {
    let Some(launch) = shared.config.launch.clone() else {
        shared.set_status(&group.id, GroupStatus::Running);
        return;
    };
    let (exited, exit) = oneshot::channel();
    let started = prepare(&group).and_then(|(dir, extra_args, env)| {
        let child = spawn_runner(&launch, &extra_args, env, move |code| {
            let _ = exited.send(code);
        })?;
        Ok((dir, child))
    });
    let status = match started {
        Ok((dir, child)) => {
            shared.state().launched.push(group.name.clone());
            shared.set_status(&group.id, GroupStatus::Running);
            let deadline = group
                .fields
                .get("ActiveDeadlineSeconds")
                .and_then(|s| s.parse::<u64>().ok())
                .filter(|s| *s > 0)
                .map_or(Duration::MAX, Duration::from_secs);
            let status = tokio::select! {
                code = exit => match code {
                    Ok(Some(0)) => GroupStatus::Succeeded,
                    _ => GroupStatus::Failed,
                },
                _ = killed => return, // dropping `child` kills the process
                () = tokio::time::sleep(deadline) => GroupStatus::Failed,
            };
            drop(child);
            drop(dir);
            status
        }
        Err(error) => {
            tracing::warn!(group = %group.id, error = %error, "ECI simulator could not start the runner");
            GroupStatus::Failed
        }
    };
    shared.set_status(&group.id, status);
}

/// The container's inputs: the `ConfigFileVolume` files written into a private temp dir,
/// the extra args (`--jitconfig-file <path>`) and the env vars.
type Inputs = (tempfile::TempDir, Vec<OsString>, Vec<(String, String)>);

fn prepare(group: &SimGroup) -> std::io::Result<Inputs> {
    let fields = &group.fields;
    let dir = tempfile::Builder::new().prefix("eci-sim-").tempdir()?;
    let mut first_file = None;
    for n in 1.. {
        let Some(vtype) = fields.get(&format!("Volume.{n}.Type")) else {
            break;
        };
        if vtype != "ConfigFileVolume" {
            continue;
        }
        let prefix = format!("Volume.{n}.ConfigFileVolume.ConfigFileToPath");
        let volume_dir = dir.path().join(format!("volume-{n}"));
        std::fs::create_dir_all(&volume_dir)?;
        for m in 1.. {
            let (Some(path), Some(content)) = (
                fields.get(&format!("{prefix}.{m}.Path")),
                fields.get(&format!("{prefix}.{m}.Content")),
            ) else {
                break;
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(content)
                .map_err(std::io::Error::other)?;
            let file = volume_dir.join(path.trim_start_matches('/'));
            write_private(&file, &bytes)?;
            first_file.get_or_insert(file);
        }
    }

    let mut env = Vec::new();
    for m in 1.. {
        let Some(key) = fields.get(&format!("Container.1.EnvironmentVar.{m}.Key")) else {
            break;
        };
        let value = fields
            .get(&format!("Container.1.EnvironmentVar.{m}.Value"))
            .unwrap_or_default();
        env.push((key.to_owned(), value.to_owned()));
    }
    let mut extra_args = Vec::new();
    if let Some(file) = first_file {
        extra_args.push(OsString::from("--jitconfig-file"));
        extra_args.push(file.clone().into_os_string());
        env.push((
            JITCONFIG_FILE_ENV.to_owned(),
            file.to_string_lossy().into_owned(),
        ));
    }
    Ok((dir, extra_args, env))
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}
