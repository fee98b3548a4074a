#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The shipped security configuration on a live nats-server: generated for tenants a, b and
//! c, each identity connects with its own seed and inbox prefix. Agents work with their own
//! subjects, keys and consumers; with B's credentials every way into A's is refused by the
//! server.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use bus_schema::{ProviderKind, subject};
use futures::StreamExt;
use secrecy::SecretString;
use shr_nats::security::{self, Role};
use shr_nats::{Bus, Leases, NatsServer, Records, ServerOptions};

struct Deployment {
    server: NatsServer,
    dir: tempfile::TempDir,
}

impl Deployment {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        security::generate(dir.path(), &["a".into(), "b".into(), "c".into()]).unwrap();
        let conf = dir.path().join("server.conf");
        std::fs::write(&conf, "include accounts.conf\n").unwrap();
        let server = NatsServer::start(ServerOptions {
            config: Some(conf),
            ..Default::default()
        })
        .await
        .unwrap();
        Self { server, dir }
    }

    fn seed(&self, role: &Role) -> SecretString {
        let seed = std::fs::read_to_string(security::seed_path(self.dir.path(), role)).unwrap();
        SecretString::from(seed.trim().to_owned())
    }

    async fn connect(&self, role: &Role) -> async_nats::Client {
        shr_nats::connect_as(
            &self.server.url(),
            &role.name(),
            &role.identity(self.seed(role)),
        )
        .await
        .unwrap()
    }

    /// A client that records the server's errors (permission violations) and gives up on a
    /// request after a second.
    async fn connect_watched(&self, role: &Role) -> (async_nats::Client, Violations) {
        let seen = Violations::default();
        let log = seen.clone();
        let client = async_nats::ConnectOptions::new()
            .nkey(seed_text(&self.seed(role)))
            .custom_inbox_prefix(role.inbox_prefix())
            .request_timeout(Some(Duration::from_secs(1)))
            .event_callback(move |event| {
                let log = log.clone();
                async move {
                    if let async_nats::Event::ServerError(error) = event {
                        log.0.lock().unwrap().push(error.to_string());
                    }
                }
            })
            .connect(self.server.url())
            .await
            .unwrap();
        (client, seen)
    }
}

fn seed_text(seed: &SecretString) -> String {
    use secrecy::ExposeSecret;
    seed.expose_secret().to_owned()
}

#[derive(Clone, Default)]
struct Violations(Arc<Mutex<Vec<String>>>);

impl Violations {
    /// Waits until the server reported a permissions violation mentioning `subject`.
    async fn wait_for(&self, subject: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let seen = self.0.lock().unwrap().clone();
            if seen
                .iter()
                .any(|e| e.contains("Permissions Violation") && e.contains(subject))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no permissions violation for {subject}; saw {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn central_bus(d: &Deployment) -> Bus {
    let client = d.connect(&Role::Central).await;
    shr_nats::ensure_bus(&client).await.unwrap()
}

fn agent(t: &str) -> Role {
    Role::Agent(t.into())
}

/// Binds tenant `t`'s provisioner consumer for the local provider the way the actors do: by
/// name, without stream info, with one filter.
async fn bind_provision(
    js: &jetstream::Context,
    t: &str,
) -> Result<jetstream::consumer::PullConsumer, String> {
    let name = subject::provisioner_consumer(t, ProviderKind::Local).unwrap();
    let config = pull::Config {
        durable_name: Some(name.clone()),
        filter_subject: subject::provision(t, ProviderKind::Local).unwrap(),
        ..Default::default()
    };
    match js
        .get_consumer_from_stream::<pull::Config, _, _>(&name, subject::PROVISION_STREAM)
        .await
    {
        Ok(c) => Ok(c),
        Err(_) => js
            .create_consumer_on_stream(config, subject::PROVISION_STREAM)
            .await
            .map_err(|e| e.to_string()),
    }
}

#[tokio::test]
async fn an_agent_works_with_its_own_subjects_keys_and_consumers() {
    let d = Deployment::start().await;
    let central = central_bus(&d).await;
    let a = d.connect(&agent("a")).await;
    // Look-up only: the agent's grant has no stream or bucket administration.
    let bus = shr_nats::lookup_bus(&a).await.unwrap();
    let (probe, violations) = d.connect_watched(&agent("a")).await;
    for admin in [
        format!("$JS.API.STREAM.UPDATE.{}", subject::PROVISION_STREAM),
        "$JS.API.STREAM.CREATE.KV_other".to_owned(),
    ] {
        probe.publish(admin.clone(), "{}".into()).await.unwrap();
        violations.wait_for(&admin).await;
    }

    // Its provision queue: central publishes, the agent's consumer gets it and acks.
    let command = subject::provision("a", ProviderKind::Local).unwrap();
    central
        .publish_durable(&command, b"hello".to_vec(), Some("a.provision.x.1"), None)
        .await
        .unwrap();
    let consumer = bind_provision(&bus.js, "a").await.unwrap();
    let mut batch = consumer.fetch().max_messages(1).messages().await.unwrap();
    let msg = batch.next().await.unwrap().unwrap();
    assert_eq!(&msg.payload[..], b"hello");
    msg.ack().await.unwrap();

    // Its reap consumer, runner events and reap commands.
    let reap = subject::reaper_consumer("a").unwrap();
    bus.js
        .create_consumer_on_stream(
            pull::Config {
                durable_name: Some(reap),
                filter_subject: subject::reap("a").unwrap(),
                ..Default::default()
            },
            subject::REAP_STREAM,
        )
        .await
        .unwrap();
    for s in [
        subject::runner_event("a").unwrap(),
        subject::reap("a").unwrap(),
    ] {
        bus.publish_durable(&s, b"x".to_vec(), None, None)
            .await
            .unwrap();
    }

    // Its runner records: write, read, list; its sweep lease.
    let runners: Records<u32> = Records::new(bus.runners.clone());
    let key = subject::runner_key("shr-a-1-1").unwrap();
    runners.create(&key, &7).await.unwrap();
    assert_eq!(runners.get(&key).await.unwrap().map(|(v, _)| v), Some(7));
    let central_runners: Records<u32> = Records::new(central.runners.clone());
    central_runners
        .create(&subject::runner_key("shr-b-1-1").unwrap(), &8)
        .await
        .unwrap();
    let keys = runners
        .keys_matching(&subject::runner_keys_of("a").unwrap())
        .await
        .unwrap();
    assert_eq!(keys, vec![key.clone()]);
    let lease = Leases::new(bus.leases.clone())
        .try_acquire(&subject::sweep_lease_key("a").unwrap(), "agent-a")
        .await
        .unwrap();
    assert!(lease.is_some());
}

#[tokio::test]
async fn with_b_s_credentials_a_s_subjects_keys_and_consumers_are_refused() {
    let d = Deployment::start().await;
    let central = central_bus(&d).await;
    // A's world: a pending provision command, a bound consumer, a runner record.
    let command = subject::provision("a", ProviderKind::Local).unwrap();
    central
        .publish_durable(&command, b"for-a".to_vec(), Some("a.provision.x.1"), None)
        .await
        .unwrap();
    let a = d.connect(&agent("a")).await;
    let a_bus = shr_nats::lookup_bus(&a).await.unwrap();
    bind_provision(&a_bus.js, "a").await.unwrap();
    let a_key = subject::runner_key("shr-a-1-1").unwrap();
    Records::<u32>::new(a_bus.runners.clone())
        .create(&a_key, &1)
        .await
        .unwrap();

    let (b, violations) = d.connect_watched(&agent("b")).await;
    let b_bus = shr_nats::lookup_bus(&b).await.unwrap();

    // Subscribing to A's subjects.
    let _sub = b.subscribe(command.clone()).await.unwrap();
    violations.wait_for(&command).await;
    let a_inbox = "_INBOX_a.>";
    let _sub = b.subscribe(a_inbox).await.unwrap();
    violations.wait_for(a_inbox).await;

    // Publishing on A's subjects: runner events, reap commands, A's KV keys.
    for s in [
        subject::runner_event("a").unwrap(),
        subject::reap("a").unwrap(),
        format!("$KV.{}.{a_key}", subject::RUNNERS_BUCKET),
    ] {
        b.publish(s.clone(), "forged".into()).await.unwrap();
        violations.wait_for(&s).await;
    }
    let events = central
        .js
        .get_stream(subject::RUNNER_EVENTS_STREAM)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages;
    assert_eq!(events, 0, "nothing forged reached the stream");

    // Reading A's KV keys (direct get) and listing them.
    let b_runners: Records<u32> = Records::new(b_bus.runners.clone());
    assert!(b_runners.get(&a_key).await.is_err());
    violations.wait_for(&a_key).await;
    assert!(
        b_runners
            .keys_matching(&subject::runner_keys_of("a").unwrap())
            .await
            .is_err()
    );

    // Listing A's key names: stream info with a subjects filter (what `nats kv ls` and a
    // bucket handle would use) is refused; the identical create that opens a bucket answers
    // without subjects; a create with another configuration (one that would list or copy
    // keys elsewhere) is refused by the server and changes nothing.
    for bucket in [
        subject::RUNNERS_BUCKET,
        subject::JOBS_BUCKET,
        subject::LEASES_BUCKET,
    ] {
        let info = format!("$JS.API.STREAM.INFO.KV_{bucket}");
        let ask = serde_json::json!({ "subjects_filter": ">" });
        assert!(
            b.request(info.clone(), serde_json::to_vec(&ask).unwrap().into())
                .await
                .is_err()
        );
        violations.wait_for(&info).await;
    }
    let create = format!("$JS.API.STREAM.CREATE.KV_{}", subject::RUNNERS_BUCKET);
    let reply = b.request(create.clone(), "{}".into()).await.unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert!(reply.get("error").is_some(), "{reply}");
    let sneaky = serde_json::json!({
        "name": format!("KV_{}", subject::RUNNERS_BUCKET),
        "subjects": [format!("$KV.{}.>", subject::RUNNERS_BUCKET)],
        "republish": { "src": ">", "dest": "_INBOX_b.keys.>", "headers_only": true },
    });
    let reply = b
        .request(create, serde_json::to_vec(&sneaky).unwrap().into())
        .await
        .unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert!(reply.get("error").is_some(), "{reply}");
    let runners_info = central
        .js
        .get_stream(format!("KV_{}", subject::RUNNERS_BUCKET))
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert!(runners_info.config.republish.is_none());
    let text = format!("{:?}", b_bus.runners.stream.cached_info());
    assert!(!text.contains("shr-a-1-1"), "{text}");

    // Fetching from A's consumer: look-up, create and next are all refused.
    assert!(bind_provision(&b_bus.js, "a").await.is_err());
    let next = format!(
        "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
        subject::PROVISION_STREAM,
        subject::provisioner_consumer("a", ProviderKind::Local).unwrap()
    );
    assert!(b.request(next.clone(), "1".into()).await.is_err());
    violations.wait_for(&next).await;
    // A consumer under B's own name and filter subject whose body asks for A's subjects is
    // rejected by the server (the filter in the subject must match the body).
    let b_name = subject::provisioner_consumer("b", ProviderKind::Local).unwrap();
    let b_filter = subject::provision("b", ProviderKind::Local).unwrap();
    let smuggle = serde_json::json!({
        "stream_name": subject::PROVISION_STREAM,
        "config": { "durable_name": b_name, "filter_subject": command, "ack_policy": "explicit" },
        "action": ""
    });
    let reply = b
        .request(
            format!(
                "$JS.API.CONSUMER.CREATE.{}.{b_name}.{b_filter}",
                subject::PROVISION_STREAM
            ),
            serde_json::to_vec(&smuggle).unwrap().into(),
        )
        .await
        .unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert!(reply.get("error").is_some(), "{reply}");

    // A still gets its command: nothing B did consumed it.
    let mine = bind_provision(&a_bus.js, "a").await.unwrap();
    let mut batch = mine.fetch().max_messages(1).messages().await.unwrap();
    assert_eq!(&batch.next().await.unwrap().unwrap().payload[..], b"for-a");
}

#[tokio::test]
async fn the_webhook_identity_publishes_job_events_only() {
    let d = Deployment::start().await;
    let central = central_bus(&d).await;
    let (hook, violations) = d.connect_watched(&Role::Webhook).await;
    let bus = shr_nats::lookup_bus(&hook).await.unwrap();
    let queued = subject::job_event(subject::JobEventKind::Queued, "a").unwrap();
    let ack = bus
        .publish_durable(&queued, b"job".to_vec(), Some("a.reg.gh.d1"), None)
        .await
        .unwrap();
    assert!(!ack.duplicate);
    let again = bus
        .publish_durable(&queued, b"job".to_vec(), Some("a.reg.gh.d1"), None)
        .await
        .unwrap();
    assert!(again.duplicate, "delivery ids deduplicate");
    let provision = subject::provision("a", ProviderKind::Local).unwrap();
    hook.publish(provision.clone(), "x".into()).await.unwrap();
    violations.wait_for(&provision).await;
    let runners: Records<u32> = Records::new(bus.runners.clone());
    assert!(
        runners
            .get(&subject::runner_key("shr-a-1-1").unwrap())
            .await
            .is_err()
    );
    drop(central);
}

#[tokio::test]
async fn a_s_sealed_jit_config_is_ciphertext_to_everyone_but_a() {
    use bus_schema::{JitPrivateKey, SealedSecret, Secret};
    let d = Deployment::start().await;
    let central = central_bus(&d).await;
    let (a_key, b_key) = (JitPrivateKey::generate(), JitPrivateKey::generate());
    let jit = Secret::new("eyJqaXQiOiJmb3ItYSJ9");
    // The scheduler seals to A's public key and publishes on A's provision subject.
    let sealed = a_key.public_key().seal(&jit).unwrap();
    let command = subject::provision("a", ProviderKind::Local).unwrap();
    central
        .publish_durable(
            &command,
            bus_schema::encode(&sealed).unwrap(),
            Some("a.provision.sealed.1"),
            None,
        )
        .await
        .unwrap();

    // B cannot fetch it; and what the stream holds (what the central identity can read) is
    // ciphertext that B's key does not open.
    let b = d.connect(&agent("b")).await;
    let b_bus = shr_nats::lookup_bus(&b).await.unwrap();
    assert!(bind_provision(&b_bus.js, "a").await.is_err());
    let stored = central
        .js
        .get_stream(subject::PROVISION_STREAM)
        .await
        .unwrap()
        .get_last_raw_message_by_subject(&command)
        .await
        .unwrap();
    assert!(
        !stored.payload.windows(8).any(|w| w == b"eyJqaXQi"),
        "the JIT config is stored in clear"
    );
    let on_stream: SealedSecret = bus_schema::decode(&stored.payload).unwrap();
    assert!(b_key.open(&on_stream).is_err());

    // A's agent fetches it and opens it.
    let a = d.connect(&agent("a")).await;
    let a_bus = shr_nats::lookup_bus(&a).await.unwrap();
    let consumer = bind_provision(&a_bus.js, "a").await.unwrap();
    let mut batch = consumer.fetch().max_messages(1).messages().await.unwrap();
    let msg = batch.next().await.unwrap().unwrap();
    let received: SealedSecret = bus_schema::decode(&msg.payload).unwrap();
    assert_eq!(a_key.open(&received).unwrap(), jit);
    msg.ack().await.unwrap();
}
