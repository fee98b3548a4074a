#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Batch provider against the simulator, over real HTTP.

mod common;

use std::collections::BTreeMap;

use bus_schema::{ErrorKind, ProviderKind};
use cloud_gcp::BatchProvider;
use cloud_gcp::sim::Fault;
use common::*;
use providers::{InstanceStatus, Provider};

const KIND: ProviderKind = ProviderKind::GcpBatch;

#[tokio::test]
async fn create_sends_a_privileged_container_with_a_secret_variable() {
    let sim = start(sim_config()).await;
    let mut config = gcp_config(&sim);
    config.network = Some("runners".into());
    let provider = BatchProvider::new(config).unwrap();
    let mut request = request(KIND, "shr-acme-50-1");
    request.spec.network.subnet = Some("runners-eu".into());
    let instance = provider.create(&request).await.unwrap();
    assert_eq!(
        instance.status,
        InstanceStatus::Pending,
        "a new job is QUEUED"
    );

    let jobs = sim.batch_jobs();
    assert_eq!(jobs.len(), 1);
    let body = &jobs[0].request;
    let task = &body["taskGroups"][0]["taskSpec"];
    let runnable = &task["runnables"][0];
    assert_eq!(runnable["container"]["options"], "--privileged");
    // dind: the entrypoint is a shell that starts dockerd, then execs run.sh.
    assert_eq!(runnable["container"]["entrypoint"], "/bin/sh");
    assert_eq!(runnable["container"]["commands"][0], "-c");
    let script = runnable["container"]["commands"][1].as_str().unwrap();
    assert!(script.starts_with("sudo -n dockerd"), "{script}");
    assert!(script.ends_with("exec /home/runner/run.sh"), "{script}");
    assert_eq!(
        runnable["environment"]["secretVariables"]["ACTIONS_RUNNER_INPUT_JITCONFIG"],
        format!("projects/{PROJECT}/secrets/shr-acme-50-1-jit/versions/1")
    );
    assert_eq!(task["computeResource"]["cpuMilli"], 2000);
    assert_eq!(task["computeResource"]["memoryMib"], 4096);
    assert_eq!(task["maxRunDuration"], "7200s");
    assert_eq!(body["taskGroups"][0]["taskCount"], 1);
    assert_eq!(body["labels"]["shr-controller"], CONTROLLER);
    assert_eq!(
        body["allocationPolicy"]["network"]["networkInterfaces"][0],
        serde_json::json!({
            "network": format!("projects/{PROJECT}/global/networks/runners"),
            "subnetwork": format!("projects/{PROJECT}/regions/{REGION}/subnetworks/runners-eu"),
        })
    );
    assert!(!body.to_string().contains(JIT));
    let create = sim
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/jobs"))
        .unwrap();
    assert_eq!(create.query["jobId"], "shr-acme-50-1");
    assert_eq!(
        provider.get("shr-acme-50-1").await.unwrap().unwrap().status,
        InstanceStatus::Running
    );
}

#[tokio::test]
async fn create_twice_leaves_one_job() {
    let sim = start(sim_config()).await;
    let provider = BatchProvider::new(gcp_config(&sim)).unwrap();
    let request = request(KIND, "shr-acme-51-1");
    provider.create(&request).await.unwrap();
    provider.create(&request).await.unwrap();
    assert_eq!(sim.batch_jobs().len(), 1);
}

#[tokio::test]
async fn delete_waits_for_the_operation_and_missing_is_success() {
    let mut config = sim_config();
    config.operation_polls = 3;
    let sim = start(config).await;
    let provider = BatchProvider::new(gcp_config(&sim)).unwrap();
    provider
        .create(&request(KIND, "shr-acme-52-1"))
        .await
        .unwrap();
    provider.delete("shr-acme-52-1").await.unwrap();
    assert!(
        sim.batch_jobs().is_empty(),
        "gone once the operation is done"
    );
    assert!(sim.secrets().is_empty());
    let polls = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/operations/"))
        .count();
    assert_eq!(polls, 3);
    provider.delete("shr-acme-52-1").await.unwrap();
}

#[tokio::test]
async fn delete_retried_after_a_transient_failure_completes() {
    let sim = start(sim_config()).await;
    let provider = BatchProvider::new(gcp_config(&sim)).unwrap();
    provider
        .create(&request(KIND, "shr-acme-53-1"))
        .await
        .unwrap();
    sim.inject(Fault::Unavailable, 1);
    let err = provider.delete("shr-acme-53-1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
    provider.delete("shr-acme-53-1").await.unwrap();
    assert!(sim.batch_jobs().is_empty());
}

#[tokio::test]
async fn list_filters_by_controller_label() {
    let sim = start(sim_config()).await;
    let provider = BatchProvider::new(gcp_config(&sim)).unwrap();
    provider
        .create(&request(KIND, "shr-acme-54-1"))
        .await
        .unwrap();
    let theirs = BTreeMap::from([("shr-controller".to_owned(), "other".to_owned())]);
    sim.insert_batch_job(REGION, "shr-other-1-1", theirs);
    sim.insert_batch_job(REGION, "shr-untagged-1-1", BTreeMap::new());
    let listed = provider.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].runner_name, "shr-acme-54-1");
    let list = sim
        .requests()
        .into_iter()
        .find(|r| r.method == "GET" && r.path.ends_with("/jobs"))
        .unwrap();
    assert_eq!(
        list.query["filter"],
        format!("labels.shr-controller=\"{CONTROLLER}\"")
    );
}

#[tokio::test]
async fn quota_and_throttling_are_told_apart() {
    let sim = start(sim_config()).await;
    let provider = BatchProvider::new(gcp_config(&sim)).unwrap();
    sim.inject(Fault::Quota, 1);
    let err = provider
        .create(&request(KIND, "shr-acme-55-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Quota);
    sim.inject(Fault::Throttle, 1);
    let err = provider
        .create(&request(KIND, "shr-acme-55-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
    provider
        .create(&request(KIND, "shr-acme-55-1"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_runner_service_account_alone_may_read_the_runners_secret() {
    let sim = start(sim_config()).await;
    let mut config = gcp_config(&sim);
    let account = format!("runner@{PROJECT}.iam.gserviceaccount.com");
    config.runner_service_account = Some(account.clone());
    let provider = BatchProvider::new(config).unwrap();
    provider
        .create(&request(KIND, "shr-acme-72-1"))
        .await
        .unwrap();
    let body = &sim.batch_jobs()[0].request;
    assert_eq!(body["allocationPolicy"]["serviceAccount"]["email"], account);
    let secret = format!("projects/{PROJECT}/secrets/shr-acme-72-1-jit");
    assert!(sim.secret_readable_by(&secret, Some(&account)));
    assert!(
        !sim.secret_readable_by(&secret, None),
        "the default compute account"
    );
    let policy = sim
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("shr-acme-72-1-jit:setIamPolicy"))
        .expect("a per-secret IAM policy");
    assert_eq!(
        policy.body["policy"]["bindings"][0]["role"],
        "roles/secretmanager.secretAccessor"
    );
}
