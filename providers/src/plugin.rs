//! A cloud as a plug-in: the cloud crate implements [`CloudSettings`] on its settings type
//! (the serde shape of its provider section, validation to field errors, region,
//! capabilities as data, and the builder), and the registry holds one [`Plugin`] per
//! [`ProviderKind`] as a `&dyn CloudPlugin`.
//!
//! Guarantees: a section is deserialized with `serde_path_to_error`, so an unknown or mistyped
//! field is reported under its own name; validation reports every problem it finds. Building
//! resolves secret references and never puts a secret value in an error.
//! Assumptions: the settings passed to [`CloudPlugin::build`] came from the same plug-in's
//! [`CloudPlugin::parse`] (a mismatch is an error, not a panic).

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use bus_schema::{ErrorKind, ProviderKind};
use registration::{FieldError, ProviderSettings, ResolveError, SecretRef};
use secrecy::SecretString;
use serde::de::DeserializeOwned;

use crate::Provider;

/// Implemented by each cloud crate's settings type: everything the product knows about one
/// cloud's configuration.
pub trait CloudSettings: ProviderSettings + Sized {
    /// The provider these settings configure.
    const KIND: ProviderKind;

    /// The section as serde reads it (`deny_unknown_fields`; strings still unchecked).
    type Raw: DeserializeOwned;

    /// A complete, valid section body (without its `[...]` header), for docs and tests.
    const EXAMPLE: &'static str;

    /// Checks every field of `raw`, reporting all problems (field names relative to the
    /// section).
    fn validate(raw: Self::Raw) -> Result<Self, Vec<FieldError>>;

    /// The provider for one tenant, with its credentials resolved now.
    fn build(&self, controller_id: &str, tenant: &str) -> Result<Arc<dyn Provider>, BuildError>;
}

/// One registry entry, object-safe: what a registry does with a cloud.
pub trait CloudPlugin: Send + Sync + fmt::Debug {
    /// The provider this plug-in configures and builds.
    fn kind(&self) -> ProviderKind;

    /// A complete, valid section body, see [`CloudSettings::EXAMPLE`].
    fn example(&self) -> &'static str;

    /// Parses and validates a provider section.
    fn parse(&self, table: toml::Table) -> Result<Arc<dyn ProviderSettings>, Vec<FieldError>>;

    /// Builds the provider from settings this plug-in parsed.
    fn build(
        &self,
        settings: &dyn ProviderSettings,
        controller_id: &str,
        tenant: &str,
    ) -> Result<Arc<dyn Provider>, BuildError>;
}

/// The [`CloudPlugin`] of a [`CloudSettings`] type: `&Plugin::<EciSettings>::NEW`.
pub struct Plugin<S>(PhantomData<fn() -> S>);

/// Why a provider could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A secret reference could not be read.
    #[error("{field} ({reference})")]
    Secret {
        field: &'static str,
        reference: String,
        #[source]
        source: ResolveError,
    },
    /// The cloud's client refused the settings or the resolved credentials.
    #[error("{what}")]
    Configure {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// This provider is not built from its settings alone.
    #[error("{0}")]
    Unsupported(&'static str),
    /// The settings handed over belong to another plug-in.
    #[error("settings of another provider were handed to the {0} plug-in")]
    WrongSettings(ProviderKind),
}

impl<S> Plugin<S> {
    /// The plug-in value, usable in a `static` list.
    pub const NEW: Self = Plugin(PhantomData);
}

impl<S> fmt::Debug for Plugin<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Plugin")
            .field(&std::any::type_name::<S>())
            .finish()
    }
}

impl<S: CloudSettings> CloudPlugin for Plugin<S> {
    fn kind(&self) -> ProviderKind {
        S::KIND
    }

    fn example(&self) -> &'static str {
        S::EXAMPLE
    }

    fn parse(&self, table: toml::Table) -> Result<Arc<dyn ProviderSettings>, Vec<FieldError>> {
        let raw: S::Raw =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." { String::new() } else { path };
                vec![FieldError::new(field, e.inner().message().trim_end())]
            })?;
        Ok(Arc::new(S::validate(raw)?))
    }

    fn build(
        &self,
        settings: &dyn ProviderSettings,
        controller_id: &str,
        tenant: &str,
    ) -> Result<Arc<dyn Provider>, BuildError> {
        let any: &dyn Any = settings;
        any.downcast_ref::<S>()
            .ok_or(BuildError::WrongSettings(S::KIND))?
            .build(controller_id, tenant)
    }
}

impl BuildError {
    /// Retrying does not help until the operator fixes the configuration or environment.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Permanent
    }

    /// A cloud client's refusal of the settings, for `what` (a field or `configuring`).
    pub fn configure(
        what: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        BuildError::Configure {
            what,
            source: Box::new(source),
        }
    }
}

/// Reads the secret `field` points at; the error names the field and the reference.
pub fn resolve(field: &'static str, secret: &SecretRef) -> Result<SecretString, BuildError> {
    secret.resolve().map_err(|source| BuildError::Secret {
        field,
        reference: secret.to_string(),
        source,
    })
}
