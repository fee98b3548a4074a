//! Webhook actor: HTTPS ingress for GitHub `workflow_job` and `ping` deliveries.
//!
//! # Messages
//! - Consumes: `POST <path>` deliveries from GitHub (or the simulator).
//! - Emits: [`JobQueued`], [`JobStarted`], [`JobCompleted`] on `shr.v1.job.<kind>.<tenant>`,
//!   JetStream message id = `X-GitHub-Delivery`.
//!
//! # Guarantees
//! - The signature (`X-Hub-Signature-256`, HMAC-SHA256 of the raw body) is checked in
//!   constant time before the body is parsed: it must verify with the global secret or one
//!   registration's own secret. Missing or bad → 401 and nothing published.
//! - A delivery goes to every registration whose scope covers the repository and whose labels
//!   admit the job, among those whose secret (its own, else the global one) signed it; a
//!   delivery signed only by another registration's secret → 401. The first registration's
//!   event keeps the delivery id as message id, the others get `<delivery>:<registration>`.
//! - Both content types GitHub offers are accepted: `application/json`, and
//!   `application/x-www-form-urlencoded` whose `payload` field holds the JSON (the signature
//!   still covers the raw, encoded body).
//! - A 2xx answer means the event is durably in JetStream (the publish was acked). A
//!   redelivery with the same delivery id is absorbed by the stream's duplicate window, and
//!   beyond it by the scheduler's compare-and-set on the job record.
//! - Nothing slow happens in the request: one HMAC, one JSON parse, one map lookup, one publish.
//!
//! # Status codes
//! 200 published (or duplicate) · 202 ignored (unknown event, action we do not act on, or a
//! repository no registration covers) · 400 malformed body or missing field · 401 signature ·
//! 413 body over the limit · 503 the bus did not ack (GitHub shows the failure; the poller heals).
//!
//! # Other routes
//! `GET /healthz`: 200 while the process serves HTTP (for a load balancer in front of the
//! webhook port). Metrics are not served here: [`WebhookStats`] is exported with every other
//! metric of the process on its one metrics listener (`shr`'s `metrics_server`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use bus_schema::{JobCompleted, JobEvent, JobQueued, JobRef, JobSource, JobStarted};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Sha256;

use crate::routing::Routing;

/// Route of the health check.
pub const HEALTH_PATH: &str = "/healthz";

/// Counters the webhook keeps; the process's metrics listener exports them as
/// `shr_webhook_deliveries_total` by `outcome` ([`WebhookStats::outcomes`]).
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    pub pings: AtomicU64,
    pub bad_signature: AtomicU64,
    pub malformed: AtomicU64,
    pub too_large: AtomicU64,
    pub ignored_event: AtomicU64,
    pub ignored_action: AtomicU64,
    pub unrouted: AtomicU64,
    pub publish_failed: AtomicU64,
}

impl WebhookStats {
    /// Every counter with its `outcome` label value.
    pub fn outcomes(&self) -> [(&'static str, &AtomicU64); 10] {
        [
            ("accepted", &self.accepted),
            ("duplicate", &self.duplicates),
            ("pong", &self.pings),
            ("bad_signature", &self.bad_signature),
            ("malformed", &self.malformed),
            ("too_large", &self.too_large),
            ("ignored_event", &self.ignored_event),
            ("ignored_action", &self.ignored_action),
            ("unrouted", &self.unrouted),
            ("publish_failed", &self.publish_failed),
        ]
    }
}

/// What the webhook needs to run.
#[derive(Clone)]
pub struct WebhookState {
    secret: Arc<SecretString>,
    /// Registrations with their own webhook secret.
    registration_secrets: Arc<BTreeMap<String, SecretString>>,
    bus: shr_nats::Bus,
    routing: Arc<dyn Routing>,
    pub stats: Arc<WebhookStats>,
}

impl std::fmt::Debug for WebhookState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookState")
            .field("secret", &"[redacted]")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl WebhookState {
    pub fn new(secret: SecretString, bus: shr_nats::Bus, routing: Arc<dyn Routing>) -> Self {
        Self {
            secret: Arc::new(secret),
            registration_secrets: Arc::default(),
            bus,
            routing,
            stats: Arc::default(),
        }
    }

    /// The same state, with registrations that have their own webhook secret.
    pub fn with_registration_secrets(mut self, secrets: BTreeMap<String, SecretString>) -> Self {
        self.registration_secrets = Arc::new(secrets);
        self
    }

    /// The secret that signs `registration`'s deliveries: its own, else the global one.
    fn secret_of(&self, registration: &str) -> &SecretString {
        self.registration_secrets
            .get(registration)
            .unwrap_or(&self.secret)
    }
}

/// The axum router serving the webhook at `path` (body limit `max_body` bytes), plus
/// [`HEALTH_PATH`].
pub fn router(state: WebhookState, path: &str, max_body: usize) -> Router {
    Router::new()
        .route(path, post(deliver))
        .layer(DefaultBodyLimit::max(max_body))
        .route(HEALTH_PATH, get(|| async { "ok\n" }))
        .with_state(state)
}

/// Checks `sha256=<hex>` against HMAC-SHA256(secret, body) in constant time.
pub fn signature_valid(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Computes the `X-Hub-Signature-256` header value for a body.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Debug, Deserialize)]
struct Delivery {
    action: String,
    workflow_job: WorkflowJob,
    repository: Repository,
    #[serde(default)]
    organization: Option<Login>,
    #[serde(default)]
    enterprise: Option<Enterprise>,
}

#[derive(Debug, Deserialize)]
struct WorkflowJob {
    id: u64,
    run_id: u64,
    labels: Vec<String>,
    #[serde(default)]
    conclusion: Option<String>,
    #[serde(default)]
    runner_id: Option<u64>,
    #[serde(default)]
    runner_name: Option<String>,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
struct Repository {
    full_name: String,
    #[serde(default)]
    html_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Login {
    login: String,
}

#[derive(Debug, Deserialize)]
struct Enterprise {
    slug: String,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The JSON document of a delivery: the body itself, or for a form-encoded delivery
/// (`application/x-www-form-urlencoded`, a content type GitHub offers) its `payload` field.
/// `None` for a form without one.
fn json_payload<'a>(headers: &HeaderMap, body: &'a [u8]) -> Option<Cow<'a, [u8]>> {
    let form = header(headers, CONTENT_TYPE.as_str()).is_some_and(|t| {
        t.split(';').next().is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if !form {
        return Some(Cow::Borrowed(body));
    }
    url::form_urlencoded::parse(body)
        .find(|(key, _)| key == "payload")
        .map(|(_, value)| Cow::Owned(value.into_owned().into_bytes()))
}

async fn deliver(
    State(state): State<WebhookState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> (StatusCode, &'static str) {
    let stats = &state.stats;
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            stats.too_large.fetch_add(1, Ordering::Relaxed);
            return (StatusCode::PAYLOAD_TOO_LARGE, "body too large\n");
        }
        Err(rejection) => {
            stats.malformed.fetch_add(1, Ordering::Relaxed);
            return (rejection.status(), "unreadable body\n");
        }
    };
    let signature = header(&headers, "x-hub-signature-256");
    let signed_by = |secret: &SecretString| {
        signature_valid(secret.expose_secret().as_bytes(), &body, signature)
    };
    let known = signed_by(&state.secret) || state.registration_secrets.values().any(signed_by);
    if !known {
        stats.bad_signature.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            delivery = header(&headers, "x-github-delivery").unwrap_or("-"),
            "webhook rejected: missing or bad signature"
        );
        return (StatusCode::UNAUTHORIZED, "bad signature\n");
    }
    let event = header(&headers, "x-github-event").unwrap_or("");
    match event {
        "ping" => {
            stats.pings.fetch_add(1, Ordering::Relaxed);
            return (StatusCode::OK, "pong\n");
        }
        "workflow_job" => {}
        other => {
            stats.ignored_event.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(event = other, "webhook ignored: event we do not handle");
            return (StatusCode::ACCEPTED, "event ignored\n");
        }
    }
    let Some(delivery_id) = header(&headers, "x-github-delivery").filter(|d| !d.is_empty()) else {
        stats.malformed.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::BAD_REQUEST, "missing X-GitHub-Delivery\n");
    };
    let Some(payload) = json_payload(&headers, &body) else {
        stats.malformed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            delivery = delivery_id,
            "webhook rejected: form-encoded body without a payload field"
        );
        return (StatusCode::BAD_REQUEST, "form body without payload\n");
    };
    let delivery: Delivery = match serde_json::from_slice(&payload) {
        Ok(d) => d,
        Err(error) => {
            stats.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(delivery = delivery_id, %error, "webhook rejected: malformed body");
            return (StatusCode::BAD_REQUEST, "malformed workflow_job payload\n");
        }
    };
    let host = delivery
        .repository
        .html_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "github.com".to_owned());
    let routes = state.routing.routes(
        &host,
        &delivery.repository.full_name,
        delivery.organization.as_ref().map(|o| o.login.as_str()),
        delivery.enterprise.as_ref().map(|e| e.slug.as_str()),
        &delivery.workflow_job.labels,
    );
    if routes.is_empty() {
        stats.unrouted.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            delivery = delivery_id,
            repo = %delivery.repository.full_name,
            "webhook ignored: no registration covers this repository"
        );
        return (StatusCode::ACCEPTED, "no registration for repository\n");
    }
    let signed: Vec<_> = (routes.into_iter())
        .filter(|r| signed_by(state.secret_of(&r.registration)))
        .collect();
    if signed.is_empty() {
        stats.bad_signature.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            delivery = delivery_id,
            "webhook rejected: not signed with the secret of a registration it is for"
        );
        return (StatusCode::UNAUTHORIZED, "bad signature\n");
    }
    let mut events = Vec::with_capacity(signed.len());
    for (i, route) in signed.into_iter().enumerate() {
        let msg_id = if i == 0 {
            delivery_id.to_owned()
        } else {
            format!("{delivery_id}:{}", route.registration)
        };
        let Some(event) = to_event(&delivery, route.tenant, route.registration, &msg_id) else {
            stats.ignored_action.fetch_add(1, Ordering::Relaxed);
            return (StatusCode::ACCEPTED, "action ignored\n");
        };
        events.push(event);
    }
    let mut duplicate = true;
    for event in &events {
        match publish(&state.bus, event).await {
            Ok(dup) => duplicate &= dup,
            Err(error) => {
                stats.publish_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(delivery = delivery_id, %error, "webhook could not publish");
                return (StatusCode::SERVICE_UNAVAILABLE, "bus unavailable\n");
            }
        }
    }
    if duplicate {
        stats.duplicates.fetch_add(1, Ordering::Relaxed);
        (StatusCode::OK, "duplicate\n")
    } else {
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        (StatusCode::OK, "accepted\n")
    }
}

fn to_event(
    d: &Delivery,
    tenant: String,
    registration: String,
    delivery_id: &str,
) -> Option<JobEvent> {
    let job = JobRef {
        job_id: d.workflow_job.id,
        run_id: d.workflow_job.run_id,
        repo: d.repository.full_name.clone(),
        labels: d.workflow_job.labels.clone(),
        name: d.workflow_job.name.clone(),
    };
    let observed_at = bus_schema::now_millis();
    let delivery_id = Some(delivery_id.to_owned());
    // Dispatch on `action`: `workflow_job.status` can say `waiting` for a queued delivery.
    Some(match d.action.as_str() {
        "queued" => JobEvent::Queued(JobQueued {
            tenant,
            registration,
            job,
            source: JobSource::Webhook,
            delivery_id,
            observed_at,
        }),
        "in_progress" => JobEvent::Started(JobStarted {
            tenant,
            registration,
            job,
            runner_name: d.workflow_job.runner_name.clone()?,
            runner_id: d.workflow_job.runner_id,
            source: JobSource::Webhook,
            delivery_id,
            observed_at,
        }),
        "completed" => JobEvent::Completed(JobCompleted {
            tenant,
            registration,
            job,
            conclusion: d.workflow_job.conclusion.clone(),
            runner_name: d.workflow_job.runner_name.clone(),
            runner_id: d.workflow_job.runner_id,
            source: JobSource::Webhook,
            delivery_id,
            observed_at,
        }),
        _ => return None,
    })
}

/// Publishes a job event and waits for the JetStream ack. Returns whether it was a duplicate.
/// Each delivery starts a trace (`traceparent` header) that the actors downstream continue.
pub async fn publish(bus: &shr_nats::Bus, event: &JobEvent) -> Result<bool, crate::Error> {
    let span = tracing::info_span!(
        "webhook publish",
        delivery = event.delivery_id().unwrap_or("-"),
        trace_id = tracing::field::Empty
    );
    // Deduplicated on `X-GitHub-Delivery` within the event's tenant and registration.
    let msg_id = event
        .delivery_id()
        .map(|id| bus_schema::msg_id::delivery(event.tenant(), event.registration(), id));
    crate::trace::in_new_trace(span, async {
        let ack = bus
            .publish_durable(
                &event.subject()?,
                event.encode()?,
                msg_id.as_deref(),
                Some(crate::trace::outgoing_headers()),
            )
            .await?;
        if !ack.duplicate {
            crate::observe::webhook_seen(bus);
        }
        Ok(ack.duplicate)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    // GitHub's published test values, from "Validating webhook deliveries":
    // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
    const DOC_SECRET: &[u8] = b"It's a Secret to Everybody";
    const DOC_PAYLOAD: &[u8] = b"Hello, World!";
    const DOC_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_published_test_vector() {
        assert!(signature_valid(
            DOC_SECRET,
            DOC_PAYLOAD,
            Some(DOC_SIGNATURE)
        ));
        assert_eq!(sign(DOC_SECRET, DOC_PAYLOAD), DOC_SIGNATURE);
    }

    #[test]
    fn anything_else_is_rejected() {
        assert!(!signature_valid(
            DOC_SECRET,
            b"Hello, World?",
            Some(DOC_SIGNATURE)
        ));
        assert!(!signature_valid(b"other", DOC_PAYLOAD, Some(DOC_SIGNATURE)));
        assert!(!signature_valid(DOC_SECRET, DOC_PAYLOAD, None));
        assert!(!signature_valid(
            DOC_SECRET,
            DOC_PAYLOAD,
            Some(&DOC_SIGNATURE[7..])
        ));
        assert!(!signature_valid(
            DOC_SECRET,
            DOC_PAYLOAD,
            Some(&DOC_SIGNATURE[..40])
        ));
        let upper = DOC_SIGNATURE.replace("sha256=", "SHA256=");
        assert!(!signature_valid(DOC_SECRET, DOC_PAYLOAD, Some(&upper)));
    }
}
