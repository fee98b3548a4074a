//! One GitHub credential shared by two replicas (two NATS connections, as two scheduler
//! processes would have): JIT pacing holds cluster-wide, and the rate budget one replica reads
//! is what the other decides its optional calls on. Against a real nats-server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actors::credential::KvCredential;
use github_client::{RateBudget, SharedCredential};
use shr_nats::{Bus, NatsServer};

async fn replica(nats: &NatsServer) -> Bus {
    let client = shr_nats::connect(&nats.url()).await.unwrap();
    shr_nats::ensure_bus(&client).await.unwrap()
}

/// The most calls found in any window of `window` starting at a call.
fn busiest(times: &[Instant], window: Duration) -> usize {
    let mut times = times.to_vec();
    times.sort();
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| t.duration_since(times[i]) < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_a_credential_never_exceed_its_rate_in_any_window() {
    let nats = NatsServer::start(Default::default()).await.unwrap();
    // 20 calls per 2 s window (a scaled-down 150 a minute); each replica alone would let
    // 20 through per window, so together they would reach 40 without the shared pace.
    let (rate, window) = (20, Duration::from_secs(2));
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let bus = replica(&nats).await;
        replicas.push(Arc::new(
            KvCredential::new(bus.jobs.clone(), "pat-0123456789abcdef", rate, window).unwrap(),
        ));
    }
    let released = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (credential, released) = (replicas[i % 2].clone(), released.clone());
        tasks.push(tokio::spawn(async move {
            credential.pace().await;
            released.lock().unwrap().push(Instant::now());
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let released = released.lock().unwrap().clone();
    assert_eq!(released.len(), 60);
    let most = busiest(&released, window);
    assert!(
        most <= rate as usize,
        "{most} calls in one {window:?} window"
    );
    // And the pace is really used, not just avoided: 60 calls at 20 per 2 s with a burst of 2
    // span at least (60 - 2) x 2 s / 18 = 6.4 s.
    let first = released.iter().min().unwrap();
    let last = released.iter().max().unwrap();
    assert!(
        last.duration_since(*first) >= Duration::from_millis(6000),
        "{:?}",
        last.duration_since(*first)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_read_by_one_replica_is_seen_by_the_other() {
    let nats = NatsServer::start(Default::default()).await.unwrap();
    let (a, b) = (replica(&nats).await, replica(&nats).await);
    let window = Duration::from_secs(60);
    let one = KvCredential::new(a.jobs.clone(), "app-1-2", 150, window).unwrap();
    let other = KvCredential::new(b.jobs.clone(), "app-1-2", 150, window).unwrap();
    assert_eq!(other.budget(), None);
    let reset_at =
        chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + 3600, 0).unwrap();
    one.observed(RateBudget {
        limit: 5000,
        remaining: 400,
        used: 4600,
        reset_at,
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(seen) = other.budget() {
            assert_eq!((seen.limit, seen.remaining), (5000, 400));
            break;
        }
        assert!(Instant::now() < deadline, "the other replica never saw it");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
