//! GitHub's published REST description (extracts of `@octokit/openapi`, kept in
//! `simulators/vendor/github/`) as the simulator's contract: requests are validated against it
//! before a route sees them, and tests check the simulator's responses against it.
//!
//! Guarantees: for an operation the description has, a query parameter it does not define, a
//! body field its request schema does not define, a missing required field, a value of the wrong
//! type or outside its enum, all get GitHub's `422 Validation Failed` with an `errors` array; a
//! body that is not JSON gets `400 Problems parsing JSON`. Every exchange under the REST routes
//! is recorded (request and response) for the conformance tests.
//!
//! Assumptions: the descriptions' schemas use the JSON-schema subset `extract.py` keeps
//! (`type`, `properties`, `required`, `items`, `enum`, `nullable`, `anyOf`/`oneOf`/`allOf`,
//! `additionalProperties`, `minItems`/`maxItems`); a request object without
//! `additionalProperties` is closed. Responses are checked leniently: extra keys are allowed,
//! required keys and types are not optional.

use std::sync::{Arc, OnceLock};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{Sim, lock};

/// The largest body the validator reads.
const MAX_BODY: usize = 1 << 20;

/// One of the GitHub REST descriptions kept as test data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Description {
    /// `api.github.com` (no enterprise runner operations).
    Dotcom,
    /// GitHub Enterprise Cloud (`ghec`): the simulator's own contract.
    Ghec,
    /// GitHub Enterprise Server 3.19.
    Ghes,
}

impl Description {
    /// Every description kept.
    pub const ALL: [Description; 3] = [Description::Dotcom, Description::Ghec, Description::Ghes];

    /// The parsed extract.
    pub fn document(self) -> &'static Value {
        static DOCS: [OnceLock<Value>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        let (i, text) = match self {
            Description::Dotcom => (0, include_str!("../../vendor/github/api.github.com.json")),
            Description::Ghec => (1, include_str!("../../vendor/github/ghec.json")),
            Description::Ghes => (2, include_str!("../../vendor/github/ghes-3.19.json")),
        };
        DOCS[i].get_or_init(|| serde_json::from_str(text).unwrap_or(Value::Null))
    }

    /// The operation serving `method path` (path without query), and its key
    /// (`"GET /orgs/{org}/actions/runners"`). Literal segments win over parameters.
    pub fn operation(self, method: &str, path: &str) -> Option<(&'static str, &'static Value)> {
        let ops = self.document().get("operations")?.as_object()?;
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        ops.iter()
            .filter_map(|(key, op)| {
                let (m, template) = key.split_once(' ')?;
                if !m.eq_ignore_ascii_case(method) {
                    return None;
                }
                let parts: Vec<&str> = template.trim_matches('/').split('/').collect();
                if parts.len() != segments.len() {
                    return None;
                }
                let mut literal = 0;
                for (t, s) in parts.iter().zip(&segments) {
                    if t.starts_with('{') {
                        if s.is_empty() {
                            return None;
                        }
                    } else if t == s {
                        literal += 1;
                    } else {
                        return None;
                    }
                }
                Some((literal, key.as_str(), op))
            })
            .max_by_key(|(literal, _, _)| *literal)
            .map(|(_, key, op)| (key, op))
    }
}

/// A request GitHub would refuse: the status and GitHub's error body.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub status: u16,
    pub body: Value,
}

/// One REST exchange as the simulator saw it.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub request_body: String,
    pub status: u16,
    pub response_body: String,
}

/// Validates a request against `description`. `Ok(None)`: the description has no such
/// operation (the router decides); `Ok(Some(key))`: valid.
pub fn validate_request(
    description: Description,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<Option<&'static str>, Rejection> {
    let Some((key, op)) = description.operation(method, path) else {
        return Ok(None);
    };
    let resource = resource_of(key);
    let mut errors = Vec::new();
    let params = op
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let query_param = |name: &str| {
        params
            .iter()
            .find(|p| p["in"] == "query" && p["name"] == name)
    };
    let pairs: Vec<(String, String)> = query
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_owned(), v.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    for (name, value) in &pairs {
        match query_param(name) {
            None => errors.push(validation_error(
                &resource,
                name,
                "invalid",
                "is not a parameter of this operation",
            )),
            Some(p) => {
                let schema = &p["schema"];
                let typed = match schema["type"].as_str() {
                    Some("integer") => value.parse::<i64>().map(Value::from).ok(),
                    Some("boolean") => value.parse::<bool>().map(Value::from).ok(),
                    _ => Some(Value::String(value.clone())),
                };
                let mut problems = Vec::new();
                match typed {
                    Some(v) => check(schema, &v, name, Strict::Request, &mut problems),
                    None => {
                        problems.push((name.clone(), "invalid", "has the wrong type".to_owned()))
                    }
                }
                for (field, code, message) in problems {
                    errors.push(validation_error(&resource, &field, code, &message));
                }
            }
        }
    }
    for p in params
        .iter()
        .filter(|p| p["in"] == "query" && p["required"] == true)
    {
        let name = p["name"].as_str().unwrap_or_default();
        if !pairs.iter().any(|(k, _)| k == name) {
            errors.push(validation_error(
                &resource,
                name,
                "missing_field",
                "is required",
            ));
        }
    }
    match op.get("requestBody") {
        Some(request_body) => {
            let text = std::str::from_utf8(body).unwrap_or("\u{fffd}").trim();
            let value = if text.is_empty() {
                (request_body["required"] == true).then(|| Value::Object(Map::new()))
            } else {
                Some(serde_json::from_str::<Value>(text).map_err(|_| Rejection {
                    status: 400,
                    body: json!({
                        "message": "Problems parsing JSON",
                        "documentation_url": "https://docs.github.com/rest",
                        "status": "400",
                    }),
                })?)
            };
            if let Some(value) = value {
                let mut problems = Vec::new();
                check(
                    &request_body["schema"],
                    &value,
                    "",
                    Strict::Request,
                    &mut problems,
                );
                for (field, code, message) in problems {
                    errors.push(validation_error(&resource, &field, code, &message));
                }
            }
        }
        None if !body.iter().all(u8::is_ascii_whitespace) => {
            errors.push(validation_error(
                &resource,
                "",
                "invalid",
                "this operation takes no body",
            ));
        }
        None => {}
    }
    if errors.is_empty() {
        return Ok(Some(key));
    }
    Err(Rejection {
        status: 422,
        body: json!({
            "message": "Validation Failed",
            "errors": errors,
            "documentation_url": "https://docs.github.com/rest",
            "status": "422",
        }),
    })
}

/// What in a response does not have the shape the description gives for `status`: missing
/// required keys and wrong types, one line each. Empty for an operation or status the
/// description does not cover with a JSON schema.
pub fn response_problems(
    description: Description,
    method: &str,
    path: &str,
    status: u16,
    body: &Value,
) -> Vec<String> {
    let Some((_, op)) = description.operation(method, path) else {
        return vec![format!(
            "{method} {path}: not an operation of the description"
        )];
    };
    let Some(schema) = op["responses"]
        .get(status.to_string())
        .filter(|s| !s.is_null())
    else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    check(schema, body, "", Strict::Response, &mut problems);
    problems
        .into_iter()
        .map(|(field, _, message)| format!("{method} {path} {status}: `{field}` {message}"))
        .collect()
}

/// The axum middleware: validates, then records the exchange.
pub(crate) async fn layer(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response();
    };
    let method = parts.method.clone();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let content_type = header_str(&parts.headers, header::CONTENT_TYPE.as_str());
    let checked = validate_request(
        Description::Ghec,
        method.as_str(),
        &path,
        query.as_deref(),
        &bytes,
    );
    let response = match checked {
        Err(rejection) => {
            let status = StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::BAD_REQUEST);
            (status, axum::Json(rejection.body)).into_response()
        }
        Ok(_) => {
            let request = Request::from_parts(parts, Body::from(bytes.clone()));
            next.run(request).await
        }
    };
    let (parts, body) = response.into_parts();
    let response_bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    if method != Method::OPTIONS {
        lock(&sim.exchanges).push(Exchange {
            method: method.to_string(),
            path,
            query,
            content_type,
            request_body: String::from_utf8_lossy(&bytes).into_owned(),
            status: parts.status.as_u16(),
            response_body: String::from_utf8_lossy(&response_bytes).into_owned(),
        });
    }
    Response::from_parts(parts, Body::from(response_bytes))
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

/// GitHub names the resource in a validation error; the operation's last literal segment
/// stands in for it (`Runner` for `…/runners/generate-jitconfig`).
fn resource_of(key: &str) -> String {
    let literal = key
        .split('/')
        .rev()
        .find(|s| !s.starts_with('{') && *s != "generate-jitconfig")
        .unwrap_or("resource");
    let mut name: String = literal.trim_end_matches('s').to_owned();
    if let Some(first) = name.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    name
}

fn validation_error(resource: &str, field: &str, code: &str, message: &str) -> Value {
    json!({"resource": resource, "field": field, "code": code, "message": format!("{field} {message}").trim().to_owned()})
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strict {
    /// Closed objects, as GitHub validates request bodies.
    Request,
    /// Open objects: only required keys and types.
    Response,
}

type Problem = (String, &'static str, String);

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

fn types_of(schema: &Value) -> Vec<&str> {
    match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn type_matches(ty: &str, value: &Value) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => true,
    }
}

/// Checks `value` against `schema`, pushing `(field, code, message)` problems.
fn check(schema: &Value, value: &Value, at: &str, strict: Strict, out: &mut Vec<Problem>) {
    if !schema.is_object() {
        return;
    }
    for (keyword, any) in [("anyOf", true), ("oneOf", true), ("allOf", false)] {
        let Some(subs) = schema[keyword].as_array() else {
            continue;
        };
        let results: Vec<Vec<Problem>> = subs
            .iter()
            .map(|s| {
                let mut p = Vec::new();
                check(s, value, at, strict, &mut p);
                p
            })
            .collect();
        if any {
            if !results.iter().any(Vec::is_empty) {
                out.push((
                    at.to_owned(),
                    "invalid",
                    format!("matches none of {keyword}"),
                ));
            }
        } else {
            out.extend(results.into_iter().flatten());
        }
    }
    let types = types_of(schema);
    if value.is_null() {
        if schema["nullable"] == true || types.is_empty() || types.contains(&"null") {
            return;
        }
        out.push((at.to_owned(), "invalid", "must not be null".to_owned()));
        return;
    }
    if !types.is_empty() && !types.iter().any(|t| type_matches(t, value)) {
        out.push((
            at.to_owned(),
            "invalid",
            format!("is not of type {}", types.join(" or ")),
        ));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        out.push((
            at.to_owned(),
            "invalid",
            format!("is not one of {}", Value::Array(allowed.clone())),
        ));
    }
    match value {
        Value::Object(map) => {
            let properties = schema["properties"].as_object();
            for required in schema["required"].as_array().into_iter().flatten() {
                if let Some(key) = required.as_str()
                    && !map.contains_key(key)
                {
                    out.push((join(at, key), "missing_field", "is missing".to_owned()));
                }
            }
            for (key, v) in map {
                match properties.and_then(|p| p.get(key)) {
                    Some(sub) => check(sub, v, &join(at, key), strict, out),
                    None => match &schema["additionalProperties"] {
                        Value::Object(_) => check(
                            &schema["additionalProperties"],
                            v,
                            &join(at, key),
                            strict,
                            out,
                        ),
                        Value::Bool(true) => {}
                        Value::Bool(false) => {
                            out.push((join(at, key), "invalid", "is not a known field".to_owned()))
                        }
                        _ if strict == Strict::Request && properties.is_some() => {
                            out.push((join(at, key), "invalid", "is not a known field".to_owned()));
                        }
                        _ => {}
                    },
                }
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if schema["minItems"].as_u64().is_some_and(|min| len < min) {
                out.push((
                    at.to_owned(),
                    "invalid",
                    format!("must have at least {} items", schema["minItems"]),
                ));
            }
            if schema["maxItems"].as_u64().is_some_and(|max| len > max) {
                out.push((
                    at.to_owned(),
                    "invalid",
                    format!("must have at most {} items", schema["maxItems"]),
                ));
            }
            for (i, item) in items.iter().enumerate() {
                check(&schema["items"], item, &format!("{at}[{i}]"), strict, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_description_parses_and_has_the_runner_operations() {
        for d in Description::ALL {
            let (key, _) = d
                .operation("POST", "/orgs/acme/actions/runners/generate-jitconfig")
                .unwrap();
            assert_eq!(key, "POST /orgs/{org}/actions/runners/generate-jitconfig");
        }
        assert!(
            Description::Dotcom
                .operation("GET", "/enterprises/e/actions/runners")
                .is_none()
        );
        let (_, op) = Description::Ghec
            .operation("GET", "/enterprises/e/actions/runners")
            .unwrap();
        assert_eq!(op["enabledForGitHubApps"], false);
    }

    #[test]
    fn jit_body_is_held_to_the_schema() {
        let path = "/orgs/acme/actions/runners/generate-jitconfig";
        let ok = br#"{"name":"r","runner_group_id":1,"labels":["a"],"work_folder":"_work"}"#;
        assert!(validate_request(Description::Ghec, "POST", path, None, ok).is_ok());
        let reject = |body: &[u8]| {
            validate_request(Description::Ghec, "POST", path, None, body).unwrap_err()
        };
        let missing = reject(br#"{"runner_group_id":1,"labels":["a"]}"#);
        assert_eq!(missing.status, 422);
        assert_eq!(missing.body["message"], "Validation Failed");
        assert_eq!(missing.body["errors"][0]["code"], "missing_field");
        assert_eq!(missing.body["errors"][0]["field"], "name");
        let unknown =
            reject(br#"{"name":"r","runner_group_id":1,"labels":["a"],"ephemeral":true}"#);
        assert_eq!(unknown.body["errors"][0]["field"], "ephemeral");
        let typed = reject(br#"{"name":"r","runner_group_id":"1","labels":["a"]}"#);
        assert_eq!(typed.body["errors"][0]["field"], "runner_group_id");
        assert_eq!(
            reject(br#"{"name":"r","runner_group_id":1,"labels":[]}"#).status,
            422
        );
        assert_eq!(reject(b"{").status, 400);
    }

    #[test]
    fn query_parameters_are_known_and_enums_enforced() {
        let path = "/repos/acme/app/actions/runs";
        let ok = validate_request(
            Description::Ghec,
            "GET",
            path,
            Some("status=queued&per_page=100&page=2"),
            b"",
        );
        assert!(ok.is_ok());
        let bad_enum =
            validate_request(Description::Ghec, "GET", path, Some("status=sleeping"), b"")
                .unwrap_err();
        assert_eq!(bad_enum.body["errors"][0]["field"], "status");
        let unknown = validate_request(Description::Ghec, "GET", path, Some("state=queued"), b"")
            .unwrap_err();
        assert_eq!(
            (unknown.status, unknown.body["errors"][0]["field"].as_str()),
            (422, Some("state"))
        );
        let not_int = validate_request(Description::Ghec, "GET", path, Some("per_page=many"), b"")
            .unwrap_err();
        assert_eq!(not_int.body["errors"][0]["field"], "per_page");
    }

    #[test]
    fn responses_are_checked_for_required_keys_and_types() {
        let path = "/orgs/acme/actions/runners/1";
        let runner = json!({"id": 1, "name": "r", "os": "Linux", "status": "online", "busy": false,
            "labels": [{"id": 1, "name": "self-hosted", "type": "read-only"}]});
        assert!(response_problems(Description::Ghec, "GET", path, 200, &runner).is_empty());
        let mut broken = runner.clone();
        broken["busy"] = json!("no");
        broken.as_object_mut().unwrap().remove("os");
        let problems = response_problems(Description::Ghec, "GET", path, 200, &broken);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
