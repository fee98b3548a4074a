#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The runner image's entrypoint: it parses (`sh -n`, and shellcheck where installed), takes
//! the JIT config from the env var or the mounted file the providers use, hands it to run.sh
//! only through the environment, never prints it, cleans up its own variables, and starts
//! dockerd first when asked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use deploy::deploy_dir;

const JIT_ENV: &str = "ACTIONS_RUNNER_INPUT_JITCONFIG";
const JIT_FILE_ENV: &str = "ACTIONS_RUNNER_INPUT_JITCONFIG_FILE";

fn script() -> PathBuf {
    deploy_dir().join("runner/entrypoint.sh")
}

fn write_exec(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A sandbox: a fake run.sh that records what it got, and a bin dir for fake tools.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        write_exec(
            &dir.path().join("run.sh"),
            "#!/bin/sh\nprintf %s \"$ACTIONS_RUNNER_INPUT_JITCONFIG\" > \"$OUT/jit\"\n\
             env > \"$OUT/env\"\nprintf '%s\\n' \"$@\" > \"$OUT/args\"\nexit 7\n",
        );
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.path(name)).ok()
    }

    fn run(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let path = format!("{}:/usr/bin:/bin", self.path("bin").display());
        Command::new("sh")
            .arg(script())
            .args(args)
            .env_clear()
            .env("PATH", path)
            .env("OUT", self.dir.path())
            .env("SHR_RUNNER_RUN_SH", self.path("run.sh"))
            .env("SHR_DOCKER_SOCK", self.path("docker.sock"))
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }
}

fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn entrypoint_parses_with_sh_and_passes_shellcheck() {
    let out = Command::new("sh").arg("-n").arg(script()).output().unwrap();
    assert!(out.status.success(), "{}", printed(&out));
    match Command::new("shellcheck").arg("--version").output() {
        Ok(o) if o.status.success() => {
            let out = Command::new("shellcheck")
                .args(["--shell=sh", "--severity=style"])
                .arg(script())
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", printed(&out));
        }
        _ => eprintln!("SKIPPED: shellcheck is not installed; only `sh -n` checked the entrypoint"),
    }
}

#[test]
fn jit_config_from_the_environment_reaches_run_sh_only_through_its_environment() {
    let sandbox = Sandbox::new();
    let secret = "eyJqaXQiOiJzZWNyZXQtZnJvbS1lbnYifQ==";
    let out = sandbox.run(&[(JIT_ENV, secret), ("SHR_DIND", "0")], &["--once", "a b"]);
    // run.sh's own exit code comes back: the script exec'd it.
    assert_eq!(out.status.code(), Some(7), "{}", printed(&out));
    assert_eq!(sandbox.read("jit").as_deref(), Some(secret));
    assert_eq!(sandbox.read("args").as_deref(), Some("--once\na b\n"));
    assert!(!printed(&out).contains(secret));
}

#[test]
fn jit_config_from_a_mounted_file_is_read_and_the_file_variable_is_unset() {
    let sandbox = Sandbox::new();
    let secret = "c2VjcmV0LWZyb20tZmlsZQ==";
    let file = sandbox.path("jitconfig");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let out = sandbox.run(
        &[(JIT_FILE_ENV, file.to_str().unwrap()), ("SHR_DIND", "0")],
        &[],
    );
    assert_eq!(out.status.code(), Some(7), "{}", printed(&out));
    assert_eq!(sandbox.read("jit").as_deref(), Some(secret));
    let env = sandbox.read("env").unwrap();
    for gone in [
        JIT_FILE_ENV,
        "SHR_DIND",
        "SHR_RUNNER_RUN_SH",
        "SHR_DOCKER_SOCK",
        "RUN_SH",
    ] {
        assert!(
            !env.lines().any(|l| l.starts_with(&format!("{gone}="))),
            "{gone} left in run.sh's environment"
        );
    }
    assert!(!printed(&out).contains(secret));
}

#[test]
fn no_empty_or_unreadable_jit_config_is_refused_before_run_sh() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&[], &[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(printed(&out).contains("no JIT config"), "{}", printed(&out));

    let empty = sandbox.path("empty");
    std::fs::write(&empty, "\n").unwrap();
    let out = sandbox.run(&[(JIT_FILE_ENV, empty.to_str().unwrap())], &[]);
    assert_eq!(out.status.code(), Some(64), "{}", printed(&out));

    let missing = sandbox.path("missing");
    let out = sandbox.run(&[(JIT_FILE_ENV, missing.to_str().unwrap())], &[]);
    assert_eq!(out.status.code(), Some(66), "{}", printed(&out));

    let out = sandbox.run(&[(JIT_ENV, "x"), ("SHR_DIND", "yes please")], &[]);
    assert_eq!(out.status.code(), Some(64), "{}", printed(&out));
    assert!(sandbox.read("jit").is_none(), "run.sh must not have run");
}

#[test]
fn dind_starts_dockerd_and_waits_for_its_socket_before_run_sh() {
    let sandbox = Sandbox::new();
    // sudo runs its command (dropping -n); dockerd records that it ran, then makes the socket.
    write_exec(
        &sandbox.path("bin/sudo"),
        "#!/bin/sh\n[ \"$1\" = -n ] && shift\nexec \"$@\"\n",
    );
    write_exec(
        &sandbox.path("bin/dockerd"),
        "#!/bin/sh\n[ -e \"$OUT/jit\" ] && echo late > \"$OUT/dockerd\" || echo early > \"$OUT/dockerd\"\n\
         touch \"$SHR_DOCKER_SOCK\"\n",
    );
    let out = sandbox.run(&[(JIT_ENV, "x"), ("SHR_DIND", "1")], &[]);
    assert_eq!(out.status.code(), Some(7), "{}", printed(&out));
    assert_eq!(sandbox.read("dockerd").as_deref(), Some("early\n"));
    assert!(sandbox.path("docker.sock").exists());
}

#[test]
fn dind_that_never_comes_up_fails_without_starting_the_runner() {
    let sandbox = Sandbox::new();
    write_exec(
        &sandbox.path("bin/sudo"),
        "#!/bin/sh\n[ \"$1\" = -n ] && shift\nexec \"$@\"\n",
    );
    write_exec(&sandbox.path("bin/dockerd"), "#!/bin/sh\nexit 1\n");
    let out = sandbox.run(
        &[
            (JIT_ENV, "x"),
            ("SHR_DIND", "1"),
            ("SHR_DOCKERD_WAIT_SECS", "1"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(69), "{}", printed(&out));
    assert!(sandbox.read("jit").is_none());
}

/// Whether this process's bounding set holds CAP_SYS_ADMIN (bit 21), read independently of
/// the script.
fn may_admin() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    u64::from_str_radix(hex, 16).unwrap() & (1 << 21) != 0
}

#[test]
fn auto_dind_starts_dockerd_exactly_when_the_container_may_run_it() {
    let sandbox = Sandbox::new();
    write_exec(
        &sandbox.path("bin/sudo"),
        "#!/bin/sh\n[ \"$1\" = -n ] && shift\nexec \"$@\"\n",
    );
    write_exec(
        &sandbox.path("bin/dockerd"),
        "#!/bin/sh\necho ran > \"$OUT/dockerd\"\ntouch \"$SHR_DOCKER_SOCK\"\n",
    );
    let out = sandbox.run(&[(JIT_ENV, "x")], &[]);
    assert_eq!(out.status.code(), Some(7), "{}", printed(&out));
    assert_eq!(sandbox.read("dockerd").is_some(), may_admin());
}

#[test]
fn auto_dind_without_dockerd_starts_the_runner_alone() {
    let sandbox = Sandbox::new();
    // Only the sandbox's tools: no dockerd anywhere on PATH, so nothing to start.
    let bin = sandbox.path("bin");
    for tool in ["sed", "id", "cat", "sleep"] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap();
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    let out = Command::new("/bin/sh")
        .arg(script())
        .env_clear()
        .env("PATH", &bin)
        .env("OUT", sandbox.dir.path())
        .env("SHR_RUNNER_RUN_SH", sandbox.path("run.sh"))
        .env("SHR_DOCKER_SOCK", sandbox.path("docker.sock"))
        .env(JIT_ENV, "x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", printed(&out));
    assert!(!sandbox.path("docker.sock").exists());
    assert!(!printed(&out).contains("dockerd"), "{}", printed(&out));
}
