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
        let mut started = match model.start(&run) {
            Ok(started) => started,
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
        let (tx, rx) = oneshot::channel();
        let pid = started.child.id();
        let tx = std::sync::Mutex::new(Some(tx));
        let alive = update(&|g| {
            g.inst.provisioning_state = "Succeeded".into();
            g.inst.state = GroupState::Running;
            g.inst.pid = pid;
            g.kill = tx.lock().ok().and_then(|mut t| t.take());
        });
        if !alive {
            let _ = started.child.kill().await;
            return;
        }
        shared.lock().launched.push(key.1.clone());
        tokio::select! {
            status = started.child.wait() => {
                if !started.runner_started() {
                    shared.lock().exited_without_runner += 1;
                    tracing::warn!(group = %key.1, "ACI simulator: the container exited without starting a runner");
                }
                let code = status.ok().and_then(|s| s.code()).unwrap_or(-1);
                update(&|g| {
                    g.inst.pid = None;
                    g.inst.exit_code = Some(code);
                    g.inst.state = if code == 0 { GroupState::Succeeded } else { GroupState::Failed };
                    g.kill = None;
                });
            }
            _ = rx => {
                let _ = started.child.kill().await;
            }
        }
    });
}
