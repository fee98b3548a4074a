//! A periodic loop that runs only while it holds a KV lease: the one lease loop of the
//! poller (per registration), the pool (per registration) and the sweep (per tenant).
//!
//! # Guarantees
//! - A round runs only under the lease, and the lease is renewed every
//!   [`LEASE_RENEW_EVERY`] while the round works, so a long round keeps it. A round whose
//!   renewal fails (the lease expired or someone else took it) is stopped at once: two
//!   holders never work at the same time for longer than one renewal period.
//! - Between rounds the lease is renewed too, so the holder keeps it across rounds; a
//!   replica without it tries to take it every `interval` (at most every
//!   [`LEASE_RENEW_EVERY`]).
//! - Cancelling stops the round in progress and releases the lease, so another replica can
//!   take over at once instead of waiting out the TTL.
//!
//! # Assumptions
//! A round is safe to stop at any await point (each step of it is idempotent).

use std::time::Duration;

use shr_nats::{LEASE_RENEW_EVERY, Lease, Leases};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a leased loop runs under.
#[derive(Debug, Clone)]
pub struct LeasedLoop {
    pub leases: Leases,
    /// The lease key (`subject::*_lease_key`).
    pub key: String,
    /// This process's holder id.
    pub holder: String,
    /// Time from the start of one round to the start of the next.
    pub interval: Duration,
    /// For logs: what the lease guards (`poll`, `pool`, `sweep`).
    pub what: &'static str,
}

/// How a round ended.
enum RoundEnd {
    Done,
    Cancelled,
    LeaseLost,
}

impl LeasedLoop {
    /// Runs `round()` every `interval` while holding the lease, until `cancel` fires. A round
    /// that keeps state between rounds holds it behind its own handle (see the poller).
    pub async fn run<F, Fut>(self, cancel: CancellationToken, mut round: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut lease: Option<Lease> = None;
        let mut next_round = Instant::now();
        while !cancel.is_cancelled() {
            lease = self.hold(lease).await;
            if let Some(held) = lease.as_mut()
                && Instant::now() >= next_round
            {
                next_round = Instant::now() + self.interval;
                match self.round_under(held, &cancel, round()).await {
                    RoundEnd::Done | RoundEnd::Cancelled => {}
                    RoundEnd::LeaseLost => lease = None,
                }
            }
            let wait = match lease {
                Some(_) => {
                    LEASE_RENEW_EVERY.min(next_round.saturating_duration_since(Instant::now()))
                }
                None => LEASE_RENEW_EVERY.min(self.interval),
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if let Some(held) = lease
            && let Err(error) = held.release().await
        {
            tracing::debug!(what = self.what, %error, "releasing the lease failed; it expires by itself");
        }
    }

    /// Renews the lease held, or tries to take it.
    async fn hold(&self, lease: Option<Lease>) -> Option<Lease> {
        match lease {
            Some(mut held) => match held.renew().await {
                Ok(()) => Some(held),
                Err(error) => {
                    // Another replica took over (a failover): the rounds go on there.
                    tracing::info!(what = self.what, key = %self.key, %error, "lease lost");
                    None
                }
            },
            None => self
                .leases
                .try_acquire(&self.key, &self.holder)
                .await
                .unwrap_or_else(|error| {
                    // The bus is unreachable (reported by the connection and `/readyz`);
                    // tried again next round.
                    tracing::debug!(what = self.what, key = %self.key, %error, "lease unavailable");
                    None
                }),
        }
    }

    /// Drives `work` to its end, renewing `held` meanwhile; stops it on cancel or lease loss.
    async fn round_under(
        &self,
        held: &mut Lease,
        cancel: &CancellationToken,
        work: impl Future<Output = ()>,
    ) -> RoundEnd {
        tokio::pin!(work);
        let mut renew =
            tokio::time::interval_at(Instant::now() + LEASE_RENEW_EVERY, LEASE_RENEW_EVERY);
        loop {
            tokio::select! {
                () = &mut work => return RoundEnd::Done,
                () = cancel.cancelled() => return RoundEnd::Cancelled,
                _ = renew.tick() => if let Err(error) = held.renew().await {
                    tracing::info!(what = self.what, key = %self.key, %error, "lease lost mid-round; stopping this round");
                    return RoundEnd::LeaseLost;
                },
            }
        }
    }
}
