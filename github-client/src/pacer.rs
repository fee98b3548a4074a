//! A FIFO pacer for JIT registrations (GCRA, the virtual-scheduling form of a token bucket).
//!
//! Guarantees: at most `burst` calls pass at once, after which calls pass one per
//! `60 s / rate`; each caller reserves its slot in call order, so callers are released in the
//! order they asked. Waiting never fails; a caller that gives up (its future is dropped) just
//! leaves its slot unused, which errs on the slow side.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Paces calls to `rate` per minute with a burst of `max(1, rate / 10)`.
#[derive(Debug)]
pub(crate) struct Pacer {
    interval: Duration,
    tolerance: Duration,
    /// The theoretical arrival time of the next call, if any call was made.
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    pub(crate) fn per_minute(rate: u32) -> Self {
        let rate = rate.max(1);
        let burst = (rate / 10).max(1);
        let interval = Duration::from_secs(60) / rate;
        Self {
            interval,
            tolerance: interval * (burst - 1),
            next: Mutex::new(None),
        }
    }

    /// Waits for this caller's turn.
    pub(crate) async fn acquire(&self) {
        let now = Instant::now();
        let release_at = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let tat = next.map_or(now, |t| t.max(now));
            *next = Some(tat + self.interval);
            tat.checked_sub(self.tolerance).unwrap_or(now).max(now)
        };
        if release_at > now {
            tokio::time::sleep_until(release_at).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn n_calls_at_rate_r_take_n_over_r_and_keep_order() {
        // 60/min: one per second, burst 6.
        let pacer = Arc::new(Pacer::per_minute(60));
        let order = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..30 {
            let (pacer, order) = (pacer.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                pacer.acquire().await;
                order.lock().unwrap().push((i, start.elapsed()));
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        let ids: Vec<_> = order.iter().map(|(i, _)| *i).collect();
        assert_eq!(ids, (0..30).collect::<Vec<_>>(), "released in FIFO order");
        // The first 6 pass at once, the remaining 24 one per second.
        assert!(order[..6].iter().all(|(_, t)| *t == Duration::ZERO));
        assert_eq!(order[29].1, Duration::from_secs(24));
        for pair in order[5..].windows(2) {
            assert_eq!(pair[1].1 - pair[0].1, Duration::from_secs(1));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn default_rate_paces_a_burst_of_300_over_about_two_minutes() {
        let pacer = Arc::new(Pacer::per_minute(150));
        let start = Instant::now();
        let tasks: Vec<_> = (0..300)
            .map(|_| {
                let pacer = pacer.clone();
                tokio::spawn(async move { pacer.acquire().await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        // 300 calls at 150/min with a burst of 15: (300 - 15) * 0.4 s = 114 s.
        assert_eq!(start.elapsed(), Duration::from_millis(114_000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_pacer_lets_a_call_through_at_once() {
        let pacer = Pacer::per_minute(150);
        pacer.acquire().await;
        tokio::time::advance(Duration::from_secs(10)).await;
        let before = Instant::now();
        pacer.acquire().await;
        assert_eq!(before.elapsed(), Duration::ZERO);
    }
}
