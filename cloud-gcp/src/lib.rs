//! Google Cloud providers: Cloud Run v2 jobs ([`CloudRunProvider`]) and Cloud Batch
//! ([`BatchProvider`], used when a runner needs docker-in-docker), plus, under the `sim`
//! feature (lab-only), a local simulator of both APIs, Secret Manager and the OAuth token
//! endpoint (`sim`, whose `LabSim` implements `simulators::cloud::CloudSim`).
//!
//! [`CloudRunSettings`] and [`BatchSettings`] are the `gcp-cloudrun` and `gcp-batch`
//! provider sections (the cloud's plug-ins, see [`providers::plugin`]).
//!
//! # Guarantees
//! - Both providers authenticate with a service-account key: a self-signed RS256 JWT is
//!   exchanged for an access token at `token_uri`, cached until 5 minutes before it expires.
//! - The JIT config is stored as a Secret Manager secret version and referenced by the job;
//!   it never appears in a job definition, a log line or a command line.
//! - Create is idempotent by runner name (the job name); delete of a missing job is success;
//!   list returns only jobs labelled with this controller id.
//! - Every failure maps to a [`bus_schema::ErrorKind`] through [`GcpError::kind`].
//!
//! Must not depend on: `simulators`, axum or any other simulator piece outside the `sim`
//! feature, which the product build never enables; nor on `actors`, `shr` or the lab.

pub mod auth;
pub mod batch;
mod client;
pub mod cloudrun;
pub mod config;
pub mod error;
pub mod labels;
mod secrets;
pub mod settings;
pub mod shapes;
#[cfg(feature = "sim")]
pub mod sim;

pub use auth::{ServiceAccountKey, TokenSource};
pub use batch::BatchProvider;
pub use cloudrun::CloudRunProvider;
pub use config::{Endpoints, GcpConfig};
pub use error::GcpError;
pub use settings::{BatchSettings, CloudRunSettings, GcpSettings};
