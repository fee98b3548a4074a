//! One GitHub credential shared by every replica: its JIT pacing and its rate budget, kept in
//! KV ([`subject::credential_pace_key`], [`subject::credential_budget_key`] in the jobs bucket).
//!
//! # Messages
//! - Reads and writes: the credential's [`CredentialPace`] (compare-and-set) and
//!   [`CredentialBudget`] (last reading, merged) in the jobs bucket.
//!
//! # Guarantees
//! - Pacing holds cluster-wide: every mutating call of the credential, from any replica,
//!   reserves its slot by one compare-and-set on the pace key (GCRA: a theoretical arrival
//!   time advanced by one interval per call). With `rate` per `window` and a burst of
//!   `b = max(1, rate / 10)`, the interval is `window / (rate - b)` rounded up, so no window
//!   of that length holds more than `rate - 1` calls (one of headroom for late wake-ups),
//!   whatever the number of replicas.
//! - Within one process, one compare-and-set at a time reserves consecutive slots for every
//!   caller waiting then (a burst costs one KV round trip per batch, not per call), so
//!   callers of one replica never conflict with each other; conflicts between replicas are
//!   retried. Time is kept in microseconds, so a lifted pace is not capped at 1,000/s.
//! - Never fails the caller: if KV cannot be reached the call is paced by this process
//!   alone (the client's local pacer rate) and a warning is logged.
//! - The budget any replica reads from GitHub is written at most once per
//!   [`BUDGET_WRITE_EVERY`] (and at once when it falls under a tenth of its limit); every
//!   replica re-reads it as often, so [`GitHubClient::spare`](github_client::GitHubClient::spare)
//!   sees what the others spent.
//!
//! # Assumptions
//! - Replicas' clocks agree to well within one interval (NTP); the pace key holds wall time.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bus_schema::{CredentialBudget, CredentialPace, UnixMillis, now_millis, subject};
use github_client::{PaceFuture, RateBudget, SharedCredential};
use shr_nats::Records;

use crate::Error;

/// How often, at most, a replica writes and re-reads the shared budget.
pub const BUDGET_WRITE_EVERY: Duration = Duration::from_secs(1);

/// A credential's pacing and budget in KV. Build one per credential per process.
pub struct KvCredential {
    credential: String,
    pace_key: String,
    budget_key: String,
    pace: Records<CredentialPace>,
    budgets: Records<CredentialBudget>,
    interval_us: i64,
    tolerance_us: i64,
    /// Callers waiting for a slot; whoever holds `reserving` reserves for all of them in one
    /// compare-and-set and tells each its release time (unix µs).
    waiting: Mutex<Vec<tokio::sync::oneshot::Sender<i64>>>,
    reserving: tokio::sync::Mutex<()>,
    /// Local fallback when KV is unreachable.
    fallback_next: Mutex<i64>,
    budget: Arc<Mutex<Option<CredentialBudget>>>,
    written_at: Mutex<UnixMillis>,
    refresher: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for KvCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvCredential")
            .field("credential", &self.credential)
            .field("interval_us", &self.interval_us)
            .finish_non_exhaustive()
    }
}

impl Drop for KvCredential {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl KvCredential {
    /// Paces `credential` (a name that does not reveal it) to `rate` mutating calls per
    /// `window`, cluster-wide, over the jobs bucket `store`. Must be called inside a Tokio
    /// runtime (it starts the budget refresher).
    pub fn new(
        store: async_nats::jetstream::kv::Store,
        credential: &str,
        rate: u32,
        window: Duration,
    ) -> Result<Self, Error> {
        let pace_key = subject::credential_pace_key(credential)?;
        let budget_key = subject::credential_budget_key(credential)?;
        let rate = rate.max(1);
        let burst = (rate / 10).max(1);
        let window_us = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
        // Rounded up, and one call of headroom: a caller that wakes late must not let the
        // next window look fuller than the rate.
        let slots = i64::from((rate - burst).max(1));
        let interval_us = ((window_us + slots - 1) / slots).max(1);
        let budgets = Records::<CredentialBudget>::new(store.clone());
        let budget = Arc::new(Mutex::new(None));
        let refresher = {
            let (budgets, budget, budget_key) =
                (budgets.clone(), budget.clone(), budget_key.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(BUDGET_WRITE_EVERY).await;
                    if let Ok(Some((read, _))) = budgets.get(&budget_key).await {
                        let mut known = budget.lock().unwrap_or_else(PoisonError::into_inner);
                        *known = Some(known.map_or(read, |k: CredentialBudget| k.newer(read)));
                    }
                }
            })
        };
        Ok(Self {
            credential: credential.to_owned(),
            pace_key,
            budget_key,
            pace: Records::new(store),
            budgets,
            interval_us,
            tolerance_us: interval_us * i64::from(burst - 1),
            waiting: Mutex::new(Vec::new()),
            reserving: tokio::sync::Mutex::new(()),
            fallback_next: Mutex::new(0),
            budget,
            written_at: Mutex::new(0),
            refresher,
        })
    }

    /// Reserves the next slot; returns when (unix µs) the call may go.
    async fn reserve(&self) -> i64 {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(tx);
        {
            let _turn = self.reserving.lock().await;
            let batch =
                std::mem::take(&mut *self.waiting.lock().unwrap_or_else(PoisonError::into_inner));
            if !batch.is_empty() {
                let releases = self.reserve_batch(batch.len()).await;
                for (tx, release) in batch.into_iter().zip(releases) {
                    let _ = tx.send(release);
                }
            }
        }
        // Filled by this caller's batch or an earlier holder's.
        rx.await.unwrap_or_else(|_| now_us())
    }

    /// One compare-and-set reserving `n` consecutive slots; their release times.
    async fn reserve_batch(&self, n: usize) -> Vec<i64> {
        let count = i64::try_from(n).unwrap_or(i64::MAX);
        let (interval, tolerance) = (self.interval_us, self.tolerance_us);
        let mut first = 0;
        let written = self
            .pace
            .modify::<shr_nats::Error, _>(&self.pace_key, |current| {
                let now = now_us();
                first = current.map_or(now, |c| c.next_at_us.max(now));
                Ok(Some(CredentialPace {
                    next_at_us: first + interval * count,
                }))
            })
            .await;
        if let Err(error) = written {
            tracing::warn!(credential = %self.credential, %error, "cluster-wide JIT pacing unavailable; pacing this process alone");
            let mut next = self
                .fallback_next
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            first = (*next).max(now_us());
            *next = first + interval * count;
        }
        let now = now_us();
        (0..count)
            .map(|i| (first + interval * i - tolerance).max(now))
            .collect()
    }
}

impl SharedCredential for KvCredential {
    fn pace(&self) -> PaceFuture<'_> {
        Box::pin(async move {
            let release = self.reserve().await;
            let wait = release - now_us();
            if wait > 0 {
                tokio::time::sleep(Duration::from_micros(wait.unsigned_abs())).await;
            }
        })
    }

    fn observed(&self, budget: RateBudget) {
        let reading = CredentialBudget {
            limit: budget.limit,
            remaining: budget.remaining,
            reset: u64::try_from(budget.reset_at.timestamp()).unwrap_or_default(),
            updated_at: now_millis(),
        };
        {
            let mut known = self.budget.lock().unwrap_or_else(PoisonError::into_inner);
            *known = Some(known.map_or(reading, |k| k.newer(reading)));
        }
        let now = reading.updated_at;
        let low = reading.remaining * 10 < reading.limit;
        {
            let mut written = self
                .written_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let every = i64::try_from(BUDGET_WRITE_EVERY.as_millis()).unwrap_or(i64::MAX);
            if now - *written < every && !low {
                return;
            }
            *written = now;
        }
        let (budgets, key) = (self.budgets.clone(), self.budget_key.clone());
        tokio::spawn(async move {
            let merged = budgets
                .modify::<shr_nats::Error, _>(&key, |current| {
                    Ok(Some(current.map_or(reading, |c| c.newer(reading))))
                })
                .await;
            if let Err(error) = merged {
                tracing::debug!(%error, "sharing the rate budget failed");
            }
        });
    }

    fn budget(&self) -> Option<RateBudget> {
        let known = (*self.budget.lock().unwrap_or_else(PoisonError::into_inner))?;
        Some(RateBudget {
            limit: known.limit,
            remaining: known.remaining,
            used: known.limit.saturating_sub(known.remaining),
            reset_at: chrono::DateTime::from_timestamp(i64::try_from(known.reset).ok()?, 0)?,
        })
    }
}

/// A name for a credential that does not reveal it: `pat-` and the first 16 hex digits of
/// the token's SHA-256, or `app-<app id>-<installation id>`.
pub fn credential_name(auth: &github_client::Auth) -> String {
    use sha2::Digest;
    match auth {
        github_client::Auth::Pat(token) => {
            use secrecy::ExposeSecret;
            let digest = sha2::Sha256::digest(token.expose_secret().as_bytes());
            let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            format!("pat-{hex}")
        }
        github_client::Auth::App {
            app_id,
            installation_id,
            ..
        } => format!("app-{app_id}-{installation_id}"),
    }
}
