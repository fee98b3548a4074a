//! Primary rate limits (per caller per hour), the secondary limit on JIT config generation
//! (per caller per minute) and injected faults.
//!
//! Guarantees: every counted request moves `used` up by one; a `304 Not Modified` is refunded,
//! as on GitHub; the window resets an hour after its first request.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A failure to answer instead of the real response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// The HTTP status, e.g. 500, 502, 403, 429.
    pub status: u16,
    /// How many matching requests fail.
    #[serde(default = "one")]
    pub count: u32,
    /// Only requests whose path starts with this (e.g. `/repos/acme/app/actions/runs`).
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// The `retry-after` seconds sent with 403 and 429 (default 1).
    #[serde(default)]
    pub retry_after: Option<u64>,
}

fn one() -> u32 {
    1
}

/// A caller's primary rate-limit window, as reported in `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bucket {
    pub(crate) limit: u32,
    pub(crate) used: u32,
    /// Unix seconds when the window resets.
    pub(crate) reset: u64,
}

impl Bucket {
    pub(crate) fn remaining(&self) -> u32 {
        self.limit.saturating_sub(self.used)
    }
}

/// All limits and pending faults.
#[derive(Debug, Default)]
pub(crate) struct Limits {
    buckets: HashMap<String, Bucket>,
    jit: HashMap<String, VecDeque<Instant>>,
    faults: VecDeque<Fault>,
}

impl Limits {
    /// Counts one request for `caller`. `Err` carries the exhausted bucket.
    pub(crate) fn take(&mut self, caller: &str, limit: u32) -> Result<Bucket, Bucket> {
        let now = unix_now();
        let bucket = self.buckets.entry(caller.to_owned()).or_insert(Bucket {
            limit,
            used: 0,
            reset: now + 3600,
        });
        if now >= bucket.reset {
            *bucket = Bucket {
                limit,
                used: 0,
                reset: now + 3600,
            };
        }
        if bucket.used >= bucket.limit {
            return Err(*bucket);
        }
        bucket.used += 1;
        Ok(*bucket)
    }

    /// Gives back one request (a `304` does not count).
    pub(crate) fn refund(&mut self, caller: &str) -> Option<Bucket> {
        let bucket = self.buckets.get_mut(caller)?;
        bucket.used = bucket.used.saturating_sub(1);
        Some(*bucket)
    }

    /// Points used so far in the current windows of every caller.
    pub(crate) fn used(&self) -> u64 {
        self.buckets.values().map(|b| u64::from(b.used)).sum()
    }

    /// Counts one JIT generation; `Err(retry_after)` when `per_minute` is exceeded.
    pub(crate) fn take_jit(&mut self, caller: &str, per_minute: u32) -> Result<(), Duration> {
        let now = Instant::now();
        let window = Duration::from_secs(60);
        let seen = self.jit.entry(caller.to_owned()).or_default();
        while seen
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            seen.pop_front();
        }
        if seen.len() >= per_minute as usize {
            let oldest = seen.front().copied().unwrap_or(now);
            return Err(window.saturating_sub(now.duration_since(oldest)));
        }
        seen.push_back(now);
        Ok(())
    }

    pub(crate) fn add_fault(&mut self, fault: Fault) {
        if fault.count > 0 {
            self.faults.push_back(fault);
        }
    }

    /// Takes one occurrence of the first fault matching `path`.
    pub(crate) fn take_fault(&mut self, path: &str) -> Option<Fault> {
        let index = self.faults.iter().position(|f| {
            f.path_prefix.as_deref().is_none_or(|prefix| {
                path.starts_with(prefix) || path.starts_with(&format!("/{prefix}"))
            })
        })?;
        let fault = self.faults.get_mut(index)?;
        fault.count -= 1;
        let taken = fault.clone();
        if fault.count == 0 {
            self.faults.remove(index);
        }
        Some(taken)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_counts_down_and_refuses_when_exhausted() {
        let mut limits = Limits::default();
        assert_eq!(limits.take("a", 2).unwrap().remaining(), 1);
        assert_eq!(limits.take("a", 2).unwrap().remaining(), 0);
        assert!(limits.take("a", 2).is_err());
        assert_eq!(limits.refund("a").unwrap().remaining(), 1);
        assert_eq!(limits.take("b", 2).unwrap().remaining(), 1);
        assert_eq!(limits.used(), 2, "a: 2 taken, 1 refunded; b: 1");
    }

    #[test]
    fn jit_limit_is_per_caller() {
        let mut limits = Limits::default();
        limits.take_jit("a", 1).unwrap();
        assert!(limits.take_jit("a", 1).unwrap_err() > Duration::from_secs(58));
        limits.take_jit("b", 1).unwrap();
    }

    #[test]
    fn faults_match_prefix_and_count_down() {
        let mut limits = Limits::default();
        limits.add_fault(Fault {
            status: 500,
            count: 2,
            path_prefix: Some("/repos".into()),
            retry_after: None,
        });
        assert!(limits.take_fault("/orgs/acme/repos").is_none());
        assert_eq!(limits.take_fault("/repos/a/b").unwrap().status, 500);
        assert!(limits.take_fault("/repos/a/b").is_some());
        assert!(limits.take_fault("/repos/a/b").is_none());
    }
}
