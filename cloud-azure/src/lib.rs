//! Azure Container Instances provider and, under the `sim` feature, its local simulator.
//!
//! - [`AciProvider`] implements [`providers::Provider`] over ARM REST
//!   (`Microsoft.ContainerInstance/containerGroups`, api-version [`config::API_VERSION`]),
//!   authenticating with the OAuth 2.0 client-credentials grant ([`token::TokenClient`]).
//!   One runner is one container group named after the runner (PUT by name is idempotent),
//!   tagged with the controller/tenant/registration/runner/charge tags. The JIT config is the
//!   container's `secureValue` env var, which ARM never returns.
//! - [`AciSettings`]: the `azure-aci` provider section (the cloud's plug-in, see
//!   [`providers::plugin`]).
//! - `sim` (feature `sim`, lab-only) serves the same API subset locally with the service's
//!   checks and error bodies, and implements `simulators::cloud::CloudSim`.
//!
//! Must not depend on: `simulators`, axum or any other simulator piece outside the `sim`
//! feature, which the product build never enables; nor on `actors`, `shr` or the lab.

pub mod config;
pub mod error;
pub mod limits;
pub mod provider;
pub mod settings;
#[cfg(feature = "sim")]
pub mod sim;
pub mod token;

pub use config::{AciConfig, AzureFilesConfig, RegistryCredential};
pub use error::AciError;
pub use provider::AciProvider;
pub use settings::AciSettings;
#[cfg(feature = "sim")]
pub use sim::{Fault, GroupState, Launch, Sim, SimConfig, SimHandle, SimInstance};
