//! The validated configuration: controller placement, webhook listener, tenants with their
//! cloud accounts, and GitHub registrations with their defaults and limits.
//!
//! Guarantees: a [`Config`] exists only after every field was checked; [`Config::parse`]
//! reports all problems at once (syntax and type errors stop at the first, as TOML
//! deserialization cannot continue past them). Secrets are held as [`SecretRef`]s and
//! resolved later by whoever needs them, so validation needs no environment.
//! See `examples/*.toml` for a commented configuration.

mod raw;
mod validate;

pub(crate) use validate::scope_from_url;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use bus_schema::{Capabilities, Network, ProviderKind, Scope};
use serde::Deserialize;
use url::Url;

use crate::{ConfigError, ConfigErrors, ProviderSettings, SecretRef, SettingsRegistry};

/// The built-in provider when neither registration nor tenant names one.
pub const DEFAULT_PROVIDER: ProviderKind = ProviderKind::Local;
/// The built-in vCPU, in thousandths.
pub const DEFAULT_CPU_MILLIS: u32 = 1000;
/// The built-in memory, in MiB.
pub const DEFAULT_MEMORY_MIB: u32 = 2048;
/// The built-in runner image.
pub const DEFAULT_IMAGE: &str = "ghcr.io/actions/actions-runner:latest";
/// The runs-on label a registration accepts when it names none.
pub const DEFAULT_LABEL: &str = "serverless-hosted-runner";
/// GitHub's default runner group.
pub const DEFAULT_RUNNER_GROUP_ID: u64 = 1;
/// The largest vCPU (in thousandths) a job may ask for unless `limits.max_cpu` raises it:
/// cost is bounded by default, not by the largest shape a cloud happens to offer.
pub const DEFAULT_MAX_CPU_MILLIS: u32 = 4000;
/// The largest memory (MiB) a job may ask for unless `limits.max_memory` raises it.
pub const DEFAULT_MAX_MEMORY_MIB: u32 = 16 * 1024;

/// A whole configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    /// What this process runs.
    pub controller: Controller,
    /// The webhook listener.
    pub webhook: WebhookConfig,
    tenants: BTreeMap<String, Tenant>,
    registrations: Vec<Registration>,
}

/// `[controller]`: identity and placement of this process.
#[derive(Debug, Clone)]
pub struct Controller {
    /// Tag value put on every cloud instance this deployment creates. Required, and unique per
    /// deployment: the sweep deletes only cloud instances that carry it.
    pub id: String,
    /// The NATS server; `None` means start or choose a local one.
    pub nats_url: Option<Url>,
    /// The NATS nkey user seed (`SU…`) of this process's identity, by reference.
    pub nats_nkey_seed: Option<SecretRef>,
    /// A NATS `.creds` file (user JWT and seed) of this process's identity, by reference.
    pub nats_creds: Option<SecretRef>,
    /// The actors this process runs (default: all).
    pub actors: BTreeSet<Actor>,
    /// The tenants whose provisioner and reaper run here; `None` means all.
    pub tenants: Option<BTreeSet<String>>,
    /// Working directory for local state (local runners, logs).
    pub work_dir: Option<PathBuf>,
    /// Where `/metrics`, `/healthz`, `/readyz` and the status page are served; `None` means
    /// a free port on 127.0.0.1, printed at start-up.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// One kind of actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    Webhook,
    Poller,
    Scheduler,
    Provisioner,
    Reaper,
}

impl Actor {
    /// Every actor, in pipeline order.
    pub const ALL: [Actor; 5] = [
        Actor::Webhook,
        Actor::Poller,
        Actor::Scheduler,
        Actor::Provisioner,
        Actor::Reaper,
    ];

    /// The actor's name in configuration and logs.
    pub fn name(self) -> &'static str {
        match self {
            Actor::Webhook => "webhook",
            Actor::Poller => "poller",
            Actor::Scheduler => "scheduler",
            Actor::Provisioner => "provisioner",
            Actor::Reaper => "reaper",
        }
    }
}

/// `[webhook]`: where GitHub deliveries arrive.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Listen address (default `0.0.0.0:8080`).
    pub listen: SocketAddr,
    /// Request path (default `/webhook`).
    pub path: String,
    /// The HMAC secret shared with GitHub; required when this process runs the webhook actor
    /// and a registration uses webhook detection.
    pub secret: Option<SecretRef>,
    /// TLS certificate and key (PEM files); plain HTTP when absent.
    pub tls: Option<Tls>,
    /// Largest accepted body (default 1 MiB).
    pub max_body_bytes: usize,
}

/// A certificate and its key.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[tenants.<name>]`: a unit of isolation and billing.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// The tenant name (subject token, part of runner names).
    pub name: String,
    /// Billing labels put on every instance of this tenant.
    pub charge_labels: Vec<String>,
    /// Defaults under the registration's.
    pub defaults: Defaults,
    /// The cloud accounts the tenant's runners may use.
    pub providers: Providers,
    /// `jit_public_key`: the scheduler seals this tenant's JIT configs to it.
    pub jit_public_key: Option<bus_schema::JitPublicKey>,
    /// `jit_private_key`: opens them; set only in the tenant agent's configuration.
    pub jit_private_key: Option<SecretRef>,
}

/// Defaults for a runner spec (tenant or registration level); `None` falls through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Defaults {
    pub provider: Option<ProviderKind>,
    pub cpu_millis: Option<u32>,
    pub memory_mib: Option<u32>,
    pub image: Option<String>,
    pub network: Network,
    pub runner_group_id: Option<u64>,
    pub dind: Option<bool>,
    pub max_runtime_secs: Option<u64>,
}

/// `[tenants.<name>.providers]`: one optional section per provider, each parsed and
/// validated by the cloud's own settings type (see [`crate::SettingsRegistry`]).
#[derive(Debug, Clone, Default)]
pub struct Providers {
    sections: BTreeMap<ProviderKind, Arc<dyn ProviderSettings>>,
}

impl Providers {
    /// The configured providers, in [`ProviderKind::ALL`] order.
    pub fn kinds(&self) -> Vec<ProviderKind> {
        ProviderKind::ALL
            .into_iter()
            .filter(|k| self.has(*k))
            .collect()
    }

    /// Whether `kind` has a section.
    pub fn has(&self, kind: ProviderKind) -> bool {
        self.sections.contains_key(&kind)
    }

    /// The settings of `kind`'s section.
    pub fn settings(&self, kind: ProviderKind) -> Option<&dyn ProviderSettings> {
        self.sections.get(&kind).map(|s| &**s)
    }

    /// The settings of `kind`'s section as the cloud's concrete type; `None` when there is
    /// no section or it is of another type.
    pub fn settings_as<T: ProviderSettings>(&self, kind: ProviderKind) -> Option<&T> {
        let settings: &dyn std::any::Any = self.settings(kind)?;
        settings.downcast_ref::<T>()
    }

    /// Adds (or replaces) the section of `kind`.
    pub fn insert(&mut self, kind: ProviderKind, settings: Arc<dyn ProviderSettings>) {
        self.sections.insert(kind, settings);
    }

    /// The provider's region (Alibaba region, Azure location, GCP region), if it has one.
    pub fn region(&self, kind: ProviderKind) -> Option<&str> {
        self.settings(kind)?.region()
    }

    /// What `kind` can host for this tenant; `None` when the tenant has no section for it.
    pub fn capabilities(&self, kind: ProviderKind) -> Option<Capabilities> {
        Some(self.settings(kind)?.capabilities())
    }

    /// The network defaults the sections provide, field by field from the first section
    /// (in [`ProviderKind::ALL`] order) that sets it.
    pub fn default_network(&self) -> Network {
        let mut network = Network::default();
        for kind in self.kinds() {
            let Some(settings) = self.settings(kind) else {
                continue;
            };
            let n = settings.default_network();
            network.vswitch = network.vswitch.or(n.vswitch);
            network.security_group = network.security_group.or(n.security_group);
            network.subnet = network.subnet.or(n.subnet);
        }
        network
    }
}

/// The `scope` key of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    Repo,
    Org,
    Enterprise,
}

/// How a registration learns about jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Detection {
    #[serde(rename = "webhook")]
    Webhook,
    #[serde(rename = "poll")]
    Poll,
    #[serde(rename = "webhook+poll")]
    WebhookAndPoll,
}

impl Detection {
    /// Whether webhook deliveries are expected.
    pub fn uses_webhook(self) -> bool {
        matches!(self, Detection::Webhook | Detection::WebhookAndPoll)
    }

    /// Whether the poller polls this registration.
    pub fn uses_poll(self) -> bool {
        matches!(self, Detection::Poll | Detection::WebhookAndPoll)
    }

    /// The name used in configuration.
    pub fn name(self) -> &'static str {
        match self {
            Detection::Webhook => "webhook",
            Detection::Poll => "poll",
            Detection::WebhookAndPoll => "webhook+poll",
        }
    }
}

/// How the controller authenticates to GitHub for a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// A personal access token.
    Pat { token: SecretRef },
    /// A GitHub App installation.
    App {
        app_id: u64,
        installation_id: u64,
        private_key: SecretRef,
    },
}

/// `[registrations.limits]`: what a workflow author may ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub min_idle: u32,
    pub max_runners: u32,
    /// `max_cpu`, or [`DEFAULT_MAX_CPU_MILLIS`] when unset.
    pub max_cpu_millis: u32,
    /// `max_memory`, or [`DEFAULT_MAX_MEMORY_MIB`] when unset.
    pub max_memory_mib: u32,
    /// Image refs (`ghcr.io/acme/runner:*`) or tag patterns (`2.3*`); a trailing `*` is a
    /// prefix match. Empty: only the default image.
    pub allowed_images: Vec<String>,
    pub allowed_vswitches: Vec<String>,
    pub allowed_security_groups: Vec<String>,
    pub allowed_subnets: Vec<String>,
    pub allowed_buckets: Vec<String>,
    pub idle_timeout_secs: u64,
    pub max_runtime_secs: u64,
    pub max_attempts: u32,
}

/// `[[registrations]]`: one GitHub scope owned by one tenant.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Unique name (same syntax as tenant names).
    pub name: String,
    /// The owning tenant.
    pub tenant: String,
    /// The GitHub web URL of the scope.
    pub url: Url,
    /// Org scope only: the repositories served (empty: all).
    pub repos: Vec<String>,
    pub auth: Auth,
    /// Accepted runs-on labels.
    pub labels: Vec<String>,
    pub charge_labels: Vec<String>,
    pub detection: Detection,
    /// Poll period; `None` when detection is webhook only.
    pub poll_interval_secs: Option<u64>,
    /// JIT config requests per minute this registration may make.
    pub jit_per_minute: u32,
    /// The registration's own webhook secret; `None` uses `[webhook] secret`. When set, only
    /// deliveries signed with it reach this registration.
    pub webhook_secret: Option<SecretRef>,
    pub defaults: Defaults,
    pub limits: Limits,
    scope: Scope,
    api_url: Url,
}

impl Registration {
    /// The GitHub scope.
    pub fn scope(&self) -> Scope {
        self.scope.clone()
    }

    /// The REST API base URL (`https://api.github.com` or `https://HOST/api/v3`, or the override).
    pub fn api_url(&self) -> Url {
        self.api_url.clone()
    }

    /// The web host (with `:port` when the URL has one), e.g. `github.com`.
    pub fn host(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        match self.url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    fn host_matches(&self, host: &str) -> bool {
        let bare = self.url.host_str().unwrap_or_default();
        host.eq_ignore_ascii_case(bare) || host.eq_ignore_ascii_case(&self.host())
    }

    /// How specifically this registration covers a job: 3 repo, 2 org, 1 enterprise.
    fn specificity(
        &self,
        repo_full_name: &str,
        org: Option<&str>,
        enterprise: Option<&str>,
    ) -> Option<u8> {
        let (owner, repo) = repo_full_name.split_once('/')?;
        match &self.scope {
            Scope::Repo { owner: o, repo: r } => {
                (o.eq_ignore_ascii_case(owner) && r.eq_ignore_ascii_case(repo)).then_some(3)
            }
            Scope::Org { org: o } => {
                let same_org = o.eq_ignore_ascii_case(org.unwrap_or(owner));
                let listed = self.repos.is_empty()
                    || self.repos.iter().any(|r| r.eq_ignore_ascii_case(repo));
                (same_org && listed).then_some(2)
            }
            Scope::Enterprise { enterprise: e } => enterprise
                .is_some_and(|x| x.eq_ignore_ascii_case(e))
                .then_some(1),
        }
    }
}

impl Config {
    /// Reads and validates a configuration file; `registry` parses the provider sections.
    pub fn load(path: &Path, registry: &dyn SettingsRegistry) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            errors: vec![ConfigError {
                file: file.clone(),
                field: "(file)".into(),
                reason: format!("cannot read: {e}"),
            }],
        })?;
        Config::parse(&text, &file, registry)
    }

    /// Parses and validates configuration text; `file` names it in errors and `registry`
    /// parses the provider sections.
    pub fn parse(
        text: &str,
        file: &str,
        registry: &dyn SettingsRegistry,
    ) -> Result<Config, ConfigErrors> {
        let raw = validate::deserialize(text, file)?;
        validate::validate(raw, file, &validate::Context { text, registry })
    }

    /// Every registration, in file order.
    pub fn registrations(&self) -> &[Registration] {
        &self.registrations
    }

    /// The registration called `name`.
    pub fn registration(&self, name: &str) -> Option<&Registration> {
        self.registrations.iter().find(|r| r.name == name)
    }

    /// Every tenant, by name.
    pub fn tenants(&self) -> impl Iterator<Item = &Tenant> {
        self.tenants.values()
    }

    /// The tenant called `name`.
    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.get(name)
    }

    /// Whether this process runs `actor`.
    pub fn runs(&self, actor: Actor) -> bool {
        self.controller.actors.contains(&actor)
    }

    /// Whether this process runs provisioner/reaper for `tenant`.
    pub fn serves_tenant(&self, tenant: &str) -> bool {
        self.controller
            .tenants
            .as_ref()
            .is_none_or(|t| t.contains(tenant))
    }

    /// The registration a job belongs to: the most specific match (repo > org, respecting
    /// `repos` > enterprise) on the GitHub web `host`; file order breaks ties. `org`
    /// defaults to the repository owner.
    pub fn registration_for_job(
        &self,
        host: &str,
        repo_full_name: &str,
        org: Option<&str>,
        enterprise: Option<&str>,
    ) -> Option<&Registration> {
        self.registrations_for_job(host, repo_full_name, org, enterprise)
            .into_iter()
            .next()
    }

    /// Every registration covering a job, most specific first. Several registrations may
    /// cover one scope with disjoint labels (one per tenant); the caller admits the job
    /// against each in turn.
    pub fn registrations_for_job(
        &self,
        host: &str,
        repo_full_name: &str,
        org: Option<&str>,
        enterprise: Option<&str>,
    ) -> Vec<&Registration> {
        let mut found: Vec<(u8, &Registration)> = self
            .registrations
            .iter()
            .filter(|r| r.host_matches(host))
            .filter_map(|r| Some((r.specificity(repo_full_name, org, enterprise)?, r)))
            .collect();
        found.sort_by_key(|(s, _)| std::cmp::Reverse(*s));
        found.into_iter().map(|(_, r)| r).collect()
    }

    /// A one-screen, secret-free summary for `shr registration check`.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let c = &self.controller;
        let actors: Vec<&str> = c.actors.iter().map(|a| a.name()).collect();
        let _ = writeln!(
            out,
            "controller {}: actors {}; tenants {}; nats {}{}",
            c.id,
            actors.join(", "),
            c.tenants.as_ref().map_or("all".into(), |t| t
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")),
            c.nats_url.as_ref().map_or("local".into(), Url::to_string),
            match (&c.nats_nkey_seed, &c.nats_creds) {
                (Some(seed), _) => format!(" (nkey {seed})"),
                (None, Some(creds)) => format!(" (creds {creds})"),
                (None, None) => String::new(),
            },
        );
        if self.runs(Actor::Webhook) {
            let w = &self.webhook;
            let _ = writeln!(
                out,
                "webhook {}{} ({}, secret {})",
                w.listen,
                w.path,
                if w.tls.is_some() { "https" } else { "http" },
                w.secret
                    .as_ref()
                    .map_or("none".into(), SecretRef::to_string),
            );
        }
        for t in self.tenants.values() {
            let providers: Vec<String> = t
                .providers
                .kinds()
                .into_iter()
                .map(|k| match t.providers.region(k) {
                    Some(region) => format!("{k} ({region})"),
                    None => k.to_string(),
                })
                .collect();
            let sealing = match (&t.jit_public_key, &t.jit_private_key) {
                (Some(_), Some(key)) => format!("sealed (private key {key})"),
                (Some(_), None) => "sealed".to_owned(),
                (None, _) => "in clear unless generated (all-in-one)".to_owned(),
            };
            let _ = writeln!(
                out,
                "tenant {}: providers {}; JIT configs {}",
                t.name,
                providers.join(", "),
                sealing
            );
            for r in self.registrations.iter().filter(|r| r.tenant == t.name) {
                let poll = match (&r.scope, r.poll_interval_secs) {
                    (Scope::Enterprise { .. }, _) => {
                        " (enterprise: not polled, depends on webhooks)".to_owned()
                    }
                    (_, Some(s)) => format!(" every {s}s"),
                    (_, None) => String::new(),
                };
                let auth = match &r.auth {
                    Auth::Pat { token } => format!("pat {token}"),
                    Auth::App { app_id, .. } => format!("app {app_id}"),
                };
                let _ = writeln!(
                    out,
                    "  registration {}: {} {} ({}), detection {}{}, labels [{}], {}",
                    r.name,
                    r.scope.api_prefix(),
                    r.url,
                    r.api_url,
                    r.detection.name(),
                    poll,
                    r.labels.join(", "),
                    auth,
                );
                let _ = writeln!(
                    out,
                    "    limits: max_runners {}, max_cpu {} vCPU, max_memory {} GiB",
                    r.limits.max_runners,
                    crate::labels::thousandths(r.limits.max_cpu_millis),
                    crate::labels::thousandths(r.limits.max_memory_mib * 1000 / 1024),
                );
            }
        }
        out
    }
}
