//! How the lab starts the ECI simulator ([`simulators::cloud::SimPlugin`]): a fresh sim-only
//! AccessKey secret, a fixed region and AccessKey id.

use std::net::SocketAddr;

use bus_schema::ProviderKind;
use secrecy::SecretString;
use simulators::cloud::{Launch, SimPlugin, StartFuture, StartedSim};

use super::{Sim, SimConfig};

const REGION: &str = "cn-shanghai";
const KEY_ID: &str = "LTAI5tSimulatorKey";

/// The lab's entry for this simulator.
pub static LAB: SimPlugin = SimPlugin {
    kinds: &[ProviderKind::AlibabaEci],
    start,
};

fn start(_kind: ProviderKind, listen: SocketAddr, launch: Launch) -> StartFuture {
    Box::pin(async move {
        let secret = SecretString::from(uuid::Uuid::new_v4().simple().to_string());
        let mut config = SimConfig::new(REGION, KEY_ID, secret.clone());
        config.launch = Some(launch);
        let sim = Sim::start(config, listen).await?;
        Ok(StartedSim {
            sim: Box::new(sim),
            secret,
        })
    })
}
