//! Local stand-ins for the services this project talks to, for tests and development.
//!
//! [`github`] simulates the GitHub REST API, webhooks and job assignment; [`runner`] is a fake
//! Actions runner that registers with a JIT config and takes one job from the simulator;
//! [`conformance`] holds requests and answers to the vendors' published API descriptions
//! (bundled from `vendor/`); [`image`] models how a container image runs a request's command.
//!
//! Must not depend on the provider crates: they depend on this one for their simulators.

pub mod conformance;
pub mod github;
pub mod image;
pub mod runner;
