//! A `nats-server` child process with JetStream, for tests, the demo and all-in-one mode.
//!
//! [`NatsServer::start`] picks a free port through the server itself (`-p -1` plus a ports
//! file, so no other process can grab the port in between), uses a fresh temporary store
//! directory unless given one, and returns once the server answers a client handshake (polled
//! with a deadline). [`NatsServer::stop`] shuts it down cleanly (`SIGTERM`, a bounded wait,
//! then `SIGKILL`); whatever is still running when the [`NatsServer`] is dropped (an early
//! return, a panic unwinding) is killed with `SIGKILL`. [`NatsServer::kill`] and
//! [`NatsServer::restart`] (`SIGKILL`, then the same port and store) exist for chaos tests.
//!
//! # Caveat
//! A parent that is itself killed with `SIGKILL` runs no drop code, so its server outlives it.
//! Tying the child's life to the parent's (`PR_SET_PDEATHSIG`) needs `unsafe` code, which
//! this workspace forbids; supervisors should stop the whole process group instead.
//!
//! The binary is `$NATS_SERVER_BIN`, else `nats-server` on `PATH`, else
//! `<workspace>/.tools/bin/nats-server`, else `~/.local/bin/nats-server`; `scripts/install-nats.sh` installs one.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::{
    io::AsyncReadExt,
    net::TcpStream,
    process::{Child, Command},
};

use crate::Error;

/// Environment variable naming the `nats-server` binary to use.
pub const BIN_ENV: &str = "NATS_SERVER_BIN";

/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(20);

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// JetStream store directory; `None` makes a temporary one, removed on drop.
    pub store_dir: Option<PathBuf>,
    /// Client port; `None` lets the server pick a free one.
    pub port: Option<u16>,
    /// How long to wait for the server to accept connections.
    pub ready_timeout: Duration,
    /// The binary; `None` looks it up (see the module docs).
    pub binary: Option<PathBuf>,
    /// A server configuration file (`-c`), such as the accounts and users written by
    /// [`crate::security`]; the address, port, JetStream and store flags still apply.
    pub config: Option<PathBuf>,
    /// Start the server in a process group of its own, so a Ctrl-C meant for the parent
    /// (the terminal signals the whole foreground group) reaches only the parent, which then
    /// stops its actors while the bus is still up, and the server last.
    pub own_process_group: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            store_dir: None,
            port: None,
            ready_timeout: Duration::from_secs(20),
            binary: None,
            config: None,
            own_process_group: false,
        }
    }
}

/// A running (or killed, awaiting restart) `nats-server` child process.
#[derive(Debug)]
pub struct NatsServer {
    bin: PathBuf,
    child: Option<Child>,
    port: u16,
    store_dir: PathBuf,
    ready_timeout: Duration,
    config: Option<PathBuf>,
    own_process_group: bool,
    /// Ports file, log file and (unless a store dir was given) the store.
    run_dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server with JetStream on loopback and waits until it accepts connections.
    pub async fn start(opts: ServerOptions) -> Result<Self, Error> {
        let bin = match opts.binary {
            Some(bin) => bin,
            None => find_binary()?,
        };
        let run_dir = tempfile::Builder::new()
            .prefix("shr-nats-")
            .tempdir()
            .map_err(|source| Error::ServerDir {
                path: std::env::temp_dir(),
                source,
            })?;
        let store_dir = opts
            .store_dir
            .unwrap_or_else(|| run_dir.path().join("store"));
        std::fs::create_dir_all(&store_dir).map_err(|source| Error::ServerDir {
            path: store_dir.clone(),
            source,
        })?;
        let mut server = Self {
            bin,
            child: None,
            port: opts.port.unwrap_or(0),
            store_dir,
            ready_timeout: opts.ready_timeout,
            config: opts.config,
            own_process_group: opts.own_process_group,
            run_dir,
        };
        server.spawn_and_wait().await?;
        Ok(server)
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// The server's log file (stdout and stderr of the child).
    pub fn log_file(&self) -> PathBuf {
        self.run_dir.path().join("nats-server.log")
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Stops the server cleanly: `SIGTERM`, which lets it flush its JetStream store and close
    /// client connections, then up to `grace` for it to exit, then `SIGKILL`. Waits for the
    /// process, so none is left behind. A no-op when it is not running.
    pub async fn stop(&mut self, grace: Duration) -> Result<(), Error> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let process_error = |source| Error::ServerProcess {
            bin: self.bin.clone(),
            source,
        };
        let pid = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .map(nix::unistd::Pid::from_raw);
        if let Some(pid) = pid {
            match nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM) {
                // ESRCH: it has exited already; `wait` below collects it.
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(errno) => return Err(process_error(errno.into())),
            }
            match tokio::time::timeout(grace, child.wait()).await {
                Ok(Ok(status)) => {
                    tracing::debug!(port = self.port, %status, "nats-server stopped");
                    return Ok(());
                }
                Ok(Err(source)) => return Err(process_error(source)),
                Err(_) => {
                    tracing::warn!(
                        port = self.port,
                        ?grace,
                        "nats-server ignored SIGTERM; killing it"
                    );
                }
            }
        }
        child.kill().await.map_err(process_error)
    }

    /// Kills the server with `SIGKILL` (no clean shutdown) and waits for it to exit.
    /// A no-op when it is not running.
    pub async fn kill(&mut self) -> Result<(), Error> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.map_err(|source| Error::ServerProcess {
                bin: self.bin.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Kills the server (if running) and starts it again on the same port and store,
    /// waiting until it accepts connections.
    pub async fn restart(&mut self) -> Result<(), Error> {
        self.kill().await?;
        self.spawn_and_wait().await
    }

    async fn spawn_and_wait(&mut self) -> Result<(), Error> {
        let ports_dir = self.run_dir.path().join("ports");
        // A stale ports file from an earlier run must not be mistaken for this one.
        if ports_dir.exists() {
            std::fs::remove_dir_all(&ports_dir).map_err(|source| Error::ServerDir {
                path: ports_dir.clone(),
                source,
            })?;
        }
        std::fs::create_dir_all(&ports_dir).map_err(|source| Error::ServerDir {
            path: ports_dir.clone(),
            source,
        })?;
        let log_path = self.log_file();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| Error::ServerDir {
                path: log_path.clone(),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| Error::ServerDir {
            path: log_path.clone(),
            source,
        })?;
        let port_arg = if self.port == 0 {
            "-1".to_owned()
        } else {
            self.port.to_string()
        };
        let mut command = Command::new(&self.bin);
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        if self.own_process_group {
            command.process_group(0);
        }
        let child = command
            .arg("-a")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(&port_arg)
            .arg("-js")
            .arg("-sd")
            .arg(&self.store_dir)
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::ServerProcess {
                bin: self.bin.clone(),
                source,
            })?;
        let child = self.child.insert(child);
        tracing::debug!(bin = %self.bin.display(), port = %port_arg, "nats-server spawned");

        let started = Instant::now();
        let deadline = started + self.ready_timeout;
        let not_ready = |reason: String| Error::ServerNotReady {
            waited: started.elapsed(),
            reason,
            log_tail: log_tail(&log_path),
        };
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(not_ready(format!("nats-server exited with {status}")));
            }
            if self.port == 0 {
                self.port = read_ports_file(&ports_dir).unwrap_or(0);
            }
            if self.port != 0 && handshake(self.port).await {
                tracing::debug!(port = self.port, elapsed = ?started.elapsed(), "nats-server ready");
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(not_ready("no client handshake before the deadline".into()));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Whether the server on `port` sends its `INFO` greeting.
async fn handshake(port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await.ok()?;
        Some(&buf == b"INFO")
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// The client port from the `*.ports` file the server writes once it listens.
fn read_ports_file(dir: &Path) -> Option<u16> {
    let entry = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "ports"))?;
    let text = std::fs::read_to_string(entry.path()).ok()?;
    let ports: serde_json::Value = serde_json::from_str(&text).ok()?;
    let url = ports.get("nats")?.get(0)?.as_str()?;
    url.rsplit(':').next()?.parse().ok()
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Finds `nats-server`: `$NATS_SERVER_BIN`, then `PATH`, then `<workspace>/.tools/bin`.
pub fn find_binary() -> Result<PathBuf, Error> {
    if let Some(bin) = std::env::var_os(BIN_ENV).filter(|b| !b.is_empty()) {
        return Ok(PathBuf::from(bin));
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file());
    if let Some(bin) = on_path {
        return Ok(bin);
    }
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin");
    // Also where `pip install --user` puts scripts, which is not always on PATH.
    let user_bin = std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/bin"));
    for dir in std::iter::once(tools.clone()).chain(user_bin) {
        let bin = dir.join("nats-server");
        if bin.is_file() {
            return Ok(bin);
        }
    }
    Err(Error::ServerBinaryMissing { tools })
}
