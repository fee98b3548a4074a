#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The runs-on grammar: parsing, admission, resolution priority and policy.

use bus_schema::{Network, ProviderKind};
use proptest::prelude::*;
use registration::{
    Config,
    labels::{DeclineReason, Generic, Label, admit, parse_label, resolve},
};

#[test]
fn labels_parse_by_strict_prefix() {
    let cases: Vec<(&str, Label)> = vec![
        ("self-hosted", Label::Generic(Generic::SelfHosted)),
        ("Linux", Label::Generic(Generic::Linux)),
        ("X64", Label::Generic(Generic::X64)),
        ("arm64", Label::Generic(Generic::Arm64)),
        ("cpu-2", Label::Cpu(2000)),
        ("CPU-0.5", Label::Cpu(500)),
        ("memory-4", Label::Memory(4096)),
        ("memory-0.5", Label::Memory(512)),
        ("vsw-BP1abc", Label::VSwitch("vsw-bp1abc".into())),
        ("sg-bp1abc", Label::SecurityGroup("sg-bp1abc".into())),
        ("subnet-runners-gpu", Label::Subnet("runners-gpu".into())),
        ("img-2.330.0", Label::Image("2.330.0".into())),
        ("sid-nightly", Label::Sid("nightly".into())),
        ("disk-ci-cache", Label::Disk("ci-cache".into())),
        ("team-img-x", Label::Plain("team-img-x".into())),
        ("team-cpu-4", Label::Plain("team-cpu-4".into())),
        (
            "serverless-hosted-runner",
            Label::Plain("serverless-hosted-runner".into()),
        ),
        ("cpus-2", Label::Plain("cpus-2".into())),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_label(input), expected, "{input}");
    }
    for bad in [
        "cpu-0",
        "cpu--1",
        "cpu-NaN",
        "cpu-1e3",
        "cpu-0.0001",
        "cpu-99999",
        "cpu-2000",
        "cpu-",
        "memory-0",
        "memory-abc",
        "vsw-",
        "vsw-a_b",
        "sg-x.y",
        "img-",
        "img-.hidden",
        "sid-",
        "disk-X",
        "disk-ab",
        "subnet-",
        "has space",
        "",
        "a,b",
    ] {
        assert!(
            matches!(parse_label(bad), Label::Invalid { .. }),
            "{bad}: {:?}",
            parse_label(bad)
        );
    }
}

const CONFIG: &str = r#"
[controller]
id = "acme-prod"

[webhook]
secret = "env:WH"

[tenants.acme]
charge_labels = ["cc-1", "shared"]
[tenants.acme.defaults]
provider = "alibaba-eci"
cpu = 2
image = "ghcr.io/acme/runner:1.0"
runner_group_id = 7
max_runtime_secs = 99999
[tenants.acme.providers.alibaba-eci]
region = "cn-shanghai"
access_key_id = "id"
access_key_secret = "env:ALI"
vswitch_id = "vsw-tenant"
security_group_id = "sg-tenant"
[tenants.acme.providers.local]

[[registrations]]
name = "open"
tenant = "acme"
scope = "org"
url = "https://github.com/acme"
auth = { pat = "env:P" }
labels = ["acme-runner", "acme-big"]
charge_labels = ["team-a", "shared"]
[registrations.defaults]
memory = 4
network = { security_group = "sg-reg" }
[registrations.limits]
max_cpu = 4
max_memory = 8
allowed_images = ["2.*", "ghcr.io/acme/special:*"]
allowed_vswitches = ["vsw-other"]
allowed_security_groups = ["sg-other"]
allowed_subnets = ["gpu"]
allowed_buckets = ["cache-bucket"]
max_runtime_secs = 3600

[[registrations]]
name = "strict"
tenant = "acme"
scope = "repo"
url = "https://github.com/acme/app"
auth = { pat = "env:P" }
[registrations.defaults]
provider = "local"
dind = true
"#;

fn labels(ls: &[&str]) -> Vec<String> {
    ls.iter().map(|s| (*s).to_owned()).collect()
}

fn config() -> Config {
    Config::parse(CONFIG, "labels.toml", &clouds::Registry).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn admission_decisions() {
    let config = config();
    let open = config.registration("open").unwrap();
    let strict = config.registration("strict").unwrap();
    let cases: &[(&[&str], &str, Option<&str>)] = &[
        (&["acme-runner"], "open", None),
        (
            &["ACME-RUNNER", "self-hosted", "linux", "x64"],
            "open",
            None,
        ),
        (&["acme-runner", "acme-big", "cpu-2"], "open", None),
        (&["self-hosted", "linux"], "open", Some("no_runner_label")),
        (&[], "open", Some("no_runner_label")),
        (
            &["serverless-hosted-runner"],
            "open",
            Some("no_runner_label"),
        ),
        (&["serverless-hosted-runner"], "strict", None),
        (
            &["serverless-hosted-runner", "team-img-x"],
            "strict",
            Some("unknown_label"),
        ),
        (
            &["serverless-hosted-runner", "ubuntu-latest"],
            "strict",
            Some("unknown_label"),
        ),
        (
            &["serverless-hosted-runner", "cpu-abc"],
            "strict",
            Some("invalid_label"),
        ),
        (
            &["serverless-hosted-runner", "cpu-2", "cpu-4"],
            "strict",
            Some("invalid_label"),
        ),
        (
            &["serverless-hosted-runner", "cpu-2", "CPU-2.0"],
            "strict",
            None,
        ),
        (
            &["serverless-hosted-runner", "sid-a", "sid-b"],
            "strict",
            None,
        ),
    ];
    for (job, reg, expected) in cases {
        let reg = if *reg == "open" { open } else { strict };
        let got = admit(&labels(job), reg).err().map(|d| d.code());
        assert_eq!(got, *expected, "{job:?} on {}", reg.name);
    }
    let decline = admit(&labels(&["acme-runner", "team-img-x"]), open).unwrap_err();
    assert_eq!(
        decline.reason,
        DeclineReason::UnknownLabel("team-img-x".into())
    );
    assert!(decline.to_string().contains("team-img-x") && decline.to_string().contains("open"));
}

#[test]
fn resolution_priority_is_job_then_registration_then_tenant_then_builtin() {
    let config = config();
    let tenant = config.tenant("acme").unwrap();
    let open = config.registration("open").unwrap();
    let spec = resolve(&labels(&["acme-runner"]), open, tenant).unwrap();
    assert_eq!(spec.provider, ProviderKind::AlibabaEci); // tenant
    assert_eq!(spec.region.as_deref(), Some("cn-shanghai"));
    assert_eq!(spec.cpu_millis, 2000); // tenant
    assert_eq!(spec.memory_mib, 4096); // registration over built-in
    assert_eq!(spec.image, "ghcr.io/acme/runner:1.0"); // tenant
    assert_eq!(
        spec.network,
        Network {
            vswitch: Some("vsw-tenant".into()),    // provider section
            security_group: Some("sg-reg".into()), // registration over provider section
            subnet: None,
        }
    );
    assert_eq!(spec.runner_group_id, 7);
    assert_eq!(spec.charge_labels, ["cc-1", "shared", "team-a"]);
    assert_eq!(spec.max_runtime_secs, 3600); // tenant default capped by the limit
    assert!(!spec.dind);

    let job = labels(&[
        "acme-runner",
        "cpu-0.5",
        "memory-1",
        "vsw-other",
        "sg-other",
        "subnet-gpu",
        "img-2.330.0",
        "disk-cache-bucket",
        "sid-x",
        "linux",
    ]);
    let spec = resolve(&job, open, tenant).unwrap();
    assert_eq!(spec.cpu_millis, 500);
    assert_eq!(spec.memory_mib, 1024);
    assert_eq!(spec.network.vswitch.as_deref(), Some("vsw-other"));
    assert_eq!(spec.network.security_group.as_deref(), Some("sg-other"));
    assert_eq!(spec.network.subnet.as_deref(), Some("gpu"));
    assert_eq!(spec.image, "ghcr.io/acme/runner:2.330.0");
    assert_eq!(spec.disk_bucket.as_deref(), Some("cache-bucket"));
    assert_eq!(
        spec.labels, job,
        "the runner covers every job label, sid- included"
    );

    let strict = config.registration("strict").unwrap();
    let spec = resolve(&labels(&["serverless-hosted-runner"]), strict, tenant).unwrap();
    assert_eq!(spec.provider, ProviderKind::Local);
    assert_eq!(spec.region, None);
    assert_eq!(spec.memory_mib, registration::DEFAULT_MEMORY_MIB);
    assert!(spec.dind);
    assert_eq!(spec.max_runtime_secs, 21_600);
}

#[test]
fn policy_declines_what_the_registration_does_not_allow() {
    let config = config();
    let tenant = config.tenant("acme").unwrap();
    let open = config.registration("open").unwrap();
    let strict = config.registration("strict").unwrap();
    let cases: &[(&str, &[&str], Option<&str>)] = &[
        ("open", &["cpu-4"], None),
        ("open", &["cpu-4.001"], Some("exceeds_policy")),
        ("open", &["memory-8"], None),
        ("open", &["memory-9"], Some("exceeds_policy")),
        ("open", &["img-1.0"], None),
        ("open", &["img-2.1"], None),
        ("open", &["img-3.0"], Some("not_allowed")),
        ("open", &["vsw-tenant"], None),
        ("open", &["vsw-evil"], Some("not_allowed")),
        ("open", &["sg-reg"], None),
        ("open", &["sg-tenant"], Some("not_allowed")),
        ("open", &["subnet-other"], Some("not_allowed")),
        ("open", &["disk-other-bucket"], Some("not_allowed")),
        // Empty allow-lists: only the defaults.
        ("strict", &["img-1.0"], None),
        ("strict", &["img-2.0"], Some("not_allowed")),
        ("strict", &["vsw-other"], Some("not_allowed")),
        ("strict", &["disk-cache-bucket"], Some("not_allowed")),
        ("strict", &["subnet-gpu"], Some("not_allowed")),
        // No limits set: bounded by default at 4 vCPU and 16 GiB.
        ("strict", &["cpu-4"], None),
        ("strict", &["cpu-64"], Some("exceeds_policy")),
        ("strict", &["memory-16"], None),
        ("strict", &["memory-17"], Some("exceeds_policy")),
    ];
    for (reg, extra, expected) in cases {
        let (reg, runner) = if *reg == "open" {
            (open, "acme-runner")
        } else {
            (strict, "serverless-hosted-runner")
        };
        let mut job = vec![runner];
        job.extend_from_slice(extra);
        let got = resolve(&labels(&job), reg, tenant).err().map(|d| d.code());
        assert_eq!(got, *expected, "{extra:?} on {}", reg.name);
    }
    let d = resolve(&labels(&["acme-runner", "img-3.0"]), open, tenant).unwrap_err();
    assert_eq!(
        d.reason,
        DeclineReason::NotAllowed {
            label: "img-3.0".into()
        }
    );
}

fn decimal(v: u32) -> String {
    let (i, f) = (v / 1000, v % 1000);
    if f == 0 {
        i.to_string()
    } else {
        format!("{i}.{:03}", f)
    }
}

proptest! {
    #[test]
    fn parser_never_panics(s in "\\PC*") {
        let _ = parse_label(&s);
    }

    #[test]
    fn prefix_in_the_middle_is_never_dynamic(
        head in "[a-z0-9]{1,10}-",
        prefix in prop::sample::select(vec!["cpu-", "memory-", "vsw-", "sg-", "subnet-", "img-", "sid-", "disk-"]),
        tail in "[a-z0-9.]{1,10}",
    ) {
        let label = format!("{head}{prefix}{tail}");
        let is_generic_or_plain = matches!(parse_label(&label), Label::Plain(_) | Label::Generic(_));
        let starts_with_prefix = ["cpu-", "memory-", "vsw-", "sg-", "subnet-", "img-", "sid-", "disk-"]
            .iter().any(|p| label.starts_with(p));
        prop_assert!(is_generic_or_plain || starts_with_prefix, "{label}");
    }

    #[test]
    fn numeric_labels_round_trip(v in 1u32..=1_024_000) {
        prop_assert_eq!(parse_label(&format!("cpu-{}", decimal(v))), Label::Cpu(v));
        let text = decimal(v);
        let trimmed = if text.contains('.') { text.trim_end_matches('0').to_owned() } else { text.clone() };
        prop_assert_eq!(parse_label(&format!("cpu-{trimmed}")), Label::Cpu(v));
        prop_assert_eq!(
            parse_label(&format!("memory-{text}")),
            Label::Memory(u32::try_from((u64::from(v) * 1024).div_ceil(1000)).unwrap())
        );
    }
}
