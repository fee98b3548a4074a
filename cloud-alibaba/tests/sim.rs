#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The simulator checks what ECI checks and answers with ECI's error shapes.

mod common;

use std::os::unix::fs::PermissionsExt as _;

use cloud_alibaba::sim::{GroupStatus, Launch};
use common::*;
use providers::Provider;

fn assert_error(body: &serde_json::Value, code: &str) {
    assert_eq!(body["Code"], code, "{body}");
    for field in ["RequestId", "HostId", "Message"] {
        assert!(body[field].is_string(), "{field} missing in {body}");
    }
}

#[tokio::test]
async fn rejects_a_wrong_signature_with_signature_does_not_match() {
    let sim = sim(sim_config()).await;
    let params = create_params("grp-a");
    let (status, body) = raw_call(
        &sim,
        "CreateContainerGroup",
        &as_refs(&params),
        "not-the-secret",
        &nonce(),
        &now(),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&body, "SignatureDoesNotMatch");
    assert!(sim.groups().is_empty());
}

#[tokio::test]
async fn rejects_an_unknown_key_a_reused_nonce_and_a_stale_timestamp() {
    let sim = sim(sim_config()).await;
    let params = create_params("grp-b");
    let n = nonce();
    let (status, _) = raw_call(
        &sim,
        "DescribeContainerGroups",
        &[("RegionId", REGION)],
        SECRET,
        &n,
        &now(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = raw_call(
        &sim,
        "DescribeContainerGroups",
        &[("RegionId", REGION)],
        SECRET,
        &n,
        &now(),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&body, "SignatureNonceUsed");

    let (status, body) = raw_call(
        &sim,
        "CreateContainerGroup",
        &as_refs(&params),
        SECRET,
        &nonce(),
        "2016-02-23T12:46:24Z",
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&body, "InvalidTimeStamp.Expired");

    let mut p: std::collections::BTreeMap<String, String> = [
        ("Action", "DescribeContainerGroups"),
        ("AccessKeyId", "LTAIother"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    p.insert("Signature".into(), "x".into());
    let (status, body) = post(&sim, &p).await;
    assert_eq!(status, 404);
    assert_error(&body, "InvalidAccessKeyId.NotFound");
}

#[tokio::test]
async fn rejects_missing_parameters_bad_names_specs_and_long_env_values() {
    let sim = sim(sim_config()).await;
    let call = async |params: Vec<(String, String)>| {
        raw_call(
            &sim,
            "CreateContainerGroup",
            &as_refs(&params),
            SECRET,
            &nonce(),
            &now(),
        )
        .await
    };

    let mut p = create_params("grp-c");
    p.retain(|(k, _)| k != "VSwitchId");
    let (status, body) = call(p).await;
    assert_eq!(status, 400);
    assert_error(&body, "MissingParameter");

    let (status, body) = call(create_params("-bad-")).await;
    assert_eq!(status, 400);
    assert_error(&body, "InvalidParameter");
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .contains("ContainerGroupName")
    );

    let mut p = create_params("grp-d");
    p.retain(|(k, _)| k != "Memory");
    p.push(("Memory".into(), "4".into()));
    p.retain(|(k, _)| k != "Cpu");
    p.push(("Cpu".into(), "0.25".into()));
    let (status, body) = call(p).await;
    assert_eq!(status, 400);
    assert_error(&body, "InvalidParameter");
    assert!(body["Message"].as_str().unwrap().contains("Cpu/Memory"));

    let mut p = create_params("grp-e");
    p.push((
        "Container.1.EnvironmentVar.1.Key".into(),
        "ACTIONS_RUNNER_INPUT_JITCONFIG".into(),
    ));
    p.push(("Container.1.EnvironmentVar.1.Value".into(), "x".repeat(257)));
    let (status, body) = call(p).await;
    assert_eq!(status, 400);
    assert_error(&body, "InvalidParameter");
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .contains("EnvironmentVar.1.Value")
    );

    let mut p = create_params("grp-f");
    p.push(("Container.1.EnvironmentVar.1.Key".into(), "OK".into()));
    p.push(("Container.1.EnvironmentVar.1.Value".into(), "x".repeat(256)));
    assert_eq!(call(p).await.0, 200);
}

#[tokio::test]
async fn client_token_returns_the_same_group_or_a_mismatch() {
    let sim = sim(sim_config()).await;
    let mut p = create_params("grp-g");
    p.push(("ClientToken".into(), "grp-g".into()));
    let (status, first) = raw_call(
        &sim,
        "CreateContainerGroup",
        &as_refs(&p),
        SECRET,
        &nonce(),
        &now(),
    )
    .await;
    assert_eq!(status, 200);
    let (_, second) = raw_call(
        &sim,
        "CreateContainerGroup",
        &as_refs(&p),
        SECRET,
        &nonce(),
        &now(),
    )
    .await;
    assert_eq!(first["ContainerGroupId"], second["ContainerGroupId"]);
    assert_eq!(sim.groups().len(), 1);

    p.push(("ActiveDeadlineSeconds".into(), "60".into()));
    let (status, body) = raw_call(
        &sim,
        "CreateContainerGroup",
        &as_refs(&p),
        SECRET,
        &nonce(),
        &now(),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&body, "IdempotentParameterMismatch");
}

#[tokio::test]
async fn delete_of_an_unknown_group_is_not_found() {
    let sim = sim(sim_config()).await;
    let (status, body) = raw_call(
        &sim,
        "DeleteContainerGroup",
        &[("RegionId", REGION), ("ContainerGroupId", "eci-missing")],
        SECRET,
        &nonce(),
        &now(),
    )
    .await;
    assert_eq!(status, 404);
    assert_error(&body, "InvalidContainerGroupId.NotFound");
    assert_eq!(
        cloud_alibaba::error::classify(status, body["Code"].as_str().unwrap()),
        bus_schema::ErrorKind::NotFound
    );
}

/// A launch program that records its argv, env and the JIT config file, then waits for
/// a release file (or exits at once when `exit_code` is given).
fn script(dir: &std::path::Path, wait: bool) -> std::path::PathBuf {
    let path = dir.join("runner.sh");
    let out = dir.join("out");
    let body = format!(
        "#!/bin/sh\n\
         echo \"$$\" > {out}.pid\n\
         printf '%s\\n' \"$@\" > {out}.args\n\
         env > {out}.env\n\
         while [ \"$#\" -gt 0 ]; do if [ \"$1\" = --jitconfig-file ]; then cat \"$2\" > {out}.jit; fi; shift; done\n\
         {tail}\n",
        out = out.display(),
        tail = if wait {
            "while :; do sleep 0.05; done"
        } else {
            "exit 0"
        }
    );
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The image model runs the provider's command with a real `sh`: it reads the mounted JIT
/// config file into `ACTIONS_RUNNER_INPUT_JITCONFIG` and execs the fake `run.sh`, which starts
/// the launch program with only its own args.
#[tokio::test]
async fn launch_runs_the_command_that_reads_the_jit_file_into_env() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sim_config();
    config.launch = Some(Launch {
        program: script(dir.path(), false),
        args: vec!["sim".into(), "runner".into()],
    });
    let sim = sim(config).await;
    let provider = provider(&sim);
    provider
        .create(&request("runner-l1", spec()))
        .await
        .unwrap();
    eventually("child exit", || {
        sim.group_named("runner-l1").unwrap().status == GroupStatus::Succeeded
    })
    .await;

    let read = |ext: &str| std::fs::read_to_string(dir.path().join(format!("out.{ext}"))).unwrap();
    assert_eq!(read("args"), "sim\nrunner\n");
    let env = read("env");
    assert!(env.contains(&format!("ACTIONS_RUNNER_INPUT_JITCONFIG={}", jit_config())));
    assert_eq!(sim.exited_without_runner(), 0);
    assert_eq!(sim.launched(), ["runner-l1"]);
}

/// A group whose command never reaches `/home/runner/run.sh` ends without a runner and is
/// counted; the launch program never runs.
#[tokio::test]
async fn a_command_that_skips_run_sh_exits_without_a_runner() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sim_config();
    config.launch = Some(Launch {
        program: script(dir.path(), false),
        args: vec![],
    });
    let sim = sim(config).await;
    let mut pconfig = provider_config(&sim, SECRET);
    pconfig.runner_command = Some(vec!["/bin/sh".into(), "-c".into(), "true".into()]);
    let provider = cloud_alibaba::EciProvider::new(pconfig).unwrap();
    provider
        .create(&request("runner-l3", spec()))
        .await
        .unwrap();
    eventually("no-runner exit", || sim.exited_without_runner() == 1).await;
    assert!(!dir.path().join("out.args").exists());
}

#[tokio::test]
async fn deleting_a_group_kills_its_child() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sim_config();
    config.launch = Some(Launch {
        program: script(dir.path(), true),
        args: vec![],
    });
    let sim = sim(config).await;
    let provider = provider(&sim);
    provider
        .create(&request("runner-l2", spec()))
        .await
        .unwrap();
    let pid_file = dir.path().join("out.pid");
    eventually("child start", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
    })
    .await;
    assert_eq!(
        sim.group_named("runner-l2").unwrap().status,
        GroupStatus::Running
    );
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned();
    provider.delete("runner-l2").await.unwrap();
    eventually("child gone", || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    })
    .await;
}
