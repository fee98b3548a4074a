//! How the lab starts the GCP simulator ([`simulators::cloud::SimPlugin`]), as Cloud Run or
//! as Batch: a service-account key whose RSA-2048 private key is generated once per process
//! (a simulator-only key that grants access to nothing), handed back as the key JSON the
//! provider reads, its `token_uri` pointing at the simulator.

use std::net::SocketAddr;

use bus_schema::ProviderKind;
use secrecy::{ExposeSecret as _, SecretString};
use simulators::cloud::{Launch, SimPlugin, StartError, StartFuture, StartedSim};

use super::{LabSim, Sim, SimConfig, SimServiceAccount};

const PROJECT: &str = "shr-sim";
const EMAIL: &str = "shr-sim@shr-sim.iam.gserviceaccount.com";

/// The lab's entry for this simulator.
pub static LAB: SimPlugin = SimPlugin {
    kinds: &[ProviderKind::GcpCloudrun, ProviderKind::GcpBatch],
    start,
};

fn start(kind: ProviderKind, listen: SocketAddr, launch: Launch) -> StartFuture {
    Box::pin(async move {
        let (private_pem, public_pem) = sim_rsa_key().await?;
        let random = || uuid::Uuid::new_v4().simple().to_string();
        let key_id = format!("{}{}", random(), &random()[..8]);
        let mut config = SimConfig::new(
            PROJECT,
            SimServiceAccount {
                client_email: EMAIL.into(),
                key_id: key_id.clone(),
                public_key_pem: public_pem,
            },
        );
        config.launch = Some(launch);
        let sim = Sim::start(config, listen).await?;
        let key = serde_json::json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": key_id,
            "private_key": private_pem.expose_secret(),
            "client_email": EMAIL,
            "token_uri": format!("{}/token", sim.base_url()),
        });
        Ok(StartedSim {
            sim: Box::new(LabSim { sim, kind }),
            secret: SecretString::from(key.to_string()),
        })
    })
}

/// A fresh RSA-2048 key (private PKCS#8 PEM, public SPKI PEM), generated once per process.
async fn sim_rsa_key() -> Result<(SecretString, String), StartError> {
    static KEY: tokio::sync::OnceCell<(SecretString, String)> = tokio::sync::OnceCell::const_new();
    let (private, public) = KEY
        .get_or_try_init(|| async { tokio::task::spawn_blocking(generate_rsa_key).await? })
        .await?;
    Ok((private.clone(), public.clone()))
}

fn generate_rsa_key() -> Result<(SecretString, String), StartError> {
    use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)?;
    let private = key.to_pkcs8_pem(LineEnding::LF)?;
    let public = rsa::RsaPublicKey::from(&key).to_public_key_pem(LineEnding::LF)?;
    Ok((SecretString::from(private.as_str().to_owned()), public))
}
