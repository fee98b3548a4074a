//! Request handling: token endpoint, authentication, fault injection and routing to the
//! Cloud Run, Batch, Secret Manager and operations handlers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};

use super::state::{ApiError, Execution, Job, OpKind, State as SimState, execution_json, now};
use super::{Fault, RecordedRequest, launch};
use crate::auth::{GRANT_TYPE, SCOPE};
use crate::labels::{job_name_problem, valid_key, valid_value};
use crate::shapes;

type Shared = Arc<Mutex<SimState>>;
type Reply = Result<Value, ApiError>;

/// The longest env var value the sim accepts (Cloud Run and Batch alike).
pub const MAX_ENV_VALUE: usize = 32 * 1024;
/// Secret Manager's payload limit.
const MAX_SECRET_PAYLOAD: usize = 64 * 1024;
const MAX_TIMEOUT_SECS: f64 = 168.0 * 3600.0;

fn lock(shared: &Shared) -> MutexGuard<'_, SimState> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every request lands here.
pub(crate) async fn dispatch(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if path == "/token" && method == Method::POST {
        return token(&shared, &body);
    }
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let fault = {
        let mut st = lock(&shared);
        if let Err(e) = authenticate(&mut st, &headers) {
            return e.into_response();
        }
        st.next_fault()
    };
    match fault {
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(fault) => {
            if let Some(e) = ApiError::of_fault(fault) {
                return e.into_response();
            }
        }
        None => {}
    }
    let json: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return ApiError::invalid(format!("Invalid JSON payload received. {e}"))
                    .into_response();
            }
        }
    };
    let weak = Arc::downgrade(&shared);
    let mut st = lock(&shared);
    st.requests.push(RecordedRequest {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        body: json.clone(),
    });
    if let Err(e) = super::conform::check_request(&method, &path, &query, &json) {
        st.conformance_rejections += 1;
        return e.into_response();
    }
    match route(&mut st, &weak, &method, &path, &query, json) {
        Ok(mut v) => {
            super::conform::to_wire(&method, &path, &mut v);
            axum::Json(v).into_response()
        }
        Err(e) => e.into_response(),
    }
}

fn route(
    st: &mut SimState,
    weak: &Weak<Mutex<SimState>>,
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
    body: Value,
) -> Reply {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let project = segments.get(2).copied().unwrap_or_default();
    if segments.get(1) == Some(&"projects") && project != st.config.project {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            format!("Permission denied on resource project {project}."),
        ));
    }
    let m = method.clone();
    match segments.as_slice() {
        ["v2", "projects", _, "locations", region, "jobs"] => match m {
            Method::POST => run_create(st, region, query, body),
            Method::GET => {
                let parent = format!("{}/jobs/", location(st, region));
                let jobs = st
                    .run_jobs
                    .iter()
                    .filter(|(name, _)| name.starts_with(&parent))
                    .map(|(name, job)| (name.clone(), run_json(job)))
                    .collect();
                let (items, next) = page(jobs, query, st.config.max_page_size);
                Ok(with_token(json!({ "jobs": items }), next))
            }
            _ => Err(unsupported(method, path)),
        },
        ["v2", "projects", _, "locations", region, "jobs", job] => {
            let full = format!(
                "{}/jobs/{}",
                location(st, region),
                job.trim_end_matches(":run")
            );
            match (m, job.strip_suffix(":run")) {
                (Method::POST, Some(_)) => run_execute(st, weak, region, &full),
                (Method::GET, None) => st
                    .run_jobs
                    .get(&full)
                    .map(run_json)
                    .ok_or_else(|| missing_job(&full)),
                (Method::DELETE, None) => {
                    let job = st
                        .run_jobs
                        .remove(&full)
                        .ok_or_else(|| missing_job(&full))?;
                    let resource = run_json(&job);
                    let loc = location(st, region);
                    Ok(st.start_operation(
                        &loc,
                        typed(&resource, "type.googleapis.com/google.cloud.run.v2.Job"),
                        countdown(st.config.operation_polls, resource, None),
                    ))
                }
                _ => Err(unsupported(method, path)),
            }
        }
        ["v2" | "v1", "projects", _, "locations", _, "operations", _] if m == Method::GET => {
            let name = segments[1..].join("/");
            st.poll_operation(&name, true)
                .ok_or_else(|| ApiError::not_found(format!("Operation {name} not found.")))
        }
        ["v1", "projects", _, "locations", region, "jobs"] => match m {
            Method::POST => batch_create(st, weak, region, query, body),
            Method::GET => batch_list(st, region, query),
            _ => Err(unsupported(method, path)),
        },
        ["v1", "projects", _, "locations", region, "jobs", job] => {
            let full = format!("{}/jobs/{job}", location(st, region));
            match m {
                Method::GET => st
                    .batch_jobs
                    .get(&full)
                    .map(batch_json)
                    .ok_or_else(|| missing_job(&full)),
                Method::DELETE => {
                    let job = st
                        .batch_jobs
                        .get_mut(&full)
                        .ok_or_else(|| missing_job(&full))?;
                    job.batch_state = "DELETION_IN_PROGRESS";
                    for e in &mut job.executions {
                        e.child = None;
                    }
                    let metadata = json!({
                        "@type": "type.googleapis.com/google.cloud.batch.v1.OperationMetadata",
                        "createTime": now(), "target": full, "verb": "delete", "apiVersion": "v1",
                    });
                    let loc = location(st, region);
                    Ok(st.start_operation(
                        &loc,
                        metadata,
                        countdown(st.config.operation_polls, json!({}), Some(full)),
                    ))
                }
                _ => Err(unsupported(method, path)),
            }
        }
        ["v1", "projects", p, "secrets"] if m == Method::POST => secret_create(st, p, query, body),
        ["v1", "projects", p, "secrets", id] => {
            let p = p.to_string();
            match (m, id.strip_suffix(":addVersion")) {
                (Method::POST, Some(id)) => secret_add_version(st, &p, id, body),
                (Method::POST, None) if id.ends_with(":setIamPolicy") => {
                    secret_set_iam_policy(st, &p, id.trim_end_matches(":setIamPolicy"), &body)
                }
                (Method::DELETE, None) => {
                    let name = format!("projects/{p}/secrets/{id}");
                    st.secrets
                        .remove(&name)
                        .map(|_| json!({}))
                        .ok_or_else(|| ApiError::not_found(format!("Secret [{name}] not found.")))
                }
                _ => Err(unsupported(method, path)),
            }
        }
        _ => Err(unsupported(method, path)),
    }
}

fn unsupported(method: &Method, path: &str) -> ApiError {
    ApiError::not_found(format!(
        "The requested URL {method} {path} was not found on this server."
    ))
}

fn missing_job(name: &str) -> ApiError {
    ApiError::not_found(format!("Resource '{name}' was not found"))
}

fn location(st: &SimState, region: &str) -> String {
    format!("projects/{}/locations/{region}", st.config.project)
}

fn countdown(polls: u32, response: Value, remove_batch_job: Option<String>) -> OpKind {
    OpKind::Countdown {
        remaining: polls,
        response,
        remove_batch_job,
    }
}

fn typed(resource: &Value, type_url: &str) -> Value {
    let mut v = resource.clone();
    v["@type"] = json!(type_url);
    v
}

fn with_token(mut page: Value, next: Option<String>) -> Value {
    if let Some(next) = next {
        page["nextPageToken"] = json!(next);
    }
    page
}

/// One page of `items` (sorted by name) after `pageToken`, at most `pageSize` long.
fn page(
    items: Vec<(String, Value)>,
    query: &BTreeMap<String, String>,
    max: usize,
) -> (Vec<Value>, Option<String>) {
    let size = query
        .get("pageSize")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(max)
        .min(max.max(1));
    let after = query.get("pageToken").and_then(|t| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
    });
    let mut rest: Vec<(String, Value)> = items
        .into_iter()
        .filter(|(name, _)| after.as_ref().is_none_or(|a| name > a))
        .collect();
    let next = (rest.len() > size)
        .then(|| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&rest[size - 1].0));
    rest.truncate(size);
    (rest.into_iter().map(|(_, v)| v).collect(), next)
}

// ---- Token endpoint -------------------------------------------------------------------

fn token_error(error: &str, description: &str) -> Response {
    let body = json!({ "error": error, "error_description": description });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

fn token(shared: &Shared, body: &[u8]) -> Response {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let grant = form
        .get("grant_type")
        .map(String::as_str)
        .unwrap_or_default();
    if grant != GRANT_TYPE {
        return token_error(
            "unsupported_grant_type",
            &format!("Invalid grant_type: {grant}"),
        );
    }
    let Some(assertion) = form.get("assertion") else {
        return token_error("invalid_request", "Missing required parameter: assertion");
    };
    let mut st = lock(shared);
    let sa = st.config.service_account.clone();
    let bad_signature = || token_error("invalid_grant", "Invalid JWT Signature.");
    let header = match jsonwebtoken::decode_header(assertion) {
        Ok(h) => h,
        Err(_) => return token_error("invalid_grant", "Invalid JWT: malformed assertion."),
    };
    if header.alg != jsonwebtoken::Algorithm::RS256 || header.kid.as_deref() != Some(&sa.key_id) {
        return bad_signature();
    }
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = match jsonwebtoken::decode::<Value>(assertion, &st.decoding_key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            return match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature
                | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => bad_signature(),
                _ => token_error("invalid_grant", "Invalid JWT: malformed assertion."),
            };
        }
    };
    if claims["iss"].as_str() != Some(sa.client_email.as_str()) {
        return token_error("invalid_grant", "Invalid grant: account not found");
    }
    if claims["aud"].as_str() != Some(st.token_url.as_str()) {
        return token_error("invalid_grant", "Invalid JWT: Failed audience check.");
    }
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
    let in_window = matches!((iat, exp), (Some(iat), Some(exp))
        if exp > iat && exp - iat <= 3600 && exp > unix && iat <= unix + 300);
    if !in_window {
        return token_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
             timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    let scope = claims["scope"].as_str().unwrap_or_default().to_owned();
    if scope.is_empty() {
        return token_error("invalid_scope", "Empty or missing scope not allowed.");
    }
    let access = format!("ya29.sim-{}", uuid::Uuid::new_v4().simple());
    let ttl = st.config.token_ttl;
    st.tokens
        .insert(access.clone(), (Instant::now() + ttl, scope));
    let body =
        json!({ "access_token": access, "expires_in": ttl.as_secs(), "token_type": "Bearer" });
    axum::Json(body).into_response()
}

fn authenticate(st: &mut SimState, headers: &HeaderMap) -> Result<(), ApiError> {
    let unauthenticated = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential. See \
             https://developers.google.com/identity/sign-in/web/devconsole-project.",
        )
    };
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(unauthenticated)?;
    let (expiry, scope) = st.tokens.get(token).ok_or_else(unauthenticated)?;
    if Instant::now() >= *expiry {
        return Err(unauthenticated());
    }
    if !scope.split(' ').any(|s| s == SCOPE) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "Request had insufficient authentication scopes.",
        ));
    }
    Ok(())
}

// ---- Validation helpers ---------------------------------------------------------------

fn check_labels(labels: &Value, field: &str) -> Result<(), ApiError> {
    let Some(map) = labels.as_object() else {
        return if labels.is_null() {
            Ok(())
        } else {
            Err(ApiError::invalid(format!("{field}: must be a map")))
        };
    };
    if map.len() > 64 {
        return Err(ApiError::invalid(format!("{field}: at most 64 labels")));
    }
    for (k, v) in map {
        let v = v.as_str().unwrap_or("\u{0}");
        if !valid_key(k) || !valid_value(v) {
            return Err(ApiError::invalid(format!(
                "{field}: label `{k}` is invalid: keys start with a lowercase letter; keys and \
                 values use lowercase letters, digits, `_` and `-`, at most 63 characters"
            )));
        }
    }
    Ok(())
}

fn check_job_id(id: &str) -> Result<(), ApiError> {
    match job_name_problem(id) {
        None => Ok(()),
        Some(reason) => Err(ApiError::invalid(format!(
            "Invalid resource name `{id}`: {reason}"
        ))),
    }
}

/// A `google.protobuf.Duration` such as `3600s` or `1.5s`, in seconds.
fn parse_duration(s: &str) -> Option<f64> {
    s.strip_suffix('s')?
        .parse::<f64>()
        .ok()
        .filter(|d| *d >= 0.0)
}

fn check_duration(value: &Value, field: &str) -> Result<(), ApiError> {
    match value {
        Value::Null => Ok(()),
        Value::String(s) => match parse_duration(s) {
            Some(d) if d <= MAX_TIMEOUT_SECS => Ok(()),
            Some(_) => Err(ApiError::invalid(format!("{field}: must be at most 168h"))),
            None => Err(ApiError::invalid(format!(
                "{field}: invalid duration `{s}`"
            ))),
        },
        _ => Err(ApiError::invalid(format!(
            "{field}: must be a duration string"
        ))),
    }
}

/// A CPU quantity (`2`, `500m`, `0.5`) in millis.
fn parse_cpu(s: &str) -> Option<u32> {
    if let Some(m) = s.strip_suffix('m') {
        return m.parse().ok();
    }
    let cpus: f64 = s.parse().ok()?;
    (cpus > 0.0).then(|| (cpus * 1000.0).round() as u32)
}

/// A memory quantity (`4Gi`, `512Mi`, `1G`, `512M`) in MiB.
fn parse_memory(s: &str) -> Option<u32> {
    let (number, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = number.parse().ok()?;
    let bytes = match unit {
        "Ki" => n * 1024.0,
        "Mi" => n * 1048576.0,
        "Gi" => n * 1073741824.0,
        "k" => n * 1e3,
        "M" => n * 1e6,
        "G" => n * 1e9,
        _ => return None,
    };
    Some((bytes / 1048576.0).round() as u32)
}

/// `projects/{p}/secrets/{s}/versions/{v}` → (secret name, version).
fn split_version_name(name: &str) -> Option<(String, String)> {
    let (secret, version) = name.split_once("/versions/")?;
    let ok = secret.starts_with("projects/") && secret.contains("/secrets/") && !version.is_empty();
    ok.then(|| (secret.to_owned(), version.to_owned()))
}

fn check_env_value(name: &str, value: &str) -> Result<(), ApiError> {
    if value.len() > MAX_ENV_VALUE {
        return Err(ApiError::invalid(format!(
            "The value of environment variable {name} is too long: {} bytes, at most {MAX_ENV_VALUE}",
            value.len()
        )));
    }
    Ok(())
}

/// Starts the runner child for job `job` (short name) if a launch is configured, and
/// records the start in [`SimState::launched`].
fn start_child(
    st: &mut SimState,
    job: &str,
    weak: &Weak<Mutex<SimState>>,
    run: &simulators::image::ContainerRun,
    on_exit: impl FnOnce(&mut SimState, bool) + Send + 'static,
) -> Option<launch::Child> {
    let launch = st.config.launch.as_ref()?;
    let weak = weak.clone();
    let job_name = job.to_owned();
    let spawned = launch::spawn(launch, run, move |exit| {
        if let Some(shared) = weak.upgrade() {
            let mut st = lock(&shared);
            if !exit.runner_started {
                st.exited_without_runner += 1;
                tracing::warn!(job = %job_name, "GCP simulator: the container exited without starting a runner");
            }
            on_exit(&mut st, exit.code == Some(0));
        }
    });
    match spawned {
        Ok(child) => {
            st.launched.push(job.to_owned());
            Some(child)
        }
        Err(error) => {
            st.exited_without_runner += 1;
            tracing::warn!(%error, "sim could not start the container");
            None
        }
    }
}

/// The strings of a JSON array.
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

// ---- Cloud Run v2 ---------------------------------------------------------------------

fn run_create(
    st: &mut SimState,
    region: &str,
    query: &BTreeMap<String, String>,
    body: Value,
) -> Reply {
    let id = query
        .get("jobId")
        .ok_or_else(|| ApiError::invalid("jobId: must be specified"))?;
    check_job_id(id)?;
    check_labels(&body["labels"], "job.labels")?;
    check_labels(&body["template"]["labels"], "job.template.labels")?;
    let template = &body["template"];
    if template["taskCount"].as_i64().is_some_and(|n| n < 1) {
        return Err(ApiError::invalid("template.taskCount: must be at least 1"));
    }
    let task = &template["template"];
    if task["maxRetries"]
        .as_i64()
        .is_some_and(|n| !(0..=10).contains(&n))
    {
        return Err(ApiError::invalid(
            "template.template.maxRetries: must be 0 to 10",
        ));
    }
    check_duration(&task["timeout"], "template.template.timeout")?;
    let containers = task["containers"]
        .as_array()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::invalid("template.template.containers: must be specified"))?;
    for (i, c) in containers.iter().enumerate() {
        let field = format!("template.template.containers[{i}]");
        if c["image"].as_str().is_none_or(str::is_empty) {
            return Err(ApiError::invalid(format!(
                "{field}.image: must be specified"
            )));
        }
        let limits = &c["resources"]["limits"];
        let cpu = limits["cpu"].as_str().unwrap_or("1");
        let memory = limits["memory"].as_str().unwrap_or("512Mi");
        let cpu = parse_cpu(cpu).ok_or_else(|| {
            ApiError::invalid(format!(
                "{field}.resources.limits.cpu: invalid quantity `{cpu}`"
            ))
        })?;
        let memory = parse_memory(memory).ok_or_else(|| {
            ApiError::invalid(format!(
                "{field}.resources.limits.memory: invalid quantity `{memory}`"
            ))
        })?;
        if let Some(problem) = shapes::problem(cpu, memory) {
            return Err(ApiError::invalid(problem));
        }
        for e in c["env"].as_array().into_iter().flatten() {
            let name = e["name"].as_str().unwrap_or_default();
            if name.is_empty() {
                return Err(ApiError::invalid(format!(
                    "{field}.env.name: must be specified"
                )));
            }
            match (e.get("value"), e.get("valueSource")) {
                (Some(v), None) => check_env_value(name, v.as_str().unwrap_or_default())?,
                (None, Some(source)) => {
                    let r = &source["secretKeyRef"];
                    let secret = r["secret"].as_str().unwrap_or_default();
                    let version = r["version"].as_str().unwrap_or("latest");
                    let full = if secret.starts_with("projects/") {
                        secret.to_owned()
                    } else {
                        format!("projects/{}/secrets/{secret}", st.config.project)
                    };
                    if st.secret_payload(&full, version).is_none() {
                        return Err(ApiError::invalid(format!(
                            "spec.template.spec.containers[{i}].env.valueFrom.secretKeyRef: \
                             Secret {full}/versions/{version} was not found"
                        )));
                    }
                }
                _ => {
                    return Err(ApiError::invalid(format!(
                        "{field}.env[{name}]: exactly one of value and valueSource"
                    )));
                }
            }
        }
    }
    let volumes = task["volumes"].as_array().into_iter().flatten();
    let gcs = volumes.clone().any(|v| v.get("gcs").is_some());
    if gcs && task["executionEnvironment"].as_str() != Some("EXECUTION_ENVIRONMENT_GEN2") {
        return Err(ApiError::invalid(
            "Cloud Storage volumes require the second generation execution environment",
        ));
    }
    for nic in task["vpcAccess"]["networkInterfaces"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if nic["network"].is_null() && nic["subnetwork"].is_null() {
            return Err(ApiError::invalid(
                "template.template.vpcAccess.networkInterfaces: network or subnetwork must be specified",
            ));
        }
    }
    let loc = location(st, region);
    let full = format!("{loc}/jobs/{id}");
    if st.run_jobs.contains_key(&full) {
        return Err(ApiError::exists(format!("Resource '{id}' already exists.")));
    }
    let created = now();
    let resource = json!({
        "name": full,
        "uid": uuid::Uuid::new_v4().to_string(),
        "generation": "1",
        "labels": body["labels"],
        "createTime": created,
        "updateTime": created,
        "creator": st.config.service_account.client_email,
        "launchStage": "GA",
        "template": body["template"],
        "terminalCondition": { "type": "Ready", "state": "CONDITION_SUCCEEDED" },
        "etag": format!("\"{}\"", uuid::Uuid::new_v4().simple()),
    });
    let job = Job {
        resource,
        request: body,
        executions: Vec::new(),
        batch_state: "",
    };
    let live = run_json(&job);
    st.run_jobs.insert(full, job);
    Ok(st.start_operation(
        &loc,
        typed(&live, "type.googleapis.com/google.cloud.run.v2.Job"),
        countdown(st.config.operation_polls, live.clone(), None),
    ))
}

/// The job as `GET` returns it, with its live execution fields.
fn run_json(job: &Job) -> Value {
    let mut v = job.resource.clone();
    v["executionCount"] = json!(job.executions.len());
    if let Some(e) = job.executions.last() {
        v["latestCreatedExecution"] = json!({
            "name": e.name, "createTime": e.create_time, "completionStatus": e.status,
        });
    }
    v
}

fn run_execute(st: &mut SimState, weak: &Weak<Mutex<SimState>>, region: &str, full: &str) -> Reply {
    let job = st.run_jobs.get(full).ok_or_else(|| missing_job(full))?;
    let short = full.rsplit('/').next().unwrap_or_default().to_owned();
    let suffix: String = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .take(5)
        .collect();
    let execution = format!("{full}/executions/{short}-{suffix}");
    // The container's env as it would see it: plain values and resolved secret refs.
    let mut env = Vec::new();
    let mut resolved = true;
    let containers = job.resource["template"]["template"]["containers"].clone();
    let account = job.resource["template"]["template"]["serviceAccount"]
        .as_str()
        .map(str::to_owned);
    for e in containers[0]["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or_default().to_owned();
        if let Some(v) = e["value"].as_str() {
            env.push((name, v.to_owned()));
        } else {
            let r = &e["valueSource"]["secretKeyRef"];
            let secret = r["secret"].as_str().unwrap_or_default();
            let secret = if secret.starts_with("projects/") {
                secret.to_owned()
            } else {
                format!("projects/{}/secrets/{secret}", st.config.project)
            };
            // The execution reads the secret as the job's service account.
            let readable = st.secret_readable_by(&secret, account.as_deref());
            match st.secret_payload(&secret, r["version"].as_str().unwrap_or("latest")) {
                Some(value) if readable => env.push((name, value)),
                _ => resolved = false,
            }
        }
    }
    let (job_key, exec_key) = (full.to_owned(), execution.clone());
    let child = if resolved {
        let container = &containers[0];
        let run = simulators::image::ContainerRun {
            image: container["image"].as_str().unwrap_or_default().to_owned(),
            command: strings(&container["command"]),
            args: strings(&container["args"]),
            env,
            ..simulators::image::ContainerRun::default()
        };
        start_child(st, &short, weak, &run, move |st, success| {
            let exec = st
                .run_jobs
                .get_mut(&job_key)
                .and_then(|j| j.executions.iter_mut().find(|e| e.name == exec_key));
            if let Some(exec) = exec {
                exec.status = if success {
                    "EXECUTION_SUCCEEDED"
                } else {
                    "EXECUTION_FAILED"
                };
                exec.child = None;
            }
        })
    } else {
        None
    };
    let exec = Execution {
        name: execution.clone(),
        create_time: now(),
        status: if resolved {
            "EXECUTION_RUNNING"
        } else {
            "EXECUTION_FAILED"
        },
        child,
    };
    let metadata = execution_json(full, &exec);
    if let Some(job) = st.run_jobs.get_mut(full) {
        job.executions.push(exec);
    }
    let loc = location(st, region);
    Ok(st.start_operation(
        &loc,
        metadata,
        OpKind::Execution {
            job: full.to_owned(),
            execution,
        },
    ))
}

// ---- Batch v1 -------------------------------------------------------------------------

fn int_field(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn batch_create(
    st: &mut SimState,
    weak: &Weak<Mutex<SimState>>,
    region: &str,
    query: &BTreeMap<String, String>,
    body: Value,
) -> Reply {
    let id = query
        .get("jobId")
        .cloned()
        .unwrap_or_else(|| format!("job-{}", uuid::Uuid::new_v4().simple()));
    check_job_id(&id)?;
    check_labels(&body["labels"], "job.labels")?;
    check_labels(
        &body["allocationPolicy"]["labels"],
        "job.allocationPolicy.labels",
    )?;
    let groups = body["taskGroups"]
        .as_array()
        .ok_or_else(|| ApiError::invalid("job.task_groups: must be specified"))?;
    if groups.len() != 1 {
        return Err(ApiError::invalid(
            "job.task_groups: exactly one task group is supported",
        ));
    }
    let spec = &groups[0]["taskSpec"];
    let runnables = spec["runnables"]
        .as_array()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::invalid("task_spec.runnables: must be specified"))?;
    let resources = &spec["computeResource"];
    for field in ["cpuMilli", "memoryMib"] {
        let v = &resources[field];
        if !v.is_null() && int_field(v).is_none_or(|n| n <= 0) {
            return Err(ApiError::invalid(format!(
                "task_spec.compute_resource.{field}: must be a positive integer"
            )));
        }
    }
    check_duration(&spec["maxRunDuration"], "task_spec.max_run_duration")?;
    let mut env = Vec::new();
    let envs =
        std::iter::once(&spec["environment"]).chain(runnables.iter().map(|r| &r["environment"]));
    for environment in envs {
        for (name, value) in environment["variables"].as_object().into_iter().flatten() {
            let value = value.as_str().unwrap_or_default();
            check_env_value(name, value)?;
            env.push((name.clone(), value.to_owned()));
        }
        for (name, version) in environment["secretVariables"]
            .as_object()
            .into_iter()
            .flatten()
        {
            let version = version.as_str().unwrap_or_default();
            let account = body["allocationPolicy"]["serviceAccount"]["email"].as_str();
            if let Some((secret, _)) = split_version_name(version)
                && !st.secret_readable_by(&secret, account)
            {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "PERMISSION_DENIED",
                    format!(
                        "secret_variables[{name}]: the job's service account cannot access {secret}"
                    ),
                ));
            }
            let payload = split_version_name(version)
                .and_then(|(secret, v)| st.secret_payload(&secret, &v))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "secret_variables[{name}]: secret version `{version}` does not exist or \
                         is not of the form projects/*/secrets/*/versions/*"
                    ))
                })?;
            env.push((name.clone(), payload));
        }
    }
    for (i, r) in runnables.iter().enumerate() {
        let container = &r["container"];
        if container.is_null() && r["script"].is_null() && r["barrier"].is_null() {
            return Err(ApiError::invalid(format!(
                "runnables[{i}]: one of container, script or barrier must be specified"
            )));
        }
        if !container.is_null() && container["imageUri"].as_str().is_none_or(str::is_empty) {
            return Err(ApiError::invalid(format!(
                "runnables[{i}].container.image_uri: must be specified"
            )));
        }
    }
    let loc = location(st, region);
    let full = format!("{loc}/jobs/{id}");
    if st.batch_jobs.contains_key(&full) {
        return Err(ApiError::exists(format!("Job {full} already exists.")));
    }
    let mut resource = body.clone();
    let created = now();
    resource["name"] = json!(full);
    resource["uid"] = json!(format!(
        "{id}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    resource["createTime"] = json!(created);
    resource["updateTime"] = json!(created);
    resource["taskGroups"][0]["name"] = json!(format!("{full}/taskGroups/group0"));
    let key = full.clone();
    // Batch: `entrypoint` replaces the image's ENTRYPOINT, `commands` replace its CMD.
    let container = runnables
        .iter()
        .map(|r| &r["container"])
        .find(|c| !c.is_null())
        .cloned()
        .unwrap_or(Value::Null);
    let run = simulators::image::ContainerRun {
        image: container["imageUri"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        command: container["entrypoint"]
            .as_str()
            .filter(|e| !e.is_empty())
            .map(|e| vec![e.to_owned()])
            .unwrap_or_default(),
        args: strings(&container["commands"]),
        env,
        ..simulators::image::ContainerRun::default()
    };
    let child = start_child(st, id.as_str(), weak, &run, move |st, success| {
        if let Some(job) = st.batch_jobs.get_mut(&key) {
            if job.batch_state == "RUNNING" {
                job.batch_state = if success { "SUCCEEDED" } else { "FAILED" };
            }
            for e in &mut job.executions {
                e.child = None;
            }
        }
    });
    let job = Job {
        resource,
        request: body,
        executions: vec![Execution {
            name: format!("{full}/taskGroups/group0/tasks/0"),
            create_time: created,
            status: "EXECUTION_RUNNING",
            child,
        }],
        batch_state: "RUNNING",
    };
    let mut answer = batch_json(&job);
    answer["status"]["state"] = json!("QUEUED");
    st.batch_jobs.insert(full, job);
    Ok(answer)
}

fn batch_json(job: &Job) -> Value {
    let mut v = job.resource.clone();
    v["status"] = json!({ "state": job.batch_state, "statusEvents": [] });
    v
}

fn batch_list(st: &SimState, region: &str, query: &BTreeMap<String, String>) -> Reply {
    let filter = match query.get("filter").map(String::as_str) {
        None | Some("") => None,
        Some(f) => {
            let (key, value) = f
                .strip_prefix("labels.")
                .and_then(|kv| kv.split_once('='))
                .ok_or_else(|| ApiError::invalid(format!("Invalid filter: {f}")))?;
            Some((
                key.trim().trim_matches('"').to_owned(),
                value.trim().trim_matches('"').to_owned(),
            ))
        }
    };
    let parent = format!("{}/jobs/", location(st, region));
    let jobs = st
        .batch_jobs
        .iter()
        .filter(|(name, _)| name.starts_with(&parent))
        .filter(|(_, job)| {
            filter
                .as_ref()
                .is_none_or(|(k, v)| job.labels().get(k) == Some(v))
        })
        .map(|(name, job)| (name.clone(), batch_json(job)))
        .collect();
    let (items, next) = page(jobs, query, st.config.max_page_size);
    Ok(with_token(json!({ "jobs": items }), next))
}

// ---- Secret Manager v1 ----------------------------------------------------------------

fn secret_create(
    st: &mut SimState,
    project: &str,
    query: &BTreeMap<String, String>,
    body: Value,
) -> Reply {
    let id = query
        .get("secretId")
        .ok_or_else(|| ApiError::invalid("secretId: must be specified"))?;
    let id_ok = !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !id_ok {
        return Err(ApiError::invalid(format!(
            "Secret id [{id}] must be 1 to 255 characters of letters, digits, `_` and `-`"
        )));
    }
    let replication = &body["replication"];
    if replication["automatic"].is_null() && replication["userManaged"].is_null() {
        return Err(ApiError::invalid("Secret.replication is required."));
    }
    check_labels(&body["labels"], "secret.labels")?;
    let name = format!("projects/{project}/secrets/{id}");
    if st.secrets.contains_key(&name) {
        return Err(ApiError::exists(format!("Secret [{name}] already exists.")));
    }
    let labels = body["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    st.secrets.insert(
        name.clone(),
        super::SimSecret {
            name: name.clone(),
            labels,
            versions: Vec::new(),
            accessors: None,
        },
    );
    Ok(
        json!({ "name": name, "replication": replication, "createTime": now(), "labels": body["labels"] }),
    )
}

/// `secrets/{id}:setIamPolicy`: keeps the members of the `secretAccessor` binding.
fn secret_set_iam_policy(st: &mut SimState, project: &str, id: &str, body: &Value) -> Reply {
    let name = format!("projects/{project}/secrets/{id}");
    let bindings = body["policy"]["bindings"]
        .as_array()
        .ok_or_else(|| ApiError::invalid("policy.bindings: must be specified"))?;
    let mut members = Vec::new();
    for binding in bindings {
        let role = binding["role"].as_str().unwrap_or_default();
        if !role.starts_with("roles/") {
            return Err(ApiError::invalid(format!(
                "policy.bindings.role: `{role}` is not a role"
            )));
        }
        for member in binding["members"].as_array().into_iter().flatten() {
            let member = member.as_str().unwrap_or_default();
            if !member.starts_with("serviceAccount:") && !member.starts_with("user:") {
                return Err(ApiError::invalid(format!(
                    "policy.bindings.members: `{member}`"
                )));
            }
            if role == "roles/secretmanager.secretAccessor" {
                members.push(member.to_owned());
            }
        }
    }
    let secret = st
        .secrets
        .get_mut(&name)
        .ok_or_else(|| ApiError::not_found(format!("Secret [{name}] not found.")))?;
    secret.accessors = Some(members);
    Ok(json!({ "version": 1, "bindings": bindings, "etag": "BwE=" }))
}

fn secret_add_version(st: &mut SimState, project: &str, id: &str, body: Value) -> Reply {
    let name = format!("projects/{project}/secrets/{id}");
    let data = body["payload"]["data"]
        .as_str()
        .ok_or_else(|| ApiError::invalid("payload.data: must be specified"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| ApiError::invalid("Invalid value at 'payload.data' (TYPE_BYTES)"))?;
    if bytes.len() > MAX_SECRET_PAYLOAD {
        return Err(ApiError::invalid(
            "Secret Payload cannot be larger than 64KiB.",
        ));
    }
    let secret = st.secrets.get_mut(&name).ok_or_else(|| {
        ApiError::not_found(format!("Secret [{name}] not found or has no versions."))
    })?;
    secret
        .versions
        .push(String::from_utf8_lossy(&bytes).into_owned());
    Ok(json!({
        "name": format!("{name}/versions/{}", secret.versions.len()),
        "createTime": now(),
        "state": "ENABLED",
    }))
}
