//! `shr registration check` with every cloud plug-in's section: an unknown or mistyped field
//! is reported as `FILE: FIELD: REASON` with exit code 64, and the example section passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use bus_schema::ProviderKind;

fn check(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shr"))
        .args(["registration", "check"])
        .arg(path)
        .output()
        .expect("shr runs")
}

fn config(kind: ProviderKind, body: &str) -> String {
    let local = if kind == ProviderKind::Local {
        ""
    } else {
        "[tenants.acme.providers.local]\n"
    };
    format!(
        "[tenants.acme]\n{local}\n[tenants.acme.providers.{kind}]\n{body}\n\
         [[registrations]]\nname = \"acme\"\ntenant = \"acme\"\nscope = \"org\"\n\
         url = \"https://github.com/acme\"\nauth = {{ pat = \"env:ACME_PAT\" }}\n\
         detection = \"poll\"\n[controller]\nid = \"acme-prod\"\n"
    )
}

#[test]
fn every_plugin_section_is_checked_field_by_field_with_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    for plugin in clouds::PLUGINS {
        let kind = plugin.kind();
        let path = dir.path().join(format!("{kind}.toml"));
        let file = path.display().to_string();

        std::fs::write(&path, config(kind, plugin.example())).unwrap();
        let out = check(&path);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(&format!("{file}: ok")), "{kind}: {stdout}");

        // Serde stops at a section's first error, so one bad field per run.
        let first_key = plugin.example().split(" =").next().unwrap().to_owned();
        let mistyped = plugin.example().replacen(
            &format!("{first_key} = "),
            &format!("{first_key} = [1] #"),
            1,
        );
        let header_line = if kind == ProviderKind::Local { 3 } else { 4 };
        let section = format!("{file}: tenants.acme.providers.{kind}");
        for (body, want) in [
            (
                format!("{}colour = \"blue\"\n", plugin.example()),
                format!("{section}.colour: unknown field `colour`"),
            ),
            (mistyped, format!("{section}.{first_key}: invalid type")),
        ] {
            std::fs::write(&path, config(kind, &body)).unwrap();
            let out = check(&path);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(64), "{kind}: {stderr}");
            let at = format!("(section at line {header_line})");
            assert!(
                stderr
                    .lines()
                    .any(|l| l.starts_with(&want) && l.ends_with(&at)),
                "{kind}: no line `{want}...{at}` in:\n{stderr}"
            );
        }
    }
}
