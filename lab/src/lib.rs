//! The lab: everything that plays the world around the product, to show and test it.
//!
//! - [`harness`]: the whole system on one machine (nats-server, the GitHub simulator, a cloud
//!   simulator or the local provider, the actors), read back as one [`harness::Summary`];
//! - [`clouds`]: one cloud simulator with sim-only credentials, driven through
//!   [`simulators::cloud::CloudSim`];
//! - [`demo`], [`chaos`], [`bench`](mod@bench) and [`sim`]: the `shr-lab` commands;
//! - [`placement`]: the demo's placements (distributed, centralized, tenant agents);
//! - [`bins`]: where the product binary (`shr`) and this lab binary are, for the processes
//!   the lab starts.
//!
//! Owns: the simulators as commands and fixtures, and the sim-only credentials (the GCP
//! service-account key is generated here). Depends on the product (`shr`'s library, the
//! actors) and turns on the cloud crates' `sim` feature. The product must never depend on
//! this crate.

pub mod bench;
pub mod bins;
pub mod chaos;
pub mod clouds;
pub mod demo;
pub mod harness;
pub mod placement;
pub mod sim;
