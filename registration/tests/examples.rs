#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every shipped example parses, and the legacy sample imports without leaking secrets.

use std::path::Path;

use registration::{Config, legacy::import_legacy};

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

#[test]
fn every_toml_example_validates_without_its_secrets_set() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config = Config::load(&path, &clouds::Registry).unwrap_or_else(|e| panic!("{e}"));
            assert!(!config.registrations().is_empty(), "{}", path.display());
            assert!(!config.summary().is_empty());
            seen += 1;
        }
    }
    assert!(seen >= 2);
}

#[test]
fn centralized_example_routes_and_summarizes() {
    let config = Config::load(&example("centralized.toml"), &clouds::Registry).unwrap();
    assert!(config.serves_tenant("retail") && !config.serves_tenant("data"));
    let ghes = config.registration("retail-azure").unwrap();
    assert_eq!(ghes.api_url().as_str(), "https://ghe.example.com/api/v3");
    let summary = config.summary();
    for needle in [
        "tenant retail",
        "alibaba-eci (cn-shanghai)",
        "registration data-enterprise",
        "enterprises/bigcorp",
        // Effective limits: raised where the file says so, bounded by default elsewhere.
        "limits: max_runners 50, max_cpu 8 vCPU, max_memory 16 GiB",
        "limits: max_runners 100, max_cpu 4 vCPU, max_memory 16 GiB",
    ] {
        assert!(summary.contains(needle), "{needle} missing from\n{summary}");
    }
}

#[test]
fn legacy_sample_imports_to_valid_toml_without_secret_values() {
    let json = std::fs::read_to_string(example("legacy.json")).unwrap();
    let import =
        import_legacy(&json, "legacy.json", &clouds::Registry).unwrap_or_else(|e| panic!("{e}"));
    let config = Config::parse(&import.toml, "imported.toml", &clouds::Registry)
        .unwrap_or_else(|e| panic!("{e}\n{}", import.toml));
    for secret in [
        "ghp_LegacyOrgToken1234567890",
        "ghp_LegacyRepoToken0987654321",
        "LegacyAlibabaSecretValue42",
        "LegacyAzureClientSecret~xyz",
        "LegacyLogAnalyticsKey==",
        "eyJ0eXBlIjoic2VydmljZV9hY2NvdW50In0LegacyGcpCred",
        "LegacyGcpApiKey",
        "ghp_LegacyGcpToken1122334455",
    ] {
        assert!(
            !import.toml.contains(secret),
            "{secret} leaked into\n{}",
            import.toml
        );
        assert!(
            !import
                .env_vars
                .iter()
                .any(|(v, w)| v.contains(secret) || w.contains(secret))
        );
    }
    // Every env: reference in the TOML is listed.
    for (var, _) in &import.env_vars {
        assert!(import.toml.contains(&format!("env:{var}")), "{var}");
    }
    assert_eq!(config.registrations().len(), 4);
    // Same Alibaba key and region: one tenant; Azure and GCP each get their own.
    let tenants: Vec<&str> = config.tenants().map(|t| t.name.as_str()).collect();
    assert_eq!(tenants, ["legacy-1", "legacy-2", "legacy-3"]);
    let repo = config.registration("sentry-exporter").unwrap();
    assert_eq!(repo.tenant, "legacy-1");
    assert_eq!(
        repo.defaults.network.vswitch.as_deref(),
        Some("vsw-uf6legacy02")
    );
    assert_eq!(repo.detection, registration::Detection::WebhookAndPoll);
    let azure = config.registration("ingka-group-digital").unwrap();
    assert_eq!(azure.url.as_str(), "https://github.com/ingka-group-digital");
    assert_eq!(
        azure.repos,
        ["app-monitor-agent", "serverless-hosted-runner"]
    );
    let gcp = config.registration("bigcorp").unwrap();
    assert_eq!(
        gcp.scope(),
        bus_schema::Scope::Enterprise {
            enterprise: "bigcorp".into()
        }
    );
    let gcp_tenant = config.tenant(&gcp.tenant).unwrap();
    assert_eq!(
        gcp_tenant.defaults.provider,
        Some(bus_schema::ProviderKind::GcpBatch)
    );
    assert_eq!(gcp_tenant.defaults.dind, Some(true));
    assert!(config.webhook.secret.is_some());
}
