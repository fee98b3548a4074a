//! `[tenants.<t>.providers.azure-aci]`: the section's shape, its checks, and how it becomes
//! an [`AciProvider`].
//!
//! Guarantees: every field problem is reported at once, relative to the section; the client
//! secret is a reference, resolved only by [`CloudSettings::build`].

use std::sync::Arc;

use bus_schema::{Capabilities, ProviderKind};
use providers::{BuildError, CloudSettings, Provider, plugin::resolve};
use registration::{
    FieldError, Fields, ProviderSettings, RawRegistryCredential, RegistryLogin, SecretRef,
};
use serde::Deserialize;
use url::Url;

use crate::{AciConfig, AciProvider, AzureFilesConfig, RegistryCredential, limits};

/// The section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAciSettings {
    pub endpoint: Option<String>,
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub subnet_id: Option<String>,
    pub login_endpoint: Option<String>,
    /// Replaces the default container command (`/home/runner/run.sh`, dockerd first under
    /// dind).
    pub runner_command: Option<Vec<String>>,
    /// `[{ server, username, password = "env:…" }]`: private registry logins.
    #[serde(default)]
    pub registry_credentials: Vec<RawRegistryCredential>,
    /// `{ account_name, account_key = "env:…", mount_path }`: the Azure Files account whose
    /// shares `disk-<share>` labels mount.
    pub azure_files: Option<RawAzureFiles>,
}

/// The Azure Files account as written; the key is a secret reference.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAzureFiles {
    pub account_name: String,
    pub account_key: String,
    pub mount_path: Option<String>,
}

/// A validated Azure Files account.
#[derive(Debug, Clone)]
pub struct AzureFiles {
    pub account_name: String,
    pub account_key: SecretRef,
    /// Where the share is mounted (default `/home/runner/_work`).
    pub mount_path: Option<String>,
}

/// A tenant's validated ACI account.
#[derive(Debug, Clone)]
pub struct AciSettings {
    /// ARM endpoint override (a simulator or a sovereign cloud).
    pub endpoint: Option<Url>,
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: SecretRef,
    /// The default subnet's resource id; `subnet-<name>` labels name its siblings.
    pub subnet_id: Option<String>,
    /// Entra ID login endpoint override.
    pub login_endpoint: Option<Url>,
    pub runner_command: Option<Vec<String>>,
    pub registry_credentials: Vec<RegistryLogin>,
    pub azure_files: Option<AzureFiles>,
}

/// What ACI hosts under the given per-group maxima.
pub fn capabilities(
    max_cpu_millis: u32,
    max_memory_mib: u32,
    dind: bool,
    files: bool,
) -> Capabilities {
    Capabilities {
        shapes: Vec::new(),
        max_cpu_millis,
        max_memory_mib,
        dind,
        disk_mount: files,
    }
}

impl ProviderSettings for AciSettings {
    fn region(&self) -> Option<&str> {
        Some(&self.location)
    }

    /// The defaults [`AciConfig::new`] applies (4 vCPU / 16 GB, dind); `disk-` mounts when
    /// `azure_files` is configured.
    fn capabilities(&self) -> Capabilities {
        capabilities(
            limits::DEFAULT_MAX_CPU_MILLIS,
            limits::DEFAULT_MAX_MEMORY_MIB,
            true,
            self.azure_files.is_some(),
        )
    }
}

impl CloudSettings for AciSettings {
    const KIND: ProviderKind = ProviderKind::AzureAci;
    type Raw = RawAciSettings;
    const EXAMPLE: &'static str = r#"subscription_id = "00000000-0000-0000-0000-000000000001"
resource_group = "runners"
location = "westeurope"
tenant_id = "00000000-0000-0000-0000-000000000002"
client_id = "00000000-0000-0000-0000-000000000003"
client_secret = "env:AZURE_CLIENT_SECRET"
"#;

    fn validate(raw: RawAciSettings) -> Result<Self, Vec<FieldError>> {
        let mut f = Fields::new();
        for (field, value) in [
            ("subscription_id", &raw.subscription_id),
            ("resource_group", &raw.resource_group),
            ("location", &raw.location),
            ("tenant_id", &raw.tenant_id),
            ("client_id", &raw.client_id),
        ] {
            f.non_empty(field, value);
        }
        let endpoint = f.http_url("endpoint", raw.endpoint.as_deref());
        let login_endpoint = f.http_url("login_endpoint", raw.login_endpoint.as_deref());
        let secret = f.secret("client_secret", &raw.client_secret);
        f.runner_command("runner_command", raw.runner_command.as_deref());
        let registry_credentials =
            f.registry_credentials("registry_credentials", raw.registry_credentials);
        let azure_files = raw.azure_files.and_then(|a| {
            f.non_empty("azure_files.account_name", &a.account_name);
            if let Some(path) = &a.mount_path
                && !path.starts_with('/')
            {
                f.push("azure_files.mount_path", "must be an absolute path");
            }
            let account_key = f.secret("azure_files.account_key", &a.account_key)?;
            Some(AzureFiles {
                account_name: a.account_name,
                account_key,
                mount_path: a.mount_path,
            })
        });
        let settings = secret.map(|client_secret| AciSettings {
            endpoint,
            subscription_id: raw.subscription_id,
            resource_group: raw.resource_group,
            location: raw.location,
            tenant_id: raw.tenant_id,
            client_id: raw.client_id,
            client_secret,
            subnet_id: raw.subnet_id,
            login_endpoint,
            runner_command: raw.runner_command,
            registry_credentials,
            azure_files,
        });
        f.finish(settings)
    }

    fn build(&self, controller_id: &str, _tenant: &str) -> Result<Arc<dyn Provider>, BuildError> {
        let mut config = AciConfig::new(
            &self.tenant_id,
            &self.client_id,
            resolve("client_secret", &self.client_secret)?,
            &self.subscription_id,
            &self.resource_group,
            &self.location,
            controller_id,
        );
        if let Some(endpoint) = &self.endpoint {
            config.arm_endpoint = endpoint.as_str().trim_end_matches('/').to_owned();
        }
        if let Some(login) = &self.login_endpoint {
            config.login_endpoint = login.as_str().trim_end_matches('/').to_owned();
        }
        config.default_subnet = self.subnet_id.clone();
        // `subnet-<name>` labels name a sibling subnet of the configured one.
        config.vnet_id = self
            .subnet_id
            .as_deref()
            .and_then(|id| id.rsplit_once("/subnets/"))
            .map(|(vnet, _)| vnet.to_owned());
        config.runner_command = self.runner_command.clone();
        for c in &self.registry_credentials {
            config.registry_credentials.push(RegistryCredential {
                server: c.server.clone(),
                username: c.username.clone(),
                password: resolve("registry_credentials.password", &c.password)?,
            });
        }
        if let Some(files) = &self.azure_files {
            let mut azure_files = AzureFilesConfig {
                account_name: files.account_name.clone(),
                account_key: resolve("azure_files.account_key", &files.account_key)?,
                mount_path: crate::config::DEFAULT_MOUNT.to_owned(),
            };
            if let Some(path) = &files.mount_path {
                azure_files.mount_path.clone_from(path);
            }
            config.azure_files = Some(azure_files);
        }
        let provider =
            AciProvider::new(config).map_err(|e| BuildError::configure("configuring", e))?;
        Ok(Arc::new(provider))
    }
}
