#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The simulator's own checks, over raw HTTP: credentials and tokens, names, required fields,
//! cpu/memory steps and maxima, env sizes, hidden secrets, PUT idempotency.

use cloud_azure::{Sim, SimConfig, SimHandle};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

struct Ctx {
    sim: SimHandle,
    cfg: SimConfig,
    http: reqwest::Client,
}

async fn start() -> Ctx {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg = SimConfig::default();
    let sim = Sim::start(cfg.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    Ctx {
        sim,
        cfg,
        http: reqwest::Client::new(),
    }
}

impl Ctx {
    async fn token_with(&self, secret: &str) -> (StatusCode, Value) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.cfg.client_id)
            .append_pair("scope", "https://management.azure.com/.default")
            .append_pair("client_secret", secret)
            .append_pair("grant_type", "client_credentials")
            .finish();
        let r = self
            .http
            .post(format!(
                "{}/{}/oauth2/v2.0/token",
                self.sim.base_url(),
                self.cfg.tenant_id
            ))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap())
    }

    async fn token(&self) -> String {
        let (status, body) = self
            .token_with(self.cfg.client_secret.expose_secret())
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["token_type"], "Bearer");
        body["access_token"].as_str().unwrap().to_owned()
    }

    fn url(&self, name: &str) -> String {
        format!(
            "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerInstance/containerGroups/{name}?api-version=2025-09-01",
            self.sim.base_url(),
            self.cfg.subscription_id,
            self.cfg.resource_groups[0]
        )
    }

    async fn put(
        &self,
        name: &str,
        body: &Value,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let r = self
            .http
            .put(self.url(name))
            .bearer_auth(self.token().await)
            .json(body)
            .send()
            .await
            .unwrap();
        let (s, h) = (r.status(), r.headers().clone());
        (s, h, r.json().await.unwrap())
    }
}

fn group(cpu: f64, mem: f64, env: Value) -> Value {
    json!({
        "location": "westeurope",
        "tags": {"shr-controller": "c"},
        "properties": {
            "osType": "Linux",
            "restartPolicy": "Never",
            "sku": "Standard",
            "containers": [{"name": "runner", "properties": {
                "image": "img:1",
                "resources": {"requests": {"cpu": cpu, "memoryInGB": mem}},
                "environmentVariables": env,
            }}],
        },
    })
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap()
}

#[tokio::test]
async fn wrong_client_secret_gets_aadsts7000215() {
    let ctx = start().await;
    let (status, body) = ctx.token_with("not-the-secret").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], json!([7000215]));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215: Invalid client secret provided.")
    );
    assert!(body["trace_id"].is_string() && body["correlation_id"].is_string());
}

#[tokio::test]
async fn arm_rejects_missing_and_forged_tokens() {
    let ctx = start().await;
    let r = ctx.http.get(ctx.url("x")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    assert_eq!(code(&r.json().await.unwrap()), "AuthenticationFailed");

    let forged = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQuYXp1cmUuY29tIn0.c2ln";
    let r = ctx
        .http
        .get(ctx.url("x"))
        .bearer_auth(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(code(&r.json().await.unwrap()), "InvalidAuthenticationToken");

    let r = ctx
        .http
        .get(ctx.url("x"))
        .bearer_auth(ctx.token().await)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(code(&r.json().await.unwrap()), "ResourceNotFound");

    let no_version = ctx.url("x").replace("?api-version=2025-09-01", "");
    let r = ctx
        .http
        .get(no_version)
        .bearer_auth(ctx.token().await)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(code(&r.json().await.unwrap()), "MissingApiVersionParameter");
}

#[tokio::test]
async fn put_is_idempotent_by_name_and_get_hides_secure_values() {
    let ctx = start().await;
    let env = json!([{"name": "ACTIONS_RUNNER_INPUT_JITCONFIG", "secureValue": "jit-secret"}, {"name": "A", "value": "b"}]);
    let mut body = group(1.0, 1.5, env);
    body["properties"]["volumes"] = json!([{"name": "disk", "azureFile": {"shareName": "s1", "storageAccountName": "acct", "storageAccountKey": "key-secret"}}]);
    let (status, headers, first) = ctx.put("g1", &body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first["properties"]["provisioningState"], "Creating");
    let op_url = headers["azure-asyncoperation"].to_str().unwrap().to_owned();
    let (status, _, _) = ctx.put("g1", &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ctx.sim.instances().len(), 1);

    let r = ctx
        .http
        .get(ctx.url("g1"))
        .bearer_auth(ctx.token().await)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(
        !text.contains("jit-secret") && !text.contains("key-secret"),
        "{text}"
    );
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        got["properties"]["containers"][0]["properties"]["environmentVariables"][0]["name"],
        "ACTIONS_RUNNER_INPUT_JITCONFIG"
    );

    let op: Value = ctx
        .http
        .get(op_url)
        .bearer_auth(ctx.token().await)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(op["status"] == "Succeeded" || op["status"] == "InProgress");
}

#[tokio::test]
async fn names_fields_sizes_and_env_are_checked() {
    let ctx = start().await;
    let ok = group(1.0, 1.5, json!([]));

    let (s, _, b) = ctx.put("Bad_Name", &ok).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::BAD_REQUEST, "InvalidResourceName")
    );
    let (s, _, b) = ctx.put("-lead", &ok).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::BAD_REQUEST, "InvalidResourceName")
    );

    let mut no_os = ok.clone();
    no_os["properties"]
        .as_object_mut()
        .unwrap()
        .remove("osType");
    let (_, _, b) = ctx.put("g", &no_os).await;
    assert_eq!(code(&b), "InvalidOsType");

    let mut no_requests = ok.clone();
    no_requests["properties"]["containers"][0]["properties"]["resources"] = json!({});
    let (_, _, b) = ctx.put("g", &no_requests).await;
    assert_eq!(code(&b), "ResourceRequestsNotSpecified");

    let (s, _, b) = ctx.put("g", &group(0.25, 1.0, json!([]))).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::BAD_REQUEST, "InvalidResourceRequests")
    );
    let (s, _, b) = ctx.put("g", &group(1.0, 1.05, json!([]))).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::BAD_REQUEST, "InvalidResourceRequests")
    );
    let (s, _, b) = ctx.put("g", &group(4.0, 32.0, json!([]))).await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "ServiceUnavailable"));

    let long = "x".repeat(131_072);
    let (s, _, b) = ctx
        .put(
            "g",
            &group(1.0, 1.0, json!([{"name": "BIG", "secureValue": long}])),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::BAD_REQUEST, "InvalidEnvironmentVariable")
    );

    let mut privileged = ok.clone();
    privileged["properties"]["containers"][0]["properties"]["securityContext"] =
        json!({"privileged": true});
    let (_, _, b) = ctx.put("g", &privileged).await;
    assert_eq!(code(&b), "InvalidContainerSecurityContext");

    let mut bad_subnet = ok.clone();
    bad_subnet["properties"]["subnetIds"] = json!([{"id": "runners"}]);
    let (_, _, b) = ctx.put("g", &bad_subnet).await;
    assert_eq!(code(&b), "InvalidSubnetIds");

    let mut no_location = ok.clone();
    no_location.as_object_mut().unwrap().remove("location");
    let (_, _, b) = ctx.put("g", &no_location).await;
    assert_eq!(code(&b), "LocationRequired");

    assert!(ctx.sim.instances().is_empty());
    let (s, _, _) = ctx.put("g", &ok).await;
    assert_eq!(s, StatusCode::CREATED);
}
