//! `shr run` as a process: it stops in order on SIGTERM and SIGINT, leaves no nats-server of
//! its own behind on any way out, keeps running when an actor has nothing to do, and exits
//! non-zero with the reason last when it cannot run.
//!
//! Each test starts the real binary with a configuration that has no `nats_url`, so `shr run`
//! starts its own nats-server under a temporary work dir and prints its pid.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long start-up (a nats-server, streams, consumers) may take on a loaded machine.
const START_WITHIN: Duration = Duration::from_secs(60);
/// How long a stop may take: the actors drain, then the server stops.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// A registration whose only detection is the webhook: the poller has nothing to poll and
/// ends at once. No reaper, so nothing calls GitHub.
fn config(work_dir: &Path, actors: &str, webhook: &str) -> String {
    format!(
        r#"
[controller]
id = "lifecycle"
actors = [{actors}]
work_dir = "{work}"

{webhook}

[tenants.t]
[tenants.t.providers.local]
# The product has no fake runner: a local provider names its run.sh. Nothing is provisioned here.
runner_command = "/bin/true"

[[registrations]]
name = "r"
tenant = "t"
scope = "repo"
url = "https://github.com/acme/app"
auth = {{ pat = "env:LIFECYCLE_PAT" }}
detection = "webhook"
"#,
        work = work_dir.display(),
    )
}

/// A running `shr run` and the lines of its stderr, read by a thread.
struct Shr {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Shr {
    fn start(actors: &str, webhook: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shr.toml");
        std::fs::write(&path, config(&dir.path().join("work"), actors, webhook)).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_shr"))
            .args(["run", "--config"])
            .arg(&path)
            .env("LIFECYCLE_PAT", "ghp_not_used_by_these_actors")
            .env("LIFECYCLE_WEBHOOK_SECRET", "not-used")
            .env("SHR_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("shr starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
            _dir: dir,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    /// Waits for a stderr line containing `needle` (or one already seen).
    fn line_with(&mut self, needle: &str, within: Duration) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "no line with `{needle}`; stderr so far:\n{}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// The pid of the nats-server this `shr run` says it started.
    fn nats_pid(&mut self) -> u32 {
        let line = self.line_with("started local nats-server", START_WITHIN);
        let pid = line
            .rsplit_once("(pid ")
            .and_then(|(_, rest)| rest.strip_suffix(')'))
            .and_then(|pid| pid.parse().ok())
            .unwrap_or_else(|| panic!("no pid in `{line}`"));
        assert_eq!(
            parent_of(pid),
            Some(self.child.id()),
            "nats-server {pid} is a child of shr"
        );
        pid
    }

    /// Waits for the process to exit; its status and every stderr line.
    fn exit(mut self, within: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("shr did not exit; stderr:\n{}", self.seen.join("\n"));
            }
            // Collects lines while polling the exit; the timeout only paces the poll.
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(20)) {
                self.seen.push(line);
            }
        };
        // The reader thread ends at EOF, once the process has gone.
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line);
        }
        (status, self.seen)
    }
}

/// The parent pid of `pid`, if it is alive (a zombie counts as gone).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`; comm may hold spaces, so split after its last `)`.
    let mut fields = stat.rsplit_once(") ")?.1.split(' ');
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.next()?.parse().ok()
}

/// Whether the nats-server `pid` is still running (not a reused pid, not a zombie).
fn nats_running(pid: u32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    parent_of(pid).is_some() && String::from_utf8_lossy(&cmdline).contains("nats-server")
}

/// Asserts the nats-server `pid` is gone. `shr run` waits for its server before it exits, so
/// this holds the moment `shr` has exited, with no grace.
fn assert_nats_gone(pid: u32, stderr: &[String]) {
    assert!(
        !nats_running(pid),
        "nats-server {pid} outlived shr; stderr:\n{}",
        stderr.join("\n")
    );
}

fn stops_in_order_on(signal: Signal) {
    let mut shr = Shr::start(r#""poller", "scheduler", "provisioner""#, "");
    let nats = shr.nats_pid();
    shr.line_with("shr running", START_WITHIN);
    // The poller has nothing to poll and ends; the process keeps running.
    let ended = shr.line_with("actor finished with nothing left to do", START_WITHIN);
    assert!(ended.contains("poller"), "{ended}");
    assert!(
        shr.child.try_wait().unwrap().is_none(),
        "a normal end stopped the process"
    );
    assert!(nats_running(nats));

    kill(shr.pid(), signal).unwrap();
    let (status, stderr) = shr.exit(STOP_WITHIN);
    assert_eq!(status.code(), Some(0), "stderr:\n{}", stderr.join("\n"));
    let name = format!("received {}", signal.as_str());
    assert!(stderr.iter().any(|l| l.contains(&name)), "{stderr:?}");
    // The metrics listener is cancelled by the same drain, not left to die with the process.
    let position = |needle: &str| stderr.iter().position(|l| l.contains(needle));
    let listener_stopped = position("metrics listener stopped");
    assert!(
        listener_stopped.is_some() && listener_stopped < position("stopped local nats-server"),
        "the listener stops with the actors, before the server: {stderr:?}"
    );
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("stopped local nats-server")),
        "{stderr:?}"
    );
    assert_nats_gone(nats, &stderr);
}

#[test]
fn sigterm_drains_exits_zero_and_stops_its_nats_server() {
    stops_in_order_on(Signal::SIGTERM);
}

#[test]
fn sigint_drains_exits_zero_and_stops_its_nats_server() {
    stops_in_order_on(Signal::SIGINT);
}

#[test]
fn a_webhook_that_cannot_listen_exits_non_zero_with_the_reason_last() {
    // Hold the port, so the webhook actor cannot bind it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let webhook =
        format!("[webhook]\nlisten = \"{addr}\"\nsecret = \"env:LIFECYCLE_WEBHOOK_SECRET\"");
    let mut shr = Shr::start(r#""webhook", "scheduler""#, &webhook);
    let nats = shr.nats_pid();
    let (status, stderr) = shr.exit(STOP_WITHIN);
    assert_eq!(status.code(), Some(1), "stderr:\n{}", stderr.join("\n"));
    let last = stderr.last().expect("something on stderr");
    assert!(
        last.starts_with("error: ") && last.contains(&format!("binding the webhook to {addr}")),
        "the reason is the last line: {last}"
    );
    assert_nats_gone(nats, &stderr);
    drop(taken);
}
