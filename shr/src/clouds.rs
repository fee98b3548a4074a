//! The cloud providers built from a tenant's configuration.
//!
//! - [`build`] maps a tenant's `[tenants.<t>.providers.<kind>]` section onto the cloud crate's
//!   config (endpoint overrides point at a simulator), resolves the credentials from their
//!   [`registration::SecretRef`]s and constructs the provider. Errors name the tenant, the
//!   provider and the field. `local` is built by `wiring` and is refused here.
//!
//! Guarantees: credentials are never logged or put in `Debug` output.

use std::sync::Arc;

use anyhow::Context as _;
use bus_schema::ProviderKind;
use providers::Provider;
use registration::{SecretRef, Tenant};

/// The provider of `kind` for `tenant`, with its credentials resolved.
pub fn build(
    kind: ProviderKind,
    controller_id: &str,
    tenant: &Tenant,
) -> anyhow::Result<Arc<dyn Provider>> {
    let at = format!("tenant {}: provider {kind}", tenant.name);
    let missing = || {
        anyhow::anyhow!(
            "{at}: no [tenants.{}.providers.{kind}] section",
            tenant.name
        )
    };
    let resolve = |field: &str, secret: &SecretRef| {
        secret
            .resolve()
            .with_context(|| format!("{at}: {field} ({secret})"))
    };
    let provider: Arc<dyn Provider> = match kind {
        ProviderKind::Local => {
            anyhow::bail!("{at}: the local provider is built by the wiring, not as a cloud")
        }
        ProviderKind::AlibabaEci => {
            let p = tenant.providers.alibaba_eci.as_ref().ok_or_else(missing)?;
            let mut config = cloud_alibaba::EciConfig::new(
                &p.region,
                &p.access_key_id,
                resolve("access_key_secret", &p.access_key_secret)?,
                controller_id,
            );
            config.endpoint = p.endpoint.as_ref().map(ToString::to_string);
            config.vswitch_id = Some(p.vswitch_id.clone());
            config.security_group_id = Some(p.security_group_id.clone());
            Arc::new(
                cloud_alibaba::EciProvider::new(config)
                    .with_context(|| format!("{at}: configuring"))?,
            )
        }
        ProviderKind::AzureAci => {
            let p = tenant.providers.azure_aci.as_ref().ok_or_else(missing)?;
            let mut config = cloud_azure::AciConfig::new(
                &p.tenant_id,
                &p.client_id,
                resolve("client_secret", &p.client_secret)?,
                &p.subscription_id,
                &p.resource_group,
                &p.location,
                controller_id,
            );
            if let Some(endpoint) = &p.endpoint {
                config.arm_endpoint = endpoint.as_str().trim_end_matches('/').to_owned();
            }
            if let Some(login) = &p.login_endpoint {
                config.login_endpoint = login.as_str().trim_end_matches('/').to_owned();
            }
            config.default_subnet = p.subnet_id.clone();
            // `subnet-<name>` labels name a sibling subnet of the configured one.
            config.vnet_id = p
                .subnet_id
                .as_deref()
                .and_then(|id| id.rsplit_once("/subnets/"))
                .map(|(vnet, _)| vnet.to_owned());
            Arc::new(
                cloud_azure::AciProvider::new(config)
                    .with_context(|| format!("{at}: configuring"))?,
            )
        }
        ProviderKind::GcpCloudrun | ProviderKind::GcpBatch => {
            let section = if kind == ProviderKind::GcpCloudrun {
                &tenant.providers.gcp_cloudrun
            } else {
                &tenant.providers.gcp_batch
            };
            let p = section.as_ref().ok_or_else(missing)?;
            let mut config = cloud_gcp::GcpConfig::new(
                &p.project,
                &p.region,
                resolve("service_account_key", &p.service_account_key)?,
                controller_id,
            );
            let mut endpoints = match &p.endpoint {
                Some(endpoint) => cloud_gcp::Endpoints::all_at(endpoint.as_str()),
                None => cloud_gcp::Endpoints::default(),
            };
            // Without an override the token goes to the key's own `token_uri`.
            endpoints.token = p.token_endpoint.as_ref().map(ToString::to_string);
            config.endpoints = endpoints;
            config.network = p.network.clone();
            config.subnetwork = p.subnetwork.clone();
            if kind == ProviderKind::GcpCloudrun {
                Arc::new(
                    cloud_gcp::CloudRunProvider::new(config)
                        .with_context(|| format!("{at}: service_account_key"))?,
                )
            } else {
                Arc::new(
                    cloud_gcp::BatchProvider::new(config)
                        .with_context(|| format!("{at}: service_account_key"))?,
                )
            }
        }
    };
    Ok(provider)
}
