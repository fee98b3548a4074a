//! Runs a simulated container group: starts the configured program the way the container
//! would see its inputs, and moves the group's status with the child.
//!
//! The first container's `ConfigFileVolume` files are written into a private temp dir and
//! the program gets `--jitconfig-file <dir>/<path>` plus the container's env vars, with
//! `ACTIONS_RUNNER_INPUT_JITCONFIG_FILE` pointed at the written file. The content is never
//! an argument.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::sync::oneshot;

use super::{GroupStatus, Shared, SimGroup};
use crate::provider::JITCONFIG_FILE_ENV;

pub(super) async fn run(shared: Arc<Shared>, group: SimGroup, killed: oneshot::Receiver<()>) {
    let Some(launch) = shared.config.launch.clone() else {
        shared.set_status(&group.id, GroupStatus::Running);
        return;
    };
    let status = match start(&launch, &group) {
        Ok((dir, mut child)) => {
            shared.state().launched.push(group.name.clone());
            shared.set_status(&group.id, GroupStatus::Running);
            let deadline = group
                .fields
                .get("ActiveDeadlineSeconds")
                .and_then(|s| s.parse::<u64>().ok())
                .filter(|s| *s > 0)
                .map_or(Duration::MAX, Duration::from_secs);
            let status = tokio::select! {
                exit = child.wait() => match exit {
                    Ok(exit) if exit.success() => GroupStatus::Succeeded,
                    _ => GroupStatus::Failed,
                },
                _ = killed => {
                    let _ = child.kill().await;
                    return;
                }
                () = tokio::time::sleep(deadline) => {
                    let _ = child.kill().await;
                    GroupStatus::Failed
                }
            };
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

fn start(
    launch: &super::Launch,
    group: &SimGroup,
) -> std::io::Result<(tempfile::TempDir, tokio::process::Child)> {
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

    let mut command = tokio::process::Command::new(&launch.program);
    command.args(&launch.args).kill_on_drop(true);
    for m in 1.. {
        let Some(key) = fields.get(&format!("Container.1.EnvironmentVar.{m}.Key")) else {
            break;
        };
        let value = fields
            .get(&format!("Container.1.EnvironmentVar.{m}.Value"))
            .unwrap_or_default();
        command.env(key, value);
    }
    if let Some(file) = &first_file {
        command.arg("--jitconfig-file").arg(file);
        command.env(JITCONFIG_FILE_ENV, file);
    }
    let child = command.spawn()?;
    Ok((dir, child))
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}
