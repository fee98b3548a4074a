//! The seam between the configuration and the clouds: a provider section
//! (`[tenants.<t>.providers.<kind>]`) is an opaque TOML table here, handed to whatever
//! [`SettingsRegistry`] the caller passes, which returns the cloud's own validated
//! [`ProviderSettings`] or field errors.
//!
//! Guarantees: this module names no cloud. A registry's field errors are relative to the
//! section (`vswitch_id`); the loader prefixes them with the file and the section path.
//! Assumptions: a settings value holds no secret value, only [`SecretRef`]s, so it may be
//! kept in a [`crate::Config`] and printed by `Debug`.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use bus_schema::{Capabilities, Network, ProviderKind};
use serde::Deserialize;
use url::Url;

use crate::{SecretRef, syntax};

/// A private registry login as written (`{ server, username, password = "env:…" }`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistryCredential {
    pub server: String,
    pub username: String,
    pub password: String,
}

/// A validated registry login; the password stays a reference until a provider is built.
#[derive(Debug, Clone)]
pub struct RegistryLogin {
    pub server: String,
    pub username: String,
    pub password: SecretRef,
}

/// One problem in a provider section: the field, relative to the section, and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The dotted field path inside the section (`endpoint`); empty for the section itself.
    pub field: String,
    /// What is wrong; never contains a secret value.
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A cloud's validated settings for one tenant, as the rest of the configuration sees them.
/// The concrete type belongs to the cloud crate; `Any` lets the cloud get it back.
pub trait ProviderSettings: Any + Debug + Send + Sync {
    /// The region (Alibaba region, Azure location, GCP region), if the platform has one.
    fn region(&self) -> Option<&str>;

    /// What the platform can host with these settings.
    fn capabilities(&self) -> Capabilities;

    /// Network defaults the section provides for runner specs (e.g. a default vSwitch).
    fn default_network(&self) -> Network {
        Network::default()
    }
}

/// Turns provider sections into settings: one entry per [`ProviderKind`].
pub trait SettingsRegistry {
    /// Parses and validates the section of `kind`, reporting every problem it can.
    fn parse(
        &self,
        kind: ProviderKind,
        table: toml::Table,
    ) -> Result<Arc<dyn ProviderSettings>, Vec<FieldError>>;
}

/// Collects field errors while a cloud validates its section, with the checks every cloud
/// needs (non-empty, http(s) URL, secret reference).
#[derive(Debug, Default)]
pub struct Fields {
    errors: Vec<FieldError>,
}

impl Fields {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem.
    pub fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldError::new(field, reason));
    }

    /// Records `result`'s error under `field` and returns its value, if any.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|reason| self.push(field, reason)).ok()
    }

    /// `value` must contain something other than whitespace.
    pub fn non_empty(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.push(field, "must not be empty");
        }
    }

    /// An optional container command override: when given, it must not be empty.
    pub fn runner_command(&mut self, field: &str, value: Option<&[String]>) {
        if value.is_some_and(<[String]>::is_empty) {
            self.push(field, "must not be empty (leave it out for the default)");
        }
    }

    /// Private registry logins: every server and username non-empty, every password a
    /// secret reference. Only the logins without a problem are returned.
    pub fn registry_credentials(
        &mut self,
        field: &str,
        raw: Vec<RawRegistryCredential>,
    ) -> Vec<RegistryLogin> {
        let mut logins = Vec::new();
        for (i, c) in raw.into_iter().enumerate() {
            self.non_empty(&format!("{field}[{i}].server"), &c.server);
            self.non_empty(&format!("{field}[{i}].username"), &c.username);
            if let Some(password) = self.secret(&format!("{field}[{i}].password"), &c.password) {
                logins.push(RegistryLogin {
                    server: c.server,
                    username: c.username,
                    password,
                });
            }
        }
        logins
    }

    /// An optional `http`/`https` URL with a host.
    pub fn http_url(&mut self, field: &str, value: Option<&str>) -> Option<Url> {
        let value = value?;
        let parsed = Url::parse(value)
            .map_err(|e| format!("`{value}` is not a URL: {e}"))
            .and_then(|u| {
                if matches!(u.scheme(), "https" | "http") && u.host_str().is_some() {
                    Ok(u)
                } else {
                    Err(format!("`{value}` must be a https/http URL with a host"))
                }
            });
        self.check(field, parsed)
    }

    /// A secret reference (`env:NAME` or `file:PATH`); the reason never echoes the value.
    pub fn secret(&mut self, field: &str, value: &str) -> Option<SecretRef> {
        self.check(field, value.parse::<SecretRef>())
    }

    /// An id made of `prefix` and 1-64 lowercase letters and digits, e.g. `vsw-bp1abc`.
    pub fn prefixed_id(&mut self, field: &str, value: &str, prefix: &str) {
        self.check(field, syntax::alibaba_id(value, prefix));
    }

    /// The settings when nothing was wrong, otherwise every problem. `value` is `None` only
    /// when a check failed, so a missing value with no error recorded is reported as such.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, Vec<FieldError>> {
        match value {
            Some(v) if self.errors.is_empty() => Ok(v),
            _ if !self.errors.is_empty() => Err(self.errors),
            _ => Err(vec![FieldError::new("", "the section is invalid")]),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn fields_collect_every_problem_and_finish_reports_them() {
        let mut f = Fields::new();
        f.non_empty("region", " ");
        assert!(f.http_url("endpoint", Some("ftp://x")).is_none());
        assert!(f.http_url("endpoint", None).is_none());
        assert!(f.secret("key", "hunter2").is_none());
        f.prefixed_id("vswitch_id", "vs-1", "vsw-");
        let errors = f.finish(Some(())).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["region", "endpoint", "key", "vswitch_id"]);
        assert!(errors.iter().all(|e| !e.reason.contains("hunter2")));

        let mut ok = Fields::new();
        let url = ok.http_url("endpoint", Some("http://127.0.0.1:9/"));
        assert_eq!(ok.finish(url).unwrap().as_str(), "http://127.0.0.1:9/");
        assert_eq!(Fields::new().finish::<()>(None).unwrap_err().len(), 1);
    }
}
