//! `shr-lab bench-load …`: the load generator, run by `shr-lab bench` as its own process so
//! the sender's work does not share a runtime (or an allocator) with what is measured.
//!
//! Each mode warms up (untimed), then sends `--count` operations and prints one JSON line on
//! stdout: `{"latencies_us": [...], "elapsed_us": n, "sent": n}`. `sent` counts warm-up too.
//!
//! - `http`: signed `workflow_job` `queued` deliveries to `--url`, `--concurrency` in flight;
//!   latency is request → any 2xx answer.
//! - `provision`: like `http` one at a time, but each latency ends when the job's
//!   `runner.provision` command is seen on a core subscription at `--nats`.
//! - `publish`: JetStream publish of a 1 KiB payload, each awaited to its ack.
//! - `core`: core NATS publish → the same connection's subscription receives it (one hop
//!   through the server).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bus_schema::ProvisionRunner;
use bus_schema::subject;
use clap::{Args, ValueEnum};
use futures::StreamExt as _;

use super::{Deliveries, Prepared, WAIT, http_client, send};

/// The stream the publish floor writes to; made by the load process if absent.
pub const FLOOR_STREAM: &str = "BENCH_FLOOR";
const FLOOR_SUBJECT: &str = "bench.floor.publish";
const CORE_SUBJECT: &str = "bench.floor.core";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Http,
    Provision,
    Publish,
    Core,
}

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    #[arg(value_enum)]
    pub mode: Mode,
    /// Operations timed (after the warm-up).
    #[arg(long)]
    pub count: usize,
    /// Operations in flight (`http` only).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Warm-up operations, not timed.
    #[arg(long, default_value_t = 50)]
    pub warmup: usize,
    /// The webhook URL (`http`, `provision`).
    #[arg(long)]
    pub url: Option<String>,
    /// The NATS URL (`provision`, `publish`, `core`).
    #[arg(long)]
    pub nats: Option<String>,
    /// The first job id used (each delivery takes the next).
    #[arg(long, default_value_t = 5_000_000_000)]
    pub first_job_id: u64,
}

/// What one load run measured.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LoadReport {
    pub latencies_us: Vec<u64>,
    pub elapsed_us: u64,
    pub sent: usize,
}

pub async fn run(args: LoadArgs) -> anyhow::Result<std::process::ExitCode> {
    if args.count == 0 || args.concurrency == 0 {
        bail!("--count and --concurrency must be at least 1");
    }
    let report = match args.mode {
        Mode::Http => http(&args).await?,
        Mode::Provision => provision(&args).await?,
        Mode::Publish => publish(&args).await?,
        Mode::Core => core(&args).await?,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(std::process::ExitCode::SUCCESS)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn need<'a>(value: &'a Option<String>, flag: &str) -> anyhow::Result<&'a str> {
    value
        .as_deref()
        .with_context(|| format!("{flag} is required"))
}

async fn http(args: &LoadArgs) -> anyhow::Result<LoadReport> {
    let url = need(&args.url, "--url")?.to_owned();
    let client = http_client()?;
    let mut deliveries = Deliveries::new(args.first_job_id)?;
    for d in deliveries.make(args.warmup)? {
        send(&client, &url, &d).await?;
    }
    let batch = Arc::new(deliveries.make(args.count)?);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (batch, next, client, url) = (batch.clone(), next.clone(), client.clone(), url.clone());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(d) = batch.get(i) else {
                    return anyhow::Ok(latencies);
                };
                let t0 = Instant::now();
                send(&client, &url, d).await?;
                latencies.push(micros(t0.elapsed()));
            }
        });
    }
    let mut latencies_us = Vec::with_capacity(batch.len());
    while let Some(done) = workers.join_next().await {
        latencies_us.extend(done??);
    }
    Ok(LoadReport {
        latencies_us,
        elapsed_us: micros(started.elapsed()),
        sent: args.warmup + args.count,
    })
}

async fn provision(args: &LoadArgs) -> anyhow::Result<LoadReport> {
    let url = need(&args.url, "--url")?;
    let nats = async_nats::connect(need(&args.nats, "--nats")?).await?;
    let mut provisions = nats.subscribe(subject::ALL_PROVISION).await?;
    nats.flush().await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(msg) = provisions.next().await {
            let at = Instant::now();
            if let Ok(cmd) = bus_schema::decode::<ProvisionRunner>(&msg.payload) {
                let _ = tx.send((cmd.job_id, at));
            }
        }
    });
    let client = http_client()?;
    let mut deliveries = Deliveries::new(args.first_job_id)?;
    let mut time_one = async |d: &Prepared| -> anyhow::Result<u64> {
        let t0 = Instant::now();
        send(&client, url, d).await?;
        let found = tokio::time::timeout(WAIT, async {
            while let Some((id, at)) = rx.recv().await {
                if id == d.job_id {
                    return Some(at);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(at)) => Ok(micros(at.saturating_duration_since(t0))),
            _ => bail!("job {} was not provisioned within {WAIT:?}", d.job_id),
        }
    };
    for d in deliveries.make(args.warmup)? {
        time_one(&d).await?;
    }
    let batch = deliveries.make(args.count)?;
    let started = Instant::now();
    let mut latencies_us = Vec::with_capacity(batch.len());
    for d in &batch {
        latencies_us.push(time_one(d).await?);
    }
    let elapsed_us = micros(started.elapsed());
    reader.abort();
    Ok(LoadReport {
        latencies_us,
        elapsed_us,
        sent: args.warmup + args.count,
    })
}

async fn publish(args: &LoadArgs) -> anyhow::Result<LoadReport> {
    let nats = async_nats::connect(need(&args.nats, "--nats")?).await?;
    let js = async_nats::jetstream::new(nats);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: FLOOR_STREAM.into(),
        subjects: vec![FLOOR_SUBJECT.into()],
        ..Default::default()
    })
    .await?;
    let payload = bytes_of(1024);
    let one = async |js: &async_nats::jetstream::Context| -> anyhow::Result<u64> {
        let t0 = Instant::now();
        js.publish(FLOOR_SUBJECT, payload.clone()).await?.await?;
        Ok(micros(t0.elapsed()))
    };
    for _ in 0..args.warmup {
        one(&js).await?;
    }
    let started = Instant::now();
    let mut latencies_us = Vec::with_capacity(args.count);
    for _ in 0..args.count {
        latencies_us.push(one(&js).await?);
    }
    Ok(LoadReport {
        latencies_us,
        elapsed_us: micros(started.elapsed()),
        sent: args.warmup + args.count,
    })
}

async fn core(args: &LoadArgs) -> anyhow::Result<LoadReport> {
    let nats = async_nats::connect(need(&args.nats, "--nats")?).await?;
    let mut sub = nats.subscribe(CORE_SUBJECT).await?;
    nats.flush().await?;
    let payload = bytes_of(1024);
    let mut latencies_us = Vec::with_capacity(args.count);
    let mut started = Instant::now();
    for i in 0..args.warmup + args.count {
        if i == args.warmup {
            started = Instant::now();
        }
        let t0 = Instant::now();
        nats.publish(CORE_SUBJECT, payload.clone()).await?;
        match tokio::time::timeout(WAIT, sub.next()).await {
            Ok(Some(_)) => {}
            _ => bail!("core message {i} did not come back within {WAIT:?}"),
        }
        if i >= args.warmup {
            latencies_us.push(micros(t0.elapsed()));
        }
    }
    Ok(LoadReport {
        latencies_us,
        elapsed_us: micros(started.elapsed()),
        sent: args.warmup + args.count,
    })
}

fn bytes_of(n: usize) -> bytes::Bytes {
    bytes::Bytes::from(vec![b'x'; n])
}
