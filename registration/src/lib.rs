//! Registrations and their configuration: who we serve (GitHub scopes, credentials, labels,
//! limits), for which tenant, on which clouds; the runs-on label grammar; and the import of
//! the predecessor's registration JSON.
//!
//! Guarantees: a [`Config`] is fully validated, all problems reported at once as
//! `FILE: FIELD: REASON`; no secret value is ever held in, printed from or derived into a
//! configuration, only [`SecretRef`]s resolved on demand. No I/O beyond reading the file and
//! resolving secrets.

mod config;
mod error;
pub mod labels;
pub mod legacy;
mod secret;
mod syntax;

pub use config::{
    Actor, AlibabaEci, Auth, AzureAci, Config, Controller, DEFAULT_CPU_MILLIS, DEFAULT_IMAGE,
    DEFAULT_LABEL, DEFAULT_MEMORY_MIB, DEFAULT_PROVIDER, DEFAULT_RUNNER_GROUP_ID, Defaults,
    Detection, GcpProvider, Limits, LocalProvider, Providers, Registration, ScopeKind, Tenant, Tls,
    WebhookConfig,
};
pub use error::{ConfigError, ConfigErrors};
pub use secret::{ResolveError, SecretRef};
