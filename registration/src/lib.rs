//! Registrations and their configuration: who we serve (GitHub scopes, credentials, labels,
//! limits), for which tenant, on which clouds; the runs-on label grammar; and the import of
//! the predecessor's registration JSON.
//!
//! Guarantees: a [`Config`] is fully validated, all problems reported at once as
//! `FILE: FIELD: REASON`; no secret value is ever held in, printed from or derived into a
//! configuration, only [`SecretRef`]s resolved on demand. No I/O beyond reading the file and
//! resolving secrets.
//!
//! Knows no cloud by name: a provider section is an opaque table handed to the
//! [`SettingsRegistry`] the caller passes (the `clouds` crate's), which returns the cloud's
//! own [`ProviderSettings`]. The legacy import is the one exception: it writes the sections
//! of the predecessor's fixed JSON format. Must not depend on `providers`, `actors` or any
//! cloud crate (they depend on it, for [`SecretRef`] and [`Fields`]).

mod config;
mod error;
pub mod labels;
pub mod legacy;
mod secret;
mod settings;
mod syntax;

pub use config::{
    Actor, Auth, Config, Controller, DEFAULT_CPU_MILLIS, DEFAULT_IMAGE, DEFAULT_LABEL,
    DEFAULT_MEMORY_MIB, DEFAULT_PROVIDER, DEFAULT_RUNNER_GROUP_ID, Defaults, Detection, Limits,
    Providers, Registration, ScopeKind, Tenant, Tls, WebhookConfig,
};
pub use error::{ConfigError, ConfigErrors};
pub use secret::{ResolveError, SecretRef};
pub use settings::{
    FieldError, Fields, ProviderSettings, RawRegistryCredential, RegistryLogin, SettingsRegistry,
};
