//! Runner containers: the process a started Cloud Run execution or Batch job runs, through
//! the image model ([`simulators::image`]).
//!
//! The container runs by its image with the request's command, args and env (the JIT config
//! included, as an env var): a real `sh` against a fake `/home/runner/run.sh` that starts the
//! launch program. Dropping the [`Child`] handle kills the process; a natural exit is reported
//! through the `on_exit` callback with whether a runner was started.

use simulators::image::{ContainerRun, Exit, ImageError, ImageModel, Running};

use super::Launch;

/// A running container; dropping it kills the process.
#[derive(Debug)]
pub(crate) struct Child {
    _running: Running,
}

/// Starts `run` as the image model runs it with `launch` as the runner program;
/// `on_exit(exit)` runs when the process exits by itself.
pub(crate) fn spawn(
    launch: &Launch,
    run: &ContainerRun,
    on_exit: impl FnOnce(Exit) + Send + 'static,
) -> Result<Child, ImageError> {
    let model = ImageModel::new(launch.program.clone(), launch.args.clone());
    let running = model.spawn(run, on_exit)?;
    Ok(Child { _running: running })
}
