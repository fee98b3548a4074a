#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Integration tests against a real nats-server; every test starts its own.

use std::time::{Duration, Instant};

use async_nats::jetstream::{
    kv,
    stream::{RetentionPolicy, StorageType},
};
use bus_schema::{ProviderKind, subject};
use serde::{Deserialize, Serialize};
use shr_nats::{
    Bus, DUPLICATE_WINDOW, Error, LEASE_TTL, Leases, Modified, NatsServer, Records, ServerOptions,
    connect, ensure_bus,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Counter {
    n: u64,
}

async fn start() -> (NatsServer, Bus) {
    let server = NatsServer::start(ServerOptions::default()).await.unwrap();
    let client = connect(&server.url()).await.unwrap();
    let bus = ensure_bus(&client).await.unwrap();
    (server, bus)
}

/// Polls `check` every 20 ms until it returns `Some`, panicking after `within`.
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn server_starts_on_a_free_port_and_dies_on_drop() {
    let a = NatsServer::start(ServerOptions::default()).await.unwrap();
    let b = NatsServer::start(ServerOptions::default()).await.unwrap();
    assert_ne!(a.port(), b.port());
    assert!(a.store_dir().is_dir());
    assert_eq!(a.url(), format!("nats://127.0.0.1:{}", a.port()));
    let port = a.port();
    drop(a);
    eventually(Duration::from_secs(5), "port to close", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn stop_shuts_the_server_down_cleanly_and_reaps_it() {
    let mut server = NatsServer::start(ServerOptions::default()).await.unwrap();
    let pid = server.pid().expect("a running server has a pid");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    server.stop(Duration::from_secs(10)).await.unwrap();
    assert_eq!(server.pid(), None);
    // Waited for, so not even a zombie is left. (A live process under that pid now would be
    // a reuse, which its command line tells apart.)
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        state.is_none_or(|s| s != "Z")
            && !String::from_utf8_lossy(&cmdline).contains("nats-server"),
        "nats-server {pid} is still there: {stat}"
    );
    // SIGTERM, not SIGKILL: the server logged its own orderly exit.
    let log = std::fs::read_to_string(server.log_file()).unwrap();
    assert!(log.contains("Server Exiting"), "{log}");
    // Stopping again is a no-op.
    server.stop(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn missing_binary_is_a_clear_error() {
    let err = NatsServer::start(ServerOptions {
        binary: Some("/nonexistent/nats-server".into()),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, Error::ServerProcess { .. }), "{err}");
}

#[tokio::test]
async fn ensure_bus_is_idempotent_concurrent_and_configured() {
    let server = NatsServer::start(ServerOptions::default()).await.unwrap();
    // Many processes at once on a fresh server, then once more.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = server.url();
        tasks.push(tokio::spawn(async move {
            let client = connect(&url).await.unwrap();
            ensure_bus(&client).await.map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let client = connect(&server.url()).await.unwrap();
    let bus = ensure_bus(&client).await.unwrap();

    let expect = [
        (
            subject::JOBS_STREAM,
            subject::ALL_JOB_EVENTS,
            RetentionPolicy::Limits,
        ),
        (
            subject::PROVISION_STREAM,
            subject::ALL_PROVISION,
            RetentionPolicy::WorkQueue,
        ),
        (
            subject::REAP_STREAM,
            subject::ALL_REAP,
            RetentionPolicy::WorkQueue,
        ),
        (
            subject::RUNNER_EVENTS_STREAM,
            subject::ALL_RUNNER_EVENTS,
            RetentionPolicy::Limits,
        ),
    ];
    for (name, subjects, retention) in expect {
        let mut stream = bus.js.get_stream(name).await.unwrap();
        let config = &stream.info().await.unwrap().config;
        assert_eq!(config.subjects, vec![subjects.to_owned()], "{name}");
        assert_eq!(config.retention, retention, "{name}");
        assert_eq!(config.storage, StorageType::File, "{name}");
        assert_eq!(config.duplicate_window, DUPLICATE_WINDOW, "{name}");
    }

    for (store, history) in [(&bus.jobs, 5), (&bus.runners, 5), (&bus.leases, 1)] {
        let status = store.status().await.unwrap();
        assert_eq!(status.history(), history, "{}", store.name);
    }
    assert_eq!(bus.jobs.name, subject::JOBS_BUCKET);
    assert_eq!(bus.runners.name, subject::RUNNERS_BUCKET);
    assert_eq!(bus.leases.name, subject::LEASES_BUCKET);
    assert_eq!(bus.leases.status().await.unwrap().max_age(), LEASE_TTL);
}

#[tokio::test]
async fn publish_with_the_same_msg_id_is_a_duplicate() {
    let (_server, bus) = start().await;
    let queued = subject::job_event(subject::JobEventKind::Queued, "acme").unwrap();
    let first = bus
        .publish_durable(&queued, b"one".to_vec(), Some("delivery-1"), None)
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.stream, subject::JOBS_STREAM);
    let second = bus
        .publish_durable(&queued, b"one".to_vec(), Some("delivery-1"), None)
        .await
        .unwrap();
    assert!(second.duplicate);
    assert_eq!(second.sequence, first.sequence);
    let other = bus
        .publish_durable(&queued, b"two".to_vec(), Some("delivery-2"), None)
        .await
        .unwrap();
    assert!(!other.duplicate);

    let provision = subject::provision("acme", ProviderKind::Local).unwrap();
    let ack = bus
        .publish_durable(&provision, b"cmd".to_vec(), None, None)
        .await
        .unwrap();
    assert_eq!(ack.stream, subject::PROVISION_STREAM);

    let bad = bus
        .publish_durable(&queued, Vec::new(), Some("bad\r\nid"), None)
        .await
        .unwrap_err();
    assert!(matches!(bad, Error::Header { .. }), "{bad}");
}

/// A publish nobody answers (the stream is missing, or a cluster is electing its leader) is
/// worth a retry: a consumer that treated it as permanent would drop its message for good.
#[tokio::test]
async fn a_publish_to_a_missing_stream_is_transient_and_goes_through_once_it_is_back() {
    let (server, bus) = start().await;
    let event = subject::runner_event("acme").unwrap();
    bus.js
        .delete_stream(subject::RUNNER_EVENTS_STREAM)
        .await
        .unwrap();
    let missing = bus
        .publish_durable(&event, b"created".to_vec(), Some("created-1"), None)
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::Publish { .. }), "{missing}");
    assert_eq!(
        missing.kind(),
        bus_schema::ErrorKind::Transient,
        "{missing}"
    );
    assert!(missing.kind().is_retryable());
    assert!(
        missing.to_string().contains(&event),
        "the subject is named: {missing}"
    );
    let client = connect(&server.url()).await.unwrap();
    ensure_bus(&client).await.unwrap();
    let ack = bus
        .publish_durable(&event, b"created".to_vec(), Some("created-1"), None)
        .await
        .unwrap();
    assert!(!ack.duplicate);
}

#[tokio::test]
async fn records_create_update_conflict_delete() {
    let (_server, bus) = start().await;
    let records: Records<Counter> = Records::new(bus.jobs.clone());
    assert_eq!(records.get("k").await.unwrap(), None);

    let r1 = records.create("k", &Counter { n: 1 }).await.unwrap();
    let err = records.create("k", &Counter { n: 9 }).await.unwrap_err();
    assert!(
        matches!(err, Error::AlreadyExists { .. }) && err.is_conflict(),
        "{err}"
    );

    let r2 = records.update("k", &Counter { n: 2 }, r1).await.unwrap();
    assert!(r2 > r1);
    let err = records
        .update("k", &Counter { n: 3 }, r1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::WrongRevision { expected, .. } if expected == r1),
        "{err}"
    );
    assert_eq!(
        records.get("k").await.unwrap(),
        Some((Counter { n: 2 }, r2))
    );

    records.create("other", &Counter { n: 0 }).await.unwrap();
    let mut keys = records.keys().await.unwrap();
    keys.sort();
    assert_eq!(keys, ["k", "other"]);

    // A deleted key reads as absent and can be created again.
    records.delete("k").await.unwrap();
    assert_eq!(records.get("k").await.unwrap(), None);
    assert_eq!(records.keys().await.unwrap(), ["other"]);
    records.create("k", &Counter { n: 7 }).await.unwrap();
    assert_eq!(records.get("k").await.unwrap().unwrap().0, Counter { n: 7 });

    records.purge("k").await.unwrap();
    assert_eq!(records.get("k").await.unwrap(), None);
    records.create("k", &Counter { n: 8 }).await.unwrap();

    // A value of another shape is a codec error, not a panic.
    bus.jobs.put("junk", "not msgpack".into()).await.unwrap();
    let err = records.get("junk").await.unwrap_err();
    assert!(matches!(err, Error::Codec { .. }), "{err}");
}

#[tokio::test]
async fn modify_under_concurrent_writers_loses_no_increment() {
    let (_server, bus) = start().await;
    let records: Records<Counter> = Records::new(bus.runners.clone());
    const TASKS: u64 = 8;
    const N: u64 = 25;
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let records = records.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..N {
                records
                    .modify::<Error, _>("counter", |c| {
                        Ok(Some(Counter {
                            n: c.map_or(0, |c| c.n) + 1,
                        }))
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (value, _) = records.get("counter").await.unwrap().unwrap();
    assert_eq!(value.n, TASKS * N);

    // No change requested: nothing is written.
    let unchanged = records
        .modify::<Error, _>("counter", |_| Ok(None))
        .await
        .unwrap();
    assert_eq!(unchanged, Modified::Unchanged);
    // The closure's own error aborts the loop.
    #[derive(Debug)]
    enum Mine {
        Refused,
        Store,
    }
    impl From<Error> for Mine {
        fn from(_: Error) -> Self {
            Mine::Store
        }
    }
    let refused = records
        .modify("counter", |_| Err::<Option<Counter>, _>(Mine::Refused))
        .await;
    assert!(matches!(refused, Err(Mine::Refused)));
}

#[tokio::test]
async fn lease_is_exclusive_until_released() {
    let (_server, bus) = start().await;
    let leases = Leases::new(bus.leases.clone());
    let key = subject::poll_lease_key("reg-1").unwrap();

    let mut a = leases.try_acquire(&key, "a").await.unwrap().unwrap();
    assert!(leases.try_acquire(&key, "b").await.unwrap().is_none());
    let before = a.revision();
    a.renew().await.unwrap();
    assert!(a.revision() > before);
    assert!(leases.try_acquire(&key, "b").await.unwrap().is_none());

    a.release().await.unwrap();
    let b = leases.try_acquire(&key, "b").await.unwrap().unwrap();
    assert_eq!(b.holder(), "b");
    assert!(leases.try_acquire(&key, "a").await.unwrap().is_none());

    // The same holder re-acquiring (a restart) takes over; the old handle is then stale.
    let mut b_again = leases.try_acquire(&key, "b").await.unwrap().unwrap();
    let mut stale = b;
    let err = stale.renew().await.unwrap_err();
    assert!(matches!(err, Error::LeaseLost { .. }), "{err}");
    b_again.renew().await.unwrap();
}

#[tokio::test]
async fn lease_expires_after_the_bucket_max_age() {
    let (_server, bus) = start().await;
    let store = bus
        .js
        .create_key_value(kv::Config {
            bucket: "test-short-leases".into(),
            history: 1,
            max_age: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .unwrap();
    let leases = Leases::new(store);
    let mut a = leases.try_acquire("k", "a").await.unwrap().unwrap();
    let b = eventually(Duration::from_secs(10), "lease to expire", || {
        let leases = leases.clone();
        async move { leases.try_acquire("k", "b").await.unwrap() }
    })
    .await;
    assert_eq!(b.holder(), "b");
    let err = a.renew().await.unwrap_err();
    assert!(matches!(err, Error::LeaseLost { .. }), "{err}");
}

#[tokio::test]
async fn restart_keeps_jetstream_data() {
    let (mut server, bus) = start().await;
    let port = server.port();
    let records: Records<Counter> = Records::new(bus.jobs.clone());
    let rev = records
        .create("survivor", &Counter { n: 42 })
        .await
        .unwrap();
    let queued = subject::job_event(subject::JobEventKind::Queued, "acme").unwrap();
    bus.publish_durable(&queued, b"event".to_vec(), Some("d-1"), None)
        .await
        .unwrap();

    server.restart().await.unwrap();
    assert_eq!(server.port(), port);

    // The old client reconnects on its own; a fresh one sees the same data.
    let client = connect(&server.url()).await.unwrap();
    let bus2 = ensure_bus(&client).await.unwrap();
    let records2: Records<Counter> = Records::new(bus2.jobs.clone());
    assert_eq!(
        records2.get("survivor").await.unwrap(),
        Some((Counter { n: 42 }, rev))
    );
    let mut jobs = bus2.js.get_stream(subject::JOBS_STREAM).await.unwrap();
    assert_eq!(jobs.info().await.unwrap().state.messages, 1);
    // The duplicate window survives too.
    let again = bus2
        .publish_durable(&queued, b"event".to_vec(), Some("d-1"), None)
        .await
        .unwrap();
    assert!(again.duplicate);

    let old = eventually(Duration::from_secs(10), "old client to reconnect", || {
        let records = records.clone();
        async move { records.get("survivor").await.ok().flatten() }
    })
    .await;
    assert_eq!(old.0.n, 42);

    server.kill().await.unwrap();
    assert!(connect(&server.url()).await.is_err());
}
