//! Starting a group's container as a local child process, and following it to its end.
//!
//! The child gets the container's environment variables (plain and secure) in its env and
//! only the configured args on its command line. Its exit sets the group's state; deleting the
//! group kills it.

use std::sync::Arc;

use simulators::cloud::spawn_runner;
use tokio::sync::oneshot;

use super::{GroupState, Shared};

/// Starts the group `key` (generation `generation`) in the background.
pub(super) fn start(
    shared: Arc<Shared>,
    key: (String, String),
    generation: u64,
    env: Vec<(String, String)>,
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
        let (exited, exit) = oneshot::channel();
        let spawned = spawn_runner(&launch, &[], env, move |code| {
            let _ = exited.send(code);
        });
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                tracing::warn!(program = %launch.program.display(), error = %e, "sim launch failed");
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
        if let Ok(code) = exit.await {
            let code = code.unwrap_or(-1);
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
