//! End to end through the configuration: a cloud simulator from `start_demo_cloud`, a
//! registration config that includes its `provider_toml`, `clouds::build`, and one runner
//! instance created, listed and deleted through the real provider over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bus_schema::{Network, ProviderKind, RunnerSpec, Secret};
use providers::{CreateRequest, Provider};
use shr_lab::clouds::{DemoCloud, start_demo_cloud};

const CONTROLLER: &str = "shr-test";
const CLOUDS: [ProviderKind; 5] = [
    ProviderKind::AlibabaEci,
    ProviderKind::AzureAci,
    ProviderKind::GcpCloudrun,
    ProviderKind::GcpBatch,
    ProviderKind::AwsFargate,
];

fn config_text(kind: ProviderKind, cloud: &DemoCloud, pat: &Path) -> String {
    format!(
        r#"[controller]
id = "{CONTROLLER}"

[tenants.demo]
charge_labels = ["demo-team"]

[tenants.demo.defaults]
provider = "{kind}"
cpu = 2
memory = 2

{provider}
[[registrations]]
name = "demo-org"
tenant = "demo"
scope = "org"
url = "https://github.com/demo-org"
api_url = "http://127.0.0.1:9/"
auth = {{ pat = "file:{pat}" }}
labels = ["serverless-hosted-runner"]
detection = "poll"
"#,
        provider = cloud.provider_toml("demo"),
        pat = pat.display(),
    )
}

fn request(kind: ProviderKind, runner: &str) -> CreateRequest {
    CreateRequest {
        controller_id: CONTROLLER.into(),
        tenant: "demo".into(),
        registration: "demo-org".into(),
        runner_name: runner.into(),
        spec: RunnerSpec {
            provider: kind,
            region: None,
            cpu_millis: 2000,
            memory_mib: 2048,
            image: registration::DEFAULT_IMAGE.into(),
            network: Network::default(),
            disk_bucket: None,
            dind: false,
            runner_group_id: 1,
            labels: vec!["serverless-hosted-runner".into()],
            charge_labels: vec!["demo-team".into()],
            max_runtime_secs: 600,
        },
        jit_config: Secret::new("eyJzaW0tb25seS1qaXQiOnRydWV9"),
    }
}

async fn until<F: Fn() -> bool>(what: &str, check: F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A simulator, and the provider built from a config pointing at it.
async fn setup(kind: ProviderKind, dir: &Path) -> (DemoCloud, Arc<dyn Provider>) {
    let cloud = start_demo_cloud(
        kind,
        dir,
        PathBuf::from("/bin/sh"),
        vec!["-c".into(), "sleep 5".into()],
        0,
        1,
    )
    .await
    .unwrap();
    let pat = dir.join("pat");
    std::fs::write(&pat, "ghp_sim").unwrap();
    let text = config_text(kind, &cloud, &pat);
    let config = registration::Config::parse(&text, "test.toml", &::clouds::Registry)
        .unwrap_or_else(|e| panic!("config for {kind} invalid:\n{e}\n{text}"));
    let tenant = config.tenant("demo").unwrap();
    let provider = ::clouds::build(kind, CONTROLLER, tenant).unwrap();
    assert_eq!(provider.kind(), kind);
    (cloud, provider)
}

#[tokio::test]
async fn each_cloud_creates_lists_and_deletes_through_the_config() {
    for kind in CLOUDS {
        let dir = tempfile::tempdir().unwrap();
        let (cloud, provider) = setup(kind, dir.path()).await;
        let runner = "shr-demo-42-1";

        let created = provider.create(&request(kind, runner)).await.unwrap();
        assert_eq!(created.runner_name, runner, "{kind}");
        // Idempotent by runner name.
        provider.create(&request(kind, runner)).await.unwrap();
        until(&format!("{kind} to launch the runner"), || {
            cloud.launches() == (1, 1)
        })
        .await;
        // AWS holds the runner's JIT secret beside its task; both are deleted with it.
        let held = if kind == ProviderKind::AwsFargate {
            2
        } else {
            1
        };
        assert_eq!(cloud.live_instances(), held, "{kind}");
        assert_eq!(cloud.live_instances_of(CONTROLLER), held, "{kind}");

        let listed = provider.list().await.unwrap();
        assert_eq!(listed.len(), 1, "{kind}: {listed:?}");
        assert_eq!(listed[0].runner_name, runner, "{kind}");
        assert!(provider.get(runner).await.unwrap().is_some(), "{kind}");

        provider.delete(runner).await.unwrap();
        until(&format!("{kind} to delete the instance"), || {
            cloud.live_instances() == 0
        })
        .await;
        assert!(provider.list().await.unwrap().is_empty(), "{kind}");
        // Missing is success.
        provider.delete(runner).await.unwrap();
        assert_eq!(cloud.launches(), (1, 1), "{kind}");
    }
}

#[tokio::test]
async fn orphans_are_listed_and_foreign_ones_are_not() {
    for kind in CLOUDS {
        let dir = tempfile::tempdir().unwrap();
        let (cloud, provider) = setup(kind, dir.path()).await;
        cloud.create_orphan(CONTROLLER, "shr-demo-7-1");
        cloud.create_orphan("someone-else", "shr-demo-8-1");
        assert_eq!(cloud.live_instances(), 2, "{kind}");
        assert_eq!(cloud.live_instances_of(CONTROLLER), 1, "{kind}");

        let listed = provider.list().await.unwrap();
        let names: Vec<_> = listed.iter().map(|i| i.runner_name.as_str()).collect();
        assert_eq!(names, ["shr-demo-7-1"], "{kind}");
        // Another controller's instance is neither returned by get nor deleted.
        assert!(
            provider.get("shr-demo-7-1").await.unwrap().is_some(),
            "{kind}"
        );
        assert!(
            provider.get("shr-demo-8-1").await.unwrap().is_none(),
            "{kind}"
        );
        provider.delete("shr-demo-8-1").await.unwrap();
        provider.delete("shr-demo-7-1").await.unwrap();
        until(&format!("{kind} to delete the orphan"), || {
            cloud.live_instances_of(CONTROLLER) == 0
        })
        .await;
        assert_eq!(
            cloud.live_instances_of("someone-else"),
            1,
            "{kind}: the foreign instance survives"
        );
        assert_eq!(cloud.launches(), (0, 0), "{kind}: orphans launch nothing");
    }
}

#[tokio::test]
async fn failure_injection_reaches_the_provider_as_transient() {
    for kind in CLOUDS {
        let dir = tempfile::tempdir().unwrap();
        let (cloud, provider) = setup(kind, dir.path()).await;
        cloud.set_failure_percent(100, 7);
        let error = provider.list().await.unwrap_err();
        assert_eq!(
            error.kind(),
            bus_schema::ErrorKind::Transient,
            "{kind}: {error}"
        );
        cloud.set_failure_percent(0, 7);
        provider.list().await.unwrap();
    }
}

#[tokio::test]
async fn build_errors_name_tenant_provider_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let (cloud, _) = setup(ProviderKind::AzureAci, dir.path()).await;
    let pat = dir.path().join("pat");
    let text = config_text(ProviderKind::AzureAci, &cloud, &pat);
    let config = registration::Config::parse(&text, "test.toml", &::clouds::Registry).unwrap();
    std::fs::remove_file(dir.path().join("azure-aci-secret")).unwrap();
    let error = ::clouds::build(
        ProviderKind::AzureAci,
        CONTROLLER,
        config.tenant("demo").unwrap(),
    )
    .unwrap_err();
    // The tenant and provider are in the error, the field in its source.
    let message = format!("{:#}", anyhow::Error::from(error));
    for part in ["tenant demo", "provider azure-aci", "client_secret"] {
        assert!(message.contains(part), "{message}");
    }
    let error = ::clouds::build(
        ProviderKind::GcpBatch,
        CONTROLLER,
        config.tenant("demo").unwrap(),
    )
    .unwrap_err();
    assert!(format!("{error:#}").contains("no [tenants.demo.providers.gcp-batch]"));
    assert!(
        start_demo_cloud(
            ProviderKind::Local,
            dir.path(),
            "/bin/sh".into(),
            vec![],
            0,
            1
        )
        .await
        .is_err()
    );
}

#[test]
fn every_cloud_kind_has_exactly_one_simulator_in_the_list() {
    for kind in ProviderKind::ALL {
        let playing = ::clouds::SIMS
            .iter()
            .filter(|s| s.kinds.contains(&kind))
            .count();
        let want = usize::from(kind != ProviderKind::Local);
        assert_eq!(playing, want, "{kind}");
    }
}
