//! `[tenants.<t>.providers.azure-aci]`: the section's shape, its checks, and how it becomes
//! an [`AciProvider`].
//!
//! Guarantees: every field problem is reported at once, relative to the section; the client
//! secret is a reference, resolved only by [`CloudSettings::build`].

use std::sync::Arc;

use bus_schema::{Capabilities, ProviderKind};
use providers::{BuildError, CloudSettings, Provider, plugin::resolve};
use registration::{FieldError, Fields, ProviderSettings, SecretRef};
use serde::Deserialize;
use url::Url;

use crate::{AciConfig, AciProvider, limits};

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

    /// The defaults [`AciConfig::new`] applies: 4 vCPU / 16 GB, dind, no Azure Files.
    fn capabilities(&self) -> Capabilities {
        capabilities(
            limits::DEFAULT_MAX_CPU_MILLIS,
            limits::DEFAULT_MAX_MEMORY_MIB,
            true,
            false,
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
        let provider =
            AciProvider::new(config).map_err(|e| BuildError::configure("configuring", e))?;
        Ok(Arc::new(provider))
    }
}
