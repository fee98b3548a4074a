#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Legacy import failures name the item and the legacy field.

use registration::legacy::import_legacy;

const BASE: &str = r#""Type":"Org","Name":"acme","Url":"https://github.com/acme","Pat":"x","Key":"k","Secret":"s","Region":"cn-shanghai","SecGpId":"sg-a1","VSwitchId":"vsw-a1""#;

fn item(extra: &str) -> String {
    if extra.is_empty() {
        format!("[{{{BASE}}}]")
    } else {
        format!("[{{{BASE},{extra}}}]")
    }
}

#[test]
fn bad_values_fail_naming_item_and_field() {
    let cases: &[(&str, &str)] = &[
        (r#""Cpu":"abc""#, "[0](acme).Cpu"),
        (r#""Memory":"-1""#, "[0](acme).Memory"),
        (r#""Unknown":"1""#, "[0].Unknown"),
        (r#""Size":"many""#, "[0](acme).Size"),
        (r#""PullInterval":"soon""#, "[0](acme).PullInterval"),
        (r#""CloudProvider":"aws""#, "[0](acme).CloudProvider"),
        (
            r#""GcpDind":"yes","CloudProvider":"gcp","GcpProject":"p","GcpRegion":"r","GcpCredential":"c""#,
            "[0](acme).GcpDind",
        ),
        (r#""Labels":"cpu-2""#, "[0](acme).Labels"),
        (r#""Cpu":2"#, "[0].Cpu"),
        (r#""cpu":"1","CPU":"2""#, "[0].cpu"),
    ];
    for (extra, field) in cases {
        let json = item(extra);
        let errors = import_legacy(&json, "regs.json", &clouds::Registry).expect_err(extra);
        assert!(
            errors.has_field(field),
            "{extra}: expected {field}, got\n{errors}"
        );
        assert!(errors.to_string().starts_with("regs.json: "), "{errors}");
    }
}

#[test]
fn missing_cloud_fields_are_reported_together() {
    let json = r#"[{"Type":"Org","Name":"acme","Url":"https://github.com/acme","CloudProvider":"azure"},
                   {"Type":"Team","Name":"b","Url":"https://github.com/b"}]"#;
    let errors = import_legacy(json, "r.json", &clouds::Registry).unwrap_err();
    for field in [
        "[0](acme).ArmSubscriptionId",
        "[0](acme).ArmTenantId",
        "[0](acme).AciLocation",
        "[1](b).Type",
    ] {
        assert!(errors.has_field(field), "{field}:\n{errors}");
    }
}

#[test]
fn minimal_item_imports_with_env_references_only() {
    let import = import_legacy(&item(""), "r.json", &clouds::Registry).unwrap();
    assert!(
        import.toml.contains("pat = \"env:SHR_ACME_PAT\""),
        "{}",
        import.toml
    );
    assert!(
        import
            .toml
            .contains("access_key_secret = \"env:SHR_LEGACY_1_ACCESS_KEY_SECRET\"")
    );
    assert!(!import.toml.contains("\"s\""));
    assert!(
        !import.toml.contains("[webhook]"),
        "poll-only legacy needs no webhook secret"
    );
}

#[test]
fn not_an_array_is_rejected() {
    for json in ["{}", "nope", "[]", "[1]"] {
        assert!(
            import_legacy(json, "r.json", &clouds::Registry).is_err(),
            "{json}"
        );
    }
}

/// The predecessor's `Labels` were added to `serverless-hosted-runner`: the imported
/// registration keeps that label and adds the legacy ones, once each.
#[test]
fn legacy_labels_are_added_to_the_default_label() {
    for (labels, want) in [
        (
            r#""Labels":"gpu,big""#,
            &["serverless-hosted-runner", "gpu", "big"][..],
        ),
        (
            r#""Labels":"serverless-hosted-runner,gpu""#,
            &["serverless-hosted-runner", "gpu"][..],
        ),
        ("", &["serverless-hosted-runner"][..]),
    ] {
        let import = import_legacy(&item(labels), "r.json", &clouds::Registry).unwrap();
        let config =
            registration::Config::parse(&import.toml, "r.toml", &clouds::Registry).unwrap();
        let reg = &config.registrations()[0];
        assert_eq!(reg.labels, want, "{labels}\n{}", import.toml);
    }
}
