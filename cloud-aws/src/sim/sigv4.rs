//! The simulator's own SigV4 check, written from the SigV4 documentation ("Create a signed
//! AWS API request") independently of `aws-sigv4`, so a mistake in how the provider drives
//! that crate is not mirrored here. Its results are pinned to the same published vectors.

use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};

/// A request as it arrived.
#[derive(Debug)]
pub struct Received<'a> {
    pub method: &'a str,
    /// The path as sent (percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// Every header, names in any case; repeated names allowed.
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

/// The parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Why a request is refused, with the error type AWS answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
pub fn parse_authorization(value: &str) -> Result<Authorization, Refusal> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
        refuse(
            "IncompleteSignatureException",
            "Authorization header requires the AWS4-HMAC-SHA256 algorithm",
        )
    })?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(refuse(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters",
        ));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(refuse(
            "IncompleteSignatureException",
            format!("Credential should be scoped to a valid region, not '{credential}'"),
        ));
    };
    Ok(Authorization {
        access_key_id: (*key).to_owned(),
        date: (*date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
        signed_headers: signed.split(';').map(str::to_owned).collect(),
        signature: signature.to_owned(),
    })
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// SigV4's URI encoding: everything but `A-Za-z0-9-_.~` as `%XX`.
fn uri_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k)),
                uri_encode(&percent_decode(v)),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical request for `req` under `auth`'s signed headers.
pub fn canonical_request(req: &Received<'_>, auth: &Authorization) -> String {
    let mut canonical_headers = String::new();
    for name in &auth.signed_headers {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let path = if req.path.is_empty() { "/" } else { req.path };
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        path,
        canonical_query(req.query),
        canonical_headers,
        auth.signed_headers.join(";"),
        hex_sha256(req.body)
    )
}

/// The signature of `req` with `secret`, and the string to sign.
pub fn signature(req: &Received<'_>, auth: &Authorization, amz_date: &str, secret: &str) -> String {
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex_sha256(canonical_request(req, auth).as_bytes())
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), &auth.date);
    let k_region = hmac(&k_date, &auth.region);
    let k_service = hmac(&k_region, &auth.service);
    let k_signing = hmac(&k_service, "aws4_request");
    hex::encode(hmac(&k_signing, &string_to_sign))
}

/// Checks a request's signature; `now` is the server's clock (seconds since the epoch).
pub fn verify(
    req: &Received<'_>,
    key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
    now: i64,
) -> Result<(), Refusal> {
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let Some(value) = header("authorization") else {
        return Err(refuse(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let auth = parse_authorization(value)?;
    if auth.access_key_id != key_id {
        return Err(refuse(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(refuse(
                "InvalidSignatureException",
                format!("'{required}' must be a 'SignedHeader' in the AWS Authorization."),
            ));
        }
    }
    let amz_date = header("x-amz-date").unwrap_or_default();
    let when = chrono::NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| {
            refuse(
                "IncompleteSignatureException",
                "X-Amz-Date is not ISO 8601 basic",
            )
        })?
        .and_utc()
        .timestamp();
    if (now - when).abs() > 5 * 60 {
        return Err(refuse(
            "InvalidSignatureException",
            format!(
                "Signature expired: {amz_date} is now earlier or later than the allowed 5 minutes."
            ),
        ));
    }
    if !amz_date.starts_with(&auth.date) || auth.region != region || auth.service != service {
        return Err(refuse(
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to a valid region and service: expected {region}/{service}, got {}/{}",
                auth.region, auth.service
            ),
        ));
    }
    let expected = signature(req, &auth, amz_date, secret);
    if expected != auth.signature {
        return Err(refuse(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Checks the verifier's canonical request and signature against the vectors' own.
    #[test]
    fn verifier_matches_the_published_vectors() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sigv4");
        let mut checked = 0;
        for entry in std::fs::read_dir(&root).unwrap() {
            let dir = entry.unwrap().path();
            if !dir.is_dir() {
                continue;
            }
            let signed = std::fs::read_to_string(dir.join("header-signed-request.txt")).unwrap();
            let (head, body) = signed.split_once("\n\n").unwrap_or((&signed, ""));
            let mut lines = head.lines();
            let mut first = lines.next().unwrap().split(' ');
            let method = first.next().unwrap();
            let target = first.next().unwrap();
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let headers: Vec<(String, String)> = lines
                .map(|l| {
                    let (n, v) = l.split_once(':').unwrap();
                    (n.to_owned(), v.to_owned())
                })
                .collect();
            let req = Received {
                method,
                path,
                query,
                headers: headers.clone(),
                body: body.as_bytes(),
            };
            let auth_value = &headers
                .iter()
                .find(|(n, _)| n == "Authorization")
                .unwrap()
                .1;
            let auth = parse_authorization(auth_value).unwrap();
            let expected_canonical =
                std::fs::read_to_string(dir.join("header-canonical-request.txt")).unwrap();
            assert_eq!(
                canonical_request(&req, &auth),
                expected_canonical,
                "{dir:?}"
            );
            let when = chrono::DateTime::parse_from_rfc3339("2015-08-30T12:36:00Z")
                .unwrap()
                .timestamp();
            let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
            verify(&req, "AKIDEXAMPLE", secret, "us-east-1", "service", when)
                .unwrap_or_else(|e| panic!("{dir:?}: {e:?}"));
            let wrong = verify(&req, "AKIDEXAMPLE", "other", "us-east-1", "service", when);
            assert_eq!(wrong.unwrap_err().code, "InvalidSignatureException");
            let late = verify(
                &req,
                "AKIDEXAMPLE",
                secret,
                "us-east-1",
                "service",
                when + 3600,
            );
            assert!(late.unwrap_err().message.contains("Signature expired"));
            checked += 1;
        }
        assert!(checked >= 12, "{checked}");
    }
}
