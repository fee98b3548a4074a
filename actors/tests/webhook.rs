#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The webhook actor against a real nats-server, over real HTTP (and HTTPS), with GitHub's
//! published payload examples (`tests/fixtures/`, byte-for-byte copies): every status code,
//! what lands in the jobs stream, the counters by outcome, and `/healthz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use actors::routing::{Route, Routing};
use actors::webhook::{self, WebhookState, WebhookStats};
use bus_schema::JobEvent;
use bus_schema::subject::JOBS_STREAM;
use reqwest::StatusCode;
use secrecy::SecretString;
use shr_nats::{Bus, NatsServer};

const SECRET: &str = "webhook-test-secret";
const PATH: &str = "/webhook";
const TENANT: &str = "acme";
const REGISTRATION: &str = "acme-org";
/// The job id in `workflow_job.queued.payload.json`.
const QUEUED_JOB_ID: u64 = 289_782_451;

/// Routes every repository to [`TENANT`] except those owned by `nobody`.
struct FixedRouting;

impl Routing for FixedRouting {
    fn route(
        &self,
        _host: &str,
        repo: &str,
        _org: Option<&str>,
        _ent: Option<&str>,
    ) -> Option<Route> {
        (!repo.starts_with("nobody/")).then(|| Route {
            tenant: TENANT.into(),
            registration: REGISTRATION.into(),
        })
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn queued() -> Vec<u8> {
    fixture("workflow_job.queued.payload.json")
}

/// The queued fixture with one JSON edit applied.
fn queued_with(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(&queued()).unwrap();
    edit(&mut value);
    serde_json::to_vec(&value).unwrap()
}

fn http_client() -> reqwest::Client {
    let _ = rustls_provider();
    reqwest::Client::builder().build().unwrap()
}

fn rustls_provider() -> Result<(), Arc<tokio_rustls::rustls::crypto::CryptoProvider>> {
    tokio_rustls::rustls::crypto::ring::default_provider().install_default()
}

struct Harness {
    server: NatsServer,
    bus: Bus,
    base: String,
    stats: Arc<WebhookStats>,
    client: reqwest::Client,
}

async fn harness(max_body: usize) -> Harness {
    harness_with(max_body, Arc::new(FixedRouting), Default::default()).await
}

async fn harness_with(
    max_body: usize,
    routing: Arc<dyn Routing>,
    secrets: std::collections::BTreeMap<String, SecretString>,
) -> Harness {
    let server = NatsServer::start(Default::default()).await.unwrap();
    let client = shr_nats::connect(&server.url()).await.unwrap();
    let bus = shr_nats::ensure_bus(&client).await.unwrap();
    let state = WebhookState::new(SecretString::from(SECRET), bus.clone(), routing)
        .with_registration_secrets(secrets);
    let stats = state.stats.clone();
    let router = webhook::router(state, PATH, max_body);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Harness {
        server,
        bus,
        base: format!("http://{addr}"),
        stats,
        client: http_client(),
    }
}

/// A delivery as GitHub sends it; `signature: None` leaves the header out.
struct Delivery<'a> {
    event: &'a str,
    id: Option<&'a str>,
    body: Vec<u8>,
    signature: Option<String>,
}

impl<'a> Delivery<'a> {
    fn signed(event: &'a str, id: &'a str, body: Vec<u8>) -> Self {
        let signature = Some(webhook::sign(SECRET.as_bytes(), &body));
        Self {
            event,
            id: Some(id),
            body,
            signature,
        }
    }
}

impl Harness {
    async fn deliver(&self, d: Delivery<'_>) -> (StatusCode, String) {
        deliver_to(&self.client, &format!("{}{PATH}", self.base), d).await
    }

    async fn stored(&self) -> u64 {
        let stream = self.bus.js.get_stream(JOBS_STREAM).await.unwrap();
        stream.cached_info().state.messages
    }
}

async fn deliver_to(client: &reqwest::Client, url: &str, d: Delivery<'_>) -> (StatusCode, String) {
    let mut req = client
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-GitHub-Event", d.event)
        .header("X-GitHub-Hook-ID", "42")
        .body(d.body);
    if let Some(id) = d.id {
        req = req.header("X-GitHub-Delivery", id);
    }
    if let Some(sig) = d.signature {
        req = req.header("X-Hub-Signature-256", sig);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

#[tokio::test]
async fn queued_delivery_is_published_once_with_the_delivery_id() {
    let h = harness(1 << 20).await;
    let (status, body) = h
        .deliver(Delivery::signed("workflow_job", "d-1", queued()))
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "accepted\n"));
    assert_eq!(h.stored().await, 1);

    let stream = h.bus.js.get_stream(JOBS_STREAM).await.unwrap();
    let subject = format!("shr.v1.job.queued.{TENANT}");
    let msg = stream
        .get_last_raw_message_by_subject(&subject)
        .await
        .unwrap();
    let msg_id = msg
        .headers
        .get("Nats-Msg-Id")
        .map(|v| v.as_str().to_owned());
    // Deduplicated within the tenant and registration: the id leads with both.
    let expected = bus_schema::msg_id::delivery(TENANT, REGISTRATION, "d-1");
    assert_eq!(msg_id.as_deref(), Some(expected.as_str()));
    let JobEvent::Queued(event) = JobEvent::decode(&subject, &msg.payload).unwrap() else {
        panic!("not a queued event");
    };
    assert_eq!(event.tenant, TENANT);
    assert_eq!(event.registration, REGISTRATION);
    assert_eq!(event.job.job_id, QUEUED_JOB_ID);
    assert_eq!(event.job.repo, "Codertocat/Hello-World");
    assert_eq!(event.job.labels, ["ubuntu-latest"]);
    assert_eq!(event.delivery_id.as_deref(), Some("d-1"));

    // GitHub's redelivery reuses the delivery id: absorbed, not stored again.
    let (status, body) = h
        .deliver(Delivery::signed("workflow_job", "d-1", queued()))
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "duplicate\n"));
    assert_eq!(h.stored().await, 1);
    assert_eq!(h.stats.accepted.load(Ordering::Relaxed), 1);
    assert_eq!(h.stats.duplicates.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn bad_signatures_are_401_and_publish_nothing() {
    let h = harness(1 << 20).await;
    let wrong_secret = webhook::sign(b"not-the-secret", &queued());
    let tampered = {
        let mut body = queued();
        let sig = webhook::sign(SECRET.as_bytes(), &body);
        body[10] ^= 1;
        (body, sig)
    };
    let cases = [
        ("missing", queued(), None),
        ("not hex", queued(), Some("sha256=zz".to_owned())),
        ("sha1 only", queued(), Some("sha1=0123".to_owned())),
        ("wrong secret", queued(), Some(wrong_secret)),
        ("tampered body", tampered.0, Some(tampered.1)),
    ];
    for (case, body, signature) in cases {
        let (status, _) = h
            .deliver(Delivery {
                event: "workflow_job",
                id: Some("d-sig"),
                body,
                signature,
            })
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}");
    }
    assert_eq!(h.stored().await, 0);
    assert_eq!(h.stats.bad_signature.load(Ordering::Relaxed), 5);
}

#[tokio::test]
async fn malformed_deliveries_are_400_and_publish_nothing() {
    let h = harness(1 << 20).await;
    let no_job_id = queued_with(|v| {
        v["workflow_job"].as_object_mut().unwrap().remove("id");
    });
    let cases = [
        (
            "not JSON",
            b"{\"action\": \"queued\",".to_vec(),
            Some("d-bad"),
        ),
        ("no workflow_job.id", no_job_id, Some("d-bad")),
        ("no X-GitHub-Delivery", queued(), None),
    ];
    for (case, body, id) in cases {
        let mut d = Delivery::signed("workflow_job", "", body);
        d.id = id;
        let (status, _) = h.deliver(d).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}");
    }
    assert_eq!(h.stored().await, 0);
    assert_eq!(h.stats.malformed.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn oversize_body_is_413() {
    let h = harness(1024).await;
    let body = queued();
    assert!(body.len() > 1024);
    let (status, _) = h
        .deliver(Delivery::signed("workflow_job", "d-big", body))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(h.stored().await, 0);
    assert_eq!(h.stats.too_large.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn ignored_deliveries_are_202_and_counted() {
    let h = harness(1 << 20).await;
    let cases = [
        ("push", "push", queued()),
        (
            "waiting action",
            "workflow_job",
            fixture("workflow_job.waiting.payload.json"),
        ),
        (
            "unrouted repository",
            "workflow_job",
            queued_with(|v| v["repository"]["full_name"] = "nobody/else".into()),
        ),
    ];
    for (case, event, body) in cases {
        let (status, _) = h.deliver(Delivery::signed(event, "d-ignored", body)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{case}");
    }
    assert_eq!(h.stored().await, 0);
    let s = &h.stats;
    assert_eq!(s.ignored_event.load(Ordering::Relaxed), 1);
    assert_eq!(s.ignored_action.load(Ordering::Relaxed), 1);
    assert_eq!(s.unrouted.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn ping_is_answered_with_pong() {
    let h = harness(1 << 20).await;
    let ping = fixture("ping.payload.json");
    let (status, body) = h.deliver(Delivery::signed("ping", "d-ping", ping)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "pong\n"));
    assert_eq!(h.stored().await, 0);
}

#[tokio::test]
async fn bus_down_is_503() {
    let mut h = harness(1 << 20).await;
    h.server.kill().await.unwrap();
    let (status, _) = h
        .deliver(Delivery::signed("workflow_job", "d-down", queued()))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h.stats.publish_failed.load(Ordering::Relaxed), 1);
    assert_eq!(h.stats.accepted.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn counters_by_outcome_healthz_and_no_second_metrics_route() {
    let h = harness(1 << 20).await;
    h.deliver(Delivery::signed("workflow_job", "d-m1", queued()))
        .await;
    h.deliver(Delivery::signed("workflow_job", "d-m1", queued()))
        .await;
    h.deliver(Delivery::signed("push", "d-m2", queued())).await;
    let mut unsigned = Delivery::signed("workflow_job", "d-m3", queued());
    unsigned.signature = None;
    h.deliver(unsigned).await;

    let counts: std::collections::BTreeMap<&str, u64> = h
        .stats
        .outcomes()
        .into_iter()
        .map(|(outcome, n)| (outcome, n.load(Ordering::Relaxed)))
        .collect();
    for (outcome, value) in [
        ("accepted", 1),
        ("duplicate", 1),
        ("ignored_event", 1),
        ("bad_signature", 1),
        ("malformed", 0),
    ] {
        assert_eq!(counts[outcome], value, "{outcome}: {counts:?}");
    }

    // The process's one metrics listener exports these; the webhook port serves none.
    let resp = h
        .client
        .get(format!("{}/metrics", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let resp = h
        .client
        .get(format!("{}/healthz", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn https_with_a_self_signed_certificate() {
    let h = harness(1 << 20).await;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();

    let config = actors::tls::server_config(&cert_path, &key_path).unwrap();
    let state = WebhookState::new(
        SecretString::from(SECRET),
        h.bus.clone(),
        Arc::new(FixedRouting),
    );
    let router = webhook::router(state, PATH, 1 << 20);
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = tcp.local_addr().unwrap();
    let listener = actors::tls::TlsListener::new(tcp, config).unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let _ = rustls_provider();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", addr.port());
    let resp = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, body) = deliver_to(
        &client,
        &format!("{base}{PATH}"),
        Delivery::signed("workflow_job", "d-tls", queued()),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "accepted\n"));
    assert_eq!(h.stored().await, 1);

    // A client that does not trust the certificate gets no answer at all.
    let untrusted = reqwest::Client::builder()
        .resolve("localhost", addr)
        .build()
        .unwrap();
    assert!(
        untrusted
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err()
    );
    // Nor does a plain-HTTP one.
    let plain = http_client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    // An invalid key file is named in the error.
    std::fs::write(&key_path, "not a key").unwrap();
    let err = actors::tls::server_config(&cert_path, &key_path).unwrap_err();
    assert!(err.to_string().contains("key.pem"), "{err}");
}

/// Posts `body` as GitHub's form-encoded delivery, signed over the raw (encoded) body.
async fn deliver_form(h: &Harness, id: &str, body: &str, signature: &str) -> (StatusCode, String) {
    let resp = h
        .client
        .post(format!("{}{PATH}", h.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-GitHub-Event", "workflow_job")
        .header("X-GitHub-Hook-ID", "42")
        .header("X-GitHub-Delivery", id)
        .header("X-Hub-Signature-256", signature)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

#[tokio::test]
async fn form_encoded_delivery_is_accepted_like_json() {
    let h = harness(1 << 20).await;
    let json = String::from_utf8(queued()).unwrap();
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &json)
        .finish();
    assert!(
        form.starts_with("payload=%7B"),
        "the JSON is encoded: {form}"
    );
    let signature = webhook::sign(SECRET.as_bytes(), form.as_bytes());
    let (status, body) = deliver_form(&h, "f-1", &form, &signature).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "accepted\n"));
    assert_eq!(h.stored().await, 1);
    let stream = h.bus.js.get_stream(JOBS_STREAM).await.unwrap();
    let subject = format!("shr.v1.job.queued.{TENANT}");
    let msg = stream
        .get_last_raw_message_by_subject(&subject)
        .await
        .unwrap();
    let JobEvent::Queued(event) = JobEvent::decode(&subject, &msg.payload).unwrap() else {
        panic!("not a queued event");
    };
    assert_eq!(event.job.job_id, QUEUED_JOB_ID);
    assert_eq!(event.delivery_id.as_deref(), Some("f-1"));
}

#[tokio::test]
async fn form_encoded_delivery_is_signed_over_the_raw_body_and_needs_a_payload() {
    let h = harness(1 << 20).await;
    let json = String::from_utf8(queued()).unwrap();
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &json)
        .finish();
    // A signature over the decoded JSON is not GitHub's: the HMAC covers the bytes sent.
    let over_json = webhook::sign(SECRET.as_bytes(), json.as_bytes());
    let (status, _) = deliver_form(&h, "f-2", &form, &over_json).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let no_payload = "other=1";
    let signature = webhook::sign(SECRET.as_bytes(), no_payload.as_bytes());
    let (status, _) = deliver_form(&h, "f-3", no_payload, &signature).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(h.stored().await, 0);
    assert_eq!(h.stats.malformed.load(Ordering::Relaxed), 1);
}

/// Two tenants' registrations on one repository, with disjoint labels and their own secrets.
fn two_registrations_on_one_repo() -> Arc<registration::Config> {
    let text = r#"
[controller]
id = "test"
[webhook]
secret = "env:GLOBAL_HOOK_SECRET"
[tenants.acme.providers.local]
[tenants.globex.providers.local]
[[registrations]]
name = "acme-hello"
tenant = "acme"
scope = "repo"
url = "https://github.com/Codertocat/Hello-World"
auth = { pat = "env:P" }
labels = ["acme-runner"]
webhook_secret = "env:ACME_HOOK_SECRET"
[[registrations]]
name = "globex-hello"
tenant = "globex"
scope = "repo"
url = "https://github.com/Codertocat/Hello-World"
auth = { pat = "env:P" }
labels = ["globex-runner"]
webhook_secret = "env:GLOBEX_HOOK_SECRET"
"#;
    Arc::new(registration::Config::parse(text, "two.toml", &clouds::Registry).unwrap())
}

#[tokio::test]
async fn two_registrations_on_one_repo_with_disjoint_labels_both_get_their_jobs() {
    const ACME: &str = "acme-hook-secret";
    const GLOBEX: &str = "globex-hook-secret";
    let secrets = [
        ("acme-hello".to_owned(), SecretString::from(ACME)),
        ("globex-hello".to_owned(), SecretString::from(GLOBEX)),
    ]
    .into_iter()
    .collect();
    let h = harness_with(1 << 20, two_registrations_on_one_repo(), secrets).await;
    let job = |id: u64, label: &str| {
        let label = label.to_owned();
        queued_with(move |v| {
            v["workflow_job"]["id"] = id.into();
            v["workflow_job"]["labels"] = serde_json::json!([label]);
        })
    };
    let signed_with = |secret: &str, id: &'static str, body: Vec<u8>| Delivery {
        event: "workflow_job",
        id: Some(id),
        signature: Some(webhook::sign(secret.as_bytes(), &body)),
        body,
    };
    let (status, _) = h
        .deliver(signed_with(ACME, "a-1", job(1, "acme-runner")))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = h
        .deliver(signed_with(GLOBEX, "g-1", job(2, "globex-runner")))
        .await;
    assert_eq!(status, StatusCode::OK);
    // Another tenant's secret, or the global one, cannot deliver to a registration that has
    // its own.
    for (secret, id) in [(ACME, "x-1"), (SECRET, "x-2")] {
        let (status, _) = h
            .deliver(signed_with(secret, id, job(3, "globex-runner")))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "signed with {secret}");
    }
    assert_eq!(h.stored().await, 2);

    let stream = h.bus.js.get_stream(JOBS_STREAM).await.unwrap();
    for (tenant, registration, job_id) in [("acme", "acme-hello", 1), ("globex", "globex-hello", 2)]
    {
        let subject = format!("shr.v1.job.queued.{tenant}");
        let msg = stream
            .get_last_raw_message_by_subject(&subject)
            .await
            .unwrap();
        let JobEvent::Queued(event) = JobEvent::decode(&subject, &msg.payload).unwrap() else {
            panic!("not a queued event");
        };
        assert_eq!(event.registration, registration);
        assert_eq!(event.job.job_id, job_id);
    }
}

#[tokio::test]
async fn a_job_both_registrations_admit_reaches_both() {
    // Same scope, both admit `shared`: each gets its own event (distinct message ids).
    let text = r#"
[controller]
id = "test"
[webhook]
secret = "env:GLOBAL_HOOK_SECRET"
[tenants.acme.providers.local]
[tenants.globex.providers.local]
[[registrations]]
name = "acme-hello"
tenant = "acme"
scope = "repo"
url = "https://github.com/Codertocat/Hello-World"
auth = { pat = "env:P" }
labels = ["shared"]
[[registrations]]
name = "globex-org"
tenant = "globex"
scope = "org"
url = "https://github.com/Codertocat"
auth = { pat = "env:P" }
labels = ["shared"]
"#;
    let config =
        Arc::new(registration::Config::parse(text, "both.toml", &clouds::Registry).unwrap());
    let h = harness_with(1 << 20, config, Default::default()).await;
    let body = queued_with(|v| v["workflow_job"]["labels"] = serde_json::json!(["shared"]));
    let (status, _) = h
        .deliver(Delivery::signed("workflow_job", "d-9", body))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.stored().await, 2);
}
