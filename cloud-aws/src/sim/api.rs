//! The simulated JSON 1.1 endpoint: `POST /` with `X-Amz-Target`, SigV4, model validation,
//! faults, then the ECS or Secrets Manager operation.

// `Err` here is the HTTP response to send, not an error value passed up a call chain.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::{Fault, Shared, SimSecret, SimTask, Task, TaskDefinition, launch, sigv4};
use crate::error::CAPACITY_UNAVAILABLE;
use crate::provider::READER_TAG;
use crate::shapes;

/// ECS's limit on the JSON of a task's container overrides.
const MAX_OVERRIDES_CHARS: usize = 8192;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v2/credentials/{id}", axum::routing::get(credentials))
        .fallback(handle)
        .with_state(shared)
}

/// The ECS agent's container credentials endpoint: a running task's role credentials.
async fn credentials(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let inner = shared.lock();
    let found = inner
        .credential_uris
        .get(&id)
        .and_then(|key| Some((key, inner.sessions.get(key)?)));
    let Some((key, session)) = found else {
        return (StatusCode::NOT_FOUND, "no such credentials").into_response();
    };
    let expiration = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    Json(json!({
        "RoleArn": session.role_arn,
        "AccessKeyId": key,
        "SecretAccessKey": session.secret_access_key.expose_secret(),
        "Token": session.token.expose_secret(),
        "Expiration": expiration,
    }))
    .into_response()
}

pub(super) fn now_secs() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Svc {
    Ecs,
    Secrets,
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amzn-errortype", code),
        ],
        json!({"__type": code, "message": message.into()}).to_string(),
    )
        .into_response()
}

fn bad(code: &str, message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, code, message)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match dispatch(&shared, &method, &uri, &headers, &body).await {
        Ok(r) | Err(r) => r,
    }
}

async fn dispatch(
    shared: &Arc<Shared>,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Response> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let target = header("x-amz-target");
    let (prefix, op) = target.split_once('.').unwrap_or(("", ""));
    let (svc, model) = if prefix == shared.ecs.target_prefix() {
        (Svc::Ecs, &shared.ecs)
    } else if prefix == shared.secrets.target_prefix() {
        (Svc::Secrets, &shared.secrets)
    } else {
        return Err(bad(
            "UnknownOperationException",
            format!("unknown X-Amz-Target {target:?}"),
        ));
    };
    shared.lock().calls.push(target.to_owned());
    if *method != Method::POST || uri.path() != "/" {
        return Err(bad(
            "UnknownOperationException",
            "JSON 1.1 calls are POST /",
        ));
    }
    // Signature first: nothing is revealed to an unsigned caller.
    let received = sigv4::Received {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body,
    };
    let cfg = &shared.cfg;
    // A running task signs with its role session's key and sends the session token.
    let session = sigv4::parse_authorization(header("authorization"))
        .ok()
        .and_then(|auth| {
            let inner = shared.lock();
            let s = inner.sessions.get(&auth.access_key_id)?;
            Some((
                auth.access_key_id,
                s.secret_access_key.clone(),
                s.token.clone(),
                s.task_id.clone(),
            ))
        });
    let (key_id, secret) = match &session {
        Some((key, secret, _, _)) => (key.as_str(), secret),
        None => (cfg.access_key_id.as_str(), &cfg.secret_access_key),
    };
    sigv4::verify(
        &received,
        key_id,
        secret.expose_secret(),
        &cfg.region,
        model.signing_name(),
        chrono::Utc::now().timestamp(),
    )
    .map_err(|r| {
        let status = if r.code == "MissingAuthenticationTokenException" {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_REQUEST
        };
        error(status, r.code, r.message)
    })?;
    if let Some((_, _, token, _)) = &session
        && header("x-amz-security-token") != token.expose_secret()
    {
        return Err(bad(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    let task = session.map(|(_, _, _, task)| task);
    if !header("content-type").starts_with("application/x-amz-json-1.1") {
        return Err(bad(
            "SerializationException",
            "Content-Type must be application/x-amz-json-1.1",
        ));
    }
    // Faults are aimed at the controller's calls; a task's own reads are left alone so a
    // test's injected count reaches the provider.
    let fault = if task.is_some() {
        None
    } else {
        let mut inner = shared.lock();
        let aimed = inner.op_faults.get_mut(op).and_then(VecDeque::pop_front);
        match aimed.or_else(|| inner.faults.pop_front()) {
            Some(f) => Some(f),
            None => inner.failure_rate.as_mut().and_then(|(pct, rng)| {
                (rng.random_range(0..100u8) < *pct).then_some(Fault::ServerError)
            }),
        }
    };
    match fault {
        Some(Fault::Throttle) => return Err(bad("ThrottlingException", "Rate exceeded")),
        Some(Fault::ServerError) => {
            let code = if svc == Svc::Ecs {
                "ServerException"
            } else {
                "InternalServiceError"
            };
            return Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                code,
                "Service Unavailable. Please try again later.",
            ));
        }
        Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    if !model.has_operation(op) {
        return Err(bad(
            "UnknownOperationException",
            format!("the simulator does not serve {op}"),
        ));
    }
    let input: Value = serde_json::from_slice(body)
        .map_err(|e| bad("SerializationException", format!("body is not JSON: {e}")))?;
    if let Err(problem) = model.validate_input(op, &input) {
        shared
            .lock()
            .violations
            .push(format!("request {op}: {problem}"));
        let code = if svc == Svc::Ecs {
            "InvalidParameterException"
        } else {
            "ValidationException"
        };
        return Err(bad(code, problem));
    }
    let output = match svc {
        Svc::Ecs => ecs(shared, op, &input)?,
        Svc::Secrets => secrets(shared, op, &input, task.as_deref())?,
    };
    if let Err(problem) = model.validate_output(op, &output) {
        shared
            .lock()
            .violations
            .push(format!("response {op}: {problem}"));
        return Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            format!("simulator answer does not match the model: {problem}"),
        ));
    }
    Ok((
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        output.to_string(),
    )
        .into_response())
}

fn invalid(message: impl Into<String>) -> Response {
    bad("InvalidParameterException", message)
}

fn cluster_name(shared: &Shared, input: &Value) -> Result<String, Response> {
    let raw = input["cluster"].as_str().unwrap_or("default");
    let name = raw.rsplit('/').next().unwrap_or(raw).to_owned();
    if shared.cfg.clusters.contains(&name) {
        Ok(name)
    } else {
        Err(bad("ClusterNotFoundException", "Cluster not found."))
    }
}

fn ecs(shared: &Arc<Shared>, op: &str, input: &Value) -> Result<Value, Response> {
    match op {
        "RegisterTaskDefinition" => register_task_definition(shared, input),
        "DescribeTaskDefinition" => {
            let inner = shared.lock();
            let td = find_task_definition(
                &inner.task_definitions,
                input["taskDefinition"].as_str().unwrap_or(""),
            )
            .ok_or_else(|| bad("ClientException", "Unable to describe task definition."))?;
            Ok(json!({"taskDefinition": td.body}))
        }
        "RunTask" => run_task(shared, input),
        "ListTasks" => {
            let cluster = cluster_name(shared, input)?;
            let desired = input["desiredStatus"].as_str().unwrap_or("RUNNING");
            let started_by = input["startedBy"].as_str();
            let max = input["maxResults"].as_i64().unwrap_or(100).clamp(1, 100) as usize;
            let start: usize = input["nextToken"]
                .as_str()
                .map(|t| t.parse().map_err(|_| invalid("Invalid nextToken")))
                .transpose()?
                .unwrap_or(0);
            let inner = shared.lock();
            let arns: Vec<String> = inner
                .tasks
                .values()
                .map(|t| &t.inst)
                .filter(|t| t.cluster == cluster)
                .filter(|t| match desired {
                    "STOPPED" => t.desired_status == "STOPPED",
                    _ => t.desired_status != "STOPPED",
                })
                .filter(|t| started_by.is_none_or(|s| t.started_by.as_deref() == Some(s)))
                .map(|t| t.arn.clone())
                .collect();
            let page: Vec<&String> = arns.iter().skip(start).take(max).collect();
            let mut out = json!({"taskArns": page});
            if start + max < arns.len() {
                out["nextToken"] = json!((start + max).to_string());
            }
            Ok(out)
        }
        "DescribeTasks" => {
            let cluster = cluster_name(shared, input)?;
            let ids = input["tasks"].as_array().cloned().unwrap_or_default();
            if ids.len() > 100 {
                return Err(invalid("Tasks cannot be longer than 100 items"));
            }
            let with_tags = input["include"]
                .as_array()
                .is_some_and(|i| i.iter().any(|v| v == "TAGS"));
            let inner = shared.lock();
            let mut tasks = Vec::new();
            let mut failures = Vec::new();
            for id in ids.iter().filter_map(Value::as_str) {
                match find_task(&inner.tasks, &cluster, id) {
                    Some(t) => tasks.push(task_json(shared, &t.inst, with_tags)),
                    None => failures.push(json!({"arn": id, "reason": "MISSING"})),
                }
            }
            Ok(json!({"tasks": tasks, "failures": failures}))
        }
        "StopTask" => {
            let cluster = cluster_name(shared, input)?;
            let id = input["task"].as_str().unwrap_or("");
            let reason = input["reason"].as_str().unwrap_or("Task stopped by user");
            let mut inner = shared.lock();
            let key = find_task(&inner.tasks, &cluster, id)
                .map(|t| t.inst.arn.clone())
                .ok_or_else(|| invalid("The referenced task was not found."))?;
            let t = inner
                .tasks
                .get_mut(&key)
                .ok_or_else(|| invalid("The referenced task was not found."))?;
            if t.inst.desired_status != "STOPPED" {
                t.inst.desired_status = "STOPPED".into();
                t.inst.last_status = "STOPPED".into();
                t.inst.stopped_reason = Some(reason.to_owned());
                t.inst.stop_code = Some("UserInitiated".into());
                t.inst.pid = None;
                drop(t.kill.take());
            }
            let inst = t.inst.clone();
            inner.sessions.retain(|_, s| s.task_id != inst.id);
            drop(inner);
            Ok(json!({"task": task_json(shared, &inst, false)}))
        }
        _ => Err(bad("UnknownOperationException", op.to_owned())),
    }
}

fn find_task<'a>(tasks: &'a BTreeMap<String, Task>, cluster: &str, id: &str) -> Option<&'a Task> {
    tasks
        .values()
        .find(|t| t.inst.cluster == cluster && (t.inst.arn == id || t.inst.id == id))
}

fn find_task_definition<'a>(
    tds: &'a [TaskDefinition],
    reference: &str,
) -> Option<&'a TaskDefinition> {
    let short = reference
        .strip_prefix("arn:")
        .and_then(|_| reference.rsplit_once("task-definition/"))
        .map_or(reference, |(_, r)| r);
    match short.split_once(':') {
        Some((family, rev)) => tds
            .iter()
            .find(|t| t.family == family && rev.parse() == Ok(t.revision)),
        None => tds
            .iter()
            .filter(|t| t.family == short)
            .max_by_key(|t| t.revision),
    }
}

fn register_task_definition(shared: &Arc<Shared>, input: &Value) -> Result<Value, Response> {
    let family = input["family"].as_str().unwrap_or("");
    if family.is_empty()
        || family.len() > 255
        || !family
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(bad(
            "ClientException",
            "Family contains invalid characters or is too long.",
        ));
    }
    let fargate = input["requiresCompatibilities"]
        .as_array()
        .is_some_and(|c| c.iter().any(|v| v == "FARGATE"));
    let containers = input["containerDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if containers.is_empty()
        || containers.iter().any(|c| {
            c["name"].as_str().is_none_or(str::is_empty)
                || c["image"].as_str().is_none_or(str::is_empty)
        })
    {
        return Err(bad(
            "ClientException",
            "Container.name and Container.image should not be null or empty.",
        ));
    }
    if fargate {
        if input["networkMode"].as_str() != Some("awsvpc") {
            return Err(bad(
                "ClientException",
                "Fargate only supports network mode 'awsvpc'.",
            ));
        }
        let cpu = input["cpu"].as_str().and_then(|c| c.parse::<u32>().ok());
        let memory = input["memory"].as_str().and_then(|m| m.parse::<u32>().ok());
        match (cpu, memory) {
            (Some(c), Some(m)) if shapes::memory_allowed(c, m) => {}
            (Some(c), Some(m)) => {
                return Err(bad(
                    "ClientException",
                    format!(
                        "No Fargate configuration exists for given values: {c} CPU, {m} memory. See the Amazon ECS documentation for the valid values."
                    ),
                ));
            }
            _ => {
                return Err(bad(
                    "ClientException",
                    "Fargate requires task definition to have execution role ARN to support log driver awslogs. / cpu and memory must be set at the task level for Fargate.",
                ));
            }
        }
    }
    if let Some(role) = input["taskRoleArn"].as_str()
        && role != shared.cfg.task_role_arn
    {
        return Err(bad("ClientException", format!("Role is not valid: {role}")));
    }
    let mut inner = shared.lock();
    let revision = inner
        .task_definitions
        .iter()
        .filter(|t| t.family == family)
        .map(|t| t.revision)
        .max()
        .unwrap_or(0)
        + 1;
    let cfg = &shared.cfg;
    let arn = format!(
        "arn:aws:ecs:{}:{}:task-definition/{family}:{revision}",
        cfg.region, cfg.account_id
    );
    let mut body = json!({
        "taskDefinitionArn": arn,
        "family": family,
        "revision": revision,
        "status": "ACTIVE",
        "containerDefinitions": containers,
        "networkMode": input["networkMode"],
        "cpu": input["cpu"],
        "memory": input["memory"],
        "requiresCompatibilities": input["requiresCompatibilities"],
        "compatibilities": ["EC2", "FARGATE"],
        "registeredAt": now_secs(),
    });
    for key in ["taskRoleArn", "executionRoleArn", "runtimePlatform"] {
        if !input[key].is_null() {
            body[key] = input[key].clone();
        }
    }
    inner.task_definitions.push(TaskDefinition {
        arn,
        family: family.to_owned(),
        revision,
        body: body.clone(),
    });
    Ok(
        json!({"taskDefinition": body, "tags": input["tags"].as_array().cloned().unwrap_or_default()}),
    )
}

fn run_task(shared: &Arc<Shared>, input: &Value) -> Result<Value, Response> {
    let cfg = &shared.cfg;
    let cluster = cluster_name(shared, input)?;
    let token = input["clientToken"].as_str().map(str::to_owned);
    let fingerprint = hex::encode(Sha256::digest(input.to_string().as_bytes()));
    if let Some(token) = &token {
        if token.len() > 64 {
            return Err(invalid("clientToken can be at most 64 characters"));
        }
        if let Some((seen, answer)) = shared.lock().run_tokens.get(token) {
            return if *seen == fingerprint {
                Ok(answer.clone())
            } else {
                Err(bad(
                    "ConflictException",
                    "The clientToken was already used with a different request.",
                ))
            };
        }
    }
    let (td_arn, td_body) = {
        let inner = shared.lock();
        let td = find_task_definition(
            &inner.task_definitions,
            input["taskDefinition"].as_str().unwrap_or(""),
        )
        .ok_or_else(|| invalid("TaskDefinition not found."))?;
        (td.arn.clone(), td.body.clone())
    };
    let strategy = input["capacityProviderStrategy"].as_array();
    let capacity = match (input["launchType"].as_str(), strategy) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "Specifying both a launch type and capacity provider strategy is not supported. Please specify one or the other and try again.",
            ));
        }
        (Some("FARGATE"), None) => "FARGATE".to_owned(),
        (Some(other), None) => {
            return Ok(
                json!({"tasks": [], "failures": [{"arn": format!("arn:aws:ecs:{}:{}:cluster/{cluster}", cfg.region, cfg.account_id), "reason": format!("No Container Instances were found in your cluster ({other}).")}]}),
            );
        }
        (None, Some(s)) => {
            let providers: Vec<&str> = s
                .iter()
                .filter_map(|p| p["capacityProvider"].as_str())
                .collect();
            if providers.is_empty()
                || providers
                    .iter()
                    .any(|p| !matches!(*p, "FARGATE" | "FARGATE_SPOT"))
            {
                return Err(invalid(format!(
                    "The specified capacity provider strategy is not valid: {providers:?} (this cluster has FARGATE and FARGATE_SPOT)"
                )));
            }
            providers[0].to_owned()
        }
        (None, None) => {
            return Err(invalid(
                "A launch type or capacity provider strategy is required (the cluster has no default strategy).",
            ));
        }
    };
    if td_body["networkMode"] == "awsvpc" {
        let vpc = &input["networkConfiguration"]["awsvpcConfiguration"];
        if vpc.is_null() {
            return Err(invalid(
                "Network Configuration must be provided when networkMode 'awsvpc' is specified.",
            ));
        }
        let subnets = vpc["subnets"].as_array().cloned().unwrap_or_default();
        if subnets.is_empty() || subnets.len() > 16 {
            return Err(invalid("subnets can not be empty."));
        }
        for s in subnets.iter().filter_map(Value::as_str) {
            if !cfg.subnets.iter().any(|k| k == s) {
                return Err(invalid(format!(
                    "Error retrieving subnet information for [{s}]: The subnet ID '{s}' does not exist (ErrorCode: InvalidSubnetID.NotFound)"
                )));
            }
        }
        for g in vpc["securityGroups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !cfg.security_groups.iter().any(|k| k == g) {
                return Err(invalid(format!(
                    "Error retrieving security group information for [{g}]: The security group '{g}' does not exist (ErrorCode: InvalidGroup.NotFound)"
                )));
            }
        }
    }
    let overrides = input["overrides"].clone();
    let cpu = overrides["cpu"]
        .as_str()
        .or(td_body["cpu"].as_str())
        .unwrap_or("")
        .to_owned();
    let memory = overrides["memory"]
        .as_str()
        .or(td_body["memory"].as_str())
        .unwrap_or("")
        .to_owned();
    let (Ok(c), Ok(m)) = (cpu.parse::<u32>(), memory.parse::<u32>()) else {
        return Err(bad(
            "ClientException",
            "Task-level cpu and memory are required for Fargate.",
        ));
    };
    if !shapes::memory_allowed(c, m) {
        return Err(bad(
            "ClientException",
            format!(
                "No Fargate configuration exists for given values: {c} CPU, {m} memory. See the Amazon ECS documentation for the valid values."
            ),
        ));
    }
    let container_names: Vec<&str> = td_body["containerDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for o in overrides["containerOverrides"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = o["name"].as_str().unwrap_or("");
        if !container_names.contains(&name) {
            return Err(invalid(format!(
                "Override for container named {name} is not a container in the TaskDefinition."
            )));
        }
    }
    if overrides["containerOverrides"].to_string().len() > MAX_OVERRIDES_CHARS {
        return Err(invalid(format!(
            "Container Overrides length must be at most {MAX_OVERRIDES_CHARS}"
        )));
    }
    if let Some(role) = overrides["taskRoleArn"].as_str()
        && role != cfg.task_role_arn
    {
        return Err(bad("ClientException", format!("Role is not valid: {role}")));
    }
    let count = input["count"].as_i64().unwrap_or(1);
    if !(1..=10).contains(&count) {
        return Err(invalid("count must be between 1 and 10"));
    }
    let started_by = input["startedBy"].as_str().map(str::to_owned);
    if let Some(s) = &started_by
        && (s.len() > 128
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/')))
    {
        return Err(invalid(
            "startedBy may contain up to 128 letters, numbers, hyphens, underscores and forward slashes.",
        ));
    }
    let tags: BTreeMap<String, String> = input["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some((
                t["key"].as_str()?.to_owned(),
                t["value"].as_str().unwrap_or("").to_owned(),
            ))
        })
        .collect();
    if tags
        .keys()
        .any(|k| k.to_ascii_lowercase().starts_with("aws:"))
    {
        return Err(invalid("Tag keys prefixed with 'aws:' are reserved."));
    }
    let mut inner = shared.lock();
    let answer = if capacity == "FARGATE_SPOT" && !inner.spot_capacity {
        json!({"tasks": [], "failures": [{
            "arn": format!("arn:aws:ecs:{}:{}:cluster/{cluster}", cfg.region, cfg.account_id),
            "reason": format!("{CAPACITY_UNAVAILABLE}. Please try again later or in a different availability zone"),
        }]})
    } else {
        let mut started = Vec::new();
        for _ in 0..count {
            inner.generation += 1;
            let generation = inner.generation;
            let id = uuid::Uuid::new_v4().simple().to_string();
            let arn = format!(
                "arn:aws:ecs:{}:{}:task/{cluster}/{id}",
                cfg.region, cfg.account_id
            );
            let inst = SimTask {
                arn: arn.clone(),
                id,
                cluster: cluster.clone(),
                task_definition_arn: td_arn.clone(),
                started_by: started_by.clone(),
                tags: tags.clone(),
                last_status: "PROVISIONING".into(),
                desired_status: "RUNNING".into(),
                stopped_reason: None,
                stop_code: None,
                exit_code: None,
                capacity_provider: capacity.clone(),
                cpu: cpu.clone(),
                memory: memory.clone(),
                overrides: overrides.clone(),
                created_at: now_secs(),
                pid: None,
            };
            started.push(task_json(shared, &inst, true));
            inner.tasks.insert(
                arn.clone(),
                Task {
                    inst,
                    generation,
                    kill: None,
                },
            );
            let role = overrides["taskRoleArn"]
                .as_str()
                .or(td_body["taskRoleArn"].as_str())
                .map(str::to_owned);
            launch::start(shared.clone(), arn, generation, role);
        }
        json!({"tasks": started, "failures": []})
    };
    if let Some(token) = token {
        inner
            .run_tokens
            .insert(token, (fingerprint, answer.clone()));
    }
    Ok(answer)
}

/// A task as `DescribeTasks` shows it (tags only when asked for).
fn task_json(shared: &Shared, t: &SimTask, with_tags: bool) -> Value {
    let cfg = &shared.cfg;
    let mut container = json!({
        "containerArn": format!("arn:aws:ecs:{}:{}:container/{}/{}/runner", cfg.region, cfg.account_id, t.cluster, t.id),
        "taskArn": t.arn,
        "name": "runner",
        "lastStatus": t.last_status,
    });
    if let Some(code) = t.exit_code {
        container["exitCode"] = json!(code);
    }
    let mut out = json!({
        "taskArn": t.arn,
        "clusterArn": format!("arn:aws:ecs:{}:{}:cluster/{}", cfg.region, cfg.account_id, t.cluster),
        "taskDefinitionArn": t.task_definition_arn,
        "lastStatus": t.last_status,
        "desiredStatus": t.desired_status,
        "cpu": t.cpu,
        "memory": t.memory,
        "createdAt": t.created_at,
        "overrides": t.overrides,
        "containers": [container],
        "platformFamily": "Linux",
    });
    if t.capacity_provider == "FARGATE_SPOT" {
        out["capacityProviderName"] = json!("FARGATE_SPOT");
    } else {
        out["launchType"] = json!("FARGATE");
    }
    if let Some(s) = &t.started_by {
        out["startedBy"] = json!(s);
    }
    if let Some(r) = &t.stopped_reason {
        out["stoppedReason"] = json!(r);
    }
    if let Some(c) = &t.stop_code {
        out["stopCode"] = json!(c);
    }
    if with_tags {
        out["tags"] = t
            .tags
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
    }
    out
}

fn not_found() -> Response {
    bad(
        "ResourceNotFoundException",
        "Secrets Manager can't find the specified secret.",
    )
}

/// The secret `id` names (name or ARN).
fn secret_key(inner: &super::Inner, id: &str) -> Option<String> {
    inner
        .secrets
        .values()
        .find(|s| s.name == id || s.arn == id)
        .map(|s| s.name.clone())
}

fn secrets(
    shared: &Arc<Shared>,
    op: &str,
    input: &Value,
    task: Option<&str>,
) -> Result<Value, Response> {
    let cfg = &shared.cfg;
    let tags_of = |v: &Value| -> BTreeMap<String, String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some((
                    t["Key"].as_str()?.to_owned(),
                    t["Value"].as_str().unwrap_or("").to_owned(),
                ))
            })
            .collect()
    };
    let mut inner = shared.lock();
    match op {
        "CreateSecret" => {
            let name = input["Name"].as_str().unwrap_or("");
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
            {
                return Err(bad(
                    "InvalidParameterException",
                    "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!",
                ));
            }
            let value = input["SecretString"].as_str().ok_or_else(|| {
                bad(
                    "InvalidRequestException",
                    "You must provide either SecretString or SecretBinary.",
                )
            })?;
            if let Some(existing) = inner.secrets.get(name) {
                return Err(bad(
                    "ResourceExistsException",
                    format!(
                        "The operation failed because the secret {} already exists.",
                        existing.name
                    ),
                ));
            }
            let suffix: String = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
            let arn = format!(
                "arn:aws:secretsmanager:{}:{}:secret:{name}-{suffix}",
                cfg.region, cfg.account_id
            );
            inner.secrets.insert(
                name.to_owned(),
                SimSecret {
                    arn: arn.clone(),
                    name: name.to_owned(),
                    value: SecretString::from(value),
                    tags: tags_of(&input["Tags"]),
                },
            );
            Ok(json!({"ARN": arn, "Name": name, "VersionId": uuid::Uuid::new_v4().to_string()}))
        }
        "PutSecretValue" => {
            let key = secret_key(&inner, input["SecretId"].as_str().unwrap_or(""))
                .ok_or_else(not_found)?;
            let value = input["SecretString"].as_str().ok_or_else(|| {
                bad(
                    "InvalidRequestException",
                    "You must provide either SecretString or SecretBinary.",
                )
            })?;
            let s = inner.secrets.get_mut(&key).ok_or_else(not_found)?;
            s.value = SecretString::from(value);
            Ok(
                json!({"ARN": s.arn, "Name": s.name, "VersionId": uuid::Uuid::new_v4().to_string(), "VersionStages": ["AWSCURRENT"]}),
            )
        }
        "TagResource" => {
            let key = secret_key(&inner, input["SecretId"].as_str().unwrap_or(""))
                .ok_or_else(not_found)?;
            let s = inner.secrets.get_mut(&key).ok_or_else(not_found)?;
            s.tags.extend(tags_of(&input["Tags"]));
            Ok(json!({}))
        }
        "DeleteSecret" => {
            let key = secret_key(&inner, input["SecretId"].as_str().unwrap_or(""))
                .ok_or_else(not_found)?;
            if input["ForceDeleteWithoutRecovery"] != true {
                return Err(bad(
                    "InvalidParameterException",
                    "The simulator only models ForceDeleteWithoutRecovery deletes.",
                ));
            }
            let s = inner.secrets.remove(&key).ok_or_else(not_found)?;
            Ok(json!({"ARN": s.arn, "Name": s.name, "DeletionDate": now_secs()}))
        }
        "GetSecretValue" => {
            // The controller's policy does not grant this; a task's role does, for a secret
            // whose reader tag names that task's session (the README's task-role policy).
            let denied = || {
                bad(
                    "AccessDeniedException",
                    "User is not authorized to perform: secretsmanager:GetSecretValue",
                )
            };
            let task = task.ok_or_else(denied)?;
            let reader = format!("{}:{task}", shared.cfg.task_role_id);
            let id = input["SecretId"].as_str().unwrap_or("");
            let s = secret_key(&inner, id)
                .and_then(|key| inner.secrets.get(&key))
                .filter(|s| s.tags.get(READER_TAG) == Some(&reader))
                .ok_or_else(denied)?;
            Ok(json!({
                "ARN": s.arn,
                "Name": s.name,
                "SecretString": s.value.expose_secret(),
                "VersionStages": ["AWSCURRENT"],
                "CreatedDate": now_secs(),
            }))
        }
        _ => Err(bad("UnknownOperationException", op.to_owned())),
    }
}
