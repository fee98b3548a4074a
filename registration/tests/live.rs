#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Live registrations: a registration file is validated against the running configuration,
//! with errors naming the file and the field in it; merged tables that do not fit are left out.

use registration::Config;

const BASE: &str = r#"
[controller]
id = "central"
[webhook]
secret = "env:WH"
[tenants.acme.providers.local]
[tenants.globex.providers.local]
[[registrations]]
name = "acme-org"
tenant = "acme"
scope = "org"
url = "https://github.com/acme"
auth = { pat = "env:ACME_PAT" }
"#;

fn base() -> Config {
    Config::parse(BASE, "central.toml", &clouds::Registry).unwrap()
}

const NEW: &str = r#"
[[registrations]]
name = "globex-org"
tenant = "globex"
scope = "org"
url = "https://github.com/globex"
auth = { pat = "env:GLOBEX_PAT" }
labels = ["globex-ci"]
"#;

#[test]
fn a_valid_file_yields_one_table_per_registration_that_merges_back() {
    let tables = base()
        .live_tables(NEW, "globex.toml", &clouds::Registry)
        .unwrap();
    assert_eq!(tables.len(), 1);
    assert_eq!(
        (tables[0].name.as_str(), tables[0].tenant.as_str()),
        ("globex-org", "globex")
    );
    let (merged, rejected) = base().with_live(&[tables[0].toml.as_str()], &clouds::Registry);
    assert!(rejected.is_empty());
    let reg = merged.registration("globex-org").unwrap();
    assert_eq!(reg.labels, ["globex-ci"]);
    assert!(merged.registration("acme-org").is_some());
}

#[test]
fn errors_name_the_applied_file_and_its_own_field() {
    let bad = NEW
        .replace("tenant = \"globex\"", "tenant = \"ghost\"")
        .replace("[\"globex-ci\"]", "[\"cpu-2\"]");
    let errors = base()
        .live_tables(&bad, "globex.toml", &clouds::Registry)
        .unwrap_err();
    assert!(errors.has_field("registrations[0].tenant"), "{errors}");
    assert!(
        errors.errors.iter().all(|e| e.file == "globex.toml"),
        "{errors}"
    );
    // A name already used by the running configuration.
    let dup = NEW.replace("globex-org", "acme-org");
    let errors = base()
        .live_tables(&dup, "dup.toml", &clouds::Registry)
        .unwrap_err();
    assert!(errors.has_field("registrations[0].name"), "{errors}");
    // Anything but registrations is refused.
    let errors = base()
        .live_tables("[controller]\nid = \"x\"\n", "x.toml", &clouds::Registry)
        .unwrap_err();
    assert!(errors.has_field("controller"), "{errors}");
    let errors = base()
        .live_tables("[[registrations]\n", "x.toml", &clouds::Registry)
        .unwrap_err();
    assert!(
        errors.to_string().contains("line 2") || errors.to_string().contains("line 1"),
        "{errors}"
    );
}

#[test]
fn a_live_table_that_does_not_fit_is_left_out_and_the_others_kept() {
    let good = base()
        .live_tables(NEW, "n.toml", &clouds::Registry)
        .unwrap();
    let ghost = "name = \"ghost-org\"\ntenant = \"ghost\"\nscope = \"org\"\nurl = \"https://github.com/ghost\"\nauth = { pat = \"env:X\" }\n";
    let (merged, rejected) = base().with_live(&[ghost, good[0].toml.as_str()], &clouds::Registry);
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].0, 0);
    assert!(merged.registration("globex-org").is_some());
    assert!(merged.registration("ghost-org").is_none());
}
