//! What every actor of one process shares: configuration, the bus, and GitHub clients.

use std::collections::BTreeMap;
use std::sync::Arc;

use bus_schema::{JobRecord, RunnerRecord};
use github_client::GitHubClient;
use registration::{Config, Registration};
use shr_nats::{Bus, Records};

use crate::Error;

/// Shared, read-only handles. Cheap to clone.
#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub bus: Bus,
    pub jobs: Records<JobRecord>,
    pub runners: Records<RunnerRecord>,
    /// One client per registration (each holds its own credential, rate budget and JIT pacer).
    pub github: Arc<BTreeMap<String, GitHubClient>>,
    /// Counters of this process's actors.
    pub stats: Arc<Stats>,
    /// The JIT sealing keys this process holds (see [`JitKeys`]).
    pub jit_keys: Arc<JitKeys>,
}

/// Keys for sealed JIT configs: the public keys the scheduler seals to, and the private keys
/// of the tenants whose provisioner runs here. A tenant with no public key gets its JIT
/// configs in clear.
#[derive(Debug, Default)]
pub struct JitKeys {
    public: BTreeMap<String, bus_schema::JitPublicKey>,
    private: BTreeMap<String, bus_schema::JitPrivateKey>,
}

impl JitKeys {
    /// Seals `tenant`'s JIT configs to `key`.
    pub fn add_public(&mut self, tenant: &str, key: bus_schema::JitPublicKey) {
        self.public.insert(tenant.to_owned(), key);
    }

    /// Opens `tenant`'s sealed JIT configs with `key`.
    pub fn add_private(&mut self, tenant: &str, key: bus_schema::JitPrivateKey) {
        self.private.insert(tenant.to_owned(), key);
    }

    /// The key `tenant`'s JIT configs are sealed to, if any.
    pub fn public(&self, tenant: &str) -> Option<&bus_schema::JitPublicKey> {
        self.public.get(tenant)
    }

    /// The key that opens `tenant`'s JIT configs, if this process holds it.
    pub fn private(&self, tenant: &str) -> Option<&bus_schema::JitPrivateKey> {
        self.private.get(tenant)
    }
}

/// Counters the actors of one process keep, for `/metrics` and the demo.
#[derive(Debug, Default)]
pub struct Stats {
    /// Jobs declined, by [`registration::labels::DeclineReason::code`].
    declined: std::sync::Mutex<BTreeMap<&'static str, u64>>,
}

impl Stats {
    pub fn count_decline(&self, code: &'static str) {
        let mut map = self
            .declined
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(code).or_default() += 1;
    }

    /// Declines so far, by reason code.
    pub fn declined(&self) -> BTreeMap<&'static str, u64> {
        self.declined
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("registrations", &self.github.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Context {
    pub fn new(config: Arc<Config>, bus: Bus, github: BTreeMap<String, GitHubClient>) -> Self {
        Self {
            jobs: Records::new(bus.jobs.clone()),
            runners: Records::new(bus.runners.clone()),
            config,
            bus,
            github: Arc::new(github),
            stats: Arc::default(),
            jit_keys: Arc::default(),
        }
    }

    /// The same context, sealing and opening JIT configs with `keys`.
    pub fn with_jit_keys(mut self, keys: JitKeys) -> Self {
        self.jit_keys = Arc::new(keys);
        self
    }

    pub fn registration(&self, name: &str) -> Result<&Registration, Error> {
        self.config
            .registration(name)
            .ok_or_else(|| Error::Config(format!("unknown registration `{name}`")))
    }

    pub fn github(&self, registration: &str) -> Result<&GitHubClient, Error> {
        self.github.get(registration).ok_or_else(|| {
            Error::Config(format!(
                "no GitHub client for registration `{registration}`"
            ))
        })
    }

    /// Publishes a bus message durably (JetStream ack awaited), with an optional dedup id.
    pub async fn publish(
        &self,
        subject: String,
        payload: Vec<u8>,
        msg_id: Option<&str>,
    ) -> Result<(), Error> {
        let ack = self
            .bus
            .publish_durable(
                &subject,
                payload,
                msg_id,
                Some(crate::trace::outgoing_headers()),
            )
            .await?;
        tracing::trace!(%subject, stream = %ack.stream, sequence = ack.sequence, duplicate = ack.duplicate, "published");
        Ok(())
    }
}
