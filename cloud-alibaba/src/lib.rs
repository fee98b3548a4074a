//! Alibaba Cloud Elastic Container Instance (ECI) provider and, under the `sim` feature, its
//! local simulator.
//!
//! - [`EciProvider`]: the [`providers::Provider`] for ECI (API 2018-08-08, RPC style, signed
//!   with Signature Version 1.0 / HMAC-SHA1 by [`signer`]).
//! - [`EciSettings`]: the `alibaba-eci` provider section (the cloud's plug-in, see
//!   [`providers::plugin`]).
//! - `sim` (feature `sim`, lab-only): a faithful local simulator of the
//!   `CreateContainerGroup`, `DeleteContainerGroup` and `DescribeContainerGroups` subset, which
//!   implements `simulators::cloud::CloudSim`.
//!
//! Must not depend on: `simulators`, axum or any other simulator piece outside the `sim`
//! feature, which the product build never enables; nor on `actors`, `shr` or the lab.
//!
//! # Guarantees
//! - The JIT config travels only inside a `ConfigFileVolume`; it is never in env, arguments,
//!   logs or `Debug` output.
//! - Every failure maps to a [`bus_schema::ErrorKind`] via [`EciError::kind`].

pub mod client;
pub mod config;
pub mod error;
pub mod provider;
pub mod rules;
pub mod settings;
pub mod signer;
#[cfg(feature = "sim")]
pub mod sim;

pub use config::{EciConfig, OssConfig, RegistryCredential};
pub use error::EciError;
pub use provider::EciProvider;
pub use settings::EciSettings;
