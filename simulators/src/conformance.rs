//! Requests and answers held to the vendors' published API descriptions.
//!
//! The descriptions live under `simulators/vendor/` (see the README in each vendor folder for
//! source, version and license) and are compiled in. Each submodule checks one kind:
//! - [`eci`]: an Alibaba ECI RPC request's flat parameters against the ECI 2018-08-08 metadata;
//! - [`swagger`]: an ARM JSON body against the ContainerInstance 2025-09-01 swagger schema;
//! - [`discovery`]: a Google JSON body and query against a discovery document (Cloud Run v2,
//!   Batch v1, Secret Manager v1).
//!
//! A check returns every [`Violation`] it finds; an empty list means the vendor would accept
//! the shape. What a vendor checks beyond its published description (quotas, name formats,
//! the values of fields) stays in each simulator.

pub mod discovery;
pub mod eci;
pub mod swagger;

/// What is wrong with one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationKind {
    /// The description has no such parameter or property.
    Unknown,
    /// A required parameter or property is absent.
    Missing,
    /// The value has the wrong type (or, for int64 in an answer, is not a string).
    WrongType,
    /// The value is not one of the allowed values.
    NotAllowed,
    /// The value is longer than allowed.
    TooLong,
}

/// One way a request or answer departs from the vendor's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where: an ECI parameter name, or a JSON path such as `properties.containers[0].name`.
    pub path: String,
    pub kind: ViolationKind,
    /// A human explanation, without the value (values may be secrets).
    pub message: String,
}

impl Violation {
    fn new(path: impl Into<String>, kind: ViolationKind, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Whether `actual` has every key `example` has, at every depth, with a value of the same
/// JSON type (arrays are compared element by element against the example's first element).
/// Returns the paths that differ. Used to hold simulator answers to the vendors' examples.
pub fn shape_differences(example: &serde_json::Value, actual: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    shape_walk("", example, actual, &mut out);
    out
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

fn shape_walk(
    path: &str,
    example: &serde_json::Value,
    actual: &serde_json::Value,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    if json_type(example) != json_type(actual) {
        out.push(format!(
            "{path}: {} in the example, {} here",
            json_type(example),
            json_type(actual)
        ));
        return;
    }
    match (example, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match a.get(k) {
                    Some(av) => shape_walk(&p, ev, av, out),
                    None => out.push(format!("{p}: missing")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let Some(first) = e.first() {
                for (i, av) in a.iter().enumerate() {
                    shape_walk(&format!("{path}[{i}]"), first, av, out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shape_differences_reports_missing_keys_and_type_changes() {
        let example = json!({"a": 1, "b": {"c": "x"}, "l": [{"k": true}]});
        assert!(
            shape_differences(&example, &json!({"a": 2, "b": {"c": "y", "d": 1}, "l": []}))
                .is_empty()
        );
        let diffs = shape_differences(&example, &json!({"a": "2", "b": {}, "l": [{"k": 1}]}));
        assert_eq!(diffs.len(), 3, "{diffs:?}");
        assert!(diffs[0].starts_with("a: number"));
        assert_eq!(diffs[1], "b.c: missing");
        assert!(diffs[2].starts_with("l[0].k: boolean"));
    }
}
