//! The REST routes and the guard in front of them (auth, rate limits, injected faults).
//!
//! Guarantees: every answer of these routes carries `x-ratelimit-limit/remaining/used/reset/
//! resource`; unknown or missing credentials get GitHub's 401 bodies; an exhausted primary limit
//! gets 403 `API rate limit exceeded`; the JIT secondary limit gets 403 with `retry-after`;
//! list answers carry an ETag and honour `If-None-Match` with an uncounted 304.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, OriginalUri, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bus_schema::Scope;
use rand::distr::{Alphanumeric, SampleString};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::limits::{Bucket, Fault};
use super::state::{DeleteError, same_scope};
use super::{Caller, Issued, Sim, jit, lock, shapes, vendor};

const SECONDARY: &str = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.";
const SECONDARY_DOCS: &str = "/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits";

type Params = Path<HashMap<String, String>>;
type QueryMap = Query<HashMap<String, String>>;

/// The REST router, guarded.
pub(crate) fn router(sim: Arc<Sim>) -> Router {
    let mut router = Router::new()
        .route(
            "/app/installations/{installation_id}/access_tokens",
            post(access_token),
        )
        .route("/rate_limit", get(rate_limit))
        .route("/orgs/{org}/repos", get(org_repos))
        .route("/repos/{owner}/{repo}/actions/runs", get(list_runs))
        .route("/repos/{owner}/{repo}/actions/runs/{run_id}", get(get_run))
        .route(
            "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs",
            get(list_jobs),
        )
        .route("/repos/{owner}/{repo}/actions/jobs/{job_id}", get(get_job));
    for prefix in [
        "/repos/{owner}/{repo}",
        "/orgs/{org}",
        "/enterprises/{enterprise}",
    ] {
        router = router
            .route(&format!("{prefix}/actions/runners"), get(list_runners))
            .route(
                &format!("{prefix}/actions/runners/generate-jitconfig"),
                post(generate_jitconfig),
            )
            .route(
                &format!("{prefix}/actions/runners/{{runner_id}}"),
                get(get_runner).delete(delete_runner),
            );
    }
    router
        .layer(middleware::from_fn_with_state(sim.clone(), vendor::layer))
        .layer(middleware::from_fn_with_state(sim.clone(), guard))
        .with_state(sim)
}

fn error(status: StatusCode, message: &str, docs: &str) -> Response {
    (
        status,
        axum::Json(shapes::error(status.as_u16(), message, docs)),
    )
        .into_response()
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not Found", "")
}

fn set(headers: &mut HeaderMap, name: &'static str, value: impl ToString) {
    if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
        headers.insert(name, value);
    }
}

fn with_rate(mut response: Response, bucket: Bucket) -> Response {
    let headers = response.headers_mut();
    set(headers, "x-ratelimit-limit", bucket.limit);
    set(headers, "x-ratelimit-remaining", bucket.remaining());
    set(headers, "x-ratelimit-used", bucket.used);
    set(headers, "x-ratelimit-reset", bucket.reset);
    set(headers, "x-ratelimit-resource", "core");
    set(headers, "x-github-api-version-selected", "2022-11-28");
    response
}

/// Authenticates, counts, injects faults, and stamps rate-limit headers on the answer.
async fn guard(State(sim): State<Arc<Sim>>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let caller = if path.starts_with("/app/") {
        Ok(Caller { key: "app".into() })
    } else {
        sim.authenticate(request.headers())
    };
    let caller = match caller {
        Ok(caller) => caller,
        Err(message) => {
            let bucket = lock(&sim.limits).take("anonymous", 60);
            let response = error(StatusCode::UNAUTHORIZED, message, "");
            return with_rate(response, bucket.unwrap_or_else(|b| b));
        }
    };
    let taken = lock(&sim.limits).take(&caller.key, sim.config.rate_limit);
    let bucket = match taken {
        Ok(bucket) => bucket,
        Err(bucket) => {
            let response = error(
                StatusCode::FORBIDDEN,
                "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID.",
                "/overview/rate-limits-for-the-rest-api",
            );
            return with_rate(response, bucket);
        }
    };
    let fault = lock(&sim.limits).take_fault(&path);
    if let Some(fault) = fault {
        return with_rate(fault_response(&fault), bucket);
    }
    request.extensions_mut().insert(caller.clone());
    let response = next.run(request).await;
    let bucket = if response.status() == StatusCode::NOT_MODIFIED {
        lock(&sim.limits).refund(&caller.key).unwrap_or(bucket)
    } else {
        bucket
    };
    with_rate(response, bucket)
}

fn fault_response(fault: &Fault) -> Response {
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match status {
        StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS => {
            error(status, SECONDARY, SECONDARY_DOCS)
        }
        _ => error(
            status,
            status.canonical_reason().unwrap_or("Server Error"),
            "",
        ),
    };
    if matches!(
        status,
        StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
    ) {
        set(
            response.headers_mut(),
            "retry-after",
            fault.retry_after.unwrap_or(1),
        );
    }
    response
}

impl Sim {
    /// Maps an `Authorization` header to a caller, or GitHub's 401 message.
    fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, &'static str> {
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or("Requires authentication")?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .or_else(|| value.strip_prefix("token "))
            .ok_or("Bad credentials")?
            .trim();
        if let Some(i) = self
            .config
            .tokens
            .iter()
            .position(|t| t.expose_secret() == token)
        {
            return Ok(Caller {
                key: format!("pat:{i}"),
            });
        }
        match lock(&self.issued).get(token) {
            Some(issued) if issued.expires > Instant::now() => Ok(Caller {
                key: format!("installation:{}", issued.installation_id),
            }),
            _ => Err("Bad credentials"),
        }
    }

    /// The scope named by the path, if it exists here.
    fn scope(&self, params: &HashMap<String, String>) -> Option<Scope> {
        let get = |k: &str| params.get(k).cloned();
        if let Some(enterprise) = get("enterprise") {
            return enterprise
                .eq_ignore_ascii_case(&self.config.enterprise)
                .then_some(Scope::Enterprise { enterprise });
        }
        if let Some(org) = get("org") {
            let exists = self.read(|w| !w.org_repos(&org).is_empty());
            return exists.then_some(Scope::Org { org });
        }
        let (owner, repo) = (get("owner")?, get("repo")?);
        let known = self.read(|w| w.repo(&owner, &repo).is_some());
        known.then_some(Scope::Repo { owner, repo })
    }

    fn scope_html(&self, scope: &Scope) -> String {
        let html = &self.urls.html;
        match scope {
            Scope::Enterprise { enterprise } => format!("{html}/enterprises/{enterprise}"),
            Scope::Org { org } => format!("{html}/{org}"),
            Scope::Repo { owner, repo } => format!("{html}/{owner}/{repo}"),
        }
    }

    fn runner_json(&self, runner: &super::Runner) -> Value {
        self.read(|w| {
            let implied = w.implied_labels().to_vec();
            let mut ids = HashMap::new();
            for label in implied.iter().chain(&runner.labels) {
                ids.insert(label.to_lowercase(), w.label_id(label));
            }
            shapes::runner(runner, &implied, |l| {
                ids.get(&l.to_lowercase()).copied().unwrap_or(0)
            })
        })
    }
}

/// A JSON answer with an ETag; `304` when `If-None-Match` names it.
fn conditional(headers: &HeaderMap, body: &Value, link: Option<String>) -> Response {
    let bytes = body.to_string();
    let etag = format!(
        "\"{}\"",
        hex::encode(&Sha256::digest(bytes.as_bytes())[..16])
    );
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        });
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            bytes,
        )
            .into_response()
    };
    set(response.headers_mut(), "etag", &etag);
    if let Some(link) = link.filter(|_| !matches) {
        set(response.headers_mut(), "link", link);
    }
    response
}

/// One page of `items` (`per_page` default 30, max 100) and the `Link` header for the others.
fn paginate<T: Clone>(
    items: &[T],
    query: &HashMap<String, String>,
    uri: &OriginalUri,
    api: &str,
) -> (Vec<T>, Option<String>) {
    let num =
        |k: &str, default: usize| query.get(k).and_then(|v| v.parse().ok()).unwrap_or(default);
    let per_page = num("per_page", 30).clamp(1, 100);
    let page = num("page", 1).max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let slice = items
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    let others: Vec<String> = query
        .iter()
        .filter(|(k, _)| *k != "page" && *k != "per_page")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let url = |p: usize| {
        let mut params = others.clone();
        params.push(format!("per_page={per_page}"));
        params.push(format!("page={p}"));
        format!("<{api}{}?{}>", uri.0.path(), params.join("&"))
    };
    let mut links = Vec::new();
    if page < last {
        links.push(format!("{}; rel=\"next\"", url(page + 1)));
        links.push(format!("{}; rel=\"last\"", url(last)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", url(1)));
        links.push(format!("{}; rel=\"prev\"", url(page - 1)));
    }
    (slice, (!links.is_empty()).then(|| links.join(", ")))
}

async fn rate_limit(State(sim): State<Arc<Sim>>, Extension(caller): Extension<Caller>) -> Response {
    let limits = lock(&sim.limits).refund(&caller.key);
    // Like GitHub, asking for the rate limit does not count against it.
    let bucket = limits.map(
        |b| json!({"limit": b.limit, "remaining": b.remaining(), "used": b.used, "reset": b.reset}),
    );
    // The other resources are not simulated: full budgets, so the answer has GitHub's shape.
    let reset = bucket
        .as_ref()
        .map_or(0, |b| b["reset"].as_u64().unwrap_or(0));
    let full = |limit: u64| json!({"limit": limit, "remaining": limit, "used": 0, "reset": reset});
    axum::Json(json!({
        "resources": {
            "core": bucket,
            "search": full(30),
            "code_search": full(10),
            "graphql": full(5000),
            "integration_manifest": full(5000),
            "dependency_snapshots": full(100),
            "code_scanning_upload": full(1000),
            "actions_runner_registration": full(10000),
            "scim": full(15000),
            "audit_log": full(1750),
        },
        "rate": bucket,
    }))
    .into_response()
}

async fn org_repos(
    State(sim): State<Arc<Sim>>,
    Path(org): Path<String>,
    uri: OriginalUri,
    Query(q): QueryMap,
    headers: HeaderMap,
) -> Response {
    let repos = sim.read(|w| w.org_repos(&org));
    if repos.is_empty() {
        return not_found();
    }
    let all: Vec<Value> = repos
        .iter()
        .map(|r| shapes::repository(r, &sim.urls))
        .collect();
    let (page, link) = paginate(&all, &q, &uri, &sim.urls.api);
    conditional(&headers, &Value::Array(page), link)
}

async fn list_runs(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo)): Path<(String, String)>,
    uri: OriginalUri,
    Query(q): QueryMap,
    headers: HeaderMap,
) -> Response {
    let Some(full) = sim.read(|w| w.repo(&owner, &repo).map(str::to_owned)) else {
        return not_found();
    };
    let wanted = q.get("status").cloned();
    let runs: Vec<_> = sim
        .read(|w| w.runs_of(&full))
        .into_iter()
        .filter(|r| {
            wanted.as_deref().is_none_or(|s| {
                r.status.as_str() == s || r.conclusion.is_some_and(|c| c.as_str() == s)
            })
        })
        .collect();
    let (page, link) = paginate(&runs, &q, &uri, &sim.urls.api);
    let body = json!({
        "total_count": runs.len(),
        "workflow_runs": page.iter().map(|r| shapes::run(r, &sim.urls)).collect::<Vec<_>>(),
    });
    conditional(&headers, &body, link)
}

async fn get_run(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo, run_id)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    match sim.read(|w| {
        w.run(run_id)
            .filter(|r| r.repo.eq_ignore_ascii_case(&format!("{owner}/{repo}")))
            .cloned()
    }) {
        Some(run) => conditional(&headers, &shapes::run(&run, &sim.urls), None),
        None => not_found(),
    }
}

async fn list_jobs(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo, run_id)): Path<(String, String, u64)>,
    uri: OriginalUri,
    Query(q): QueryMap,
    headers: HeaderMap,
) -> Response {
    let full = format!("{owner}/{repo}");
    let Some(jobs) = sim.read(|w| {
        w.run(run_id)
            .filter(|r| r.repo.eq_ignore_ascii_case(&full))
            .map(|_| w.jobs_of_run(run_id))
    }) else {
        return not_found();
    };
    let (page, link) = paginate(&jobs, &q, &uri, &sim.urls.api);
    let body = json!({
        "total_count": jobs.len(),
        "jobs": page.iter().map(|j| shapes::job(j, &sim.urls)).collect::<Vec<_>>(),
    });
    conditional(&headers, &body, link)
}

async fn get_job(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo, job_id)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    let full = format!("{owner}/{repo}");
    match sim.read(|w| {
        w.job(job_id)
            .filter(|j| j.repo.eq_ignore_ascii_case(&full))
            .cloned()
    }) {
        Some(job) => conditional(&headers, &shapes::job(&job, &sim.urls), None),
        None => not_found(),
    }
}

async fn list_runners(
    State(sim): State<Arc<Sim>>,
    Path(params): Params,
    uri: OriginalUri,
    Query(q): QueryMap,
    headers: HeaderMap,
) -> Response {
    let Some(scope) = sim.scope(&params) else {
        return not_found();
    };
    let name = q.get("name").cloned();
    let runners: Vec<_> = sim
        .read(|w| w.runners_in(&scope))
        .into_iter()
        .filter(|r| {
            name.as_deref()
                .is_none_or(|n| r.name.eq_ignore_ascii_case(n))
        })
        .collect();
    let (page, link) = paginate(&runners, &q, &uri, &sim.urls.api);
    let body = json!({
        "total_count": runners.len(),
        "runners": page.iter().map(|r| sim.runner_json(r)).collect::<Vec<_>>(),
    });
    conditional(&headers, &body, link)
}

fn runner_id(params: &HashMap<String, String>) -> Option<u64> {
    params.get("runner_id")?.parse().ok()
}

async fn get_runner(
    State(sim): State<Arc<Sim>>,
    Path(params): Params,
    headers: HeaderMap,
) -> Response {
    let (Some(scope), Some(id)) = (sim.scope(&params), runner_id(&params)) else {
        return not_found();
    };
    match sim.read(|w| {
        w.runner(id)
            .filter(|r| same_scope(&r.scope, &scope))
            .cloned()
    }) {
        Some(runner) => conditional(&headers, &sim.runner_json(&runner), None),
        None => not_found(),
    }
}

async fn delete_runner(State(sim): State<Arc<Sim>>, Path(params): Params) -> Response {
    let (Some(scope), Some(id)) = (sim.scope(&params), runner_id(&params)) else {
        return not_found();
    };
    let deleted = sim.mutate(|w| (w.delete_runner(&scope, id), Vec::new()));
    match deleted {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(DeleteError::NotFound) => not_found(),
        Err(DeleteError::Busy) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Bad request - Runner is still running a job",
            "/actions/self-hosted-runners#delete-a-self-hosted-runner-from-an-organization",
        ),
    }
}

/// The validated generate-jitconfig body.
struct JitRequest {
    name: String,
    runner_group_id: u64,
    labels: Vec<String>,
    work_folder: String,
}

/// GitHub's validation of the body; `Err` is the status and message to answer with.
fn parse_jit_request(body: &[u8]) -> Result<JitRequest, (StatusCode, String)> {
    let invalid = |why: &str| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Invalid request.\n\n{why}"),
        )
    };
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| (StatusCode::BAD_REQUEST, "Problems parsing JSON".to_owned()))?;
    let missing = |key: &str| {
        invalid(&format!(
            "Invalid input: object is missing required key: {key}."
        ))
    };
    let name = match value.get("name") {
        None => return Err(missing("name")),
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(_) => return Err(invalid("For 'properties/name', is not a non-empty string.")),
    };
    let runner_group_id = match value.get("runner_group_id") {
        None => return Err(missing("runner_group_id")),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| invalid("For 'properties/runner_group_id', is not an integer."))?,
    };
    let labels = match value.get("labels") {
        None => return Err(missing("labels")),
        Some(Value::Array(items)) => items
            .iter()
            .map(|l| l.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("For 'items', is not a string."))?,
        Some(_) => return Err(invalid("For 'properties/labels', is not an array.")),
    };
    if labels.is_empty() || labels.len() > 100 {
        return Err(invalid(
            "For 'properties/labels', must have between 1 and 100 items.",
        ));
    }
    let work_folder = value
        .get("work_folder")
        .and_then(Value::as_str)
        .unwrap_or("_work")
        .to_owned();
    Ok(JitRequest {
        name,
        runner_group_id,
        labels,
        work_folder,
    })
}

async fn generate_jitconfig(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    Path(params): Params,
    body: Bytes,
) -> Response {
    if let Some(per_minute) = sim.config.jit_per_minute {
        let limited = lock(&sim.limits).take_jit(&caller.key, per_minute);
        if let Err(wait) = limited {
            let mut response = error(StatusCode::FORBIDDEN, SECONDARY, SECONDARY_DOCS);
            set(response.headers_mut(), "retry-after", wait.as_secs().max(1));
            return response;
        }
    }
    let Some(scope) = sim.scope(&params) else {
        return not_found();
    };
    let request = match parse_jit_request(&body) {
        Ok(request) => request,
        Err((status, message)) => {
            return error(
                status,
                &message,
                "/actions/self-hosted-runners#create-configuration-for-a-just-in-time-runner-for-an-organization",
            );
        }
    };
    let credential = uuid::Uuid::new_v4().to_string();
    let registered = sim.mutate(|w| {
        let runner = w.register_runner(
            scope.clone(),
            &request.name,
            request.labels.clone(),
            request.runner_group_id,
            credential.clone(),
        );
        (runner, Vec::new())
    });
    let Some(runner) = registered else {
        return error(
            StatusCode::CONFLICT,
            &format!(
                "Already exists - A runner with the name {} already exists.",
                request.name
            ),
            "/actions/self-hosted-runners",
        );
    };
    let encoded = jit::encode(&jit::JitInput {
        runner_id: runner.id,
        runner_name: &runner.name,
        runner_group_id: runner.runner_group_id,
        server_url: &sim.urls.api,
        github_url: sim.scope_html(&scope),
        work_folder: &request.work_folder,
        credential: &credential,
    });
    match encoded {
        Ok(encoded) => (
            StatusCode::CREATED,
            axum::Json(json!({"runner": sim.runner_json(&runner), "encoded_jit_config": encoded})),
        )
            .into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "Server Error", ""),
    }
}

/// The claims GitHub checks in an App JWT.
#[derive(serde::Deserialize)]
struct AppClaims {
    iss: Value,
    iat: u64,
    exp: u64,
}

async fn access_token(
    State(sim): State<Arc<Sim>>,
    Path(installation_id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    let Some(app) = sim
        .config
        .apps
        .iter()
        .find(|a| a.installation_id == installation_id)
    else {
        return not_found();
    };
    let jwt = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let unauthorized = |message: &str| error(StatusCode::UNAUTHORIZED, message, "");
    let Some(jwt) = jwt else {
        return unauthorized("A JSON web token could not be decoded");
    };
    let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(app.public_key_pem.as_bytes()) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "Server Error", "");
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // `iss` is checked below: GitHub takes the App id as a number or a string, and the
    // library's required-claim check only accepts a string.
    validation.set_required_spec_claims(&["exp", "iat"]);
    validation.leeway = 60;
    let Ok(data) = jsonwebtoken::decode::<AppClaims>(jwt, &key, &validation) else {
        return unauthorized("A JSON web token could not be decoded");
    };
    let claims = data.claims;
    let issuer_ok = match &claims.iss {
        Value::Number(n) => n.as_u64() == Some(app.app_id),
        Value::String(s) => s.parse::<u64>().ok() == Some(app.app_id),
        _ => false,
    };
    if !issuer_ok {
        return unauthorized("'Issuer' claim ('iss') must be an Integer");
    }
    if claims.exp.saturating_sub(claims.iat) > 660 {
        return unauthorized("'Expiration time' claim ('exp') is too far in the future");
    }
    let token = format!("ghs_{}", Alphanumeric.sample_string(&mut rand::rng(), 36));
    let lifetime = Duration::from_secs(3600);
    lock(&sim.issued).insert(
        token.clone(),
        Issued {
            installation_id,
            expires: Instant::now() + lifetime,
        },
    );
    let expires_at = chrono::Utc::now() + lifetime;
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "token": token,
            "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "permissions": {"actions": "read", "administration": "write", "organization_self_hosted_runners": "write"},
            "repository_selection": "all",
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jit_request_validation_names_the_missing_key() {
        let missing = parse_jit_request(br#"{"runner_group_id":1,"labels":["a"]}"#)
            .err()
            .unwrap();
        assert_eq!(missing.0, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(parse_jit_request(br#"{"name":"r","runner_group_id":1,"labels":[]}"#).is_err());
        assert_eq!(
            parse_jit_request(b"{").err().unwrap().0,
            StatusCode::BAD_REQUEST
        );
        let ok = parse_jit_request(br#"{"name":"r","runner_group_id":1,"labels":["a"]}"#)
            .ok()
            .unwrap();
        assert_eq!(ok.work_folder, "_work");
    }
}
