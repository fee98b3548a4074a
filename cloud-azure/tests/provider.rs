#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The provider against the simulator over real HTTP: request shape, token request, idempotency,
//! delete, list by tag, error mapping, and the launched child.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bus_schema::{ErrorKind, Network, ProviderKind, RunnerSpec, Secret};
use cloud_azure::{
    AciConfig, AciError, AciProvider, AzureFilesConfig, Fault, GroupState, Launch, Sim, SimConfig,
    SimHandle,
};
use providers::{CreateRequest, InstanceStatus, Provider, tags};
use secrecy::SecretString;

/// A secret with characters that must be form-encoded ("The client secret must be URL-encoded
/// before being sent").
const SECRET: &str = "s3cr+t/with=odd&chars here~";
const JIT: &str = "eyJqaXQiOiJjb25maWcifQ==";

fn sim_config() -> SimConfig {
    SimConfig {
        client_secret: SecretString::from(SECRET),
        ..SimConfig::default()
    }
}

async fn start(cfg: SimConfig) -> (SimHandle, SimConfig) {
    let sim = Sim::start(cfg.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (sim, cfg)
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

fn provider(sim: &SimHandle, cfg: &SimConfig) -> AciProvider {
    AciProvider::new(provider_config(sim, cfg)).unwrap()
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
            charge_labels: vec!["team-a".into(), "proj-x".into()],
            max_runtime_secs: 3600,
        },
        jit_config: Secret::new(JIT),
    }
}

async fn poll<F: Fn() -> bool>(what: &str, f: F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn create_sends_the_documented_body() {
    let (sim, cfg) = start(sim_config()).await;
    let p = provider(&sim, &cfg);
    let req = request("shr-run-1");
    let inst = p.create(&req).await.unwrap();
    assert_eq!(inst.runner_name, "shr-run-1");
    assert!(
        inst.id
            .ends_with("/providers/Microsoft.ContainerInstance/containerGroups/shr-run-1")
    );
    assert_eq!(inst.tags, req.tags());

    let got = sim.instance("shr-run-1").unwrap();
    assert_eq!(got.tags, req.tags());
    assert_eq!(got.tags[tags::CHARGE], "team-a,proj-x");
    let body = &got.request;
    assert_eq!(body["location"], cfg.location);
    let props = &body["properties"];
    assert_eq!(props["osType"], "Linux");
    assert_eq!(props["restartPolicy"], "Never");
    assert_eq!(props["sku"], "Standard");
    assert!(props.get("subnetIds").is_none() && props.get("volumes").is_none());
    let c = &props["containers"][0];
    assert_eq!(c["name"], "runner");
    assert_eq!(c["properties"]["image"], req.spec.image);
    // The official image has no ENTRYPOINT/CMD: the command starts the runner.
    assert_eq!(
        c["properties"]["command"],
        serde_json::json!(["/home/runner/run.sh"])
    );
    // Sizes go in the container's resource requests.
    assert_eq!(c["properties"]["resources"]["requests"]["cpu"], 2.0);
    assert_eq!(c["properties"]["resources"]["requests"]["memoryInGB"], 4.0);
    assert!(c["properties"].get("securityContext").is_none());
    let env = c["properties"]["environmentVariables"].as_array().unwrap();
    let jit = env
        .iter()
        .find(|v| v["name"] == "ACTIONS_RUNNER_INPUT_JITCONFIG")
        .unwrap();
    assert_eq!(jit["secureValue"], JIT);
    assert!(
        jit.get("value").is_none(),
        "the JIT config must be a secureValue"
    );

    poll("running", || {
        sim.instance("shr-run-1").unwrap().state == GroupState::Running
    })
    .await;
    let inst = p.get("shr-run-1").await.unwrap().unwrap();
    assert_eq!(inst.status, InstanceStatus::Running);
    sim.finish("shr-run-1", 0);
    assert_eq!(
        p.get("shr-run-1").await.unwrap().unwrap().status,
        InstanceStatus::Stopped
    );
}

#[tokio::test]
async fn dind_subnet_and_disk_map_to_confidential_subnet_ids_and_azure_files() {
    let (sim, cfg) = start(sim_config()).await;
    let vnet = format!(
        "/subscriptions/{}/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/vnet1",
        cfg.subscription_id
    );
    let mut pcfg = provider_config(&sim, &cfg);
    pcfg.vnet_id = Some(vnet.clone());
    pcfg.azure_files = Some(AzureFilesConfig {
        account_name: "shrdisks".into(),
        account_key: SecretString::from("storage-key=="),
        mount_path: "/home/runner/_work".into(),
    });
    pcfg.env.insert("RUNNER_ALLOW_RUNASROOT".into(), "1".into());
    let p = AciProvider::new(pcfg).unwrap();
    assert!(p.capabilities().dind && p.capabilities().disk_mount);
    let mut req = request("shr-dind");
    req.spec.dind = true;
    req.spec.cpu_millis = 1500;
    req.spec.memory_mib = 1536;
    req.spec.network.subnet = Some("runners".into());
    req.spec.disk_bucket = Some("cache-share".into());
    p.create(&req).await.unwrap();

    let props = sim.instance("shr-dind").unwrap().request["properties"].clone();
    assert_eq!(props["sku"], "Confidential");
    let c = &props["containers"][0]["properties"];
    assert_eq!(c["securityContext"]["privileged"], true);
    let command = c["command"].as_array().unwrap();
    assert_eq!(
        command[..2],
        [serde_json::json!("/bin/sh"), serde_json::json!("-c")]
    );
    let script = command[2].as_str().unwrap();
    assert!(script.starts_with("sudo -n dockerd"), "{script}");
    assert!(script.ends_with("exec /home/runner/run.sh"), "{script}");
    assert_eq!(c["resources"]["requests"]["cpu"], 1.5);
    assert_eq!(c["resources"]["requests"]["memoryInGB"], 1.5);
    assert_eq!(
        props["subnetIds"][0]["id"],
        format!("{vnet}/subnets/runners")
    );
    assert_eq!(props["volumes"][0]["azureFile"]["shareName"], "cache-share");
    assert_eq!(
        props["volumes"][0]["azureFile"]["storageAccountName"],
        "shrdisks"
    );
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/home/runner/_work");
    let env = c["environmentVariables"].as_array().unwrap();
    assert!(
        env.iter()
            .any(|v| v["name"] == "RUNNER_ALLOW_RUNASROOT" && v["value"] == "1")
    );
}

#[tokio::test]
async fn create_twice_leaves_one_group_and_odd_names_are_mapped() {
    let (sim, cfg) = start(sim_config()).await;
    let p = provider(&sim, &cfg);
    let a = p.create(&request("shr-twice")).await.unwrap();
    let b = p.create(&request("shr-twice")).await.unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(sim.instances().len(), 1);
    assert_eq!(sim.instance("shr-twice").unwrap().puts, 1);

    let odd = p.create(&request("Acme_Runner.7")).await.unwrap();
    assert_eq!(odd.runner_name, "Acme_Runner.7");
    assert!(p.get("Acme_Runner.7").await.unwrap().is_some());
    assert_eq!(sim.instances().len(), 2);
}

#[tokio::test]
async fn delete_kills_and_missing_delete_is_ok() {
    let (sim, cfg) = start(sim_config()).await;
    let p = provider(&sim, &cfg);
    p.delete("never-existed").await.unwrap();
    p.create(&request("shr-del")).await.unwrap();
    p.delete("shr-del").await.unwrap();
    assert!(sim.instance("shr-del").is_none());
    assert!(p.get("shr-del").await.unwrap().is_none());
    p.delete("shr-del").await.unwrap();
}

#[tokio::test]
async fn list_returns_only_our_tagged_groups_across_pages() {
    let (sim, cfg) = start(SimConfig {
        page_size: 1,
        ..sim_config()
    })
    .await;
    let p = provider(&sim, &cfg);
    p.create(&request("shr-a")).await.unwrap();
    p.create(&request("shr-b")).await.unwrap();
    let rg = &cfg.resource_groups[0];
    sim.create_orphan(
        rg,
        "foreign",
        BTreeMap::from([(tags::CONTROLLER.into(), "ctl-2".into())]),
    );
    sim.create_orphan(rg, "untagged", BTreeMap::new());
    sim.create_orphan(
        rg,
        "our-orphan",
        BTreeMap::from([(tags::CONTROLLER.into(), "ctl-1".into())]),
    );
    let mut names: Vec<String> = p
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.runner_name)
        .collect();
    names.sort();
    assert_eq!(names, ["our-orphan", "shr-a", "shr-b"]);
}

#[tokio::test]
async fn service_errors_map_to_error_kinds() {
    let (sim, cfg) = start(SimConfig {
        max_cpu: 2.0,
        ..sim_config()
    })
    .await;
    let p = provider(&sim, &cfg);

    sim.inject(
        Fault::Throttle {
            retry_after_secs: 7,
        },
        1,
    );
    let e = p.get("x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    let text = e.to_string();
    assert!(
        text.contains("SubscriptionRequestsThrottled") && text.contains("Retry-After: 7"),
        "{text}"
    );
    // The ACI error is kept as the source, typed, not flattened into a string.
    assert!(matches!(
        e.cause::<AciError>(),
        Some(AciError::Service { status: 429, code, .. }) if code == "SubscriptionRequestsThrottled"
    ));

    sim.inject(Fault::ServerError, 1);
    assert_eq!(p.list().await.unwrap_err().kind(), ErrorKind::Transient);

    // create = GET then PUT: let the GET through, fail the PUT with quota.
    sim.inject(Fault::Slow(Duration::from_millis(1)), 1);
    sim.inject(Fault::Quota, 1);
    let e = p.create(&request("shr-q")).await.unwrap_err();
    assert_eq!((e.kind(), e.operation), (ErrorKind::Quota, "create"));

    // Above the region's capacity (sim allows 2 cores, provider 4): 409 ServiceUnavailable.
    let mut big = request("shr-big");
    big.spec.cpu_millis = 3000;
    assert_eq!(p.create(&big).await.unwrap_err().kind(), ErrorKind::Quota);

    // Above the provider's own maxima or off the 0.1 grid: refused before any call.
    big.spec.cpu_millis = 8000;
    assert_eq!(
        p.create(&big).await.unwrap_err().kind(),
        ErrorKind::Permanent
    );
    big.spec.cpu_millis = 250;
    assert_eq!(
        p.create(&big).await.unwrap_err().kind(),
        ErrorKind::Permanent
    );

    let mut missing_rg = provider_config(&sim, &cfg);
    missing_rg.resource_group = "nope".into();
    let e = AciProvider::new(missing_rg)
        .unwrap()
        .get("x")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);

    let mut bad_secret = provider_config(&sim, &cfg);
    bad_secret.client_secret = SecretString::from("wrong");
    let e = AciProvider::new(bad_secret)
        .unwrap()
        .list()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permanent);
    let text = e.to_string();
    assert!(text.contains("invalid_client") && text.contains("AADSTS7000215"));
    assert!(!text.contains("wrong"));

    sim.set_failure_rate(100, 42);
    assert_eq!(p.get("x").await.unwrap_err().kind(), ErrorKind::Transient);
    sim.set_failure_rate(0, 0);
    assert!(p.get("x").await.unwrap().is_none());
}

/// Microsoft identity platform docs, "OAuth 2.0 client credentials flow", section "First case:
/// Access token request with a shared secret"
/// (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow):
///
/// ```text
/// POST /{tenant}/oauth2/v2.0/token HTTP/1.1
/// Host: login.microsoftonline.com:443
/// Content-Type: application/x-www-form-urlencoded
///
/// client_id=535fb089-9ff3-47b6-9bfb-4f1264799865
/// &scope=https%3A%2F%2Fgraph.microsoft.com%2F.default
/// &client_secret=sampleCredentials
/// &grant_type=client_credentials
/// ```
///
/// Bearer tokens have no published test vector, so this checks the request field by field
/// against that example (with ARM's scope), and that tokens are cached and refreshed.
#[tokio::test]
async fn token_request_matches_the_documented_example_and_is_cached() {
    let (sim, cfg) = start(sim_config()).await;
    let p = provider(&sim, &cfg);
    p.get("a").await.unwrap();
    p.get("b").await.unwrap();
    let reqs = sim.token_requests();
    assert_eq!(reqs.len(), 1, "the token is cached");
    let r = &reqs[0];
    assert_eq!(r.path, format!("/{}/oauth2/v2.0/token", cfg.tenant_id));
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let encoded_secret: String = url::form_urlencoded::byte_serialize(SECRET.as_bytes()).collect();
    assert_eq!(
        r.body,
        format!(
            "client_id={}&scope=https%3A%2F%2Fmanagement.azure.com%2F.default&client_secret={encoded_secret}&grant_type=client_credentials",
            cfg.client_id
        )
    );
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(r.body.as_bytes())
        .into_owned()
        .collect();
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["client_id", "scope", "client_secret", "grant_type"]);
    assert_eq!(fields[2].1, SECRET);

    // ARM rejects an expired token: the provider drops it, gets a new one and retries once.
    sim.expire_tokens();
    p.get("c").await.unwrap();
    assert_eq!(sim.token_requests().len(), 2);
}

fn write_script(dir: &Path, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("runner.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn launched_child_gets_the_jit_config_in_env_not_argv() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let script = write_script(
        dir.path(),
        &format!(
            "echo \"ARGS=$*\" > {o}.tmp; echo \"JIT=$ACTIONS_RUNNER_INPUT_JITCONFIG\" >> {o}.tmp; mv {o}.tmp {o}",
            o = out.display()
        ),
    );
    let launch = Launch {
        program: script,
        args: vec!["sim".into(), "runner".into()],
    };
    let (sim, cfg) = start(SimConfig {
        launch: Some(launch),
        ..sim_config()
    })
    .await;
    let p = provider(&sim, &cfg);
    p.create(&request("shr-child")).await.unwrap();
    poll("child exit", || {
        sim.instance("shr-child")
            .is_some_and(|i| i.state == GroupState::Succeeded)
    })
    .await;
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains(&format!("JIT={JIT}")), "{text}");
    assert_eq!(sim.exited_without_runner(), 0);
    let args = text.lines().find(|l| l.starts_with("ARGS=")).unwrap();
    assert_eq!(args, "ARGS=sim runner");
    assert_eq!(
        p.get("shr-child").await.unwrap().unwrap().status,
        InstanceStatus::Stopped
    );
}

#[tokio::test]
async fn deleting_a_group_kills_its_child() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path(), "exec sleep 60");
    let launch = Launch {
        program: script,
        args: vec![],
    };
    let (sim, cfg) = start(SimConfig {
        launch: Some(launch),
        ..sim_config()
    })
    .await;
    let p = provider(&sim, &cfg);
    p.create(&request("shr-long")).await.unwrap();
    poll("child start", || {
        sim.instance("shr-long").is_some_and(|i| i.pid.is_some())
    })
    .await;
    let pid = sim.instance("shr-long").unwrap().pid.unwrap();
    assert_eq!(
        p.get("shr-long").await.unwrap().unwrap().status,
        InstanceStatus::Running
    );
    p.delete("shr-long").await.unwrap();
    // A killed child is reaped by tokio: its /proc entry goes away, or it is a zombie.
    poll("child killed", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
    })
    .await;
}

/// A container whose command never reaches `run.sh` (here: the official image with its own
/// empty command, as before providers set one) exits at once and is counted.
#[tokio::test]
async fn a_command_that_does_not_start_run_sh_exits_without_a_runner() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ran");
    let script = write_script(dir.path(), &format!("touch {}", out.display()));
    let (sim, cfg) = start(SimConfig {
        launch: Some(Launch {
            program: script,
            args: vec![],
        }),
        ..sim_config()
    })
    .await;
    let mut pcfg = provider_config(&sim, &cfg);
    pcfg.runner_command = Some(vec!["/bin/sh".into(), "-c".into(), "exit 0".into()]);
    let p = AciProvider::new(pcfg).unwrap();
    p.create(&request("shr-idle")).await.unwrap();
    poll("container exit", || sim.exited_without_runner() == 1).await;
    assert!(!out.exists(), "no runner process ran");
    let c = &sim.instance("shr-idle").unwrap().request["properties"]["containers"][0];
    assert_eq!(c["properties"]["command"][2], "exit 0");
}

/// The settings section a real operator writes: runner_command, registry logins and Azure
/// Files as secret references, parsed, built, and sent in the container group.
#[tokio::test]
async fn settings_runner_command_registry_and_azure_files_reach_the_request() {
    use providers::CloudSettings as _;
    use registration::ProviderSettings as _;
    let dir = tempfile::tempdir().unwrap();
    let secret = |name: &str, value: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, value).unwrap();
        format!("file:{}", path.display())
    };
    let (sim, cfg) = start(sim_config()).await;
    let section = format!(
        r#"endpoint = "{base}"
login_endpoint = "{base}"
subscription_id = "{sub}"
resource_group = "{rg}"
location = "{loc}"
tenant_id = "{tenant}"
client_id = "{client}"
client_secret = "{cs}"
runner_command = ["/bin/sh", "-c", "exec /home/runner/run.sh --once"]
registry_credentials = [{{ server = "acme.azurecr.io", username = "puller", password = "{pw}" }}]
azure_files = {{ account_name = "shrdisks", account_key = "{key}", mount_path = "/cache" }}
"#,
        base = sim.base_url(),
        sub = cfg.subscription_id,
        rg = cfg.resource_groups[0],
        loc = cfg.location,
        tenant = cfg.tenant_id,
        client = cfg.client_id,
        cs = secret("cs", SECRET),
        pw = secret("pw", "registry-pw"),
        key = secret("key", "storage-key=="),
    );
    let raw: cloud_azure::settings::RawAciSettings = toml::from_str(&section).unwrap();
    let settings = cloud_azure::AciSettings::validate(raw).unwrap();
    assert!(
        settings.capabilities().disk_mount,
        "azure_files enables disk-"
    );
    let p = settings.build("ctl-1", "acme").unwrap();
    assert!(p.capabilities().disk_mount);
    let mut req = request("shr-settings");
    req.spec.disk_bucket = Some("cache-share".into());
    p.create(&req).await.unwrap();
    let props = sim.instance("shr-settings").unwrap().request["properties"].clone();
    assert_eq!(
        props["imageRegistryCredentials"],
        serde_json::json!([{"server": "acme.azurecr.io", "username": "puller", "password": "registry-pw"}])
    );
    assert_eq!(
        props["volumes"][0]["azureFile"]["storageAccountKey"],
        "storage-key=="
    );
    let c = &props["containers"][0]["properties"];
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/cache");
    assert_eq!(c["command"][2], "exec /home/runner/run.sh --once");

    // Without azure_files, disk- is not offered; an empty command and a bare secret are named.
    let bad = section
        .replace(
            "runner_command = [\"/bin/sh\", \"-c\", \"exec /home/runner/run.sh --once\"]",
            "runner_command = []",
        )
        .replace(&secret("pw", "registry-pw"), "plain");
    let raw: cloud_azure::settings::RawAciSettings = toml::from_str(&bad).unwrap();
    let errors = cloud_azure::AciSettings::validate(raw).unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert!(fields.contains(&"runner_command"), "{fields:?}");
    assert!(
        fields.contains(&"registry_credentials[0].password"),
        "{fields:?}"
    );
}
