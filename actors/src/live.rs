//! Live registrations: the registration set of a running process follows the registrations
//! bucket, so `shr registration apply|remove` takes effect without a restart.
//!
//! # Messages
//! - Consumes: [`REGISTRATIONS_BUCKET`](bus_schema::subject::REGISTRATIONS_BUCKET) entries
//!   ([`LiveRegistration`]). A process with the central identity (or none) watches the whole
//!   bucket; a tenant agent lists its own keys every [`AGENT_REFRESH`], because the KV watch
//!   consumer's create subject names no key, so a grant cannot confine it to one tenant.
//! - Emits: nothing on the bus. It swaps the [`Live`] snapshot every actor of the process
//!   reads ([`Context::config`], [`Context::registration`], [`Context::github`]) and wakes
//!   those waiting in [`Live::changed`] (the poller starts and stops its loops).
//! - Deletes the entry of a draining registration once none of its runners holds a slot any
//!   more (only where the scheduler runs: the slots live in the jobs bucket).
//!
//! # Guarantees
//! - The file's registrations always stay. A live table is validated by merging it into the
//!   process's configuration ([`Config::with_live`]); one that does not fit here (a tenant
//!   this process does not know, a name clash) is left out with a warning, the rest apply.
//! - A draining registration stays in the snapshot (its running jobs finish, its runners
//!   are deregistered and reaped with its credentials) and is marked in
//!   [`Snapshot::draining`]: it is not polled and [`crate::slots::take_slot`] admits no new
//!   runner for it.
//! - A registration whose credentials did not change keeps its GitHub client (its ETags,
//!   rate budget and JIT pacer).
//!
//! # Caveats
//! - A registration's name must be unique across tenants; when two tenants apply the same
//!   name, the entry seen first wins and the other is left out with a warning.
//! - The metrics server's status view lists the registrations known at start.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bus_schema::{LiveRegistration, LiveState, subject};
use futures::StreamExt;
use github_client::GitHubClient;
use registration::{Actor, Config, Registration, SettingsRegistry};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::{Context, Error};

/// How often a tenant agent re-reads its live registrations, and how often a draining
/// registration is checked for remaining runners.
pub const AGENT_REFRESH: Duration = Duration::from_secs(2);

/// The configuration, GitHub clients and webhook secrets the actors of a process read now.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Arc<Config>,
    /// One client per registration this process talks to GitHub for.
    pub github: BTreeMap<String, GitHubClient>,
    /// Registrations with their own webhook secret, resolved (webhook processes only).
    pub webhook_secrets: BTreeMap<String, SecretString>,
    /// Removed registrations whose runners are draining.
    pub draining: BTreeSet<String>,
}

/// The current [`Snapshot`], swapped as a whole when live registrations change.
#[derive(Debug)]
pub struct Live {
    current: RwLock<Arc<Snapshot>>,
    changes: tokio::sync::watch::Sender<u64>,
}

impl Live {
    /// A snapshot of `config` (its registrations only) and `github`.
    pub fn new(config: Arc<Config>, github: BTreeMap<String, GitHubClient>) -> Self {
        Self {
            current: RwLock::new(Arc::new(Snapshot {
                config,
                github,
                webhook_secrets: BTreeMap::new(),
                draining: BTreeSet::new(),
            })),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the snapshot and wakes [`Live::changed`] waiters.
    pub fn replace(&self, next: Snapshot) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(next);
        self.changes.send_modify(|v| *v += 1);
    }

    /// A receiver that sees every later [`Live::replace`].
    pub fn changed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

impl crate::routing::Routing for Live {
    fn route(
        &self,
        host: &str,
        repo_full_name: &str,
        org: Option<&str>,
        enterprise: Option<&str>,
    ) -> Option<crate::routing::Route> {
        self.snapshot()
            .config
            .route(host, repo_full_name, org, enterprise)
    }

    fn routes(
        &self,
        host: &str,
        repo_full_name: &str,
        org: Option<&str>,
        enterprise: Option<&str>,
        labels: &[String],
    ) -> Vec<crate::routing::Route> {
        self.snapshot()
            .config
            .routes(host, repo_full_name, org, enterprise, labels)
    }
}

/// Whether a process placed by `config` talks to GitHub for `reg`: the poller and the
/// scheduler for every registration; the reaper (a tenant agent) for its tenants' only.
pub fn needs_github(config: &Config, reg: &Registration) -> bool {
    let central = config.runs(Actor::Poller) || config.runs(Actor::Scheduler);
    central || (config.runs(Actor::Reaper) && config.serves_tenant(&reg.tenant))
}

/// Resolves `reg`'s credentials into a GitHub client.
pub fn github_client(
    reg: &Registration,
    shared: Option<&async_nats::jetstream::kv::Store>,
) -> Result<GitHubClient, Error> {
    let resolve = |secret: &registration::SecretRef, field: &str| {
        secret
            .resolve()
            .map_err(|e| Error::Config(format!("registration {}: {field}: {e}", reg.name)))
    };
    let auth = match &reg.auth {
        registration::Auth::Pat { token } => github_client::Auth::Pat(resolve(token, "auth.pat")?),
        registration::Auth::App {
            app_id,
            installation_id,
            private_key,
        } => github_client::Auth::App {
            app_id: *app_id,
            installation_id: *installation_id,
            private_key_pem: resolve(private_key, "auth.private_key")?,
        },
    };
    let shared = match shared {
        Some(store) => {
            let credential = crate::credential::KvCredential::new(
                store.clone(),
                &crate::credential::credential_name(&auth),
                reg.jit_per_minute,
                Duration::from_secs(60),
            )?;
            Some(Arc::new(credential) as Arc<dyn github_client::SharedCredential>)
        }
        None => None,
    };
    let options = github_client::ClientOptions {
        jit_per_minute: reg.jit_per_minute,
        shared,
        ..Default::default()
    };
    github_client::GitHubClient::new(reg.api_url(), auth, options)
        .map_err(|e| Error::Config(format!("registration {}: GitHub client: {e}", reg.name)))
}

/// Whether this process's GitHub clients pace and budget through KV, shared with its
/// replicas: the central actors that spend a registration's credential (scheduler, poller).
/// A tenant agent paces its own deregistrations.
pub fn shares_credentials(config: &Config) -> bool {
    config.runs(Actor::Poller) || config.runs(Actor::Scheduler)
}

/// Where this process reads live registrations from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The whole bucket, through a KV watch (central identity, or none).
    Watch,
    /// This tenant's keys, listed every [`AGENT_REFRESH`] (a tenant agent).
    Tenant(String),
}

/// Follows the registrations bucket and keeps `ctx.live` current until `cancel` fires.
/// `base` is the process's own configuration (the file), `registry` parses provider
/// sections, and `webhook` says whether to resolve registrations' webhook secrets.
pub async fn run(
    ctx: Context,
    base: Arc<Config>,
    registry: Arc<dyn SettingsRegistry + Send + Sync>,
    source: Source,
    webhook: bool,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let rebuild = Rebuild {
        ctx: ctx.clone(),
        base,
        registry,
        webhook,
    };
    let purges = ctx.config().runs(Actor::Scheduler);
    let mut purge_tick = tokio::time::interval(AGENT_REFRESH);
    purge_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    match source {
        Source::Watch => {
            let records: shr_nats::Records<LiveRegistration> =
                shr_nats::Records::new(ctx.bus.registrations.clone());
            loop {
                // Watch first (new changes), then read what is there: a change in between is
                // seen twice, and applying it again changes nothing.
                let opened = async {
                    let watch = (ctx.bus.registrations.watch_all().await)
                        .map_err(|e| Error::bus("watching live registrations", e))?;
                    let now = list(&records, None).await?;
                    Ok::<_, Error>((watch, now))
                };
                let (mut watch, now) = match opened.await {
                    Ok(opened) => opened,
                    Err(error) => {
                        tracing::warn!(%error, "reading live registrations failed; retrying");
                        tokio::select! {
                            () = cancel.cancelled() => return Ok(()),
                            () = tokio::time::sleep(AGENT_REFRESH) => continue,
                        }
                    }
                };
                let mut entries = now;
                rebuild.apply(&entries);
                loop {
                    tokio::select! {
                        () = cancel.cancelled() => return Ok(()),
                        next = watch.next() => {
                            let Some(first) = next else { break };
                            let mut changed = apply(&mut entries, first);
                            // Take what else is ready, so a burst rebuilds once.
                            while let Some(Some(more)) = futures::FutureExt::now_or_never(watch.next()) {
                                changed |= apply(&mut entries, more);
                            }
                            if changed {
                                rebuild.apply(&entries);
                            }
                        }
                        _ = purge_tick.tick(), if purges => purge_drained(&ctx, &entries).await,
                    }
                }
                tracing::debug!("live registration watch ended; reopening");
            }
        }
        Source::Tenant(tenant) => {
            let records: shr_nats::Records<LiveRegistration> =
                shr_nats::Records::new(ctx.bus.registrations.clone());
            let filter = subject::registration_keys_of(&tenant)?;
            let mut last: Option<BTreeMap<String, LiveRegistration>> = None;
            loop {
                match list(&records, Some(&filter)).await {
                    Ok(now) if last.as_ref() != Some(&now) => {
                        rebuild.apply(&now);
                        last = Some(now);
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "reading live registrations failed"),
                }
                tokio::select! {
                    () = cancel.cancelled() => return Ok(()),
                    () = tokio::time::sleep(AGENT_REFRESH) => {}
                }
            }
        }
    }
}

/// Every live registration (or those whose key matches `filter`), by key.
async fn list(
    records: &shr_nats::Records<LiveRegistration>,
    filter: Option<&str>,
) -> Result<BTreeMap<String, LiveRegistration>, Error> {
    let keys = match filter {
        Some(filter) => records.keys_matching(filter).await?,
        None => records.keys().await?,
    };
    let mut out = BTreeMap::new();
    for key in keys {
        if let Some((value, _)) = records.get(&key).await? {
            out.insert(key, value);
        }
    }
    Ok(out)
}

/// One watch entry into `entries`; whether anything changed.
fn apply(
    entries: &mut BTreeMap<String, LiveRegistration>,
    entry: Result<async_nats::jetstream::kv::Entry, async_nats::jetstream::kv::WatcherError>,
) -> bool {
    let entry = match entry {
        Ok(entry) => entry,
        Err(error) => {
            tracing::warn!(%error, "live registration watch error");
            return false;
        }
    };
    match entry.operation {
        async_nats::jetstream::kv::Operation::Put => {
            match bus_schema::decode::<LiveRegistration>(&entry.value) {
                Ok(reg) => {
                    let changed = entries.get(&entry.key) != Some(&reg);
                    entries.insert(entry.key, reg);
                    changed
                }
                Err(error) => {
                    tracing::warn!(key = %entry.key, %error, "undecodable live registration ignored");
                    entries.remove(&entry.key).is_some()
                }
            }
        }
        _ => entries.remove(&entry.key).is_some(),
    }
}

/// Builds snapshots from the live entries.
struct Rebuild {
    ctx: Context,
    base: Arc<Config>,
    registry: Arc<dyn SettingsRegistry + Send + Sync>,
    webhook: bool,
}

impl Rebuild {
    /// Merges `entries` into the base configuration and swaps the snapshot in.
    fn apply(&self, entries: &BTreeMap<String, LiveRegistration>) {
        let mut tables = Vec::new();
        let mut keys = Vec::new();
        for (key, entry) in entries {
            // The key's tenant is what the server vouched for: a table naming another
            // tenant than its key is refused here.
            let expected = subject::registration_key(&entry.tenant, &entry.name).ok();
            if expected.as_deref() != Some(key.as_str()) {
                tracing::warn!(%key, tenant = %entry.tenant, name = %entry.name, "live registration ignored: its key does not match its tenant and name");
                continue;
            }
            tables.push(entry.toml.as_str());
            keys.push((key, entry));
        }
        let (config, rejected) = self.base.with_live(&tables, self.registry.as_ref());
        for (i, errors) in &rejected {
            if let Some((key, _)) = keys.get(*i) {
                tracing::warn!(%key, %errors, "live registration left out: it does not validate here");
            }
        }
        let mut draining = BTreeSet::new();
        for (i, (key, entry)) in keys.iter().enumerate() {
            if rejected.iter().any(|(r, _)| *r == i) {
                continue;
            }
            // The table names the same tenant as its key (its `tenant` field was validated).
            match config.registration(&entry.name) {
                Some(reg) if reg.tenant == entry.tenant => {}
                _ => {
                    tracing::warn!(%key, "live registration ignored: its table disagrees with its key");
                    continue;
                }
            }
            if entry.state == LiveState::Draining {
                draining.insert(entry.name.clone());
            }
        }
        let before = self.ctx.live.snapshot();
        let mut github = BTreeMap::new();
        for reg in config.registrations() {
            if !needs_github(&config, reg) {
                continue;
            }
            let unchanged = before.config.registration(&reg.name).is_some_and(|old| {
                old.auth == reg.auth
                    && old.api_url() == reg.api_url()
                    && old.jit_per_minute == reg.jit_per_minute
            });
            match before.github.get(&reg.name) {
                Some(client) if unchanged => {
                    github.insert(reg.name.clone(), client.clone());
                }
                _ => match github_client(
                    reg,
                    shares_credentials(&config).then_some(&self.ctx.bus.jobs),
                ) {
                    Ok(client) => {
                        github.insert(reg.name.clone(), client);
                    }
                    Err(error) => {
                        tracing::warn!(registration = %reg.name, %error, "no GitHub client for this registration");
                    }
                },
            }
        }
        let mut webhook_secrets = BTreeMap::new();
        if self.webhook {
            for reg in config.registrations() {
                if let Some(secret) = &reg.webhook_secret {
                    match secret.resolve() {
                        Ok(value) => {
                            webhook_secrets.insert(reg.name.clone(), value);
                        }
                        Err(error) => {
                            tracing::warn!(registration = %reg.name, %error, "webhook secret unresolved: deliveries for it are refused");
                        }
                    }
                }
            }
        }
        let names = |c: &Config| -> BTreeSet<String> {
            c.registrations().iter().map(|r| r.name.clone()).collect()
        };
        let (old, new) = (names(&before.config), names(&config));
        for added in new.difference(&old) {
            tracing::info!(registration = %added, "live registration applied");
        }
        for gone in old.difference(&new) {
            tracing::info!(registration = %gone, "live registration gone");
        }
        for name in draining.difference(&before.draining) {
            tracing::info!(registration = %name, "registration removed: draining its runners");
        }
        self.ctx.live.replace(Snapshot {
            config: Arc::new(config),
            github,
            webhook_secrets,
            draining,
        });
    }
}

/// Deletes the entries of draining registrations none of whose runners holds a slot any
/// more: every runner made for them has been reaped.
async fn purge_drained(ctx: &Context, entries: &BTreeMap<String, LiveRegistration>) {
    for (key, entry) in entries {
        if entry.state != LiveState::Draining {
            continue;
        }
        let Ok(slots_key) = subject::slots_key(&entry.name) else {
            continue;
        };
        let slots = match crate::slots::records(ctx).get(&slots_key).await {
            Ok(slots) => slots,
            Err(error) => {
                tracing::debug!(%key, %error, "reading slots of a draining registration failed");
                continue;
            }
        };
        if slots.is_some_and(|(s, _)| !s.holders.is_empty()) {
            continue;
        }
        // Only if it is still the draining entry seen (not applied again meanwhile).
        let records: shr_nats::Records<LiveRegistration> =
            shr_nats::Records::new(ctx.bus.registrations.clone());
        let revision = match records.get(key).await {
            Ok(Some((current, revision))) if current.state == LiveState::Draining => revision,
            _ => continue,
        };
        match (ctx.bus.registrations)
            .delete_expect_revision(key, Some(revision))
            .await
        {
            Ok(()) => tracing::info!(registration = %entry.name, "registration drained: removed"),
            Err(error) => tracing::debug!(%key, %error, "removing a drained registration failed"),
        }
    }
}

/// Runs `start(name, cancel)` for every registration of the current snapshot that `wanted`
/// picks, until `cancel` fires: a registration applied later gets its task, one removed,
/// draining or changed has its task cancelled (and a changed one started again).
pub async fn per_registration<F, Fut>(
    ctx: &Context,
    cancel: &CancellationToken,
    wanted: impl Fn(&Snapshot, &Registration) -> bool,
    start: F,
) where
    F: Fn(String, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut changes = ctx.live.changed();
    // name → (the registration as it was started, its task's token)
    let mut running: BTreeMap<String, (String, CancellationToken)> = BTreeMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        changes.borrow_and_update();
        let snapshot = ctx.live.snapshot();
        let want: BTreeMap<String, String> = (snapshot.config.registrations().iter())
            .filter(|r| wanted(&snapshot, r))
            .map(|r| (r.name.clone(), format!("{r:?}")))
            .collect();
        running.retain(|name, (seen, token)| {
            let keep = want.get(name) == Some(seen);
            if !keep {
                token.cancel();
            }
            keep
        });
        for (name, seen) in want {
            if running.contains_key(&name) {
                continue;
            }
            let token = cancel.child_token();
            tasks.spawn(start(name.clone(), token.clone()));
            running.insert(name, (seen, token));
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            changed = changes.changed() => {
                if changed.is_err() {
                    cancel.cancelled().await;
                    break;
                }
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(error) = done {
                    tracing::error!(%error, "a per-registration task failed");
                }
            }
        }
    }
    while tasks.join_next().await.is_some() {}
}
