//! The `shr` command line as an operator meets it: registration check and legacy import,
//! with bad input answered by file, field and reason and exit code 64.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::PathBuf;
use std::process::{Command, Output};

fn shr(args: &[&str]) -> Output {
    let bin = shr_lab::bins::product_binary().expect("the shr binary builds");
    Command::new(bin).args(args).output().expect("shr runs")
}

fn example(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../registration/examples")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn check_accepts_every_shipped_example_and_prints_a_summary() {
    for name in ["all-in-one.toml", "centralized.toml"] {
        let out = shr(&["registration", "check", &example(name)]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("tenant "), "{stdout}");
        assert!(stdout.contains("registration "), "{stdout}");
    }
}

#[test]
fn check_names_file_field_and_reason_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[tenants.acme]
[tenants.acme.providers.local]

[[registrations]]
name = "acme"
tenant = "nobody"
scope = "org"
url = "https://github.com/acme"
auth = { pat = "ghp_plaintext_is_refused" }
"#,
    )
    .unwrap();
    let out = shr(&["registration", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: registrations[0].tenant:", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("registrations[0].auth.pat"), "{stderr}");
    assert!(
        !stderr.contains("ghp_plaintext_is_refused"),
        "a refused secret is not echoed: {stderr}"
    );
}

#[test]
fn legacy_import_yields_toml_that_checks_and_holds_no_secret() {
    let out = shr(&["registration", "import-legacy", &example("legacy.json")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = String::from_utf8(out.stdout).unwrap();
    for secret in [
        "ghp_LegacyOrgToken1234567890",
        "LegacyAlibabaSecretValue42",
        "LegacyAzureClientSecret~xyz",
        "eyJ0eXBlIjoic2VydmljZV9hY2NvdW50In0LegacyGcpCred",
    ] {
        assert!(
            !toml.contains(secret),
            "secret {secret} leaked into the TOML"
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SHR_"),
        "the variables to set are listed: {stderr}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imported.toml");
    std::fs::write(&path, &toml).unwrap();
    let check = shr(&["registration", "check", path.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn legacy_import_of_a_bad_value_names_item_and_field_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(
        &path,
        r#"[{"Type":"Org","Name":"acme","Url":"https://github.com/acme","Cpu":"abc","Pat":"ghp_x"}]"#,
    )
    .unwrap();
    let out = shr(&["registration", "import-legacy", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[0](acme).Cpu"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing printed on failure");
}

#[test]
fn run_with_an_invalid_config_exits_64_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[controller]\nactors = [\"dispatcher\"]\n").unwrap();
    let out = shr(&["run", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("controller.actors"));
}
