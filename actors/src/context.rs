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
    pub runners: RunnerRecords,
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

/// Runner records, addressed by runner name and stored under
/// [`subject::runner_key`](bus_schema::subject::runner_key) (`<tenant>.<name>`), so a tenant
/// agent's grant confines it to its own runners.
#[derive(Debug, Clone)]
pub struct RunnerRecords(pub Records<RunnerRecord>);

impl RunnerRecords {
    /// The record of runner `name` and its revision.
    pub async fn get(&self, name: &str) -> Result<Option<(RunnerRecord, u64)>, Error> {
        let key = bus_schema::subject::runner_key(name)?;
        Ok(self.0.get(&key).await?)
    }

    /// Writes the record of runner `name` if it has none.
    pub async fn create(&self, name: &str, record: &RunnerRecord) -> Result<u64, Error> {
        let key = bus_schema::subject::runner_key(name)?;
        Ok(self.0.create(&key, record).await?)
    }

    /// The names of `tenant`'s runner records, listed over its keys only.
    pub async fn names_of(&self, tenant: &str) -> Result<Vec<String>, Error> {
        let filter = bus_schema::subject::runner_keys_of(tenant)?;
        let keys = self.0.keys_matching(&filter).await?;
        Ok(names(&keys))
    }

    /// The names of every runner record (the central placement; a tenant grant refuses it).
    pub async fn names(&self) -> Result<Vec<String>, Error> {
        Ok(names(&self.0.keys().await?))
    }
}

fn names(keys: &[String]) -> Vec<String> {
    keys.iter()
        .filter_map(|k| bus_schema::subject::runner_name_of_key(k))
        .map(str::to_owned)
        .collect()
}

impl crate::cas::Keyed<RunnerRecord> for RunnerRecords {
    fn records(&self) -> &Records<RunnerRecord> {
        &self.0
    }

    fn key(&self, name: &str) -> Result<String, Error> {
        Ok(bus_schema::subject::runner_key(name)?)
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
            runners: RunnerRecords(Records::new(bus.runners.clone())),
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

    /// A JetStream message id for a stream tenants publish into: tenant-led and unguessable
    /// ([`bus_schema::msg_id::unguessable`]).
    pub fn unguessable_id(tenant: &str, what: &str, runner: &str) -> String {
        bus_schema::msg_id::unguessable(tenant, what, runner, uuid::Uuid::new_v4().as_u128())
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
