//! Shared setup for the integration tests: test-only keys, a sim and a config pointing at it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bus_schema::{Network, ProviderKind, RunnerSpec, Secret};
use cloud_gcp::sim::{Sim, SimConfig, SimHandle, SimServiceAccount};
use cloud_gcp::{Endpoints, GcpConfig};
use providers::CreateRequest;
use secrecy::SecretString;

pub const PROJECT: &str = "shr-test";
pub const REGION: &str = "europe-west1";
pub const CONTROLLER: &str = "ctl-1";
pub const EMAIL: &str = "runner-admin@shr-test.iam.gserviceaccount.com";
pub const KID: &str = "0123456789abcdef0123456789abcdef01234567";
pub const JIT: &str = "eyJ0ZXN0LW9ubHktaml0LWNvbmZpZyI6dHJ1ZX0=";

pub fn data(file: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A service-account key JSON, shaped as IAM hands it out.
pub fn key_json(private_pem: &str) -> SecretString {
    let json = serde_json::json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": KID,
        "private_key": private_pem,
        "client_email": EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    });
    SecretString::from(json.to_string())
}

pub fn sim_config() -> SimConfig {
    SimConfig::new(
        PROJECT,
        SimServiceAccount {
            client_email: EMAIL.into(),
            key_id: KID.into(),
            public_key_pem: data("test-sa-pub.pem"),
        },
    )
}

pub async fn start(config: SimConfig) -> SimHandle {
    Sim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

pub fn gcp_config(sim: &SimHandle) -> GcpConfig {
    gcp_config_with_key(sim, &data("test-sa-key.pem"))
}

pub fn gcp_config_with_key(sim: &SimHandle, pem: &str) -> GcpConfig {
    let mut config = GcpConfig::new(PROJECT, REGION, key_json(pem), CONTROLLER);
    config.endpoints = Endpoints::all_at(sim.base_url());
    config.operation_timeout_secs = 10;
    config
}

pub fn spec(provider: ProviderKind) -> RunnerSpec {
    RunnerSpec {
        provider,
        region: None,
        cpu_millis: 2000,
        memory_mib: 4096,
        image: "ghcr.io/actions/actions-runner:2.330.0".into(),
        network: Network::default(),
        disk_bucket: None,
        dind: provider == ProviderKind::GcpBatch,
        runner_group_id: 1,
        labels: vec!["self-hosted".into()],
        charge_labels: vec!["Team-A".into()],
        max_runtime_secs: 7200,
    }
}

pub fn request(provider: ProviderKind, runner: &str) -> CreateRequest {
    CreateRequest {
        controller_id: CONTROLLER.into(),
        tenant: "acme".into(),
        registration: "acme-org".into(),
        runner_name: runner.into(),
        spec: spec(provider),
        jit_config: Secret::new(JIT),
    }
}

/// Polls `check` every 20 ms until it holds or 10 s pass.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
