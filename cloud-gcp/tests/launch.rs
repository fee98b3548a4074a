#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The sim runs each container through the image model: the provider's command starts the
//! runner program (via a fake `run.sh`) with the JIT config in its env, never in argv, and the
//! execution/job state follows the process. A command that skips `run.sh` starts no runner.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bus_schema::ProviderKind;
use cloud_gcp::sim::Launch;
use cloud_gcp::{BatchProvider, CloudRunProvider};
use common::*;
use providers::{InstanceStatus, Provider};

/// A script that records its args and JIT env var, then exits with `code`.
fn script(dir: &Path, code: i32) -> PathBuf {
    let path = dir.join("runner.sh");
    let out = dir.join("out");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"args=$*\" > {out}.tmp\necho \"jit=$ACTIONS_RUNNER_INPUT_JITCONFIG\" >> {out}.tmp\nmv {out}.tmp {out}\nexit {code}\n",
            out = out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn cloud_run_execution_runs_the_child_with_the_jit_in_env() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sim_config();
    config.launch = Some(Launch {
        program: script(dir.path(), 0),
        args: vec!["sim".into(), "runner".into()],
    });
    let sim = start(config).await;
    let provider = CloudRunProvider::new(gcp_config(&sim)).unwrap();
    provider
        .create(&request(ProviderKind::GcpCloudrun, "shr-acme-60-1"))
        .await
        .unwrap();
    let out = dir.path().join("out");
    eventually("the child's output", || out.exists()).await;
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains(&format!("jit={JIT}")), "{text}");
    assert!(text.contains("args=sim runner\n"), "{text}");
    assert!(!text.lines().next().unwrap().contains(JIT));
    eventually("the execution to succeed", || {
        sim.run_jobs()[0].state == "EXECUTION_SUCCEEDED"
    })
    .await;
    let instance = provider.get("shr-acme-60-1").await.unwrap().unwrap();
    assert_eq!(instance.status, InstanceStatus::Stopped);
    assert_eq!(sim.exited_without_runner(), 0);
}

#[tokio::test]
async fn a_command_that_skips_run_sh_starts_no_runner_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sim_config();
    config.launch = Some(Launch {
        program: script(dir.path(), 0),
        args: vec![],
    });
    let sim = start(config).await;
    for (kind, name) in [
        (ProviderKind::GcpCloudrun, "shr-acme-63-1"),
        (ProviderKind::GcpBatch, "shr-acme-63-2"),
    ] {
        let mut pconfig = gcp_config(&sim);
        pconfig.runner_command = Some(vec!["/bin/sh".into(), "-c".into(), "exit 0".into()]);
        let provider: Box<dyn Provider> = match kind {
            ProviderKind::GcpCloudrun => Box::new(CloudRunProvider::new(pconfig).unwrap()),
            _ => Box::new(BatchProvider::new(pconfig).unwrap()),
        };
        provider.create(&request(kind, name)).await.unwrap();
    }
    eventually("two no-runner exits", || sim.exited_without_runner() == 2).await;
    assert!(!dir.path().join("out").exists(), "no runner ran");
}

#[tokio::test]
async fn batch_job_fails_when_its_child_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sim_config();
    config.launch = Some(Launch {
        program: script(dir.path(), 3),
        args: vec![],
    });
    let sim = start(config).await;
    let provider = BatchProvider::new(gcp_config(&sim)).unwrap();
    provider
        .create(&request(ProviderKind::GcpBatch, "shr-acme-61-1"))
        .await
        .unwrap();
    eventually("the job to fail", || sim.batch_jobs()[0].state == "FAILED").await;
    let text = std::fs::read_to_string(dir.path().join("out")).unwrap();
    assert!(text.contains(&format!("jit={JIT}")), "{text}");
    assert_eq!(
        sim.exited_without_runner(),
        0,
        "the runner started, then failed"
    );
}

#[tokio::test]
async fn deleting_a_job_kills_its_child() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sleeper.sh");
    std::fs::write(&path, "#!/bin/sh\nexec sleep 30\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = sim_config();
    config.launch = Some(Launch {
        program: path,
        args: vec![],
    });
    let sim = start(config).await;
    let provider = CloudRunProvider::new(gcp_config(&sim)).unwrap();
    provider
        .create(&request(ProviderKind::GcpCloudrun, "shr-acme-62-1"))
        .await
        .unwrap();
    assert!(sim.run_jobs()[0].child_running);
    assert_eq!(sim.run_jobs()[0].state, "EXECUTION_RUNNING");
    provider.delete("shr-acme-62-1").await.unwrap();
    assert!(sim.run_jobs().is_empty());
}

/// `runner_command` from the provider section reaches both job shapes: Cloud Run `command`,
/// Batch `entrypoint` + `commands`; an empty one is refused by name.
#[tokio::test]
async fn settings_runner_command_reaches_cloud_run_and_batch() {
    use providers::CloudSettings as _;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.json");
    std::fs::write(
        &key,
        secrecy::ExposeSecret::expose_secret(&key_json(&data("test-sa-key.pem"))),
    )
    .unwrap();
    let sim = start(sim_config()).await;
    let section = format!(
        r#"endpoint = "{base}"
project = "{PROJECT}"
region = "{REGION}"
service_account_key = "file:{key}"
runner_service_account = "runner@{PROJECT}.iam.gserviceaccount.com"
token_endpoint = "{base}/token"
runner_command = ["/usr/local/bin/entry", "--runner"]
"#,
        base = sim.base_url(),
        key = key.display(),
    );
    let raw = || toml::from_str::<cloud_gcp::settings::RawGcpSettings>(&section).unwrap();
    let run = cloud_gcp::settings::CloudRunSettings::validate(raw()).unwrap();
    let batch = cloud_gcp::settings::BatchSettings::validate(raw()).unwrap();
    run.build(CONTROLLER, "acme")
        .unwrap()
        .create(&request(ProviderKind::GcpCloudrun, "shr-acme-64-1"))
        .await
        .unwrap();
    batch
        .build(CONTROLLER, "acme")
        .unwrap()
        .create(&request(ProviderKind::GcpBatch, "shr-acme-64-2"))
        .await
        .unwrap();
    let job = &sim.run_jobs()[0].request;
    assert_eq!(
        job["template"]["template"]["containers"][0]["command"],
        serde_json::json!(["/usr/local/bin/entry", "--runner"])
    );
    let container =
        &sim.batch_jobs()[0].request["taskGroups"][0]["taskSpec"]["runnables"][0]["container"];
    assert_eq!(container["entrypoint"], "/usr/local/bin/entry");
    assert_eq!(container["commands"], serde_json::json!(["--runner"]));
    let empty = section.replace(r#"["/usr/local/bin/entry", "--runner"]"#, "[]");
    let errors = cloud_gcp::settings::CloudRunSettings::validate(
        toml::from_str::<cloud_gcp::settings::RawGcpSettings>(&empty).unwrap(),
    )
    .unwrap_err();
    assert_eq!(errors[0].field, "runner_command", "{errors:?}");
}
