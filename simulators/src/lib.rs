//! Local stand-ins for the services this project talks to. Lab-only: the `shr-lab` binary,
//! the cloud crates' `sim` feature and tests use it; the product (`shr` and the crates it
//! links without `sim`) must never depend on it.
//!
//! - [`github`] simulates the GitHub REST API, webhooks and job assignment;
//! - [`runner`] is a fake Actions runner that registers with a JIT config and takes one job
//!   from the GitHub simulator (`shr-lab sim runner`);
//! - [`cloud`] is what every cloud simulator shares: the [`cloud::CloudSim`] interface the
//!   lab drives them through, runner launching, fault plans and the serve handle;
//! - [`conformance`] holds requests and answers to the vendors' published API descriptions
//!   (bundled from `vendor/`); [`image`] models how a container image runs a request's command.
//!
//! Must not depend on: any cloud crate, `actors`, `shr` or the lab (the cloud crates depend
//! on this crate, not the other way round).

pub mod cloud;
pub mod conformance;
pub mod github;
pub mod image;
pub mod runner;
