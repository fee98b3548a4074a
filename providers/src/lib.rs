//! The provider boundary: one small async trait every hosting platform implements.
//!
//! A provider creates, deletes, gets and lists runner instances. It never decides anything:
//! the provisioner and the reaper call it and converge records toward what it reports.
//!
//! # Guarantees every implementation gives
//! - [`Provider::create`] is idempotent by runner name: calling it twice leaves one instance.
//! - [`Provider::delete`] of a missing instance is success.
//! - [`Provider::list`] returns only instances tagged with this controller id.
//! - The JIT config never appears on a command line, in logs, or in a field the platform
//!   shows in clear where it has a secret field.
//! - Every error maps to an [`ErrorKind`] (transient, not found, quota, permanent).
//!
//! A cloud is a plug-in ([`plugin`]): its crate implements [`CloudSettings`] for its provider
//! section; the `clouds` crate lists the plug-ins. This crate must not depend on any cloud
//! crate, on `actors`, or on the lab.

pub mod command;
pub mod local;
pub mod plugin;

use std::collections::BTreeMap;

use bus_schema::{ErrorKind, ProviderKind, RunnerSpec, Secret};

pub use plugin::{BuildError, CloudPlugin, CloudSettings, Plugin};

/// Tags put on every instance, so the reaper can find what is not in the records.
pub mod tags {
    /// The controller (deployment) that owns the instance.
    pub const CONTROLLER: &str = "shr-controller";
    pub const TENANT: &str = "shr-tenant";
    pub const REGISTRATION: &str = "shr-registration";
    pub const RUNNER: &str = "shr-runner";
    /// Charge labels, joined with `,`.
    pub const CHARGE: &str = "shr-charge";
}

/// Everything a provider needs to create one runner instance.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub controller_id: String,
    pub tenant: String,
    pub registration: String,
    pub runner_name: String,
    pub spec: RunnerSpec,
    /// The encoded JIT config; redacted in `Debug`.
    pub jit_config: Secret,
}

impl CreateRequest {
    /// The tags every instance of this request carries.
    pub fn tags(&self) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::new();
        tags.insert(tags::CONTROLLER.to_owned(), self.controller_id.clone());
        tags.insert(tags::TENANT.to_owned(), self.tenant.clone());
        tags.insert(tags::REGISTRATION.to_owned(), self.registration.clone());
        tags.insert(tags::RUNNER.to_owned(), self.runner_name.clone());
        if !self.spec.charge_labels.is_empty() {
            tags.insert(tags::CHARGE.to_owned(), self.spec.charge_labels.join(","));
        }
        tags
    }
}

/// The lifecycle state a platform reports for an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceStatus {
    Pending,
    Running,
    /// Exited or finished, successfully or not, but still present.
    Stopped,
    Unknown,
}

/// One instance as the platform reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The platform's id (resource id, container group id, pid, …).
    pub id: String,
    /// The runner name it hosts (from its name or its runner tag).
    pub runner_name: String,
    pub status: InstanceStatus,
    pub tags: BTreeMap<String, String>,
}

pub use bus_schema::Capabilities;

/// The cause of a [`ProviderError`]: the platform client's own error (HTTP, decoding, the
/// service's answer), or a plain message where there is no underlying error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A provider call that failed: which provider, which operation, how to treat it, and why.
///
/// The cause is kept as [`std::error::Error::source`], so a caller can walk or downcast it
/// (to the cloud crate's own error type, say). `Display` repeats the cause's message as well,
/// so a log line that prints only `%error` still says what went wrong. Neither may contain a
/// secret.
#[derive(Debug, thiserror::Error)]
#[error("{provider} {operation} failed ({kind:?}): {source}")]
pub struct ProviderError {
    pub provider: ProviderKind,
    pub operation: &'static str,
    pub kind: ErrorKind,
    #[source]
    source: BoxError,
}

impl ProviderError {
    /// A failure of `operation`, caused by `source`: an error value, or a message (`&str`,
    /// `String`) when there is no underlying error.
    pub fn new(
        provider: ProviderKind,
        operation: &'static str,
        kind: ErrorKind,
        source: impl Into<BoxError>,
    ) -> Self {
        Self {
            provider,
            operation,
            kind,
            source: source.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The cause as the concrete type `E`, if it is one (e.g. a cloud crate's error).
    pub fn cause<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.source.downcast_ref::<E>()
    }
}

/// A hosting platform for runners.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> ProviderKind;

    /// Creates the instance for `request.runner_name`, or returns the existing one.
    async fn create(&self, request: &CreateRequest) -> Result<Instance, ProviderError>;

    /// Deletes the instance hosting `runner_name`. Missing is success.
    async fn delete(&self, runner_name: &str) -> Result<(), ProviderError>;

    /// The instance hosting `runner_name`, if any.
    async fn get(&self, runner_name: &str) -> Result<Option<Instance>, ProviderError>;

    /// Every instance tagged with this provider's controller id.
    async fn list(&self) -> Result<Vec<Instance>, ProviderError>;

    fn capabilities(&self) -> Capabilities;
}
