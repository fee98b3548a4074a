//! [`AciConfig`]: where and as whom the provider talks to Azure, and the defaults it applies.
//!
//! Every endpoint can be pointed at the local simulator. Secrets are `SecretString`s, so the
//! config's `Debug` output never shows them.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::Deserialize;

use crate::limits;

/// The newest GA ARM api-version of `Microsoft.ContainerInstance/containerGroups` in the REST
/// reference ("Container Groups - Create Or Update", api-version=2025-09-01).
pub const API_VERSION: &str = "2025-09-01";
/// Azure public cloud endpoints.
pub const ARM_ENDPOINT: &str = "https://management.azure.com";
pub const LOGIN_ENDPOINT: &str = "https://login.microsoftonline.com";
/// The OAuth scope for ARM.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// Configuration of one ACI provider (one subscription, resource group and region).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AciConfig {
    /// ARM base URL; the simulator's `base_url()` in tests.
    #[serde(default = "default_arm")]
    pub arm_endpoint: String,
    /// Entra ID base URL; the simulator's `base_url()` in tests.
    #[serde(default = "default_login")]
    pub login_endpoint: String,
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// The OAuth scope requested; ARM's `.default` scope unless a sovereign cloud needs another.
    #[serde(default = "default_scope")]
    pub scope: String,
    /// Entra tenant (directory) id of the service principal.
    pub tenant_id: String,
    /// Application (client) id of the service principal.
    pub client_id: String,
    pub client_secret: SecretString,
    pub subscription_id: String,
    /// The resource group container groups live in (it must exist).
    pub resource_group: String,
    /// Azure region, e.g. `westeurope`.
    pub location: String,
    /// This deployment's controller id: put on every group, and the filter for `list`.
    pub controller_id: String,
    /// The virtual network resource id that `subnet-<name>` labels resolve in.
    #[serde(default)]
    pub vnet_id: Option<String>,
    /// Subnet (name in `vnet_id`, or full resource id) used when the spec names none.
    #[serde(default)]
    pub default_subnet: Option<String>,
    /// Azure Files account that `disk-<bucket>` labels mount shares from.
    #[serde(default)]
    pub azure_files: Option<AzureFilesConfig>,
    /// Per-group maxima this subscription may use (defaults: 4 vCPU / 16 GB).
    #[serde(default = "default_max_cpu")]
    pub max_cpu_millis: u32,
    #[serde(default = "default_max_memory")]
    pub max_memory_mib: u32,
    /// Whether `dind` runners may be created (Confidential SKU, privileged container).
    #[serde(default = "yes")]
    pub allow_dind: bool,
    /// Extra, non-secret environment variables for the runner container.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The runner container's command; `None` runs the official image's `run.sh` (starting
    /// dockerd first under dind), see [`providers::command`].
    #[serde(default)]
    pub runner_command: Option<Vec<String>>,
    /// Private registries the image is pulled from (`imageRegistryCredentials`).
    #[serde(default)]
    pub registry_credentials: Vec<RegistryCredential>,
    /// Timeout of each HTTP call, in seconds.
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
}

/// A private registry login (`imageRegistryCredentials` item); the password is secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryCredential {
    pub server: String,
    pub username: String,
    pub password: SecretString,
}

/// An Azure Files storage account whose shares back `disk-<bucket>` mounts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureFilesConfig {
    pub account_name: String,
    pub account_key: SecretString,
    /// Where the share is mounted in the runner container.
    #[serde(default = "default_mount")]
    pub mount_path: String,
}

impl AciConfig {
    /// A config for the public cloud with every optional field at its default.
    pub fn new(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretString,
        subscription_id: impl Into<String>,
        resource_group: impl Into<String>,
        location: impl Into<String>,
        controller_id: impl Into<String>,
    ) -> Self {
        Self {
            arm_endpoint: default_arm(),
            login_endpoint: default_login(),
            api_version: default_api_version(),
            scope: default_scope(),
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            client_secret,
            subscription_id: subscription_id.into(),
            resource_group: resource_group.into(),
            location: location.into(),
            controller_id: controller_id.into(),
            vnet_id: None,
            default_subnet: None,
            azure_files: None,
            max_cpu_millis: default_max_cpu(),
            max_memory_mib: default_max_memory(),
            allow_dind: true,
            env: BTreeMap::new(),
            runner_command: None,
            registry_credentials: Vec::new(),
            request_timeout_secs: default_timeout(),
        }
    }

    /// Points both ARM and the token endpoint at `base_url` (the simulator).
    pub fn with_endpoint(mut self, base_url: &str) -> Self {
        base_url
            .trim_end_matches('/')
            .clone_into(&mut self.arm_endpoint);
        base_url
            .trim_end_matches('/')
            .clone_into(&mut self.login_endpoint);
        self
    }
}

fn default_arm() -> String {
    ARM_ENDPOINT.to_owned()
}
fn default_login() -> String {
    LOGIN_ENDPOINT.to_owned()
}
fn default_api_version() -> String {
    API_VERSION.to_owned()
}
fn default_scope() -> String {
    ARM_SCOPE.to_owned()
}
fn default_max_cpu() -> u32 {
    limits::DEFAULT_MAX_CPU_MILLIS
}
fn default_max_memory() -> u32 {
    limits::DEFAULT_MAX_MEMORY_MIB
}
fn default_timeout() -> u64 {
    30
}
/// Where an Azure Files share is mounted unless configured otherwise.
pub const DEFAULT_MOUNT: &str = "/home/runner/_work";

fn default_mount() -> String {
    DEFAULT_MOUNT.to_owned()
}
fn yes() -> bool {
    true
}
