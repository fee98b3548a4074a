#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The ECI provider against the simulator over real HTTP.

mod common;

use std::collections::BTreeMap;

use base64::Engine as _;
use bus_schema::ErrorKind;
use cloud_alibaba::sim::{Fault, GroupStatus};
use cloud_alibaba::{EciProvider, OssConfig};
use common::*;
use providers::{InstanceStatus, Provider, tags};

#[tokio::test]
async fn create_sends_the_documented_request_shape() {
    let sim = sim(sim_config()).await;
    let provider = provider(&sim);
    let mut spec = spec();
    spec.network.vswitch = Some("vsw-from-spec".into());
    spec.dind = true;
    let instance = provider.create(&request("runner-1", spec)).await.unwrap();
    assert_eq!(instance.status, InstanceStatus::Pending);

    let group = sim.group_named("runner-1").unwrap();
    assert_eq!(group.id, instance.id);
    let f = |k: &str| {
        group
            .fields
            .get(k)
            .unwrap_or_else(|| panic!("missing {k}"))
            .to_owned()
    };
    assert_eq!(f("RegionId"), REGION);
    assert_eq!(f("ClientToken"), "runner-1");
    assert_eq!(f("Cpu"), "0.5");
    assert_eq!(f("Memory"), "1");
    assert_eq!(f("VSwitchId"), "vsw-from-spec");
    assert_eq!(f("SecurityGroupId"), "sg-default");
    assert_eq!(f("RestartPolicy"), "Never");
    assert_eq!(f("ActiveDeadlineSeconds"), "3600");
    assert_eq!(
        f("Container.1.Image"),
        "ghcr.io/actions/actions-runner:2.330.0"
    );
    assert_eq!(f("Container.1.SecurityContextPrivileged"), "true");
    // dind: dockerd starts, then the JIT file is read into env and run.sh is exec'd.
    assert_eq!(f("Container.1.Command.1"), "/bin/sh");
    assert_eq!(f("Container.1.Command.2"), "-c");
    let script = f("Container.1.Command.3");
    assert!(script.starts_with("sudo -n dockerd"), "{script}");
    assert!(
        script.contains("cat \"$ACTIONS_RUNNER_INPUT_JITCONFIG_FILE\""),
        "{script}"
    );
    assert!(script.ends_with("exec /home/runner/run.sh"), "{script}");
    assert_eq!(
        f("Container.1.EnvironmentVar.1.Key"),
        "ACTIONS_RUNNER_INPUT_JITCONFIG_FILE"
    );
    assert_eq!(
        f("Container.1.EnvironmentVar.1.Value"),
        "/etc/shr/jitconfig"
    );
    assert_eq!(f("Volume.1.Type"), "ConfigFileVolume");
    assert_eq!(
        f("Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path"),
        "jitconfig"
    );
    let content = base64::engine::general_purpose::STANDARD
        .decode(f("Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content"))
        .unwrap();
    assert_eq!(content, jit_config().as_bytes());
    assert_eq!(f("Container.1.VolumeMount.1.MountPath"), "/etc/shr");

    // The JIT config is nowhere else: not in env, command, tags or any other field.
    for (k, v) in &group.fields.0 {
        if k != "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content" {
            assert!(
                !v.contains(&jit_config()[..20]),
                "{k} carries the JIT config"
            );
        }
    }
    assert!(!format!("{:?}", group).contains(&jit_config()[..20]));

    let expected_tags: BTreeMap<String, String> = [
        (tags::CONTROLLER, CONTROLLER),
        (tags::TENANT, "acme"),
        (tags::REGISTRATION, "reg-1"),
        (tags::RUNNER, "runner-1"),
        (tags::CHARGE, "team-a"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    assert_eq!(group.tags, expected_tags);
    assert_eq!(instance.tags, expected_tags);
}

#[tokio::test]
async fn disk_bucket_becomes_an_oss_flex_volume_on_the_work_dir() {
    let sim = sim(sim_config()).await;
    let mut config = provider_config(&sim, SECRET);
    config.oss = Some(OssConfig {
        endpoint: "oss-cn-shanghai-internal.aliyuncs.com".into(),
        ram_role: "shr-runner".into(),
    });
    let provider = EciProvider::new(config).unwrap();
    assert!(provider.capabilities().disk_mount);
    let mut spec = spec();
    spec.disk_bucket = Some("cache-bucket".into());
    provider
        .create(&request("runner-disk", spec))
        .await
        .unwrap();
    let group = sim.group_named("runner-disk").unwrap();
    assert_eq!(group.fields.get("Volume.2.Type"), Some("FlexVolume"));
    assert_eq!(
        group.fields.get("Volume.2.FlexVolume.Driver"),
        Some("alicloud/oss")
    );
    let options: serde_json::Value =
        serde_json::from_str(group.fields.get("Volume.2.FlexVolume.Options").unwrap()).unwrap();
    assert_eq!(options["bucket"], "cache-bucket");
    assert_eq!(options["ramRole"], "shr-runner");
    assert_eq!(
        group.fields.get("Container.1.VolumeMount.2.MountPath"),
        Some("/home/runner/_work")
    );
}

#[tokio::test]
async fn create_twice_leaves_one_instance() {
    let sim = sim(sim_config()).await;
    let provider = provider(&sim);
    let first = provider.create(&request("runner-2", spec())).await.unwrap();
    let second = provider.create(&request("runner-2", spec())).await.unwrap();
    assert_eq!(first.id, second.id);
    assert_eq!(sim.groups().len(), 1);
}

#[tokio::test]
async fn delete_of_a_missing_instance_is_ok_and_delete_removes() {
    let sim = sim(sim_config()).await;
    let provider = provider(&sim);
    provider.delete("never-created").await.unwrap();
    provider.create(&request("runner-3", spec())).await.unwrap();
    provider.delete("runner-3").await.unwrap();
    assert!(sim.groups().is_empty());
    assert_eq!(provider.get("runner-3").await.unwrap(), None);
}

#[tokio::test]
async fn list_returns_only_this_controllers_instances_across_pages() {
    let sim = sim(sim_config()).await;
    let provider = provider(&sim);
    let ours = |name: &str| {
        BTreeMap::from([
            (tags::CONTROLLER.to_owned(), CONTROLLER.to_owned()),
            (tags::RUNNER.to_owned(), name.to_owned()),
        ])
    };
    for i in 0..23 {
        sim.create_orphan(&format!("orphan-{i}"), ours(&format!("orphan-{i}")));
    }
    sim.create_orphan(
        "foreign",
        BTreeMap::from([(tags::CONTROLLER.to_owned(), "other".to_owned())]),
    );
    sim.create_orphan("untagged", BTreeMap::new());

    let listed = provider.list().await.unwrap();
    assert_eq!(listed.len(), 23);
    assert!(listed.iter().all(|i| i.runner_name.starts_with("orphan-")));
    assert!(listed.iter().all(|i| i.status == InstanceStatus::Running));
    assert_eq!(provider.get("foreign").await.unwrap(), None);
}

#[tokio::test]
async fn service_errors_map_to_error_kinds() {
    let sim = sim(sim_config()).await;
    let provider = provider(&sim);
    for (fault, kind) in [
        (Fault::Throttling, ErrorKind::Transient),
        (Fault::ServerError, ErrorKind::Transient),
        (Fault::Unavailable, ErrorKind::Transient),
        (Fault::NoStock, ErrorKind::Quota),
    ] {
        sim.fail_next(1, fault);
        let error = provider.list().await.unwrap_err();
        assert_eq!(error.kind(), kind, "{fault:?}: {error}");
    }
    sim.fail_next(1, Fault::NoStock);
    let error = provider
        .create(&request("runner-q", spec()))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Quota);

    let bad = EciProvider::new(provider_config(&sim, "wrong-secret")).unwrap();
    let error = bad.list().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Permanent);
    // The ECI error is kept as the source, typed, not flattened into a string.
    let cause = error
        .cause::<cloud_alibaba::EciError>()
        .expect("the ECI error is the source");
    assert_eq!(cause.code(), Some("SignatureDoesNotMatch"), "{error}");
    assert!(std::error::Error::source(&error).is_some());
    assert!(!error.to_string().contains("wrong-secret"));
}

#[tokio::test]
async fn seeded_failure_rate_is_reproducible() {
    let outcomes = async || {
        let sim = sim(sim_config()).await;
        let provider = provider(&sim);
        sim.set_failure_rate(50, Fault::Throttling, 7);
        let mut out = Vec::new();
        for _ in 0..12 {
            out.push(provider.list().await.is_ok());
        }
        out
    };
    let first = outcomes().await;
    assert_eq!(first, outcomes().await);
    assert!(first.contains(&true) && first.contains(&false));
}

#[tokio::test]
async fn provider_refuses_invalid_requests_before_sending() {
    let sim = sim(sim_config()).await;
    let provider = provider(&sim);
    let mut odd = spec();
    odd.cpu_millis = 250;
    odd.memory_mib = 4096;
    let error = provider
        .create(&request("runner-4", odd))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Permanent);
    let error = provider
        .create(&request("Bad_Name", spec()))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Permanent);
    let mut disk = spec();
    disk.disk_bucket = Some("b".into());
    assert!(!provider.capabilities().disk_mount);
    let error = provider
        .create(&request("runner-5", disk))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Permanent);
    assert!(sim.calls().is_empty());
    assert!(provider.capabilities().allows(2000, 16384));
    assert!(!provider.capabilities().allows(250, 4096));
}

#[tokio::test]
async fn status_follows_the_group() {
    let sim = sim(sim_config()).await;
    let provider = provider(&sim);
    let created = provider.create(&request("runner-6", spec())).await.unwrap();
    eventually("running", || {
        sim.group_named("runner-6").unwrap().status == GroupStatus::Running
    })
    .await;
    assert_eq!(
        provider.get("runner-6").await.unwrap().unwrap().status,
        InstanceStatus::Running
    );
    sim.set_status(&created.id, GroupStatus::Succeeded);
    assert_eq!(
        provider.get("runner-6").await.unwrap().unwrap().status,
        InstanceStatus::Stopped
    );
}

/// The settings section a real operator writes: runner_command, registry logins (secret
/// references) and OSS, parsed, built, and sent as ECI parameters.
#[tokio::test]
async fn settings_runner_command_registry_and_oss_reach_the_request() {
    use providers::CloudSettings as _;
    use registration::ProviderSettings as _;
    let dir = tempfile::tempdir().unwrap();
    let secret = |name: &str, value: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, value).unwrap();
        format!("file:{}", path.display())
    };
    let sim = sim(sim_config()).await;
    let section = format!(
        r#"endpoint = "{base}"
region = "{REGION}"
access_key_id = "{KEY_ID}"
access_key_secret = "{aks}"
vswitch_id = "vsw-default"
security_group_id = "sg-default"
runner_command = ["/bin/sh", "-c", "exec /home/runner/run.sh"]
registry_credentials = [{{ server = "registry.cn-shanghai.aliyuncs.com", username = "puller", password = "{pw}" }}]
oss = {{ endpoint = "oss-cn-shanghai-internal.aliyuncs.com", ram_role = "shr-runner" }}
"#,
        base = sim.base_url(),
        aks = secret("aks", SECRET),
        pw = secret("pw", "registry-pw"),
    );
    let raw: cloud_alibaba::settings::RawEciSettings = toml::from_str(&section).unwrap();
    let settings = cloud_alibaba::EciSettings::validate(raw).unwrap();
    assert!(settings.capabilities().disk_mount, "oss enables disk-");
    let p = settings.build(CONTROLLER, "acme").unwrap();
    assert!(p.capabilities().disk_mount);
    let mut spec = spec();
    spec.disk_bucket = Some("cache-bucket".into());
    p.create(&request("runner-settings", spec)).await.unwrap();
    let group = sim.group_named("runner-settings").unwrap();
    let f = |k: &str| group.fields.get(k).map(str::to_owned);
    assert_eq!(
        f("Container.1.Command.3").as_deref(),
        Some("exec /home/runner/run.sh")
    );
    assert_eq!(
        f("ImageRegistryCredential.1.Server").as_deref(),
        Some("registry.cn-shanghai.aliyuncs.com")
    );
    assert_eq!(
        f("ImageRegistryCredential.1.UserName").as_deref(),
        Some("puller")
    );
    assert_eq!(
        f("ImageRegistryCredential.1.Password").as_deref(),
        Some("registry-pw")
    );
    assert_eq!(
        f("Volume.2.FlexVolume.Driver").as_deref(),
        Some("alicloud/oss")
    );

    let without_oss: String = section
        .lines()
        .filter(|l| !l.starts_with("oss"))
        .collect::<Vec<_>>()
        .join("\n");
    let raw: cloud_alibaba::settings::RawEciSettings = toml::from_str(&without_oss).unwrap();
    let settings = cloud_alibaba::EciSettings::validate(raw).unwrap();
    assert!(!settings.capabilities().disk_mount, "no oss, no disk-");
    let bad = section.replace(&secret("pw", "registry-pw"), "plain");
    let raw: cloud_alibaba::settings::RawEciSettings = toml::from_str(&bad).unwrap();
    let errors = cloud_alibaba::EciSettings::validate(raw).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.field == "registry_credentials[0].password"),
        "{errors:?}"
    );
}
