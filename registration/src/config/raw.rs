//! The TOML shape as serde reads it, before validation. Strings that need checking (names,
//! URLs, secret references, labels) stay strings here so validation can report every problem.

use std::{collections::BTreeMap, path::PathBuf};

use bus_schema::ProviderKind;
use serde::Deserialize;
use toml::Spanned;

use super::{Actor, Detection, ScopeKind};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub controller: RawController,
    #[serde(default)]
    pub webhook: RawWebhook,
    #[serde(default)]
    pub tenants: BTreeMap<String, RawTenant>,
    #[serde(default)]
    pub registrations: Vec<RawRegistration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawController {
    pub id: Option<String>,
    pub nats_url: Option<String>,
    pub nats_nkey_seed: Option<String>,
    pub nats_creds: Option<String>,
    pub actors: Option<Vec<Actor>>,
    pub tenants: Option<Vec<String>>,
    pub work_dir: Option<PathBuf>,
    pub metrics_listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    pub listen: Option<String>,
    pub path: Option<String>,
    pub secret: Option<String>,
    /// `tls = { cert = …, key = … }`, the documented form.
    pub tls: Option<RawTls>,
    /// The older spelling of `tls.cert` / `tls.key`, still accepted.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub max_body_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenant {
    #[serde(default)]
    pub charge_labels: Vec<String>,
    /// Base64 X25519 public key the scheduler seals this tenant's JIT configs to.
    #[serde(default)]
    pub jit_public_key: Option<String>,
    /// Secret reference to the matching private key (only in the tenant agent's config).
    #[serde(default)]
    pub jit_private_key: Option<String>,
    #[serde(default)]
    pub defaults: RawDefaults,
    /// Provider name → its section, kept opaque: the cloud's settings type parses it.
    /// The span locates the section for error messages.
    #[serde(default)]
    pub providers: BTreeMap<String, Spanned<toml::Table>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub provider: Option<ProviderKind>,
    pub cpu: Option<f64>,
    pub memory: Option<f64>,
    pub image: Option<String>,
    #[serde(default)]
    pub network: RawNetwork,
    pub runner_group_id: Option<u64>,
    pub dind: Option<bool>,
    pub max_runtime_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    pub vswitch: Option<String>,
    pub security_group: Option<String>,
    pub subnet: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegistration {
    pub name: String,
    pub tenant: String,
    pub scope: ScopeKind,
    pub url: String,
    pub api_url: Option<String>,
    pub repos: Option<Vec<String>>,
    pub auth: RawAuth,
    pub labels: Option<Vec<String>>,
    #[serde(default)]
    pub charge_labels: Vec<String>,
    pub detection: Option<Detection>,
    pub poll_interval_secs: Option<u64>,
    pub jit_per_minute: Option<u32>,
    /// This registration's own webhook secret (secret reference), like an org hook's.
    pub webhook_secret: Option<String>,
    #[serde(default)]
    pub defaults: RawDefaults,
    #[serde(default)]
    pub limits: RawLimits,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub pat: Option<String>,
    pub app_id: Option<u64>,
    pub installation_id: Option<u64>,
    pub private_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub min_idle: Option<u32>,
    pub max_runners: Option<u32>,
    pub max_cpu: Option<f64>,
    pub max_memory: Option<f64>,
    #[serde(default)]
    pub allowed_images: Vec<String>,
    #[serde(default)]
    pub allowed_vswitches: Vec<String>,
    #[serde(default)]
    pub allowed_security_groups: Vec<String>,
    #[serde(default)]
    pub allowed_subnets: Vec<String>,
    #[serde(default)]
    pub allowed_buckets: Vec<String>,
    pub idle_timeout_secs: Option<u64>,
    pub max_runtime_secs: Option<u64>,
    pub max_attempts: Option<u32>,
}
