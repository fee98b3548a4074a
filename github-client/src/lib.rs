//! GitHub REST client for the actors: JIT runner registration, runner listing and deletion,
//! queued workflow runs and their jobs, with GitHub's rate limits respected.
//!
//! One [`GitHubClient`] per credential (a PAT, or one GitHub App installation). It is cheap to
//! clone: clones share the connection pool, the installation-token cache, the [`RateBudget`] and
//! the JIT pacer, so build one per registration and hand clones to every actor.
//!
//! # Guarantees
//!
//! - Secrets (PAT, App key, installation token, JIT config) never appear in `Debug` output, logs
//!   or error messages; the `Authorization` header is marked sensitive.
//! - App auth: an RS256 JWT (`iss` = app id, `iat` 60 s in the past, `exp` 9 min ahead) buys an
//!   installation token, cached until 5 minutes before its `expires_at` and refreshed by exactly
//!   one caller at a time (others wait for it, no stampede). A 401 drops the cached token and the
//!   call is retried once with a fresh one.
//! - Every response's `x-ratelimit-*` headers (resource `core`) update the [`RateBudget`]. With
//!   `remaining = 0` a call waits for the reset, up to [`ClientOptions::max_rate_wait`], else it
//!   fails with [`bus_schema::ErrorKind::Quota`]. A 403/429 carrying `retry-after`,
//!   `x-ratelimit-remaining: 0`, or a "rate limit" message is waited out and retried (bounded).
//! - 5xx, timeouts and connection errors are retried with exponential backoff, but only for
//!   GET and DELETE: a `generate-jitconfig` POST that failed mid-way may have registered the
//!   runner, so it is returned as [`bus_schema::ErrorKind::Transient`] for the caller, who
//!   knows the runner name, to resolve.
//! - A 403/429 secondary limit without `retry-after` is backed off exponentially: 60 s, doubling
//!   per retry up to [`ClientOptions::secondary_backoff_max`], plus up to a tenth of random
//!   jitter ([`ClientOptions::secondary_backoff_base`]); `retry-after` is honoured as given.
//! - Mutating calls (JIT registrations, runner deletions; any POST, PATCH, PUT or DELETE) are
//!   paced per client to [`ClientOptions::jit_per_minute`] (default 60: GitHub asks for about a
//!   second between mutating calls): excess calls wait in FIFO order and never fail for being
//!   early. With [`ClientOptions::shared`] set, the pace is the cluster's (every replica
//!   using the credential together) instead of this client's.
//! - Optional calls ask [`GitHubClient::spare`] first: below [`ClientOptions::reserve`] of the
//!   budget (the newest reading of any replica) they are skipped, leaving the rest to JIT
//!   registrations.
//! - Redirects (301, 302, 307, 308: a renamed or transferred repository or organization) are
//!   followed with the same method and body (303 becomes a GET), at most 5 hops, and only on
//!   the API's own host and base path, so the `Authorization` header never goes elsewhere; any
//!   other redirect fails with [`Error::Redirect`](crate::Error).
//! - Every page of a listing is conditional: each page URL's `ETag`, `Link` and body are kept,
//!   and a 304 (free of rate budget) reuses them.
//!
//! # Why octocrab is used the way it is
//!
//! octocrab 0.54 provides the transport: hyper + rustls, base-URI joining (which keeps a GHES
//! `/api/v3` prefix), `X-GitHub-Api-Version`, request/body plumbing. Its typed handlers hide the
//! status code, `ETag` and rate-limit headers, and its installation-token cache refreshes 30 s
//! before expiry without single-flight, attaches credentials only to `api.github.com` for
//! absolute URLs, and its retry layer would retry POSTs. So the client builds octocrab without
//! auth or retries and sends every request through `build_request` + `execute` (the generic
//! `_get`/`_post`/`_delete` underneath), setting `Authorization`, `Accept` and `If-None-Match`
//! itself and reading status, headers and body directly.

mod auth;
mod client;
mod error;
mod model;
mod pacer;
mod rate;
mod shared;

pub use auth::Auth;
pub use client::{ClientOptions, GitHubClient};
pub use error::Error;
pub use model::{
    Conditional, JitConfig, JitRequest, Job, RunStatus, Runner, RunnerStatus, WorkflowRun,
};
pub use rate::RateBudget;
pub use shared::{PaceFuture, SharedCredential};
