#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A real 3-node JetStream cluster on loopback, configured by the generator (`cluster` +
//! `security`): the bus is created with 3 replicas under the central identity, every stream
//! and bucket reports 3 replicas, and after one node is killed the state is still readable
//! and writable, by the central identity and by a tenant agent under its grant.

use std::time::{Duration, Instant};

use bus_schema::subject;
use secrecy::SecretString;
use shr_nats::security::{self, Role};
use shr_nats::{BusOptions, NatsCluster};

fn seed(dir: &std::path::Path, role: &Role) -> SecretString {
    let seed = std::fs::read_to_string(security::seed_path(dir, role)).unwrap();
    SecretString::from(seed.trim().to_owned())
}

/// Retries `f` until it succeeds or `patience` runs out (a Raft group may be electing a new
/// leader right after a node dies).
async fn eventually<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    what: &str,
    patience: Duration,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + patience;
    loop {
        match f().await {
            Ok(value) => return value,
            Err(error) if Instant::now() < deadline => {
                tracing::debug!(%error, what, "retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("{what}: {error}"),
        }
    }
}

#[tokio::test]
async fn replicated_state_survives_the_loss_of_one_node() {
    let dir = tempfile::tempdir().unwrap();
    security::generate(dir.path(), &["acme".into()]).unwrap();
    let mut cluster = NatsCluster::start(3, Some(&dir.path().join("accounts.conf")))
        .await
        .unwrap();
    let url = cluster.url();
    assert_eq!(url.split(',').count(), 3);

    let central = shr_nats::connect_as(
        &url,
        "central",
        &Role::Central.identity(seed(dir.path(), &Role::Central)),
    )
    .await
    .unwrap();
    NatsCluster::wait_jetstream(&central, Duration::from_secs(30))
        .await
        .unwrap();
    let bus = eventually("ensure_bus R3", Duration::from_secs(30), || {
        shr_nats::ensure_bus_with(&central, &BusOptions { replicas: 3 })
    })
    .await;

    // Every stream and bucket keeps three copies.
    let js = &bus.js;
    for stream in [
        subject::JOBS_STREAM.to_owned(),
        subject::PROVISION_STREAM.to_owned(),
        subject::REAP_STREAM.to_owned(),
        subject::RUNNER_EVENTS_STREAM.to_owned(),
        format!("KV_{}", subject::JOBS_BUCKET),
        format!("KV_{}", subject::RUNNERS_BUCKET),
        format!("KV_{}", subject::LEASES_BUCKET),
        format!("KV_{}", subject::REGISTRATIONS_BUCKET),
    ] {
        let mut handle = js.get_stream(&stream).await.unwrap();
        let info = handle.info().await.unwrap();
        assert_eq!(info.config.num_replicas, 3, "{stream}");
        let cluster_info = info.cluster.clone().expect("clustered stream");
        assert_eq!(cluster_info.replicas.len(), 2, "{stream}: two followers");
    }
    // Replicas beyond JetStream's limit are refused before anything is sent.
    let err = shr_nats::ensure_bus_with(&central, &BusOptions { replicas: 6 })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("1 to 5"), "{err}");

    // Some state before the loss.
    bus.jobs.put("acme.org.1", "before".into()).await.unwrap();
    let ack = bus
        .publish_durable(
            &subject::ALL_JOB_EVENTS.replace("*.*", "queued.acme"),
            b"one".to_vec(),
            Some("m1"),
            None,
        )
        .await
        .unwrap();
    assert!(!ack.duplicate);

    // Lose the node holding the jobs stream's leader: the worst case for that stream.
    let mut jobs_stream = js.get_stream(subject::JOBS_STREAM).await.unwrap();
    let leader = (jobs_stream.info().await.unwrap().cluster.clone())
        .unwrap()
        .leader
        .unwrap();
    let index: usize = leader
        .trim_start_matches("shr-node-")
        .parse::<usize>()
        .unwrap()
        - 1;
    cluster.kill(index).await.unwrap();

    // Still readable and writable, by the central identity...
    let value = eventually("read after loss", Duration::from_secs(30), || {
        let jobs = bus.jobs.clone();
        async move {
            match jobs.get("acme.org.1").await {
                Ok(Some(v)) => Ok(v),
                Ok(None) => Err("missing".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
    assert_eq!(&value[..], b"before");
    eventually("write after loss", Duration::from_secs(30), || {
        let jobs = bus.jobs.clone();
        async move { jobs.put("acme.org.2", "after".into()).await }
    })
    .await;
    let ack = eventually("publish after loss", Duration::from_secs(30), || {
        bus.publish_durable("shr.v1.job.queued.acme", b"two".to_vec(), Some("m2"), None)
    })
    .await;
    assert_eq!(
        ack.sequence, 2,
        "the stream kept its first message and took the second"
    );
    let info = jobs_stream.info().await.unwrap();
    assert_eq!(info.state.messages, 2);
    assert_ne!(
        info.cluster.clone().unwrap().leader.unwrap(),
        leader,
        "a new leader took over"
    );

    // ...and by a tenant agent under its grant, connected to the surviving nodes.
    let survivors: Vec<String> = (cluster.urls().into_iter().enumerate())
        .filter(|(i, _)| *i != index)
        .map(|(_, u)| u)
        .collect();
    let agent = Role::Agent("acme".into());
    let client = shr_nats::connect_as(
        &survivors.join(","),
        "agent-acme",
        &agent.identity(seed(dir.path(), &agent)),
    )
    .await
    .unwrap();
    let agent_bus = eventually("agent lookup", Duration::from_secs(30), || {
        shr_nats::lookup_bus_with(&client, &BusOptions { replicas: 3 })
    })
    .await;
    let key = subject::registration_key("acme", "acme-org").unwrap();
    eventually("agent write", Duration::from_secs(30), || {
        agent_bus.registrations.put(key.as_str(), "live".into())
    })
    .await;
    let read = bus.registrations.get(key.as_str()).await.unwrap();
    assert_eq!(read.as_deref(), Some(&b"live"[..]));

    // The lost node comes back and catches up.
    cluster.restart(index).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = jobs_stream.info().await.unwrap();
        let replicas = info.cluster.clone().unwrap().replicas;
        if replicas.len() == 2 && replicas.iter().all(|r| r.current) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted node never caught up: {replicas:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
