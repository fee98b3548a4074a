//! The registry: one plug-in per provider kind, each parsing its own section strictly, and
//! building a provider whose capabilities are the ones its settings announce.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use bus_schema::ProviderKind;
use clouds::{PLUGINS, Registry};
use registration::{Config, FieldError, SettingsRegistry};

fn table(text: &str) -> toml::Table {
    text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn parse_errors(kind: ProviderKind, text: &str) -> Vec<FieldError> {
    Registry.parse(kind, table(text)).unwrap_err()
}

#[test]
fn registry_covers_every_provider_kind() {
    let kinds: Vec<ProviderKind> = PLUGINS.iter().map(|p| p.kind()).collect();
    assert_eq!(
        kinds,
        ProviderKind::ALL,
        "one plug-in per kind, in ALL order"
    );
    for kind in ProviderKind::ALL {
        assert_eq!(clouds::plugin(kind).unwrap().kind(), kind);
    }
}

#[test]
fn each_example_section_parses_with_its_region_and_capabilities() {
    for plugin in PLUGINS {
        let kind = plugin.kind();
        let settings = Registry
            .parse(kind, table(plugin.example()))
            .unwrap_or_else(|e| panic!("{kind}: {e:?}"));
        let section = table(plugin.example());
        let want = section
            .get("region")
            .or_else(|| section.get("location"))
            .and_then(toml::Value::as_str);
        assert_eq!(settings.region(), want, "{kind}");
        let caps = settings.capabilities();
        assert!(
            caps.max_cpu_millis >= 1000 && caps.max_memory_mib >= 1024,
            "{kind}: {caps:?}"
        );
    }
}

#[test]
fn each_plugin_rejects_unknown_fields_by_name() {
    for plugin in PLUGINS {
        let kind = plugin.kind();
        let text = format!("{}no_such_field = 1\n", plugin.example());
        let errors = parse_errors(kind, &text);
        assert_eq!(errors.len(), 1, "{kind}: {errors:?}");
        assert_eq!(errors[0].field, "no_such_field", "{kind}: {errors:?}");
        assert!(
            errors[0].reason.contains("unknown field"),
            "{kind}: {errors:?}"
        );
    }
}

#[test]
fn each_plugin_names_a_mistyped_field() {
    for plugin in PLUGINS {
        let kind = plugin.kind();
        for (key, value) in table(plugin.example()) {
            let mut section = table(plugin.example());
            // A value of another type than the example's.
            let wrong = match value {
                toml::Value::Array(_) => toml::Value::Integer(1),
                _ => toml::Value::Array(Vec::new()),
            };
            section.insert(key.clone(), wrong);
            let errors = Registry.parse(kind, section).unwrap_err();
            assert_eq!(errors[0].field, key, "{kind}: {errors:?}");
            assert!(
                errors[0].reason.contains("invalid type"),
                "{kind}: {errors:?}"
            );
        }
    }
}

/// `(field, value)` or `(field, reason fragment)` pairs.
type Pairs = &'static [(&'static str, &'static str)];

#[test]
fn each_plugin_reports_every_invalid_value_with_field_and_reason() {
    // (kind, overrides, expected (field, reason fragment) in order)
    let cases: &[(ProviderKind, Pairs, Pairs)] = &[
        (
            ProviderKind::Local,
            &[("runner_command", "")],
            &[("runner_command", "must not be empty")],
        ),
        (
            ProviderKind::AlibabaEci,
            &[
                ("region", " "),
                ("vswitch_id", "vs-1"),
                ("endpoint", "ftp://eci"),
                ("access_key_secret", "LTAIplaintext"),
            ],
            &[
                ("region", "must not be empty"),
                ("vswitch_id", "must start with `vsw-`"),
                ("endpoint", "https/http URL"),
                ("access_key_secret", "inline secrets are not accepted"),
            ],
        ),
        (
            ProviderKind::AzureAci,
            &[("location", ""), ("login_endpoint", "not a url")],
            &[
                ("location", "must not be empty"),
                ("login_endpoint", "is not a URL"),
            ],
        ),
        (
            ProviderKind::GcpCloudrun,
            &[("service_account_key", "{\"private_key\": \"x\"}")],
            &[("service_account_key", "env:NAME or file:PATH")],
        ),
        (
            ProviderKind::GcpBatch,
            &[("project", ""), ("token_endpoint", "mailto:x@y")],
            &[
                ("project", "must not be empty"),
                ("token_endpoint", "https/http URL"),
            ],
        ),
        (
            ProviderKind::AwsFargate,
            &[
                ("region", "eu-west"),
                ("secret_access_key", "wJalrplaintext"),
                ("task_role_arn", "role/shr"),
                ("capacity", "cheap"),
            ],
            &[
                ("region", "not an AWS region"),
                ("secret_access_key", "inline secrets are not accepted"),
                ("task_role_arn", "IAM role ARN"),
                ("capacity", "not one of"),
            ],
        ),
    ];
    for (kind, overrides, expected) in cases {
        let mut section = table(clouds::plugin(*kind).unwrap().example());
        for (key, value) in *overrides {
            section.insert((*key).into(), toml::Value::String((*value).into()));
        }
        let errors = Registry.parse(*kind, section).unwrap_err();
        let got: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let want: Vec<&str> = expected.iter().map(|(f, _)| *f).collect();
        assert_eq!(got, want, "{kind}: {errors:?}");
        for (error, (_, fragment)) in errors.iter().zip(*expected) {
            assert!(error.reason.contains(fragment), "{kind}: {error:?}");
            assert!(!error.reason.contains("plaintext"), "{kind}: secret echoed");
        }
    }
}

/// A config whose tenant `demo` has the section of `kind` (with `body`) and a local one.
fn config(kind: ProviderKind, body: &str) -> Config {
    let local = if kind == ProviderKind::Local {
        String::new()
    } else {
        "[tenants.demo.providers.local]\n".to_owned()
    };
    let text = format!(
        "[controller]\nid = \"demo-prod\"\n[tenants.demo]\n{local}[tenants.demo.providers.{kind}]\n{body}\n\
         [[registrations]]\nname = \"r\"\ntenant = \"demo\"\nscope = \"org\"\n\
         url = \"https://github.com/demo\"\nauth = {{ pat = \"env:P\" }}\ndetection = \"poll\"\n"
    );
    Config::parse(&text, "demo.toml", &Registry).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn secret_file(dir: &Path, name: &str, value: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, value).unwrap();
    path
}

fn gcp_key_json() -> String {
    let pem = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../cloud-gcp/tests/data/test-sa-key.pem"),
    )
    .unwrap();
    key_json(&pem)
}

/// A service-account key JSON around `pem`, written without a JSON dependency.
fn key_json(pem: &str) -> String {
    let escaped = pem.replace('\n', "\\n");
    format!(
        "{{\"type\":\"service_account\",\"project_id\":\"acme-runners\",\
         \"private_key_id\":\"k1\",\"private_key\":\"{escaped}\",\
         \"client_email\":\"runner@acme-runners.iam.gserviceaccount.com\",\
         \"token_uri\":\"https://oauth2.googleapis.com/token\"}}"
    )
}

#[test]
fn built_providers_have_the_capabilities_their_settings_announce() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ProviderKind::ALL
        .into_iter()
        .filter(|k| *k != ProviderKind::Local)
    {
        let value = match kind {
            ProviderKind::GcpCloudrun | ProviderKind::GcpBatch => gcp_key_json(),
            _ => "sim-only-secret".to_owned(),
        };
        let path = secret_file(dir.path(), &format!("{kind}-secret"), &value);
        let example = clouds::plugin(kind).unwrap().example();
        let body = example
            .lines()
            .map(|line| match line.split_once(" = \"") {
                Some((key, v)) if v.starts_with("env:") || v.starts_with("file:") => {
                    format!("{key} = \"file:{}\"", path.display())
                }
                _ => line.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let config = config(kind, &body);
        let tenant = config.tenant("demo").unwrap();
        let provider = clouds::build(kind, "shr-test", tenant).unwrap_or_else(|e| {
            panic!("{kind}: {:#}", anyhow_like(&e));
        });
        assert_eq!(provider.kind(), kind);
        assert_eq!(
            Some(provider.capabilities()),
            tenant.providers.capabilities(kind),
            "{kind}"
        );
    }
}

fn anyhow_like(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[test]
fn build_errors_name_tenant_provider_and_field_without_the_secret() {
    let config = config(
        ProviderKind::AzureAci,
        &clouds::plugin(ProviderKind::AzureAci)
            .unwrap()
            .example()
            .replace(
                "env:AZURE_CLIENT_SECRET",
                "file:/nonexistent/shr-test/azure-secret",
            ),
    );
    let tenant = config.tenant("demo").unwrap();
    let error = clouds::build(ProviderKind::AzureAci, "shr-test", tenant).unwrap_err();
    let message = anyhow_like(&error);
    for part in [
        "tenant demo",
        "provider azure-aci",
        "client_secret",
        "file:/nonexistent",
    ] {
        assert!(message.contains(part), "{message}");
    }
    let error = clouds::build(ProviderKind::GcpBatch, "shr-test", tenant).unwrap_err();
    assert!(
        matches!(error, clouds::BuildError::NoSection { .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("no [tenants.demo.providers.gcp-batch]")
    );
    let error = clouds::build(ProviderKind::Local, "shr-test", tenant).unwrap_err();
    assert!(
        matches!(
            error,
            clouds::BuildError::Build {
                source: providers::BuildError::Unsupported(_),
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn capabilities_are_none_without_a_section() {
    let config = config(
        ProviderKind::GcpCloudrun,
        clouds::plugin(ProviderKind::GcpCloudrun).unwrap().example(),
    );
    let providers = &config.tenant("demo").unwrap().providers;
    assert!(providers.capabilities(ProviderKind::AzureAci).is_none());
    let run = providers.capabilities(ProviderKind::GcpCloudrun).unwrap();
    assert!(!run.dind, "Cloud Run has no dind");
    assert!(!run.shapes.is_empty());
    assert_eq!(
        providers.region(ProviderKind::GcpCloudrun),
        Some("europe-west4")
    );
}
