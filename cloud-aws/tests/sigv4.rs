#![allow(clippy::unwrap_used, clippy::expect_used)]
//! SigV4 through `cloud_aws::sign` against AWS's published test vectors (get-vanilla family,
//! session token, and POST cases with a signed body), see `tests/data/sigv4/README.md`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use cloud_aws::Credentials;
use cloud_aws::sign::{Scope, sign};
use secrecy::SecretString;

const CASES: &[&str] = &[
    "get-vanilla",
    "get-vanilla-query",
    "get-vanilla-empty-query-key",
    "get-vanilla-query-order-key-case",
    "get-vanilla-query-order-encoded",
    "get-vanilla-query-unreserved",
    "get-vanilla-utf8-query",
    "get-vanilla-with-session-token",
    "post-vanilla",
    "post-vanilla-query",
    "post-header-key-sort",
    "post-x-www-form-urlencoded",
];

struct Case {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    creds: Credentials,
    region: String,
    service: String,
    time: SystemTime,
    sign_body: bool,
}

fn dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sigv4")
        .join(case)
}

fn load(case: &str) -> Case {
    let d = dir(case);
    let ctx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("context.json")).unwrap()).unwrap();
    let raw = std::fs::read(d.join("request.txt")).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap().to_owned();
    let path = parts.next().unwrap().to_owned();
    let mut host = String::new();
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        if name.eq_ignore_ascii_case("host") {
            host = value.to_owned();
        } else {
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    // Build the URL the way an HTTP client would hold it (the UTF-8 query stays raw: the
    // signer percent-encodes it for the canonical request).
    let url = http::Uri::builder()
        .scheme("https")
        .authority(host.as_str())
        .path_and_query(path.as_str())
        .build()
        .unwrap()
        .to_string();
    let c = &ctx["credentials"];
    let time = chrono::DateTime::parse_from_rfc3339(ctx["timestamp"].as_str().unwrap()).unwrap();
    Case {
        method,
        url,
        headers,
        body: body.as_bytes().to_vec(),
        creds: Credentials {
            access_key_id: c["access_key_id"].as_str().unwrap().to_owned(),
            secret_access_key: SecretString::from(c["secret_access_key"].as_str().unwrap()),
            session_token: c["token"].as_str().map(SecretString::from),
            expires: None,
        },
        region: ctx["region"].as_str().unwrap().to_owned(),
        service: ctx["service"].as_str().unwrap().to_owned(),
        time: SystemTime::from(time),
        sign_body: ctx["sign_body"].as_bool().unwrap(),
    }
}

/// The headers of the expected signed request, lowercased names.
fn expected_headers(case: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir(case).join("header-signed-request.txt")).unwrap();
    let head = text.split_once("\n\n").map_or(text.as_str(), |(h, _)| h);
    head.lines()
        .skip(1)
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_ascii_lowercase(), v.to_owned())
        })
        .collect()
}

#[test]
fn signer_matches_the_published_vectors() {
    for case in CASES {
        let c = load(case);
        let headers: Vec<(&str, &str)> = c
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let signed = sign(
            &c.creds,
            Scope {
                region: &c.region,
                service: &c.service,
                time: c.time,
                content_sha256_header: c.sign_body,
            },
            &c.method,
            &c.url,
            &headers,
            &c.body,
        )
        .unwrap_or_else(|e| panic!("{case}: {e}"));
        let expected = expected_headers(case);
        let get = |list: &[(String, String)], name: &str| {
            list.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        for name in [
            "authorization",
            "x-amz-date",
            "x-amz-security-token",
            "x-amz-content-sha256",
        ] {
            assert_eq!(
                get(&signed, name),
                get(&expected, name),
                "{case}: header {name}"
            );
        }
        let signature = std::fs::read_to_string(dir(case).join("header-signature.txt")).unwrap();
        let auth = get(&signed, "authorization").unwrap();
        assert!(
            auth.ends_with(&format!("Signature={}", signature.trim())),
            "{case}: {auth}"
        );
    }
}

#[test]
fn a_different_secret_changes_the_signature() {
    let mut c = load("get-vanilla");
    c.creds.secret_access_key = SecretString::from("not-the-example-key");
    let signed = sign(
        &c.creds,
        Scope {
            region: &c.region,
            service: &c.service,
            time: c.time,
            content_sha256_header: false,
        },
        &c.method,
        &c.url,
        &[],
        &c.body,
    )
    .unwrap();
    let expected =
        std::fs::read_to_string(dir("get-vanilla").join("header-signature.txt")).unwrap();
    let auth = &signed.iter().find(|(n, _)| n == "authorization").unwrap().1;
    assert!(!auth.contains(expected.trim()));
}
