//! Starts the actors a configuration places in this process, and stops them together.
//!
//! Placement is configuration only: `[controller] actors` picks the actors and
//! `[controller] tenants` the tenants whose provisioners and reapers run here. The same code
//! runs all-in-one, distributed and centralized deployments.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

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
    /// The program local runners run (`shr sim runner` unless a tenant names a `run.sh`).
    pub runner_program: PathBuf,
    /// A listener already bound for the webhook (the demo binds port 0 first).
    pub webhook_listener: Option<std::net::TcpListener>,
    /// How often the reaper sweeps for orphans and timeouts.
    pub sweep_interval: std::time::Duration,
}

/// The running actors of this process.
#[derive(Debug)]
pub struct Running {
    pub ctx: Context,
    pub providers: ProviderSet,
    pub webhook_addr: Option<SocketAddr>,
    pub webhook_stats: Option<Arc<actors::webhook::WebhookStats>>,
    cancel: CancellationToken,
    tasks: tokio::task::JoinSet<(&'static str, Result<(), actors::Error>)>,
}

impl Running {
    /// Stops every actor and waits for them.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        while let Some(done) = self.tasks.join_next().await {
            if let Ok((actor, Err(error))) = done {
                tracing::warn!(actor, %error, "actor ended with an error");
            }
        }
    }

    /// Waits until an actor stops on its own (an error) or `shutdown` fires.
    pub async fn wait(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        tokio::select! {
            () = shutdown => {}
            Some(done) = self.tasks.join_next() => {
                if let Ok((actor, Err(error))) = done {
                    tracing::error!(actor, %error, "actor failed; stopping");
                }
            }
        }
        self.stop().await;
        Ok(())
    }
}

/// Resolves a registration's credentials into a GitHub client.
fn github_client(reg: &registration::Registration) -> anyhow::Result<github_client::GitHubClient> {
    let auth = match &reg.auth {
        registration::Auth::Pat { token } => github_client::Auth::Pat(
            token
                .resolve()
                .with_context(|| format!("registration {}: auth.pat", reg.name))?,
        ),
        registration::Auth::App {
            app_id,
            installation_id,
            private_key,
        } => github_client::Auth::App {
            app_id: *app_id,
            installation_id: *installation_id,
            private_key_pem: private_key
                .resolve()
                .with_context(|| format!("registration {}: auth.private_key", reg.name))?,
        },
    };
    let options = github_client::ClientOptions {
        jit_per_minute: reg.jit_per_minute,
        ..Default::default()
    };
    github_client::GitHubClient::new(reg.api_url(), auth, options)
        .with_context(|| format!("registration {}: GitHub client", reg.name))
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
                let (program, args) = match local.runner_command {
                    Some(run_sh) => (run_sh, Vec::new()),
                    None => (
                        opts.runner_program.clone(),
                        vec!["sim".into(), "runner".into()],
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
fn nats_identity(
    config: &Config,
) -> anyhow::Result<Option<(shr_nats::security::Role, shr_nats::Identity)>> {
    use shr_nats::security::Role;
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
    let central = [Actor::Scheduler, Actor::Poller]
        .into_iter()
        .any(|a| config.runs(a));
    let agent_tenant = match &c.tenants {
        Some(tenants) if tenants.len() == 1 => tenants.iter().next(),
        _ => None,
    };
    let role = match (central, config.runs(Actor::Webhook), agent_tenant) {
        (false, false, Some(tenant)) => Role::Agent(tenant.clone()),
        (false, true, _) if c.actors.len() == 1 => Role::Webhook,
        _ => Role::Central,
    };
    let identity = shr_nats::Identity {
        nkey_seed,
        creds,
        inbox_prefix: Some(role.inbox_prefix()),
    };
    Ok(Some((role, identity)))
}

/// Connects and sets the bus up, retrying for [`CONNECT_PATIENCE`]. The central placement (or
/// a process without credentials) creates or updates streams and buckets; a tenant agent or
/// the webhook under its own identity only looks them up, as its grant allows.
async fn connect_bus(url: &str, holder: &str, config: &Config) -> anyhow::Result<shr_nats::Bus> {
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
            if creates {
                shr_nats::ensure_bus(&client).await
            } else {
                shr_nats::lookup_bus(&client).await
            }
        };
        match attempt.await {
            Ok(bus) => return Ok(bus),
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(url = %shown, %error, "NATS not ready; retrying");
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
    for reg in config.registrations() {
        github.insert(reg.name.clone(), github_client(reg)?);
    }
    let ctx = Context::new(config.clone(), bus.clone(), github);

    let mut providers: ProviderSet = BTreeMap::new();
    if config.runs(Actor::Provisioner) || config.runs(Actor::Reaper) {
        for tenant in config.tenants().filter(|t| config.serves_tenant(&t.name)) {
            for (kind, provider) in tenant_providers(&config, tenant, &opts)? {
                providers.insert((tenant.name.clone(), kind), provider);
            }
        }
    }

    let cancel = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut webhook_addr = None;
    let mut webhook_stats = None;
    if config.runs(Actor::Webhook) {
        let secret: SecretString = match &config.webhook.secret {
            Some(secret) => secret.resolve().context("webhook.secret")?,
            None => {
                anyhow::bail!("webhook.secret is required when this process runs the webhook actor")
            }
        };
        let state = actors::webhook::WebhookState::new(secret, bus.clone(), config.clone());
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
        tasks.spawn(async move {
            let shutdown = async move { cancel.cancelled().await };
            let served = match tls {
                Some(tls) => match actors::tls::TlsListener::new(listener, tls) {
                    Ok(tls) => {
                        axum::serve(tls, router)
                            .with_graceful_shutdown(shutdown)
                            .await
                    }
                    Err(error) => Err(error),
                },
                None => {
                    axum::serve(listener, router)
                        .with_graceful_shutdown(shutdown)
                        .await
                }
            }
            .map_err(|e| actors::Error::bus("webhook server", e));
            ("webhook", served)
        });
    }
    if config.runs(Actor::Poller) {
        let (ctx, holder, cancel) = (ctx.clone(), opts.holder_id.clone(), cancel.clone());
        tasks.spawn(async move { ("poller", actors::poller::run(ctx, holder, cancel).await) });
    }
    if config.runs(Actor::Scheduler) {
        let (sched_ctx, sched_cancel) = (ctx.clone(), cancel.clone());
        tasks.spawn(async move {
            (
                "scheduler",
                actors::scheduler::run(sched_ctx, sched_cancel).await,
            )
        });
        // The warm pool (min_idle) refills under a lease per registration.
        let (pool_ctx, holder, pool_cancel) = (ctx.clone(), opts.holder_id.clone(), cancel.clone());
        tasks.spawn(async move {
            (
                "pool",
                actors::pool::run_pool(pool_ctx, holder, pool_cancel).await,
            )
        });
    }
    if config.runs(Actor::Provisioner) && !providers.is_empty() {
        let (ctx, set, id, cancel) = (
            ctx.clone(),
            providers.clone(),
            config.controller.id.clone(),
            cancel.clone(),
        );
        tasks.spawn(async move {
            (
                "provisioner",
                actors::provisioner::run(ctx, set, id, cancel).await,
            )
        });
    }
    if config.runs(Actor::Reaper) && !providers.is_empty() {
        let (reaper_ctx, set, reaper_cancel) = (ctx.clone(), providers.clone(), cancel.clone());
        tasks.spawn(async move {
            (
                "reaper",
                actors::reaper::run(reaper_ctx, set, reaper_cancel).await,
            )
        });
        let (ctx, set, holder, cancel) = (
            ctx.clone(),
            providers.clone(),
            opts.holder_id.clone(),
            cancel.clone(),
        );
        let interval = opts.sweep_interval;
        tasks.spawn(async move {
            (
                "sweeper",
                actors::sweep::run_sweeper(ctx, set, holder, interval, cancel).await,
            )
        });
    }
    Ok(Running {
        ctx,
        providers,
        webhook_addr,
        webhook_stats,
        cancel,
        tasks,
    })
}
