//! Starts the actors a configuration places in this process, and stops them together.
//!
//! Placement is configuration only: `[controller] actors` picks the actors and
//! `[controller] tenants` the tenants whose provisioners and reapers run here. The same code
//! runs all-in-one, distributed and centralized deployments.
//!
//! # Supervision
//! The actors run as tasks under one cancellation token ([`Actors`]):
//! - an actor that returns an error or panics stops the process: the others are cancelled and
//!   drained, and [`Running::wait`] returns the failure, naming the actor;
//! - an actor that ends normally (a poller with nothing to poll) is logged and the others
//!   keep running;
//! - stopping cancels every actor and gives them a bounded grace to finish and ack the
//!   messages in hand; what is still running after it is aborted, and its messages come back
//!   after the consumer's ack wait.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use actors::{Context, ProviderSet};
use anyhow::Context as _;
use bus_schema::ProviderKind;
use providers::Provider;
use registration::{Actor, Config, Tenant};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

/// Process-level settings that are not part of the registration file.
#[derive(Debug)]
pub struct StartOptions {
    pub nats_url: String,
    /// This replica's identity for leases.
    pub holder_id: String,
    /// Where local state lives (local provider instances, runner logs).
    pub work_dir: PathBuf,
    /// The program a local provider without `runner_command` runs. The product has none
    /// (`None`: such a tenant is refused); the lab passes its fake runner.
    pub local_runner: Option<LocalRunner>,
    /// A listener already bound for the webhook (the demo binds port 0 first).
    pub webhook_listener: Option<std::net::TcpListener>,
    /// How often the reaper sweeps for orphans and timeouts.
    pub sweep_interval: std::time::Duration,
}

/// How long a stop waits by default for the actors to finish the messages in hand.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// A runner program and its arguments, for local providers without `runner_command`.
#[derive(Debug, Clone)]
pub struct LocalRunner {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// The running actors of this process.
#[derive(Debug)]
pub struct Running {
    pub ctx: Context,
    pub providers: ProviderSet,
    pub webhook_addr: Option<SocketAddr>,
    pub webhook_stats: Option<Arc<actors::webhook::WebhookStats>>,
    actors: Actors,
}

impl Running {
    /// The token that stops the actors: it fires when [`Running::wait`] or [`Running::stop`]
    /// begins the drain. Whatever else the process serves (the metrics listener) watches it
    /// to stop with them.
    pub fn cancel_token(&self) -> CancellationToken {
        self.actors.cancel.clone()
    }

    /// Stops every actor and waits for them (at most [`SHUTDOWN_GRACE`]); failures are logged.
    pub async fn stop(self) {
        if let Err(error) = self.actors.stop(SHUTDOWN_GRACE).await {
            tracing::warn!(error = %report(&error), "an actor failed while stopping");
        }
    }

    /// Runs until `shutdown` fires or an actor fails, then stops every actor, giving them
    /// `grace` to finish the messages in hand. `Ok` after a clean shutdown; the failure
    /// (naming the actor, with its cause) when an actor failed, before or while stopping.
    pub async fn wait(
        mut self,
        shutdown: impl Future<Output = ()>,
        grace: Duration,
    ) -> anyhow::Result<()> {
        let failed = self.actors.watch(shutdown).await;
        let stopped = self.actors.stop(grace).await;
        match failed {
            Some(failure) => {
                if let Err(also) = stopped {
                    tracing::error!(error = %report(&also), "another actor failed while stopping");
                }
                Err(failure)
            }
            None => stopped,
        }
    }
}

/// An error and its causes on one line, `outer: inner: …`. A cause whose message its
/// parent already ends with (errors here repeat their cause in `Display` so that `%error`
/// logs are complete) is not printed twice.
pub fn report(error: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut last = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !last.ends_with(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        last = text;
    }
    out
}

/// The actor tasks of one process, under one cancellation token.
#[derive(Debug)]
pub struct Actors {
    cancel: CancellationToken,
    tasks: tokio::task::JoinSet<Result<(), actors::Error>>,
    names: HashMap<tokio::task::Id, &'static str>,
}

impl Actors {
    /// No actors yet; `cancel` is the token they are given to watch.
    pub fn new(cancel: CancellationToken) -> Self {
        Self {
            cancel,
            tasks: tokio::task::JoinSet::new(),
            names: HashMap::new(),
        }
    }

    /// Starts actor `name` (in a span of that name).
    pub fn spawn(
        &mut self,
        name: &'static str,
        actor: impl Future<Output = Result<(), actors::Error>> + Send + 'static,
    ) {
        let span = tracing::info_span!("actor", actor = name);
        let handle = self
            .tasks
            .spawn(tracing::Instrument::instrument(actor, span));
        self.names.insert(handle.id(), name);
    }

    /// Waits until `shutdown` fires (`None`) or an actor fails (`Some`, naming it). Actors that
    /// end normally are logged and waited past.
    pub async fn watch(&mut self, shutdown: impl Future<Output = ()>) -> Option<anyhow::Error> {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return None,
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    if let Some(failure) = self.settle(done) {
                        tracing::error!(error = %report(&failure), "stopping");
                        return Some(failure);
                    }
                }
            }
        }
    }

    /// Cancels every actor and waits up to `grace` for them to finish; then aborts the rest.
    /// The first failure among them, if any.
    pub async fn stop(mut self, grace: Duration) -> anyhow::Result<()> {
        self.cancel.cancel();
        let mut first = None;
        let drain = async {
            while let Some(done) = self.tasks.join_next_with_id().await {
                if let Some(failure) = self.settle(done) {
                    tracing::error!(error = %report(&failure), "failed while stopping");
                    first.get_or_insert(failure);
                }
            }
        };
        if tokio::time::timeout(grace, drain).await.is_err() {
            let left: Vec<&str> = self.names.values().copied().collect();
            tracing::warn!(
                ?grace,
                actors = ?left,
                "actors still busy after the grace period; aborting them (their messages in hand will be redelivered)"
            );
            self.tasks.shutdown().await;
        }
        first.map_or(Ok(()), Err)
    }

    /// Logs how an actor ended; a failure when it returned an error or panicked.
    fn settle(
        &mut self,
        done: Result<(tokio::task::Id, Result<(), actors::Error>), tokio::task::JoinError>,
    ) -> Option<anyhow::Error> {
        let id = match &done {
            Ok((id, _)) => *id,
            Err(join) => join.id(),
        };
        let actor = self.names.remove(&id).unwrap_or("unknown");
        match done {
            Ok((_, Ok(()))) => {
                if !self.cancel.is_cancelled() {
                    tracing::info!(
                        actor,
                        "actor finished with nothing left to do; the others keep running"
                    );
                }
                None
            }
            Ok((_, Err(error))) => {
                Some(anyhow::Error::new(error).context(format!("actor {actor} failed")))
            }
            Err(join) if join.is_panic() => {
                let payload = join.into_panic();
                let message = (payload.downcast_ref::<&str>().copied())
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("a non-text panic payload");
                Some(anyhow::anyhow!("actor {actor} panicked: {message}"))
            }
            // Aborted by `stop` after the grace period: already reported there.
            Err(_) => None,
        }
    }
}

/// The registrations whose GitHub credentials this process resolves.
///
/// Credentials stay with their owner: the poller and scheduler (central) need every
/// registration's; a tenant agent (provisioner/reaper for some tenants) needs only its own
/// tenants', because its reaper and sweeper deregister and list their runners on GitHub;
/// the webhook and the provisioner need none.
pub fn github_registrations(config: &Config) -> Vec<&registration::Registration> {
    (config.registrations().iter())
        .filter(|reg| actors::live::needs_github(config, reg))
        .collect()
}

/// The tenants whose cloud credentials this process resolves: those whose provisioner or
/// reaper runs here, and no others.
pub fn cloud_tenants(config: &Config) -> Vec<&Tenant> {
    if !(config.runs(Actor::Provisioner) || config.runs(Actor::Reaper)) {
        return Vec::new();
    }
    (config.tenants())
        .filter(|t| config.serves_tenant(&t.name))
        .collect()
}

/// The JIT sealing keys of this process.
///
/// - The scheduler seals to every tenant's `jit_public_key`.
/// - A provisioner opens with its tenants' `jit_private_key` (required when the tenant has a
///   public key; it must match it).
/// - A tenant with no key whose scheduler and provisioner both run here (all-in-one) gets a
///   key pair generated for this run, so sealing is on without any setup.
pub fn jit_keys(config: &Config) -> anyhow::Result<actors::JitKeys> {
    let mut keys = actors::JitKeys::default();
    let provisions_here =
        |t: &Tenant| config.runs(Actor::Provisioner) && config.serves_tenant(&t.name);
    for tenant in config.tenants() {
        let private = match &tenant.jit_private_key {
            Some(secret) if provisions_here(tenant) => {
                use secrecy::ExposeSecret as _;
                let text = secret
                    .resolve()
                    .with_context(|| format!("tenants.{}.jit_private_key", tenant.name))?;
                let key = bus_schema::JitPrivateKey::parse(text.expose_secret())
                    .with_context(|| format!("tenants.{}.jit_private_key", tenant.name))?;
                Some(key)
            }
            _ => None,
        };
        match (&tenant.jit_public_key, private) {
            (Some(public), Some(private)) => {
                anyhow::ensure!(
                    private.public_key() == *public,
                    "tenants.{}.jit_private_key does not match its jit_public_key",
                    tenant.name
                );
                keys.add_public(&tenant.name, public.clone());
                keys.add_private(&tenant.name, private);
            }
            (Some(public), None) => {
                anyhow::ensure!(
                    !provisions_here(tenant),
                    "tenants.{}.jit_private_key is required: this process provisions for the tenant and its JIT configs are sealed",
                    tenant.name
                );
                keys.add_public(&tenant.name, public.clone());
            }
            (None, private) => {
                if let Some(private) = private {
                    keys.add_public(&tenant.name, private.public_key());
                    keys.add_private(&tenant.name, private);
                } else if config.runs(Actor::Scheduler) && provisions_here(tenant) {
                    let private = bus_schema::JitPrivateKey::generate();
                    keys.add_public(&tenant.name, private.public_key());
                    keys.add_private(&tenant.name, private);
                } else if config.runs(Actor::Scheduler) {
                    tracing::warn!(tenant = %tenant.name, "tenant has no jit_public_key: its JIT configs travel in clear");
                }
            }
        }
    }
    Ok(keys)
}

/// Builds the providers of one tenant.
fn tenant_providers(
    config: &Config,
    tenant: &Tenant,
    opts: &StartOptions,
) -> anyhow::Result<Vec<(ProviderKind, Arc<dyn Provider>)>> {
    let controller_id = config.controller.id.clone();
    let mut out: Vec<(ProviderKind, Arc<dyn Provider>)> = Vec::new();
    for kind in tenant.providers.kinds() {
        let provider: Arc<dyn Provider> = match kind {
            ProviderKind::Local => {
                let local = tenant
                    .providers
                    .settings_as::<providers::local::LocalSettings>(kind)
                    .cloned()
                    .unwrap_or_default();
                let (program, args) = match (local.runner_command, &opts.local_runner) {
                    (Some(run_sh), _) => (run_sh, Vec::new()),
                    (None, Some(runner)) => (runner.program.clone(), runner.args.clone()),
                    (None, None) => anyhow::bail!(
                        "tenant {}: providers.local: runner_command is required (the path of \
                         an actions/runner run.sh)",
                        tenant.name
                    ),
                };
                Arc::new(providers::local::LocalProvider::new(
                    providers::local::LocalConfig {
                        controller_id: controller_id.clone(),
                        program,
                        args,
                        state_dir: opts.work_dir.join("local").join(&tenant.name),
                    },
                )?)
            }
            other => ::clouds::build(other, &controller_id, tenant)?,
        };
        out.push((kind, provider));
    }
    Ok(out)
}

/// How long `start` keeps trying to reach NATS (a server restarting, a cluster electing).
const CONNECT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// The NATS identity of this process: `[controller] nats_nkey_seed` or `nats_creds`,
/// resolved now, and the role its placement implies (see `shr_nats::security`): a process
/// with no scheduler, poller or webhook that serves exactly one tenant is that tenant's agent;
/// one that runs only the webhook is the webhook; anything else is central. `None` without
/// credentials (development: no authentication, the default inbox).
pub fn nats_identity(
    config: &Config,
) -> anyhow::Result<Option<(shr_nats::security::Role, shr_nats::Identity)>> {
    let c = &config.controller;
    let resolve = |secret: &Option<registration::SecretRef>, field: &str| {
        secret
            .as_ref()
            .map(|s| s.resolve())
            .transpose()
            .with_context(|| format!("controller.{field}"))
    };
    let nkey_seed = resolve(&c.nats_nkey_seed, "nats_nkey_seed")?;
    let creds = resolve(&c.nats_creds, "nats_creds")?;
    if nkey_seed.is_none() && creds.is_none() {
        return Ok(None);
    }
    let role = placement_role(config);
    let identity = shr_nats::Identity {
        nkey_seed,
        creds,
        inbox_prefix: Some(role.inbox_prefix()),
    };
    Ok(Some((role, identity)))
}

/// The role this process's placement implies (see [`nats_identity`]), credentials or not.
fn placement_role(config: &Config) -> shr_nats::security::Role {
    use shr_nats::security::Role;
    let c = &config.controller;
    let central = [Actor::Scheduler, Actor::Poller]
        .into_iter()
        .any(|a| config.runs(a));
    let agent_tenant = match &c.tenants {
        Some(tenants) if tenants.len() == 1 => tenants.iter().next(),
        _ => None,
    };
    match (central, config.runs(Actor::Webhook), agent_tenant) {
        (false, false, Some(tenant)) => Role::Agent(tenant.clone()),
        (false, true, _) if c.actors.len() == 1 => Role::Webhook,
        _ => Role::Central,
    }
}

/// Whether this process may read every job and runner record (the status mirror's watches,
/// stream info): true without NATS credentials or as `central`; a tenant agent or the
/// webhook under its own identity may not, and must not try (the server refuses, and says
/// so in the log every time).
pub fn reads_all_records(config: &Config) -> bool {
    let c = &config.controller;
    (c.nats_nkey_seed.is_none() && c.nats_creds.is_none())
        || placement_role(config) == shr_nats::security::Role::Central
}

/// Connects and sets the bus up, retrying for a minute. The central placement (or
/// a process without credentials) creates or updates streams and buckets; a tenant agent or
/// the webhook under its own identity only looks them up, as its grant allows.
pub async fn connect_bus(
    url: &str,
    holder: &str,
    config: &Config,
) -> anyhow::Result<shr_nats::Bus> {
    let identity = nats_identity(config)?;
    let creates = identity
        .as_ref()
        .is_none_or(|(role, _)| *role == shr_nats::security::Role::Central);
    let (role, identity) = match identity {
        Some((role, identity)) => (role.name(), identity),
        None => ("unauthenticated".to_owned(), shr_nats::Identity::default()),
    };
    let shown = shr_nats::redact_url(url);
    tracing::info!(url = %shown, identity = %role, creates, "connecting to NATS");
    let deadline = tokio::time::Instant::now() + CONNECT_PATIENCE;
    loop {
        let attempt = async {
            let client = shr_nats::connect_as(url, &format!("shr-{holder}"), &identity).await?;
            let options = shr_nats::BusOptions {
                replicas: config.controller.nats_replicas,
            };
            if creates {
                shr_nats::ensure_bus_with(&client, &options).await
            } else {
                shr_nats::lookup_bus_with(&client, &options).await
            }
        };
        match attempt.await {
            Ok(bus) => return Ok(bus),
            Err(error) if tokio::time::Instant::now() < deadline => {
                // Expected while a server (or the one `shr run` started) comes up; a fault
                // only once it lasts. The last failure is the error returned.
                if tokio::time::Instant::now() + CONNECT_PATIENCE / 2 < deadline {
                    tracing::debug!(url = %shown, %error, "NATS not ready; retrying");
                } else {
                    tracing::warn!(url = %shown, %error, "NATS still not ready; retrying");
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(error) => {
                return Err(error).with_context(|| format!("connecting to NATS at {shown}"));
            }
        }
    }
}

/// Connects to NATS, makes sure the streams and buckets exist, and starts the actors.
pub async fn start(config: Arc<Config>, mut opts: StartOptions) -> anyhow::Result<Running> {
    let bus = connect_bus(&opts.nats_url, &opts.holder_id, &config).await?;

    let mut github = BTreeMap::new();
    let shared = actors::live::shares_credentials(&config).then_some(&bus.jobs);
    for reg in github_registrations(&config) {
        github.insert(reg.name.clone(), actors::live::github_client(reg, shared)?);
    }
    let ctx = Context::new(config.clone(), bus.clone(), github).with_jit_keys(jit_keys(&config)?);

    let mut providers: ProviderSet = BTreeMap::new();
    for tenant in cloud_tenants(&config) {
        for (kind, provider) in tenant_providers(&config, tenant, &opts)? {
            providers.insert((tenant.name.clone(), kind), provider);
        }
    }

    let cancel = CancellationToken::new();
    let mut tasks = Actors::new(cancel.clone());
    // Live registrations (`shr registration apply`): a tenant agent reads its own, every
    // other process the whole bucket.
    let source = match nats_identity(&config)? {
        Some((shr_nats::security::Role::Agent(tenant), _)) => actors::live::Source::Tenant(tenant),
        _ => actors::live::Source::Watch,
    };
    {
        let (ctx, base, cancel) = (ctx.clone(), config.clone(), cancel.clone());
        let webhook = config.runs(Actor::Webhook);
        tasks.spawn(
            "registrations",
            actors::live::run(
                ctx,
                base,
                Arc::new(::clouds::Registry),
                source,
                webhook,
                cancel,
            ),
        );
    }
    let mut webhook_addr = None;
    let mut webhook_stats = None;
    if config.runs(Actor::Webhook) {
        let secret: SecretString = match &config.webhook.secret {
            Some(secret) => secret.resolve().context("webhook.secret")?,
            None => {
                anyhow::bail!("webhook.secret is required when this process runs the webhook actor")
            }
        };
        let mut own = BTreeMap::new();
        for reg in config.registrations() {
            if let Some(secret) = &reg.webhook_secret {
                let value = (secret.resolve())
                    .with_context(|| format!("registration {}: webhook_secret", reg.name))?;
                own.insert(reg.name.clone(), value);
            }
        }
        let routing: Arc<dyn actors::routing::Routing> = ctx.live.clone();
        let state = actors::webhook::WebhookState::new(secret, bus.clone(), routing)
            .with_registration_secrets(own)
            .with_live(ctx.live.clone());
        webhook_stats = Some(state.stats.clone());
        let router =
            actors::webhook::router(state, &config.webhook.path, config.webhook.max_body_bytes);
        let listener = match opts.webhook_listener.take() {
            Some(listener) => listener,
            None => std::net::TcpListener::bind(config.webhook.listen)
                .with_context(|| format!("binding the webhook to {}", config.webhook.listen))?,
        };
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        webhook_addr = Some(listener.local_addr()?);
        // `[webhook] tls`: serve HTTPS ourselves when no proxy terminates TLS.
        let tls = (config.webhook.tls.as_ref())
            .map(|tls| actors::tls::server_config(&tls.cert, &tls.key))
            .transpose()
            .context("webhook.tls")?;
        tracing::info!(addr = ?webhook_addr, path = %config.webhook.path, tls = tls.is_some(), "webhook listening");
        let cancel = cancel.clone();
        // Header/request timeouts and the request cap: see `actors::ingress`.
        let limits = actors::ingress::Limits::default();
        let router = actors::ingress::guard(router, &limits);
        tasks.spawn("webhook", async move {
            let shutdown = async move { cancel.cancelled().await };
            match tls {
                Some(tls) => {
                    let tls = actors::tls::TlsListener::new(listener, tls)
                        .map_err(|e| actors::Error::bus("webhook server", e))?;
                    actors::ingress::serve(tls, router, &limits, shutdown).await;
                }
                None => actors::ingress::serve(listener, router, &limits, shutdown).await,
            }
            Ok(())
        });
    }
    if config.runs(Actor::Poller) {
        let (ctx, holder, cancel) = (ctx.clone(), opts.holder_id.clone(), cancel.clone());
        tasks.spawn("poller", actors::poller::run(ctx, holder, cancel));
    }
    if config.runs(Actor::Scheduler) {
        let (sched_ctx, sched_cancel) = (ctx.clone(), cancel.clone());
        tasks.spawn("scheduler", actors::scheduler::run(sched_ctx, sched_cancel));
        // The warm pool (min_idle) refills under a lease per registration.
        let (pool_ctx, holder, pool_cancel) = (ctx.clone(), opts.holder_id.clone(), cancel.clone());
        tasks.spawn(
            "pool",
            actors::pool::run_pool(pool_ctx, holder, pool_cancel),
        );
    }
    if config.runs(Actor::Provisioner) && !providers.is_empty() {
        let (ctx, set, id, cancel) = (
            ctx.clone(),
            providers.clone(),
            config.controller.id.clone(),
            cancel.clone(),
        );
        tasks.spawn(
            "provisioner",
            actors::provisioner::run(ctx, set, id, cancel),
        );
    }
    if config.runs(Actor::Reaper) && !providers.is_empty() {
        let (reaper_ctx, set, reaper_cancel) = (ctx.clone(), providers.clone(), cancel.clone());
        tasks.spawn(
            "reaper",
            actors::reaper::run(reaper_ctx, set, reaper_cancel),
        );
        let (ctx, set, holder, cancel) = (
            ctx.clone(),
            providers.clone(),
            opts.holder_id.clone(),
            cancel.clone(),
        );
        let interval = opts.sweep_interval;
        tasks.spawn(
            "sweeper",
            actors::sweep::run_sweeper(ctx, set, holder, interval, cancel),
        );
    }
    Ok(Running {
        ctx,
        providers,
        webhook_addr,
        webhook_stats,
        actors: tasks,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// An actor that runs until cancelled, then takes `finish` to wrap up the message in hand
    /// and records that it did.
    fn until_cancelled(
        cancel: &CancellationToken,
        finish: Duration,
        finished: &Arc<AtomicBool>,
    ) -> impl Future<Output = Result<(), actors::Error>> + Send + 'static {
        let (cancel, finished) = (cancel.clone(), finished.clone());
        async move {
            cancel.cancelled().await;
            tokio::time::sleep(finish).await;
            finished.store(true, Ordering::SeqCst);
            Ok(())
        }
    }

    fn two_tenants(controller: &str) -> Config {
        let text = format!(
            r#"
[controller]
id = "test"
{controller}
[webhook]
secret = "env:HOOK"
[tenants.acme.providers.local]
[tenants.globex.providers.local]
[[registrations]]
name = "acme-org"
tenant = "acme"
scope = "org"
url = "https://github.com/acme"
auth = {{ pat = "env:ACME_PAT" }}
[[registrations]]
name = "globex-org"
tenant = "globex"
scope = "org"
url = "https://github.com/globex"
auth = {{ pat = "env:GLOBEX_PAT" }}
"#
        );
        Config::parse(&text, "test.toml", &::clouds::Registry).unwrap()
    }

    fn names<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        items.into_iter().collect()
    }

    #[test]
    fn a_tenant_agent_resolves_only_its_own_tenants_credentials() {
        let agent = two_tenants(
            r#"actors = ["provisioner", "reaper"]
tenants = ["acme"]"#,
        );
        let regs = github_registrations(&agent);
        assert_eq!(names(regs.iter().map(|r| r.name.as_str())), ["acme-org"]);
        let clouds = cloud_tenants(&agent);
        assert_eq!(names(clouds.iter().map(|t| t.name.as_str())), ["acme"]);

        // A provisioner alone talks to no GitHub at all.
        let provisioner = two_tenants(
            r#"actors = ["provisioner"]
tenants = ["acme"]"#,
        );
        assert!(github_registrations(&provisioner).is_empty());

        // The central placement needs every registration's GitHub credentials and no cloud's.
        let central = two_tenants(r#"actors = ["webhook", "poller", "scheduler"]"#);
        let regs = github_registrations(&central);
        assert_eq!(
            names(regs.iter().map(|r| r.name.as_str())),
            ["acme-org", "globex-org"]
        );
        assert!(cloud_tenants(&central).is_empty());

        // The webhook alone resolves nothing.
        let webhook = two_tenants(r#"actors = ["webhook"]"#);
        assert!(github_registrations(&webhook).is_empty());
        assert!(cloud_tenants(&webhook).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_actor_that_ends_normally_does_not_stop_the_others() {
        let cancel = CancellationToken::new();
        let mut actors = Actors::new(cancel.clone());
        let drained = Arc::new(AtomicBool::new(false));
        actors.spawn("poller", async { Ok(()) });
        actors.spawn(
            "scheduler",
            until_cancelled(&cancel, Duration::ZERO, &drained),
        );
        // Paused time: the poller's end is seen long before this fires.
        let failed = actors
            .watch(tokio::time::sleep(Duration::from_secs(3600)))
            .await;
        assert!(failed.is_none());
        assert!(!cancel.is_cancelled(), "nothing was stopped");
        assert_eq!(actors.tasks.len(), 1, "the scheduler still runs");
        actors.stop(Duration::from_secs(5)).await.unwrap();
        assert!(drained.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_actor_is_reported_with_its_cause_and_the_others_drain() {
        let cancel = CancellationToken::new();
        let mut actors = Actors::new(cancel.clone());
        let drained = Arc::new(AtomicBool::new(false));
        actors.spawn(
            "scheduler",
            until_cancelled(&cancel, Duration::from_secs(2), &drained),
        );
        actors.spawn("provisioner", async {
            let cause = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
            Err(actors::Error::bus("get stream", cause))
        });
        let failure = actors
            .watch(std::future::pending())
            .await
            .expect("the failure ends the wait");
        assert_eq!(
            report(&failure),
            "actor provisioner failed: get stream: refused"
        );
        let io = failure
            .chain()
            .find_map(|e| e.downcast_ref::<std::io::Error>())
            .expect("the cause is kept");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        // The scheduler finishes its message in hand within the grace.
        actors.stop(Duration::from_secs(5)).await.unwrap();
        assert!(drained.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_panicking_actor_is_a_failure_naming_it() {
        let mut actors = Actors::new(CancellationToken::new());
        actors.spawn("reaper", async { panic!("boom") });
        let failure = actors.watch(std::future::pending()).await.unwrap();
        assert_eq!(failure.to_string(), "actor reaper panicked: boom");
    }

    #[tokio::test(start_paused = true)]
    async fn stop_aborts_what_outlasts_the_grace_and_reports_late_failures() {
        let cancel = CancellationToken::new();
        let mut actors = Actors::new(cancel.clone());
        let (drained, stuck_done) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        actors.spawn(
            "scheduler",
            until_cancelled(&cancel, Duration::from_secs(1), &drained),
        );
        actors.spawn(
            "sweeper",
            until_cancelled(&cancel, Duration::from_secs(600), &stuck_done),
        );
        let started = tokio::time::Instant::now();
        actors.stop(Duration::from_secs(10)).await.unwrap();
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(10),
            "bounded by the grace"
        );
        assert!(drained.load(Ordering::SeqCst), "finished within the grace");
        assert!(!stuck_done.load(Ordering::SeqCst), "aborted at the grace");

        let cancel = CancellationToken::new();
        let mut actors = Actors::new(cancel.clone());
        let late = cancel.clone();
        actors.spawn("webhook", async move {
            late.cancelled().await;
            Err(actors::Error::bus("webhook server", "listener closed"))
        });
        let error = actors.stop(Duration::from_secs(10)).await.unwrap_err();
        assert_eq!(
            report(&error),
            "actor webhook failed: webhook server: listener closed"
        );
    }
}
