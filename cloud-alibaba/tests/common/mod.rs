//! Shared helpers: a simulator, a provider pointed at it, requests, raw signed calls.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use bus_schema::{Network, ProviderKind, RunnerSpec, Secret};
use cloud_alibaba::sim::{Sim, SimConfig, SimHandle};
use cloud_alibaba::{EciConfig, EciProvider, signer};
use providers::CreateRequest;
use secrecy::SecretString;

pub const REGION: &str = "cn-shanghai";
pub const KEY_ID: &str = "LTAItestkey";
pub const SECRET: &str = "sim-secret";
pub const CONTROLLER: &str = "ctl-1";
/// Longer than ECI's 256-character env cap, so it must travel as a file.
pub fn jit_config() -> String {
    format!("eyJqaXQiOiJjb25maWcifQ{}", "A".repeat(400))
}

pub async fn sim(config: SimConfig) -> SimHandle {
    Sim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

pub fn sim_config() -> SimConfig {
    SimConfig::new(REGION, KEY_ID, SecretString::from(SECRET))
}

pub fn provider_config(sim: &SimHandle, secret: &str) -> EciConfig {
    let mut config = EciConfig::new(REGION, KEY_ID, SecretString::from(secret), CONTROLLER);
    config.endpoint = Some(sim.base_url());
    config.vswitch_id = Some("vsw-default".into());
    config.security_group_id = Some("sg-default".into());
    config.timeout_secs = 5;
    config
}

pub fn provider(sim: &SimHandle) -> EciProvider {
    EciProvider::new(provider_config(sim, SECRET)).unwrap()
}

pub fn spec() -> RunnerSpec {
    RunnerSpec {
        provider: ProviderKind::AlibabaEci,
        region: None,
        cpu_millis: 500,
        memory_mib: 1024,
        image: "ghcr.io/actions/actions-runner:2.330.0".into(),
        network: Network::default(),
        disk_bucket: None,
        dind: false,
        runner_group_id: 1,
        labels: vec!["self-hosted".into()],
        charge_labels: vec!["team-a".into()],
        max_runtime_secs: 3600,
    }
}

pub fn request(name: &str, spec: RunnerSpec) -> CreateRequest {
    CreateRequest {
        controller_id: CONTROLLER.into(),
        tenant: "acme".into(),
        registration: "reg-1".into(),
        runner_name: name.into(),
        spec,
        jit_config: Secret::new(jit_config()),
    }
}

/// Signs `params` (adding the common ones, with `nonce` and `timestamp`) and POSTs them.
pub async fn raw_call(
    sim: &SimHandle,
    action: &str,
    params: &[(&str, &str)],
    secret: &str,
    nonce: &str,
    timestamp: &str,
) -> (u16, serde_json::Value) {
    let mut p: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for (k, v) in [
        ("Action", action),
        ("Format", "JSON"),
        ("Version", "2018-08-08"),
        ("AccessKeyId", KEY_ID),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", nonce),
        ("Timestamp", timestamp),
    ] {
        p.insert(k.to_owned(), v.to_owned());
    }
    let signature = signer::sign("POST", &p, secret);
    p.insert("Signature".into(), signature);
    post(sim, &p).await
}

pub async fn post(sim: &SimHandle, p: &BTreeMap<String, String>) -> (u16, serde_json::Value) {
    let body = p
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                signer::percent_encode(k),
                signer::percent_encode(v)
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::Client::new()
        .post(sim.base_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn nonce() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A minimal valid `CreateContainerGroup` parameter set.
pub fn create_params(name: &str) -> Vec<(String, String)> {
    [
        ("RegionId", REGION),
        ("ContainerGroupName", name),
        ("VSwitchId", "vsw-1"),
        ("SecurityGroupId", "sg-1"),
        ("Cpu", "0.5"),
        ("Memory", "1"),
        ("Container.1.Name", "runner"),
        ("Container.1.Image", "img:1"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

pub fn as_refs(params: &[(String, String)]) -> Vec<(&str, &str)> {
    params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Polls `check` until it holds or 10 s pass.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
