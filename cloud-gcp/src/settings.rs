//! `[tenants.<t>.providers.gcp-cloudrun]` and `[tenants.<t>.providers.gcp-batch]`: one
//! section shape ([`GcpSettings`]) for both plug-ins, [`CloudRunSettings`] and
//! [`BatchSettings`], which differ in the provider they build and what it can host.
//!
//! Guarantees: every field problem is reported at once, relative to the section; the
//! service-account key is a reference, resolved only by [`CloudSettings::build`].

use std::sync::Arc;

use bus_schema::{Capabilities, ProviderKind};
use providers::{BuildError, CloudSettings, Provider, plugin::resolve};
use registration::{FieldError, Fields, ProviderSettings, SecretRef};
use serde::Deserialize;
use url::Url;

use crate::{BatchProvider, CloudRunProvider, Endpoints, GcpConfig, batch, shapes};

/// The section as written (both kinds).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGcpSettings {
    pub endpoint: Option<String>,
    pub project: String,
    pub region: String,
    pub service_account_key: String,
    pub token_endpoint: Option<String>,
    pub network: Option<String>,
    pub subnetwork: Option<String>,
    pub runner_service_account: Option<String>,
    /// Replaces the default container command (`/home/runner/run.sh`; dockerd first under
    /// dind on Batch).
    pub runner_command: Option<Vec<String>>,
}

/// A tenant's validated GCP project and region.
#[derive(Debug, Clone)]
pub struct GcpSettings {
    /// API endpoint override (a simulator): every API and `{endpoint}/token`.
    pub endpoint: Option<Url>,
    pub project: String,
    pub region: String,
    /// The service-account JSON key.
    pub service_account_key: SecretRef,
    /// OAuth token endpoint override; without one the key's own `token_uri` is used.
    pub token_endpoint: Option<Url>,
    pub network: Option<String>,
    pub subnetwork: Option<String>,
    /// The service account runners run as; it alone may read each runner's JIT secret.
    pub runner_service_account: Option<String>,
    pub runner_command: Option<Vec<String>>,
}

/// `gcp-cloudrun`: Cloud Run v2 jobs.
#[derive(Debug, Clone)]
pub struct CloudRunSettings(pub GcpSettings);

/// `gcp-batch`: Cloud Batch, for runners that need docker-in-docker.
#[derive(Debug, Clone)]
pub struct BatchSettings(pub GcpSettings);

/// What Cloud Run hosts: its cpu/memory shapes, bucket mounts, no dind.
pub fn cloudrun_capabilities() -> Capabilities {
    Capabilities {
        shapes: shapes::all(),
        max_cpu_millis: 8000,
        max_memory_mib: shapes::MAX_MEMORY_MIB,
        dind: false,
        disk_mount: true,
    }
}

/// What Batch hosts: any size up to its largest VM, dind, bucket mounts.
pub fn batch_capabilities() -> Capabilities {
    Capabilities {
        shapes: Vec::new(),
        max_cpu_millis: batch::MAX_CPU_MILLIS,
        max_memory_mib: batch::MAX_MEMORY_MIB,
        dind: true,
        disk_mount: true,
    }
}

/// The section body both kinds share in their examples.
const EXAMPLE: &str = r#"project = "acme-runners"
region = "europe-west4"
service_account_key = "file:/run/secrets/gcp-runner-key.json"
runner_service_account = "acme-runner@acme-runners.iam.gserviceaccount.com"
"#;

impl GcpSettings {
    fn validate(raw: RawGcpSettings) -> Result<Self, Vec<FieldError>> {
        let mut f = Fields::new();
        f.non_empty("project", &raw.project);
        f.non_empty("region", &raw.region);
        let endpoint = f.http_url("endpoint", raw.endpoint.as_deref());
        let token_endpoint = f.http_url("token_endpoint", raw.token_endpoint.as_deref());
        let key = f.secret("service_account_key", &raw.service_account_key);
        match &raw.runner_service_account {
            Some(account) if !account.contains('@') => f.push(
                "runner_service_account",
                "must be a service account email (name@project.iam.gserviceaccount.com)",
            ),
            Some(_) => {}
            // Without it runners run as the project's default compute account, which must
            // then read every runner's JIT secret.
            None => f.push(
                "runner_service_account",
                "is required: the service account runners run as, the only one that may read \
                 each runner's JIT secret (give each tenant its own, with no project-wide \
                 secret access)",
            ),
        }
        f.runner_command("runner_command", raw.runner_command.as_deref());
        let settings = key.map(|service_account_key| GcpSettings {
            endpoint,
            project: raw.project,
            region: raw.region,
            service_account_key,
            token_endpoint,
            network: raw.network,
            subnetwork: raw.subnetwork,
            runner_service_account: raw.runner_service_account,
            runner_command: raw.runner_command,
        });
        f.finish(settings)
    }

    /// The providers' configuration, with the key resolved.
    fn config(&self, controller_id: &str) -> Result<GcpConfig, BuildError> {
        let mut config = GcpConfig::new(
            &self.project,
            &self.region,
            resolve("service_account_key", &self.service_account_key)?,
            controller_id,
        );
        let mut endpoints = match &self.endpoint {
            Some(endpoint) => Endpoints::all_at(endpoint.as_str()),
            None => Endpoints::default(),
        };
        endpoints.token = self.token_endpoint.as_ref().map(ToString::to_string);
        config.endpoints = endpoints;
        config.network = self.network.clone();
        config.subnetwork = self.subnetwork.clone();
        config.runner_service_account = self.runner_service_account.clone();
        config.runner_command = self.runner_command.clone();
        Ok(config)
    }
}

impl ProviderSettings for CloudRunSettings {
    fn region(&self) -> Option<&str> {
        Some(&self.0.region)
    }

    fn capabilities(&self) -> Capabilities {
        cloudrun_capabilities()
    }
}

impl CloudSettings for CloudRunSettings {
    const KIND: ProviderKind = ProviderKind::GcpCloudrun;
    type Raw = RawGcpSettings;
    const EXAMPLE: &'static str = EXAMPLE;

    fn validate(raw: RawGcpSettings) -> Result<Self, Vec<FieldError>> {
        GcpSettings::validate(raw).map(CloudRunSettings)
    }

    fn build(&self, controller_id: &str, _tenant: &str) -> Result<Arc<dyn Provider>, BuildError> {
        let provider = CloudRunProvider::new(self.0.config(controller_id)?)
            .map_err(|e| BuildError::configure("service_account_key", e))?;
        Ok(Arc::new(provider))
    }
}

impl ProviderSettings for BatchSettings {
    fn region(&self) -> Option<&str> {
        Some(&self.0.region)
    }

    fn capabilities(&self) -> Capabilities {
        batch_capabilities()
    }
}

impl CloudSettings for BatchSettings {
    const KIND: ProviderKind = ProviderKind::GcpBatch;
    type Raw = RawGcpSettings;
    const EXAMPLE: &'static str = EXAMPLE;

    fn validate(raw: RawGcpSettings) -> Result<Self, Vec<FieldError>> {
        GcpSettings::validate(raw).map(BatchSettings)
    }

    fn build(&self, controller_id: &str, _tenant: &str) -> Result<Arc<dyn Provider>, BuildError> {
        let provider = BatchProvider::new(self.0.config(controller_id)?)
            .map_err(|e| BuildError::configure("service_account_key", e))?;
        Ok(Arc::new(provider))
    }
}
