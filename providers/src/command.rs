//! The command a cloud container runs so the official runner image starts a runner.
//!
//! `ghcr.io/actions/actions-runner` sets no ENTRYPOINT and no CMD (it inherits its base's
//! `/bin/bash`, which exits at once without a TTY), so every cloud provider must set the
//! container command. The JIT config never appears in it: the runner reads
//! `ACTIONS_RUNNER_INPUT_JITCONFIG` from its environment (a secure or secret env var), or the
//! command copies it there from the mounted file `ACTIONS_RUNNER_INPUT_JITCONFIG_FILE` names.
//!
//! Under dind the container is privileged and the command first starts `dockerd` (the image
//! ships Docker's static binaries and lets `runner` use `sudo` without a password), waits up
//! to 60 s for its socket, then execs `run.sh`.

/// The runner's start script in the official image.
pub const RUN_SH: &str = "/home/runner/run.sh";
/// The env var a mounted JIT config file's path is given in.
pub const JITCONFIG_FILE_ENV: &str = "ACTIONS_RUNNER_INPUT_JITCONFIG_FILE";

/// Where the container finds its JIT config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JitFrom {
    /// `ACTIONS_RUNNER_INPUT_JITCONFIG` is already in the environment.
    Env,
    /// A mounted file named by [`JITCONFIG_FILE_ENV`].
    File,
}

/// The shell line that starts dockerd and waits for its socket.
const START_DOCKERD: &str = "sudo -n dockerd >/home/runner/dockerd.log 2>&1 & \
n=0; while [ ! -e /var/run/docker.sock ] && [ \"$n\" -lt 60 ]; do sleep 1; n=$((n+1)); done; ";

/// The default container command (exec form) for the official runner image.
pub fn default_runner_command(jit: JitFrom, dind: bool) -> Vec<String> {
    if jit == JitFrom::Env && !dind {
        return vec![RUN_SH.to_owned()];
    }
    let mut script = String::new();
    if dind {
        script.push_str(START_DOCKERD);
    }
    if jit == JitFrom::File {
        script.push_str(&format!(
            "export ACTIONS_RUNNER_INPUT_JITCONFIG=\"$(cat \"${JITCONFIG_FILE_ENV}\")\" && "
        ));
    }
    script.push_str("exec ");
    script.push_str(RUN_SH);
    vec!["/bin/sh".to_owned(), "-c".to_owned(), script]
}

/// The command to send: the operator's `runner_command` when set, else the default.
pub fn runner_command(configured: Option<&[String]>, jit: JitFrom, dind: bool) -> Vec<String> {
    match configured {
        Some(command) if !command.is_empty() => command.to_vec(),
        _ => default_runner_command(jit, dind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_starts_run_sh_and_dockerd_only_under_dind() {
        assert_eq!(default_runner_command(JitFrom::Env, false), [RUN_SH]);
        let file = default_runner_command(JitFrom::File, false);
        assert_eq!(file[..2], ["/bin/sh", "-c"]);
        assert!(file[2].contains("cat \"$ACTIONS_RUNNER_INPUT_JITCONFIG_FILE\""));
        assert!(file[2].ends_with("exec /home/runner/run.sh"));
        assert!(!file[2].contains("dockerd"));
        let dind = default_runner_command(JitFrom::Env, true);
        assert!(dind[2].starts_with("sudo -n dockerd"), "{}", dind[2]);
        assert!(dind[2].ends_with("exec /home/runner/run.sh"));
        let custom = vec!["/entry".to_owned()];
        assert_eq!(runner_command(Some(&custom), JitFrom::Env, true), custom);
        assert_eq!(runner_command(Some(&[]), JitFrom::Env, false), [RUN_SH]);
    }
}
