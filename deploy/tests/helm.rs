#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Helm chart: Chart.yaml and values.yaml parse; every `.Values.x` the templates use
//! exists and every value is used. The chart is then rendered (by `deploy::template`, there
//! being no Helm here) under default and alternative values: every manifest must parse as
//! YAML and hang together (selectors, volumes, named ports, probes), and the config file each
//! Deployment gets must pass the product's own parser and place the right actor.

use std::collections::{BTreeMap, BTreeSet};

use deploy::chart::{Rendered, render};
use deploy::{chart_dir, files_with_suffix, get, leaf_paths, load_yaml, references};
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

/// The templates' files, by file name.
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

fn default_values() -> Value {
    deploy::chart::default_values().unwrap()
}

fn render_chart(values: &Value) -> Result<Rendered, String> {
    render(values, RELEASE)
}

fn names(list: &Yaml) -> BTreeSet<String> {
    list.as_vec()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks that hold for every rendering: each Deployment's selector, volumes, ports, probes
/// and config file fit together, and the Service reaches the webhook's port.
fn check_manifests(rendered: &Rendered, values: &Value) {
    let configs = rendered.config_files();
    assert_eq!(rendered.of_kind("ConfigMap").len(), 1);
    let configmap_name = rendered.of_kind("ConfigMap")[0]["metadata"]["name"]
        .as_str()
        .unwrap();
    assert_eq!(rendered.of_kind("Deployment").len(), 3);
    for component in ["webhook", "poller", "scheduler"] {
        let deployment = rendered.deployment(component).unwrap();
        assert_eq!(deployment["apiVersion"].as_str(), Some("apps/v1"));
        let spec = &deployment["spec"];
        assert_eq!(
            spec["replicas"].as_i64().map(|r| r as f64),
            values[component]["replicas"].as_f64(),
            "{component}"
        );
        let pod_labels = spec["template"]["metadata"]["labels"].as_hash().unwrap();
        for (k, v) in spec["selector"]["matchLabels"].as_hash().unwrap() {
            assert_eq!(pod_labels.get(k), Some(v), "{component}: selector {k:?}");
        }
        let pod = &spec["template"]["spec"];
        let containers = pod["containers"].as_vec().unwrap();
        assert_eq!(containers.len(), 1);
        let container = &containers[0];
        let volumes = names(&pod["volumes"]);
        let mounts = names(&container["volumeMounts"]);
        assert!(
            mounts.is_subset(&volumes),
            "{component}: {mounts:?} vs {volumes:?}"
        );
        let ports = names(&container["ports"]);
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"].as_str(),
            Some("/healthz")
        );
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"].as_str(),
            Some("/readyz")
        );
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            let port = container[probe]["httpGet"]["port"].as_str().unwrap();
            assert!(ports.contains(port), "{component}: {probe} port {port}");
        }
        let metrics_port = container["ports"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str() == Some("metrics"))
            .unwrap()["containerPort"]
            .as_i64()
            .unwrap();
        let annotations = &spec["template"]["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"].as_str(), Some("true"));
        assert_eq!(
            annotations["prometheus.io/port"].as_str(),
            Some(metrics_port.to_string().as_str())
        );
        assert_eq!(
            annotations["checksum/config"].as_str().map(str::len),
            Some(64)
        );
        // The config file is this component's key of the chart's ConfigMap.
        let config_mount = container["volumeMounts"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"].as_str() == Some("/etc/shr/shr.toml"))
            .unwrap();
        let key = config_mount["subPath"].as_str().unwrap();
        assert_eq!(key, format!("{component}.toml"));
        assert!(configs.contains_key(key));
        let config_volume = pod["volumes"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|v| v["name"] == config_mount["name"])
            .unwrap();
        assert_eq!(
            config_volume["configMap"]["name"].as_str(),
            Some(configmap_name)
        );
        let secrets_volume = pod["volumes"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|v| v["name"].as_str() == Some("secrets"))
            .unwrap();
        assert_eq!(
            secrets_volume["secret"]["secretName"].as_str(),
            values["secrets"]["existingSecret"].as_str()
        );
        // Secret files: readable by the pod's group (fsGroup) and nobody else. The mode is
        // decimal in the template: YAML 1.1 (Kubernetes) and 1.2 read a leading 0 differently.
        let fs_group = pod["securityContext"]["fsGroup"].as_i64();
        assert!(fs_group.is_some(), "{component}: fsGroup");
        for volume in pod["volumes"].as_vec().unwrap() {
            if let Some(mode) = volume["secret"]["defaultMode"].as_i64() {
                assert_eq!(mode, 0o440, "{component}: {:?}", volume["name"]);
            }
        }
        assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
        assert_eq!(
            container["securityContext"]["readOnlyRootFilesystem"].as_bool(),
            Some(true)
        );
        assert_eq!(
            container["args"]
                .as_vec()
                .unwrap()
                .last()
                .and_then(Yaml::as_str),
            Some("/etc/shr/shr.toml")
        );
    }
    // The Service selects the webhook pods and targets a port they name.
    let services = rendered.of_kind("Service");
    assert_eq!(services.len(), 1);
    let webhook = rendered.deployment("webhook").unwrap();
    let pod_labels = webhook["spec"]["template"]["metadata"]["labels"]
        .as_hash()
        .unwrap();
    for (k, v) in services[0]["spec"]["selector"].as_hash().unwrap() {
        assert_eq!(pod_labels.get(k), Some(v), "service selector {k:?}");
    }
    let target = services[0]["spec"]["ports"][0]["targetPort"]
        .as_str()
        .unwrap();
    let webhook_ports = names(&webhook["spec"]["template"]["spec"]["containers"][0]["ports"]);
    assert!(
        webhook_ports.contains(target),
        "{target} not in {webhook_ports:?}"
    );
    assert!(rendered.notes.contains("webhook x"), "{}", rendered.notes);
}

/// Parses each Deployment's config file with the product's parser and checks what the chart
/// put in it; returns them by component.
fn check_configs(rendered: &Rendered, values: &Value) -> BTreeMap<String, Config> {
    let mut out = BTreeMap::new();
    for (key, text) in rendered.config_files() {
        let component = key.trim_end_matches(".toml").to_owned();
        let config = Config::parse(&text, &format!("helm:{key}"), &clouds::Registry)
            .unwrap_or_else(|e| panic!("{e}\n--- {key}:\n{text}"));
        let expected: BTreeSet<Actor> = Actor::ALL
            .into_iter()
            .filter(|a| a.name() == component)
            .collect();
        assert_eq!(config.controller.actors, expected, "{key}");
        assert_eq!(
            config.controller.id,
            values["controller"]["id"].as_str().unwrap()
        );
        let metrics = config.controller.metrics_listen.expect("metrics_listen");
        assert_eq!(
            Some(f64::from(metrics.port())),
            values["metrics"]["port"].as_f64()
        );
        assert_eq!(
            Some(f64::from(config.webhook.listen.port())),
            values["webhook"]["port"].as_f64()
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
        out.insert(component, config);
    }
    assert_eq!(out.len(), 3);
    out
}

#[test]
fn the_chart_renders_with_default_values_into_manifests_that_fit_together() {
    let values = default_values();
    let rendered = render_chart(&values).unwrap_or_else(|e| panic!("{e}"));
    check_manifests(&rendered, &values);
    assert_eq!(rendered.of_kind("PodDisruptionBudget").len(), 3);
    let configs = check_configs(&rendered, &values);
    for (component, config) in &configs {
        assert_eq!(
            config.controller.nats_url.as_ref().map(|u| u.as_str()),
            Some(format!("nats://{RELEASE}-nats:4222").as_str()),
            "{component}"
        );
        // The bundled NATS is a 3-node cluster: every stream and bucket on 3 replicas.
        assert_eq!(config.controller.nats_replicas, 3, "{component}");
        // Defaults: no NATS credentials, plain HTTP, the default webhook secret.
        assert!(config.controller.nats_nkey_seed.is_none(), "{component}");
        assert!(config.webhook.tls.is_none(), "{component}");
        assert!(config.webhook.secret.is_some(), "{component}");
    }
}

#[test]
fn the_chart_takes_external_nats_seeds_and_tls_when_the_values_ask() {
    let mut values = default_values();
    values["nats"]["enabled"] = Value::Bool(false);
    values["externalNats"]["url"] = Value::from("nats://nats.shr.internal:4222");
    values["controller"]["natsReplicas"] = Value::from(1.0);
    values["natsAuth"]["existingSecret"] = Value::from("shr-nats");
    values["webhook"]["tls"]["existingSecret"] = Value::from("shr-webhook-tls");
    values["webhook"]["port"] = Value::from(8443.0);
    values["webhook"]["path"] = Value::from("/github/hook");
    values["podDisruptionBudget"]["enabled"] = Value::Bool(false);
    let rendered = render_chart(&values).unwrap_or_else(|e| panic!("{e}"));
    check_manifests(&rendered, &values);
    assert!(rendered.of_kind("PodDisruptionBudget").is_empty());
    let configs = check_configs(&rendered, &values);
    for (component, config) in &configs {
        assert_eq!(
            config.controller.nats_url.as_ref().map(|u| u.as_str()),
            Some("nats://nats.shr.internal:4222"),
            "{component}"
        );
        assert_eq!(config.controller.nats_replicas, 1, "{component}");
        let identity = if component == "webhook" {
            "webhook"
        } else {
            "central"
        };
        let seed = format!("{:?}", config.controller.nats_nkey_seed);
        assert!(
            seed.contains(&format!("/etc/shr/nats/{identity}.nk")),
            "{component}: {seed}"
        );
        // The pod mounts exactly that seed at that path.
        let pod = &rendered.deployment(component).unwrap()["spec"]["template"]["spec"];
        let seed_volume = pod["volumes"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|v| v["name"].as_str() == Some("nats-seed"))
            .expect("a nats-seed volume");
        assert_eq!(
            seed_volume["secret"]["secretName"].as_str(),
            Some("shr-nats")
        );
        let items = seed_volume["secret"]["items"].as_vec().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(
            items[0]["key"].as_str(),
            Some(format!("{identity}.nk").as_str())
        );
        assert_eq!(
            items[0]["path"].as_str(),
            Some(format!("{identity}.nk").as_str())
        );
        let tls_mounted = names(&pod["volumes"]).contains("tls");
        assert_eq!(tls_mounted, component == "webhook", "{component}");
        let tls = config.webhook.tls.as_ref().expect("tls");
        assert_eq!(tls.cert, std::path::Path::new("/etc/shr/tls/tls.crt"));
    }
}

#[test]
fn the_chart_refuses_values_it_cannot_serve() {
    let mut values = default_values();
    values["nats"]["enabled"] = Value::Bool(false);
    let err = render_chart(&values).expect_err("no NATS at all");
    assert!(err.contains("externalNats.url is required"), "{err}");

    let mut values = default_values();
    values["secrets"]["existingSecret"] = Value::from("");
    let err = render_chart(&values).expect_err("no secrets");
    assert!(err.contains("secrets.existingSecret is required"), "{err}");
}

#[test]
fn a_broken_body_is_caught_by_the_product_parser() {
    // The rendering is only as good as the parser behind it: a bad value must fail.
    let mut values = default_values();
    let body = values["config"]["body"]
        .as_str()
        .unwrap()
        .replace("scope = \"org\"", "scope = \"galaxy\"");
    values["config"]["body"] = Value::from(body);
    let rendered = render_chart(&values).unwrap();
    let (key, text) = rendered.config_files().into_iter().next().unwrap();
    let errors = Config::parse(&text, &key, &clouds::Registry).unwrap_err();
    assert!(errors.to_string().contains("scope"), "{errors}");
}
