#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The configuration files shipped with the compose file and the tenant agent unit pass the
//! product's own parser (with the clouds' registry), place the actors their artifact says,
//! and name only secrets the artifact actually provides.

use deploy::{deploy_dir, get, load_yaml};
use registration::{Actor, Config};
use yaml_rust2::Yaml;

fn load(relative: &str) -> (Config, String) {
    let path = deploy_dir().join(relative);
    let text = std::fs::read_to_string(&path).unwrap();
    let config =
        Config::parse(&text, relative, &clouds::Registry).unwrap_or_else(|e| panic!("{e}"));
    (config, text)
}

#[test]
fn compose_config_runs_every_actor_against_the_compose_nats_with_mounted_secrets() {
    let (config, text) = load("compose/shr.toml");
    for actor in Actor::ALL {
        assert!(config.runs(actor), "{actor:?}");
    }
    assert_eq!(
        config.controller.nats_url.as_ref().map(|u| u.as_str()),
        Some("nats://nats:4222")
    );
    assert_eq!(
        config.controller.work_dir.as_deref(),
        Some(std::path::Path::new("/var/lib/shr"))
    );

    let compose = &load_yaml(&deploy_dir().join("compose/compose.yaml")).unwrap()[0];
    // The nats service name and the shr volume match the config.
    assert!(get(compose, "services.nats").is_some());
    let volumes: Vec<&str> = get(compose, "services.shr.volumes")
        .and_then(Yaml::as_vec)
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(
        volumes.iter().any(|v| v.ends_with(":/var/lib/shr")),
        "{volumes:?}"
    );
    // Ports published match the listen addresses.
    let ports: Vec<&str> = get(compose, "services.shr.ports")
        .and_then(Yaml::as_vec)
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    let webhook_port = config.webhook.listen.port().to_string();
    let metrics_port = config.controller.metrics_listen.unwrap().port().to_string();
    for port in [webhook_port, metrics_port] {
        assert!(
            ports.iter().any(|p| p.ends_with(&format!(":{port}"))),
            "{port} not in {ports:?}"
        );
    }
    // Every file:/run/secrets/NAME is a secret of the shr service.
    let mounted: Vec<&str> = get(compose, "services.shr.secrets")
        .and_then(Yaml::as_vec)
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    let named: Vec<&str> = text
        .split('"')
        .filter_map(|s| s.strip_prefix("file:/run/secrets/"))
        .collect();
    assert!(named.len() >= 3, "{named:?}");
    for name in named {
        assert!(
            mounted.contains(&name),
            "{name} is not mounted: {mounted:?}"
        );
    }
}

#[test]
fn agent_config_runs_only_provisioner_and_reaper_for_its_tenant_with_unit_credentials() {
    let (config, text) = load("systemd/agent-acme.toml");
    assert!(config.runs(Actor::Provisioner) && config.runs(Actor::Reaper));
    for actor in [Actor::Webhook, Actor::Poller, Actor::Scheduler] {
        assert!(!config.runs(actor), "{actor:?}");
    }
    assert!(config.serves_tenant("acme"));
    assert!(config.controller.nats_nkey_seed.is_some());
    let unit = std::fs::read_to_string(deploy_dir().join("systemd/shr-agent@.service")).unwrap();
    // The two credentials the unit loads are the ones the config reads, from the unit's
    // credentials directory (instance acme).
    for id in ["nats.nk", "jit.key"] {
        assert!(unit.contains(&format!("LoadCredential={id}:")), "{id}");
        assert!(
            text.contains(&format!(
                "file:/run/credentials/shr-agent@acme.service/{id}"
            )),
            "{id}"
        );
    }
    assert!(unit.contains("/etc/shr/agent-%i.toml"));
}
