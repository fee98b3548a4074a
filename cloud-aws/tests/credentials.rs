#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The credentials chain against a tiny local HTTP server playing the ECS agent's container
//! credentials endpoint and EC2's IMDSv2: what is asked, in which order, with which headers,
//! the credentials returned, their caching, and that no secret shows in `Debug` or errors.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cloud_aws::credentials::{ChainEndpoints, CredentialProvider};
use cloud_aws::{CredentialSource, Credentials};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

const KEY: &str = "ASIATESTCHAINKEY0001";
const SECRET: &str = "chain-secret-access-key-never-logged";
const TOKEN: &str = "chain-session-token-never-logged";
const IMDS_TOKEN: &str = "imds-session-token-0123";

/// One request as the server saw it: method, path, headers (lowercase names).
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

type Route = fn(&Seen) -> (u16, String);

/// Serves HTTP/1.1 on 127.0.0.1 with `route`, one request per connection; records requests.
async fn serve(route: Route) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                reader.read_line(&mut line).await.unwrap();
                let mut parts = line.split_whitespace();
                let (method, path) = (
                    parts.next().unwrap().to_owned(),
                    parts.next().unwrap().to_owned(),
                );
                let mut headers = Vec::new();
                let mut length = 0usize;
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).await.unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (n, v) = h.split_once(':').unwrap();
                    let (n, v) = (n.trim().to_ascii_lowercase(), v.trim().to_owned());
                    if n == "content-length" {
                        length = v.parse().unwrap();
                    }
                    headers.push((n, v));
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).await.unwrap();
                let req = Seen {
                    method,
                    path,
                    headers,
                };
                let (status, body) = route(&req);
                log.lock().unwrap().push(req);
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let mut stream = reader.into_inner();
                stream.write_all(answer.as_bytes()).await.unwrap();
                stream.shutdown().await.unwrap();
            });
        }
    });
    (base, seen)
}

fn creds_json(expires_in: chrono::Duration) -> String {
    serde_json::json!({
        "AccessKeyId": KEY,
        "SecretAccessKey": SECRET,
        "Token": TOKEN,
        "Expiration": (chrono::Utc::now() + expires_in).to_rfc3339(),
        "RoleArn": "arn:aws:iam::123456789012:role/shr-controller",
    })
    .to_string()
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

fn chain(container_host: &str, imds: &str, env: fn(&str) -> Option<String>) -> CredentialSource {
    CredentialSource::Chain(ChainEndpoints {
        container_host: container_host.to_owned(),
        imds: imds.to_owned(),
        env,
    })
}

fn assert_is_the_role(c: &Credentials) {
    assert_eq!(c.access_key_id, KEY);
    assert_eq!(c.secret_access_key.expose_secret(), SECRET);
    assert_eq!(c.session_token.as_ref().unwrap().expose_secret(), TOKEN);
    let expires = c.expires.expect("temporary credentials expire");
    assert!(expires > SystemTime::now() + Duration::from_secs(30 * 60));
    let shown = format!("{c:?}");
    assert!(
        !shown.contains(SECRET) && !shown.contains(TOKEN),
        "Debug shows a secret: {shown}"
    );
}

#[tokio::test]
async fn the_container_endpoint_is_read_at_the_relative_uri() {
    let (base, seen) = serve(|req| match req.path.as_str() {
        "/v2/credentials/4f1c" => (200, creds_json(chrono::Duration::hours(6))),
        _ => (404, String::new()),
    })
    .await;
    let env: fn(&str) -> Option<String> = |k| {
        (k == "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").then(|| "/v2/credentials/4f1c".to_owned())
    };
    // IMDS points nowhere: the container endpoint must win before it is tried.
    let p = CredentialProvider::new(chain(&base, "http://127.0.0.1:9", env), http());
    let c = p.get().await.unwrap();
    assert_is_the_role(&c);
    // Cached until close to expiry: a second get asks nothing.
    p.get().await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "GET");
}

#[tokio::test]
async fn the_full_uri_sends_the_authorization_token() {
    let (base, seen) = serve(|req| match req.header("authorization") {
        Some("agent-token-xyz") => (200, creds_json(chrono::Duration::hours(6))),
        _ => (401, String::new()),
    })
    .await;
    static BASE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BASE.set(format!("{base}/creds")).unwrap();
    let env: fn(&str) -> Option<String> = |k| match k {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI" => BASE.get().cloned(),
        "AWS_CONTAINER_AUTHORIZATION_TOKEN" => Some("agent-token-xyz".into()),
        _ => None,
    };
    let p = CredentialProvider::new(
        chain("http://127.0.0.1:9", "http://127.0.0.1:9", env),
        http(),
    );
    assert_is_the_role(&p.get().await.unwrap());
    assert_eq!(seen.lock().unwrap()[0].path, "/creds");
}

#[tokio::test]
async fn imdsv2_puts_a_token_then_reads_the_role_and_its_credentials() {
    let (base, seen) = serve(|req| {
        let token_ok = req.header("x-aws-ec2-metadata-token") == Some(IMDS_TOKEN);
        match (req.method.as_str(), req.path.as_str()) {
            ("PUT", "/latest/api/token")
                if req.header("x-aws-ec2-metadata-token-ttl-seconds").is_some() =>
            {
                (200, IMDS_TOKEN.into())
            }
            // IMDSv1 (no token) is refused, as on an instance that requires v2.
            ("GET", _) if !token_ok => (401, String::new()),
            ("GET", "/latest/meta-data/iam/security-credentials/") => {
                (200, "shr-controller-role\n".into())
            }
            ("GET", "/latest/meta-data/iam/security-credentials/shr-controller-role") => {
                (200, creds_json(chrono::Duration::hours(6)))
            }
            _ => (404, String::new()),
        }
    })
    .await;
    let p = CredentialProvider::new(chain("http://127.0.0.1:9", &base, |_| None), http());
    assert_is_the_role(&p.get().await.unwrap());
    let seen = seen.lock().unwrap().clone();
    let steps: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("PUT", "/latest/api/token"),
            ("GET", "/latest/meta-data/iam/security-credentials/"),
            (
                "GET",
                "/latest/meta-data/iam/security-credentials/shr-controller-role"
            ),
        ]
    );
}

#[tokio::test]
async fn credentials_near_expiry_are_fetched_again() {
    let (base, seen) = serve(|_| (200, creds_json(chrono::Duration::minutes(2)))).await;
    let env: fn(&str) -> Option<String> =
        |k| (k == "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").then(|| "/v2/c".to_owned());
    let p = CredentialProvider::new(chain(&base, "http://127.0.0.1:9", env), http());
    p.get().await.unwrap();
    p.get().await.unwrap();
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "inside the refresh margin: fetched again"
    );
}

#[tokio::test]
async fn the_environment_comes_first_and_a_failing_chain_says_where_without_secrets() {
    let env: fn(&str) -> Option<String> = |k| match k {
        "AWS_ACCESS_KEY_ID" => Some("AKIAENVKEY0000000001".into()),
        "AWS_SECRET_ACCESS_KEY" => Some(SECRET.into()),
        // Present but not consulted: the environment wins.
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" => Some("/v2/never".into()),
        _ => None,
    };
    let p = CredentialProvider::new(
        chain("http://127.0.0.1:9", "http://127.0.0.1:9", env),
        http(),
    );
    let c = p.get().await.unwrap();
    assert_eq!(c.access_key_id, "AKIAENVKEY0000000001");
    assert!(c.session_token.is_none() && c.expires.is_none());

    // An endpoint that refuses: a transient credentials error naming the step.
    let (base, _) = serve(|_| (500, SECRET.into())).await;
    let env: fn(&str) -> Option<String> =
        |k| (k == "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").then(|| "/v2/c".to_owned());
    let p = CredentialProvider::new(chain(&base, "http://127.0.0.1:9", env), http());
    let e = p.get().await.unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(text.contains("container credentials endpoint"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    assert_eq!(e.kind(), bus_schema::ErrorKind::Transient);

    let fixed = Credentials {
        access_key_id: "AKIASTATIC0000000001".into(),
        secret_access_key: SecretString::from(SECRET.to_owned()),
        session_token: None,
        expires: None,
    };
    let shown = format!("{:?}", CredentialSource::Static(fixed));
    assert!(!shown.contains(SECRET), "{shown}");
}
