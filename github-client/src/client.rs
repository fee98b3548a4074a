//! [`GitHubClient`]: the endpoints the actors use, over one request loop that authorizes,
//! respects the rate budget, retries what is safe to retry, and follows `Link` pagination.
//!
//! Assumptions: paths are built from GitHub names (`[A-Za-z0-9._-]`), checked before use, so no
//! caller-supplied text can redirect a request. Pagination follows `rel="next"` links but
//! always sends them to the configured API base: credentials never go to another host.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bus_schema::{ErrorKind, Scope};
use http::header::{ACCEPT, AUTHORIZATION, ETAG, IF_NONE_MATCH, LINK, LOCATION};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use octocrab::Octocrab;
use octocrab::service::middleware::retry::RetryConfig;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::auth::{Auth, Credential, InstallationTokenWire};
use crate::model::{JitConfigWire, JobWire, JobsPage, Page, RepoWire, RunnersPage, RunsPage};
use crate::pacer::Pacer;
use crate::rate::{RateBudget, UNSPECIFIED_WAIT, throttle_wait};
use crate::shared::SharedCredential;
use crate::{Conditional, Error, JitConfig, JitRequest, Job, RunStatus, Runner, WorkflowRun};
use rand::Rng;

/// Items per page on list endpoints (GitHub's maximum).
const PER_PAGE: u32 = 100;
/// A list longer than this many pages is treated as a server bug, not followed forever.
const MAX_PAGES: usize = 500;
/// The longest backoff between retries of a 5xx or transport failure.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Redirects followed for one call before giving up (a loop, or a chain too long to trust).
const MAX_REDIRECTS: u32 = 5;
/// Page URLs whose ETag and body are kept for conditional requests; the cache is emptied when
/// it would grow past this.
const MAX_CACHED_PAGES: usize = 4096;

/// Tuning for one client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Mutating calls per minute for this credential: JIT registrations and runner deletions
    /// share this pace (FIFO, a burst of a tenth of it). GitHub asks for about one second
    /// between mutating calls of one credential, hence the default of 60; its secondary limit
    /// on JIT registrations is about 180 a minute.
    pub jit_per_minute: u32,
    /// The longest a call waits for a rate limit to clear before failing with `Quota`.
    pub max_rate_wait: Duration,
    /// Retries after a throttled, 5xx or transport failure (so `max_retries + 1` attempts).
    pub max_retries: u32,
    /// The first backoff after a 5xx or transport failure; doubles per retry, capped at 30 s.
    pub backoff_base: Duration,
    /// The limit on one request (send and read the body); `None` for no limit.
    pub request_timeout: Option<Duration>,
    /// The first wait after a secondary rate limit that names no `retry-after` (GitHub: at least
    /// a minute); it doubles per further throttled retry, up to
    /// [`ClientOptions::secondary_backoff_max`], plus up to a tenth of random jitter.
    pub secondary_backoff_base: Duration,
    /// The cap of the doubling secondary-limit backoff (before jitter).
    pub secondary_backoff_max: Duration,
    /// Pacing and budget shared with the other replicas using this credential; `None`
    /// paces this client alone.
    pub shared: Option<Arc<dyn SharedCredential>>,
    /// The share of the primary budget kept for required calls (JIT registrations): below
    /// it, [`GitHubClient::spare`] says no and optional calls are skipped.
    pub reserve: f64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            jit_per_minute: 60,
            max_rate_wait: Duration::from_secs(120),
            max_retries: 3,
            backoff_base: Duration::from_secs(1),
            request_timeout: Some(Duration::from_secs(30)),
            secondary_backoff_base: Duration::from_secs(60),
            secondary_backoff_max: Duration::from_secs(15 * 60),
            shared: None,
            reserve: 0.2,
        }
    }
}

/// A GitHub REST client for one credential. Clones share everything.
#[derive(Clone)]
pub struct GitHubClient {
    inner: Arc<Inner>,
}

struct Inner {
    octo: Octocrab,
    api_base: Url,
    /// The base URL's path without a trailing slash: `""`, or `/api/v3` on GHES.
    base_path: String,
    credential: Credential,
    budget: Mutex<Option<RateBudget>>,
    /// Paces every mutating call (POST, PATCH, PUT, DELETE) of this credential.
    mutation_pacer: Pacer,
    /// The last `ETag` and body of each page URL, so every page of a list is conditional.
    pages: Mutex<HashMap<String, CachedPage>>,
    options: ClientOptions,
    /// Requests sent, by [`endpoint_class`].
    requests: Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

/// A page as last received: its validator, its `rel="next"` path and its body.
struct CachedPage {
    etag: String,
    next: Option<String>,
    body: String,
}

/// One page of a listing, fresh or from the cache.
struct ListPage {
    etag: Option<String>,
    next: Option<String>,
    body: String,
}

/// One logical API call.
struct Call<'a> {
    op: String,
    method: Method,
    /// Relative to the API base, no leading slash, query included.
    path: String,
    body: Option<&'a serde_json::Value>,
    etag: Option<&'a str>,
}

/// A complete response.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl std::fmt::Debug for GitHubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubClient")
            .field("api_base", &self.inner.api_base.as_str())
            .field("credential", &self.inner.credential)
            .field("rate_budget", &self.rate_budget())
            .finish_non_exhaustive()
    }
}

impl GitHubClient {
    /// A client for `api_base`: `https://api.github.com`, `https://HOST/api/v3` (GHES) or a
    /// simulator's `http://127.0.0.1:PORT/`. Must be called inside a Tokio runtime.
    pub fn new(api_base: Url, auth: Auth, options: ClientOptions) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidBaseUrl {
            url: api_base.to_string(),
            reason,
        };
        if !matches!(api_base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if api_base.host_str().is_none() {
            return Err(invalid("it has no host"));
        }
        if api_base.query().is_some() || api_base.fragment().is_some() {
            return Err(invalid("it must not have a query or fragment"));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(invalid(
                "GitHubClient::new must be called inside a Tokio runtime",
            ));
        }
        let build_error = |source| Error::BuildClient {
            url: api_base.to_string(),
            source,
        };
        let octo = Octocrab::builder()
            .base_uri(api_base.as_str())
            .map_err(build_error)?
            .add_retry_config(RetryConfig::None)
            .build()
            .map_err(build_error)?;
        Ok(Self {
            inner: Arc::new(Inner {
                octo,
                base_path: api_base.path().trim_end_matches('/').to_owned(),
                api_base,
                credential: Credential::new(auth)?,
                budget: Mutex::new(None),
                mutation_pacer: Pacer::per_minute(options.jit_per_minute),
                pages: Mutex::new(HashMap::new()),
                options,
                requests: Mutex::default(),
            }),
        })
    }

    /// The API base this client talks to.
    pub fn api_base(&self) -> &Url {
        &self.inner.api_base
    }

    /// Whether an optional call (a look-up that only refines a decision, a backstop poll)
    /// may spend budget: the newest known budget (this client's or another replica's) has
    /// at least [`ClientOptions::reserve`] of its limit left. `true` while nothing is known.
    pub fn spare(&self) -> bool {
        let shared = self.inner.options.shared.as_ref().and_then(|s| s.budget());
        let budget = match (self.rate_budget(), shared) {
            (Some(a), Some(b)) if a.reset_at == b.reset_at => {
                if a.remaining <= b.remaining {
                    a
                } else {
                    b
                }
            }
            (Some(a), Some(b)) => {
                if a.reset_at > b.reset_at {
                    a
                } else {
                    b
                }
            }
            (a, b) => match a.or(b) {
                Some(budget) => budget,
                None => return true,
            },
        };
        // A window that has reset is full again.
        budget.until_reset().is_zero()
            || budget.remaining as f64 >= budget.limit as f64 * self.inner.options.reserve
    }

    /// Requests sent so far (retries included), by endpoint class: `jit`, `runners`, `runs`,
    /// `jobs`, `repos`, `other`.
    pub fn request_counts(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.inner
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The credential's primary rate budget as of the last response, if any response had one.
    pub fn rate_budget(&self) -> Option<RateBudget> {
        *self
            .inner
            .budget
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    // ---- runners ----

    /// `POST /{scope}/actions/runners/generate-jitconfig`: registers a JIT runner. Paced with
    /// the other mutating calls to [`ClientOptions::jit_per_minute`]; a 5xx or timeout is not retried here (the runner may
    /// exist): the caller sees `Transient` and can look the runner up by name.
    pub async fn generate_jit_config(
        &self,
        scope: &Scope,
        request: &JitRequest,
    ) -> Result<JitConfig, Error> {
        let op = format!(
            "generate a JIT config for runner `{}` in {scope}",
            request.name
        );
        let path = format!(
            "{}/actions/runners/generate-jitconfig",
            scope_prefix(&op, scope)?
        );
        let body = serde_json::to_value(request).map_err(|source| Error::BuildRequest {
            op: op.clone(),
            source: source.into(),
        })?;
        let reply = self
            .call(Call {
                op: op.clone(),
                method: Method::POST,
                path,
                body: Some(&body),
                etag: None,
            })
            .await?;
        Ok(decode::<JitConfigWire>(&op, &reply.body)?.into())
    }

    /// `GET /{scope}/actions/runners`, all pages.
    pub async fn list_runners(&self, scope: &Scope) -> Result<Vec<Runner>, Error> {
        let op = format!("list runners of {scope}");
        let path = format!(
            "{}/actions/runners?per_page={PER_PAGE}",
            scope_prefix(&op, scope)?
        );
        Ok(self.list::<RunnersPage>(op, path, None).await?.into_value())
    }

    /// `GET /{scope}/actions/runners/{id}`; `None` if there is no such runner.
    pub async fn get_runner(&self, scope: &Scope, runner_id: u64) -> Result<Option<Runner>, Error> {
        let op = format!("get runner {runner_id} of {scope}");
        let path = format!("{}/actions/runners/{runner_id}", scope_prefix(&op, scope)?);
        self.get_optional(op, path).await
    }

    /// `DELETE /{scope}/actions/runners/{id}`, paced with the other mutating calls. A runner
    /// that is already gone is success.
    /// A busy runner answers 422 (`Permanent`, [`Error::status`] = 422).
    pub async fn delete_runner(&self, scope: &Scope, runner_id: u64) -> Result<(), Error> {
        let op = format!("delete runner {runner_id} of {scope}");
        let path = format!("{}/actions/runners/{runner_id}", scope_prefix(&op, scope)?);
        match self
            .call(Call {
                op,
                method: Method::DELETE,
                path,
                body: None,
                etag: None,
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
        }
    }

    // ---- workflow runs and jobs ----

    /// `GET /repos/{owner}/{repo}/actions/runs?status=queued`, all pages. With `etag` (from
    /// the last `Modified`), an unchanged first page answers `NotModified`.
    pub async fn list_queued_runs(
        &self,
        owner: &str,
        repo: &str,
        etag: Option<&str>,
    ) -> Result<Conditional<Vec<WorkflowRun>>, Error> {
        self.list_runs(owner, repo, RunStatus::Queued, etag).await
    }

    /// `GET /repos/{owner}/{repo}/actions/runs?status=<status>`, all pages, conditional on
    /// `etag` like [`GitHubClient::list_queued_runs`]. `status` is `queued` or `in_progress`
    /// (or any status GitHub accepts).
    pub async fn list_runs(
        &self,
        owner: &str,
        repo: &str,
        status: RunStatus,
        etag: Option<&str>,
    ) -> Result<Conditional<Vec<WorkflowRun>>, Error> {
        let status = match status {
            RunStatus::Queued => "queued",
            RunStatus::InProgress => "in_progress",
            RunStatus::Completed => "completed",
            RunStatus::Waiting => "waiting",
            RunStatus::Requested => "requested",
            RunStatus::Pending => "pending",
            RunStatus::Unknown => "queued",
        };
        let op = format!("list {status} runs of {owner}/{repo}");
        let prefix = repo_prefix(&op, owner, repo)?;
        let path = format!("{prefix}/actions/runs?status={status}&per_page={PER_PAGE}");
        let full_name = format!("{owner}/{repo}");
        Ok(self
            .list::<RunsPage>(op, path, etag)
            .await?
            .map(|runs| runs.into_iter().map(|r| r.into_run(&full_name)).collect()))
    }

    /// `GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs` (latest attempt), all pages,
    /// conditional on `etag` like [`GitHubClient::list_queued_runs`].
    pub async fn list_run_jobs(
        &self,
        owner: &str,
        repo: &str,
        run_id: u64,
        etag: Option<&str>,
    ) -> Result<Conditional<Vec<Job>>, Error> {
        let op = format!("list jobs of run {run_id} in {owner}/{repo}");
        let prefix = repo_prefix(&op, owner, repo)?;
        let path = format!("{prefix}/actions/runs/{run_id}/jobs?per_page={PER_PAGE}");
        let full_name = format!("{owner}/{repo}");
        Ok(self
            .list::<JobsPage>(op, path, etag)
            .await?
            .map(|jobs| jobs.into_iter().map(|j| j.into_job(&full_name)).collect()))
    }

    /// `GET /repos/{owner}/{repo}/actions/jobs/{job_id}`; `None` if there is no such job.
    pub async fn get_job(
        &self,
        owner: &str,
        repo: &str,
        job_id: u64,
    ) -> Result<Option<Job>, Error> {
        let op = format!("get job {job_id} in {owner}/{repo}");
        let path = format!("{}/actions/jobs/{job_id}", repo_prefix(&op, owner, repo)?);
        let full_name = format!("{owner}/{repo}");
        Ok(self
            .get_optional::<JobWire>(op, path)
            .await?
            .map(|j| j.into_job(&full_name)))
    }

    /// `GET /orgs/{org}/repos`, all pages: the names of the repositories that can run
    /// workflows (archived and disabled ones are left out), so a poller can cover an org.
    pub async fn list_org_repos(&self, org: &str) -> Result<Vec<String>, Error> {
        let op = format!("list repositories of org {org}");
        let path = format!(
            "orgs/{}/repos?type=all&per_page={PER_PAGE}",
            segment(&op, org)?
        );
        let repos = self
            .list::<Vec<RepoWire>>(op, path, None)
            .await?
            .into_value();
        Ok(repos
            .into_iter()
            .filter(|r| !r.archived && !r.disabled)
            .map(|r| r.name)
            .collect())
    }

    // ---- plumbing ----

    async fn get_optional<T: serde::de::DeserializeOwned>(
        &self,
        op: String,
        path: String,
    ) -> Result<Option<T>, Error> {
        match self
            .call(Call {
                op: op.clone(),
                method: Method::GET,
                path,
                body: None,
                etag: None,
            })
            .await
        {
            Ok(reply) => decode(&op, &reply.body).map(Some),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// GETs `first` and every `rel="next"` page after it. Every page is conditional on the
    /// `ETag` it had last time (a 304 reuses that page's cached body and link, and costs no
    /// rate budget). The listing's validator is the first page's `ETag` (all pages' joined, for
    /// several): the result is `NotModified` only when every page answered 304 and `etag` is
    /// that validator.
    async fn list<P: Page>(
        &self,
        op: String,
        first: String,
        etag: Option<&str>,
    ) -> Result<Conditional<Vec<P::Item>>, Error> {
        let mut items = Vec::new();
        let mut path = first;
        let mut validators: Vec<Option<String>> = Vec::new();
        let mut unchanged = true;
        for _ in 0..MAX_PAGES {
            let cached = self.cached_page(&path);
            let reply = self
                .call(Call {
                    op: op.clone(),
                    method: Method::GET,
                    path: path.clone(),
                    body: None,
                    etag: cached.as_ref().and_then(|c| c.etag.as_deref()),
                })
                .await?;
            let page = match (reply.status == StatusCode::NOT_MODIFIED, cached) {
                (true, Some(cached)) => cached,
                (true, None) => {
                    return Err(Error::Status {
                        op,
                        status: 304,
                        message: "not modified, for a page asked unconditionally".into(),
                    });
                }
                (false, _) => {
                    unchanged = false;
                    let page = ListPage {
                        etag: header(&reply.headers, ETAG.as_str()).map(str::to_owned),
                        next: self.next_page(&reply.headers),
                        body: reply.body,
                    };
                    self.cache_page(&path, &page);
                    page
                }
            };
            validators.push(page.etag.clone());
            items.extend(decode::<P>(&op, &page.body)?.into_items());
            match page.next {
                Some(next) => path = next,
                None => {
                    let validator = validators
                        .into_iter()
                        .collect::<Option<Vec<_>>>()
                        .map(|v| v.join(" "));
                    if unchanged && etag.is_some() && validator.as_deref() == etag {
                        return Ok(Conditional::NotModified);
                    }
                    return Ok(Conditional::Modified {
                        value: items,
                        etag: validator,
                    });
                }
            }
        }
        Err(Error::Status {
            op,
            status: 200,
            message: format!("more than {MAX_PAGES} pages; refusing to follow further"),
        })
    }

    /// The cached copy of the page at `path`, if it had an `ETag`.
    fn cached_page(&self, path: &str) -> Option<ListPage> {
        let pages = self
            .inner
            .pages
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        pages.get(path).map(|c| ListPage {
            etag: Some(c.etag.clone()),
            next: c.next.clone(),
            body: c.body.clone(),
        })
    }

    fn cache_page(&self, path: &str, page: &ListPage) {
        let mut pages = self
            .inner
            .pages
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(etag) = &page.etag else {
            pages.remove(path);
            return;
        };
        if pages.len() >= MAX_CACHED_PAGES && !pages.contains_key(path) {
            pages.clear();
        }
        pages.insert(
            path.to_owned(),
            CachedPage {
                etag: etag.clone(),
                next: page.next.clone(),
                body: page.body.clone(),
            },
        );
    }

    /// The `rel="next"` link as a path relative to the API base.
    fn next_page(&self, headers: &HeaderMap) -> Option<String> {
        let next = header(headers, LINK.as_str())?
            .split(',')
            .find_map(|link| {
                let (target, params) = link.split_once(';')?;
                params
                    .split(';')
                    .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"))
                    .then(|| target.trim().trim_start_matches('<').trim_end_matches('>'))
            })?;
        let url = self.inner.api_base.join(next).ok()?;
        let path = url.path();
        let path = path
            .strip_prefix(self.inner.base_path.as_str())
            .unwrap_or(path);
        Some(relative(path, url.query()))
    }

    /// Where a 3xx sends `call`, as a path relative to the API base. Only the API's own host
    /// and base path are followed, so the `Authorization` header never leaves them.
    fn redirect_path(&self, call: &Call<'_>, reply: &Reply) -> Result<String, Error> {
        let location = header(&reply.headers, LOCATION.as_str()).unwrap_or_default();
        let refuse = |reason| Error::Redirect {
            op: call.op.clone(),
            status: reply.status.as_u16(),
            location: location.to_owned(),
            reason,
        };
        if location.is_empty() {
            return Err(refuse("no Location header"));
        }
        let base = &self.inner.api_base;
        let current = Url::parse(&format!(
            "{}{}/{}",
            base.origin().ascii_serialization(),
            self.inner.base_path,
            call.path
        ))
        .map_err(|_| refuse("the request URL cannot be rebuilt"))?;
        let target = current.join(location).map_err(|_| refuse("not a URL"))?;
        if target.origin() != base.origin() {
            return Err(refuse(
                "it leads to another host, which must not see this credential",
            ));
        }
        let path = target
            .path()
            .strip_prefix(self.inner.base_path.as_str())
            .filter(|p| p.starts_with('/'))
            .ok_or_else(|| refuse("it leads outside the API base path"))?;
        Ok(relative(path, target.query()))
    }

    /// Sends `call` until it succeeds (2xx or 304) or fails for good. Mutating calls are
    /// paced; 301, 302, 307 and 308 are followed with the same method and body (303 becomes a
    /// GET), at most [`MAX_REDIRECTS`] times.
    async fn call(&self, mut call: Call<'_>) -> Result<Reply, Error> {
        let max_retries = self.inner.options.max_retries;
        let mut attempt = 0;
        let mut throttled = 0;
        let mut redirects = 0;
        let mut reauthorized = false;
        loop {
            // A POST that failed in flight may have taken effect: only GET and DELETE are resent.
            let idempotent = call.method != Method::POST;
            let mutating = !matches!(call.method, Method::GET | Method::HEAD | Method::OPTIONS);
            self.wait_for_budget(&call.op).await?;
            let token = match self.token().await {
                Ok(token) => token,
                // Minting an installation token is safe to repeat, whatever the call.
                Err(err) if err.kind() == ErrorKind::Transient && attempt < max_retries => {
                    self.back_off(&call.op, &err, attempt).await;
                    attempt += 1;
                    continue;
                }
                Err(err) => return Err(err),
            };
            *self
                .inner
                .requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(endpoint_class(&call.path))
                .or_default() += 1;
            if mutating {
                match &self.inner.options.shared {
                    Some(shared) => shared.pace().await,
                    None => self.inner.mutation_pacer.acquire().await,
                }
            }
            let reply = match self.send_once(&call, &token).await {
                Ok(reply) => reply,
                Err(err)
                    if idempotent
                        && err.kind() == ErrorKind::Transient
                        && attempt < max_retries =>
                {
                    self.back_off(&call.op, &err, attempt).await;
                    attempt += 1;
                    continue;
                }
                Err(err) => return Err(err),
            };
            if let Some(budget) = RateBudget::from_headers(&reply.headers) {
                if let Some(shared) = &self.inner.options.shared {
                    shared.observed(budget);
                }
                *self
                    .inner
                    .budget
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(budget);
            }
            let status = reply.status;
            if status.is_success() || status == StatusCode::NOT_MODIFIED {
                return Ok(reply);
            }
            if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(Error::Redirect {
                        op: call.op,
                        status: status.as_u16(),
                        location: header(&reply.headers, LOCATION.as_str())
                            .unwrap_or_default()
                            .to_owned(),
                        reason: "too many redirects",
                    });
                }
                let path = self.redirect_path(&call, &reply)?;
                tracing::info!(op = %call.op, status = status.as_u16(), to = %path, "GitHub moved the resource: following");
                if status == StatusCode::SEE_OTHER {
                    call.method = Method::GET;
                    call.body = None;
                }
                call.path = path;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED
                && !reauthorized
                && let Credential::App(app) = &self.inner.credential
            {
                // The cached installation token was revoked or expired early: mint once more.
                app.invalidate(&token).await;
                reauthorized = true;
                continue;
            }
            if let Some(throttle) = throttle_wait(status, &reply.headers, &reply.body) {
                let wait = throttle.or(self.secondary_backoff(throttled));
                if attempt < max_retries && wait <= self.inner.options.max_rate_wait {
                    // Being throttled is a decision that delays jobs (info), not a fault.
                    tracing::info!(op = %call.op, status = status.as_u16(), ?wait, attempt, "GitHub rate limit: waiting");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    throttled += 1;
                    continue;
                }
                let status = Some(status.as_u16());
                return Err(Error::RateLimited {
                    op: call.op,
                    status,
                    wait,
                });
            }
            let err = Error::Status {
                op: call.op.clone(),
                status: status.as_u16(),
                message: github_message(&reply.body),
            };
            if status.is_server_error() && idempotent && attempt < max_retries {
                self.back_off(&call.op, &err, attempt).await;
                attempt += 1;
                continue;
            }
            return Err(err);
        }
    }

    /// The wait before retry `n + 1` after a secondary limit that named no wait: the base
    /// doubled `n` times, capped, plus up to a tenth of it at random so that many clients
    /// throttled together do not come back together.
    fn secondary_backoff(&self, n: u32) -> Duration {
        let options = &self.inner.options;
        let wait = options
            .secondary_backoff_base
            .saturating_mul(1 << n.min(16))
            .min(options.secondary_backoff_max);
        let tenth = u64::try_from(wait.as_millis() / 10).unwrap_or(u64::MAX);
        wait + Duration::from_millis(rand::rng().random_range(0..=tenth))
    }

    /// Sleeps before retry `attempt + 1` of a transient failure.
    async fn back_off(&self, op: &str, error: &Error, attempt: u32) {
        let wait = backoff(self.inner.options.backoff_base, attempt);
        // A transient failure retried is expected; one that keeps failing is worth a warning.
        if attempt < 2 {
            tracing::debug!(op, error = %error, ?wait, attempt, "GitHub call failed: retrying");
        } else {
            tracing::warn!(op, error = %error, ?wait, attempt, "GitHub call failed: retrying");
        }
        tokio::time::sleep(wait).await;
    }

    /// With the budget spent, waits for its reset (bounded by `max_rate_wait`).
    async fn wait_for_budget(&self, op: &str) -> Result<(), Error> {
        let Some(budget) = self.rate_budget().filter(|b| b.remaining == 0) else {
            return Ok(());
        };
        let wait = budget.until_reset();
        if wait.is_zero() {
            return Ok(());
        }
        if wait > self.inner.options.max_rate_wait {
            return Err(Error::RateLimited {
                op: op.to_owned(),
                status: None,
                wait,
            });
        }
        tracing::warn!(op, ?wait, "GitHub rate budget spent: waiting for its reset");
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// The bearer token for API calls: the PAT, or a cached or freshly minted installation token.
    async fn token(&self) -> Result<SecretString, Error> {
        match &self.inner.credential {
            Credential::Pat(token) => Ok(token.clone()),
            Credential::App(app) => {
                let id = app.installation_id;
                app.token(|jwt| async move {
                    let call = Call {
                        op: format!("create an access token for installation {id}"),
                        method: Method::POST,
                        path: format!("app/installations/{id}/access_tokens"),
                        body: None,
                        etag: None,
                    };
                    let reply = self.send_once(&call, &jwt).await?;
                    if !reply.status.is_success() {
                        if let Some(throttle) =
                            throttle_wait(reply.status, &reply.headers, &reply.body)
                        {
                            let wait = throttle.or(UNSPECIFIED_WAIT);
                            let status = Some(reply.status.as_u16());
                            return Err(Error::RateLimited {
                                op: call.op,
                                status,
                                wait,
                            });
                        }
                        return Err(Error::Status {
                            op: call.op,
                            status: reply.status.as_u16(),
                            message: github_message(&reply.body),
                        });
                    }
                    decode::<InstallationTokenWire>(&call.op, &reply.body)
                })
                .await
            }
        }
    }

    /// One HTTP exchange, body included, within the request timeout.
    async fn send_once(&self, call: &Call<'_>, bearer: &SecretString) -> Result<Reply, Error> {
        let octo = &self.inner.octo;
        let build_error = |source: Box<dyn std::error::Error + Send + Sync>| Error::BuildRequest {
            op: call.op.clone(),
            source,
        };
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {}", bearer.expose_secret()))
                .map_err(|e| build_error(e.into()))?;
        authorization.set_sensitive(true);
        let mut builder = http::Request::builder()
            .method(call.method.clone())
            .uri(format!("{}/{}", self.inner.base_path, call.path))
            .header(AUTHORIZATION, authorization)
            .header(ACCEPT, "application/vnd.github+json");
        if let Some(etag) = call.etag {
            builder = builder.header(IF_NONE_MATCH, etag);
        }
        let request = octo
            .build_request(builder, call.body)
            .map_err(|e| build_error(e.into()))?;
        let exchange = async {
            let response = octo.execute(request).await?;
            let (parts, body) = response.into_parts();
            let body = octo.body_to_string(http::Response::new(body)).await?;
            Ok::<_, octocrab::Error>(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        let result = match self.inner.options.request_timeout {
            Some(after) => {
                tokio::time::timeout(after, exchange)
                    .await
                    .map_err(|_| Error::Timeout {
                        op: call.op.clone(),
                        after,
                    })?
            }
            None => exchange.await,
        };
        result.map_err(|source| Error::Transport {
            op: call.op.clone(),
            source,
        })
    }
}

impl<T> Conditional<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Conditional<U> {
        match self {
            Conditional::NotModified => Conditional::NotModified,
            Conditional::Modified { value, etag } => Conditional::Modified {
                value: f(value),
                etag,
            },
        }
    }
}

impl<T: Default> Conditional<T> {
    /// The value, or the default for `NotModified` (for calls made without an ETag).
    fn into_value(self) -> T {
        match self {
            Conditional::NotModified => T::default(),
            Conditional::Modified { value, .. } => value,
        }
    }
}

/// `path` (relative to the API base, with or without its leading `/`) and `query` as a call path.
fn relative(path: &str, query: Option<&str>) -> String {
    let path = path.trim_start_matches('/');
    match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    }
}

fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1 << attempt.min(16)).min(MAX_BACKOFF)
}

/// The class of a REST path, for request counts: few enough values for a metric label.
fn endpoint_class(path: &str) -> &'static str {
    let path = path.split('?').next().unwrap_or_default();
    if path.ends_with("generate-jitconfig") {
        "jit"
    } else if path.contains("/runners") {
        "runners"
    } else if path.contains("/jobs") {
        "jobs"
    } else if path.contains("/runs") {
        "runs"
    } else if path.contains("repos") {
        "repos"
    } else {
        "other"
    }
}

fn decode<T: serde::de::DeserializeOwned>(op: &str, body: &str) -> Result<T, Error> {
    serde_json::from_str(body).map_err(|source| Error::Decode {
        op: op.to_owned(),
        source,
    })
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

/// GitHub's error `message`, or the start of the body.
fn github_message(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: String,
    }
    let message =
        serde_json::from_str::<ErrorBody>(body).map_or_else(|_| body.to_owned(), |b| b.message);
    message.chars().take(300).collect()
}

/// A path segment that is a plausible GitHub name.
fn segment<'a>(op: &str, name: &'a str) -> Result<&'a str, Error> {
    let valid = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(name)
    } else {
        Err(Error::BuildRequest {
            op: op.to_owned(),
            source: format!("`{name}` is not a valid GitHub name").into(),
        })
    }
}

fn repo_prefix(op: &str, owner: &str, repo: &str) -> Result<String, Error> {
    Ok(format!(
        "repos/{}/{}",
        segment(op, owner)?,
        segment(op, repo)?
    ))
}

fn scope_prefix(op: &str, scope: &Scope) -> Result<String, Error> {
    match scope {
        Scope::Enterprise { enterprise } => segment(op, enterprise)?,
        Scope::Org { org } => segment(op, org)?,
        Scope::Repo { owner, repo } => return repo_prefix(op, owner, repo),
    };
    Ok(scope.api_prefix())
}

#[cfg(test)]
mod class_tests {
    use super::endpoint_class;

    #[test]
    fn paths_fall_into_few_endpoint_classes() {
        for (path, class) in [
            ("orgs/acme/actions/runners/generate-jitconfig", "jit"),
            ("repos/o/r/actions/runners/7", "runners"),
            ("repos/o/r/actions/runs/9/jobs?per_page=100", "jobs"),
            ("repos/o/r/actions/jobs/5", "jobs"),
            ("repos/o/r/actions/runs?status=queued", "runs"),
            ("orgs/acme/repos", "repos"),
            ("app/installations/1/access_tokens", "other"),
        ] {
            assert_eq!(endpoint_class(path), class, "{path}");
        }
    }
}
