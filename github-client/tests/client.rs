#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The client against wiremock: auth headers, the App token flow, request shapes, pagination,
//! conditional requests, rate limits and error kinds.

use std::time::Duration;

use bus_schema::{ErrorKind, Scope};
use github_client::{
    Auth, ClientOptions, Conditional, GitHubClient, JitRequest, RunStatus, RunnerStatus,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

const TEST_KEY: &str = include_str!("data/test-app-key.pem");
const TEST_PUBLIC_KEY: &str = include_str!("data/test-app-key.pub.pem");

fn pat_client(server: &MockServer, options: ClientOptions) -> GitHubClient {
    let base = Url::parse(&server.uri()).unwrap();
    GitHubClient::new(base, Auth::Pat(SecretString::from("ghp_test")), options).unwrap()
}

fn runner_json(id: u64, name: &str) -> Value {
    json!({
        "id": id, "name": name, "os": "linux", "status": "online", "busy": false,
        "labels": [{"id": 1, "name": "self-hosted", "type": "read-only"},
                   {"id": 2, "name": "serverless-hosted-runner", "type": "custom"}]
    })
}

fn org() -> Scope {
    Scope::Org { org: "acme".into() }
}

/// Accepts a request whose bearer token is a valid RS256 App JWT for `app_id`.
struct AppJwt {
    app_id: u64,
}

impl Match for AppJwt {
    fn matches(&self, request: &Request) -> bool {
        #[derive(serde::Deserialize)]
        struct Claims {
            iss: u64,
            iat: i64,
            exp: i64,
        }
        let Some(token) = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let key = DecodingKey::from_rsa_pem(TEST_PUBLIC_KEY.as_bytes()).unwrap();
        let Ok(data) =
            jsonwebtoken::decode::<Claims>(token, &key, &Validation::new(Algorithm::RS256))
        else {
            return false;
        };
        let now = chrono::Utc::now().timestamp();
        let c = data.claims;
        c.iss == self.app_id && c.iat <= now - 30 && c.exp > now && c.exp - c.iat <= 600
    }
}

#[tokio::test]
async fn pat_is_sent_as_bearer_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/orgs/acme/actions/runners/5"))
        .and(header("authorization", "Bearer ghp_test"))
        .and(header("x-github-api-version", "2022-11-28"))
        .respond_with(ResponseTemplate::new(200).set_body_json(runner_json(5, "shr-t-1-0")))
        .expect(1)
        .mount(&server)
        .await;
    let client = pat_client(&server, ClientOptions::default());
    let runner = client.get_runner(&org(), 5).await.unwrap().unwrap();
    assert_eq!(runner.name, "shr-t-1-0");
    assert_eq!(runner.status, RunnerStatus::Online);
    assert_eq!(runner.labels, ["self-hosted", "serverless-hosted-runner"]);
    let debug = format!("{client:?}");
    assert!(!debug.contains("ghp_test"), "{debug}");
}

#[tokio::test]
async fn app_auth_mints_one_installation_token_for_many_concurrent_calls() {
    let server = MockServer::start().await;
    let expires_at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    Mock::given(method("POST"))
        .and(path("/app/installations/42/access_tokens"))
        .and(AppJwt { app_id: 7 })
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"token": "ghs_installation", "expires_at": expires_at}))
                // Slow enough that every caller arrives while the first one is minting.
                .set_delay(Duration::from_millis(200)),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/orgs/acme/actions/runners/5"))
        .and(header("authorization", "Bearer ghs_installation"))
        .respond_with(ResponseTemplate::new(200).set_body_json(runner_json(5, "r")))
        .expect(20)
        .mount(&server)
        .await;
    let auth = Auth::App {
        app_id: 7,
        installation_id: 42,
        private_key_pem: SecretString::from(TEST_KEY),
    };
    let client = GitHubClient::new(
        Url::parse(&server.uri()).unwrap(),
        auth,
        ClientOptions::default(),
    )
    .unwrap();
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get_runner(&org(), 5).await })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().unwrap().is_some());
    }
    server.verify().await;
    let debug = format!("{client:?}");
    assert!(
        !debug.contains("ghs_installation") && !debug.contains("PRIVATE"),
        "{debug}"
    );
}

#[tokio::test]
async fn an_expired_app_token_is_minted_again() {
    let server = MockServer::start().await;
    let expires_at = (chrono::Utc::now() - chrono::Duration::seconds(10)).to_rfc3339();
    Mock::given(method("POST"))
        .and(path("/app/installations/42/access_tokens"))
        .and(AppJwt { app_id: 7 })
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"token": "ghs_stale", "expires_at": expires_at})),
        )
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/app/actions/jobs/9"))
        .and(header("authorization", "Bearer ghs_stale"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .expect(2)
        .mount(&server)
        .await;
    let auth = Auth::App {
        app_id: 7,
        installation_id: 42,
        private_key_pem: SecretString::from(TEST_KEY),
    };
    let client = GitHubClient::new(
        Url::parse(&server.uri()).unwrap(),
        auth,
        ClientOptions::default(),
    )
    .unwrap();
    assert_eq!(client.get_job("acme", "app", 9).await.unwrap(), None);
    assert_eq!(client.get_job("acme", "app", 9).await.unwrap(), None);
    server.verify().await;
}

#[tokio::test]
async fn a_revoked_app_token_is_replaced_once_on_401() {
    let server = MockServer::start().await;
    let expires_at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    for (token, priority) in [("ghs_old", 1), ("ghs_new", 2)] {
        Mock::given(method("POST"))
            .and(path("/app/installations/42/access_tokens"))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(json!({"token": token, "expires_at": expires_at})),
            )
            .up_to_n_times(1)
            .with_priority(priority)
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/orgs/acme/repos"))
        .and(header("authorization", "Bearer ghs_old"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/orgs/acme/repos"))
        .and(header("authorization", "Bearer ghs_new"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"name": "app"}])))
        .expect(1)
        .mount(&server)
        .await;
    let auth = Auth::App {
        app_id: 7,
        installation_id: 42,
        private_key_pem: SecretString::from(TEST_KEY),
    };
    let client = GitHubClient::new(
        Url::parse(&server.uri()).unwrap(),
        auth,
        ClientOptions::default(),
    )
    .unwrap();
    assert_eq!(client.list_org_repos("acme").await.unwrap(), ["app"]);
    server.verify().await;
}

#[tokio::test]
async fn jit_request_shape_per_scope() {
    let scopes = [
        (
            Scope::Repo {
                owner: "acme".into(),
                repo: "app".into(),
            },
            "/repos/acme/app",
        ),
        (org(), "/orgs/acme"),
        (
            Scope::Enterprise {
                enterprise: "big".into(),
            },
            "/enterprises/big",
        ),
    ];
    for (i, (scope, prefix)) in scopes.into_iter().enumerate() {
        let server = MockServer::start().await;
        let name = format!("shr-t-{i}-0");
        Mock::given(method("POST"))
            .and(path(format!("{prefix}/actions/runners/generate-jitconfig")))
            .and(header("content-type", "application/json"))
            .and(body_json(json!({
                "name": name, "runner_group_id": 3,
                "labels": ["serverless-hosted-runner", "cpu-2"], "work_folder": "_work"
            })))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "runner": {"id": 100 + i, "name": name, "os": "unknown", "status": "offline",
                           "busy": false, "runner_group_id": 3, "labels": []},
                "encoded_jit_config": "ZW5jb2RlZA=="
            })))
            .expect(1)
            .mount(&server)
            .await;
        let client = pat_client(&server, ClientOptions::default());
        let request = JitRequest {
            name: name.clone(),
            runner_group_id: 3,
            labels: vec!["serverless-hosted-runner".into(), "cpu-2".into()],
            work_folder: "_work".into(),
        };
        let jit = client.generate_jit_config(&scope, &request).await.unwrap();
        assert_eq!(
            (jit.runner_id, jit.runner_name.as_str()),
            (100 + i as u64, name.as_str())
        );
        assert_eq!(jit.encoded_jit_config.expose(), "ZW5jb2RlZA==");
        assert!(!format!("{jit:?}").contains("ZW5jb2RlZA"));
    }
}

#[tokio::test]
async fn lists_follow_link_pagination_under_a_ghes_base_path() {
    let server = MockServer::start().await;
    let next = format!(
        "{}/api/v3/organizations/1/actions/runners?per_page=100&page=2",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/api/v3/orgs/acme/actions/runners"))
        .and(query_param("per_page", "100"))
        .and(header("authorization", "Bearer ghp_test"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header(
                    "link",
                    format!("<{next}>; rel=\"next\", <{next}>; rel=\"last\""),
                )
                .set_body_json(json!({"total_count": 3,
                    "runners": [runner_json(1, "a"), runner_json(2, "b")]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/organizations/1/actions/runners"))
        .and(query_param("page", "2"))
        .and(header("authorization", "Bearer ghp_test"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"total_count": 3, "runners": [runner_json(3, "c")]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let base = Url::parse(&format!("{}/api/v3", server.uri())).unwrap();
    let client = GitHubClient::new(
        base,
        Auth::Pat(SecretString::from("ghp_test")),
        ClientOptions::default(),
    )
    .unwrap();
    let names: Vec<_> = client
        .list_runners(&org())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
}

#[tokio::test]
async fn deleting_a_missing_runner_is_success() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/orgs/acme/actions/runners/5"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/orgs/acme/actions/runners/6"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/orgs/acme/actions/runners/7"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": "Bad request - Runner \"x\" is still running a job\""})))
        .mount(&server)
        .await;
    let client = pat_client(&server, ClientOptions::default());
    client.delete_runner(&org(), 5).await.unwrap();
    client.delete_runner(&org(), 6).await.unwrap();
    let busy = client.delete_runner(&org(), 7).await.unwrap_err();
    assert_eq!(
        (busy.kind(), busy.status()),
        (ErrorKind::Permanent, Some(422))
    );
}

#[tokio::test]
async fn etag_turns_an_unchanged_listing_into_not_modified() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/app/actions/runs"))
        .and(header("if-none-match", "\"v1\""))
        .respond_with(ResponseTemplate::new(304).insert_header("etag", "\"v1\""))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/app/actions/runs"))
        .and(query_param("status", "queued"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "\"v1\"")
                .set_body_json(json!({"total_count": 1, "workflow_runs": [{
                "id": 30, "name": "ci", "status": "queued", "conclusion": null, "run_attempt": 1,
                "event": "push", "created_at": "2026-01-02T03:04:05Z",
                "repository": {"id": 1, "name": "app", "full_name": "acme/app"}}]})),
        )
        .mount(&server)
        .await;
    let client = pat_client(&server, ClientOptions::default());
    let Conditional::Modified { value, etag } =
        client.list_queued_runs("acme", "app", None).await.unwrap()
    else {
        panic!("first listing must be Modified");
    };
    assert_eq!(etag.as_deref(), Some("\"v1\""));
    assert_eq!(
        (value[0].id, value[0].status, value[0].repo.as_str()),
        (30, RunStatus::Queued, "acme/app")
    );
    let again = client
        .list_queued_runs("acme", "app", etag.as_deref())
        .await
        .unwrap();
    assert_eq!(again, Conditional::NotModified);
}

#[tokio::test]
async fn run_jobs_and_single_job_decode_githubs_shape() {
    let server = MockServer::start().await;
    let job = json!({
        "id": 77, "run_id": 30, "run_attempt": 2, "status": "in_progress", "conclusion": null,
        "name": "build", "workflow_name": "ci", "labels": ["serverless-hosted-runner", "cpu-2"],
        "runner_id": 12, "runner_name": "shr-t-77-0", "runner_group_id": 1,
        "started_at": "2026-01-02T03:04:05Z"
    });
    Mock::given(method("GET"))
        .and(path("/repos/acme/app/actions/runs/30/jobs"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "W/\"j1\"")
                .set_body_json(json!({"total_count": 1, "jobs": [job.clone()]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/app/actions/jobs/77"))
        .respond_with(ResponseTemplate::new(200).set_body_json(job))
        .mount(&server)
        .await;
    let client = pat_client(&server, ClientOptions::default());
    let Conditional::Modified { value, etag } =
        client.list_run_jobs("acme", "app", 30, None).await.unwrap()
    else {
        panic!("expected Modified");
    };
    assert_eq!(etag.as_deref(), Some("W/\"j1\""));
    let single = client.get_job("acme", "app", 77).await.unwrap().unwrap();
    assert_eq!(value.len(), 1);
    assert_eq!(value[0], single);
    assert_eq!(single.status, RunStatus::InProgress);
    assert_eq!(
        (single.runner_id, single.runner_name.as_deref()),
        (Some(12), Some("shr-t-77-0"))
    );
    assert_eq!(single.repo, "acme/app");
    assert_eq!(
        single.job_ref().labels,
        ["serverless-hosted-runner", "cpu-2"]
    );
}

#[tokio::test]
async fn org_repos_are_listed_without_archived_ones() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/orgs/acme/repos"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 1, "name": "app", "full_name": "acme/app", "archived": false},
            {"id": 2, "name": "old", "full_name": "acme/old", "archived": true},
            {"id": 3, "name": "lib", "full_name": "acme/lib"}
        ])))
        .mount(&server)
        .await;
    let client = pat_client(&server, ClientOptions::default());
    assert_eq!(client.list_org_repos("acme").await.unwrap(), ["app", "lib"]);
}

#[tokio::test]
async fn rate_limit_headers_update_the_budget() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/orgs/acme/actions/runners"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-ratelimit-limit", "5000")
                .insert_header("x-ratelimit-remaining", "4321")
                .insert_header("x-ratelimit-used", "679")
                .insert_header("x-ratelimit-reset", "4102444800")
                .insert_header("x-ratelimit-resource", "core")
                .set_body_json(json!({"total_count": 0, "runners": []})),
        )
        .mount(&server)
        .await;
    let client = pat_client(&server, ClientOptions::default());
    assert_eq!(client.rate_budget(), None);
    assert!(client.list_runners(&org()).await.unwrap().is_empty());
    let budget = client.clone().rate_budget().unwrap();
    assert_eq!(
        (budget.limit, budget.remaining, budget.used),
        (5000, 4321, 679)
    );
    assert_eq!(budget.reset_at.timestamp(), 4_102_444_800);
}

#[tokio::test]
async fn a_spent_budget_far_from_reset_fails_fast_with_quota() {
    let server = MockServer::start().await;
    let reset = (chrono::Utc::now() + chrono::Duration::hours(1))
        .timestamp()
        .to_string();
    Mock::given(method("GET"))
        .and(path("/orgs/acme/actions/runners"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-ratelimit-limit", "5000")
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.as_str())
                .set_body_json(json!({"total_count": 0, "runners": []})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = pat_client(&server, ClientOptions::default());
    client.list_runners(&org()).await.unwrap();
    let err = client.list_runners(&org()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Quota, "{err}");
}

#[tokio::test(start_paused = true)]
async fn secondary_limit_429_is_waited_out_and_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/orgs/acme/actions/runners/generate-jitconfig"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "30")
                .set_body_json(json!({"message": "You have exceeded a secondary rate limit."})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/orgs/acme/actions/runners/generate-jitconfig"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "runner": {"id": 1, "name": "r1", "labels": []}, "encoded_jit_config": "x"})))
        .mount(&server)
        .await;
    // Real I/O under paused time: no request timeout, or the clock would jump to it.
    let options = ClientOptions {
        request_timeout: None,
        ..ClientOptions::default()
    };
    let client = pat_client(&server, options);
    let request = JitRequest {
        name: "r1".into(),
        runner_group_id: 1,
        labels: vec!["serverless-hosted-runner".into()],
        work_folder: "_work".into(),
    };
    let start = tokio::time::Instant::now();
    let jit = client.generate_jit_config(&org(), &request).await.unwrap();
    assert_eq!(jit.runner_id, 1);
    assert!(
        start.elapsed() >= Duration::from_secs(30),
        "waited {:?}",
        start.elapsed()
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_for_gets_but_not_for_jit_posts() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/orgs/acme/actions/runners"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/orgs/acme/actions/runners"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"total_count": 0, "runners": []})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/orgs/acme/actions/runners/generate-jitconfig"))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&server)
        .await;
    let options = ClientOptions {
        request_timeout: None,
        ..ClientOptions::default()
    };
    let client = pat_client(&server, options);
    assert!(client.list_runners(&org()).await.unwrap().is_empty());
    let request = JitRequest {
        name: "r1".into(),
        runner_group_id: 1,
        labels: vec!["x".into()],
        work_folder: "_work".into(),
    };
    let err = client
        .generate_jit_config(&org(), &request)
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::Transient, Some(503))
    );
}

#[tokio::test]
async fn unauthorized_is_permanent_and_forbidden_is_not_mistaken_for_a_limit() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/orgs/acme/actions/runners"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/orgs/other/actions/runners"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "message": "Resource not accessible by integration"})))
        .expect(1)
        .mount(&server)
        .await;
    let client = pat_client(&server, ClientOptions::default());
    let err = client.list_runners(&org()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert!(err.to_string().contains("Bad credentials"), "{err}");
    assert!(!err.to_string().contains("ghp_test"));
    let err = client
        .list_runners(&Scope::Org {
            org: "other".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::Permanent, Some(403))
    );
}

#[tokio::test]
async fn names_that_could_rewrite_the_path_are_rejected_before_sending() {
    let server = MockServer::start().await;
    let client = pat_client(&server, ClientOptions::default());
    let err = client.list_org_repos("acme/../x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert!(server.received_requests().await.unwrap().is_empty());
}

fn job_json(id: u64) -> Value {
    json!({
        "id": id, "run_id": 30, "run_attempt": 1, "status": "queued", "conclusion": null,
        "name": "build", "labels": ["serverless-hosted-runner"]
    })
}

fn jit_request(name: &str) -> JitRequest {
    JitRequest {
        name: name.into(),
        runner_group_id: 1,
        labels: vec!["serverless-hosted-runner".into()],
        work_folder: "_work".into(),
    }
}

#[tokio::test]
async fn a_moved_repo_is_followed_on_the_same_host_with_credentials() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/old-name/actions/jobs/77"))
        .respond_with(ResponseTemplate::new(301).insert_header(
            "location",
            format!("{}/repositories/42/actions/jobs/77", server.uri()),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repositories/42/actions/jobs/77"))
        .and(header("authorization", "Bearer ghp_test"))
        .respond_with(ResponseTemplate::new(200).set_body_json(job_json(77)))
        .expect(1)
        .mount(&server)
        .await;
    let client = pat_client(&server, ClientOptions::default());
    let job = client.get_job("acme", "old-name", 77).await.unwrap();
    assert_eq!(job.map(|j| j.id), Some(77));
}

#[tokio::test]
async fn a_307_for_a_transferred_org_keeps_method_and_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/orgs/acme/actions/runners/generate-jitconfig"))
        .respond_with(ResponseTemplate::new(307).insert_header(
            "location",
            "/orgs/acme-new/actions/runners/generate-jitconfig",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/orgs/acme-new/actions/runners/generate-jitconfig"))
        .and(body_json(json!({"name": "r1", "runner_group_id": 1,
            "labels": ["serverless-hosted-runner"], "work_folder": "_work"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "runner": {"id": 9, "name": "r1", "labels": []}, "encoded_jit_config": "x"})))
        .expect(1)
        .mount(&server)
        .await;
    let client = pat_client(&server, ClientOptions::default());
    let jit = client
        .generate_jit_config(&org(), &jit_request("r1"))
        .await
        .unwrap();
    assert_eq!(jit.runner_id, 9);
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed_and_leaks_no_credential() {
    let server = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/app/actions/jobs/1"))
        .respond_with(ResponseTemplate::new(302).insert_header(
            "location",
            format!("{}/repos/acme/app/actions/jobs/1", elsewhere.uri()),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(job_json(1)))
        .mount(&elsewhere)
        .await;
    let client = pat_client(&server, ClientOptions::default());
    let err = client.get_job("acme", "app", 1).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::Permanent, Some(302))
    );
    assert!(err.to_string().contains("another host"), "{err}");
    assert!(elsewhere.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_redirect_loop_stops_after_a_bounded_number_of_hops() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/app/actions/jobs/1"))
        .respond_with(
            ResponseTemplate::new(308).insert_header("location", "/repos/acme/app/actions/jobs/1"),
        )
        .mount(&server)
        .await;
    let client = pat_client(&server, ClientOptions::default());
    let err = client.get_job("acme", "app", 1).await.unwrap_err();
    assert!(err.to_string().contains("too many redirects"), "{err}");
    assert_eq!(server.received_requests().await.unwrap().len(), 6);
}

#[tokio::test(start_paused = true)]
async fn secondary_limits_without_retry_after_back_off_exponentially_with_jitter() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/app/actions/jobs/1"))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({"message": "You have exceeded a secondary rate limit. Please wait."}),
        ))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/app/actions/jobs/1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(job_json(1)))
        .mount(&server)
        .await;
    let options = ClientOptions {
        request_timeout: None,
        max_rate_wait: Duration::from_secs(3600),
        ..ClientOptions::default()
    };
    let client = pat_client(&server, options);
    let start = tokio::time::Instant::now();
    assert!(client.get_job("acme", "app", 1).await.unwrap().is_some());
    // 60 s, 120 s, 240 s, each plus up to a tenth of jitter (a flat 60 s would be 180 s).
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(420) && elapsed <= Duration::from_secs(462),
        "waited {elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_secondary_backoff_beyond_the_allowed_wait_fails_with_quota() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(429).set_body_json(json!({"message": "secondary rate limit"})),
        )
        .mount(&server)
        .await;
    let options = ClientOptions {
        request_timeout: None,
        max_rate_wait: Duration::from_secs(100),
        ..ClientOptions::default()
    };
    let client = pat_client(&server, options);
    let err = client.get_job("acme", "app", 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Quota);
    // Waited about 60 s once; the next wait (about 120 s) exceeds the allowed 100 s.
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn deletes_are_paced_with_jit_registrations_per_credential() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "runner": {"id": 1, "name": "r", "labels": []}, "encoded_jit_config": "x"})))
        .mount(&server)
        .await;
    // 60 a minute: a burst of 6, then one a second.
    let options = ClientOptions {
        request_timeout: None,
        ..ClientOptions::default()
    };
    assert_eq!(options.jit_per_minute, 60);
    let client = pat_client(&server, options);
    let start = tokio::time::Instant::now();
    for id in 0..6 {
        client.delete_runner(&org(), id).await.unwrap();
    }
    assert_eq!(start.elapsed(), Duration::ZERO, "the burst passes at once");
    for id in 6..10 {
        client.delete_runner(&org(), id).await.unwrap();
    }
    client
        .generate_jit_config(&org(), &jit_request("r"))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test]
async fn every_page_of_a_listing_is_conditional() {
    let server = MockServer::start().await;
    let page2 = format!(
        "{}/repos/acme/app/actions/runs/30/jobs?per_page=100&page=2",
        server.uri()
    );
    for (page, tag) in [("1", "\"p1\""), ("2", "\"p2\"")] {
        Mock::given(method("GET"))
            .and(path("/repos/acme/app/actions/runs/30/jobs"))
            .and(header("if-none-match", tag))
            .and(move |r: &Request| {
                r.url.query_pairs().any(|(k, v)| k == "page" && v == page) || page == "1"
            })
            .respond_with(ResponseTemplate::new(304).insert_header("etag", tag))
            .with_priority(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/repos/acme/app/actions/runs/30/jobs"))
        .and(query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "\"p2\"")
                .set_body_json(json!({"total_count": 2, "jobs": [job_json(2)]})),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/app/actions/runs/30/jobs"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "\"p1\"")
                .insert_header("link", format!("<{page2}>; rel=\"next\""))
                .set_body_json(json!({"total_count": 2, "jobs": [job_json(1)]})),
        )
        .with_priority(3)
        .mount(&server)
        .await;
    let client = pat_client(&server, ClientOptions::default());
    let Conditional::Modified { value, etag } =
        client.list_run_jobs("acme", "app", 30, None).await.unwrap()
    else {
        panic!("first listing must be Modified");
    };
    assert_eq!(value.iter().map(|j| j.id).collect::<Vec<_>>(), [1, 2]);
    let again = client
        .list_run_jobs("acme", "app", 30, etag.as_deref())
        .await
        .unwrap();
    assert_eq!(again, Conditional::NotModified);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 4);
    let conditional: Vec<_> = requests[2..]
        .iter()
        .map(|r| {
            r.headers
                .get("if-none-match")
                .map(|v| v.to_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        conditional,
        [Some("\"p1\"".to_owned()), Some("\"p2\"".to_owned())]
    );
    // Without the caller's validator the cached pages still answer, at no rate cost.
    let Conditional::Modified { value, .. } =
        client.list_run_jobs("acme", "app", 30, None).await.unwrap()
    else {
        panic!("no validator given: Modified");
    };
    assert_eq!(value.iter().map(|j| j.id).collect::<Vec<_>>(), [1, 2]);
}
