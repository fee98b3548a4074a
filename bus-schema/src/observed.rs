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

/// The cluster-wide JIT pacing of one GitHub credential: the theoretical arrival time of its
/// next mutating call (GCRA), shared by every replica through compare-and-set under
/// [`crate::subject::credential_pace_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialPace {
    /// Unix time in microseconds (a lifted pace spaces calls by less than a millisecond).
    pub next_at_us: i64,
}

/// The last primary rate budget any replica read from GitHub for one credential, under
/// [`crate::subject::credential_budget_key`]. Within one window (same `reset`) the lower
/// `remaining` is the newer; a later `reset` is a newer window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialBudget {
    pub limit: u64,
    pub remaining: u64,
    /// When the window resets (Unix seconds, as GitHub sends it).
    pub reset: u64,
    pub updated_at: UnixMillis,
}

impl CredentialBudget {
    /// The newer of two readings (see the type's docs).
    pub fn newer(self, other: Self) -> Self {
        match self.reset.cmp(&other.reset) {
            std::cmp::Ordering::Less => other,
            std::cmp::Ordering::Greater => self,
            std::cmp::Ordering::Equal if other.remaining < self.remaining => other,
            std::cmp::Ordering::Equal => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newer_budget_is_the_later_window_or_the_lower_remaining() {
        let b = |remaining, reset| CredentialBudget {
            limit: 5000,
            remaining,
            reset,
            updated_at: 0,
        };
        assert_eq!(b(10, 100).newer(b(20, 100)), b(10, 100));
        assert_eq!(b(20, 100).newer(b(10, 100)), b(10, 100));
        assert_eq!(b(10, 100).newer(b(4999, 200)), b(4999, 200));
        assert_eq!(b(4999, 200).newer(b(10, 100)), b(4999, 200));
    }
}
