//! The one registry of cloud plug-ins: which settings type parses each
//! `[tenants.<t>.providers.<kind>]` section, and which builds its provider.
//!
//! - [`Registry`] is the [`registration::SettingsRegistry`] to pass to
//!   [`registration::Config::load`] and [`registration::Config::parse`].
//! - [`build`] makes the provider of one kind for one tenant, resolving its secrets.
//!
//! # Adding a cloud
//! 1. A crate `cloud-<name>` whose settings type implements [`providers::CloudSettings`]: the
//!    serde shape of the section (`deny_unknown_fields`), validation to field errors, the
//!    region, the capabilities as data, and the builder.
//! 2. A [`bus_schema::ProviderKind`] variant (its token is the section name).
//! 3. One line in [`PLUGINS`], plus the crate's workspace membership and a dependency line
//!    in this crate's `Cargo.toml` (and its `sim` feature in ours).
//! 4. For the lab: the crate exports a `simulators::cloud::SimPlugin` as `sim::LAB` under
//!    its `sim` feature, and `SIMS` (feature `sim`) names it. The lab has no per-cloud code.
//!
//! The test `registry_covers_every_provider_kind` fails until all three are done.
//!
//! Guarantees: every [`ProviderKind::ALL`] has exactly one plug-in. Errors name the tenant,
//! the provider and the field, never a secret value.
//! Must not depend on `actors`, `shr` or the lab; the cloud simulators are compiled in only
//! with the `sim` feature.

use std::sync::Arc;

use bus_schema::ProviderKind;
use providers::{CloudPlugin, Plugin, Provider};
use registration::{FieldError, ProviderSettings, SettingsRegistry, Tenant};

/// Every plug-in, one line per cloud, in [`ProviderKind::ALL`] order.
pub static PLUGINS: &[&dyn CloudPlugin] = &[
    &Plugin::<providers::local::LocalSettings>::NEW,
    &Plugin::<cloud_alibaba::EciSettings>::NEW,
    &Plugin::<cloud_azure::AciSettings>::NEW,
    &Plugin::<cloud_gcp::CloudRunSettings>::NEW,
    &Plugin::<cloud_gcp::BatchSettings>::NEW,
    &Plugin::<cloud_aws::FargateSettings>::NEW,
];

/// Every cloud simulator, for the lab (feature `sim`; the product has none): one line per
/// cloud crate, each naming the providers its simulator plays.
#[cfg(feature = "sim")]
pub static SIMS: &[&simulators::cloud::SimPlugin] = &[
    &cloud_alibaba::sim::LAB,
    &cloud_azure::sim::LAB,
    &cloud_gcp::sim::LAB,
    &cloud_aws::sim::LAB,
];

/// The simulator plug-in that plays `kind` (feature `sim`).
#[cfg(feature = "sim")]
pub fn sim(kind: ProviderKind) -> Option<&'static simulators::cloud::SimPlugin> {
    SIMS.iter().copied().find(|s| s.kinds.contains(&kind))
}

/// The registry over [`PLUGINS`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Registry;

/// Why [`build`] could not make a provider.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("tenant {tenant}: provider {kind}: no [tenants.{tenant}.providers.{kind}] section")]
    NoSection { tenant: String, kind: ProviderKind },
    #[error("tenant {tenant}: provider {kind}: no plug-in is registered for it")]
    NoPlugin { tenant: String, kind: ProviderKind },
    #[error("tenant {tenant}: provider {kind}")]
    Build {
        tenant: String,
        kind: ProviderKind,
        #[source]
        source: providers::BuildError,
    },
}

/// The plug-in of `kind`.
pub fn plugin(kind: ProviderKind) -> Option<&'static dyn CloudPlugin> {
    PLUGINS.iter().copied().find(|p| p.kind() == kind)
}

/// The provider of `kind` for `tenant`, with its credentials resolved. `local` is built by
/// the process wiring (it needs the runner program and work directory) and is refused here.
pub fn build(
    kind: ProviderKind,
    controller_id: &str,
    tenant: &Tenant,
) -> Result<Arc<dyn Provider>, BuildError> {
    let name = || tenant.name.clone();
    let settings = tenant
        .providers
        .settings(kind)
        .ok_or_else(|| BuildError::NoSection {
            tenant: name(),
            kind,
        })?;
    let plugin = plugin(kind).ok_or_else(|| BuildError::NoPlugin {
        tenant: name(),
        kind,
    })?;
    plugin
        .build(settings, controller_id, &tenant.name)
        .map_err(|source| BuildError::Build {
            tenant: name(),
            kind,
            source,
        })
}

impl SettingsRegistry for Registry {
    fn parse(
        &self,
        kind: ProviderKind,
        table: toml::Table,
    ) -> Result<Arc<dyn ProviderSettings>, Vec<FieldError>> {
        match plugin(kind) {
            Some(plugin) => plugin.parse(table),
            None => Err(vec![FieldError::new(
                "",
                format!("no plug-in is registered for `{kind}`"),
            )]),
        }
    }
}

impl BuildError {
    /// Building fails only on configuration or environment problems.
    pub fn kind(&self) -> bus_schema::ErrorKind {
        bus_schema::ErrorKind::Permanent
    }
}
