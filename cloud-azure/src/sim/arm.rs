//! The simulated ARM endpoints for `Microsoft.ContainerInstance/containerGroups`, with ARM's
//! checks and error JSON (`{"error": {"code", "message"}}`).

// `Err` here is the HTTP response to send, not an error value passed up a call chain.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use simulators::conformance::swagger;

use super::{Fault, Group, GroupState, Shared, SimInstance, auth, launch};
use crate::limits;

const GROUPS: &str = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerInstance/containerGroups";

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(GROUPS, get(list))
        .route(&format!("{GROUPS}/{{name}}"), get(get_group).put(put_group).delete(delete_group))
        .route(
            "/subscriptions/{sub}/providers/Microsoft.ContainerInstance/locations/{loc}/operations/{op}",
            get(operation),
        )
        .with_state(shared)
}

type Q = Query<HashMap<String, String>>;

fn arm_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

fn bad(code: &str, message: impl Into<String>) -> Response {
    arm_error(StatusCode::BAD_REQUEST, code, message)
}

/// Bearer check, injected faults, api-version, subscription; returns the canonical group name.
async fn preamble(
    shared: &Shared,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    sub: &str,
    rg: Option<&str>,
) -> Result<String, Response> {
    auth::check_bearer(shared, headers)?;
    let fault = { shared.lock().faults.next_fault() };
    match fault {
        Some(Fault::Throttle { retry_after_secs }) => {
            return Err((
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry_after_secs.to_string())],
                axum::Json(json!({"error": {
                    "code": "SubscriptionRequestsThrottled",
                    "message": format!("Number of requests for subscription '{sub}' exceeded the limit. Please try again after '{retry_after_secs}' seconds."),
                }})),
            )
                .into_response());
        }
        Some(Fault::ServerError) => {
            return Err(arm_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "Encountered internal server error. Diagnostic information: timestamp '', subscription id '', tracking id '', request correlation id ''.",
            ));
        }
        Some(Fault::Quota) => {
            return Err(arm_error(
                StatusCode::CONFLICT,
                "ContainerGroupQuotaReached",
                format!(
                    "Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota 'StandardCores' exceeded in region '{}'. Limit: '100', Usage: '100' Requested: '1'.",
                    shared.cfg.location
                ),
            ));
        }
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    let cfg = &shared.cfg;
    match query.get("api-version") {
        None => {
            return Err(bad(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            ));
        }
        Some(v) if !cfg.api_versions.contains(v) => {
            return Err(bad(
                "NoRegisteredProviderFound",
                format!(
                    "No registered resource provider found for location '{}' and API version '{v}' for type 'containerGroups'. The supported api-versions are '{}'.",
                    cfg.location,
                    cfg.api_versions.join(", ")
                ),
            ));
        }
        Some(_) => {}
    }
    if sub != cfg.subscription_id {
        return Err(arm_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            format!("The subscription '{sub}' could not be found."),
        ));
    }
    let Some(rg) = rg else {
        return Ok(String::new());
    };
    cfg.resource_groups
        .iter()
        .find(|g| g.eq_ignore_ascii_case(rg))
        .cloned()
        .ok_or_else(|| {
            arm_error(
                StatusCode::NOT_FOUND,
                "ResourceGroupNotFound",
                format!("Resource group '{rg}' could not be found."),
            )
        })
}

/// A group as a list answer carries it: like a GET, but without any `instanceView` (the
/// `ListResultContainerGroup` schema has none, and neither has the vendor's list example).
fn list_item(mut group: Value) -> Value {
    if let Some(props) = group["properties"].as_object_mut() {
        props.remove("instanceView");
    }
    for c in group["properties"]["containers"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        if let Some(props) = c["properties"].as_object_mut() {
            props.remove("instanceView");
        }
    }
    group
}

/// The group as ARM returns it: secure values and storage keys removed, state added.
fn render(shared: &Shared, inst: &SimInstance) -> Value {
    let cfg = &shared.cfg;
    let mut props = inst.request["properties"].clone();
    if let Some(containers) = props["containers"].as_array_mut() {
        for c in containers {
            if let Some(env) = c["properties"]
                .get_mut("environmentVariables")
                .and_then(Value::as_array_mut)
            {
                for var in env.iter_mut().filter_map(Value::as_object_mut) {
                    var.remove("secureValue");
                }
            }
            let mut current = json!({"state": match inst.state {
                GroupState::Pending => "Waiting",
                GroupState::Running => "Running",
                GroupState::Succeeded | GroupState::Failed => "Terminated",
            }});
            if let Some(code) = inst.exit_code {
                current["exitCode"] = json!(code);
            }
            c["properties"]["instanceView"] =
                json!({"restartCount": 0, "currentState": current, "events": []});
        }
    }
    // `get_mut`, not indexing: indexing would add `"volumes": null`, which ARM never sends.
    if let Some(volumes) = props.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in volumes {
            if let Some(f) = v.get_mut("azureFile").and_then(Value::as_object_mut) {
                f.remove("storageAccountKey");
            }
        }
    }
    props["provisioningState"] = json!(inst.provisioning_state);
    props["instanceView"] = json!({"state": inst.state.as_str(), "events": []});
    json!({
        "id": format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerInstance/containerGroups/{}",
            cfg.subscription_id, inst.resource_group, inst.name
        ),
        "name": inst.name,
        "type": "Microsoft.ContainerInstance/containerGroups",
        "location": inst.location,
        "tags": inst.tags,
        "properties": props,
    })
}

fn not_found(rg: &str, name: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!(
            "The Resource 'Microsoft.ContainerInstance/containerGroups/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

async fn get_group(
    State(shared): State<Arc<Shared>>,
    Path((sub, rg, name)): Path<(String, String, String)>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    let rg = match preamble(&shared, &headers, &q, &sub, Some(&rg)).await {
        Ok(rg) => rg,
        Err(r) => return r,
    };
    let inst = shared
        .lock()
        .groups
        .get(&(rg.clone(), name.clone()))
        .map(|g| g.inst.clone());
    match inst {
        Some(inst) => axum::Json(render(&shared, &inst)).into_response(),
        None => not_found(&rg, &name),
    }
}

async fn delete_group(
    State(shared): State<Arc<Shared>>,
    Path((sub, rg, name)): Path<(String, String, String)>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    let rg = match preamble(&shared, &headers, &q, &sub, Some(&rg)).await {
        Ok(rg) => rg,
        Err(r) => return r,
    };
    let removed = shared.lock().groups.remove(&(rg, name));
    match removed {
        Some(mut g) => {
            g.kill = None; // kills the runner
            axum::Json(render(&shared, &g.inst)).into_response()
        }
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn list(
    State(shared): State<Arc<Shared>>,
    Path((sub, rg)): Path<(String, String)>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    let rg = match preamble(&shared, &headers, &q, &sub, Some(&rg)).await {
        Ok(rg) => rg,
        Err(r) => return r,
    };
    let skip: usize = q
        .get("$skipToken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let page = shared.cfg.page_size.max(1);
    let all: Vec<SimInstance> = shared
        .lock()
        .groups
        .iter()
        .filter(|((g, _), _)| *g == rg)
        .map(|(_, g)| g.inst.clone())
        .collect();
    let value: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(page)
        .map(|i| list_item(render(&shared, i)))
        .collect();
    let mut body = json!({"value": value});
    if skip + page < all.len() {
        body["nextLink"] = json!(format!(
            "{}/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerInstance/containerGroups?api-version={}&$skipToken={}",
            shared.base_url,
            q.get("api-version").map_or("", String::as_str),
            skip + page
        ));
    }
    axum::Json(body).into_response()
}

async fn operation(
    State(shared): State<Arc<Shared>>,
    Path((sub, _loc, op)): Path<(String, String, String)>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = preamble(&shared, &headers, &q, &sub, None).await {
        return r;
    }
    let state = shared
        .lock()
        .groups
        .values()
        .find(|g| g.operation_id == op)
        .map(|g| g.inst.provisioning_state.clone());
    let status = match state.as_deref() {
        None => {
            return arm_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                format!("Operation '{op}' was not found."),
            );
        }
        Some("Succeeded") => "Succeeded",
        Some("Failed") => "Failed",
        Some(_) => "InProgress",
    };
    axum::Json(json!({"id": op, "status": status})).into_response()
}

async fn put_group(
    State(shared): State<Arc<Shared>>,
    Path((sub, rg, name)): Path<(String, String, String)>,
    Query(q): Q,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rg = match preamble(&shared, &headers, &q, &sub, Some(&rg)).await {
        Ok(rg) => rg,
        Err(r) => return r,
    };
    if !limits::valid_name(&name) {
        return bad(
            "InvalidResourceName",
            format!(
                "The resource name '{name}' is invalid. Container group names must be 1-63 characters of lowercase letters, numbers and '-', must not start or end with '-' and must not contain '--'."
            ),
        );
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return bad(
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: expected an object.",
            );
        }
        Err(e) => {
            return bad(
                "InvalidRequestContent",
                format!("The request content was invalid and could not be deserialized: '{e}'."),
            );
        }
    };
    let (tags, env) = match validate(&shared, &name, &request) {
        Ok(v) => v,
        Err(r) => return r,
    };
    // The ACI-specific checks above answer with ACI's own codes; what they let through is
    // held to the swagger.
    let violations = swagger::check(
        swagger::CONTAINER_GROUP,
        &request,
        swagger::Direction::Request,
    );
    if let Some((code, message)) = swagger::vendor_error(&violations) {
        shared.lock().conformance_rejections += 1;
        return bad(code, message);
    }
    let run = container_run(&request, env);
    let key = (rg.clone(), name.clone());
    let mut inner = shared.lock();
    if let Some(g) = inner.groups.get_mut(&key) {
        // PUT by name: the same group, updated in place; its container keeps running.
        g.inst.request = request;
        g.inst.tags = tags;
        g.inst.puts += 1;
        return axum::Json(render(&shared, &g.inst)).into_response();
    }
    inner.generation += 1;
    let generation = inner.generation;
    let operation_id = uuid::Uuid::new_v4().to_string();
    let inst = SimInstance {
        name,
        resource_group: rg,
        location: shared.cfg.location.clone(),
        tags,
        request,
        provisioning_state: "Creating".into(),
        state: GroupState::Pending,
        exit_code: None,
        pid: None,
        puts: 1,
    };
    let rendered = render(&shared, &inst);
    inner.groups.insert(
        key.clone(),
        Group {
            inst,
            generation,
            operation_id: operation_id.clone(),
            kill: None,
        },
    );
    drop(inner);
    launch::start(shared.clone(), key, generation, run);
    let async_op = format!(
        "{}/subscriptions/{sub}/providers/Microsoft.ContainerInstance/locations/{}/operations/{operation_id}?api-version={}",
        shared.base_url,
        shared.cfg.location,
        q.get("api-version").map_or("", String::as_str)
    );
    (
        StatusCode::CREATED,
        [("Azure-AsyncOperation", async_op)],
        axum::Json(rendered),
    )
        .into_response()
}

type Validated = (BTreeMap<String, String>, Vec<(String, String)>);

/// ARM's and ACI's checks on a PUT body; returns the tags and the first container's env.
fn validate(shared: &Shared, name: &str, body: &Value) -> Result<Validated, Response> {
    let cfg = &shared.cfg;
    let content = |msg: &str| {
        bad(
            "InvalidRequestContent",
            format!("The request content was invalid: {msg}"),
        )
    };
    match body["location"].as_str() {
        None | Some("") => {
            return Err(bad(
                "LocationRequired",
                "The location property is required for this definition.",
            ));
        }
        Some(loc) if !loc.replace(' ', "").eq_ignore_ascii_case(&cfg.location) => {
            return Err(bad(
                "LocationNotAvailableForResourceType",
                format!(
                    "The provided location '{loc}' is not available for resource type 'Microsoft.ContainerInstance/containerGroups'. List of available regions for the resource type is '{}'.",
                    cfg.location
                ),
            ));
        }
        Some(_) => {}
    }
    let mut tags = BTreeMap::new();
    match &body["tags"] {
        Value::Null => {}
        Value::Object(m) => {
            if m.len() > limits::MAX_TAGS {
                return Err(bad(
                    "InvalidTag",
                    format!(
                        "The number of tags {} exceeds the limit of {}.",
                        m.len(),
                        limits::MAX_TAGS
                    ),
                ));
            }
            for (k, v) in m {
                let Some(v) = v.as_str() else {
                    return Err(content("tag values must be strings"));
                };
                if k.chars().count() > limits::MAX_TAG_NAME_CHARS
                    || v.chars().count() > limits::MAX_TAG_VALUE_CHARS
                    || k.contains(['<', '>', '%', '&', '\\', '?', '/'])
                {
                    return Err(bad(
                        "InvalidTag",
                        format!(
                            "The tag '{k}' is invalid: names are at most 512 characters without '<>%&\\?/', values at most 256 characters."
                        ),
                    ));
                }
                tags.insert(k.clone(), v.to_owned());
            }
        }
        _ => return Err(content("tags must be an object")),
    }
    let props = &body["properties"];
    if !props.is_object() {
        return Err(content("properties is required"));
    }
    if !matches!(props["osType"].as_str(), Some("Linux" | "Windows")) {
        return Err(bad(
            "InvalidOsType",
            format!(
                "The 'osType' for container group '{name}' is invalid. The value must be one of 'Windows,Linux'."
            ),
        ));
    }
    if !matches!(
        props["restartPolicy"].as_str(),
        None | Some("Always" | "OnFailure" | "Never")
    ) {
        return Err(bad(
            "InvalidRestartPolicy",
            format!(
                "The restart policy of container group '{name}' is invalid. The value must be one of 'Always,OnFailure,Never'."
            ),
        ));
    }
    let sku = props["sku"].as_str().unwrap_or("Standard");
    if !matches!(sku, "Standard" | "Confidential" | "Dedicated") {
        return Err(bad(
            "InvalidContainerGroupSku",
            format!(
                "The sku '{sku}' of container group '{name}' is invalid. The value must be one of 'Standard,Confidential,Dedicated'."
            ),
        ));
    }
    let volumes: Vec<&str> = match &props["volumes"] {
        Value::Null => Vec::new(),
        Value::Array(vs) => {
            let mut names = Vec::new();
            for v in vs {
                let Some(vname) = v["name"].as_str().filter(|n| limits::valid_name(n)) else {
                    return Err(bad(
                        "InvalidVolumeName",
                        format!("A volume name in container group '{name}' is invalid."),
                    ));
                };
                if let Some(f) = v.get("azureFile") {
                    for field in ["shareName", "storageAccountName", "storageAccountKey"] {
                        if f[field].as_str().is_none_or(str::is_empty) {
                            return Err(bad(
                                "InvalidAzureFileVolume",
                                format!(
                                    "The '{field}' of Azure File volume '{vname}' in container group '{name}' is not specified."
                                ),
                            ));
                        }
                    }
                }
                names.push(vname);
            }
            names
        }
        _ => return Err(content("volumes must be an array")),
    };
    if let Some(subnets) = props.get("subnetIds") {
        let ok = subnets.as_array().is_some_and(|s| {
            s.iter().all(|s| {
                let id = s["id"].as_str().unwrap_or_default();
                let parts: Vec<&str> = id.split('/').collect();
                parts.len() == 11
                    && parts[1].eq_ignore_ascii_case("subscriptions")
                    && parts[3].eq_ignore_ascii_case("resourceGroups")
                    && parts[6].eq_ignore_ascii_case("Microsoft.Network")
                    && parts[7].eq_ignore_ascii_case("virtualNetworks")
                    && parts[9].eq_ignore_ascii_case("subnets")
                    && parts.iter().skip(1).all(|p| !p.is_empty())
            })
        });
        if !ok {
            return Err(bad(
                "InvalidSubnetIds",
                format!(
                    "The subnet ids of container group '{name}' are invalid: each must be a 'Microsoft.Network/virtualNetworks/subnets' resource id."
                ),
            ));
        }
    }
    let Some(containers) = props["containers"]
        .as_array()
        .filter(|c| !c.is_empty() && c.len() <= 60)
    else {
        return Err(content(
            "properties.containers must hold 1 to 60 containers",
        ));
    };
    let (mut cpu_total, mut mem_total) = (0.0, 0.0);
    let mut first_env = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let Some(cname) = c["name"].as_str().filter(|n| limits::valid_name(n)) else {
            return Err(bad(
                "InvalidContainerName",
                format!(
                    "The container name in container group '{name}' is invalid. It must be 1-63 lowercase letters, numbers and '-', not starting or ending with '-'."
                ),
            ));
        };
        let cp = &c["properties"];
        if cp["image"].as_str().is_none_or(|s| s.trim().is_empty()) {
            return Err(bad(
                "InvalidContainerImage",
                format!(
                    "The image of container '{cname}' in container group '{name}' is not specified."
                ),
            ));
        }
        let req = &cp["resources"]["requests"];
        let (Some(cpu), Some(mem)) = (req["cpu"].as_f64(), req["memoryInGB"].as_f64()) else {
            return Err(bad(
                "ResourceRequestsNotSpecified",
                format!(
                    "The resource requests are not specified in container '{cname}' of contain group '{name}'. Both memory and CPU requests are required since API version '2017-07-01-preview'."
                ),
            ));
        };
        if !limits::is_tenth_step(cpu) || !limits::is_tenth_step(mem) {
            return Err(bad(
                "InvalidResourceRequests",
                format!(
                    "The resource requests of container '{cname}' in container group '{name}' are invalid: cpu '{cpu}' and memoryInGB '{mem}' must be positive and accurate to one decimal place."
                ),
            ));
        }
        cpu_total += cpu;
        mem_total += mem;
        if cp["securityContext"]["privileged"].as_bool() == Some(true) && sku != "Confidential" {
            return Err(bad(
                "InvalidContainerSecurityContext",
                format!(
                    "Privileged container '{cname}' in container group '{name}' requires the 'Confidential' sku."
                ),
            ));
        }
        for m in cp["volumeMounts"].as_array().into_iter().flatten() {
            let vname = m["name"].as_str().unwrap_or_default();
            if !volumes.contains(&vname) || m["mountPath"].as_str().is_none_or(str::is_empty) {
                return Err(bad(
                    "InvalidVolumeMount",
                    format!(
                        "The volume mount '{vname}' of container '{cname}' in container group '{name}' does not match a volume."
                    ),
                ));
            }
        }
        for var in cp["environmentVariables"].as_array().into_iter().flatten() {
            let Some(vname) = var["name"].as_str().filter(|n| !n.is_empty()) else {
                return Err(bad(
                    "InvalidEnvironmentVariable",
                    format!(
                        "An environment variable of container '{cname}' in container group '{name}' has no name."
                    ),
                ));
            };
            let value = var["secureValue"]
                .as_str()
                .or(var["value"].as_str())
                .unwrap_or_default();
            if vname.len() + value.len() + 1 > limits::MAX_ENV_STRING_BYTES {
                return Err(bad(
                    "InvalidEnvironmentVariable",
                    format!(
                        "The environment variable '{vname}' of container '{cname}' in container group '{name}' is longer than {} bytes.",
                        limits::MAX_ENV_STRING_BYTES
                    ),
                ));
            }
            if i == 0 {
                first_env.push((vname.to_owned(), value.to_owned()));
            }
        }
    }
    if cpu_total > cfg.max_cpu + 1e-9 || mem_total > cfg.max_memory_gb + 1e-9 {
        return Err(arm_error(
            StatusCode::CONFLICT,
            "ServiceUnavailable",
            format!(
                "The requested resource is not available in the location '{}' at this moment. Please retry with a different resource request or in another location. Resource requested: '{cpu_total}' CPU '{mem_total}' GB memory 'Linux' OS",
                cfg.location
            ),
        ));
    }
    Ok((tags, first_env))
}

/// The group's first container as the platform runs it: its image and `command` with `env`
/// (plain and secure values).
fn container_run(request: &Value, env: Vec<(String, String)>) -> simulators::image::ContainerRun {
    let container = &request["properties"]["containers"][0]["properties"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    simulators::image::ContainerRun {
        image: container["image"].as_str().unwrap_or_default().to_owned(),
        command: strings(&container["command"]),
        env,
        ..simulators::image::ContainerRun::default()
    }
}
