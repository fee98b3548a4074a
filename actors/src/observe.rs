//! Writes what the status views need and no record holds: the last webhook delivery, and
//! each registration's last poll and GitHub rate budget.
//!
//! # Messages
//! - Emits: KV puts of [`WebhookSeen`] and [`GitHubSeen`] in the jobs bucket
//!   ([`subject::WEBHOOK_SEEN_KEY`], [`subject::github_seen_key`]).
//!
//! # Guarantees
//! - Never slows or fails the caller: webhook writes happen in a spawned task at most once
//!   per [`WEBHOOK_SEEN_EVERY`], and a failed write is logged at debug and dropped.
//!
//! # Assumptions
//! - Last writer wins is fine: every value written is recent, and the views show "about when".

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bus_schema::{GitHubSeen, WebhookSeen, now_millis, subject};

use crate::Context;

/// How often, at most, a process records the last webhook delivery.
pub const WEBHOOK_SEEN_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

static WEBHOOK_ACCEPTED: AtomicU64 = AtomicU64::new(0);
static WEBHOOK_WRITTEN_AT: AtomicI64 = AtomicI64::new(0);

/// Notes an accepted webhook delivery; records it in KV at most once a second.
pub fn webhook_seen(bus: &shr_nats::Bus) {
    let accepted = WEBHOOK_ACCEPTED.fetch_add(1, Ordering::Relaxed) + 1;
    let now = now_millis();
    let last = WEBHOOK_WRITTEN_AT.load(Ordering::Relaxed);
    let every = i64::try_from(WEBHOOK_SEEN_EVERY.as_millis()).unwrap_or(i64::MAX);
    if now - last < every
        || WEBHOOK_WRITTEN_AT
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let Ok(value) = bus_schema::encode(&WebhookSeen { at: now, accepted }) else {
        return;
    };
    let store = bus.jobs.clone();
    tokio::spawn(async move {
        if let Err(error) = store.put(subject::WEBHOOK_SEEN_KEY, value.into()).await {
            tracing::debug!(%error, "recording the last webhook delivery failed");
        }
    });
}

/// Records a finished poll round of `registration` and its credential's rate budget.
pub async fn poll_seen(ctx: &Context, registration: &str) {
    let Ok(key) = subject::github_seen_key(registration) else {
        return;
    };
    let budget = ctx.github(registration).ok().and_then(|g| g.rate_budget());
    let now = now_millis();
    let seen = GitHubSeen {
        registration: registration.to_owned(),
        last_poll_at: Some(now),
        rate_limit: budget.map(|b| b.limit),
        rate_remaining: budget.map(|b| b.remaining),
        rate_reset: budget.and_then(|b| u64::try_from(b.reset_at.timestamp()).ok()),
        updated_at: now,
    };
    let Ok(value) = bus_schema::encode(&seen) else {
        return;
    };
    if let Err(error) = ctx.bus.jobs.put(key, value.into()).await {
        tracing::debug!(%registration, %error, "recording the poll round failed");
    }
}

/// The `snake_case` name of a serde enum value (a reap reason, an error kind), for metric
/// labels; `unknown` if it has none.
pub fn label<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}
