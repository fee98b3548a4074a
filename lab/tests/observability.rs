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
        // One process logs JSON, to prove the format works in a real run.
        .env(
            "SHR_LOG_FORMAT",
            if name == "scheduler" { "json" } else { "text" },
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

    // (b) Every process serves its metrics.
    let mut scraped = BTreeMap::new();
    for (name, addr) in &addrs {
        let (status, text) = get(&format!("http://{addr}/metrics")).await.unwrap();
        assert_eq!(status, 200, "{name}");
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
    let edge = &scraped["edge"];
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
    let text = Command::new(&bin)
        .args(["status", "--nats-url", &harness.nats_url])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    println!("shr status:\n{text}");
    assert!(text.contains(&format!("completed={jobs}")), "{text}");

    // (c) The status page in a real browser shows the same numbers.
    match chromium() {
        Some(browser) => {
            let url = format!("http://{}/", addrs["edge"]);
            let profile = tempfile::tempdir().unwrap();
            let dom = Command::new(&browser)
                .args(chromium_args(profile.path()))
                .arg("--dump-dom")
                .arg(&url)
                .output()
                .await
                .unwrap();
            assert!(dom.status.success(), "{dom:?}");
            let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
            for state in ["queued", "in_progress", "completed", "declined"] {
                assert_eq!(
                    by_id(&dom, &format!("jobs-{state}")),
                    Some(status["jobs"][state].to_string().as_str()),
                    "jobs-{state} on the page"
                );
            }
            for state in ["running", "busy", "deleted", "pending_force_delete"] {
                assert_eq!(
                    by_id(&dom, &format!("runners-{state}")),
                    Some(status["runners"][state].to_string().as_str()),
                    "runners-{state} on the page"
                );
            }
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
                .arg(&url)
                .output()
                .await
                .unwrap();
            assert!(done.status.success(), "{done:?}");
            let png = std::fs::read(&shot).unwrap();
            assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
            println!("status page screenshot: {}", shot.display());
        }
        None if std::env::var_os("SHR_REQUIRE_CHROMIUM").is_some() => {
            panic!("SHR_REQUIRE_CHROMIUM is set but no chromium is on PATH")
        }
        None => println!("chromium not found: the browser check is skipped"),
    }

    for mut p in procs {
        let _ = p.child.kill().await;
    }
    harness.stop().await;
}
