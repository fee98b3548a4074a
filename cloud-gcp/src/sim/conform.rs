//! Holds the simulator's traffic to Google's discovery documents
//! ([`simulators::conformance::discovery`]): a request with an unknown query parameter or
//! body field, a value outside an enum or a stated value set, or a mistyped field gets
//! Google's 400 `INVALID_ARGUMENT`; answers write int64 fields as strings.

use std::collections::BTreeMap;

use axum::http::Method;
use serde_json::Value;
use simulators::conformance::discovery::{Api, vendor_error};

use super::state::ApiError;

/// The API and discovery method id of a call, if the simulator serves it.
fn method_of(method: &Method, path: &str) -> Option<(Api, &'static str)> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let api = match segments.first() {
        Some(&"v2") => Api::RunV2,
        Some(&"v1") if segments.get(3) == Some(&"locations") => Api::BatchV1,
        Some(&"v1") => Api::SecretManagerV1,
        _ => return None,
    };
    let last = segments.last().copied().unwrap_or_default();
    let id = match (api, segments.len(), method.as_str()) {
        (Api::RunV2 | Api::BatchV1, 6, "POST") if last == "jobs" => {
            "projects.locations.jobs.create"
        }
        (Api::RunV2 | Api::BatchV1, 6, "GET") if last == "jobs" => "projects.locations.jobs.list",
        (Api::RunV2, 7, "POST") if last.ends_with(":run") => "projects.locations.jobs.run",
        (Api::RunV2 | Api::BatchV1, 7, "GET") if segments[5] == "jobs" => {
            "projects.locations.jobs.get"
        }
        (Api::RunV2 | Api::BatchV1, 7, "DELETE") if segments[5] == "jobs" => {
            "projects.locations.jobs.delete"
        }
        (Api::RunV2 | Api::BatchV1, 7, "GET") if segments[5] == "operations" => {
            "projects.locations.operations.get"
        }
        (Api::SecretManagerV1, 4, "POST") if last == "secrets" => "projects.secrets.create",
        (Api::SecretManagerV1, 5, "POST") if last.ends_with(":addVersion") => {
            "projects.secrets.addVersion"
        }
        (Api::SecretManagerV1, 5, "DELETE") => "projects.secrets.delete",
        (Api::SecretManagerV1, 5, "GET") => "projects.secrets.get",
        _ => return None,
    };
    Some((api, id))
}

/// Checks one request; `Err` is the answer Google would give.
pub(super) fn check_request(
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
    body: &Value,
) -> Result<(), ApiError> {
    let Some((api, id)) = method_of(method, path) else {
        return Ok(());
    };
    let query: Vec<(String, String)> = query.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let body = (!body.is_null()).then_some(body);
    let violations = api.check_request(id, &query, body);
    match vendor_error(&violations) {
        Some(message) => Err(ApiError::invalid(message)),
        None => Ok(()),
    }
}

/// Rewrites an answer into Google's wire form (int64 as strings).
pub(super) fn to_wire(method: &Method, path: &str, value: &mut Value) {
    if let Some((api, id)) = method_of(method, path)
        && let Some(schema) = api.response_schema(id)
    {
        api.to_wire(schema, value);
        if id == "projects.locations.jobs.list" {
            for job in value["jobs"].as_array_mut().into_iter().flatten() {
                api.to_wire(
                    if api == Api::RunV2 {
                        "GoogleCloudRunV2Job"
                    } else {
                        "Job"
                    },
                    job,
                );
            }
        }
    }
}
