#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The GitHub simulator over HTTP, with the fake runner taking jobs from it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use simulators::github::{
    DeliveryStatus, Fault, GitHubSim, GitHubSimHandle, JobStatus, NewJob, SimApp, SimConfig,
    WebhookTarget, sign,
};
use simulators::runner::{self, JitConfigSource, RunnerOptions};

const TOKEN: &str = "ghp_simtoken";
const SECRET: &str = "hook-secret";
const WAIT: Duration = Duration::from_secs(10);

type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A webhook receiver that records every request and answers 200.
async fn receiver() -> (String, Received) {
    failing_receiver(0).await
}

/// A webhook receiver that records every request, answers 500 to the first `fail` and 200 after.
async fn failing_receiver(fail: usize) -> (String, Received) {
    let received: Received = Arc::default();
    let store = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let store = store.clone();
            async move {
                let mut store = store.lock().unwrap();
                store.push((headers, body));
                if store.len() <= fail {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

async fn start(config: SimConfig) -> GitHubSimHandle {
    GitHubSim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn config() -> SimConfig {
    SimConfig {
        tokens: vec![TOKEN.into()],
        job_duration: Duration::from_millis(100),
        ..SimConfig::default()
    }
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn jit(sim: &GitHubSimHandle, scope: &str, name: &str, labels: &[&str]) -> reqwest::Response {
    client()
        .post(format!(
            "{}{scope}/actions/runners/generate-jitconfig",
            sim.base_url()
        ))
        .bearer_auth(TOKEN)
        .json(&json!({"name": name, "runner_group_id": 1, "labels": labels}))
        .send()
        .await
        .unwrap()
}

async fn jit_config(sim: &GitHubSimHandle, name: &str, labels: &[&str]) -> String {
    let response = jit(sim, "orgs/acme", name, labels).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["encoded_jit_config"].as_str().unwrap().to_owned()
}

fn spawn_runner(encoded: String) -> tokio::task::JoinHandle<runner::RunnerOutcome> {
    let mut options = RunnerOptions::new(JitConfigSource::Value(bus_schema::Secret::new(encoded)));
    options.poll_wait = Duration::from_millis(500);
    tokio::spawn(async move { runner::run(options).await.unwrap() })
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers.get(name).unwrap().to_str().unwrap()
}

fn job(labels: &[&str]) -> NewJob {
    NewJob {
        repo: "acme/app".into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        ..NewJob::default()
    }
}

#[tokio::test]
async fn unknown_token_gets_bad_credentials_with_rate_headers() {
    let sim = start(config()).await;
    let response = client()
        .get(format!("{}repos/acme/app/actions/runs", sim.base_url()))
        .header("authorization", "token ghp_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("x-ratelimit-remaining"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Bad credentials");
}

#[tokio::test]
async fn jit_config_decodes_to_the_real_file_map() {
    let sim = start(config()).await;
    let response = jit(
        &sim,
        "orgs/acme",
        "shr-t-1-1",
        &["serverless-hosted-runner", "cpu-2"],
    )
    .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["runner"]["name"], "shr-t-1-1");
    assert_eq!(body["runner"]["status"], "offline");
    let labels: Vec<&str> = body["runner"]["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["self-hosted", "serverless-hosted-runner", "cpu-2"]);
    assert!(body["runner"]["labels"][0]["id"].as_u64().is_some());

    let encoded = body["encoded_jit_config"].as_str().unwrap();
    let map: serde_json::Map<String, Value> =
        serde_json::from_slice(&STANDARD.decode(encoded).unwrap()).unwrap();
    let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, [".credentials", ".credentials_rsaparams", ".runner"]);
    let file = |name: &str| -> Value {
        serde_json::from_slice(&STANDARD.decode(map[name].as_str().unwrap()).unwrap()).unwrap()
    };
    let settings = file(".runner");
    assert_eq!(settings["agentName"], "shr-t-1-1");
    assert_eq!(settings["agentId"], body["runner"]["id"]);
    assert_eq!(settings["serverUrl"], sim.base_url().trim_end_matches('/'));
    assert_eq!(settings["gitHubUrl"], "https://github.com/acme");
    assert_eq!(settings["workFolder"], "_work");
    assert_eq!(file(".credentials")["scheme"], "OAuth");
    assert!(file(".credentials")["data"]["clientId"].is_string());
    assert!(file(".credentials_rsaparams")["modulus"].is_string());

    let files = runner::decode_jit_config(encoded).unwrap();
    assert_eq!(files.runner.agent_name, "shr-t-1-1");
    assert!(!format!("{files:?}").contains(&files.credentials.data.client_id));
}

#[tokio::test]
async fn duplicate_runner_name_conflicts_and_missing_fields_are_unprocessable() {
    let sim = start(config()).await;
    assert_eq!(
        jit(&sim, "repos/acme/app", "r1", &["a"]).await.status(),
        201
    );
    let again = jit(&sim, "repos/acme/app", "r1", &["a"]).await;
    assert_eq!(again.status(), 409);
    assert!(
        again.json::<Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("Already exists")
    );
    assert_eq!(jit(&sim, "repos/acme/app", "r2", &[]).await.status(), 422);
    assert_eq!(jit(&sim, "orgs/nobody", "r3", &["a"]).await.status(), 404);
    assert_eq!(
        jit(&sim, "enterprises/acme-ent", "r1", &["a"])
            .await
            .status(),
        201,
        "names are per scope"
    );
}

#[tokio::test]
async fn runners_list_paginates_and_delete_removes() {
    let sim = start(config()).await;
    for i in 0..3 {
        jit(&sim, "orgs/acme", &format!("r{i}"), &["a"]).await;
    }
    let url = format!("{}orgs/acme/actions/runners?per_page=2", sim.base_url());
    let response = client().get(&url).bearer_auth(TOKEN).send().await.unwrap();
    let link = header(response.headers(), "link").to_owned();
    assert!(link.contains("page=2>; rel=\"next\""), "{link}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["total_count"], 3);
    assert_eq!(body["runners"].as_array().unwrap().len(), 2);
    let id = body["runners"][0]["id"].as_u64().unwrap();
    let runner_url = format!("{}orgs/acme/actions/runners/{id}", sim.base_url());
    assert_eq!(
        client()
            .get(&runner_url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client()
            .delete(&runner_url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        client()
            .delete(&runner_url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn queued_runs_answer_304_to_their_etag_without_counting() {
    let sim = start(config()).await;
    let queued = sim.queue_job(job(&["a"]));
    let url = format!(
        "{}repos/acme/app/actions/runs?status=queued",
        sim.base_url()
    );
    let first = client().get(&url).bearer_auth(TOKEN).send().await.unwrap();
    let etag = header(first.headers(), "etag").to_owned();
    let remaining: u32 = header(first.headers(), "x-ratelimit-remaining")
        .parse()
        .unwrap();
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["total_count"], 1);
    assert_eq!(body["workflow_runs"][0]["id"], queued.run_id);
    assert_eq!(body["workflow_runs"][0]["status"], "queued");

    let second = client()
        .get(&url)
        .bearer_auth(TOKEN)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 304);
    assert_eq!(
        header(second.headers(), "x-ratelimit-remaining")
            .parse::<u32>()
            .unwrap(),
        remaining
    );

    let jobs_url = format!(
        "{}repos/acme/app/actions/runs/{}/jobs",
        sim.base_url(),
        queued.run_id
    );
    let jobs: Value = client()
        .get(&jobs_url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jobs["jobs"][0]["id"], queued.job_id);
    assert_eq!(jobs["jobs"][0]["labels"], json!(["a"]));

    sim.queue_job(job(&["b"]));
    let changed = client()
        .get(&url)
        .bearer_auth(TOKEN)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
}

#[tokio::test]
async fn rate_headers_count_down_until_exhausted() {
    let sim = start(SimConfig {
        rate_limit: 3,
        ..config()
    })
    .await;
    let url = format!("{}orgs/acme/repos", sim.base_url());
    let mut seen = Vec::new();
    for _ in 0..3 {
        let response = client().get(&url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(header(response.headers(), "x-ratelimit-limit"), "3");
        assert_eq!(header(response.headers(), "x-ratelimit-resource"), "core");
        seen.push(
            header(response.headers(), "x-ratelimit-remaining")
                .parse::<u32>()
                .unwrap(),
        );
    }
    assert_eq!(seen, [2, 1, 0]);
    let exhausted = client().get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(exhausted.status(), 403);
    assert_eq!(header(exhausted.headers(), "x-ratelimit-remaining"), "0");
}

#[tokio::test]
async fn injected_faults_are_returned_with_retry_after_on_429() {
    let sim = start(config()).await;
    sim.inject_fault(Fault {
        status: 500,
        count: 1,
        path_prefix: Some("/repos".into()),
        retry_after: None,
    });
    sim.inject_fault(Fault {
        status: 429,
        count: 1,
        path_prefix: None,
        retry_after: Some(7),
    });
    let url = format!("{}repos/acme/app/actions/runs", sim.base_url());
    let first = client().get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(first.status(), 500);
    assert!(first.headers().contains_key("x-ratelimit-used"));
    let second = client().get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(second.status(), 429);
    assert_eq!(header(second.headers(), "retry-after"), "7");
    assert_eq!(
        client()
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // The same over the admin API.
    let admin = format!("{}_sim/faults", sim.base_url());
    let posted = client()
        .post(&admin)
        .json(&json!({"status": 502, "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 204);
    assert_eq!(
        client()
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        502
    );
}

#[tokio::test]
async fn secondary_jit_limit_answers_403_with_retry_after() {
    let sim = start(SimConfig {
        jit_per_minute: Some(2),
        ..config()
    })
    .await;
    assert_eq!(jit(&sim, "orgs/acme", "a", &["x"]).await.status(), 201);
    assert_eq!(jit(&sim, "orgs/acme", "b", &["x"]).await.status(), 201);
    let limited = jit(&sim, "orgs/acme", "c", &["x"]).await;
    assert_eq!(limited.status(), 403);
    assert!(
        header(limited.headers(), "retry-after")
            .parse::<u64>()
            .unwrap()
            > 0
    );
    let body: Value = limited.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("secondary rate limit")
    );
}

#[tokio::test]
async fn covering_runner_takes_the_job_and_webhooks_arrive_signed_in_order() {
    let (url, received) = receiver().await;
    let sim = start(SimConfig {
        webhook: Some(WebhookTarget {
            url,
            secret: SECRET.into(),
        }),
        ..config()
    })
    .await;
    let queued = sim.queue_job(job(&["self-hosted", "serverless-hosted-runner", "CPU-2"]));
    let encoded = jit_config(&sim, "shr-t-1-1", &["serverless-hosted-runner", "cpu-2"]).await;
    let outcome = spawn_runner(encoded).await.unwrap();
    let ran = outcome.job.unwrap();
    assert_eq!(
        (ran.job_id, ran.run_id, ran.conclusion.as_str()),
        (queued.job_id, queued.run_id, "success")
    );

    let state = sim.state();
    let done = state.job(queued.job_id).unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.runner_name.as_deref(), Some("shr-t-1-1"));
    assert!(state.runners.is_empty(), "the ephemeral runner is removed");

    sim.wait_for(WAIT, |_, log| {
        log.iter()
            .all(|d| d.status == DeliveryStatus::Delivered)
            .then_some(())
    })
    .await
    .unwrap();
    let received = received.lock().unwrap().clone();
    let actions: Vec<String> = received
        .iter()
        .map(|(headers, body)| {
            assert_eq!(headers["x-github-event"], "workflow_job");
            assert!(headers.contains_key("x-github-delivery"));
            assert!(headers.contains_key("x-github-hook-id"));
            assert_eq!(
                headers["x-hub-signature-256"].to_str().unwrap(),
                sign(SECRET, body)
            );
            let payload: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(payload["workflow_job"]["id"], queued.job_id);
            assert_eq!(payload["repository"]["full_name"], "acme/app");
            assert_eq!(payload["organization"]["login"], "acme");
            payload["action"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(actions, ["queued", "in_progress", "completed"]);
    let in_progress: Value = serde_json::from_slice(&received[1].1).unwrap();
    assert_eq!(in_progress["workflow_job"]["runner_name"], "shr-t-1-1");
}

#[tokio::test]
async fn runner_whose_labels_do_not_cover_the_job_gets_nothing_and_exits_when_deleted() {
    let sim = start(config()).await;
    let queued = sim.queue_job(job(&["serverless-hosted-runner", "gpu"]));
    let encoded = jit_config(&sim, "small", &["serverless-hosted-runner", "cpu-2"]).await;
    let handle = spawn_runner(encoded);
    let runner_id = sim
        .wait_for(WAIT, |s, _| {
            s.runner_named("small").filter(|r| r.online).map(|r| r.id)
        })
        .await
        .unwrap();
    assert_eq!(
        sim.state().job(queued.job_id).unwrap().status,
        JobStatus::Queued
    );

    let url = format!("{}orgs/acme/actions/runners/{runner_id}", sim.base_url());
    let runner: Value = client()
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(runner["status"], "online");
    assert_eq!(runner["busy"], false);
    assert_eq!(
        client()
            .delete(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let outcome = handle.await.unwrap();
    assert!(outcome.deregistered && outcome.job.is_none());
    assert_eq!(
        sim.state().job(queued.job_id).unwrap().status,
        JobStatus::Queued
    );
}

#[tokio::test]
async fn cancelled_job_completes_cancelled_and_is_never_assigned() {
    let (url, _received) = receiver().await;
    let sim = start(SimConfig {
        webhook: Some(WebhookTarget {
            url,
            secret: SECRET.into(),
        }),
        ..config()
    })
    .await;
    let queued = sim.queue_job(job(&["a"]));
    let cancel = format!("{}_sim/jobs/{}/cancel", sim.base_url(), queued.job_id);
    assert_eq!(client().post(&cancel).send().await.unwrap().status(), 200);
    let state = sim.state();
    let cancelled = state.job(queued.job_id).unwrap();
    assert_eq!(
        cancelled.conclusion,
        Some(simulators::github::Conclusion::Cancelled)
    );

    let encoded = jit_config(&sim, "late", &["a"]).await;
    let handle = spawn_runner(encoded);
    let runner_id = sim
        .wait_for(WAIT, |s, _| {
            s.runner_named("late").filter(|r| r.online).map(|r| r.id)
        })
        .await
        .unwrap();
    assert!(sim.state().runner_named("late").unwrap().job_id.is_none());
    let url = format!("{}orgs/acme/actions/runners/{runner_id}", sim.base_url());
    client()
        .delete(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(handle.await.unwrap().job.is_none());

    let log = sim
        .wait_for(WAIT, |_, log| {
            log.iter()
                .all(|d| d.status == DeliveryStatus::Delivered)
                .then(|| log.to_vec())
        })
        .await
        .unwrap();
    let actions: Vec<&str> = log.iter().map(|d| d.action.as_str()).collect();
    assert_eq!(actions, ["queued", "completed"]);
    assert_eq!(log[1].payload["workflow_job"]["conclusion"], "cancelled");
    assert!(log[1].payload["workflow_job"]["runner_id"].is_null());
}

#[tokio::test]
async fn admin_api_queues_jobs_and_switches_webhooks_off() {
    let (url, _received) = receiver().await;
    let sim = start(SimConfig {
        webhook: Some(WebhookTarget {
            url,
            secret: SECRET.into(),
        }),
        ..config()
    })
    .await;
    let admin = |path: &str| format!("{}_sim/{path}", sim.base_url());
    let off = client()
        .post(admin("webhooks"))
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), 204);
    let queued: Value = client()
        .post(admin("jobs"))
        .json(&json!({"repo": "acme/app", "labels": ["a"], "name": "build"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let state: Value = client()
        .get(admin("state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["jobs"][0]["id"], queued["job_id"]);
    assert_eq!(state["jobs"][0]["name"], "build");
    assert_eq!(sim.deliveries()[0].status, DeliveryStatus::Skipped);
}

#[tokio::test]
async fn steal_gives_the_runner_another_job_and_leaves_the_first_queued() {
    let sim = start(config()).await;
    let queued = sim.queue_job(job(&["a"]));
    sim.steal_next(1);
    let outcome = spawn_runner(jit_config(&sim, "made-for-a", &["a"]).await)
        .await
        .unwrap();
    let ran = outcome.job.unwrap();
    assert_ne!(ran.job_id, queued.job_id);
    assert_eq!(
        sim.state().job(queued.job_id).unwrap().status,
        JobStatus::Queued
    );
    // A second runner takes the job that was left behind.
    let outcome = spawn_runner(jit_config(&sim, "made-for-a-again", &["a"]).await)
        .await
        .unwrap();
    assert_eq!(outcome.job.unwrap().job_id, queued.job_id);
}

#[tokio::test]
async fn runner_reads_its_jit_config_from_a_file_and_a_used_config_is_rejected() {
    let sim = start(config()).await;
    sim.queue_job(job(&["a"]));
    let encoded = jit_config(&sim, "from-file", &["a"]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jitconfig");
    std::fs::write(&path, &encoded).unwrap();
    let options =
        RunnerOptions::from_args(["--jitconfig-file".to_owned(), path.display().to_string()])
            .unwrap();
    assert!(runner::run(options).await.unwrap().job.is_some());
    // The runner is gone after its job: its config no longer opens a session.
    let again = runner::run(RunnerOptions::new(JitConfigSource::Value(
        bus_schema::Secret::new(encoded),
    )))
    .await;
    assert!(matches!(
        again,
        Err(runner::RunnerError::Rejected { status: 401 })
    ));
}

#[tokio::test]
async fn app_jwt_gets_an_installation_token_that_authenticates() {
    let sim = start(SimConfig {
        apps: vec![SimApp {
            app_id: 42,
            installation_id: 7,
            public_key_pem: include_str!("fixtures/test-app.public.pem").into(),
        }],
        ..config()
    })
    .await;
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iat": now - 60, "exp": now + 540, "iss": "42"});
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!("fixtures/test-app.private.pem"))
            .unwrap();
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .unwrap();
    let url = format!("{}app/installations/7/access_tokens", sim.base_url());
    let response = client().post(&url).bearer_auth(&jwt).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert!(body["expires_at"].is_string());
    let token = body["token"].as_str().unwrap();
    let repos = client()
        .get(format!("{}orgs/acme/repos", sim.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(repos.status(), 200);

    let forged = client()
        .post(&url)
        .bearer_auth(format!("{jwt}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
}

#[tokio::test]
async fn deliveries_are_retried_and_can_be_sent_twice_with_one_delivery_id() {
    let (url, received) = failing_receiver(1).await;
    let sim = start(SimConfig {
        webhook: Some(WebhookTarget {
            url,
            secret: SECRET.into(),
        }),
        ..config()
    })
    .await;
    sim.queue_job(job(&["a"]));
    let log = sim
        .wait_for(WAIT, |_, log| {
            (log.len() == 1 && log[0].status == DeliveryStatus::Delivered).then(|| log.to_vec())
        })
        .await
        .unwrap();
    assert_eq!(log[0].attempts, 2);
    sim.set_webhooks(simulators::github::WebhookSettings {
        deliver_twice: Some(true),
        ..Default::default()
    });
    sim.queue_job(job(&["b"]));
    sim.wait_for(WAIT, |_, log| {
        (log.len() == 2 && log[1].status == DeliveryStatus::Delivered).then_some(())
    })
    .await
    .unwrap();
    let received = received.lock().unwrap();
    let ids: Vec<&str> = received
        .iter()
        .map(|(h, _)| h["x-github-delivery"].to_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[0], ids[1], "a retry keeps its delivery id");
    assert_eq!(ids[2], ids[3], "the duplicate keeps its delivery id");
    assert_ne!(ids[1], ids[2]);
}

#[tokio::test]
async fn killed_runner_goes_offline_and_its_job_fails() {
    let sim = start(SimConfig {
        job_duration: Duration::from_secs(30),
        ..config()
    })
    .await;
    let queued = sim.queue_job(job(&["a"]));
    let handle = spawn_runner(jit_config(&sim, "doomed", &["a"]).await);
    sim.wait_for(WAIT, |s, _| {
        (s.job(queued.job_id)?.status == JobStatus::InProgress).then_some(())
    })
    .await
    .unwrap();
    handle.abort();
    // The sim sees the client go away only when the server notices the closed connection,
    // which takes longer on a loaded machine: a generous deadline, polled.
    let job = sim
        .wait_for(Duration::from_secs(60), |s, _| {
            s.job(queued.job_id)
                .filter(|j| j.status == JobStatus::Completed)
                .cloned()
        })
        .await
        .unwrap();
    assert_eq!(
        job.conclusion,
        Some(simulators::github::Conclusion::Failure)
    );
}

mod conformance {
    //! Both directions against GitHub's published description (`simulators/vendor/github/`):
    //! every request `github-client` sends validates, and every answer has the documented shape.

    use super::*;
    use bus_schema::Scope;
    use github_client::{Auth, ClientOptions, GitHubClient, JitRequest, RunStatus};
    use secrecy::SecretString;
    use simulators::github::vendor::{self, Description};

    fn jit_request(name: &str) -> JitRequest {
        JitRequest {
            name: name.into(),
            runner_group_id: 1,
            labels: vec!["serverless-hosted-runner".into()],
            work_folder: "_work".into(),
        }
    }

    /// Drives every endpoint the client has, with a PAT and with an App installation.
    async fn exercise_the_client(sim: &GitHubSimHandle) {
        let base = url::Url::parse(&sim.base_url()).unwrap();
        let options = ClientOptions {
            jit_per_minute: 60_000,
            ..ClientOptions::default()
        };
        let pat = GitHubClient::new(
            base.clone(),
            Auth::Pat(SecretString::from(TOKEN)),
            options.clone(),
        )
        .unwrap();
        let app = GitHubClient::new(
            base,
            Auth::App {
                app_id: 42,
                installation_id: 7,
                private_key_pem: SecretString::from(include_str!("fixtures/test-app.private.pem")),
            },
            options,
        )
        .unwrap();
        let repo = Scope::Repo {
            owner: "acme".into(),
            repo: "app".into(),
        };
        let org = Scope::Org { org: "acme".into() };
        let enterprise = Scope::Enterprise {
            enterprise: "acme-ent".into(),
        };
        sim.queue_job(NewJob {
            repo: "acme/app".into(),
            labels: vec!["gpu".into()],
            ..NewJob::default()
        });
        for (i, scope) in [&repo, &org, &enterprise].into_iter().enumerate() {
            let jit = pat
                .generate_jit_config(scope, &jit_request(&format!("pat-{i}")))
                .await
                .unwrap();
            assert_eq!(pat.list_runners(scope).await.unwrap().len(), 1);
            assert!(
                pat.get_runner(scope, jit.runner_id)
                    .await
                    .unwrap()
                    .is_some()
            );
            pat.delete_runner(scope, jit.runner_id).await.unwrap();
        }
        for client in [&pat, &app] {
            let runs = client
                .list_queued_runs("acme", "app", None)
                .await
                .unwrap()
                .into_value_or_default();
            assert_eq!(runs.len(), 1);
            client
                .list_runs("acme", "app", RunStatus::InProgress, None)
                .await
                .unwrap();
            let jobs = client
                .list_run_jobs("acme", "app", runs[0].id, None)
                .await
                .unwrap()
                .into_value_or_default();
            assert!(
                client
                    .get_job("acme", "app", jobs[0].id)
                    .await
                    .unwrap()
                    .is_some()
            );
            assert_eq!(client.list_org_repos("acme").await.unwrap(), ["app"]);
        }
        let jit = app
            .generate_jit_config(&org, &jit_request("app-0"))
            .await
            .unwrap();
        app.delete_runner(&org, jit.runner_id).await.unwrap();
        let rate = client()
            .get(format!("{}rate_limit", sim.base_url()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(rate.status(), 200);
    }

    trait ValueOrDefault<T> {
        fn into_value_or_default(self) -> T;
    }

    impl<T: Default> ValueOrDefault<T> for github_client::Conditional<T> {
        fn into_value_or_default(self) -> T {
            match self {
                github_client::Conditional::Modified { value, .. } => value,
                github_client::Conditional::NotModified => T::default(),
            }
        }
    }

    async fn exercised() -> Vec<vendor::Exchange> {
        let sim = start(SimConfig {
            apps: vec![SimApp {
                app_id: 42,
                installation_id: 7,
                public_key_pem: include_str!("fixtures/test-app.public.pem").into(),
            }],
            ..config()
        })
        .await;
        exercise_the_client(&sim).await;
        sim.exchanges()
    }

    #[tokio::test]
    async fn every_request_the_client_sends_validates_against_the_vendor_descriptions() {
        let exchanges = exercised().await;
        let mut operations = std::collections::BTreeSet::new();
        for e in &exchanges {
            assert!((200..300).contains(&e.status), "{e:?}");
            for d in Description::ALL {
                let is_enterprise = e.path.starts_with("/enterprises/");
                match vendor::validate_request(
                    d,
                    &e.method,
                    &e.path,
                    e.query.as_deref(),
                    e.request_body.as_bytes(),
                ) {
                    Ok(Some(key)) => {
                        operations.insert(key);
                    }
                    Ok(None) => assert!(
                        is_enterprise && d == Description::Dotcom,
                        "{d:?} has no operation for {} {}",
                        e.method,
                        e.path
                    ),
                    Err(rejection) => panic!("{d:?} rejects {e:?}: {}", rejection.body),
                }
            }
            if !e.request_body.is_empty() {
                assert_eq!(e.content_type.as_deref(), Some("application/json"), "{e:?}");
            }
        }
        // JIT, list, get and delete for three scopes, runs, jobs, a job, org repos, the App
        // token and the rate limit.
        assert_eq!(operations.len(), 18, "{operations:#?}");
    }

    #[tokio::test]
    async fn every_answer_of_the_simulator_has_the_vendor_shape() {
        let exchanges = exercised().await;
        let mut problems = Vec::new();
        for e in exchanges.iter().filter(|e| !e.response_body.is_empty()) {
            let body: Value = serde_json::from_str(&e.response_body).unwrap();
            problems.extend(vendor::response_problems(
                Description::Ghec,
                &e.method,
                &e.path,
                e.status,
                &body,
            ));
        }
        assert!(problems.is_empty(), "{problems:#?}");
        let runs = exchanges
            .iter()
            .find(|e| e.path.ends_with("/actions/runs"))
            .unwrap();
        let body: Value = serde_json::from_str(&runs.response_body).unwrap();
        let run = &body["workflow_runs"][0];
        for key in [
            "head_commit",
            "head_repository",
            "pull_requests",
            "check_suite_url",
            "cancel_url",
        ] {
            assert!(run.get(key).is_some(), "workflow_run lacks {key}");
        }
        let runner = exchanges
            .iter()
            .find(|e| e.method == "GET" && e.path.contains("/actions/runners/"))
            .unwrap();
        let body: Value = serde_json::from_str(&runner.response_body).unwrap();
        assert!(body["version"].is_string(), "{body}");
        let rate = exchanges.iter().find(|e| e.path == "/rate_limit").unwrap();
        let body: Value = serde_json::from_str(&rate.response_body).unwrap();
        for resource in ["core", "search", "graphql", "actions_runner_registration"] {
            assert!(
                body["resources"][resource]["limit"].is_u64(),
                "{resource}: {body}"
            );
        }
    }

    #[tokio::test]
    async fn the_simulator_answers_githubs_validation_errors() {
        let sim = start(config()).await;
        let http = client();
        let url = format!(
            "{}orgs/acme/actions/runners/generate-jitconfig",
            sim.base_url()
        );
        let unknown = http
            .post(&url)
            .bearer_auth(TOKEN)
            .json(&json!({"name": "r", "runner_group_id": 1, "labels": ["a"], "ephemeral": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), 422);
        let body: Value = unknown.json().await.unwrap();
        assert_eq!(body["message"], "Validation Failed");
        assert_eq!(body["errors"][0]["field"], "ephemeral");
        let malformed = http
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap();
        assert_eq!(malformed.status(), 400);
        let bad_status = http
            .get(format!(
                "{}repos/acme/app/actions/runs?status=sleeping",
                sim.base_url()
            ))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(bad_status.status(), 422);
        assert!(sim.state().runners.is_empty(), "nothing registered");
    }
}
