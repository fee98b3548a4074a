#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Configuration validation: every error names the right field; defaults; routing.

use bus_schema::Scope;
use registration::{Actor, Auth, Config, Detection, SecretRef};

/// The `[controller]` table every valid file needs (its id has no default).
const CONTROLLER: &str = "[controller]\nid = \"acme-prod\"\n";

const TENANT: &str = r#"
[tenants.acme]
[tenants.acme.providers.local]
"#;

fn with_registration(reg: &str) -> String {
    format!("{CONTROLLER}[webhook]\nsecret = \"env:WH\"\n{TENANT}\n[[registrations]]\n{reg}")
}

fn errors(text: &str) -> registration::ConfigErrors {
    Config::parse(text, "shr.toml", &clouds::Registry).expect_err("expected errors")
}

const OK_REG: &str = r#"name = "acme"
tenant = "acme"
scope = "org"
url = "https://github.com/acme"
auth = { pat = "env:ACME_PAT" }
"#;

#[test]
fn defaults_fill_a_minimal_file() {
    let config = Config::parse(&with_registration(OK_REG), "shr.toml", &clouds::Registry).unwrap();
    assert_eq!(config.controller.id, "acme-prod");
    assert!(Actor::ALL.iter().all(|a| config.runs(*a)));
    assert!(config.controller.nats_url.is_none());
    assert_eq!(config.webhook.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(config.webhook.path, "/webhook");
    assert_eq!(config.webhook.max_body_bytes, 1 << 20);
    let reg = config.registration("acme").unwrap();
    assert_eq!(reg.labels, ["serverless-hosted-runner"]);
    assert_eq!(reg.detection, Detection::WebhookAndPoll);
    assert_eq!(reg.poll_interval_secs, Some(300));
    assert_eq!(reg.jit_per_minute, 150);
    assert_eq!(reg.limits.max_runners, 100);
    assert_eq!(reg.limits.idle_timeout_secs, 600);
    assert_eq!(reg.limits.max_runtime_secs, 21_600);
    assert_eq!(reg.limits.max_attempts, 3);
    assert_eq!(reg.scope(), Scope::Org { org: "acme".into() });
    assert_eq!(reg.api_url().as_str(), "https://api.github.com/");
    assert_eq!(
        reg.auth,
        Auth::Pat {
            token: SecretRef::Env("ACME_PAT".into())
        }
    );
}

#[test]
fn scope_and_api_url_come_from_the_web_url() {
    let cases = [
        (
            "repo",
            "https://github.com/acme/app",
            Scope::Repo {
                owner: "acme".into(),
                repo: "app".into(),
            },
            "https://api.github.com/",
        ),
        (
            "org",
            "https://ghe.example.com/acme/",
            Scope::Org { org: "acme".into() },
            "https://ghe.example.com/api/v3",
        ),
        (
            "enterprise",
            "https://github.com/enterprises/big",
            Scope::Enterprise {
                enterprise: "big".into(),
            },
            "https://api.github.com/",
        ),
        (
            "org",
            "http://127.0.0.1:9000/acme",
            Scope::Org { org: "acme".into() },
            "http://127.0.0.1:9000/api/v3",
        ),
        (
            "org",
            "https://octocorp.ghe.com/acme",
            Scope::Org { org: "acme".into() },
            "https://api.octocorp.ghe.com/",
        ),
    ];
    for (scope, url, expected, api) in cases {
        let reg = format!(
            "name = \"r\"\ntenant = \"acme\"\nscope = \"{scope}\"\nurl = \"{url}\"\nauth = {{ pat = \"env:P\" }}\n"
        );
        let config = Config::parse(&with_registration(&reg), "f", &clouds::Registry)
            .unwrap_or_else(|e| panic!("{e}"));
        let r = &config.registrations()[0];
        assert_eq!(r.scope(), expected, "{url}");
        assert_eq!(r.api_url().as_str(), api, "{url}");
    }
}

#[test]
fn enterprise_scope_refuses_app_auth_and_polling() {
    let app = "name = \"e\"\ntenant = \"acme\"\nscope = \"enterprise\"\nurl = \"https://github.com/enterprises/big\"\nauth = { app_id = 1, installation_id = 2, private_key = \"env:K\" }\n";
    let e = errors(&with_registration(app));
    assert_eq!(e.errors.len(), 1, "{e}");
    assert_eq!(e.errors[0].field, "registrations[0].auth");
    let shown = e.to_string();
    assert!(
        shown.contains(
            "shr.toml: registrations[0].auth: enterprise runners cannot be managed by a GitHub App"
        ),
        "{shown}"
    );
    assert!(shown.contains("manage_runners:enterprise"), "{shown}");

    let poll = "name = \"e\"\ntenant = \"acme\"\nscope = \"enterprise\"\nurl = \"https://github.com/enterprises/big\"\nauth = { pat = \"env:P\" }\ndetection = \"poll\"\n";
    let e = errors(&with_registration(poll));
    assert_eq!(e.errors[0].field, "registrations[0].detection", "{e}");
    assert!(e.to_string().contains("depends on webhooks"), "{e}");

    let ok = "name = \"e\"\ntenant = \"acme\"\nscope = \"enterprise\"\nurl = \"https://github.com/enterprises/big\"\nauth = { pat = \"env:P\" }\n";
    let config = Config::parse(&with_registration(ok), "shr.toml", &clouds::Registry).unwrap();
    assert!(
        config
            .summary()
            .contains("enterprise: not polled, depends on webhooks"),
        "{}",
        config.summary()
    );
}

#[test]
fn each_mistake_names_its_field() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "name = \"acme\"",
            "name = \"Acme_1\"",
            "registrations[0].name",
        ),
        (
            "tenant = \"acme\"",
            "tenant = \"nobody\"",
            "registrations[0].tenant",
        ),
        (
            "url = \"https://github.com/acme\"",
            "url = \"https://github.com/acme/app\"",
            "registrations[0].url",
        ),
        (
            "url = \"https://github.com/acme\"",
            "url = \"ftp://github.com/acme\"",
            "registrations[0].url",
        ),
        (
            "env:ACME_PAT",
            "ghp_plaintext_token",
            "registrations[0].auth.pat",
        ),
        (
            "auth = { pat = \"env:ACME_PAT\" }",
            "auth = { app_id = 1, private_key = \"file:/k.pem\" }",
            "registrations[0].auth.installation_id",
        ),
        (
            "auth = { pat = \"env:ACME_PAT\" }",
            "auth = { pat = \"env:X\", app_id = 1 }",
            "registrations[0].auth",
        ),
        (
            "auth = { pat = \"env:ACME_PAT\" }",
            "auth = {}",
            "registrations[0].auth",
        ),
    ];
    for (from, to, field) in cases {
        let text = with_registration(&OK_REG.replace(from, to));
        let errors = errors(&text);
        assert!(
            errors.has_field(field),
            "{to}: expected {field}, got\n{errors}"
        );
    }
}

#[test]
fn field_errors_are_all_collected_and_displayed_one_per_line() {
    let reg = r#"name = "acme"
tenant = "acme"
scope = "repo"
url = "https://github.com/acme/app"
repos = ["x"]
auth = { pat = "plain" }
labels = ["self-hosted", "cpu-runner", "ok", "OK"]
charge_labels = ["bad label"]
detection = "webhook"
poll_interval_secs = 10
jit_per_minute = 0
[registrations.defaults]
provider = "alibaba-eci"
cpu = 0
memory = 0.0001
image = "Not An Image"
network = { vswitch = "sw-1" }
[registrations.limits]
min_idle = 5
max_runners = 2
max_cpu = -1
allowed_images = ["a*b"]
allowed_buckets = ["X"]
max_attempts = 0
"#;
    let errors = errors(&with_registration(reg));
    let expected = [
        "registrations[0].repos",
        "registrations[0].auth.pat",
        "registrations[0].labels[0]",
        "registrations[0].labels[1]",
        "registrations[0].labels[3]",
        "registrations[0].charge_labels[0]",
        "registrations[0].poll_interval_secs",
        "registrations[0].jit_per_minute",
        "registrations[0].defaults.provider",
        "registrations[0].defaults.cpu",
        "registrations[0].defaults.memory",
        "registrations[0].defaults.image",
        "registrations[0].defaults.network.vswitch",
        "registrations[0].limits.min_idle",
        "registrations[0].limits.max_cpu",
        "registrations[0].limits.allowed_images[0]",
        "registrations[0].limits.allowed_buckets[0]",
        "registrations[0].limits.max_attempts",
    ];
    for field in expected {
        assert!(errors.has_field(field), "{field} missing in\n{errors}");
    }
    let text = errors.to_string();
    assert_eq!(text.lines().count(), errors.errors.len());
    assert!(
        text.lines()
            .all(|l| l.starts_with("shr.toml: registrations[0].")),
        "{text}"
    );
    assert!(!text.contains("plain\""), "secret echoed: {text}");
}

#[test]
fn the_controller_id_is_required() {
    // No silent default: two deployments sharing a cloud account must not share an id.
    let text = with_registration(OK_REG).replace(CONTROLLER, "");
    let e = errors(&text);
    assert!(e.has_field("controller.id"), "{e}");
    assert!(e.to_string().contains("unique to this deployment"), "{e}");
}

#[test]
fn tenants_controller_and_webhook_are_validated() {
    let text = r#"
[controller]
id = "Bad Id"
nats_url = "http://x"
tenants = ["ghost"]
actors = []
[webhook]
listen = "nowhere"
path = "webhook"
tls_cert = "/c.pem"
max_body_bytes = 1
[tenants.Bad_Name]
[tenants.Bad_Name.providers.local]
[tenants.empty]
[tenants.cloudy.defaults]
provider = "azure-aci"
[tenants.cloudy.providers.alibaba-eci]
region = "cn-shanghai"
access_key_id = ""
access_key_secret = "inline"
vswitch_id = "vsw-OK"
security_group_id = "sg1"
endpoint = "not a url"
"#;
    let errors = errors(text);
    for field in [
        "controller.id",
        "controller.nats_url",
        "controller.tenants[0]",
        "controller.actors",
        "webhook.listen",
        "webhook.path",
        "webhook.tls_key",
        "webhook.max_body_bytes",
        "tenants.Bad_Name",
        "tenants.empty.providers",
        "tenants.cloudy.defaults.provider",
        "tenants.cloudy.providers.alibaba-eci.access_key_id",
        "tenants.cloudy.providers.alibaba-eci.access_key_secret",
        "tenants.cloudy.providers.alibaba-eci.vswitch_id",
        "tenants.cloudy.providers.alibaba-eci.security_group_id",
        "tenants.cloudy.providers.alibaba-eci.endpoint",
    ] {
        assert!(errors.has_field(field), "{field} missing in\n{errors}");
    }
}

#[test]
fn webhook_secret_is_required_only_where_webhooks_are_received() {
    let text = format!("{TENANT}\n[[registrations]]\n{OK_REG}");
    let agent = format!("[controller]\nid = \"a\"\nactors = [\"provisioner\", \"reaper\"]\n{text}");
    let text = format!("{CONTROLLER}{text}");
    assert!(errors(&text).has_field("webhook.secret"));
    let poll_only = text.replace("scope = \"org\"", "scope = \"org\"\ndetection = \"poll\"");
    let config = Config::parse(&poll_only, "f", &clouds::Registry).unwrap();
    assert_eq!(config.registrations()[0].poll_interval_secs, Some(30));
    Config::parse(&agent, "f", &clouds::Registry).unwrap();
}

#[test]
fn syntax_and_type_errors_name_field_and_line() {
    let unknown = with_registration(&format!("{OK_REG}colour = \"red\"\n"));
    let e = errors(&unknown);
    assert_eq!(e.errors.len(), 1);
    assert!(e.errors[0].field.starts_with("registrations[0]"), "{e}");
    let line = unknown
        .lines()
        .position(|l| l.starts_with("colour"))
        .unwrap()
        + 1;
    assert!(
        e.errors[0].reason.contains(&format!("(line {line})")),
        "{e}"
    );

    let wrong_type = with_registration(&OK_REG.replace(
        "scope = \"org\"",
        "scope = \"org\"\njit_per_minute = \"many\"",
    ));
    let e = errors(&wrong_type);
    assert_eq!(e.errors[0].field, "registrations[0].jit_per_minute", "{e}");
    assert!(e.errors[0].reason.contains("(line "), "{e}");

    let e = errors("[controller\n");
    assert_eq!(e.errors[0].field, "(syntax)");
    assert!(e.errors[0].reason.contains("line 1"), "{e}");

    let e = errors("[tenants.acme.providers.gcp-batch]\nproject = \"p\"\n");
    assert!(
        e.errors[0]
            .field
            .starts_with("tenants.acme.providers.gcp-batch"),
        "{e}"
    );
    assert!(e.errors[0].reason.contains("region"), "{e}");
}

#[test]
fn duplicate_names_and_indistinguishable_registrations_are_rejected() {
    let text = format!("{}\n[[registrations]]\n{OK_REG}", with_registration(OK_REG));
    let e = errors(&text);
    assert!(e.has_field("registrations[1].name"), "{e}");
    assert!(e.has_field("registrations[1].labels"), "{e}");
    let other = OK_REG.replace("name = \"acme\"", "name = \"acme-2\"\nlabels = [\"other\"]");
    let text = format!("{}\n[[registrations]]\n{other}", with_registration(OK_REG));
    Config::parse(&text, "f", &clouds::Registry).unwrap();
}

fn routing_config() -> Config {
    let regs = [
        (
            "ent",
            "enterprise",
            "https://github.com/enterprises/big",
            "",
        ),
        ("org-all", "org", "https://github.com/acme", ""),
        (
            "org-some",
            "org",
            "https://github.com/beta",
            "repos = [\"api\"]\n",
        ),
        ("repo", "repo", "https://github.com/acme/app", ""),
        ("ghes", "org", "https://ghe.example.com/acme", ""),
    ];
    let mut text = format!("{CONTROLLER}[webhook]\nsecret = \"env:WH\"\n{TENANT}");
    for (name, scope, url, extra) in regs {
        text.push_str(&format!(
            "[[registrations]]\nname = \"{name}\"\ntenant = \"acme\"\nscope = \"{scope}\"\nurl = \"{url}\"\n{extra}auth = {{ pat = \"env:P\" }}\nlabels = [\"{name}-label\"]\n"
        ));
    }
    Config::parse(&text, "f", &clouds::Registry).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn routing_picks_the_most_specific_registration_on_the_right_host() {
    let config = routing_config();
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
    );
    let cases: &[Case] = &[
        (
            "github.com",
            "acme/app",
            Some("acme"),
            Some("big"),
            Some("repo"),
        ),
        ("github.com", "ACME/App", None, None, Some("repo")),
        (
            "github.com",
            "acme/other",
            Some("acme"),
            Some("big"),
            Some("org-all"),
        ),
        ("github.com", "acme/other", None, None, Some("org-all")),
        ("github.com", "beta/api", None, None, Some("org-some")),
        ("github.com", "beta/web", None, Some("big"), Some("ent")),
        ("github.com", "beta/web", None, None, None),
        ("ghe.example.com", "acme/app", None, None, Some("ghes")),
        ("GHE.example.com", "acme/x", None, None, Some("ghes")),
        ("github.com", "zeta/app", Some("zeta"), Some("other"), None),
        ("gitlab.com", "acme/app", None, None, None),
        ("github.com", "not-a-full-name", None, Some("big"), None),
    ];
    for (host, repo, org, ent, expected) in cases {
        let got = config
            .registration_for_job(host, repo, *org, *ent)
            .map(|r| r.name.as_str());
        assert_eq!(got, *expected, "{host} {repo} {org:?} {ent:?}");
    }
    let all: Vec<&str> = config
        .registrations_for_job("github.com", "acme/app", None, Some("big"))
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(all, ["repo", "org-all", "ent"]);
}

#[test]
fn debug_output_shows_references_not_values() {
    let config = Config::parse(&with_registration(OK_REG), "f", &clouds::Registry).unwrap();
    let debug = format!("{config:?}");
    assert!(debug.contains("ACME_PAT"));
}

/// README documents `[webhook] tls = { cert = …, key = … }`; that form parses, the older
/// `tls_cert`/`tls_key` still does, and mixing or halving them names the field.
#[test]
fn webhook_tls_takes_the_documented_table_and_the_older_keys() {
    let with_webhook = |webhook: &str| {
        format!(
            "{CONTROLLER}[webhook]\nsecret = \"env:WH\"\n{webhook}\n{TENANT}\n[[registrations]]\n{OK_REG}"
        )
    };
    for webhook in [
        r#"tls = { cert = "/etc/shr/tls.crt", key = "/etc/shr/tls.key" }"#,
        "tls_cert = \"/etc/shr/tls.crt\"\ntls_key = \"/etc/shr/tls.key\"",
    ] {
        let config = Config::parse(&with_webhook(webhook), "shr.toml", &clouds::Registry).unwrap();
        let tls = config.webhook.tls.expect("tls is set");
        assert_eq!(
            tls.cert,
            std::path::Path::new("/etc/shr/tls.crt"),
            "{webhook}"
        );
        assert_eq!(
            tls.key,
            std::path::Path::new("/etc/shr/tls.key"),
            "{webhook}"
        );
    }
    for (webhook, field) in [
        (r#"tls = { cert = "/c.pem" }"#, "webhook.tls.key"),
        (r#"tls = { key = "/k.pem" }"#, "webhook.tls.cert"),
        ("tls = {}", "webhook.tls"),
        (
            "tls = { cert = \"/c\", key = \"/k\" }\ntls_cert = \"/c\"",
            "webhook.tls",
        ),
    ] {
        let e = errors(&with_webhook(webhook));
        assert!(e.has_field(field), "{webhook}: {field} missing in\n{e}");
    }
    let e = Config::parse(
        &with_webhook(r#"tls = { cert = "/c", key = "/k", chain = "/x" }"#),
        "shr.toml",
        &clouds::Registry,
    )
    .expect_err("unknown key in tls");
    assert!(e.to_string().contains("chain"), "{e}");
}

#[test]
fn nats_credentials_come_by_reference_and_never_inside_the_url() {
    let with_controller = |controller: &str| {
        format!(
            "{CONTROLLER}{controller}\n{}",
            with_registration(OK_REG).replace(CONTROLLER, "")
        )
    };
    let ok = with_controller(
        "nats_url = \"nats://nats.internal:4222\"\nnats_nkey_seed = \"file:/etc/shr/agent-a.nk\"",
    );
    let config = Config::parse(&ok, "shr.toml", &clouds::Registry).unwrap();
    assert_eq!(
        config.controller.nats_nkey_seed,
        Some(SecretRef::File("/etc/shr/agent-a.nk".into()))
    );
    assert!(config.summary().contains("(nkey file:/etc/shr/agent-a.nk)"));

    let in_url = errors(&with_controller(
        "nats_url = \"nats://agent:hunter2@nats.internal:4222\"",
    ));
    assert!(in_url.has_field("controller.nats_url"), "{in_url}");
    assert!(
        !in_url.to_string().contains("hunter2"),
        "password echoed: {in_url}"
    );

    let inline = errors(&with_controller(
        "nats_nkey_seed = \"SUAINLINESEED\"\nnats_creds = \"env:CREDS\"",
    ));
    assert!(inline.has_field("controller.nats_nkey_seed"), "{inline}");
    assert!(!inline.to_string().contains("SUAINLINESEED"), "{inline}");
    let both = errors(&with_controller(
        "nats_nkey_seed = \"env:SEED\"\nnats_creds = \"env:CREDS\"",
    ));
    assert!(both.has_field("controller.nats_creds"), "{both}");
}
