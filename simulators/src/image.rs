//! How a container platform runs an image: the image's ENTRYPOINT and CMD combined with the
//! request's command, args and env, executed with a real `sh` in a temporary root.
//!
//! # Semantics (Docker and Kubernetes)
//! - A request `command` replaces ENTRYPOINT and drops CMD; request `args` replace CMD.
//! - With neither, the process is ENTRYPOINT + CMD; if both are empty the platform has nothing
//!   to run and the container fails to start.
//! - The official runner image `ghcr.io/actions/actions-runner` sets no ENTRYPOINT and no CMD
//!   (its Dockerfile ends at `WORKDIR /home/runner` and `USER runner`), so it inherits its
//!   Ubuntu base's `CMD ["/bin/bash"]`. Without a TTY that shell reads end-of-file and exits 0
//!   at once: a container created without a command never starts a runner.
//!
//! # The temporary root
//! The container's paths are mapped into a private temp dir: `/home/runner/run.sh` there is a
//! fake `run.sh` that execs the configured fake runner with its own arguments passed through
//! (so `--jitconfig VALUE` reaches it), and mounted files are written at their container paths.
//! Container paths in the command, args and env values are rewritten to the temp root, and
//! the result runs as a host process in `<root>/home/runner`. Shells (`/bin/sh`, `/bin/bash`)
//! are the host's. This is a model, not isolation: nothing is chrooted.
//!
//! # Markers and dind
//! The fake `run.sh` touches `<root>/.runner-started` before it execs the fake runner, so a
//! simulator can tell an instance that started a runner from one that exited without
//! ([`Started::runner_started`]). `<root>/shims` comes first on `PATH`: `sudo` runs its
//! arguments, and `dockerd` creates `/var/run/docker.sock` (a plain file) and records that it
//! ran ([`Started::dockerd_started`]), so a dind command's wait for the socket ends at once.
//! A platform can add its own programs there ([`ContainerRun::tools`]).
//!
//! # Other images
//! [`OtherImages`] says what an image the model does not know does: exit at once, or run the
//! resolved command as it stands (for tests that pass a real program as the image's command).

use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The official Actions runner image (any tag).
pub const ACTIONS_RUNNER_IMAGE: &str = "ghcr.io/actions/actions-runner";

/// What an image declares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub workdir: String,
}

impl ImageConfig {
    /// `ghcr.io/actions/actions-runner`: no ENTRYPOINT, CMD inherited from `ubuntu`
    /// (`/bin/bash`), WORKDIR `/home/runner`.
    pub fn actions_runner() -> Self {
        Self {
            entrypoint: Vec::new(),
            cmd: vec!["/bin/bash".into()],
            workdir: "/home/runner".into(),
        }
    }
}

/// What the model does with an image it does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtherImages {
    /// Treat it like the official runner image (the default: custom runner images usually
    /// derive from it).
    LikeRunnerImage,
    /// The container exits at once with this code.
    Exit(i32),
    /// Run the resolved command on the host as it stands.
    RunCommand,
}

/// The fake runner program that `/home/runner/run.sh` execs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeRunner {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// The image model a cloud simulator launches instances with.
#[derive(Debug, Clone)]
pub struct ImageModel {
    pub runner: FakeRunner,
    pub other_images: OtherImages,
}

/// One container to start, as the platform received it.
#[derive(Clone, Default)]
pub struct ContainerRun {
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Files mounted into the container: (absolute container path, content).
    pub files: Vec<(String, Vec<u8>)>,
    /// Programs the platform puts first on the container's `PATH`, as (name, `sh` script):
    /// what the simulated platform provides around the image, e.g. a `curl` that reaches
    /// the simulator where the real platform has a link-local endpoint. Never secrets.
    pub tools: Vec<(String, String)>,
}

impl std::fmt::Debug for ContainerRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Args, env values and files may hold the JIT config.
        f.debug_struct("ContainerRun")
            .field("image", &self.image)
            .field("command", &self.command.len())
            .field("args", &self.args.len())
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field(
                "files",
                &self.files.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .field(
                "tools",
                &self.tools.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A started container: the host process and the temp root it runs in (removed on drop).
#[derive(Debug)]
pub struct Started {
    pub child: tokio::process::Child,
    pub root: tempfile::TempDir,
}

const RUNNER_MARKER: &str = ".runner-started";
const DOCKERD_MARKER: &str = ".dockerd-started";

impl Started {
    /// Whether the container's command reached `/home/runner/run.sh`.
    pub fn runner_started(&self) -> bool {
        self.root.path().join(RUNNER_MARKER).exists()
    }

    /// Whether the container's command started `dockerd`.
    pub fn dockerd_started(&self) -> bool {
        self.root.path().join(DOCKERD_MARKER).exists()
    }
}

/// How a container that ended by itself ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code (`None`: killed by a signal or not waitable).
    pub code: Option<i32>,
    /// Whether its command started the runner ([`Started::runner_started`]).
    pub runner_started: bool,
    /// Whether its command started dockerd.
    pub dockerd_started: bool,
}

/// A container started by [`ImageModel::spawn`]; dropping it kills the process and removes
/// its root.
#[derive(Debug)]
pub struct Running {
    pid: Option<u32>,
    _kill: tokio::sync::oneshot::Sender<()>,
}

impl Running {
    /// The container process's id.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }
}

/// Why a container did not start.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("the image {image} has no entrypoint or cmd and the request sets no command")]
    NothingToRun { image: String },
    #[error("preparing the container root for {image} failed: {source}")]
    Root {
        image: String,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the container process for {image} failed: {source}")]
    Spawn {
        image: String,
        #[source]
        source: std::io::Error,
    },
}

/// The process argv a platform runs for `image` with the request's `command` and `args`.
pub fn resolve_argv(image: &ImageConfig, command: &[String], args: &[String]) -> Vec<String> {
    let mut argv = if command.is_empty() {
        image.entrypoint.clone()
    } else {
        command.to_vec()
    };
    if !args.is_empty() {
        argv.extend(args.iter().cloned());
    } else if command.is_empty() {
        argv.extend(image.cmd.iter().cloned());
    }
    argv
}

/// Whether `image` (`repo[:tag][@digest]`) is the official runner image.
pub fn is_actions_runner(image: &str) -> bool {
    let repo = image.split('@').next().unwrap_or(image);
    let repo = match repo.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => repo,
    };
    repo == ACTIONS_RUNNER_IMAGE
}

impl ImageModel {
    /// A model whose `run.sh` execs `program args…`.
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>) -> Self {
        Self {
            runner: FakeRunner {
                program: program.into(),
                args,
            },
            other_images: OtherImages::LikeRunnerImage,
        }
    }

    /// Starts `run` as the platform would. The process's stdin is closed, like a container
    /// without a TTY.
    pub fn start(&self, run: &ContainerRun) -> Result<Started, ImageError> {
        let image = run.image.clone();
        let config = if is_actions_runner(&run.image) {
            ImageConfig::actions_runner()
        } else {
            match &self.other_images {
                OtherImages::LikeRunnerImage => ImageConfig::actions_runner(),
                OtherImages::Exit(code) => ImageConfig {
                    entrypoint: vec!["/bin/sh".into(), "-c".into(), format!("exit {code}")],
                    cmd: Vec::new(),
                    workdir: "/".into(),
                },
                OtherImages::RunCommand => ImageConfig {
                    workdir: "/".into(),
                    ..ImageConfig::default()
                },
            }
        };
        let argv = resolve_argv(&config, &run.command, &run.args);
        if argv.is_empty() {
            return Err(ImageError::NothingToRun { image });
        }
        let root = tempfile::Builder::new()
            .prefix("shr-container-")
            .tempdir()
            .map_err(|source| ImageError::Root {
                image: image.clone(),
                source,
            })?;
        let rooted = |p: &str| root.path().join(p.trim_start_matches('/'));
        // Writing the container's files and forking happen under one process-wide lock: a
        // fork in another thread while a script's write descriptor is open would hold it
        // until that child execs, and the container's own `exec` of the script (a command
        // such as `sh -c '… exec /home/runner/run.sh'`) would fail with ETXTBSY.
        static FILES_AND_FORKS: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _serial = FILES_AND_FORKS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.prepare(root.path(), run)
            .map_err(|source| ImageError::Root {
                image: image.clone(),
                source,
            })?;
        let mut prefixes: Vec<String> = vec!["/home/runner".into(), "/var/run".into()];
        for (path, _) in &run.files {
            if let Some((dir, _)) = path.rsplit_once('/')
                && !dir.is_empty()
            {
                prefixes.push(dir.to_owned());
            }
        }
        let translate = |s: &str| translate(s, &prefixes, root.path());
        let (program, rest) = argv.split_first().ok_or(ImageError::NothingToRun {
            image: image.clone(),
        })?;
        let program = match program.as_str() {
            "/bin/sh" | "sh" => "sh".to_owned(),
            "/bin/bash" | "bash" => "bash".to_owned(),
            p if matches!(self.other_images, OtherImages::RunCommand)
                && !is_actions_runner(&run.image) =>
            {
                p.to_owned()
            }
            p => translate(p),
        };
        let workdir = rooted(&config.workdir);
        std::fs::create_dir_all(&workdir).map_err(|source| ImageError::Root {
            image: image.clone(),
            source,
        })?;
        // A script this model just wrote (the fake run.sh) is read by `sh` rather than
        // exec'd: a fork in another thread may still hold its write descriptor until that
        // child execs, and exec would then fail with ETXTBSY. Its shebang is `/bin/sh`, so
        // this runs it the same way.
        let mut command = if Path::new(&program).starts_with(root.path()) {
            let mut sh = tokio::process::Command::new("sh");
            sh.arg(&program);
            sh
        } else {
            tokio::process::Command::new(&program)
        };
        command
            .args(rest.iter().map(|a| translate(a)))
            .envs(run.env.iter().map(|(k, v)| (k.clone(), translate(v))))
            .env("HOME", rooted("/home/runner"))
            .env("PATH", path_with_shims(&rooted("/shims")))
            .current_dir(&workdir)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|source| ImageError::Spawn { image, source })?;
        Ok(Started { child, root })
    }

    /// [`Self::start`], then follows the process in the background: `on_exit` runs once when
    /// it ends by itself (not when the [`Running`] handle is dropped first, which kills it).
    ///
    /// Must be called inside a tokio runtime.
    pub fn spawn(
        &self,
        run: &ContainerRun,
        on_exit: impl FnOnce(Exit) + Send + 'static,
    ) -> Result<Running, ImageError> {
        let mut started = self.start(run)?;
        let pid = started.child.id();
        let (kill, killed) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            tokio::select! {
                status = started.child.wait() => on_exit(Exit {
                    code: status.ok().and_then(|s| s.code()),
                    runner_started: started.runner_started(),
                    dockerd_started: started.dockerd_started(),
                }),
                _ = killed => {
                    let _ = started.child.kill().await;
                }
            }
        });
        Ok(Running { pid, _kill: kill })
    }

    fn prepare(&self, root: &Path, run: &ContainerRun) -> std::io::Result<()> {
        let home = root.join("home/runner");
        std::fs::create_dir_all(&home)?;
        std::fs::create_dir_all(root.join("var/run"))?;
        let shims = root.join("shims");
        std::fs::create_dir_all(&shims)?;
        write_file(
            &shims.join("sudo"),
            b"#!/bin/sh\n# Fake sudo: runs its command.\nwhile [ \"${1#-}\" != \"$1\" ]; do shift; done\nexec \"$@\"\n",
            0o755,
        )?;
        let dockerd = format!(
            "#!/bin/sh\n# Fake dockerd: makes the socket path and records that it ran.\n: > {sock}\n: > {marker}\n",
            sock = shell_quote(&root.join("var/run/docker.sock").to_string_lossy()),
            marker = shell_quote(&root.join(DOCKERD_MARKER).to_string_lossy()),
        );
        write_file(&shims.join("dockerd"), dockerd.as_bytes(), 0o755)?;
        for (name, script) in &run.tools {
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("tool name {name:?} is not a plain file name"),
                ));
            }
            let file = shims.join(name);
            let _ = std::fs::remove_file(&file);
            write_file(&file, script.as_bytes(), 0o755)?;
        }
        let mut script = format!(
            "#!/bin/sh\n# Fake run.sh: the real one starts Runner.Listener; this one starts the simulators' runner.\n: > {}\nexec",
            shell_quote(&root.join(RUNNER_MARKER).to_string_lossy())
        );
        for part in std::iter::once(self.runner.program.to_string_lossy().into_owned())
            .chain(self.runner.args.iter().cloned())
        {
            script.push(' ');
            script.push_str(&shell_quote(&part));
        }
        script.push_str(" \"$@\"\n");
        write_file(&home.join("run.sh"), script.as_bytes(), 0o755)?;
        for (path, content) in &run.files {
            let file = root.join(path.trim_start_matches('/'));
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            write_file(&file, content, 0o600)?;
        }
        Ok(())
    }
}

fn path_with_shims(shims: &Path) -> std::ffi::OsString {
    let mut dirs = vec![shims.to_owned()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).unwrap_or_else(|_| shims.as_os_str().to_owned())
}

fn translate(s: &str, prefixes: &[String], root: &Path) -> String {
    let mut out = s.to_owned();
    for prefix in prefixes {
        let rooted = format!("{}{}", root.display(), prefix);
        out = replace_path(&out, prefix, &rooted);
    }
    out
}

/// Replaces `prefix` where it starts a path (at the start or after a non-path character).
fn replace_path(s: &str, prefix: &str, with: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(prefix) {
        let before_ok = i == 0
            || !rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || "/._-".contains(c));
        let after = &rest[i + prefix.len()..];
        let after_ok = after.is_empty()
            || !after.starts_with(|c: char| c.is_alphanumeric() || c == '_' || c == '-');
        out.push_str(&rest[..i]);
        out.push_str(if before_ok && after_ok { with } else { prefix });
        rest = after;
    }
    out.push_str(rest);
    out
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn docker_and_kubernetes_combination_rules() {
        let img = ImageConfig {
            entrypoint: s(&["/ep"]),
            cmd: s(&["default"]),
            workdir: "/".into(),
        };
        assert_eq!(resolve_argv(&img, &[], &[]), s(&["/ep", "default"]));
        assert_eq!(resolve_argv(&img, &[], &s(&["x"])), s(&["/ep", "x"]));
        assert_eq!(
            resolve_argv(&img, &s(&["/c"]), &[]),
            s(&["/c"]),
            "command drops CMD"
        );
        assert_eq!(resolve_argv(&img, &s(&["/c"]), &s(&["y"])), s(&["/c", "y"]));
        let runner = ImageConfig::actions_runner();
        assert_eq!(resolve_argv(&runner, &[], &[]), s(&["/bin/bash"]));
        assert!(is_actions_runner("ghcr.io/actions/actions-runner:2.330.0"));
        assert!(is_actions_runner(
            "ghcr.io/actions/actions-runner@sha256:abc"
        ));
        assert!(!is_actions_runner(
            "ghcr.io/actions/actions-runner-controller"
        ));
    }

    #[test]
    fn paths_are_rewritten_only_at_path_starts() {
        let root = Path::new("/tmp/r");
        let p = s(&["/home/runner", "/etc/shr"]);
        assert_eq!(
            translate("exec /home/runner/run.sh", &p, root),
            "exec /tmp/r/home/runner/run.sh"
        );
        assert_eq!(
            translate("$(cat /etc/shr/jitconfig)", &p, root),
            "$(cat /tmp/r/etc/shr/jitconfig)"
        );
        assert_eq!(translate("/x/home/runner", &p, root), "/x/home/runner");
        assert_eq!(translate("/home/runners", &p, root), "/home/runners");
    }

    /// A fake runner that records how it got its JIT config, then exits 0.
    fn recorder(dir: &Path) -> ImageModel {
        let out = dir.join("seen");
        let script = format!(
            "if [ \"$1\" = --jitconfig ]; then printf 'arg:%s' \"$2\" > '{o}'; \
             elif [ -n \"$ACTIONS_RUNNER_INPUT_JITCONFIG\" ]; then printf 'env:%s' \"$ACTIONS_RUNNER_INPUT_JITCONFIG\" > '{o}'; \
             else printf none > '{o}'; fi",
            o = out.display()
        );
        ImageModel::new("sh", vec!["-c".into(), script, "fake-runner".into()])
    }

    async fn run(model: &ImageModel, run: ContainerRun) -> (bool, Option<String>, PathBuf) {
        let mut started = model.start(&run).unwrap();
        let status = started.child.wait().await.unwrap();
        let root = started.root.path().to_owned();
        (status.success(), None, root)
    }

    fn seen(dir: &Path) -> Option<String> {
        std::fs::read_to_string(dir.join("seen")).ok()
    }

    #[tokio::test]
    async fn the_runner_image_without_a_command_exits_zero_and_starts_no_runner() {
        let dir = tempfile::tempdir().unwrap();
        let model = recorder(dir.path());
        let (ok, _, _) = run(
            &model,
            ContainerRun {
                image: "ghcr.io/actions/actions-runner:latest".into(),
                env: vec![("ACTIONS_RUNNER_INPUT_JITCONFIG".into(), "J".into())],
                ..ContainerRun::default()
            },
        )
        .await;
        assert!(ok, "bash without a TTY exits 0");
        assert_eq!(seen(dir.path()), None, "no runner was started");
    }

    #[tokio::test]
    async fn run_sh_starts_the_runner_with_env_with_an_argument_or_from_a_mounted_file() {
        let image = "ghcr.io/actions/actions-runner:2.330.0".to_owned();
        for (run_, want) in [
            (
                ContainerRun {
                    image: image.clone(),
                    command: s(&["/home/runner/run.sh"]),
                    env: vec![("ACTIONS_RUNNER_INPUT_JITCONFIG".into(), "J1".into())],
                    ..ContainerRun::default()
                },
                "env:J1",
            ),
            (
                ContainerRun {
                    image: image.clone(),
                    command: s(&["/home/runner/run.sh", "--jitconfig", "J2"]),
                    ..ContainerRun::default()
                },
                "arg:J2",
            ),
            (
                ContainerRun {
                    image: image.clone(),
                    command: s(&[
                        "/bin/sh",
                        "-c",
                        "export ACTIONS_RUNNER_INPUT_JITCONFIG=\"$(cat \"$ACTIONS_RUNNER_INPUT_JITCONFIG_FILE\")\" && exec /home/runner/run.sh",
                    ]),
                    env: vec![(
                        "ACTIONS_RUNNER_INPUT_JITCONFIG_FILE".into(),
                        "/etc/shr/jitconfig".into(),
                    )],
                    files: vec![("/etc/shr/jitconfig".into(), b"J3".to_vec())],
                    ..ContainerRun::default()
                },
                "env:J3",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (ok, _, _) = run(&recorder(dir.path()), run_).await;
            assert!(ok);
            assert_eq!(seen(dir.path()).as_deref(), Some(want));
        }
    }

    #[tokio::test]
    async fn other_images_follow_the_configured_behaviour() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = recorder(dir.path());
        model.other_images = OtherImages::Exit(3);
        let mut started = model
            .start(&ContainerRun {
                image: "busybox".into(),
                ..ContainerRun::default()
            })
            .unwrap();
        assert_eq!(started.child.wait().await.unwrap().code(), Some(3));
        model.other_images = OtherImages::RunCommand;
        let err = model
            .start(&ContainerRun {
                image: "busybox".into(),
                ..ContainerRun::default()
            })
            .unwrap_err();
        assert!(matches!(err, ImageError::NothingToRun { .. }));
    }

    #[tokio::test]
    async fn spawn_reports_whether_the_runner_and_dockerd_started() {
        let dir = tempfile::tempdir().unwrap();
        let model = recorder(dir.path());
        let exit = |run: ContainerRun| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let running = model
                .spawn(&run, move |e| {
                    let _ = tx.send(e);
                })
                .unwrap();
            async move {
                let e = tokio::time::timeout(std::time::Duration::from_secs(30), rx)
                    .await
                    .unwrap()
                    .unwrap();
                drop(running);
                e
            }
        };
        let image = "ghcr.io/actions/actions-runner:2.330.0".to_owned();
        let none = exit(ContainerRun {
            image: image.clone(),
            ..ContainerRun::default()
        })
        .await;
        assert_eq!(none.code, Some(0));
        assert!(!none.runner_started, "no command: no runner");
        let dind = exit(ContainerRun {
            image,
            command: s(&[
                "/bin/sh",
                "-c",
                "sudo -n dockerd >/home/runner/dockerd.log 2>&1 & n=0; \
                 while [ ! -e /var/run/docker.sock ] && [ \"$n\" -lt 60 ]; do sleep 1; n=$((n+1)); done; \
                 exec /home/runner/run.sh",
            ]),
            env: vec![("ACTIONS_RUNNER_INPUT_JITCONFIG".into(), "J".into())],
            ..ContainerRun::default()
        })
        .await;
        assert_eq!(dind.code, Some(0));
        assert!(dind.runner_started && dind.dockerd_started, "{dind:?}");
        assert_eq!(seen(dir.path()).as_deref(), Some("env:J"));
    }
}
