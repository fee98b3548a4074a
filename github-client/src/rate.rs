//! GitHub's rate-limit headers: the primary budget (`x-ratelimit-*`) and how long a throttled
//! response (403/429) asks us to wait.

use std::time::Duration;

use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};

/// Wait when GitHub throttles without saying for how long (its docs: at least a minute).
pub(crate) const UNSPECIFIED_WAIT: Duration = Duration::from_secs(60);

/// How a throttled response says to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throttle {
    /// `retry-after`, or the primary window's reset: wait exactly this long.
    Told(Duration),
    /// A secondary limit that names no wait: back off exponentially, starting at a minute.
    Unspecified,
}

impl Throttle {
    /// The wait, taking `unspecified` for a limit that named none.
    pub(crate) fn or(self, unspecified: Duration) -> Duration {
        match self {
            Throttle::Told(wait) => wait,
            Throttle::Unspecified => unspecified,
        }
    }
}

/// The primary rate-limit budget of one credential, as of the last response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateBudget {
    /// `x-ratelimit-limit`: requests allowed per window.
    pub limit: u64,
    /// `x-ratelimit-remaining`: requests left in the window.
    pub remaining: u64,
    /// `x-ratelimit-used`: requests made in the window (`limit - remaining` if absent).
    pub used: u64,
    /// `x-ratelimit-reset`: when the window resets.
    pub reset_at: DateTime<Utc>,
}

impl RateBudget {
    /// Reads the budget from a response, if it carries the `core` resource's headers
    /// (a missing `x-ratelimit-resource` counts as `core`).
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Self> {
        if header_str(headers, "x-ratelimit-resource").is_some_and(|r| r != "core") {
            return None;
        }
        let limit = header_u64(headers, "x-ratelimit-limit")?;
        let remaining = header_u64(headers, "x-ratelimit-remaining")?;
        let reset = i64::try_from(header_u64(headers, "x-ratelimit-reset")?).ok()?;
        Some(Self {
            limit,
            remaining,
            used: header_u64(headers, "x-ratelimit-used")
                .unwrap_or(limit.saturating_sub(remaining)),
            reset_at: DateTime::from_timestamp(reset, 0)?,
        })
    }

    /// How long until the window resets, zero if it has.
    pub(crate) fn until_reset(&self) -> Duration {
        (self.reset_at - Utc::now()).to_std().unwrap_or_default()
    }
}

/// For a 403/429, how long GitHub asks us to wait before retrying; `None` if the response is
/// not a rate limit (a 403 without any sign of one is a real "forbidden").
pub(crate) fn throttle_wait(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
) -> Option<Throttle> {
    if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    if let Some(secs) = header_u64(headers, "retry-after") {
        return Some(Throttle::Told(Duration::from_secs(secs)));
    }
    if header_u64(headers, "x-ratelimit-remaining") == Some(0) {
        let reset = header_u64(headers, "x-ratelimit-reset")
            .and_then(|r| i64::try_from(r).ok())
            .and_then(|r| DateTime::from_timestamp(r, 0));
        return Some(reset.map_or(Throttle::Unspecified, |at| {
            Throttle::Told(
                (at - Utc::now())
                    .to_std()
                    .unwrap_or_default()
                    .max(Duration::from_secs(1)),
            )
        }));
    }
    let says_rate_limit = body.to_ascii_lowercase().contains("rate limit");
    (status == StatusCode::TOO_MANY_REQUESTS || says_rate_limit).then_some(Throttle::Unspecified)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn budget_is_read_from_core_headers_only() {
        let core = headers(&[
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-remaining", "4990"),
            ("x-ratelimit-used", "10"),
            ("x-ratelimit-reset", "1700000000"),
            ("x-ratelimit-resource", "core"),
        ]);
        let budget = RateBudget::from_headers(&core).unwrap();
        assert_eq!(
            (budget.limit, budget.remaining, budget.used),
            (5000, 4990, 10)
        );
        assert_eq!(budget.reset_at.timestamp(), 1_700_000_000);

        let search = headers(&[
            ("x-ratelimit-limit", "30"),
            ("x-ratelimit-remaining", "1"),
            ("x-ratelimit-reset", "1700000000"),
            ("x-ratelimit-resource", "search"),
        ]);
        assert_eq!(RateBudget::from_headers(&search), None);
        assert_eq!(RateBudget::from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn throttle_wait_tells_forbidden_from_rate_limited() {
        let none = HeaderMap::new();
        assert_eq!(
            throttle_wait(StatusCode::FORBIDDEN, &none, "Resource not accessible"),
            None
        );
        assert_eq!(
            throttle_wait(
                StatusCode::FORBIDDEN,
                &none,
                "You have exceeded a secondary rate limit"
            ),
            Some(Throttle::Unspecified)
        );
        assert_eq!(
            throttle_wait(StatusCode::TOO_MANY_REQUESTS, &none, ""),
            Some(Throttle::Unspecified)
        );
        let retry_after = headers(&[("retry-after", "7")]);
        assert_eq!(
            throttle_wait(StatusCode::FORBIDDEN, &retry_after, ""),
            Some(Throttle::Told(Duration::from_secs(7)))
        );
        assert_eq!(throttle_wait(StatusCode::NOT_FOUND, &retry_after, ""), None);
    }
}
