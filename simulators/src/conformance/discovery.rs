//! Google JSON bodies and query parameters against discovery documents
//! (`vendor/google/{run.v2,batch.v1,secretmanager.v1}.json`).
//!
//! int64 and uint64 fields (`"type": "string", "format": "int64"`): in a request, the proto3
//! JSON mapping accepts a number or a decimal string; in an answer Google always writes a
//! string, so an answer with a number is a violation. Output-only fields sent in a request
//! are ignored by Google and pass here.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::{Violation, ViolationKind};

/// A bundled discovery extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    RunV2,
    BatchV1,
    SecretManagerV1,
}

/// Whether a body is sent to Google or returned by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

/// Query parameters every Google API accepts (the discovery document's top-level
/// `parameters`), which method descriptions leave out.
pub const STANDARD_QUERY: [&str; 11] = [
    "$.xgafv",
    "access_token",
    "alt",
    "callback",
    "fields",
    "key",
    "oauth_token",
    "prettyPrint",
    "quotaUser",
    "uploadType",
    "upload_protocol",
];

impl Api {
    fn text(self) -> &'static str {
        match self {
            Api::RunV2 => include_str!("../../vendor/google/run.v2.json"),
            Api::BatchV1 => include_str!("../../vendor/google/batch.v1.json"),
            Api::SecretManagerV1 => include_str!("../../vendor/google/secretmanager.v1.json"),
        }
    }

    fn doc(self) -> &'static Value {
        static DOCS: OnceLock<HashMap<Api, Value>> = OnceLock::new();
        let docs = DOCS.get_or_init(|| {
            [Api::RunV2, Api::BatchV1, Api::SecretManagerV1]
                .into_iter()
                .map(|api| match serde_json::from_str(api.text()) {
                    Ok(doc) => (api, doc),
                    Err(error) => {
                        panic!("vendor/google extract for {api:?} does not parse: {error}")
                    }
                })
                .collect()
        });
        &docs[&self]
    }

    /// The discovery document's `revision`.
    pub fn revision(self) -> &'static str {
        self.doc()["revision"].as_str().unwrap_or_default()
    }

    /// The schema of method `method`'s request body (e.g. `projects.locations.jobs.create`).
    pub fn request_schema(self, method: &str) -> Option<&'static str> {
        self.doc()["methods"][method]["request"]["$ref"].as_str()
    }

    /// The schema of method `method`'s answer.
    pub fn response_schema(self, method: &str) -> Option<&'static str> {
        self.doc()["methods"][method]["response"]["$ref"].as_str()
    }

    /// Checks a call to `method`: its query parameters and, if it takes one, its body.
    pub fn check_request(
        self,
        method: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Vec<Violation> {
        let described = &self.doc()["methods"][method];
        if described.is_null() {
            return vec![Violation::new(
                method,
                ViolationKind::Unknown,
                format!("method {method} is not described"),
            )];
        }
        let mut out = Vec::new();
        for (name, value) in query {
            let p = &described["parameters"][name.as_str()];
            if p["location"] == "query" {
                if let Some(problem) =
                    scalar_problem(p, &Value::String(value.clone()), Direction::Request)
                {
                    out.push(Violation::new(name.as_str(), problem.0, problem.1));
                }
            } else if !STANDARD_QUERY.contains(&name.as_str()) {
                out.push(Violation::new(
                    name.as_str(),
                    ViolationKind::Unknown,
                    format!("Cannot bind query parameter. Field '{name}' could not be found in request message."),
                ));
            }
        }
        if let (Some(schema), Some(body)) = (self.request_schema(method), body) {
            out.extend(self.check(schema, body, Direction::Request));
        }
        out
    }

    /// Checks `value` against schema `name`.
    pub fn check(self, name: &str, value: &Value, direction: Direction) -> Vec<Violation> {
        let mut out = Vec::new();
        self.walk(
            "",
            name,
            &serde_json::json!({ "$ref": name }),
            value,
            direction,
            &mut out,
        );
        out
    }

    fn walk(
        self,
        path: &str,
        owner: &str,
        schema: &Value,
        value: &Value,
        direction: Direction,
        out: &mut Vec<Violation>,
    ) {
        let (owner, schema) = match schema["$ref"].as_str() {
            Some(r) => (r, &self.doc()["schemas"][r]),
            None => (owner, schema),
        };
        match schema["type"].as_str() {
            Some("object") => {
                let Some(map) = value.as_object() else {
                    out.push(Violation::new(
                        path,
                        ViolationKind::WrongType,
                        "must be an object",
                    ));
                    return;
                };
                for (k, v) in map {
                    let p = join(path, k);
                    if let Some(prop) = schema["properties"].get(k) {
                        self.value_set(&p, owner, k, v, out);
                        self.walk(&p, owner, prop, v, direction, out);
                    } else if let Some(additional) = schema.get("additionalProperties") {
                        self.walk(&p, owner, additional, v, direction, out);
                    } else {
                        out.push(Violation::new(
                            p,
                            ViolationKind::Unknown,
                            format!("Invalid JSON payload received. Unknown name \"{k}\": Cannot find field."),
                        ));
                    }
                }
            }
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
                    self.walk(
                        &format!("{path}[{i}]"),
                        owner,
                        &schema["items"],
                        item,
                        direction,
                        out,
                    );
                }
            }
            _ => {
                if let Some(problem) = scalar_problem(schema, value, direction) {
                    out.push(Violation::new(path, problem.0, problem.1));
                }
            }
        }
    }

    /// Rewrites `value` (of schema `name`) the way Google writes an answer: int64 and uint64
    /// numbers become decimal strings.
    pub fn to_wire(self, name: &str, value: &mut Value) {
        self.wire_walk(&serde_json::json!({ "$ref": name }), value);
    }

    fn wire_walk(self, schema: &Value, value: &mut Value) {
        let schema = match schema["$ref"].as_str() {
            Some(r) => &self.doc()["schemas"][r],
            None => schema,
        };
        match (schema["type"].as_str(), value) {
            (Some("object"), Value::Object(map)) => {
                for (k, v) in map.iter_mut() {
                    if let Some(prop) = schema["properties"].get(k.as_str()) {
                        self.wire_walk(prop, v);
                    } else if let Some(additional) = schema.get("additionalProperties") {
                        self.wire_walk(additional, v);
                    }
                }
            }
            (Some("array"), Value::Array(items)) => {
                for item in items {
                    self.wire_walk(&schema["items"], item);
                }
            }
            (Some("string"), v @ Value::Number(_))
                if matches!(schema["format"].as_str(), Some("int64" | "uint64")) =>
            {
                *v = Value::String(v.to_string());
            }
            _ => {}
        }
    }

    /// A closed value set the document states in prose (`x-shr-value-sets`).
    fn value_set(
        self,
        path: &str,
        owner: &str,
        prop: &str,
        value: &Value,
        out: &mut Vec<Violation>,
    ) {
        let Some(sets) = self.doc()["x-shr-value-sets"].as_object() else {
            return;
        };
        let prefix = format!("{owner}.{prop}.");
        for (key, set) in sets {
            let Some(field) = key.strip_prefix(&prefix) else {
                continue;
            };
            if let Some(v) = value.get(field).and_then(Value::as_str)
                && !set["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|a| a.as_str() == Some(v))
            {
                out.push(Violation::new(
                    format!("{path}.{field}"),
                    ViolationKind::NotAllowed,
                    set["quote"]
                        .as_str()
                        .unwrap_or("value not allowed")
                        .to_owned(),
                ));
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn scalar_problem(
    schema: &Value,
    value: &Value,
    direction: Direction,
) -> Option<(ViolationKind, String)> {
    let format = schema["format"].as_str();
    match (schema["type"].as_str(), format) {
        (Some("string"), Some("int64" | "uint64")) => {
            let ok = match value {
                Value::String(s) => s.parse::<i128>().is_ok(),
                Value::Number(n) => direction == Direction::Request && (n.is_i64() || n.is_u64()),
                _ => false,
            };
            if !ok {
                return Some((
                    ViolationKind::WrongType,
                    match direction {
                        Direction::Request => {
                            "must be an integer or a decimal string (int64)".into()
                        }
                        Direction::Response => "int64 must be written as a string".into(),
                    },
                ));
            }
        }
        (Some("string"), _) => {
            let Some(s) = value.as_str() else {
                return Some((ViolationKind::WrongType, "must be a string".into()));
            };
            if let Some(allowed) = schema["enum"].as_array()
                && !allowed.iter().any(|a| a.as_str() == Some(s))
            {
                return Some((
                    ViolationKind::NotAllowed,
                    "is not one of the enum values".into(),
                ));
            }
        }
        (Some("integer"), _) => {
            let ok = match value {
                Value::Number(n) => n.is_i64() || n.is_u64(),
                Value::String(s) => direction == Direction::Request && s.parse::<i64>().is_ok(),
                _ => false,
            };
            if !ok {
                return Some((ViolationKind::WrongType, "must be an integer".into()));
            }
        }
        (Some("number"), _) if !value.is_number() => {
            return Some((ViolationKind::WrongType, "must be a number".into()));
        }
        (Some("boolean"), _) => {
            let ok = value.is_boolean()
                || (direction == Direction::Request
                    && matches!(value.as_str(), Some("true" | "false")));
            if !ok {
                return Some((ViolationKind::WrongType, "must be a boolean".into()));
            }
        }
        _ => {}
    }
    None
}

/// The Google error for `violations`: HTTP 400 with status `INVALID_ARGUMENT` and this message.
pub fn vendor_error(violations: &[Violation]) -> Option<String> {
    let first = violations.first()?;
    Some(format!("{} (at '{}')", first.message, first.path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn batch_create_takes_job_id_not_job_underscore_id() {
        let create = "projects.locations.jobs.create";
        assert_eq!(
            Api::BatchV1.check_request(create, &q(&[("jobId", "j")]), None),
            vec![]
        );
        let v = Api::BatchV1.check_request(create, &q(&[("job_id", "j")]), None);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, ViolationKind::Unknown);
        assert!(vendor_error(&v).unwrap().contains("job_id"));
    }

    #[test]
    fn cloud_run_cpu_is_one_of_1_2_4_8() {
        let job = |cpu: &str| {
            json!({"template": {"template": {"containers": [{
                "image": "i", "resources": {"limits": {"cpu": cpu, "memory": "4Gi"}}}]}}})
        };
        assert_eq!(
            Api::RunV2.check("GoogleCloudRunV2Job", &job("4"), Direction::Request),
            vec![]
        );
        let v = Api::RunV2.check("GoogleCloudRunV2Job", &job("6"), Direction::Request);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            v[0].path,
            "template.template.containers[0].resources.limits.cpu"
        );
        assert_eq!(v[0].kind, ViolationKind::NotAllowed);
    }

    #[test]
    fn int64_is_a_string_in_answers_and_either_in_requests() {
        let job = json!({"taskGroups": [{"taskSpec": {"computeResource": {"cpuMilli": 2000}}}]});
        assert_eq!(Api::BatchV1.check("Job", &job, Direction::Request), vec![]);
        let v = Api::BatchV1.check("Job", &job, Direction::Response);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, ViolationKind::WrongType);
        let mut job = job;
        Api::BatchV1.to_wire("Job", &mut job);
        assert_eq!(
            job["taskGroups"][0]["taskSpec"]["computeResource"]["cpuMilli"],
            "2000"
        );
        assert_eq!(Api::BatchV1.check("Job", &job, Direction::Response), vec![]);
    }

    #[test]
    fn unknown_fields_and_enums_are_rejected() {
        let job = json!({"template": {"template": {"executionEnvironment": "GEN9", "bogus": 1}}});
        let kinds: Vec<_> = Api::RunV2
            .check("GoogleCloudRunV2Job", &job, Direction::Request)
            .into_iter()
            .map(|v| v.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![ViolationKind::Unknown, ViolationKind::NotAllowed]
        );
        assert!(
            Api::SecretManagerV1
                .request_schema("projects.secrets.addVersion")
                .is_some()
        );
        assert!(!Api::RunV2.revision().is_empty());
    }
}
