//! GCP label and resource-name rules.
//!
//! Labels: keys start with a lowercase letter; keys and values use `[a-z0-9_-]` and are at most
//! 63 characters. Instance tags are mapped with [`sanitize_key`] / [`sanitize_value`]: upper
//! case is lowered, any other character becomes `_`, and the result is cut at 63.
//! Job names (Cloud Run and Batch alike) must match `^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`.

use std::collections::BTreeMap;

use crate::error::GcpError;

/// The longest label key or value.
pub const MAX_LABEL_LEN: usize = 63;

fn sanitize(raw: &str) -> String {
    raw.chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_LABEL_LEN)
        .collect()
}

/// A valid label key for `raw` (prefixed with `k` when it would not start with a letter).
pub fn sanitize_key(raw: &str) -> String {
    let key = sanitize(raw);
    if key.starts_with(|c: char| c.is_ascii_lowercase()) {
        key
    } else {
        sanitize(&format!("k{key}"))
    }
}

/// A valid label value for `raw`.
pub fn sanitize_value(raw: &str) -> String {
    sanitize(raw)
}

/// The instance tags as GCP labels.
pub fn to_labels(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.iter()
        .map(|(k, v)| (sanitize_key(k), sanitize_value(v)))
        .collect()
}

/// Whether `key` is a valid label key.
pub fn valid_key(key: &str) -> bool {
    key.len() <= MAX_LABEL_LEN
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key.bytes().all(label_byte)
}

/// Whether `value` is a valid label value.
pub fn valid_value(value: &str) -> bool {
    value.len() <= MAX_LABEL_LEN && value.bytes().all(label_byte)
}

fn label_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
}

/// Why `name` is not a valid job name, if it is not.
pub fn job_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 63 {
        Some("must be 1 to 63 characters")
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some("must start with a lowercase letter")
    } else if name.ends_with('-') {
        Some("must not end with a hyphen")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("may contain only lowercase letters, digits and hyphens")
    } else {
        None
    }
}

/// `runner_name` as a job name, or why it cannot be one.
pub fn job_name(runner_name: &str) -> Result<&str, GcpError> {
    match job_name_problem(runner_name) {
        None => Ok(runner_name),
        Some(reason) => Err(GcpError::InvalidName {
            name: runner_name.to_owned(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_become_valid_labels() {
        let tags = BTreeMap::from([
            ("shr-charge".to_owned(), "Team=A,cost/9".to_owned()),
            ("9lives".to_owned(), "x".repeat(80)),
        ]);
        let labels = to_labels(&tags);
        assert_eq!(labels["shr-charge"], "team_a_cost_9");
        assert_eq!(labels["k9lives"].len(), 63);
        assert!(labels.iter().all(|(k, v)| valid_key(k) && valid_value(v)));
    }

    #[test]
    fn job_names_follow_the_gcp_rule() {
        assert!(job_name("shr-team-a-42-1").is_ok());
        for bad in ["", "1abc", "abc-", "Abc", "a_b", &"a".repeat(64)] {
            assert!(job_name(bad).is_err(), "{bad}");
        }
    }
}
