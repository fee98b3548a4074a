#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The ACI provider and simulator held to the ContainerInstance 2025-09-01 swagger and its
//! examples (bundled in `simulators/vendor/azure/`).

use std::path::Path;
use std::time::{Duration, Instant};

use bus_schema::{Network, ProviderKind, RunnerSpec, Secret};
use cloud_azure::{
    AciConfig, AciProvider, AzureFilesConfig, GroupState, Launch, Sim, SimConfig, SimHandle,
};
use providers::{CreateRequest, InstanceStatus, Provider};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use simulators::conformance::{shape_differences, swagger};

const SECRET: &str = "sim-secret";

async fn start(cfg: SimConfig) -> (SimHandle, SimConfig) {
    let sim = Sim::start(cfg.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (sim, cfg)
}

fn config() -> SimConfig {
    SimConfig {
        client_secret: SecretString::from(SECRET),
        ..SimConfig::default()
    }
}

fn provider_config(sim: &SimHandle, cfg: &SimConfig) -> AciConfig {
    AciConfig::new(
        &cfg.tenant_id,
        &cfg.client_id,
        cfg.client_secret.clone(),
        &cfg.subscription_id,
        &cfg.resource_groups[0],
        &cfg.location,
        "ctl-1",
    )
    .with_endpoint(&sim.base_url())
}

fn request(runner: &str) -> CreateRequest {
    CreateRequest {
        controller_id: "ctl-1".into(),
        tenant: "acme".into(),
        registration: "acme-org".into(),
        runner_name: runner.into(),
        spec: RunnerSpec {
            provider: ProviderKind::AzureAci,
            region: None,
            cpu_millis: 2000,
            memory_mib: 4096,
            image: "ghcr.io/actions/actions-runner:2.330.0".into(),
            network: Network::default(),
            disk_bucket: None,
            dind: false,
            runner_group_id: 1,
            labels: vec!["self-hosted".into()],
            charge_labels: vec!["team-a".into()],
            max_runtime_secs: 3600,
        },
        jit_config: Secret::new("eyJqaXQiOiJjb25maWcifQ=="),
    }
}

async fn poll(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn exiting_program(dir: &Path) -> Launch {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("runner.sh");
    std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    Launch {
        program: path,
        args: Vec::new(),
    }
}

/// A raw ARM call with a token from the sim, for sending the vendor's own examples.
async fn arm(
    sim: &SimHandle,
    cfg: &SimConfig,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sim.base_url(),
            cfg.tenant_id
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("client_id", &cfg.client_id)
                .append_pair("scope", "https://management.azure.com/.default")
                .append_pair("client_secret", cfg.client_secret.expose_secret())
                .append_pair("grant_type", "client_credentials")
                .finish(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!(
        "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerInstance/containerGroups{path}?api-version={}",
        sim.base_url(),
        cfg.subscription_id,
        cfg.resource_groups[0],
        swagger::API_VERSION
    );
    let mut req = http
        .request(method, url)
        .bearer_auth(token["access_token"].as_str().unwrap());
    if let Some(body) = body {
        req = req.json(body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn example(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn list_sees_a_finished_group_as_stopped_although_list_items_carry_no_instance_view() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, cfg) = start(SimConfig {
        launch: Some(exiting_program(dir.path())),
        ..config()
    })
    .await;
    let p = AciProvider::new(provider_config(&sim, &cfg)).unwrap();
    p.create(&request("shr-done")).await.unwrap();
    poll("the child's exit", || {
        sim.instance("shr-done")
            .is_some_and(|i| i.state == GroupState::Succeeded)
    })
    .await;

    let (status, page) = arm(&sim, &cfg, reqwest::Method::GET, "", None).await;
    assert_eq!(status, 200);
    assert!(page["value"][0]["properties"].get("instanceView").is_none());
    assert_eq!(
        swagger::check(
            swagger::CONTAINER_GROUP_LIST,
            &page,
            swagger::Direction::Response
        ),
        vec![]
    );

    let listed = p.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].status,
        InstanceStatus::Stopped,
        "the sweep must see it finished"
    );
}

#[tokio::test]
async fn provider_bodies_conform_to_the_swagger() {
    let (sim, cfg) = start(config()).await;
    let mut pc = provider_config(&sim, &cfg);
    pc.allow_dind = true;
    pc.azure_files = Some(AzureFilesConfig {
        account_name: "shrcache".into(),
        account_key: SecretString::from("a2V5"),
        mount_path: "/home/runner/_work".into(),
    });
    let p = AciProvider::new(pc).unwrap();
    p.create(&request("shr-plain")).await.unwrap();
    let mut r = request("shr-dind");
    r.spec.dind = true;
    r.spec.disk_bucket = Some("cache".into());
    p.create(&r).await.unwrap();
    assert_eq!(p.list().await.unwrap().len(), 2);
    p.delete("shr-plain").await.unwrap();
    assert_eq!(sim.conformance_rejections(), 0);
    for name in ["shr-plain", "shr-dind"] {
        if let Some(inst) = sim.instance(name) {
            assert_eq!(
                swagger::check(
                    swagger::CONTAINER_GROUP,
                    &inst.request,
                    swagger::Direction::Request
                ),
                vec![]
            );
        }
    }
}

#[tokio::test]
async fn the_vendor_examples_are_accepted_and_answered_in_their_shape() {
    let (sim, cfg) = start(SimConfig {
        location: "westus".into(),
        ..config()
    })
    .await;
    let create = example(include_str!(
        "../../simulators/vendor/azure/examples/ContainerGroupsCreateOrUpdate.json"
    ));
    let mut group = create["parameters"]["containerGroup"].clone();
    // The example's subnet id is an ARM template expression (`[resourceId(...)]`), which only
    // a template deployment resolves; over REST it must be a resource id.
    group["properties"]["subnetIds"][0]["id"] = Value::String(format!(
        "/subscriptions/{}/resourceGroups/demo/providers/Microsoft.Network/virtualNetworks/vnet/subnets/aci",
        cfg.subscription_id
    ));
    let (status, body) = arm(&sim, &cfg, reqwest::Method::PUT, "/demo1", Some(&group)).await;
    assert!(status == 200 || status == 201, "{status}: {body}");
    assert_eq!(
        swagger::check(
            swagger::CONTAINER_GROUP,
            &body,
            swagger::Direction::Response
        ),
        vec![]
    );

    let get = example(include_str!(
        "../../simulators/vendor/azure/examples/ContainerGroupsGet_Succeeded.json"
    ));
    let (status, body) = arm(&sim, &cfg, reqwest::Method::GET, "/demo1", None).await;
    assert_eq!(status, 200);
    let mut want = get["responses"]["200"]["body"].clone();
    // Keys the example's group has because of what its create set (ports, a registry, an IP):
    // the shape checked is the group's own keys and the container's.
    // (The example passes `zones` beside the body, not in it, so the group has none.)
    want.as_object_mut().unwrap().remove("zones");
    let props = want["properties"].as_object_mut().unwrap();
    for k in ["imageRegistryCredentials", "ipAddress", "volumes"] {
        props.remove(k);
    }
    assert_eq!(shape_differences(&want, &body), Vec::<String>::new());

    let list = example(include_str!(
        "../../simulators/vendor/azure/examples/ContainerGroupsList.json"
    ));
    let (status, page) = arm(&sim, &cfg, reqwest::Method::GET, "", None).await;
    assert_eq!(status, 200);
    let item = &list["responses"]["200"]["body"]["value"][0];
    assert_eq!(
        shape_differences(
            &item["properties"]["containers"][0],
            &page["value"][0]["properties"]["containers"][0]
        ),
        Vec::<String>::new()
    );
    assert!(page["value"][0]["properties"].get("instanceView").is_none());

    let (status, _) = arm(&sim, &cfg, reqwest::Method::DELETE, "/demo1", None).await;
    assert!([200, 202, 204].contains(&status), "{status}");
}

#[tokio::test]
async fn a_body_outside_the_swagger_is_refused_with_invalid_request_content() {
    let (sim, cfg) = start(config()).await;
    let body = serde_json::json!({"location": cfg.location, "properties": {"osType": "Linux", "containers": [{
        "name": "c", "properties": {"image": "i", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}},
        "workingDir": "/home/runner"}}]}});
    let (status, answer) = arm(&sim, &cfg, reqwest::Method::PUT, "/bad", Some(&body)).await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["code"], "InvalidRequestContent");
    assert_eq!(sim.conformance_rejections(), 1);
}
