//! The full loop through each cloud simulator: 50 jobs per provider over a real nats-server,
//! with sizes and networks chosen by runs-on labels, and nothing lost, doubled or leaked; every
//! instance runs through the image model and none exits without starting a runner.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use bus_schema::ProviderKind;
use shr_lab::harness::{Harness, HarnessOptions};

/// Label sets valid on the provider: the default size, a labelled size, and a network
/// picked by label (vSwitch and security group on Alibaba, a subnet id from the simulator's
/// allow-list on AWS, a subnet name elsewhere).
fn label_sets(kind: ProviderKind) -> Vec<&'static [&'static str]> {
    let network: &'static [&'static str] = match kind {
        ProviderKind::AlibabaEci => &["serverless-hosted-runner", "vsw-demo2", "sg-demo2"],
        ProviderKind::AwsFargate => &["serverless-hosted-runner", "subnet-0e1f2a3b"],
        _ => &["serverless-hosted-runner", "subnet-runners-b"],
    };
    vec![
        &["serverless-hosted-runner"],
        &["serverless-hosted-runner", "cpu-2", "memory-4"],
        network,
        &[
            "self-hosted",
            "linux",
            "serverless-hosted-runner",
            "memory-1",
        ],
    ]
}

async fn fifty_jobs_through(kind: ProviderKind) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = HarnessOptions::new(dir.path().join("work"));
    options.provider = kind;
    options.job_duration = Duration::from_millis(300);
    let mut h = Harness::start(options).await.expect("harness starts");
    h.queue_jobs(50, &label_sets(kind));
    let summary = h
        .wait_settled(Duration::from_secs(300), false)
        .await
        .unwrap();
    assert!(
        summary.ok(),
        "{kind}: {summary}\n{}",
        h.explain_lost().await.unwrap()
    );
    // Every instance ran through the image model and its command started a runner.
    let cloud = h.cloud.as_ref().expect("a cloud simulator");
    assert_eq!(summary.no_runner, 0, "{kind}: {summary}");
    assert_eq!(cloud.exited_without_runner(), 0, "{kind}");
    assert!(cloud.launches().0 >= 50, "{kind}: {:?}", cloud.launches());
    // The labels reached the runner specs the provider was given.
    let records = h.runner_records().await.unwrap();
    assert!(records.iter().all(|r| r.provider == kind));
    let sized = records
        .iter()
        .filter_map(|r| r.spec.as_ref())
        .filter(|s| s.cpu_millis == 2000 && s.memory_mib == 4096)
        .count();
    assert!(
        sized >= 12,
        "{kind}: {sized} runners sized by cpu-2/memory-4"
    );
    let networked = records
        .iter()
        .filter_map(|r| r.spec.as_ref())
        .filter(|s| {
            s.network.vswitch.as_deref() == Some("vsw-demo2")
                || s.network.subnet.as_deref() == Some("runners-b")
                || s.network.subnet.as_deref() == Some("0e1f2a3b")
        })
        .count();
    assert!(
        networked >= 12,
        "{kind}: {networked} runners placed by network labels"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_jobs_through_alibaba_eci() {
    fifty_jobs_through(ProviderKind::AlibabaEci).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_jobs_through_azure_aci() {
    fifty_jobs_through(ProviderKind::AzureAci).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_jobs_through_gcp_cloudrun() {
    fifty_jobs_through(ProviderKind::GcpCloudrun).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_jobs_through_gcp_batch() {
    fifty_jobs_through(ProviderKind::GcpBatch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_jobs_through_aws_fargate() {
    fifty_jobs_through(ProviderKind::AwsFargate).await;
}
