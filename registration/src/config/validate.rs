//! Turns the raw TOML shape into a [`Config`], collecting every problem on the way.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use bus_schema::{Network, ProviderKind, Scope};
use toml::Spanned;
use url::Url;

use super::{
    Actor, Auth, Config, Controller, DEFAULT_LABEL, Defaults, Detection, Limits, Providers,
    Registration, ScopeKind, Tenant, Tls, WebhookConfig, raw::*,
};
use crate::{
    ConfigError, ConfigErrors, SecretRef, SettingsRegistry,
    error::Collector,
    labels::{self, Label},
    syntax,
};

/// Reads TOML into the raw shape; a syntax or type error names its field and line.
pub(super) fn deserialize(text: &str, file: &str) -> Result<RawConfig, ConfigErrors> {
    let line_of = |span: Option<std::ops::Range<usize>>| {
        span.map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
    };
    let fail = |field: String, message: &str, line: Option<usize>| {
        let reason = match line {
            Some(line) => format!("{} (line {line})", message.trim_end()),
            None => message.trim_end().to_owned(),
        };
        ConfigErrors {
            errors: vec![ConfigError {
                file: file.to_owned(),
                field,
                reason,
            }],
        }
    };
    let de = toml::Deserializer::parse(text)
        .map_err(|e| fail("(syntax)".into(), e.message(), line_of(e.span())))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "(document)".into()
        } else {
            path
        };
        fail(field, e.inner().message(), line_of(e.inner().span()))
    })
}

/// What validation needs besides the raw shape: the text (for line numbers) and the
/// registry that parses provider sections.
pub(super) struct Context<'a> {
    pub text: &'a str,
    pub registry: &'a dyn SettingsRegistry,
}

impl Context<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }
}

pub(super) fn validate(
    raw: RawConfig,
    file: &str,
    ctx: &Context<'_>,
) -> Result<Config, ConfigErrors> {
    let mut c = Collector::new(file);
    let tenants: BTreeMap<String, Tenant> = raw
        .tenants
        .into_iter()
        .map(|(name, t)| {
            let tenant = tenant(&mut c, &name, t, ctx);
            (name, tenant)
        })
        .collect();
    if tenants.is_empty() {
        c.push(
            "tenants",
            "at least one [tenants.<name>] section is required",
        );
    }
    let indexed: Vec<(usize, Registration)> = raw
        .registrations
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, registration(&mut c, i, r, &tenants)?)))
        .collect();
    check_registrations(&mut c, &indexed);
    let registrations: Vec<Registration> = indexed.into_iter().map(|(_, r)| r).collect();
    let controller = controller(&mut c, raw.controller, &tenants);
    let needs_secret = controller.actors.contains(&Actor::Webhook)
        && registrations.iter().any(|r| r.detection.uses_webhook());
    let webhook = webhook(&mut c, raw.webhook, needs_secret);
    c.finish(Config {
        controller,
        webhook,
        tenants,
        registrations,
    })
}

fn secret(c: &mut Collector, field: String, value: &str) -> Option<SecretRef> {
    c.check(field, value.parse::<SecretRef>())
}

fn url(c: &mut Collector, field: String, value: &str, schemes: &[&str]) -> Option<Url> {
    let parsed = Url::parse(value).map_err(|e| format!("`{value}` is not a URL: {e}"));
    let parsed = parsed.and_then(|u| {
        if schemes.contains(&u.scheme()) && u.host_str().is_some() {
            Ok(u)
        } else {
            Err(format!(
                "`{value}` must be a {} URL with a host",
                schemes.join("/")
            ))
        }
    });
    c.check(field, parsed)
}

/// `controller.nats_url`: a NATS URL without user information. Credentials come from
/// `nats_nkey_seed` or `nats_creds`, so they never show up in summaries, logs or errors; a
/// URL carrying them is refused without echoing it.
fn nats_url(c: &mut Collector, value: &str) -> Option<Url> {
    let field = "controller.nats_url";
    let host_part = value.split_once("://").map_or(value, |(_, rest)| rest);
    let host_part = host_part.split(['/', '?', '#']).next().unwrap_or_default();
    if host_part.contains('@') {
        c.push(
            field,
            "must not carry a user, password or token (`user:pass@`); give the credentials \
             by reference in controller.nats_nkey_seed or controller.nats_creds",
        );
        return None;
    }
    url(c, field.into(), value, &["nats", "tls", "ws", "wss"])
}

fn http_url(c: &mut Collector, field: String, value: Option<&str>) -> Option<Url> {
    url(c, field, value?, &["https", "http"])
}

fn controller(
    c: &mut Collector,
    raw: RawController,
    tenants: &BTreeMap<String, Tenant>,
) -> Controller {
    // No default: two deployments sharing a cloud account under one id would sweep each
    // other's runners.
    let id = match raw.id {
        Some(id) => {
            c.check("controller.id", syntax::name(&id));
            id
        }
        None => {
            c.push(
                "controller.id",
                "is required: a name unique to this deployment (every cloud instance is tagged \
                 with it, and the sweep deletes only instances that carry it)",
            );
            String::new()
        }
    };
    let nats_url = raw.nats_url.and_then(|u| nats_url(c, &u));
    let nats_nkey_seed = raw
        .nats_nkey_seed
        .and_then(|s| secret(c, "controller.nats_nkey_seed".into(), &s));
    let nats_creds = raw
        .nats_creds
        .and_then(|s| secret(c, "controller.nats_creds".into(), &s));
    if nats_nkey_seed.is_some() && nats_creds.is_some() {
        c.push(
            "controller.nats_creds",
            "give either nats_nkey_seed or nats_creds, not both",
        );
    }
    let actors: BTreeSet<Actor> = match raw.actors {
        Some(a) if a.is_empty() => {
            c.push(
                "controller.actors",
                "must name at least one actor (or be left out for all)",
            );
            BTreeSet::new()
        }
        Some(a) => a.into_iter().collect(),
        None => Actor::ALL.into_iter().collect(),
    };
    let served = raw.tenants.map(|names| {
        for (i, name) in names.iter().enumerate() {
            if !tenants.contains_key(name) {
                c.push(
                    format!("controller.tenants[{i}]"),
                    format!("unknown tenant `{name}`"),
                );
            }
        }
        names.into_iter().collect()
    });
    let metrics_listen = raw.metrics_listen.and_then(|a| match a.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            c.push(
                "controller.metrics_listen",
                format!("`{a}` is not an address and port (like 127.0.0.1:9464)"),
            );
            None
        }
    });
    Controller {
        id,
        nats_url,
        nats_nkey_seed,
        nats_creds,
        actors,
        tenants: served,
        work_dir: raw.work_dir,
        metrics_listen,
    }
}

/// `[webhook] tls = { cert, key }` (documented) or the older `tls_cert` / `tls_key`; one
/// spelling, both halves.
fn webhook_tls(
    c: &mut Collector,
    table: Option<RawTls>,
    tls_cert: Option<std::path::PathBuf>,
    tls_key: Option<std::path::PathBuf>,
) -> Option<Tls> {
    let (cert, key, cert_field, key_field) = match table {
        Some(_) if tls_cert.is_some() || tls_key.is_some() => {
            c.push(
                "webhook.tls",
                "set either `tls = { cert = …, key = … }` or the older `tls_cert`/`tls_key`, not both",
            );
            return None;
        }
        Some(t) => (t.cert, t.key, "webhook.tls.cert", "webhook.tls.key"),
        None => (tls_cert, tls_key, "webhook.tls_cert", "webhook.tls_key"),
    };
    match (cert, key) {
        (Some(cert), Some(key)) => Some(Tls { cert, key }),
        (None, None) if cert_field == "webhook.tls.cert" => {
            c.push("webhook.tls", "needs `cert` and `key` (PEM file paths)");
            None
        }
        (None, None) => None,
        (Some(_), None) => {
            c.push(key_field, "required with the certificate");
            None
        }
        (None, Some(_)) => {
            c.push(cert_field, "required with the key");
            None
        }
    }
}

fn webhook(c: &mut Collector, raw: RawWebhook, needs_secret: bool) -> WebhookConfig {
    let listen_text = raw.listen.unwrap_or_else(|| "0.0.0.0:8080".into());
    let listen = c
        .check(
            "webhook.listen",
            listen_text
                .parse()
                .map_err(|_| format!("`{listen_text}` is not a socket address like 0.0.0.0:8080")),
        )
        .unwrap_or_else(|| ([0, 0, 0, 0], 8080).into());
    let path = raw.path.unwrap_or_else(|| "/webhook".into());
    if !path.starts_with('/') || path.contains(char::is_whitespace) {
        c.push(
            "webhook.path",
            format!("`{path}` must start with `/` and contain no spaces"),
        );
    }
    let given = raw.secret.is_some();
    let secret = raw
        .secret
        .and_then(|s| secret(c, "webhook.secret".into(), &s));
    if needs_secret && !given {
        c.push(
            "webhook.secret",
            "required: a registration uses webhook detection (set env:NAME or file:PATH)",
        );
    }
    let tls = webhook_tls(c, raw.tls, raw.tls_cert, raw.tls_key);
    let max_body_bytes = raw.max_body_bytes.unwrap_or(1 << 20);
    let max_body_bytes = match usize::try_from(max_body_bytes) {
        Ok(n) if (1024..=(64 << 20)).contains(&n) => n,
        _ => {
            c.push(
                "webhook.max_body_bytes",
                "must be between 1024 and 67108864",
            );
            1 << 20
        }
    };
    WebhookConfig {
        listen,
        path,
        secret,
        tls,
        max_body_bytes,
    }
}

fn tenant(c: &mut Collector, name: &str, raw: RawTenant, ctx: &Context<'_>) -> Tenant {
    let at = format!("tenants.{name}");
    c.check(at.clone(), syntax::name(name));
    charge_labels(c, &format!("{at}.charge_labels"), &raw.charge_labels);
    let providers = providers(c, &format!("{at}.providers"), raw.providers, ctx);
    let defaults = defaults(c, &format!("{at}.defaults"), raw.defaults);
    if providers.kinds().is_empty() {
        c.push(
            format!("{at}.providers"),
            "configure at least one provider, e.g. [tenants.NAME.providers.local]",
        );
    }
    if let Some(p) = defaults.provider
        && !providers.has(p)
    {
        c.push(
            format!("{at}.defaults.provider"),
            format!("`{p}` has no [{at}.providers.{p}] section"),
        );
    }
    let jit_public_key = raw.jit_public_key.and_then(|key| {
        c.check(
            format!("{at}.jit_public_key"),
            bus_schema::JitPublicKey::parse(&key).map_err(|e| e.to_string()),
        )
    });
    let jit_private_key = raw
        .jit_private_key
        .and_then(|key| secret(c, format!("{at}.jit_private_key"), &key));
    Tenant {
        name: name.to_owned(),
        charge_labels: raw.charge_labels,
        defaults,
        providers,
        jit_public_key,
        jit_private_key,
    }
}

/// Hands each provider section to the registry; its field errors come back under
/// `{at}.{kind}.{field}`, with the section's line.
fn providers(
    c: &mut Collector,
    at: &str,
    raw: BTreeMap<String, Spanned<toml::Table>>,
    ctx: &Context<'_>,
) -> Providers {
    let mut providers = Providers::default();
    for (name, section) in raw {
        let field = format!("{at}.{name}");
        let Some(kind) = c.check(
            field.clone(),
            name.parse::<ProviderKind>().map_err(|e| e.to_string()),
        ) else {
            continue;
        };
        let line = ctx.line_of(section.span().start);
        match ctx.registry.parse(kind, section.into_inner()) {
            Ok(settings) => providers.insert(kind, settings),
            Err(errors) => {
                for e in errors {
                    let field = if e.field.is_empty() {
                        field.clone()
                    } else {
                        format!("{field}.{}", e.field)
                    };
                    c.push(field, format!("{} (section at line {line})", e.reason));
                }
            }
        }
    }
    providers
}

fn defaults(c: &mut Collector, at: &str, raw: RawDefaults) -> Defaults {
    let cpu_millis = raw.cpu.and_then(|n| {
        c.check(
            format!("{at}.cpu"),
            syntax::number_thousandths(n).and_then(syntax::cpu_millis),
        )
    });
    let memory_mib = raw.memory.and_then(|n| {
        c.check(
            format!("{at}.memory"),
            syntax::number_thousandths(n).and_then(syntax::memory_mib),
        )
    });
    if let Some(image) = &raw.image {
        c.check(format!("{at}.image"), syntax::image_ref(image));
    }
    let n = &raw.network;
    if let Some(v) = &n.vswitch {
        c.check(
            format!("{at}.network.vswitch"),
            syntax::alibaba_id(v, "vsw-"),
        );
    }
    if let Some(v) = &n.security_group {
        c.check(
            format!("{at}.network.security_group"),
            syntax::alibaba_id(v, "sg-"),
        );
    }
    if let Some(v) = &n.subnet {
        c.check(format!("{at}.network.subnet"), syntax::subnet_name(v));
    }
    if raw.max_runtime_secs == Some(0) {
        c.push(
            format!("{at}.max_runtime_secs"),
            "must be greater than zero",
        );
    }
    Defaults {
        provider: raw.provider,
        cpu_millis,
        memory_mib,
        image: raw.image,
        network: Network {
            vswitch: raw.network.vswitch,
            security_group: raw.network.security_group,
            subnet: raw.network.subnet,
        },
        runner_group_id: raw.runner_group_id,
        dind: raw.dind,
        max_runtime_secs: raw.max_runtime_secs,
    }
}

fn charge_labels(c: &mut Collector, at: &str, labels: &[String]) {
    for (i, l) in labels.iter().enumerate() {
        c.check(format!("{at}[{i}]"), syntax::charge_label(l));
    }
}

fn registration(
    c: &mut Collector,
    i: usize,
    raw: RawRegistration,
    tenants: &BTreeMap<String, Tenant>,
) -> Option<Registration> {
    let at = format!("registrations[{i}]");
    c.check(format!("{at}.name"), syntax::name(&raw.name));
    let tenant = tenants.get(&raw.tenant);
    if tenant.is_none() {
        c.push(
            format!("{at}.tenant"),
            format!("unknown tenant `{}`", raw.tenant),
        );
    }
    let (scope, web) = match c.check(format!("{at}.url"), scope_from_url(raw.scope, &raw.url)) {
        Some((scope, web)) => (Some(scope), Some(web)),
        None => (None, None),
    };
    let api_url = match &raw.api_url {
        Some(u) => http_url(c, format!("{at}.api_url"), Some(u)),
        None => web.as_ref().and_then(|w| default_api_url(w).ok()),
    };
    let repos = raw.repos.unwrap_or_default();
    if !repos.is_empty() && raw.scope != ScopeKind::Org {
        c.push(
            format!("{at}.repos"),
            "only an org registration takes a repos allow-list",
        );
    }
    for (j, r) in repos.iter().enumerate() {
        c.check(format!("{at}.repos[{j}]"), repo_name(r));
    }
    let auth = auth(c, &format!("{at}.auth"), raw.auth);
    if raw.scope == ScopeKind::Enterprise && matches!(auth, Some(Auth::App { .. })) {
        // GitHub's OpenAPI marks the enterprise runner operations `enabledForGitHubApps: false`.
        c.push(
            format!("{at}.auth"),
            "enterprise runners cannot be managed by a GitHub App: use a personal access token with the manage_runners:enterprise scope (auth = { pat = \"env:NAME\" })",
        );
    }
    let labels = match raw.labels {
        Some(l) if l.is_empty() => {
            c.push(
                format!("{at}.labels"),
                "must name at least one label (or be left out for the default)",
            );
            l
        }
        Some(l) => l,
        None => vec![DEFAULT_LABEL.to_owned()],
    };
    let mut seen = HashSet::new();
    for (j, l) in labels.iter().enumerate() {
        let field = format!("{at}.labels[{j}]");
        if c.check(field.clone(), syntax::label(l)).is_none() {
            continue;
        }
        match labels::parse_label(l) {
            Label::Plain(_) => {}
            Label::Generic(_) => c.push(field.clone(), format!("`{l}` is a generic label every self-hosted runner has")),
            _ => c.push(field.clone(), format!("`{l}` has a dynamic label prefix (cpu-, memory-, vsw-, sg-, subnet-, img-, sid-, disk-)")),
        }
        if !seen.insert(l.to_ascii_lowercase()) {
            c.push(field, format!("`{l}` is listed twice"));
        }
    }
    charge_labels(c, &format!("{at}.charge_labels"), &raw.charge_labels);
    let detection = raw.detection.unwrap_or(Detection::WebhookAndPoll);
    if raw.scope == ScopeKind::Enterprise && detection == Detection::Poll {
        c.push(
            format!("{at}.detection"),
            "an enterprise registration is not polled (GitHub lists workflow runs per repository only): it depends on webhooks, so use \"webhook\"",
        );
    }
    let poll_interval_secs = match (detection, raw.poll_interval_secs) {
        (Detection::Webhook, Some(_)) => {
            c.push(
                format!("{at}.poll_interval_secs"),
                "has no effect with detection = \"webhook\"",
            );
            None
        }
        (Detection::Webhook, None) => None,
        (_, Some(s)) if !(5..=3600).contains(&s) => {
            c.push(
                format!("{at}.poll_interval_secs"),
                "must be between 5 and 3600",
            );
            None
        }
        (Detection::Poll, s) => Some(s.unwrap_or(30)),
        (Detection::WebhookAndPoll, s) => Some(s.unwrap_or(300)),
    };
    let jit_per_minute = raw.jit_per_minute.unwrap_or(150);
    if jit_per_minute == 0 {
        c.push(format!("{at}.jit_per_minute"), "must be greater than zero");
    }
    let webhook_secret =
        (raw.webhook_secret.as_deref()).and_then(|s| secret(c, format!("{at}.webhook_secret"), s));
    let defaults = defaults(c, &format!("{at}.defaults"), raw.defaults);
    let limits = limits(c, &format!("{at}.limits"), raw.limits);
    if let Some(tenant) = tenant {
        check_effective(c, &at, &defaults, &limits, tenant);
    }
    Some(Registration {
        name: raw.name,
        tenant: raw.tenant,
        url: web?,
        repos,
        auth: auth?,
        labels,
        charge_labels: raw.charge_labels,
        detection,
        poll_interval_secs,
        jit_per_minute,
        webhook_secret,
        defaults,
        limits,
        scope: scope?,
        api_url: api_url?,
    })
}

/// Checks the defaults a registration ends up with against its tenant and its limits.
fn check_effective(c: &mut Collector, at: &str, d: &Defaults, l: &Limits, tenant: &Tenant) {
    let provider = d
        .provider
        .or(tenant.defaults.provider)
        .unwrap_or(super::DEFAULT_PROVIDER);
    if !tenant.providers.has(provider) {
        c.push(
            format!("{at}.defaults.provider"),
            format!(
                "resolves to `{provider}`, which tenant `{}` does not configure",
                tenant.name
            ),
        );
    }
    let cpu = d
        .cpu_millis
        .or(tenant.defaults.cpu_millis)
        .unwrap_or(super::DEFAULT_CPU_MILLIS);
    if cpu > l.max_cpu_millis {
        c.push(
            format!("{at}.limits.max_cpu"),
            "is below the default cpu (unset, it is 4 vCPU; raise it to allow more)",
        );
    }
    let memory = d
        .memory_mib
        .or(tenant.defaults.memory_mib)
        .unwrap_or(super::DEFAULT_MEMORY_MIB);
    if memory > l.max_memory_mib {
        c.push(
            format!("{at}.limits.max_memory"),
            "is below the default memory (unset, it is 16 GiB; raise it to allow more)",
        );
    }
}

fn auth(c: &mut Collector, at: &str, raw: RawAuth) -> Option<Auth> {
    match raw {
        RawAuth {
            pat: Some(pat),
            app_id: None,
            installation_id: None,
            private_key: None,
        } => Some(Auth::Pat {
            token: secret(c, format!("{at}.pat"), &pat)?,
        }),
        RawAuth {
            pat: None,
            app_id,
            installation_id,
            private_key,
        } if app_id.is_some() || installation_id.is_some() || private_key.is_some() => {
            for (field, missing) in [
                ("app_id", app_id.is_none()),
                ("installation_id", installation_id.is_none()),
                ("private_key", private_key.is_none()),
            ] {
                if missing {
                    c.push(format!("{at}.{field}"), "required for GitHub App auth");
                }
            }
            let key = private_key.and_then(|k| secret(c, format!("{at}.private_key"), &k));
            Some(Auth::App {
                app_id: app_id?,
                installation_id: installation_id?,
                private_key: key?,
            })
        }
        RawAuth { pat: Some(_), .. } => {
            c.push(
                at,
                "use either pat or app_id/installation_id/private_key, not both",
            );
            None
        }
        RawAuth { .. } => {
            c.push(
                at,
                "set pat = \"env:NAME\" or app_id, installation_id and private_key",
            );
            None
        }
    }
}

fn limits(c: &mut Collector, at: &str, raw: RawLimits) -> Limits {
    let max_runners = raw.max_runners.unwrap_or(100);
    if max_runners == 0 {
        c.push(format!("{at}.max_runners"), "must be greater than zero");
    }
    let min_idle = raw.min_idle.unwrap_or(0);
    if min_idle > max_runners {
        c.push(format!("{at}.min_idle"), "must not exceed max_runners");
    }
    let max_cpu_millis = raw
        .max_cpu
        .and_then(|n| {
            c.check(
                format!("{at}.max_cpu"),
                syntax::number_thousandths(n).and_then(syntax::cpu_millis),
            )
        })
        .unwrap_or(super::DEFAULT_MAX_CPU_MILLIS);
    let max_memory_mib = raw
        .max_memory
        .and_then(|n| {
            c.check(
                format!("{at}.max_memory"),
                syntax::number_thousandths(n).and_then(syntax::memory_mib),
            )
        })
        .unwrap_or(super::DEFAULT_MAX_MEMORY_MIB);
    let lists: [(&str, &Vec<String>, Check); 5] = [
        ("allowed_images", &raw.allowed_images, image_pattern),
        ("allowed_vswitches", &raw.allowed_vswitches, |s| {
            syntax::alibaba_id(s, "vsw-")
        }),
        (
            "allowed_security_groups",
            &raw.allowed_security_groups,
            |s| syntax::alibaba_id(s, "sg-"),
        ),
        ("allowed_subnets", &raw.allowed_subnets, syntax::subnet_name),
        ("allowed_buckets", &raw.allowed_buckets, syntax::bucket),
    ];
    for (field, values, check) in lists {
        for (i, v) in values.iter().enumerate() {
            c.check(format!("{at}.{field}[{i}]"), check(v));
        }
    }
    let idle_timeout_secs = raw.idle_timeout_secs.unwrap_or(600);
    let max_runtime_secs = raw.max_runtime_secs.unwrap_or(21_600);
    let max_attempts = raw.max_attempts.unwrap_or(3);
    for (field, value, max) in [
        ("idle_timeout_secs", idle_timeout_secs, 86_400),
        ("max_runtime_secs", max_runtime_secs, 7 * 86_400),
        ("max_attempts", u64::from(max_attempts), 20),
    ] {
        if value == 0 || value > max {
            c.push(
                format!("{at}.{field}"),
                format!("must be between 1 and {max}"),
            );
        }
    }
    Limits {
        min_idle,
        max_runners,
        max_cpu_millis,
        max_memory_mib,
        allowed_images: raw.allowed_images,
        allowed_vswitches: raw.allowed_vswitches,
        allowed_security_groups: raw.allowed_security_groups,
        allowed_subnets: raw.allowed_subnets,
        allowed_buckets: raw.allowed_buckets,
        idle_timeout_secs,
        max_runtime_secs,
        max_attempts,
    }
}

/// A syntax check returning the reason on failure.
type Check = fn(&str) -> Result<(), String>;

/// An allow-list entry: an image ref or a tag, optionally ending in `*`.
fn image_pattern(s: &str) -> Result<(), String> {
    let body = s.strip_suffix('*').unwrap_or(s);
    let bad = || format!("`{s}` is not an image ref or tag pattern (a `*` may only end it)");
    if body.contains('*') || s.is_empty() {
        return Err(bad());
    }
    if body.is_empty() {
        return Ok(());
    }
    let ok = if body.contains('/') || body.contains(':') {
        // A prefix of a reference may end mid-tag (`repo:2.`), so check the repository part.
        syntax::image_ref(syntax::split_image(body).0).is_ok()
    } else {
        body.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
    };
    if ok { Ok(()) } else { Err(bad()) }
}

fn owner_name(s: &str) -> bool {
    (1..=39).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !s.starts_with('-')
}

fn repo_name(s: &str) -> Result<(), String> {
    if (1..=100).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && s != "."
        && s != ".."
    {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a repository name (the name only, without the owner)"
        ))
    }
}

/// Derives the scope from a GitHub web URL, e.g. `https://github.com/acme/app`.
pub(crate) fn scope_from_url(kind: ScopeKind, text: &str) -> Result<(Scope, Url), String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(format!("`{text}` must be an https URL with a host"));
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(format!(
            "`{text}` must not carry credentials, a query or a fragment"
        ));
    }
    let parts: Vec<&str> = url.path().split('/').filter(|p| !p.is_empty()).collect();
    let scope = match (kind, parts.as_slice()) {
        (ScopeKind::Org, [org]) if owner_name(org) => Scope::Org {
            org: (*org).to_owned(),
        },
        (ScopeKind::Repo, [owner, repo]) if owner_name(owner) && repo_name(repo).is_ok() => {
            Scope::Repo {
                owner: (*owner).to_owned(),
                repo: (*repo).to_owned(),
            }
        }
        (ScopeKind::Enterprise, ["enterprises", slug]) if owner_name(slug) => Scope::Enterprise {
            enterprise: (*slug).to_owned(),
        },
        (ScopeKind::Org, _) => {
            return Err(format!(
                "`{text}` is not an organization URL like https://github.com/acme"
            ));
        }
        (ScopeKind::Repo, _) => {
            return Err(format!(
                "`{text}` is not a repository URL like https://github.com/acme/app"
            ));
        }
        (ScopeKind::Enterprise, _) => {
            return Err(format!(
                "`{text}` is not an enterprise URL like https://github.com/enterprises/big"
            ));
        }
    };
    Ok((scope, url))
}

/// `https://api.github.com` for github.com, `https://api.SUB.ghe.com` for GHE.com (data
/// residency), `SCHEME://HOST[:PORT]/api/v3` for GHES.
pub(crate) fn default_api_url(web: &Url) -> Result<Url, String> {
    let host = web.host_str().unwrap_or_default();
    if host.eq_ignore_ascii_case("github.com") || host.eq_ignore_ascii_case("www.github.com") {
        return Url::parse("https://api.github.com").map_err(|e| e.to_string());
    }
    let lower = host.to_ascii_lowercase();
    if let Some(sub) = lower.strip_suffix(".ghe.com")
        && !sub.is_empty()
        && !sub.contains('.')
    {
        return Url::parse(&format!("https://api.{sub}.ghe.com")).map_err(|e| e.to_string());
    }
    let mut api = web.clone();
    api.set_path("/api/v3");
    Ok(api)
}

/// Cross-registration rules: unique names; one scope twice only with disjoint labels.
fn check_registrations(c: &mut Collector, regs: &[(usize, Registration)]) {
    let mut names: HashSet<&str> = HashSet::new();
    for (n, (i, r)) in regs.iter().enumerate() {
        if !names.insert(&r.name) {
            c.push(
                format!("registrations[{i}].name"),
                format!("`{}` is used by an earlier registration", r.name),
            );
        }
        for (_, earlier) in &regs[..n] {
            let same_scope =
                earlier.scope == r.scope && earlier.host().eq_ignore_ascii_case(&r.host());
            let shared = r
                .labels
                .iter()
                .find(|l| earlier.labels.iter().any(|e| e.eq_ignore_ascii_case(l)));
            if let (true, Some(label)) = (same_scope, shared) {
                c.push(
                    format!("registrations[{i}].labels"),
                    format!(
                        "`{label}` is also accepted by registration `{}` for the same scope: a job could not tell them apart",
                        earlier.name
                    ),
                );
            }
        }
    }
}
