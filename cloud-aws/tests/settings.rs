#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `aws-fargate` section: parsing through the plug-in, every problem reported by field,
//! and the provider configuration it becomes.

use cloud_aws::settings::FargateCredentials;
use cloud_aws::{Capacity, CredentialSource, FargateSettings};
use providers::{CloudPlugin, CloudSettings, Plugin};
use registration::{FieldError, ProviderSettings};
use secrecy::ExposeSecret as _;

const PLUGIN: Plugin<FargateSettings> = Plugin::NEW;

fn parse(extra: &str) -> Result<FargateSettings, Vec<FieldError>> {
    let text = format!("{}{extra}", FargateSettings::EXAMPLE);
    let table: toml::Table = text.parse().unwrap();
    let settings = PLUGIN.parse(table)?;
    let any: &dyn std::any::Any = &*settings;
    Ok(any.downcast_ref::<FargateSettings>().unwrap().clone())
}

fn fields(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

#[test]
fn the_example_is_static_keys_on_demand_with_fargate_capabilities() {
    let s = parse("").unwrap();
    assert!(matches!(s.credentials, FargateCredentials::Static { .. }));
    assert_eq!(s.capacity, Capacity::OnDemand);
    assert_eq!(s.region(), Some("eu-west-1"));
    let caps = s.capabilities();
    assert!(
        caps.shapes.is_empty(),
        "any size within the caps: the provider rounds up"
    );
    assert_eq!(
        (caps.max_cpu_millis, caps.max_memory_mib),
        (16_000, 122_880)
    );
    assert!(caps.allows(250, 4096) && !caps.allows(16_001, 512));
    assert!(!caps.dind && !caps.disk_mount);
}

#[test]
fn caps_bound_the_sizes_and_must_be_a_fargate_pair() {
    let s = parse("max_cpu_millis = 2000\nmax_memory_mib = 8192\n").unwrap();
    let caps = s.capabilities();
    assert!(caps.allows(2000, 8192) && !caps.allows(4000, 8192) && !caps.allows(2000, 9216));
    // The caps must be a Fargate pair (2 vCPU takes 4-16 GiB).
    let errors = parse("max_cpu_millis = 2000\nmax_memory_mib = 2048\n").unwrap_err();
    assert_eq!(fields(&errors), ["max_memory_mib"]);
    assert!(
        errors[0].reason.contains("4096-16384 MiB in steps of 1024"),
        "{errors:?}"
    );
}

#[test]
fn without_keys_the_credential_chain_is_used() {
    let text = FargateSettings::EXAMPLE
        .lines()
        .filter(|l| !l.starts_with("access_key_id") && !l.starts_with("secret_access_key"))
        .collect::<Vec<_>>()
        .join("\n");
    let settings = PLUGIN.parse(text.parse().unwrap()).unwrap();
    let any: &dyn std::any::Any = &*settings;
    let s = any.downcast_ref::<FargateSettings>().unwrap();
    assert!(matches!(s.credentials, FargateCredentials::Chain));
    assert!(matches!(
        s.config("ctl").unwrap().credentials,
        CredentialSource::Chain(_)
    ));
}

#[test]
fn every_problem_is_reported_under_its_field() {
    let text = r#"region = "eu-west-1"
cluster = " "
access_key_id = "AKIAIOSFODNN7EXAMPLE"
task_role_arn = "arn:aws:iam::123456789012:role/shr-runner-task"
task_role_id = "shr-runner-task"
subnets = ["subnet-0a1b", "subnet-XY"]
security_groups = ["sg-0a1b"]
default_security_groups = ["sg-ffff"]
max_cpu_millis = 3000
secret_prefix = "shr jit"
env = { ACTIONS_RUNNER_INPUT_JITCONFIG = "x", LANG = "C" }
request_timeout_secs = 0
"#;
    let errors = PLUGIN.parse(text.parse().unwrap()).unwrap_err();
    assert_eq!(
        fields(&errors),
        [
            "cluster",
            "secret_access_key",
            "task_role_id",
            "subnets[1]",
            "default_security_groups[0]",
            "max_cpu_millis",
            "secret_prefix",
            "env.ACTIONS_RUNNER_INPUT_JITCONFIG",
            "request_timeout_secs",
        ],
        "{errors:?}"
    );
}

#[test]
fn a_session_token_needs_keys_and_is_a_reference() {
    let errors = parse("session_token = \"IQoJb3JpZ2luX2VjEXAMPLE\"\n").unwrap_err();
    assert_eq!(fields(&errors), ["session_token"]);
    assert!(!errors[0].reason.contains("IQoJ"), "{errors:?}");
    let s = parse("session_token = \"env:AWS_SESSION_TOKEN\"\n").unwrap();
    assert!(matches!(
        s.credentials,
        FargateCredentials::Static {
            session_token: Some(_),
            ..
        }
    ));
}

#[test]
fn the_config_carries_every_setting_and_the_resolved_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n").unwrap();
    let text = FargateSettings::EXAMPLE.replace(
        "env:AWS_SECRET_ACCESS_KEY",
        &format!("file:{}", key.display()),
    ) + r#"endpoint = "http://127.0.0.1:4566/"
subnets = ["subnet-0a1b", "subnet-0c2d"]
security_groups = ["sg-0a1b", "sg-0c2d"]
default_security_groups = ["sg-0c2d"]
assign_public_ip = true
capacity = "spot-with-fallback"
env = { LANG = "C.UTF-8" }
"#;
    // `subnets` appears twice in this text: drop the example's.
    let text = text.replacen("subnets = [\"subnet-0a1b2c3d\"]\n", "", 1);
    let settings = PLUGIN.parse(text.parse().unwrap()).unwrap();
    let any: &dyn std::any::Any = &*settings;
    let cfg = any
        .downcast_ref::<FargateSettings>()
        .unwrap()
        .config("ctl-1")
        .unwrap();
    assert_eq!(cfg.ecs_endpoint, "http://127.0.0.1:4566");
    assert_eq!(cfg.secrets_endpoint, "http://127.0.0.1:4566");
    assert_eq!(cfg.controller_id, "ctl-1");
    assert_eq!(cfg.subnets, ["subnet-0a1b", "subnet-0c2d"]);
    assert_eq!(cfg.default_security_groups, ["sg-0c2d"]);
    assert!(cfg.assign_public_ip);
    assert_eq!(cfg.capacity, Capacity::SpotWithFallback);
    assert_eq!(cfg.env.get("LANG").map(String::as_str), Some("C.UTF-8"));
    match &cfg.credentials {
        CredentialSource::Static(c) => {
            assert_eq!(c.access_key_id, "AKIAIOSFODNN7EXAMPLE");
            assert_eq!(
                c.secret_access_key.expose_secret(),
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !format!("{cfg:?}").contains("wJalr"),
        "the key is not in Debug output"
    );
}

#[test]
fn capacity_can_be_set_per_registration() {
    let s = parse(
        "capacity = \"spot\"\ncapacity_by_registration = { ci-heavy = \"spot-with-fallback\", release = \"on-demand\" }\n",
    )
    .unwrap();
    assert_eq!(s.capacity, Capacity::Spot);
    assert_eq!(
        s.capacity_by_registration.into_iter().collect::<Vec<_>>(),
        [
            ("ci-heavy".to_owned(), Capacity::SpotWithFallback),
            ("release".to_owned(), Capacity::OnDemand)
        ]
    );

    let errors = parse("capacity_by_registration = { ci-heavy = \"cheapest\" }\n").unwrap_err();
    assert_eq!(fields(&errors), ["capacity_by_registration.ci-heavy"]);
    assert!(
        errors[0].reason.contains("spot-with-fallback"),
        "{errors:?}"
    );
}
