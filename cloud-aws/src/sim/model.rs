//! The botocore service models the simulator is held to (extracts in `cloud-aws/vendor/`),
//! and a validator of JSON 1.1 bodies against their shapes: unknown members, required
//! members, types, enums, string and list lengths, integer ranges, and the tag pattern.

use serde_json::Value;

/// The ECS extract (botocore `ecs/2014-11-13/service-2.json`).
pub const ECS_MODEL: &str = include_str!("../../vendor/ecs-2014-11-13.json");
/// The Secrets Manager extract (botocore `secretsmanager/2017-10-17/service-2.json`).
pub const SECRETS_MODEL: &str = include_str!("../../vendor/secretsmanager-2017-10-17.json");

/// The tag pattern of both services' tag keys/values (ECS spells it out; Secrets Manager
/// documents the same set).
const TAG_PATTERN: &str = r"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)";

/// One loaded service model.
#[derive(Debug)]
pub struct Model {
    doc: Value,
}

impl Model {
    /// Parses an extract.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        Ok(Self {
            doc: serde_json::from_str(text)?,
        })
    }

    /// `metadata.targetPrefix`.
    pub fn target_prefix(&self) -> &str {
        self.doc["metadata"]["targetPrefix"].as_str().unwrap_or("")
    }

    /// `metadata.signingName`.
    pub fn signing_name(&self) -> &str {
        self.doc["metadata"]["signingName"].as_str().unwrap_or("")
    }

    /// Whether the extract has `operation`.
    pub fn has_operation(&self, operation: &str) -> bool {
        self.doc["operations"].get(operation).is_some()
    }

    /// The errors `operation` declares.
    pub fn errors(&self, operation: &str) -> Vec<String> {
        self.doc["operations"][operation]["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["shape"].as_str().map(str::to_owned))
            .collect()
    }

    /// Checks `body` against `operation`'s input shape.
    pub fn validate_input(&self, operation: &str, body: &Value) -> Result<(), String> {
        self.validate_part(operation, "input", body)
    }

    /// Checks `body` against `operation`'s output shape.
    pub fn validate_output(&self, operation: &str, body: &Value) -> Result<(), String> {
        self.validate_part(operation, "output", body)
    }

    fn validate_part(&self, operation: &str, part: &str, body: &Value) -> Result<(), String> {
        let op = &self.doc["operations"][operation];
        if op.is_null() {
            return Err(format!("unknown operation {operation}"));
        }
        match op[part]["shape"].as_str() {
            Some(shape) => self.check(shape, body, part),
            None => Ok(()),
        }
    }

    fn check(&self, shape_name: &str, v: &Value, path: &str) -> Result<(), String> {
        let shape = &self.doc["shapes"][shape_name];
        let kind = shape["type"].as_str().unwrap_or("");
        let num = |k: &str| shape[k].as_f64();
        match kind {
            "structure" => {
                let obj = v
                    .as_object()
                    .ok_or_else(|| format!("{path}: expected an object ({shape_name})"))?;
                let members = shape["members"].as_object().cloned().unwrap_or_default();
                for (k, val) in obj {
                    let m = members
                        .get(k)
                        .ok_or_else(|| format!("{path}: unknown member {k} in {shape_name}"))?;
                    if val.is_null() {
                        continue;
                    }
                    let inner = m["shape"].as_str().unwrap_or("");
                    self.check(inner, val, &format!("{path}.{k}"))?;
                }
                for r in shape["required"].as_array().into_iter().flatten() {
                    let r = r.as_str().unwrap_or("");
                    if obj.get(r).is_none_or(Value::is_null) {
                        return Err(format!("{path}: missing required member {r}"));
                    }
                }
                Ok(())
            }
            "list" => {
                let items = v
                    .as_array()
                    .ok_or_else(|| format!("{path}: expected a list ({shape_name})"))?;
                let n = items.len() as f64;
                if num("min").is_some_and(|m| n < m) || num("max").is_some_and(|m| n > m) {
                    return Err(format!(
                        "{path}: list of {} is outside {shape_name}'s length bounds",
                        items.len()
                    ));
                }
                let member = shape["member"]["shape"].as_str().unwrap_or("");
                for (i, item) in items.iter().enumerate() {
                    self.check(member, item, &format!("{path}[{i}]"))?;
                }
                Ok(())
            }
            "map" => {
                let obj = v
                    .as_object()
                    .ok_or_else(|| format!("{path}: expected a map ({shape_name})"))?;
                let key = shape["key"]["shape"].as_str().unwrap_or("");
                let value = shape["value"]["shape"].as_str().unwrap_or("");
                for (k, val) in obj {
                    self.check(key, &Value::String(k.clone()), &format!("{path}<key>"))?;
                    self.check(value, val, &format!("{path}.{k}"))?;
                }
                Ok(())
            }
            "string" => {
                let s = v
                    .as_str()
                    .ok_or_else(|| format!("{path}: expected a string ({shape_name})"))?;
                let n = s.chars().count() as f64;
                if num("min").is_some_and(|m| n < m) || num("max").is_some_and(|m| n > m) {
                    return Err(format!(
                        "{path}: length {n} is outside {shape_name}'s bounds"
                    ));
                }
                if let Some(values) = shape["enum"].as_array()
                    && !values.iter().any(|e| e.as_str() == Some(s))
                {
                    return Err(format!("{path}: {s:?} is not a valid {shape_name}"));
                }
                if shape["pattern"].as_str() == Some(TAG_PATTERN)
                    && !s
                        .chars()
                        .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c))
                {
                    return Err(format!("{path}: {s:?} does not match {TAG_PATTERN}"));
                }
                Ok(())
            }
            "integer" | "long" => {
                let n = v
                    .as_i64()
                    .ok_or_else(|| format!("{path}: expected an integer ({shape_name})"))?
                    as f64;
                if num("min").is_some_and(|m| n < m) || num("max").is_some_and(|m| n > m) {
                    return Err(format!("{path}: {n} is outside {shape_name}'s range"));
                }
                Ok(())
            }
            "boolean" => v
                .is_boolean()
                .then_some(())
                .ok_or_else(|| format!("{path}: expected a boolean ({shape_name})")),
            "double" | "float" | "timestamp" => v
                .is_number()
                .then_some(())
                .ok_or_else(|| format!("{path}: expected a number ({shape_name})")),
            "blob" => v
                .is_string()
                .then_some(())
                .ok_or_else(|| format!("{path}: expected base64 ({shape_name})")),
            other => Err(format!(
                "{path}: shape {shape_name} has unknown type {other:?}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extracts_load_and_validate() {
        let ecs = Model::parse(ECS_MODEL).unwrap();
        assert_eq!(ecs.target_prefix(), "AmazonEC2ContainerServiceV20141113");
        assert_eq!(ecs.signing_name(), "ecs");
        assert!(
            ecs.validate_input("RunTask", &json!({"taskDefinition": "x"}))
                .is_ok()
        );
        let missing = ecs.validate_input("RunTask", &json!({"cluster": "c"}));
        assert!(missing.unwrap_err().contains("taskDefinition"));
        let unknown = ecs.validate_input("RunTask", &json!({"taskDefinition": "x", "image": "y"}));
        assert!(unknown.unwrap_err().contains("unknown member image"));
        let bad_enum = ecs.validate_input(
            "RunTask",
            &json!({"taskDefinition": "x", "launchType": "LAMBDA"}),
        );
        assert!(bad_enum.unwrap_err().contains("LaunchType"));
        let bad_tag = ecs.validate_input(
            "RunTask",
            &json!({"taskDefinition": "x", "tags": [{"key": "a", "value": "x,y"}]}),
        );
        assert!(bad_tag.is_err());
        let wrong_type =
            ecs.validate_input("RunTask", &json!({"taskDefinition": "x", "count": "1"}));
        assert!(wrong_type.is_err());
        let sm = Model::parse(SECRETS_MODEL).unwrap();
        assert_eq!(sm.target_prefix(), "secretsmanager");
        let short_token = sm.validate_input(
            "CreateSecret",
            &json!({"Name": "n", "ClientRequestToken": "short"}),
        );
        assert!(short_token.is_err());
        assert!(
            sm.errors("DeleteSecret")
                .contains(&"ResourceNotFoundException".to_owned())
        );
    }
}
