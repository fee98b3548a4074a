#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The sim starts a runner child with the JIT config in its env, never in argv, and the
//! execution/job state follows the child.

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
