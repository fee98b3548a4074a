#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every YAML file in deploy/ parses, and the compose file says what the distributed mode
//! needs: NATS with JetStream on a volume, and `shr` with its config, secrets and state volume.

use deploy::{deploy_dir, files_with_suffix, get, load_yaml};
use yaml_rust2::Yaml;

#[test]
fn every_yaml_file_parses_except_helm_templates() {
    let files = files_with_suffix(&deploy_dir(), &[".yaml", ".yml"]).unwrap();
    let mut parsed = 0;
    for path in &files {
        // Helm templates are Go templates that render to YAML, not YAML themselves.
        if path.components().any(|c| c.as_os_str() == "templates") {
            continue;
        }
        let docs = load_yaml(path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!docs.is_empty(), "{} is empty", path.display());
        assert!(
            docs.iter().all(|d| matches!(d, Yaml::Hash(_))),
            "{}: every document is a map",
            path.display()
        );
        parsed += 1;
    }
    // compose.yaml, Chart.yaml, values.yaml at least.
    assert!(parsed >= 3, "only {parsed} YAML files found in {files:?}");
}

#[test]
fn compose_runs_nats_with_jetstream_and_shr_with_config_secrets_and_volumes() {
    let compose = &load_yaml(&deploy_dir().join("compose/compose.yaml")).unwrap()[0];
    let nats = get(compose, "services.nats").expect("a nats service");
    let command: Vec<&str> = get(nats, "command")
        .and_then(Yaml::as_vec)
        .expect("nats command")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(command.contains(&"--jetstream"), "{command:?}");
    let store = command
        .iter()
        .position(|a| *a == "--store_dir")
        .map(|i| command[i + 1])
        .expect("--store_dir");
    let nats_volumes: Vec<&str> = get(nats, "volumes")
        .and_then(Yaml::as_vec)
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(
        nats_volumes
            .iter()
            .any(|v| v.ends_with(&format!(":{store}"))),
        "the JetStream store {store} is on a volume: {nats_volumes:?}"
    );
    assert!(get(nats, "healthcheck.test").is_some());

    let shr = get(compose, "services.shr").expect("a shr service");
    assert_eq!(
        get(shr, "build.dockerfile").and_then(Yaml::as_str),
        Some("deploy/Dockerfile")
    );
    assert_eq!(
        get(shr, "depends_on.nats.condition").and_then(Yaml::as_str),
        Some("service_healthy")
    );
    assert_eq!(
        get(shr, "configs")
            .and_then(|c| c[0]["target"].as_str())
            .expect("config target"),
        "/etc/shr/shr.toml"
    );
    assert_eq!(get(shr, "read_only").and_then(Yaml::as_bool), Some(true));
    // Every secret and volume the service names is declared at the top level.
    for (list, top) in [("secrets", "secrets"), ("volumes", "volumes")] {
        for item in get(shr, list).and_then(Yaml::as_vec).unwrap() {
            let name = item.as_str().unwrap().split(':').next().unwrap();
            assert!(
                get(compose, &format!("{top}.{name}")).is_some(),
                "{list}: {name} is not declared"
            );
        }
    }
    for item in get(nats, "volumes").and_then(Yaml::as_vec).unwrap() {
        let name = item.as_str().unwrap().split(':').next().unwrap();
        assert!(get(compose, &format!("volumes.{name}")).is_some(), "{name}");
    }
}
