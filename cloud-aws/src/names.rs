//! Names and tags as ECS and Secrets Manager accept them, derived from runner names.
//!
//! - `startedBy`: up to 128 letters, digits, `-`, `_` and `/` (RunTask reference).
//! - `clientToken`: up to 64 characters; we send 64 hex characters of a SHA-256 over the
//!   controller id, the runner name and the launch path, so one runner always sends the same
//!   token and the on-demand fallback a different one.
//! - secret names: letters, digits and `/_+=.@-`, up to 512.
//! - task definition family: up to 255 letters, digits, `_` and `-`.
//! - tag values (both services): letters, digits, spaces and `_.:/=+-@`, up to 256 characters.

use sha2::{Digest as _, Sha256};

/// The longest `startedBy`.
pub const MAX_STARTED_BY: usize = 128;
/// The longest tag value.
pub const MAX_TAG_VALUE: usize = 256;

fn hex_digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn clean(s: &str, ok: impl Fn(char) -> bool, max: usize) -> String {
    let cleaned: String = s.chars().map(|c| if ok(c) { c } else { '-' }).collect();
    if cleaned == s && s.len() <= max {
        return cleaned;
    }
    // Changed or cut: add a hash of the original so two runners never collide.
    let hash = &hex_digest(&[s])[..10];
    let keep: String = cleaned.chars().take(max.saturating_sub(11)).collect();
    format!("{keep}-{hash}")
}

/// The `startedBy` of `runner_name`'s task.
pub fn started_by(runner_name: &str) -> String {
    clean(
        runner_name,
        |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/'),
        MAX_STARTED_BY,
    )
}

/// The RunTask `clientToken` of `runner_name` on `launch` (`FARGATE`, `FARGATE_SPOT`).
pub fn client_token(controller_id: &str, runner_name: &str, launch: &str) -> String {
    hex_digest(&[controller_id, runner_name, launch])
}

/// A Secrets Manager `ClientRequestToken` (32–64 characters) for one secret value.
pub fn secret_request_token(controller_id: &str, runner_name: &str) -> String {
    hex_digest(&[controller_id, runner_name, "jit"])[..64].to_owned()
}

/// The secret holding `runner_name`'s JIT config: `{prefix}{controller}/{runner}`.
pub fn secret_name(prefix: &str, controller_id: &str, runner_name: &str) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c);
    clean(
        &format!("{prefix}{controller_id}/{}", started_by(runner_name)),
        ok,
        512,
    )
}

/// The task definition family for `image`: `shr-{controller}-{hash of image}`.
pub fn family(controller_id: &str, image: &str) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_');
    let controller = clean(controller_id, ok, 200);
    format!("shr-{controller}-{}", &hex_digest(&[image])[..12])
}

/// A tag value both services accept: other characters become `_`, cut to 256.
pub fn tag_value(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || " _.:/=+-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(MAX_TAG_VALUE)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_are_valid_and_distinct() {
        assert_eq!(started_by("shr-acme-42-1"), "shr-acme-42-1");
        let odd = started_by("shr acme.42");
        assert!(odd.starts_with("shr-acme-42-"), "{odd}");
        assert_ne!(started_by("a.b"), started_by("a,b"));
        assert!(started_by(&"x".repeat(300)).len() <= MAX_STARTED_BY);
        let t = client_token("c", "r", "FARGATE");
        assert_eq!(t.len(), 64);
        assert_eq!(t, client_token("c", "r", "FARGATE"));
        assert_ne!(t, client_token("c", "r", "FARGATE_SPOT"));
        assert_eq!(
            secret_name("shr-jit/", "ctl", "shr-a-1"),
            "shr-jit/ctl/shr-a-1"
        );
        assert_eq!(tag_value("team-a,cost:7"), "team-a_cost:7");
        assert!(family("ctl", "ghcr.io/actions/actions-runner:2.330.0").starts_with("shr-ctl-"));
    }
}
