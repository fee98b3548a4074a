//! Local stand-ins for the services this project talks to, for tests and development.
//!
//! [`github`] simulates the GitHub REST API, webhooks and job assignment; [`runner`] is a fake
//! Actions runner that registers with a JIT config and takes one job from the simulator.

pub mod github;
pub mod runner;
