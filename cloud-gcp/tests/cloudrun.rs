#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Cloud Run provider against the simulator, over real HTTP.

mod common;

use std::collections::BTreeMap;

use bus_schema::{ErrorKind, ProviderKind};
use cloud_gcp::CloudRunProvider;
use cloud_gcp::sim::Fault;
use common::*;
use providers::{InstanceStatus, Provider};

const KIND: ProviderKind = ProviderKind::GcpCloudrun;

#[tokio::test]
async fn create_sends_the_jit_config_as_a_secret_ref_never_in_clear() {
    let sim = start(sim_config()).await;
    let provider = CloudRunProvider::new(gcp_config(&sim)).unwrap();
    let instance = provider
        .create(&request(KIND, "shr-acme-42-1"))
        .await
        .unwrap();
    assert_eq!(instance.runner_name, "shr-acme-42-1");
    assert_eq!(
        instance.id,
        format!("projects/{PROJECT}/locations/{REGION}/jobs/shr-acme-42-1")
    );

    let jobs = sim.run_jobs();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.executions, 1, "the job is run once");
    assert_eq!(job.labels["shr-controller"], CONTROLLER);
    assert_eq!(job.labels["shr-runner"], "shr-acme-42-1");
    assert_eq!(job.labels["shr-charge"], "team-a");
    let task = &job.request["template"]["template"];
    assert_eq!(job.request["template"]["taskCount"], 1);
    assert_eq!(task["maxRetries"], 0);
    assert_eq!(task["timeout"], "7200s");
    let container = &task["containers"][0];
    assert_eq!(container["image"], "ghcr.io/actions/actions-runner:2.330.0");
    // The official image has no ENTRYPOINT/CMD: the command starts the runner.
    assert_eq!(
        container["command"],
        serde_json::json!(["/home/runner/run.sh"])
    );
    assert_eq!(container["resources"]["limits"]["cpu"], "2");
    assert_eq!(container["resources"]["limits"]["memory"], "4Gi");
    let env = &container["env"][0];
    assert_eq!(env["name"], "ACTIONS_RUNNER_INPUT_JITCONFIG");
    assert!(env.get("value").is_none());
    assert_eq!(
        env["valueSource"]["secretKeyRef"],
        serde_json::json!({ "secret": "shr-acme-42-1-jit", "version": "1" })
    );
    // Nowhere in any job request does the JIT config appear.
    for r in sim.requests() {
        if r.path.contains("/jobs") {
            assert!(!r.body.to_string().contains(JIT), "{}", r.path);
        }
    }
    let secrets = sim.secrets();
    assert_eq!(secrets.len(), 1);
    assert_eq!(
        secrets[0].name,
        format!("projects/{PROJECT}/secrets/shr-acme-42-1-jit")
    );
    assert_eq!(secrets[0].versions, vec![JIT.to_owned()]);
}

#[tokio::test]
async fn create_twice_leaves_one_job_with_one_execution() {
    let sim = start(sim_config()).await;
    let provider = CloudRunProvider::new(gcp_config(&sim)).unwrap();
    let request = request(KIND, "shr-acme-43-1");
    provider.create(&request).await.unwrap();
    let again = provider.create(&request).await.unwrap();
    assert_eq!(again.status, InstanceStatus::Running);
    let jobs = sim.run_jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].executions, 1);
}

#[tokio::test]
async fn create_over_a_foreign_job_of_the_same_name_fails_permanently() {
    let sim = start(sim_config()).await;
    let labels = BTreeMap::from([("shr-controller".to_owned(), "someone-else".to_owned())]);
    sim.insert_run_job(REGION, "shr-acme-44-1", labels);
    let provider = CloudRunProvider::new(gcp_config(&sim)).unwrap();
    let err = provider
        .create(&request(KIND, "shr-acme-44-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent);
}

#[tokio::test]
async fn delete_removes_job_and_secret_and_missing_is_success() {
    let sim = start(sim_config()).await;
    let provider = CloudRunProvider::new(gcp_config(&sim)).unwrap();
    provider
        .create(&request(KIND, "shr-acme-45-1"))
        .await
        .unwrap();
    assert!(provider.get("shr-acme-45-1").await.unwrap().is_some());
    provider.delete("shr-acme-45-1").await.unwrap();
    assert!(sim.run_jobs().is_empty());
    assert!(sim.secrets().is_empty());
    assert!(provider.get("shr-acme-45-1").await.unwrap().is_none());
    provider.delete("shr-acme-45-1").await.unwrap();
    provider.delete("shr-never-1-1").await.unwrap();
}

#[tokio::test]
async fn list_returns_only_our_jobs_across_pages() {
    let mut config = sim_config();
    config.max_page_size = 1;
    let sim = start(config).await;
    let provider = CloudRunProvider::new(gcp_config(&sim)).unwrap();
    provider
        .create(&request(KIND, "shr-acme-46-1"))
        .await
        .unwrap();
    let ours = BTreeMap::from([("shr-controller".to_owned(), CONTROLLER.to_owned())]);
    sim.insert_run_job(REGION, "shr-acme-46-2", ours);
    sim.insert_run_job(REGION, "shr-untagged-1-1", BTreeMap::new());
    let mut names: Vec<_> = provider
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.runner_name)
        .collect();
    names.sort();
    assert_eq!(names, ["shr-acme-46-1", "shr-acme-46-2"]);
    let lists = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/jobs"))
        .count();
    assert_eq!(lists, 3, "one page per job");
}

#[tokio::test]
async fn service_errors_map_to_error_kinds() {
    let sim = start(sim_config()).await;
    let provider = CloudRunProvider::new(gcp_config(&sim)).unwrap();
    for (fault, kind) in [
        (Fault::Throttle, ErrorKind::Transient),
        (Fault::Quota, ErrorKind::Quota),
        (Fault::Unavailable, ErrorKind::Transient),
        (Fault::Internal, ErrorKind::Transient),
    ] {
        sim.inject(fault, 1);
        let err = provider.list().await.unwrap_err();
        assert_eq!(err.kind(), kind, "{fault:?}: {err}");
    }
    // A slow answer is still an answer.
    sim.inject(Fault::Slow(std::time::Duration::from_millis(200)), 1);
    provider.list().await.unwrap();
    // Random failures, seeded: some calls fail transiently, none otherwise.
    sim.fail_percent(50, 7);
    let results: Vec<_> = list_many_times(&provider, 20).await;
    assert!(results.iter().any(|r| r.is_err()) && results.iter().any(|r| r.is_ok()));
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| *e == ErrorKind::Transient)
    );
}

async fn list_many_times(provider: &CloudRunProvider, n: usize) -> Vec<Result<(), ErrorKind>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(provider.list().await.map(|_| ()).map_err(|e| e.kind()));
    }
    out
}

#[tokio::test]
async fn a_wrong_key_is_a_permanent_error() {
    let sim = start(sim_config()).await;
    let provider =
        CloudRunProvider::new(gcp_config_with_key(&sim, &data("test-other-key.pem"))).unwrap();
    let err = provider.list().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert!(err.to_string().contains("Invalid JWT Signature."), "{err}");
    // The GCP error is kept as the source, typed, not flattened into a string.
    assert!(
        matches!(
            err.cause::<cloud_gcp::GcpError>(),
            Some(cloud_gcp::GcpError::Token { http: 400, .. })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn the_sim_rejects_sizes_cloud_run_does_not_allow() {
    let sim = start(sim_config()).await;
    let provider = CloudRunProvider::new(gcp_config(&sim)).unwrap();
    assert!(!provider.capabilities().allows(8000, 2048));
    assert!(provider.capabilities().allows(4000, 2048));
    let mut request = request(KIND, "shr-acme-47-1");
    request.spec.cpu_millis = 8000;
    request.spec.memory_mib = 2048;
    let err = provider.create(&request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert!(err.to_string().contains("INVALID_ARGUMENT"), "{err}");
    assert!(sim.run_jobs().is_empty());
}

#[tokio::test]
async fn invalid_runner_names_are_refused_before_any_call() {
    let sim = start(sim_config()).await;
    let provider = CloudRunProvider::new(gcp_config(&sim)).unwrap();
    let err = provider
        .create(&request(KIND, "Shr_Bad_Name"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn a_runner_service_account_alone_may_read_the_runners_secret() {
    let sim = start(sim_config()).await;
    let mut config = gcp_config(&sim);
    let account = format!("runner@{PROJECT}.iam.gserviceaccount.com");
    config.runner_service_account = Some(account.clone());
    let provider = CloudRunProvider::new(config).unwrap();
    provider
        .create(&request(KIND, "shr-acme-70-1"))
        .await
        .unwrap();
    let job = &sim.run_jobs()[0];
    assert_eq!(
        job.request["template"]["template"]["serviceAccount"],
        account
    );
    let secret = format!("projects/{PROJECT}/secrets/shr-acme-70-1-jit");
    assert!(sim.secret_readable_by(&secret, Some(&account)));
    assert!(!sim.secret_readable_by(&secret, Some("other@x.iam.gserviceaccount.com")));
    assert!(
        !sim.secret_readable_by(&secret, None),
        "the default compute account"
    );
    // Without the setting, runners use the default account and no per-secret policy is set.
    let plain = CloudRunProvider::new(gcp_config(&sim)).unwrap();
    plain.create(&request(KIND, "shr-acme-71-1")).await.unwrap();
    let secret = format!("projects/{PROJECT}/secrets/shr-acme-71-1-jit");
    assert!(sim.secret_readable_by(&secret, None));
}
