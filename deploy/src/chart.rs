//! The Helm chart rendered without Helm: `templates/` through [`crate::template`], with the
//! chart's metadata and a release name, as `helm template` would lay them out.

use std::collections::BTreeMap;

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use crate::template::Templates;
use crate::{chart_dir, files_with_suffix, get, load_yaml, to_json};

/// The rendered chart: every manifest, and NOTES.txt.
#[derive(Debug)]
pub struct Rendered {
    /// Every non-empty YAML document the templates produced.
    pub docs: Vec<Yaml>,
    /// The rendered NOTES.txt.
    pub notes: String,
}

impl Rendered {
    /// The manifests of one kind.
    pub fn of_kind(&self, kind: &str) -> Vec<&Yaml> {
        self.docs
            .iter()
            .filter(|d| d["kind"].as_str() == Some(kind))
            .collect()
    }

    /// The Deployment whose `app.kubernetes.io/component` label is `component`.
    pub fn deployment(&self, component: &str) -> Option<&Yaml> {
        self.of_kind("Deployment").into_iter().find(|d| {
            d["metadata"]["labels"]["app.kubernetes.io/component"].as_str() == Some(component)
        })
    }

    /// The chart's config files (the ConfigMap's data), by key.
    pub fn config_files(&self) -> BTreeMap<String, String> {
        self.of_kind("ConfigMap")
            .into_iter()
            .filter_map(|c| get(c, "data").and_then(Yaml::as_hash))
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
            .collect()
    }
}

/// The chart's values.yaml, as Helm loads it.
pub fn default_values() -> Result<Value, String> {
    let docs = load_yaml(&chart_dir().join("values.yaml"))?;
    docs.first()
        .map(to_json)
        .ok_or_else(|| "values.yaml is empty".to_owned())
}

/// Renders every template with `values`, as release `release`.
pub fn render(values: &Value, release: &str) -> Result<Rendered, String> {
    let dir = chart_dir();
    let chart = load_yaml(&dir.join("Chart.yaml"))?
        .first()
        .map(to_json)
        .ok_or("Chart.yaml is empty")?;
    let chart_name = chart["name"].as_str().ok_or("Chart.yaml has no name")?;
    let base = format!("{chart_name}/templates");
    let files = files_with_suffix(&dir.join("templates"), &[".yaml", ".tpl", ".txt"])
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    // Helm names each file by its path in the chart: `include (print $.Template.BasePath
    // "/configmap.yaml") $` looks it up so.
    let mut named = Vec::new();
    for path in files {
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = format!("{base}/{file}");
        named.push((file, name, text));
    }
    let templates = Templates::parse(named.iter().map(|(_, n, t)| (n.as_str(), t.as_str())))?;
    let root = serde_json::json!({
        "Values": values,
        "Release": {"Name": release, "Namespace": "default", "Service": "Helm"},
        "Chart": {
            "Name": chart["name"],
            "Version": chart["version"],
            "AppVersion": chart["appVersion"],
        },
        "Template": {"BasePath": base},
    });
    let mut docs = Vec::new();
    let mut notes = String::new();
    for (file, name, _) in &named {
        if file.starts_with('_') {
            continue;
        }
        let text = templates.render(name, &root)?;
        if file == "NOTES.txt" {
            notes = text;
            continue;
        }
        let parsed = YamlLoader::load_from_str(&text)
            .map_err(|e| format!("{file} does not render to YAML: {e}\n{text}"))?;
        docs.extend(parsed.into_iter().filter(|d| !d.is_null()));
    }
    Ok(Rendered { docs, notes })
}

/// Renders as `helm template` prints: the documents, each after a `---` and its source.
pub fn render_text(values: &Value, release: &str) -> Result<String, String> {
    let rendered = render(values, release)?;
    let mut out = String::new();
    for doc in &rendered.docs {
        let mut text = String::new();
        yaml_rust2::YamlEmitter::new(&mut text)
            .dump(doc)
            .map_err(|e| format!("{e:?}"))?;
        out.push_str(&text);
        out.push('\n');
    }
    Ok(out)
}

/// Merges `overlay` into `base`, maps key by key (as `helm -f` does).
pub fn merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (k, v) in overlay {
                merge(base.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (base, overlay) => *base = overlay.clone(),
    }
}
