//! AWS ECS Fargate provider (`aws-fargate`) and, behind the `sim` feature, its local simulator.
//!
//! Owns: the ECS JSON 1.1 and Secrets Manager calls over `reqwest`, SigV4 signing through
//! AWS's `aws-sigv4` crate ([`sign`]), the credential sources ([`credentials`]), Fargate's
//! CPU/memory table ([`shapes`]), the container entrypoint that fetches the JIT config
//! ([`entrypoint`]) and the mapping of AWS errors onto [`bus_schema::ErrorKind`] ([`error`]).
//!
//! Must not depend on: the actors, the NATS crates, the binary, or any other cloud crate. It
//! sees the rest of the system only through [`providers::Provider`] and `bus-schema` types.
//!
//! One runner is one ECS task started with `RunTask` (idempotent by `clientToken`, found
//! again by `startedBy`), plus one Secrets Manager secret holding its JIT config, which only
//! that task may read (see the crate README for the design and the IAM policies).

pub mod client;
pub mod config;
pub mod credentials;
pub mod entrypoint;
pub mod error;
pub mod names;
pub mod provider;
pub mod settings;
pub mod shapes;
pub mod sign;
#[cfg(feature = "sim")]
pub mod sim;

pub use config::{AwsConfig, Capacity};
pub use credentials::{CredentialSource, Credentials};
pub use error::AwsError;
pub use provider::FargateProvider;
pub use settings::FargateSettings;
