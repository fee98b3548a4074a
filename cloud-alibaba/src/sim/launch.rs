//! Runs a simulated container group through the image model
//! ([`simulators::image::ImageModel`]): the first container's image, `Command.N`, `Arg.N`
//! and env, with each `ConfigFileVolume` file written at its mount path, run by a real `sh`
//! against a fake `run.sh` that starts the configured runner program. The group's status
//! follows the process; a group whose process ended without starting a runner is counted
//! ([`super::SimHandle::exited_without_runner`]).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use simulators::image::{ContainerRun, ImageModel};
use tokio::sync::oneshot;

use super::{GroupStatus, Shared, SimGroup};

pub(super) async fn run(shared: Arc<Shared>, group: SimGroup, killed: oneshot::Receiver<()>) {
    let Some(launch) = shared.config.launch.clone() else {
        shared.set_status(&group.id, GroupStatus::Running);
        return;
    };
    let model = ImageModel::new(launch.program, launch.args);
    let started = container(&group).and_then(|run| {
        model
            .start(&run)
            .map_err(|e| std::io::Error::other(e.to_string()))
    });
    let status = match started {
        Ok(mut started) => {
            shared.state().launched.push(group.name.clone());
            shared.set_status(&group.id, GroupStatus::Running);
            let deadline = group
                .fields
                .get("ActiveDeadlineSeconds")
                .and_then(|s| s.parse::<u64>().ok())
                .filter(|s| *s > 0)
                .map_or(Duration::MAX, Duration::from_secs);
            tokio::select! {
                exit = started.child.wait() => {
                    if !started.runner_started() {
                        shared.state().exited_without_runner += 1;
                        tracing::warn!(group = %group.id, "ECI simulator: the container exited without starting a runner");
                    }
                    match exit {
                        Ok(exit) if exit.success() => GroupStatus::Succeeded,
                        _ => GroupStatus::Failed,
                    }
                },
                _ = killed => {
                    let _ = started.child.kill().await;
                    return;
                }
                () = tokio::time::sleep(deadline) => {
                    let _ = started.child.kill().await;
                    GroupStatus::Failed
                }
            }
        }
        Err(error) => {
            tracing::warn!(group = %group.id, error = %error, "ECI simulator could not start the container");
            shared.state().exited_without_runner += 1;
            GroupStatus::Failed
        }
    };
    shared.set_status(&group.id, status);
}

/// The first container of `group` as the platform runs it.
fn container(group: &SimGroup) -> std::io::Result<ContainerRun> {
    let fields = &group.fields;
    let list = |prefix: &str| -> Vec<String> {
        (1..)
            .map_while(|m| fields.get(&format!("{prefix}.{m}")).map(str::to_owned))
            .collect()
    };
    let mut run = ContainerRun {
        image: fields
            .get("Container.1.Image")
            .unwrap_or_default()
            .to_owned(),
        command: list("Container.1.Command"),
        args: list("Container.1.Arg"),
        ..ContainerRun::default()
    };
    for m in 1.. {
        let Some(key) = fields.get(&format!("Container.1.EnvironmentVar.{m}.Key")) else {
            break;
        };
        let value = fields
            .get(&format!("Container.1.EnvironmentVar.{m}.Value"))
            .unwrap_or_default();
        run.env.push((key.to_owned(), value.to_owned()));
    }
    for n in 1.. {
        let Some(vtype) = fields.get(&format!("Volume.{n}.Type")) else {
            break;
        };
        if vtype != "ConfigFileVolume" {
            continue;
        }
        let name = fields.get(&format!("Volume.{n}.Name")).unwrap_or_default();
        let mount = (1..)
            .map_while(|m| {
                let at = |k: &str| fields.get(&format!("Container.1.VolumeMount.{m}.{k}"));
                at("Name").map(|n| (n.to_owned(), at("MountPath").unwrap_or_default()))
            })
            .find(|(n, _)| n == name)
            .map(|(_, path)| path.to_owned());
        let Some(mount) = mount else { continue };
        let prefix = format!("Volume.{n}.ConfigFileVolume.ConfigFileToPath");
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
            let file = format!(
                "{}/{}",
                mount.trim_end_matches('/'),
                path.trim_start_matches('/')
            );
            run.files.push((file, bytes));
        }
    }
    Ok(run)
}
