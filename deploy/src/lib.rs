//! Checks of the deployment artifacts in `deploy/`: the Dockerfiles, the runner entrypoint,
//! the Helm chart, the compose file and the systemd units. Nothing here ships; the crate owns
//! the helpers its tests share.
//!
//! There is no Docker engine, Kubernetes or Helm where the tests run, so they check what can
//! be checked without them: every YAML file parses; the chart's values and templates agree;
//! the configuration the chart and the compose file hand to `shr` passes the product's own
//! parser; the units pass `systemd-analyze verify`; the entrypoint behaves as documented.
//!
//! Guarantees: [`template::Templates`] renders only the part of Go templates and Helm's
//! functions this chart uses, and refuses anything else with an error naming it, so a chart
//! change the tests do not understand fails them instead of passing.

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

pub mod chart;
pub mod template;

/// The `deploy/` folder.
pub fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    deploy_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(deploy_dir)
}

/// The Helm chart's folder.
pub fn chart_dir() -> PathBuf {
    deploy_dir().join("helm").join("serverless-hosted-runner")
}

/// Every file under `dir` (recursively) whose name ends with one of `suffixes`, sorted.
/// Skips `target/` and hidden folders.
pub fn files_with_suffix(dir: &Path, suffixes: &[&str]) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    stack.push(path);
                }
            } else if suffixes.iter().any(|s| name.ends_with(s)) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Parses a YAML file into its documents; the error names the file.
pub fn load_yaml(path: &Path) -> Result<Vec<Yaml>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    YamlLoader::load_from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The value at a dotted path (`webhook.tls.existingSecret`), if every step is a map key.
pub fn get<'a>(yaml: &'a Yaml, path: &str) -> Option<&'a Yaml> {
    path.split('.').try_fold(yaml, |node, key| match node {
        Yaml::Hash(map) => map.get(&Yaml::String(key.to_owned())),
        _ => None,
    })
}

/// The dotted paths of every leaf: a scalar, a sequence or an empty map.
pub fn leaf_paths(yaml: &Yaml) -> Vec<String> {
    fn walk(node: &Yaml, prefix: &str, out: &mut Vec<String>) {
        match node {
            Yaml::Hash(map) if !map.is_empty() => {
                for (key, value) in map {
                    let key = match key {
                        Yaml::String(s) => s.clone(),
                        other => format!("{other:?}"),
                    };
                    let path = if prefix.is_empty() {
                        key
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(value, &path, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let mut out = Vec::new();
    walk(yaml, "", &mut out);
    out
}

/// A YAML value as JSON, as Helm loads values: every number becomes a float.
pub fn to_json(yaml: &Yaml) -> serde_json::Value {
    use serde_json::Value;
    match yaml {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        Yaml::Integer(i) => Value::from(*i as f64),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        other => format!("{other:?}"),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Yaml::Alias(_) | Yaml::Null | Yaml::BadValue => Value::Null,
    }
}

/// The dotted paths after every occurrence of `marker` in `text`
/// (`references(t, ".Values.")` on `{{ .Values.a.b | x }}` gives `a.b`).
pub fn references(text: &str, marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        rest = &rest[at + marker.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(rest.len());
        let path = rest[..end].trim_end_matches('.');
        if !path.is_empty() {
            out.push(path.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_paths_and_get_walk_nested_maps() {
        let docs = YamlLoader::load_from_str("a:\n  b: 1\n  c: {}\n  d: [x]\ne: ''\n").unwrap();
        let mut leaves = leaf_paths(&docs[0]);
        leaves.sort();
        assert_eq!(leaves, ["a.b", "a.c", "a.d", "e"]);
        assert_eq!(get(&docs[0], "a.b"), Some(&Yaml::Integer(1)));
        assert_eq!(get(&docs[0], "a.x"), None);
        assert_eq!(get(&docs[0], "e.f"), None);
    }

    #[test]
    fn references_stop_at_the_end_of_the_path() {
        let refs = references(
            "{{ .Values.a.b | x }} {{- if $.Values.c }}{{ .Values.d.}}",
            ".Values.",
        );
        assert_eq!(refs, ["a.b", "c", "d"]);
    }
}
