//! `[tenants.<t>.providers.alibaba-eci]`: the section's shape, its checks, and how it
//! becomes an [`EciProvider`].
//!
//! Guarantees: every field problem is reported at once, relative to the section; the
//! AccessKey secret is a reference, resolved only by [`CloudSettings::build`].

use std::sync::Arc;

use bus_schema::{Capabilities, Network, ProviderKind};
use providers::{BuildError, CloudSettings, Provider, plugin::resolve};
use registration::{
    FieldError, Fields, ProviderSettings, RawRegistryCredential, RegistryLogin, SecretRef,
};
use serde::Deserialize;
use url::Url;

use crate::{EciConfig, EciProvider, OssConfig, RegistryCredential, rules};

/// The section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEciSettings {
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub access_key_secret: String,
    pub vswitch_id: String,
    pub security_group_id: String,
    pub zone: Option<String>,
    /// Replaces the default container command (reads the JIT config file, execs
    /// `/home/runner/run.sh`; dockerd first under dind).
    pub runner_command: Option<Vec<String>>,
    /// `[{ server, username, password = "env:…" }]`: private registry logins.
    #[serde(default)]
    pub registry_credentials: Vec<RawRegistryCredential>,
    /// `{ endpoint, ram_role }`: how `disk-<bucket>` labels mount OSS buckets.
    pub oss: Option<RawOss>,
}

/// The OSS mount settings as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOss {
    pub endpoint: String,
    pub ram_role: String,
}

/// A tenant's validated ECI account.
#[derive(Debug, Clone)]
pub struct EciSettings {
    /// API endpoint override (a simulator); default is the regional ECI endpoint.
    pub endpoint: Option<Url>,
    pub region: String,
    pub access_key_id: String,
    pub access_key_secret: SecretRef,
    /// Default vSwitch, and the runner spec's network default.
    pub vswitch_id: String,
    /// Default security group, and the runner spec's network default.
    pub security_group_id: String,
    pub zone: Option<String>,
    pub runner_command: Option<Vec<String>>,
    pub registry_credentials: Vec<RegistryLogin>,
    /// OSS settings for `disk-<bucket>` mounts; without them such runners are refused.
    pub oss: Option<OssConfig>,
}

/// What ECI hosts: the instance shapes of [`rules::shapes`], dind, and bucket mounts only
/// when OSS is configured.
pub fn capabilities(oss: bool) -> Capabilities {
    let shapes = rules::shapes();
    Capabilities {
        max_cpu_millis: shapes.iter().map(|s| s.0).max().unwrap_or(0),
        max_memory_mib: shapes.iter().map(|s| s.1).max().unwrap_or(0),
        shapes,
        dind: true,
        disk_mount: oss,
    }
}

impl ProviderSettings for EciSettings {
    fn region(&self) -> Option<&str> {
        Some(&self.region)
    }

    fn capabilities(&self) -> Capabilities {
        capabilities(self.oss.is_some())
    }

    fn default_network(&self) -> Network {
        Network {
            vswitch: Some(self.vswitch_id.clone()),
            security_group: Some(self.security_group_id.clone()),
            subnet: None,
        }
    }
}

impl CloudSettings for EciSettings {
    const KIND: ProviderKind = ProviderKind::AlibabaEci;
    type Raw = RawEciSettings;
    const EXAMPLE: &'static str = r#"region = "cn-shanghai"
access_key_id = "LTAI5tExampleKeyId"
access_key_secret = "env:ALIBABA_ACCESS_KEY_SECRET"
vswitch_id = "vsw-example1"
security_group_id = "sg-example1"
"#;

    fn validate(raw: RawEciSettings) -> Result<Self, Vec<FieldError>> {
        let mut f = Fields::new();
        f.non_empty("region", &raw.region);
        f.non_empty("access_key_id", &raw.access_key_id);
        f.prefixed_id("vswitch_id", &raw.vswitch_id, "vsw-");
        f.prefixed_id("security_group_id", &raw.security_group_id, "sg-");
        let endpoint = f.http_url("endpoint", raw.endpoint.as_deref());
        let secret = f.secret("access_key_secret", &raw.access_key_secret);
        f.runner_command("runner_command", raw.runner_command.as_deref());
        let registry_credentials =
            f.registry_credentials("registry_credentials", raw.registry_credentials);
        let oss = raw.oss.map(|o| {
            f.non_empty("oss.endpoint", &o.endpoint);
            f.non_empty("oss.ram_role", &o.ram_role);
            OssConfig {
                endpoint: o.endpoint,
                ram_role: o.ram_role,
            }
        });
        let settings = secret.map(|access_key_secret| EciSettings {
            endpoint,
            region: raw.region,
            access_key_id: raw.access_key_id,
            access_key_secret,
            vswitch_id: raw.vswitch_id,
            security_group_id: raw.security_group_id,
            zone: raw.zone,
            runner_command: raw.runner_command,
            registry_credentials,
            oss,
        });
        f.finish(settings)
    }

    fn build(&self, controller_id: &str, _tenant: &str) -> Result<Arc<dyn Provider>, BuildError> {
        let mut config = EciConfig::new(
            &self.region,
            &self.access_key_id,
            resolve("access_key_secret", &self.access_key_secret)?,
            controller_id,
        );
        config.endpoint = self.endpoint.as_ref().map(ToString::to_string);
        config.vswitch_id = Some(self.vswitch_id.clone());
        config.security_group_id = Some(self.security_group_id.clone());
        config.runner_command = self.runner_command.clone();
        config.oss = self.oss.clone();
        for c in &self.registry_credentials {
            config.registry_credentials.push(RegistryCredential {
                server: c.server.clone(),
                username: c.username.clone(),
                password: resolve("registry_credentials.password", &c.password)?,
            });
        }
        let provider =
            EciProvider::new(config).map_err(|e| BuildError::configure("configuring", e))?;
        Ok(Arc::new(provider))
    }
}
