#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Helm chart: Chart.yaml and values.yaml parse; every `.Values.x` the templates use
//! exists and every value is used; and the config file the chart writes for each Deployment,
//! rendered from values.yaml, passes the product's own parser and places the right actor.

use std::collections::{BTreeMap, BTreeSet};

use deploy::template::{Scope, render_define};
use deploy::{chart_dir, files_with_suffix, get, leaf_paths, load_yaml, references, to_json};
use registration::{Actor, Config};
use serde_json::Value;
use yaml_rust2::Yaml;

/// The release name the rendering tests pretend to install as.
const RELEASE: &str = "shr";

fn values() -> Yaml {
    load_yaml(&chart_dir().join("values.yaml"))
        .unwrap()
        .remove(0)
}

fn chart() -> Yaml {
    load_yaml(&chart_dir().join("Chart.yaml"))
        .unwrap()
        .remove(0)
}

fn template_texts() -> Vec<(String, String)> {
    files_with_suffix(&chart_dir().join("templates"), &[".yaml", ".tpl", ".txt"])
        .unwrap()
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// The chart's dependencies by name, with their condition.
fn dependencies() -> BTreeMap<String, Option<String>> {
    get(&chart(), "dependencies")
        .and_then(Yaml::as_vec)
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_owned(),
                d["condition"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// Every values path the templates read: `.Values.a.b`, and `$c.x` inside the per-component
/// range, which reads `.Values.<component>.x` for each component the range lists.
fn referenced_paths() -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    for (name, text) in template_texts() {
        paths.extend(references(&text, ".Values."));
        if let Some(line) = text.lines().find(|l| l.contains("range $name := list")) {
            let components: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
            assert!(!components.is_empty(), "{name}: {line}");
            assert!(text.contains("$c := index $.Values $name"), "{name}");
            for component in components {
                for path in references(&text, "$c.") {
                    paths.insert(format!("{component}.{path}"));
                }
            }
        }
    }
    paths
}

#[test]
fn chart_yaml_names_the_chart_and_takes_nats_as_a_conditional_dependency() {
    let chart = chart();
    assert_eq!(get(&chart, "apiVersion").and_then(Yaml::as_str), Some("v2"));
    assert_eq!(
        get(&chart, "name").and_then(Yaml::as_str),
        chart_dir().file_name().and_then(|n| n.to_str())
    );
    let version = get(&chart, "version").and_then(Yaml::as_str).unwrap();
    assert_eq!(version.split('.').count(), 3, "semver: {version}");
    assert!(get(&chart, "appVersion").and_then(Yaml::as_str).is_some());
    let nats = get(&chart, "dependencies")
        .and_then(Yaml::as_vec)
        .unwrap()
        .iter()
        .find(|d| d["name"].as_str() == Some("nats"))
        .expect("the official NATS chart as a dependency");
    assert_eq!(nats["condition"].as_str(), Some("nats.enabled"));
    assert!(nats["repository"].as_str().unwrap().starts_with("https://"));
    assert!(nats["version"].as_str().is_some());
    assert_eq!(get(&values(), "nats.enabled"), Some(&Yaml::Boolean(true)));
}

#[test]
fn every_value_the_templates_read_exists_in_values_yaml() {
    let values = values();
    let missing: Vec<String> = referenced_paths()
        .into_iter()
        .filter(|p| get(&values, p).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "read by templates, absent from values.yaml: {missing:?}"
    );
}

#[test]
fn every_value_in_values_yaml_is_used_by_a_template_or_a_dependency() {
    let values = values();
    let referenced = referenced_paths();
    let dependencies = dependencies();
    // A dependency's condition counts as a use.
    let conditions: BTreeSet<String> = dependencies.values().flatten().cloned().collect();
    let unused: Vec<String> = leaf_paths(&values)
        .into_iter()
        .filter(|leaf| {
            let used = referenced
                .iter()
                .chain(&conditions)
                .any(|r| leaf == r || leaf.starts_with(&format!("{r}.")));
            // The rest of a dependency's block is that chart's own values.
            let top = leaf.split('.').next().unwrap_or_default();
            !used && !dependencies.contains_key(top)
        })
        .collect();
    assert!(
        unused.is_empty(),
        "in values.yaml but used nowhere: {unused:?}"
    );
}

#[test]
fn deployments_probe_health_and_readiness_and_advertise_metrics() {
    let texts: BTreeMap<String, String> = template_texts().into_iter().collect();
    let deployments = &texts["deployments.yaml"];
    for needle in [
        "path: /healthz",
        "path: /readyz",
        "prometheus.io/scrape: \"true\"",
        "prometheus.io/port: {{ $.Values.metrics.port | quote }}",
        "subPath: {{ $name }}.toml",
        "secretName: {{ required",
        "runAsNonRoot",
    ] {
        let in_values = needle == "runAsNonRoot"
            && get(&values(), "podSecurityContext.runAsNonRoot") == Some(&Yaml::Boolean(true));
        assert!(deployments.contains(needle) || in_values, "{needle}");
    }
    for component in ["webhook", "poller", "scheduler"] {
        assert!(
            texts["configmap.yaml"].contains(&format!("{component}.toml: |")),
            "{component}"
        );
        assert_eq!(
            get(&values(), &format!("{component}.replicas")),
            Some(&Yaml::Integer(2)),
            "{component} runs 2 replicas by default"
        );
    }
    assert!(texts["service.yaml"].contains("targetPort: webhook"));
}

/// The `(actors, identity)` of each `include "shr.configToml"` in configmap.yaml.
fn config_includes() -> Vec<(String, Vec<String>, String)> {
    let texts: BTreeMap<String, String> = template_texts().into_iter().collect();
    let configmap = &texts["configmap.yaml"];
    let mut found = Vec::new();
    let mut key = String::new();
    for line in configmap.lines() {
        if let Some(k) = line.trim().strip_suffix(": |") {
            key = k.to_owned();
        }
        if let Some(at) = line.find("(dict \"root\" . \"actors\" (list ") {
            let rest = &line[at..];
            let actors_part = &rest[rest.find("(list ").unwrap() + 6..rest.find(')').unwrap()];
            let actors = actors_part
                .split('"')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect();
            let identity = rest
                .split("\"identity\" \"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            found.push((key.clone(), actors, identity.to_owned()));
        }
    }
    assert_eq!(found.len(), 3, "{found:?}");
    found
}

/// Renders the config file of one Deployment the way the chart does.
fn render_config(values: &Value, actors: &[String], identity: &str) -> String {
    let helpers = std::fs::read_to_string(chart_dir().join("templates/_helpers.tpl")).unwrap();
    // shr.natsUrl: the NATS chart's service (`<release>-nats` for a release whose name does not
    // contain "nats" and no fullnameOverride), or externalNats.url.
    let nats_url = if values["nats"]["enabled"] == Value::Bool(true) {
        assert_eq!(values["nats"]["fullnameOverride"], Value::from(""));
        Value::from(format!("nats://{RELEASE}-nats:4222"))
    } else {
        values["externalNats"]["url"].clone()
    };
    let include = move |name: &str| (name == "shr.natsUrl").then(|| nats_url.clone());
    let scope = Scope {
        values,
        locals: BTreeMap::from([
            ("actors".to_owned(), Value::from(actors.to_vec())),
            ("identity".to_owned(), Value::from(identity)),
        ]),
        include: &include,
    };
    render_define(&helpers, "shr.configToml", &scope).unwrap_or_else(|e| panic!("{e}"))
}

fn actor_named(name: &str) -> Actor {
    Actor::ALL.into_iter().find(|a| a.name() == name).unwrap()
}

fn check_rendered(values: &Value) -> Vec<(String, Config)> {
    let mut configs = Vec::new();
    for (key, actors, identity) in config_includes() {
        let text = render_config(values, &actors, &identity);
        let config = Config::parse(&text, &format!("helm:{key}"), &clouds::Registry)
            .unwrap_or_else(|e| panic!("{e}\n--- {key}:\n{text}"));
        let expected: BTreeSet<Actor> = actors.iter().map(|a| actor_named(a)).collect();
        assert_eq!(config.controller.actors, expected, "{key}");
        assert_eq!(
            config.controller.id,
            values["controller"]["id"].as_str().unwrap()
        );
        let metrics = config.controller.metrics_listen.expect("metrics_listen");
        assert_eq!(Value::from(metrics.port()), values["metrics"]["port"]);
        assert_eq!(
            Value::from(config.webhook.listen.port()),
            values["webhook"]["port"]
        );
        assert_eq!(
            config.webhook.path,
            values["webhook"]["path"].as_str().unwrap()
        );
        assert_eq!(
            config.controller.work_dir.as_deref(),
            Some(std::path::Path::new("/var/lib/shr"))
        );
        assert!(!config.registrations().is_empty(), "{key}");
        configs.push((key, config));
    }
    configs
}

#[test]
fn the_config_each_deployment_gets_passes_the_product_parser_with_default_values() {
    let values = to_json(&values());
    let configs = check_rendered(&values);
    for (key, config) in &configs {
        assert_eq!(
            config.controller.nats_url.as_ref().map(|u| u.as_str()),
            Some(format!("nats://{RELEASE}-nats:4222").as_str()),
            "{key}"
        );
        // Defaults: no NATS credentials, plain HTTP.
        assert!(config.controller.nats_nkey_seed.is_none(), "{key}");
        assert!(config.webhook.tls.is_none(), "{key}");
        assert!(config.webhook.secret.is_some(), "{key}");
    }
}

#[test]
fn the_config_takes_external_nats_seeds_and_tls_when_the_values_ask() {
    let mut values = to_json(&values());
    values["nats"]["enabled"] = Value::Bool(false);
    values["externalNats"]["url"] = Value::from("nats://nats.shr.internal:4222");
    values["natsAuth"]["existingSecret"] = Value::from("shr-nats");
    values["webhook"]["tls"]["existingSecret"] = Value::from("shr-webhook-tls");
    values["webhook"]["port"] = Value::from(8443);
    values["webhook"]["path"] = Value::from("/github/hook");
    let configs = check_rendered(&values);
    for (key, config) in &configs {
        assert_eq!(
            config.controller.nats_url.as_ref().map(|u| u.as_str()),
            Some("nats://nats.shr.internal:4222"),
            "{key}"
        );
        let seed = format!("{:?}", config.controller.nats_nkey_seed);
        let identity = if key == "webhook.toml" {
            "webhook"
        } else {
            "central"
        };
        assert!(
            seed.contains(&format!("/etc/shr/nats/{identity}.nk")),
            "{key}: {seed}"
        );
        let tls = config.webhook.tls.as_ref().expect("tls");
        assert_eq!(tls.cert, std::path::Path::new("/etc/shr/tls/tls.crt"));
    }
    // And the Deployment mounts each pod's own seed, under the same name.
    let deployments =
        std::fs::read_to_string(chart_dir().join("templates/deployments.yaml")).unwrap();
    assert!(deployments.contains("ternary \"webhook\" \"central\" (eq $name \"webhook\")"));
    assert!(deployments.contains("mountPath: /etc/shr/nats"));
    assert!(deployments.contains("mountPath: /etc/shr/tls"));
}

#[test]
fn a_broken_body_is_caught_by_the_product_parser() {
    // The rendering is only as good as the parser behind it: a bad value must fail.
    let mut values = to_json(&values());
    let body = values["config"]["body"]
        .as_str()
        .unwrap()
        .replace("scope = \"org\"", "scope = \"galaxy\"");
    values["config"]["body"] = Value::from(body);
    let (key, actors, identity) = config_includes().remove(0);
    let text = render_config(&values, &actors, &identity);
    let errors = Config::parse(&text, &key, &clouds::Registry).unwrap_err();
    assert!(errors.to_string().contains("scope"), "{errors}");
}
