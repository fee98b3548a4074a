#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The service-account JWT and the sim's token and bearer checks.

mod common;

use base64::Engine;
use cloud_gcp::{ServiceAccountKey, TokenSource};
use common::*;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn source(pem: &str, token_uri: &str) -> TokenSource {
    let key = ServiceAccountKey::parse(&key_json(pem)).unwrap();
    TokenSource::new(client(), key, Some(token_uri.to_owned())).unwrap()
}

fn part(jwt: &str, i: usize) -> Value {
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwt.split('.').nth(i).unwrap())
        .unwrap();
    serde_json::from_slice(&b).unwrap()
}

/// The assertion has the shape of Google's worked example in "Using OAuth 2.0 for Server to
/// Server Applications" (https://developers.google.com/identity/protocols/oauth2/service-account#authorizingrequests):
/// header `{"alg":"RS256","typ":"JWT"}` (plus `kid`), claims `iss`, `scope`, `aud`, `exp`,
/// `iat` with `exp` = `iat` + 3600 (the example has iat 1328550785, exp 1328554385).
#[test]
fn assertion_matches_googles_worked_example() {
    let source = source(
        &data("test-sa-key.pem"),
        "https://oauth2.googleapis.com/token",
    );
    let jwt = source.assertion(1328550785).unwrap();
    assert_eq!(
        part(&jwt, 0),
        json!({ "alg": "RS256", "typ": "JWT", "kid": KID })
    );
    assert_eq!(
        part(&jwt, 1),
        json!({
            "iss": EMAIL,
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "aud": "https://oauth2.googleapis.com/token",
            "iat": 1328550785u64,
            "exp": 1328554385u64,
        })
    );
    // An independent verifier: openssl checks the RS256 signature with the public key.
    let Ok(_) = std::process::Command::new("openssl")
        .arg("version")
        .output()
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (input, sig) = jwt.rsplit_once('.').unwrap();
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .unwrap();
    std::fs::write(dir.path().join("input"), input).unwrap();
    std::fs::write(dir.path().join("sig"), sig).unwrap();
    std::fs::write(dir.path().join("pub.pem"), data("test-sa-pub.pem")).unwrap();
    let out = std::process::Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig",
            "input",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn key_debug_output_hides_the_private_key() {
    let key = ServiceAccountKey::parse(&key_json(&data("test-sa-key.pem"))).unwrap();
    assert!(!format!("{key:?}").contains("PRIVATE KEY"));
    let err =
        ServiceAccountKey::parse(&secrecy::SecretString::from("{\"type\":\"user\"}")).unwrap_err();
    assert!(err.to_string().contains("service_account") || err.to_string().contains("JSON"));
}

#[tokio::test]
async fn the_sim_issues_tokens_for_good_assertions_and_caches_are_reused() {
    let sim = start(sim_config()).await;
    let source = source(
        &data("test-sa-key.pem"),
        &format!("{}/token", sim.base_url()),
    );
    let first = source.token().await.unwrap();
    let second = source.token().await.unwrap();
    assert_eq!(first.expose_secret(), second.expose_secret());
    assert!(first.expose_secret().starts_with("ya29."));
}

#[tokio::test]
async fn a_wrong_key_gets_googles_invalid_grant() {
    let sim = start(sim_config()).await;
    let token_uri = format!("{}/token", sim.base_url());
    let jwt = source(&data("test-other-key.pem"), &token_uri)
        .assertion(unix_now())
        .unwrap();
    let response = client()
        .post(&token_uri)
        .form(&[
            ("grant_type", cloud_gcp::auth::GRANT_TYPE),
            ("assertion", &jwt),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "error": "invalid_grant", "error_description": "Invalid JWT Signature." })
    );
}

#[tokio::test]
async fn the_sim_checks_audience_and_lifetime() {
    let sim = start(sim_config()).await;
    let token_uri = format!("{}/token", sim.base_url());
    let post = |jwt: String| {
        let token_uri = token_uri.clone();
        async move {
            let r = client()
                .post(&token_uri)
                .form(&[
                    ("grant_type", cloud_gcp::auth::GRANT_TYPE),
                    ("assertion", &jwt),
                ])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let wrong_aud = source(
        &data("test-sa-key.pem"),
        "https://oauth2.googleapis.com/token",
    );
    let (status, body) = post(wrong_aud.assertion(unix_now()).unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let right = source(&data("test-sa-key.pem"), &token_uri);
    let (status, body) = post(right.assertion(unix_now() - 7200).unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("iat and exp")
    );
}

#[tokio::test]
async fn unknown_bearer_gets_401_unauthenticated() {
    let sim = start(sim_config()).await;
    let url = format!(
        "{}/v2/projects/{PROJECT}/locations/{REGION}/jobs",
        sim.base_url()
    );
    let response = client()
        .get(&url)
        .bearer_auth("ya29.forged")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], 401);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
}

#[tokio::test]
async fn the_sim_rejects_an_over_long_env_value() {
    let sim = start(sim_config()).await;
    let token = source(
        &data("test-sa-key.pem"),
        &format!("{}/token", sim.base_url()),
    )
    .token()
    .await
    .unwrap();
    let url = format!(
        "{}/v2/projects/{PROJECT}/locations/{REGION}/jobs?jobId=too-long",
        sim.base_url()
    );
    let body = json!({ "template": { "template": { "containers": [{
        "image": "busybox",
        "env": [{ "name": "BIG", "value": "x".repeat(40_000) }],
    }]}}});
    let response = client()
        .post(&url)
        .bearer_auth(token.expose_secret())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    assert!(sim.run_jobs().is_empty());
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
