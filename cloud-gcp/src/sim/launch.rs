//! Runner children: the process a started Cloud Run execution or Batch job runs.
//!
//! The child gets the container's environment (the JIT config included) as env vars and only
//! the configured args on its command line. Dropping the [`Child`] handle kills the process;
//! a natural exit is reported through the `on_exit` callback.

use std::process::Stdio;

use tokio::sync::oneshot;

use super::Launch;

/// A running child; dropping it kills the process.
#[derive(Debug)]
pub(crate) struct Child {
    _kill: oneshot::Sender<()>,
}

/// Starts `launch` with `env`; `on_exit(success)` runs when the child exits by itself.
pub(crate) fn spawn(
    launch: &Launch,
    env: &[(String, String)],
    on_exit: impl FnOnce(bool) + Send + 'static,
) -> std::io::Result<Child> {
    let mut child = tokio::process::Command::new(&launch.program)
        .args(&launch.args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let (kill, killed) = oneshot::channel::<()>();
    tokio::spawn(async move {
        tokio::select! {
            status = child.wait() => on_exit(status.map(|s| s.success()).unwrap_or(false)),
            _ = killed => {
                let _ = child.kill().await;
            }
        }
    });
    Ok(Child { _kill: kill })
}
