//! Starting a group's container as a local child process, and following it to its end.
//!
//! The child gets the container's environment variables (plain and secure) in its env and
//! only the configured args on its command line. Its exit sets the group's state; deleting the
//! group kills it.

use std::process::Stdio;
use std::sync::Arc;

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
        let spawned = tokio::process::Command::new(&launch.program)
            .args(&launch.args)
            .envs(env)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
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
        let (tx, rx) = oneshot::channel();
        let pid = child.id();
        let tx = std::sync::Mutex::new(Some(tx));
        let alive = update(&|g| {
            g.inst.provisioning_state = "Succeeded".into();
            g.inst.state = GroupState::Running;
            g.inst.pid = pid;
            g.kill = tx.lock().ok().and_then(|mut t| t.take());
        });
        if !alive {
            let _ = child.kill().await;
            return;
        }
        shared.lock().launched.push(key.1.clone());
        tokio::select! {
            status = child.wait() => {
                let code = status.ok().and_then(|s| s.code()).unwrap_or(-1);
                update(&|g| {
                    g.inst.pid = None;
                    g.inst.exit_code = Some(code);
                    g.inst.state = if code == 0 { GroupState::Succeeded } else { GroupState::Failed };
                    g.kill = None;
                });
            }
            _ = rx => {
                let _ = child.kill().await;
            }
        }
    });
}
