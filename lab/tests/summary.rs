//! The demo summary catches what is wrong: each test plants one fault behind the system's
//! back (an orphan instance, a stray GitHub runner, a job nobody serves, a change during the
//! quiet period) and checks that the summary names it and that the demo's verdict
//! ([`Summary::ok`], its exit code) is a failure. Everything runs in this process against a
//! real nats-server; the sweep is slowed down so it cannot tidy the plant away in time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use bus_schema::ProviderKind;
use shr_lab::demo::LABEL_SETS;
use shr_lab::harness::{CONTROLLER_ID, Harness, HarnessOptions};

/// Long enough for two jobs to run; the quiet period comes on top.
const TIMEOUT: Duration = Duration::from_secs(20);

async fn harness(dir: &tempfile::TempDir, provider: ProviderKind) -> Harness {
    let mut options = HarnessOptions::new(dir.path().join("work"));
    options.provider = provider;
    options.job_duration = Duration::from_millis(200);
    options.lab_binary = Some(env!("CARGO_BIN_EXE_shr-lab").into());
    // The sweep would remove orphans and stray runners eventually; not within this run.
    options.sweep_interval = Duration::from_secs(3600);
    Harness::start(options).await.expect("harness starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_orphan_instance_shows_as_leaked_and_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&dir, ProviderKind::AzureAci).await;
    h.queue_jobs(2, &LABEL_SETS);
    h.cloud
        .as_ref()
        .unwrap()
        .create_orphan(CONTROLLER_ID, "shr-demo-999-1");
    let summary = h.wait_settled(TIMEOUT, false).await.unwrap();
    h.stop().await;
    assert_eq!(summary.completed, 2, "{summary}");
    assert_eq!(summary.leaked_instances, 1, "{summary}");
    assert_eq!(summary.leaked, 1, "{summary}");
    // Not created through the API: not provisioned, and the jobs' own runners are reaped.
    assert_eq!(summary.provisioned, summary.reaped, "{summary}");
    assert!(!summary.ok(), "{summary}");
    assert!(summary.to_string().contains("instances=1"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_github_runner_shows_as_leaked_and_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&dir, ProviderKind::Local).await;
    h.queue_jobs(2, &LABEL_SETS);
    h.plant_stray_runner("someone-elses-runner").await.unwrap();
    let summary = h.wait_settled(TIMEOUT, false).await.unwrap();
    h.stop().await;
    assert_eq!(summary.completed, 2, "{summary}");
    assert_eq!(summary.leaked_runners, 1, "{summary}");
    assert_eq!(summary.leaked, 1, "{summary}");
    assert!(!summary.ok(), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_nobody_serves_shows_as_lost_and_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&dir, ProviderKind::Local).await;
    h.queue_jobs(1, &LABEL_SETS);
    // A job for another runner pool: queued in GitHub, never ours, never completed.
    h.queue_jobs(1, &[&["self-hosted", "gpu-pool"]]);
    let summary = h.wait_settled(TIMEOUT, false).await.unwrap();
    h.stop().await;
    assert_eq!((summary.jobs, summary.completed), (2, 1), "{summary}");
    assert_eq!(summary.lost, 1, "{summary}");
    assert_eq!(summary.leaked, 0, "{summary}");
    assert!(!summary.ok(), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_during_the_quiet_period_is_not_summarised_as_clean() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(&dir, ProviderKind::Local).await;
    let quiet = h.quiet_period();
    assert!(
        quiet > actors::consume::backoff(i64::MAX),
        "the quiet period outlasts the longest redelivery backoff: {quiet:?}"
    );
    // Nothing queued: the first look is clean at once, so the quiet period starts; a stray
    // runner appears in it. A harness that trusted the first look would report a clean run.
    let planted = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        h.plant_stray_runner("late-stray").await.unwrap();
    };
    let (summary, ()) = tokio::join!(h.wait_settled(Duration::from_secs(5), false), planted);
    let summary = summary.unwrap();
    h.stop().await;
    assert_eq!(summary.leaked_runners, 1, "{summary}");
    assert!(!summary.ok(), "{summary}");
}
