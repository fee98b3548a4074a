//! Operators see everything: the actors run as separate `shr run` processes exporting spans
//! to an OTLP/HTTP receiver inside this test, every process serves `/metrics`, and the
//! status page shows what `shr status --json` says, checked in headless Chromium.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message as _;
use registration::Actor;
use shr_lab::harness::{Harness, HarnessOptions};
use tokio::process::{Child, Command};

/// One received span: its trace id, name and the pid of the process that sent it.
#[derive(Debug, Clone)]
struct Received {
    trace_id: String,
    name: String,
    pid: i64,
}

type Inbox = Arc<Mutex<Vec<Received>>>;

/// A minimal OTLP/HTTP traces receiver: protobuf `ExportTraceServiceRequest` on `/v1/traces`.
async fn start_receiver() -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let sink = inbox.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).unwrap();
                let mut got = Vec::new();
                for rs in request.resource_spans {
                    let pid = rs
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|kv| kv.key == "process.pid")
                        .and_then(|kv| kv.value.as_ref()?.value.as_ref().cloned())
                        .map_or(0, |v| match v {
                            Value::IntValue(i) => i,
                            _ => 0,
                        });
                    for ss in rs.scope_spans {
                        for span in ss.spans {
                            got.push(Received {
                                trace_id: hex(&span.trace_id),
                                name: span.name,
                                pid,
                            });
                        }
                    }
                }
                sink.lock().unwrap().extend(got);
                // An empty ExportTraceServiceResponse.
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), inbox)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Proc {
    name: String,
    log: PathBuf,
    child: Child,
}

fn spawn(bin: &Path, name: &str, config: &Path, logs: &Path, otlp: &str) -> Proc {
    let log = logs.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let err = out.try_clone().unwrap();
    let child = Command::new(bin)
        .args(["run", "--config"])
        .arg(config)
        .env("SHR_LOG", "info")
        // The deciders log JSON: the test counts their decline and reap lines.
        .env(
            "SHR_LOG_FORMAT",
            if matches!(name, "scheduler" | "reaper") {
                "json"
            } else {
                "text"
            },
        )
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .env("SHR_SWEEP_INTERVAL_SECS", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    Proc {
        name: name.to_owned(),
        log,
        child,
    }
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn metrics_addr(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("metrics listening on "))
        .map(|a| a.trim().to_owned())
}

async fn get(url: &str) -> Option<(u16, String)> {
    // reqwest here has no built-in TLS provider; the workspace uses ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// The value of the first series of `name` whose labels contain every `labels` pair.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    })
}

fn chromium_args(profile: &Path) -> Vec<String> {
    vec![
        "--headless".into(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--no-first-run".into(),
        format!("--user-data-dir={}", profile.display()),
    ]
}

/// The text of the element with `id` in `dom`.
fn by_id<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let marker = format!("id=\"{id}\">");
    let start = dom.find(&marker)? + marker.len();
    let end = dom[start..].find('<')? + start;
    Some(&dom[start..end])
}

/// The JSON log lines of `log` whose message is `message`, by the value of field `key`.
fn decision_lines(
    log: &Path,
    message: &str,
    key: &str,
) -> BTreeMap<String, Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut out: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for line in text.lines() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if value["fields"]["message"] != message {
            continue;
        }
        let id = match &value["fields"][key] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.entry(id).or_default().push(value);
    }
    out
}

/// A decision line: at info, with a non-empty `reason_field` and a W3C trace id.
fn assert_decision(line: &serde_json::Value, reason_field: &str) {
    assert_eq!(line["level"], "INFO", "{line}");
    let reason = line["fields"][reason_field].as_str().unwrap_or_default();
    assert!(!reason.is_empty(), "a reason: {line}");
    let trace = line["fields"]["trace_id"].as_str().unwrap_or_default();
    assert!(
        trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()),
        "a trace id: {line}"
    );
}

/// The sum of every series of `name`.
fn total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The page (its HTML, as served or as a browser rendered it) shows `status`'s numbers.
fn assert_page_matches(dom: &str, status: &serde_json::Value) {
    for state in ["queued", "in_progress", "completed", "declined"] {
        assert_eq!(
            by_id(dom, &format!("jobs-{state}")),
            Some(status["jobs"][state].to_string().as_str()),
            "jobs-{state} on the page"
        );
    }
    for state in ["running", "busy", "deleted", "pending_force_delete"] {
        assert_eq!(
            by_id(dom, &format!("runners-{state}")),
            Some(status["runners"][state].to_string().as_str()),
            "runners-{state} on the page"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_share_a_trace_serve_metrics_and_a_status_page() {
    let bin = shr_lab::bins::product_binary().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (otlp, inbox) = start_receiver().await;

    let mut options = HarnessOptions::new(dir.path().join("system"));
    options.provider = bus_schema::ProviderKind::AzureAci;
    options.actors = Vec::new();
    options.job_duration = Duration::from_millis(300);
    let mut harness = Harness::start(options).await.unwrap();
    let roles = dir.path().join("roles");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&roles).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    let layout: [(&str, &[Actor]); 4] = [
        ("edge", &[Actor::Webhook, Actor::Poller]),
        ("scheduler", &[Actor::Scheduler]),
        ("provisioner", &[Actor::Provisioner]),
        ("reaper", &[Actor::Reaper]),
    ];
    let mut procs = Vec::new();
    for (name, actors) in layout {
        let config = roles.join(format!("{name}.toml"));
        harness.config_for_actors(actors, &config).unwrap();
        procs.push(spawn(&bin, name, &config, &logs, &otlp));
    }
    let mut addrs = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    for p in &procs {
        let addr = loop {
            if let Some(addr) = metrics_addr(&p.log) {
                break addr;
            }
            assert!(
                Instant::now() < deadline,
                "{} serves no metrics listener; its log:\n{}",
                p.name,
                std::fs::read_to_string(&p.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        addrs.insert(p.name.clone(), addr);
    }
    // Ready: every process sees the bus and its consumers.
    for (name, addr) in &addrs {
        eventually(
            Duration::from_secs(60),
            &format!("{name} ready"),
            || async {
                get(&format!("http://{addr}/readyz"))
                    .await
                    .filter(|(s, _)| *s == 200)
            },
        )
        .await;
    }
    let webhook = registration::Config::load(&harness.config_path, &::clouds::Registry)
        .unwrap()
        .webhook
        .listen;
    eventually(Duration::from_secs(30), "the webhook", || async {
        tokio::net::TcpStream::connect(webhook).await.ok()
    })
    .await;

    // Two jobs the registration's limits decline (max_cpu 4, max_memory 8), queued on the
    // simulator only: the harness waits for the admitted ones.
    let mut declined = Vec::new();
    for (i, labels) in [
        ["serverless-hosted-runner", "cpu-64"],
        ["serverless-hosted-runner", "memory-64"],
    ]
    .iter()
    .enumerate()
    {
        let job = harness.sim.queue_job(simulators::github::NewJob {
            repo: "demo-org/app".into(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            name: Some(format!("too-big-{i}")),
            run_id: None,
        });
        declined.push(job.job_id);
    }
    let jobs = 4;
    harness.queue_jobs(jobs, &[&["serverless-hosted-runner"]]);
    let summary = harness
        .wait_settled(Duration::from_secs(120), false)
        .await
        .unwrap();
    assert!(summary.ok(), "{summary:?}");

    // (a) One job's spans come from at least three processes under one trace id.
    let (trace, pids) = eventually(
        Duration::from_secs(30),
        "spans of one trace from three processes",
        || async {
            let spans = inbox.lock().unwrap().clone();
            let mut by_trace: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
            for s in &spans {
                by_trace
                    .entry(s.trace_id.clone())
                    .or_default()
                    .insert(s.pid);
            }
            by_trace.into_iter().find(|(_, pids)| pids.len() >= 3)
        },
    )
    .await;
    let names: BTreeSet<String> = inbox
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.trace_id == trace)
        .map(|s| s.name.clone())
        .collect();
    println!("trace {trace}: {} processes, spans {names:?}", pids.len());
    assert!(
        names.iter().any(|n| n.contains("publish")),
        "the trace starts at the webhook or the poller: {names:?}"
    );
    assert!(names.contains("handle"), "{names:?}");

    // (b) Every process serves its metrics, and every family named in `telemetry::metrics`
    // is served by the processes whose work it counts.
    let mut scraped = BTreeMap::new();
    let mut declared: BTreeSet<String> = BTreeSet::new();
    for (name, addr) in &addrs {
        let (status, text) = get(&format!("http://{addr}/metrics")).await.unwrap();
        assert_eq!(status, 200, "{name}");
        declared.extend(
            text.lines()
                .filter_map(|l| Some(l.strip_prefix("# TYPE ")?.split(' ').next()?.to_owned())),
        );
        assert_eq!(
            sample(&text, "shr_ready", &[]),
            Some(1.0),
            "{name}:\n{text}"
        );
        for metric in [
            "shr_runners",
            "shr_jobs",
            "shr_jobs_admitted",
            "shr_oldest_queued_job_age_seconds",
            "shr_runners_pending_force_delete",
            "shr_build_info",
        ] {
            assert!(
                sample(&text, metric, &[]).is_some(),
                "{name} lacks {metric}:\n{text}"
            );
        }
        let completed = sample(&text, "shr_jobs", &[("state", "completed")]);
        assert_eq!(completed, Some(jobs as f64), "{name}:\n{text}");
        scraped.insert(name.clone(), text);
    }
    // Families with no series yet are not rendered: no provider call fails and nothing is
    // orphaned in this run (their counting has unit tests in `telemetry` and the chaos suite).
    let idle = [
        telemetry::metrics::PROVIDER_ERRORS,
        telemetry::metrics::ORPHANS_FOUND,
        telemetry::metrics::ORPHANS_REAPED,
    ];
    for metric in telemetry::metrics::ALL.iter().filter(|m| !idle.contains(m)) {
        assert!(
            declared.contains(telemetry::metrics::metric_name(metric)),
            "no process serves {metric}: {declared:?}"
        );
    }
    let edge = &scraped["edge"];
    let edge_log = std::fs::read_to_string(logs.join("edge.log")).unwrap();
    assert!(
        !edge_log.contains('\u{1b}'),
        "no ANSI codes when stderr is a file:\n{edge_log}"
    );
    eventually(
        Duration::from_secs(30),
        "declines counted from KV",
        || async {
            let (_, text) = get(&format!("http://{}/metrics", addrs["edge"])).await?;
            // By code, whatever the labels in each job's reason text.
            let by_code = sample(&text, "shr_jobs_declined", &[("reason", "exceeds_policy")]);
            (total(&text, "shr_jobs_declined") == declined.len() as f64
                && by_code == Some(declined.len() as f64))
            .then_some(())
        },
    )
    .await;
    assert!(
        sample(
            edge,
            "shr_webhook_deliveries_total",
            &[("outcome", "accepted")]
        )
        .is_some_and(|n| n >= jobs as f64),
        "{edge}"
    );
    assert!(sample(edge, "shr_webhook_duplicates_dropped_total", &[]).is_some());
    assert!(
        sample(edge, "shr_last_webhook_timestamp_seconds", &[]).is_some_and(|t| t > 0.0),
        "{edge}"
    );
    let scheduler = &scraped["scheduler"];
    assert!(
        sample(scheduler, "shr_github_requests_total", &[("class", "jit")])
            .is_some_and(|n| n >= jobs as f64),
        "{scheduler}"
    );
    assert!(
        sample(scheduler, "shr_job_startup_duration_seconds_count", &[]).is_some_and(|n| n >= 1.0),
        "startups were observed: {scheduler}"
    );
    let provisioner = &scraped["provisioner"];
    assert!(
        sample(
            provisioner,
            "shr_provision_duration_seconds_count",
            &[("provider", "azure-aci"), ("outcome", "created")]
        )
        .is_some_and(|n| n >= jobs as f64),
        "{provisioner}"
    );
    let reaper = &scraped["reaper"];
    assert!(
        sample(reaper, "shr_runners_reaped_total", &[]).is_some_and(|n| n >= 1.0),
        "{reaper}"
    );

    // shr status --json reads the same records.
    let output = Command::new(&bin)
        .args(["status", "--json", "--nats-url", &harness.nats_url])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status["jobs"]["completed"], jobs as u64, "{status}");
    eventually(Duration::from_secs(30), "the declines in KV", || async {
        let output = Command::new(&bin)
            .args(["status", "--json", "--nats-url", &harness.nats_url])
            .output()
            .await
            .ok()?;
        let now: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        (now["jobs"]["declined"] == declined.len() as u64).then_some(())
    })
    .await;
    let status: serde_json::Value = serde_json::from_slice(
        &Command::new(&bin)
            .args(["status", "--json", "--nats-url", &harness.nats_url])
            .output()
            .await
            .unwrap()
            .stdout,
    )
    .unwrap();
    let text = Command::new(&bin)
        .args(["status", "--nats-url", &harness.nats_url])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    println!("shr status:\n{text}");
    assert!(text.contains(&format!("completed={jobs}")), "{text}");

    // (c) The page shows the same numbers (in a browser: the `--hold` demo test below).
    let (code, html) = get(&format!("http://{}/", addrs["edge"])).await.unwrap();
    assert_eq!(code, 200);
    assert_page_matches(&html, &status);

    // (d) Each decline and each reap is logged once, at info, with its reason, the job or
    // runner, and the trace id.
    let declines = decision_lines(&logs.join("scheduler.log"), "job declined", "job");
    for job in &declined {
        let lines = declines
            .get(&job.to_string())
            .map_or(&[][..], Vec::as_slice);
        assert_eq!(lines.len(), 1, "job {job}: {declines:?}");
        assert_decision(&lines[0], "reason");
    }
    assert_eq!(declines.len(), declined.len(), "{declines:?}");
    let reaps = decision_lines(&logs.join("reaper.log"), "runner reaped", "runner");
    let runners: BTreeSet<String> = harness
        .runner_records()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    // At least one per job; more when a runner went to another job and one was made again.
    assert!(runners.len() >= jobs, "{runners:?}");
    for runner in &runners {
        let lines = reaps.get(runner).map_or(&[][..], Vec::as_slice);
        assert_eq!(lines.len(), 1, "runner {runner}: {reaps:?}");
        assert_decision(&lines[0], "reason");
    }
    // A clean run has nothing for an operator to act on: expected races and retries are
    // at debug, so no warning drowns in them. (The scheduler runs apart from the provisioner
    // here, without a sealing key: that configuration warning is the one expected.)
    for process in ["scheduler", "reaper"] {
        let text = std::fs::read_to_string(logs.join(format!("{process}.log"))).unwrap();
        let loud: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
            .filter(|l| !l.contains("jit_public_key"))
            .collect();
        assert!(
            loud.is_empty(),
            "{process} warned in a clean run: {loud:#?}"
        );
    }

    for mut p in procs {
        let _ = p.child.kill().await;
    }
    harness.stop().await;
}

/// Loads `url` in headless Chromium: the rendered page shows `status`'s numbers and the
/// startup chart, and a phone-sized screenshot is kept as a test artifact. Skipped (with a
/// note) when there is no Chromium, unless `SHR_REQUIRE_CHROMIUM` is set, as `.ci/run` does.
async fn check_in_chromium(url: &str, status: &serde_json::Value) {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("SHR_REQUIRE_CHROMIUM").is_none(),
            "SHR_REQUIRE_CHROMIUM is set but no chromium is on PATH"
        );
        println!("chromium not found: the browser check is skipped");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let dom = Command::new(&browser)
        .args(chromium_args(profile.path()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .await
        .unwrap();
    assert!(dom.status.success(), "{dom:?}");
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert_page_matches(&dom, status);
    assert!(
        dom.contains("id=\"startup-chart\""),
        "the chart shows the startups the page's process saw"
    );
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().unwrap();
    let done = Command::new(&browser)
        .args(chromium_args(profile.path()))
        .arg("--window-size=420,900")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(url)
        .output()
        .await
        .unwrap();
    assert!(done.status.success(), "{done:?}");
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    println!("status page screenshot: {}", shot.display());
}

/// The pids below `root` (children, their children, …), from `/proc`.
fn descendants(root: u32) -> BTreeSet<u32> {
    let mut parents: BTreeMap<u32, u32> = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = parent_of(pid) {
            parents.insert(pid, ppid);
        }
    }
    let mut out = BTreeSet::new();
    let mut grew = true;
    while grew {
        grew = false;
        for (pid, ppid) in &parents {
            if (*ppid == root || out.contains(ppid)) && out.insert(*pid) {
                grew = true;
            }
        }
    }
    out
}

/// The parent of `pid` while it runs; `None` once it is gone or a zombie.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces, so split after its last `)`.
    let mut fields = stat.rsplit_once(") ")?.1.split(' ');
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.next()?.parse().ok()
}

/// The command line of a running `pid`, or `None`.
fn cmdline(pid: u32) -> Option<String> {
    parent_of(pid)?;
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " "))
}

/// `shr-lab demo --hold` keeps the system up after its summary and says where to look: the
/// status page (checked in Chromium against `shr status --json`, run exactly as printed),
/// the metrics and NATS. SIGINT then stops it, with exit code 0 and no process left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_hold_serves_the_status_page_until_sigint() {
    use tokio::io::AsyncBufReadExt as _;

    let shr = shr_lab::bins::product_binary().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("demo");
    let stderr = std::fs::File::create(dir.path().join("demo.err")).unwrap();
    let jobs = 3;
    let mut demo = Command::new(env!("CARGO_BIN_EXE_shr-lab"))
        .args(["demo", "--hold", "--job-duration-ms", "200", "--jobs"])
        .arg(jobs.to_string())
        .arg("--work-dir")
        .arg(&work)
        .env("SHR_BIN", &shr)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = demo.id().unwrap();
    let mut lines = tokio::io::BufReader::new(demo.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut held: BTreeMap<String, String> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while !held.contains_key("shr status") {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no hold lines in time; stdout:\n{}", seen.join("\n")))
            .unwrap()
            .unwrap_or_else(|| panic!("the demo ended; stdout:\n{}", seen.join("\n")));
        if let Some((key, value)) = line.trim_start().split_once(": ")
            && line.starts_with("  ")
        {
            held.insert(key.trim().to_owned(), value.trim().to_owned());
        }
        seen.push(line);
    }
    // The summary line comes first, and all went well.
    let summary = seen
        .iter()
        .position(|l| l.contains("lost=0"))
        .unwrap_or_else(|| panic!("a clean summary before the hold: {seen:?}"));
    let held_at = seen
        .iter()
        .position(|l| l.starts_with("demo held"))
        .unwrap();
    assert!(summary < held_at, "{seen:?}");
    println!("{}", seen[held_at..].join("\n"));

    // The metrics listener answers, ready, with the demo's jobs.
    let page = &held["status page"];
    let metrics = &held["metrics"];
    assert_eq!(
        held["readiness"],
        format!("{}/readyz", page.trim_end_matches('/'))
    );
    let (code, _) = get(&held["readiness"]).await.unwrap();
    assert_eq!(code, 200);
    let (code, text) = get(metrics).await.unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        sample(&text, "shr_jobs", &[("state", "completed")]),
        Some(jobs as f64),
        "{text}"
    );

    // `shr status`, exactly as printed, reads the same system; and against the printed
    // NATS URL.
    let printed: Vec<&str> = held["shr status"].split_whitespace().collect();
    assert_eq!(printed[0], shr.display().to_string());
    let output = Command::new(printed[0])
        .args(&printed[1..])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains(&format!("completed={jobs}")), "{table}");
    let output = Command::new(&shr)
        .args(["status", "--json", "--nats-url", &held["nats"]])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status["jobs"]["completed"], jobs as u64, "{status}");
    let runners = status["runners"].as_object().unwrap();
    assert!(runners["deleted"].as_u64() >= Some(jobs as u64), "{status}");
    let live: u64 = runners
        .iter()
        .filter(|(state, _)| *state != "deleted")
        .filter_map(|(_, n)| n.as_u64())
        .sum();
    assert_eq!(live, 0, "every runner reaped: {status}");

    // The page, as served and as Chromium renders it, shows those numbers.
    let (code, html) = get(page).await.unwrap();
    assert_eq!(code, 200);
    assert_page_matches(&html, &status);
    check_in_chromium(page, &status).await;

    // SIGINT stops it all: exit code 0, no child left (NATS included).
    let children: BTreeMap<u32, String> = descendants(pid)
        .into_iter()
        .filter_map(|c| Some((c, cmdline(c)?)))
        .collect();
    let nats = children
        .values()
        .filter(|l| l.contains("nats-server"))
        .count();
    assert_eq!(nats, 1, "the demo's nats-server: {children:?}");
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let exit = tokio::time::timeout(Duration::from_secs(60), demo.wait())
        .await
        .expect("the demo stops within a minute of SIGINT")
        .unwrap();
    let mut rest = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push(line);
    }
    assert_eq!(
        exit.code(),
        Some(0),
        "stdout after the hold: {rest:?}; stderr:\n{}",
        std::fs::read_to_string(dir.path().join("demo.err")).unwrap_or_default()
    );
    assert!(
        rest.iter().any(|l| l.contains("received SIGINT")),
        "{rest:?}"
    );
    // SIGKILLed children are reaped by init a moment later: poll, with a deadline.
    eventually(
        Duration::from_secs(10),
        "the demo's processes to be gone",
        || async {
            // The same pid with the same command line: still that process, not a reuse.
            let left = children
                .iter()
                .filter(|(c, line)| cmdline(**c).as_ref() == Some(*line))
                .count();
            (left == 0).then_some(())
        },
    )
    .await;
    let listening = tokio::net::TcpStream::connect(
        metrics
            .trim_start_matches("http://")
            .trim_end_matches("/metrics"),
    )
    .await;
    assert!(listening.is_err(), "the metrics listener is closed");
}
