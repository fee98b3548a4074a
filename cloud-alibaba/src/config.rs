//! Configuration of the ECI provider.
//!
//! Credentials are a RAM user's AccessKey pair; the secret is a [`SecretString`], never
//! printed by `Debug`. Every field is checked by [`EciConfig::validate`] before the provider
//! talks to anything.

use secrecy::SecretString;
use serde::Deserialize;

/// The ECI API version this crate speaks.
pub const API_VERSION: &str = "2018-08-08";

/// Where and how the provider reaches ECI.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EciConfig {
    /// Region id, e.g. `cn-shanghai`.
    pub region: String,
    /// API endpoint; defaults to `https://eci.<region>.aliyuncs.com/`. Point it at the
    /// simulator in tests.
    #[serde(default)]
    pub endpoint: Option<String>,
    pub access_key_id: String,
    pub access_key_secret: SecretString,
    /// This deployment's controller id; `list` returns only instances tagged with it.
    pub controller_id: String,
    /// Default vSwitch (`vsw-…`) when the runner spec names none.
    #[serde(default)]
    pub vswitch_id: Option<String>,
    /// Default security group (`sg-…`) when the runner spec names none.
    #[serde(default)]
    pub security_group_id: Option<String>,
    /// The runner container's command; `None` reads the JIT config from the file named by
    /// `ACTIONS_RUNNER_INPUT_JITCONFIG_FILE` into env and execs `/home/runner/run.sh`
    /// (starting dockerd first under dind). An override must do the same, never passing the
    /// content as an argument.
    #[serde(default)]
    pub runner_command: Option<Vec<String>>,
    /// Private registries the image is pulled from (`ImageRegistryCredential.N`).
    #[serde(default)]
    pub registry_credentials: Vec<RegistryCredential>,
    /// OSS settings for `disk-<bucket>` mounts; without them such runners are refused.
    #[serde(default)]
    pub oss: Option<OssConfig>,
    /// Per-request timeout, in seconds.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

/// How ECI mounts an OSS bucket (FlexVolume driver `alicloud/oss`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OssConfig {
    /// OSS endpoint, e.g. `oss-cn-shanghai-internal.aliyuncs.com`.
    pub endpoint: String,
    /// RAM role the instance assumes to reach the bucket (no keys in the request).
    pub ram_role: String,
}

/// A private registry login; the password is secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryCredential {
    pub server: String,
    pub username: String,
    pub password: SecretString,
}

fn default_timeout_secs() -> u64 {
    30
}

impl EciConfig {
    /// A config with defaults for everything optional.
    pub fn new(
        region: impl Into<String>,
        access_key_id: impl Into<String>,
        access_key_secret: SecretString,
        controller_id: impl Into<String>,
    ) -> Self {
        Self {
            region: region.into(),
            endpoint: None,
            access_key_id: access_key_id.into(),
            access_key_secret,
            controller_id: controller_id.into(),
            vswitch_id: None,
            security_group_id: None,
            runner_command: None,
            registry_credentials: Vec::new(),
            oss: None,
            timeout_secs: default_timeout_secs(),
        }
    }

    /// The endpoint URL to call.
    pub fn endpoint_url(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("https://eci.{}.aliyuncs.com/", self.region))
    }

    /// Checks every field; the error names the field and the reason.
    pub fn validate(&self) -> Result<(), crate::EciError> {
        let bad = |field, reason: &str| {
            Err(crate::EciError::Config {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.region.is_empty() {
            return bad("region", "must not be empty");
        }
        if self.access_key_id.is_empty() {
            return bad("access_key_id", "must not be empty");
        }
        if secrecy::ExposeSecret::expose_secret(&self.access_key_secret).is_empty() {
            return bad("access_key_secret", "must not be empty");
        }
        if self.controller_id.is_empty() || self.controller_id.len() > 128 {
            return bad("controller_id", "must be 1 to 128 characters");
        }
        if self.runner_command.as_ref().is_some_and(Vec::is_empty) {
            return bad("runner_command", "must not be empty");
        }
        if self.timeout_secs == 0 {
            return bad("timeout_secs", "must be positive");
        }
        match url::Url::parse(&self.endpoint_url()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
            _ => bad("endpoint", "must be an http(s) URL"),
        }
    }
}
