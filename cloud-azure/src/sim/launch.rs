//! Starting a group's container through the image model ([`simulators::image`]), and
//! following it to its end.
//!
//! The container runs by its image with the request's `command` and env (plain and secure):
//! a real `sh` against a fake `/home/runner/run.sh` that starts the launch program. Its exit
//! sets the group's state; deleting the group kills it. A container that ends without having
//! started a runner is counted ([`super::SimHandle::exited_without_runner`]).

use std::sync::Arc;

use tokio::sync::oneshot;

use super::{GroupState, Shared};

/// Starts the group `key` (generation `generation`) in the background.
pub(super) fn start(
    shared: Arc<Shared>,
    key: (String, String),
    generation: u64,
    run: simulators::image::ContainerRun,
) {
    tokio::spawn(async move {
        let update = |f: &dyn Fn(&mut super::Group)| {
            let mut inner = shared.lock();
            match inner.groups.get_mut(&key) {
                Some(g) if g.generation == generation => {
                    f(g);
                    true
                }
                _ => false,
            }
        };
        let Some(launch) = shared.cfg.launch.clone() else {
            update(&|g| {
                g.inst.provisioning_state = "Succeeded".into();
                g.inst.state = GroupState::Running;
            });
            return;
        };
        let model = simulators::image::ImageModel::new(launch.program, launch.args);
        let (exited, exit) = oneshot::channel();
        let spawned = model.spawn(&run, move |end| {
            let _ = exited.send(end);
        });
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                tracing::warn!(error = %e, "sim launch failed");
                shared.lock().exited_without_runner += 1;
                update(&|g| {
                    g.inst.provisioning_state = "Failed".into();
                    g.inst.state = GroupState::Failed;
                });
                return;
            }
        };
        let pid = child.pid();
        let child = std::sync::Mutex::new(Some(child));
        let alive = update(&|g| {
            g.inst.provisioning_state = "Succeeded".into();
            g.inst.state = GroupState::Running;
            g.inst.pid = pid;
            g.kill = child.lock().ok().and_then(|mut c| c.take());
        });
        if !alive {
            return; // the group is gone: dropping `child` kills the process
        }
        shared.lock().launched.push(key.1.clone());
        // Dropping the group (delete) drops the child, which kills it and drops `exited`.
        if let Ok(end) = exit.await {
            if !end.runner_started {
                shared.lock().exited_without_runner += 1;
                tracing::warn!(group = %key.1, "ACI simulator: the container exited without starting a runner");
            }
            let code = end.code.unwrap_or(-1);
            update(&|g| {
                g.inst.pid = None;
                g.inst.exit_code = Some(code);
                g.inst.state = if code == 0 {
                    GroupState::Succeeded
                } else {
                    GroupState::Failed
                };
                g.kill = None;
            });
        }
    });
}
