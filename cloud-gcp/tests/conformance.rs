#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The providers' requests held to Google's discovery documents (run.v2, batch.v1,
//! secretmanager.v1 as bundled in `simulators/vendor/google/`). The simulator refuses any
//! request that departs from them with 400 `INVALID_ARGUMENT` and counts the refusals.

mod common;

use bus_schema::ProviderKind;
use cloud_gcp::cloudrun::cpu_quantity;
use cloud_gcp::{BatchProvider, CloudRunProvider, shapes};
use common::*;
use providers::Provider;
use serde_json::json;
use simulators::conformance::discovery::{Api, Direction};

#[tokio::test]
async fn cloud_run_requests_conform_to_run_v2_and_secretmanager_v1() {
    let sim = start(sim_config()).await;
    let mut config = gcp_config(&sim);
    config.network = Some("runners".into());
    let provider = CloudRunProvider::new(config).unwrap();
    let mut request = request(ProviderKind::GcpCloudrun, "shr-acme-70-1");
    request.spec.disk_bucket = Some("cache-bucket".into());
    provider.create(&request).await.unwrap();
    provider.get("shr-acme-70-1").await.unwrap().unwrap();
    assert_eq!(provider.list().await.unwrap().len(), 1);
    provider.delete("shr-acme-70-1").await.unwrap();
    assert_eq!(sim.conformance_rejections(), 0, "{:#?}", sim.requests());
    assert!(sim.requests().len() >= 6, "the calls above reached the sim");
}

#[tokio::test]
async fn batch_requests_conform_to_batch_v1_including_the_job_id_parameter() {
    let sim = start(sim_config()).await;
    let provider = BatchProvider::new(gcp_config(&sim)).unwrap();
    let mut request = request(ProviderKind::GcpBatch, "shr-acme-71-1");
    request.spec.disk_bucket = Some("cache-bucket".into());
    request.spec.dind = true;
    provider.create(&request).await.unwrap();
    provider.get("shr-acme-71-1").await.unwrap().unwrap();
    assert_eq!(provider.list().await.unwrap().len(), 1);
    provider.delete("shr-acme-71-1").await.unwrap();
    assert_eq!(sim.conformance_rejections(), 0);
    let create = sim
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/jobs"))
        .unwrap();
    assert_eq!(
        create.query.keys().collect::<Vec<_>>(),
        ["jobId"],
        "batch.v1 names the query parameter jobId"
    );
    let query: Vec<_> = create.query.clone().into_iter().collect();
    let checked =
        Api::BatchV1.check_request("projects.locations.jobs.create", &query, Some(&create.body));
    assert_eq!(checked, vec![]);
}

#[test]
fn every_cloud_run_shape_uses_a_cpu_value_run_v2_accepts() {
    let mut cpus: Vec<u32> = shapes::all().into_iter().map(|(c, _)| c).collect();
    cpus.dedup();
    assert_eq!(cpus, [1000, 2000, 4000, 8000]);
    for cpu in cpus {
        let job = json!({"template": {"template": {"containers": [{
            "image": "ghcr.io/actions/actions-runner:latest",
            "resources": {"limits": {"cpu": cpu_quantity(cpu), "memory": "4Gi"}},
        }]}}});
        assert_eq!(
            Api::RunV2.check("GoogleCloudRunV2Job", &job, Direction::Request),
            vec![],
            "{cpu} millicpu"
        );
    }
}
