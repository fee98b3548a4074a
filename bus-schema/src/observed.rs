//! What the status views need that no job or runner record holds: when the last webhook
//! arrived, when each registration was last polled, and its GitHub rate budget.
//!
//! Written last-writer-wins (no compare-and-set: a later value is always at least as
//! useful), in the jobs bucket under [`crate::subject::WEBHOOK_SEEN_KEY`] and
//! [`crate::subject::github_seen_key`].

use serde::{Deserialize, Serialize};

use crate::UnixMillis;

/// The last accepted webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSeen {
    pub at: UnixMillis,
    /// Deliveries this process accepted since it started (the writer's own count).
    #[serde(default)]
    pub accepted: u64,
}

/// A registration's last poll round and its credential's rate budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitHubSeen {
    pub registration: String,
    #[serde(default)]
    pub last_poll_at: Option<UnixMillis>,
    #[serde(default)]
    pub rate_limit: Option<u64>,
    #[serde(default)]
    pub rate_remaining: Option<u64>,
    /// When the rate window resets (Unix seconds, as GitHub sends it).
    #[serde(default)]
    pub rate_reset: Option<u64>,
    pub updated_at: UnixMillis,
}
