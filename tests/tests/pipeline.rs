//! The job pipeline end to end: webhooks, poller, scheduler, provisioner and reaper over a
//! real nats-server, with the GitHub simulator and the local process provider.
//!
//! Each test asserts on what the simulators and the records say (jobs completed, runners and
//! instances gone), never on what the actors claim. Waiting is polling with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::time::Duration;

use bus_schema::{JobState, RunnerState};
use registration::Actor;
use shr_lab::demo::LABEL_SETS;
use shr_lab::harness::{Harness, HarnessOptions, Summary};
use simulators::github::JobStatus;

const SETTLE: Duration = Duration::from_secs(300);

async fn harness(dir: &tempfile::TempDir, tweak: impl FnOnce(&mut HarnessOptions)) -> Harness {
    let mut options = HarnessOptions::new(dir.path().join("work"));
    options.job_duration = Duration::from_millis(300);
    tweak(&mut options);
    Harness::start(options).await.expect("harness starts")
}

async fn settle(h: &Harness) -> Summary {
    let summary = h.wait_settled(SETTLE, false).await.unwrap();
    if !summary.ok() {
        panic!("{summary}\n{}", h.explain_lost().await.unwrap());
    }
    summary
}

/// Without faults, at most 5% more runners than jobs are made: `provisioned` is what the
/// local provider's create log shows, not what the scheduler recorded. A second runner is
/// made when a job takes a runner made for a job of other labels (GitHub gives a queued job
/// any runner whose labels cover it); the thief's own runner is then handed to a job waiting
/// for a `max_runners` slot where it can, so it is not wasted. The measured rate is printed.
fn assert_few_extra_runners(summary: &Summary) {
    println!(
        "extra runners: {} for {} jobs",
        summary.provisioned.saturating_sub(summary.jobs),
        summary.jobs
    );
    assert!(
        summary.provisioned * 100 <= summary.jobs * 105,
        "more than 1.05 runners per job: {summary}"
    );
}

/// Every queued job ran exactly once, on a runner of ours, and no runner ran two jobs.
fn assert_each_job_ran_once_on_its_own_runner(h: &Harness) {
    let state = h.sim.state();
    let mut runners = BTreeSet::new();
    for job in state.jobs.iter().filter(|j| h.jobs.contains(&j.id)) {
        assert_eq!(job.status, JobStatus::Completed, "job {}", job.id);
        let runner = job.runner_name.clone().expect("completed job has a runner");
        assert!(
            runner.starts_with("shr-demo-"),
            "job {} ran on {runner}",
            job.id
        );
        assert!(
            runners.insert(runner.clone()),
            "runner {runner} ran two jobs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_jobs_through_webhooks_each_get_one_runner() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&dir, |_| {}).await;
    h.queue_jobs(200, &LABEL_SETS);
    let summary = settle(&h).await;
    assert_eq!(summary.jobs, 200);
    assert_eq!(summary.completed, 200);
    assert_few_extra_runners(&summary);
    assert_each_job_ran_once_on_its_own_runner(&h);
    // Extra runners (a second runner after a steal) are bounded by the work on issue 13
    // part 4; printed here so a run shows them.
    println!("extra runners {} of 200", summary.provisioned - 200);
    let stats = h.running.as_ref().unwrap().webhook_stats.clone().unwrap();
    assert!(
        stats.accepted.load(std::sync::atomic::Ordering::Relaxed) >= 600,
        "queued, in_progress and completed per job"
    );
    h.stop().await;
}

/// The GitHub API calls so far that count against the rate budget (a 304 is free, as is
/// `/rate_limit`), as `METHOD /path` with numbers replaced by `N`.
fn counted_calls(h: &Harness) -> Vec<String> {
    h.sim
        .exchanges()
        .into_iter()
        .filter(|e| e.status != 304 && e.path != "/rate_limit")
        .map(|e| {
            let path: Vec<_> = e
                .path
                .split('/')
                .map(|seg| {
                    if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
                        "N"
                    } else {
                        seg
                    }
                })
                .collect();
            format!("{} {}", e.method, path.join("/"))
        })
        .collect()
}

fn breakdown(calls: &[String]) -> std::collections::BTreeMap<&str, usize> {
    let mut by_kind = std::collections::BTreeMap::new();
    for call in calls {
        *by_kind.entry(call.as_str()).or_default() += 1;
    }
    by_kind
}

/// Waits until the poller has fetched `n` more run lists (the answer may be a 304).
async fn wait_for_run_lists(h: &Harness, n: usize) {
    let run_lists = |h: &Harness| {
        h.sim
            .exchanges()
            .iter()
            .filter(|e| e.path.ends_with("/actions/runs"))
            .count()
    };
    let target = run_lists(h) + n;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while run_lists(h) < target {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the poller stopped polling"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_mode_costs_at_most_1_2_github_calls_per_job() {
    let dir = tempfile::tempdir().unwrap();
    // The backstop poll at its default interval for webhook-and-poll registrations (a
    // round at start, then every 5 minutes): the cost measured is the cost per job.
    let mut h = harness(&dir, |o| o.poll_interval_secs = 300).await;
    let jobs = 100;
    h.queue_jobs(jobs, &LABEL_SETS);
    let summary = settle(&h).await;
    assert_eq!(summary.completed, jobs);
    assert_few_extra_runners(&summary);
    // Every call that costs budget, second runners included: a JIT config per runner, a
    // deregistration for a runner that never ran a job, the poller's first round.
    let calls = counted_calls(&h);
    let per_job = calls.len() as f64 / jobs as f64;
    println!("webhook calls_per_job={per_job:.3} {:?}", breakdown(&calls));
    assert!(
        calls.iter().any(|c| c.ends_with("/actions/runs")),
        "the poller's first round is counted: {:?}",
        breakdown(&calls)
    );
    assert!(
        per_job <= 1.2,
        "{per_job:.2} calls per job ({} extra runners): {:?}",
        summary.provisioned.saturating_sub(jobs),
        breakdown(&calls)
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_poll_rounds_cost_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&dir, |_| {}).await;
    h.queue_jobs(8, &LABEL_SETS);
    settle(&h).await;
    // Idle: the poller keeps polling, but once a round has seen the settled state every
    // answer is a 304, which costs no points. One round of run lists (2 repositories x
    // queued/in progress) to catch up, then two more that must be free.
    wait_for_run_lists(&h, 4).await;
    let (points, seen) = (h.sim.points_used(), counted_calls(&h).len());
    wait_for_run_lists(&h, 8).await;
    assert_eq!(
        breakdown(&counted_calls(&h)[seen..]),
        Default::default(),
        "idle poll rounds cost points"
    );
    assert_eq!(h.sim.points_used(), points, "idle poll rounds cost points");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_delivery_sent_twice_still_gives_one_runner_per_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&dir, |o| o.deliver_twice = true).await;
    h.queue_jobs(60, &LABEL_SETS);
    let summary = settle(&h).await;
    assert_eq!(summary.duplicates, 0);
    assert_few_extra_runners(&summary);
    assert_each_job_ran_once_on_its_own_runner(&h);
    let stats = h.running.as_ref().unwrap().webhook_stats.clone().unwrap();
    let duplicates = stats.duplicates.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        duplicates >= 60,
        "second copies reached the webhook and were absorbed: {duplicates}"
    );
    // One attempt per job unless its runner was taken by another job: never two runners
    // for the same attempt.
    for job in h.jobs.clone() {
        let rec = h.job_record(job).await.unwrap().unwrap();
        let distinct: BTreeSet<_> = rec.runners.iter().collect();
        assert_eq!(
            distinct.len(),
            rec.runners.len(),
            "job {job}: {:?}",
            rec.runners
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_webhooks_off_the_poller_alone_finds_every_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&dir, |o| o.webhooks = false).await;
    h.queue_jobs(60, &LABEL_SETS);
    let summary = settle(&h).await;
    assert_few_extra_runners(&summary);
    assert_each_job_ran_once_on_its_own_runner(&h);
    let calls = counted_calls(&h);
    println!(
        "poll calls_per_job={:.3} {:?}",
        calls.len() as f64 / 60.0,
        breakdown(&calls)
    );
    assert!(summary.provisioned * 100 <= 60 * 105, "{summary}");
    let stats = h.running.as_ref().unwrap().webhook_stats.clone().unwrap();
    assert_eq!(
        stats.accepted.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "no webhook reached us"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_whose_runner_is_stolen_still_gets_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&dir, |_| {}).await;
    // The next three assignments hand the runner a decoy job first: the runner made for a
    // job runs another one, and the job stays queued.
    h.sim.steal_next(3);
    h.queue_jobs(6, &[&["serverless-hosted-runner"]]);
    settle(&h).await;
    assert_each_job_ran_once_on_its_own_runner(&h);
    let state = h.sim.state();
    let decoys: Vec<_> = state
        .jobs
        .iter()
        .filter(|j| !h.jobs.contains(&j.id))
        .collect();
    assert_eq!(decoys.len(), 3, "the simulator made three decoys");
    assert!(decoys.iter().all(|j| j.status == JobStatus::Completed));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_cancelled_before_provisioning_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    // No provisioner or reaper yet: runners get requested (JIT config, provision command)
    // but no instance is created.
    let mut h = harness(&dir, |o| {
        o.actors = vec![Actor::Webhook, Actor::Poller, Actor::Scheduler];
    })
    .await;
    let jobs = h.queue_jobs(5, &[&["serverless-hosted-runner"]]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let requested = h
            .runner_records()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.state == RunnerState::Requested && r.github_runner_id.is_some())
            .count();
        if requested == jobs.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "runners were never requested"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for job in &jobs {
        assert!(h.sim.cancel_job(*job), "cancel {job}");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut done = 0;
        for job in &jobs {
            if h.job_record(*job)
                .await
                .unwrap()
                .is_some_and(|r| r.state == JobState::Completed)
            {
                done += 1;
            }
        }
        if done == jobs.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cancellations never reached the records"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Now the provisioner and reaper come up and find the commands waiting.
    h.stop_actors().await;
    let all = h.options.work_dir.join("all.toml");
    h.config_for_actors(&Actor::ALL, &all).unwrap();
    h.config_path = all;
    h.start_actors(None).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let records = h.runner_records().await.unwrap();
        let gone = records.iter().all(|r| r.state == RunnerState::Deleted);
        if gone && h.sim.state().runners.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "runners left behind: {records:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let records = h.runner_records().await.unwrap();
    assert!(
        records.iter().all(|r| r.instance_id.is_none()),
        "no instance was ever created: {records:?}"
    );
    let created = std::fs::read_to_string(h.options.work_dir.join("local/demo/created.log"))
        .unwrap_or_default();
    assert!(
        created.is_empty(),
        "no runner process was started: {created}"
    );
    let state = h.sim.state();
    for job in &jobs {
        let job = state.job(*job).unwrap();
        assert_eq!(job.conclusion.map(|c| c.as_str()), Some("cancelled"));
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_asking_for_more_cpu_than_allowed_is_declined_logged_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&dir, |_| {}).await;
    // The harness's registration allows at most 4 vCPU.
    let declined = h.queue_jobs(1, &[&["serverless-hosted-runner", "cpu-8"]])[0];
    let ok = h.queue_jobs(1, &[&["serverless-hosted-runner", "cpu-2"]])[0];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let record = loop {
        if let Some(rec) = h.job_record(declined).await.unwrap() {
            break rec;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job was never considered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(record.state, JobState::Declined);
    let reason = record.declined_reason.unwrap();
    assert!(reason.contains("cpu-8"), "reason names the label: {reason}");
    assert!(record.runners.is_empty());
    let counted = h.running.as_ref().unwrap().ctx.stats.declined();
    assert_eq!(counted.get("exceeds_policy"), Some(&1), "{counted:?}");
    // The allowed job still runs; the declined one stays queued for someone else.
    h.jobs.remove(&declined);
    let summary = settle(&h).await;
    assert_few_extra_runners(&summary);
    assert_eq!(h.sim.state().job(ok).unwrap().status, JobStatus::Completed);
    assert_eq!(
        h.sim.state().job(declined).unwrap().status,
        JobStatus::Queued
    );
    h.stop().await;
}

/// Every message of `stream`, with the trace id of its `traceparent` header.
async fn traced_messages(h: &Harness, stream: &str) -> Vec<(String, bytes::Bytes, Option<String>)> {
    let js = &h.running.as_ref().unwrap().ctx.bus.js;
    let mut stream = js.get_stream(stream).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let Ok(msg) = stream.get_raw_message(seq).await else {
            continue;
        };
        let trace = msg
            .headers
            .get(bus_schema::subject::TRACEPARENT_HEADER)
            .and_then(|v| actors::trace::TraceParent::parse(v.as_str()))
            .map(|t| t.trace_id().to_owned());
        out.push((msg.subject.to_string(), msg.payload, trace));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_trace_runs_from_the_webhook_to_the_cloud_call() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&dir, |_| {}).await;
    h.queue_jobs(5, &[&["serverless-hosted-runner"]]);
    settle(&h).await;
    // Trace ids of the queued events per job, as the webhook and the poller started them.
    let mut queued: std::collections::BTreeMap<u64, BTreeSet<String>> = Default::default();
    for (subject, payload, trace) in traced_messages(&h, bus_schema::subject::JOBS_STREAM).await {
        if let Ok(bus_schema::JobEvent::Queued(e)) =
            bus_schema::JobEvent::decode(&subject, &payload)
        {
            queued
                .entry(e.job.job_id)
                .or_default()
                .insert(trace.expect("every job event carries a trace"));
        }
    }
    // Each first runner of a job was requested on the job's queued event, so its runner-created
    // event (published by the provisioner after the cloud call) continues that trace. (A later
    // attempt follows the event that caused it: the start of the job that took the runner.)
    let mut created = 0;
    for (_, payload, trace) in traced_messages(&h, bus_schema::subject::RUNNER_EVENTS_STREAM).await
    {
        if let Ok(bus_schema::RunnerEvent::Created(e)) =
            bus_schema::decode::<bus_schema::RunnerEvent>(&payload)
            && e.runner_name
                .parse::<bus_schema::RunnerName>()
                .is_ok_and(|n| n.attempt == 1 && n.job_id == e.job_id)
        {
            let trace = trace.expect("runner events carry a trace");
            let job_traces = queued.get(&e.job_id).expect("the job was queued");
            assert!(
                job_traces.contains(&trace),
                "runner {} trace {trace} not among {job_traces:?}",
                e.runner_name
            );
            created += 1;
        }
    }
    assert!(created >= 3, "{created} first runners traced");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provision_commands_are_sealed_and_leave_the_stream_once_acked() {
    use futures::StreamExt as _;
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&dir, |_| {}).await;
    let bus = h.running.as_ref().unwrap().ctx.bus.clone();
    // A plain subscriber sees what any reader of the provision subjects would see.
    let mut tap = bus
        .client
        .subscribe(bus_schema::subject::ALL_PROVISION)
        .await
        .unwrap();
    bus.client.flush().await.unwrap();
    h.queue_jobs(5, &[&["serverless-hosted-runner"]]);
    settle(&h).await;
    assert_each_job_ran_once_on_its_own_runner(&h);

    let mut seen = 0;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(200), tap.next()).await {
        let cmd: bus_schema::ProvisionRunner = bus_schema::decode(&msg.payload).unwrap();
        assert!(cmd.jit_config.is_empty(), "no JIT config in clear");
        assert!(
            cmd.sealed_jit_config.is_some(),
            "{} is sealed",
            cmd.runner_name
        );
        seen += 1;
    }
    assert!(seen >= 5, "{seen} provision commands seen");

    let mut stream = bus
        .js
        .get_stream(bus_schema::subject::PROVISION_STREAM)
        .await
        .unwrap();
    let state = stream.info().await.unwrap().state.clone();
    assert!(state.last_sequence >= 5, "commands were published");
    assert_eq!(state.messages, 0, "acked commands left the stream");
    h.stop().await;
}
