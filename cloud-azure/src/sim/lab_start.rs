//! How the lab starts the ARM/ACI simulator ([`simulators::cloud::SimPlugin`]): a fresh
//! sim-only client secret, the default tenant, subscription and resource group.

use std::net::SocketAddr;

use bus_schema::ProviderKind;
use secrecy::SecretString;
use simulators::cloud::{Launch, SimPlugin, StartFuture, StartedSim};

use super::{Sim, SimConfig};

/// The lab's entry for this simulator.
pub static LAB: SimPlugin = SimPlugin {
    kinds: &[ProviderKind::AzureAci],
    start,
};

fn start(_kind: ProviderKind, listen: SocketAddr, launch: Launch) -> StartFuture {
    Box::pin(async move {
        let secret = SecretString::from(uuid::Uuid::new_v4().simple().to_string());
        let config = SimConfig {
            client_secret: secret.clone(),
            launch: Some(launch),
            ..SimConfig::default()
        };
        let sim = Sim::start(config, listen).await?;
        Ok(StartedSim {
            sim: Box::new(sim),
            secret,
        })
    })
}
