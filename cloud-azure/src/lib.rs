//! Azure Container Instances provider and its local simulator.
//!
//! - [`AciProvider`] implements [`providers::Provider`] over ARM REST
//!   (`Microsoft.ContainerInstance/containerGroups`, api-version [`config::API_VERSION`]),
//!   authenticating with the OAuth 2.0 client-credentials grant ([`token::TokenClient`]).
//!   One runner is one container group named after the runner (PUT by name is idempotent),
//!   tagged with the controller/tenant/registration/runner/charge tags. The JIT config is the
//!   container's `secureValue` env var, which ARM never returns.
//! - [`AciSettings`]: the `azure-aci` provider section (the cloud's plug-in, see
//!   [`providers::plugin`]).
//! - [`sim`] serves the same API subset locally with the service's checks and error bodies.

pub mod config;
pub mod error;
pub mod limits;
pub mod provider;
pub mod settings;
pub mod sim;
pub mod token;

pub use config::{AciConfig, AzureFilesConfig};
pub use error::AciError;
pub use provider::AciProvider;
pub use settings::AciSettings;
pub use sim::{Fault, GroupState, Launch, Sim, SimConfig, SimHandle, SimInstance};
