//! References to secrets (`env:NAME`, `file:PATH`) and their resolution.
//!
//! Guarantees: a configuration never holds a secret value, only where to find it; inline
//! plaintext is rejected without echoing it. Resolution happens when an actor needs the
//! value, and yields a [`SecretString`] whose `Debug` is redacted.

use std::{fmt, path::PathBuf, str::FromStr};

use bus_schema::ErrorKind;
use secrecy::SecretString;

/// Where a secret comes from. `Debug` and `Display` show the reference, never the value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SecretRef {
    /// An environment variable, `env:NAME`.
    Env(String),
    /// A file, `file:PATH`; a trailing newline is trimmed.
    File(PathBuf),
}

/// Failure to read the value a [`SecretRef`] points at.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The environment variable is not set (or is not valid UTF-8).
    #[error("reading secret env:{name}: the variable is not set or not valid UTF-8")]
    EnvMissing { name: String },
    /// The file could not be read.
    #[error("reading secret file:{}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The value is empty after trimming the trailing newline.
    #[error("reading secret {reference}: the value is empty")]
    Empty { reference: String },
}

impl ResolveError {
    /// Retrying will not help until the operator fixes the environment.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Permanent
    }
}

impl SecretRef {
    /// Reads the secret now.
    pub fn resolve(&self) -> Result<SecretString, ResolveError> {
        let raw = match self {
            SecretRef::Env(name) => {
                std::env::var(name).map_err(|_| ResolveError::EnvMissing { name: name.clone() })?
            }
            SecretRef::File(path) => {
                std::fs::read_to_string(path).map_err(|source| ResolveError::ReadFile {
                    path: path.clone(),
                    source,
                })?
            }
        };
        let value = raw
            .strip_suffix("\r\n")
            .or_else(|| raw.strip_suffix('\n'))
            .unwrap_or(&raw);
        if value.is_empty() {
            return Err(ResolveError::Empty {
                reference: self.to_string(),
            });
        }
        Ok(SecretString::from(value.to_owned()))
    }
}

impl FromStr for SecretRef {
    type Err = String;

    /// Parses `env:NAME` or `file:PATH`. The error never contains the input, which may be a
    /// pasted secret.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(name) = s.strip_prefix("env:") {
            let mut chars = name.chars();
            let ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            return if ok {
                Ok(SecretRef::Env(name.to_owned()))
            } else {
                Err("env: must be followed by a variable name ([A-Za-z_][A-Za-z0-9_]*)".into())
            };
        }
        if let Some(path) = s.strip_prefix("file:") {
            return if path.trim().is_empty() {
                Err("file: must be followed by a path".into())
            } else {
                Ok(SecretRef::File(PathBuf::from(path)))
            };
        }
        Err("inline secrets are not accepted: use env:NAME or file:PATH".into())
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn parses_references_and_rejects_plaintext_without_echoing_it() {
        let cases: &[(&str, Option<SecretRef>)] = &[
            ("env:ACME_PAT", Some(SecretRef::Env("ACME_PAT".into()))),
            (
                "file:/run/key.pem",
                Some(SecretRef::File("/run/key.pem".into())),
            ),
            ("env:", None),
            ("env:1BAD", None),
            ("env:A-B", None),
            ("file:", None),
            ("ghp_abcdef123456", None),
            ("ENV:X", None),
        ];
        for (input, expected) in cases {
            let got = input.parse::<SecretRef>();
            match expected {
                Some(r) => assert_eq!(got.as_ref(), Ok(r), "{input}"),
                None => {
                    let reason = got.expect_err(input);
                    assert!(!reason.contains("abcdef"), "{reason}");
                }
            }
        }
        assert!(
            "ghp_abcdef123456"
                .parse::<SecretRef>()
                .unwrap_err()
                .contains("env:NAME")
        );
    }

    #[test]
    fn resolve_reads_file_and_trims_one_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("shr-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pat");
        std::fs::write(&path, "s3cr3t\n").unwrap();
        let value = SecretRef::File(path.clone()).resolve().unwrap();
        assert_eq!(value.expose_secret(), "s3cr3t");
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            SecretRef::File(path.clone()).resolve(),
            Err(ResolveError::Empty { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            SecretRef::File(path).resolve(),
            Err(ResolveError::ReadFile { .. })
        ));
        assert!(matches!(
            SecretRef::Env("SHR_TEST_SURELY_UNSET_VAR".into()).resolve(),
            Err(ResolveError::EnvMissing { .. })
        ));
    }
}
