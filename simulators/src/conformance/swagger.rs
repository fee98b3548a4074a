//! ARM JSON bodies against the ContainerInstance 2025-09-01 swagger definitions
//! (`vendor/azure/containerinstance-2025-09-01.json`).
//!
//! Follows `$ref` and `allOf`; a definition marked `x-shr-open` accepts anything. In a
//! request, `readOnly` properties are ignored as ARM does (neither required nor rejected).
//! In an answer, `x-ms-secret` properties may be absent (ARM never returns them).

use std::sync::OnceLock;

use serde_json::Value;

use super::{Violation, ViolationKind};

const SPEC: &str = include_str!("../../vendor/azure/containerinstance-2025-09-01.json");

/// The api-version the definitions describe.
pub const API_VERSION: &str = "2025-09-01";

/// The definition a `containerGroups` PUT body must match.
pub const CONTAINER_GROUP: &str = "ContainerGroup";
/// The definition of a `containerGroups` list answer.
pub const CONTAINER_GROUP_LIST: &str = "ContainerGroupListResult";

/// Whether a body is sent to ARM or returned by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

fn spec() -> &'static Value {
    static SPEC_FILE: OnceLock<Value> = OnceLock::new();
    SPEC_FILE.get_or_init(|| match serde_json::from_str(SPEC) {
        Ok(file) => file,
        Err(error) => {
            panic!("vendor/azure/containerinstance-2025-09-01.json does not parse: {error}")
        }
    })
}

/// Checks `body` against definition `name`.
pub fn check(name: &str, body: &Value, direction: Direction) -> Vec<Violation> {
    let mut out = Vec::new();
    let schema = serde_json::json!({ "$ref": format!("#/definitions/{name}") });
    walk("", &schema, body, direction, &mut out);
    out
}

/// The ARM error body for `violations`: (`code`, message). ARM answers an unknown or
/// mistyped property with 400 `InvalidRequestContent`, a missing one with 400
/// `MissingRequiredProperty`-style wording under the same code family.
pub fn vendor_error(violations: &[Violation]) -> Option<(&'static str, String)> {
    let first = violations.first()?;
    Some(match first.kind {
        ViolationKind::Missing => (
            "InvalidRequestContent",
            format!(
                "The request content was invalid and could not be deserialized: 'Required property '{}' not found in JSON.'",
                first.path
            ),
        ),
        ViolationKind::Unknown => (
            "InvalidRequestContent",
            format!(
                "The request content was invalid and could not be deserialized: 'Could not find member '{}' on object.'",
                first.path
            ),
        ),
        _ => (
            "InvalidRequestContent",
            format!(
                "The request content was invalid and could not be deserialized: '{}: {}'",
                first.path, first.message
            ),
        ),
    })
}

fn resolve(schema: &Value) -> &Value {
    let mut schema = schema;
    while let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/definitions/");
        match spec()["definitions"].get(name) {
            Some(next) => schema = next,
            None => break,
        }
    }
    schema
}

/// The properties, required names and additionalProperties of an object schema, merging
/// `allOf` parts and its own.
fn object_parts(schema: &Value) -> (serde_json::Map<String, Value>, Vec<String>, Option<Value>) {
    let mut props = serde_json::Map::new();
    let mut required = Vec::new();
    let mut additional = None;
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (p, r, a) = object_parts(resolve(part));
        props.extend(p);
        required.extend(r);
        additional = additional.or(a);
    }
    if let Some(p) = schema["properties"].as_object() {
        props.extend(p.clone());
    }
    required.extend(
        schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_owned)),
    );
    if let Some(a) = schema.get("additionalProperties") {
        additional = Some(a.clone());
    }
    (props, required, additional)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(path: &str, schema: &Value, value: &Value, direction: Direction, out: &mut Vec<Violation>) {
    let schema = resolve(schema);
    if schema.get("x-shr-open").is_some() {
        return;
    }
    let declared = schema["type"].as_str();
    let is_object = declared == Some("object")
        || schema.get("properties").is_some()
        || schema.get("allOf").is_some();
    if is_object {
        let Some(map) = value.as_object() else {
            out.push(Violation::new(
                path,
                ViolationKind::WrongType,
                "must be an object",
            ));
            return;
        };
        let (props, required, additional) = object_parts(schema);
        for name in &required {
            let flag = |f: &str| {
                props
                    .get(name)
                    .is_some_and(|p| resolve(p)[f] == true || p[f] == true)
            };
            // ARM ignores read-only properties in requests and never returns secrets.
            let exempt = match direction {
                Direction::Request => flag("readOnly"),
                Direction::Response => flag("x-ms-secret"),
            };
            if !map.contains_key(name) && !exempt {
                out.push(Violation::new(
                    join(path, name),
                    ViolationKind::Missing,
                    format!("{name} is required"),
                ));
            }
        }
        for (k, v) in map {
            match props.get(k) {
                Some(p) => walk(&join(path, k), p, v, direction, out),
                None => match &additional {
                    Some(a) if a.is_object() => walk(&join(path, k), a, v, direction, out),
                    Some(Value::Bool(true)) => {}
                    _ if props.is_empty() && additional.is_none() && declared.is_none() => {}
                    _ => out.push(Violation::new(
                        join(path, k),
                        ViolationKind::Unknown,
                        format!("{k} is not a property here"),
                    )),
                },
            }
        }
        return;
    }
    match declared {
        Some("array") => {
            let Some(items) = value.as_array() else {
                out.push(Violation::new(
                    path,
                    ViolationKind::WrongType,
                    "must be an array",
                ));
                return;
            };
            for (i, item) in items.iter().enumerate() {
                walk(
                    &format!("{path}[{i}]"),
                    &schema["items"],
                    item,
                    direction,
                    out,
                );
            }
        }
        Some("string") => match value.as_str() {
            None => out.push(Violation::new(
                path,
                ViolationKind::WrongType,
                "must be a string",
            )),
            Some(s) => {
                if let Some(allowed) = schema["enum"].as_array()
                    && !allowed.iter().any(|a| a.as_str() == Some(s))
                {
                    out.push(Violation::new(
                        path,
                        ViolationKind::NotAllowed,
                        "is not one of the allowed values",
                    ));
                }
            }
        },
        Some("boolean") if !value.is_boolean() => {
            out.push(Violation::new(
                path,
                ViolationKind::WrongType,
                "must be a boolean",
            ));
        }
        Some("number") if !value.is_number() => {
            out.push(Violation::new(
                path,
                ViolationKind::WrongType,
                "must be a number",
            ));
        }
        Some("integer") if !(value.is_i64() || value.is_u64()) => {
            out.push(Violation::new(
                path,
                ViolationKind::WrongType,
                "must be an integer",
            ));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn example(name: &str) -> Value {
        let text = match name {
            "create" => {
                include_str!("../../vendor/azure/examples/ContainerGroupsCreateOrUpdate.json")
            }
            "get" => include_str!("../../vendor/azure/examples/ContainerGroupsGet_Succeeded.json"),
            "list" => include_str!("../../vendor/azure/examples/ContainerGroupsList.json"),
            _ => include_str!("../../vendor/azure/examples/ContainerGroupsDelete.json"),
        };
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn the_vendor_examples_match_the_definitions() {
        let create = example("create");
        assert_eq!(
            check(
                CONTAINER_GROUP,
                &create["parameters"]["containerGroup"],
                Direction::Request
            ),
            vec![]
        );
        for code in ["200", "201"] {
            assert_eq!(
                check(
                    CONTAINER_GROUP,
                    &create["responses"][code]["body"],
                    Direction::Response
                ),
                vec![]
            );
        }
        assert_eq!(
            check(
                CONTAINER_GROUP,
                &example("get")["responses"]["200"]["body"],
                Direction::Response
            ),
            vec![]
        );
        assert_eq!(
            check(
                CONTAINER_GROUP_LIST,
                &example("list")["responses"]["200"]["body"],
                Direction::Response
            ),
            vec![]
        );
    }

    #[test]
    fn unknown_missing_enum_and_type_problems_are_found_and_read_only_is_ignored() {
        let body = json!({
            "location": "westeurope",
            "name": "ignored-read-only",
            "properties": {
                "osType": "Plan9",
                "restartPolicy": "Never",
                "containers": [{"name": "c", "properties": {
                    "image": "i",
                    "resources": {"requests": {"cpu": "1"}},
                    "securityContext": {"privileged": true, "superuser": true},
                }}],
            },
        });
        let v = check(CONTAINER_GROUP, &body, Direction::Request);
        let got: Vec<_> = v.iter().map(|v| (v.path.as_str(), v.kind)).collect();
        assert_eq!(
            got,
            vec![
                (
                    "properties.containers[0].properties.resources.requests.memoryInGB",
                    ViolationKind::Missing
                ),
                (
                    "properties.containers[0].properties.resources.requests.cpu",
                    ViolationKind::WrongType
                ),
                (
                    "properties.containers[0].properties.securityContext.superuser",
                    ViolationKind::Unknown
                ),
                ("properties.osType", ViolationKind::NotAllowed),
            ]
        );
        assert_eq!(vendor_error(&v).map(|e| e.0), Some("InvalidRequestContent"));
    }

    #[test]
    fn list_items_require_os_type_and_describe_no_instance_view() {
        let item = json!({"value": [{"properties": {"containers": [], "instanceView": {"state": "Running"}}}]});
        let got: Vec<_> = check(CONTAINER_GROUP_LIST, &item, Direction::Response)
            .into_iter()
            .map(|v| (v.path, v.kind))
            .collect();
        assert!(got.contains(&("value[0].properties.osType".into(), ViolationKind::Missing)));
        assert!(got.contains(&(
            "value[0].properties.instanceView".into(),
            ViolationKind::Unknown
        )));
    }
}
