//! The runs-on label grammar (DESIGN.md §6): which jobs are ours and what runner they get.
//!
//! Guarantees: prefixes match only at the start of a label (`team-img-x` is a plain label,
//! never an image); labels compare case-insensitively, as GitHub compares them; a value is
//! either valid or the job is declined with a machine-readable reason. What a workflow may
//! ask for is bounded by the registration's limits and allow-lists.

use std::fmt;

use bus_schema::{Network, RunnerSpec};

use crate::{
    Registration, Tenant,
    config::{
        DEFAULT_CPU_MILLIS, DEFAULT_IMAGE, DEFAULT_MEMORY_MIB, DEFAULT_PROVIDER,
        DEFAULT_RUNNER_GROUP_ID,
    },
    syntax,
};

/// A label every self-hosted runner carries; accepted on any job and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generic {
    SelfHosted,
    Linux,
    X64,
    Arm64,
}

/// One runs-on label, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Label {
    /// `self-hosted`, `linux`, `x64`, `arm64`.
    Generic(Generic),
    /// No known prefix: a registration label, or unknown.
    Plain(String),
    /// `cpu-<n>`: vCPU in thousandths.
    Cpu(u32),
    /// `memory-<n>`: GiB given, MiB kept (rounded up).
    Memory(u32),
    /// `vsw-<id>`: the full Alibaba vSwitch id, lowercase.
    VSwitch(String),
    /// `sg-<id>`: the full Alibaba security group id, lowercase.
    SecurityGroup(String),
    /// `subnet-<name>`: the subnet name.
    Subnet(String),
    /// `img-<tag>`: an image tag.
    Image(String),
    /// `sid-<x>`: only keeps the runner apart from other jobs.
    Sid(String),
    /// `disk-<bucket>`: a bucket to mount, lowercase.
    Disk(String),
    /// A known prefix with a bad value, or a string GitHub would not accept as a label.
    Invalid { label: String, reason: String },
}

/// Why a job is not served. [`DeclineReason::code`] is the metric label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeclineReason {
    /// None of the job's labels is one of the registration's: not our job.
    NoRunnerLabel,
    /// A label that is neither the registration's, generic, nor dynamic.
    UnknownLabel(String),
    /// A dynamic label with a bad value, or two that contradict each other.
    InvalidLabel { label: String, reason: String },
    /// A valid value above the registration's limits.
    ExceedsPolicy { label: String, reason: String },
    /// A value outside the registration's allow-list.
    NotAllowed { label: String },
}

/// A declined job: which registration said no, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("registration `{registration}` declines the job: {reason}")]
pub struct Decline {
    pub registration: String,
    pub reason: DeclineReason,
}

/// A job a registration accepts, with its dynamic labels parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The job label that matched a registration label, as the job wrote it.
    pub runner_label: String,
    /// The dynamic labels (cpu, memory, network, image, sid, disk), in job order.
    pub dynamic: Vec<(String, Label)>,
}

const PREFIXES: [&str; 8] = [
    "cpu-", "memory-", "vsw-", "sg-", "subnet-", "img-", "sid-", "disk-",
];

/// Classifies one label. Never panics; prefixes are matched at the start only.
pub fn parse_label(label: &str) -> Label {
    if let Err(reason) = syntax::label(label) {
        return invalid(label, reason);
    }
    let lower = label.to_ascii_lowercase();
    match lower.as_str() {
        "self-hosted" => return Label::Generic(Generic::SelfHosted),
        "linux" => return Label::Generic(Generic::Linux),
        "x64" => return Label::Generic(Generic::X64),
        "arm64" => return Label::Generic(Generic::Arm64),
        _ => {}
    }
    let Some(prefix) = PREFIXES.into_iter().find(|p| lower.starts_with(p)) else {
        return Label::Plain(label.to_owned());
    };
    // Prefixes are ASCII, so the byte offset is the same in `label` and `lower`.
    let value = &label[prefix.len()..];
    let lower_value = &lower[prefix.len()..];
    let parsed = match prefix {
        "cpu-" => syntax::decimal_thousandths(value)
            .and_then(syntax::cpu_millis)
            .map(Label::Cpu),
        "memory-" => syntax::decimal_thousandths(value)
            .and_then(syntax::memory_mib)
            .map(Label::Memory),
        "vsw-" => syntax::alibaba_id_body(lower_value).map(|()| Label::VSwitch(lower.clone())),
        "sg-" => syntax::alibaba_id_body(lower_value).map(|()| Label::SecurityGroup(lower.clone())),
        "subnet-" => syntax::subnet_name(value).map(|()| Label::Subnet(value.to_owned())),
        "img-" => syntax::image_tag(value).map(|()| Label::Image(value.to_owned())),
        "sid-" => sid(value).map(|()| Label::Sid(value.to_owned())),
        _ => syntax::bucket(lower_value).map(|()| Label::Disk(lower_value.to_owned())),
    };
    parsed.unwrap_or_else(|reason| invalid(label, reason))
}

fn invalid(label: &str, reason: String) -> Label {
    Label::Invalid {
        label: label.to_owned(),
        reason,
    }
}

fn sid(s: &str) -> Result<(), String> {
    if (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        Ok(())
    } else {
        Err("a sid is 1-64 letters, digits, `.`, `_` or `-`".into())
    }
}

/// Decides whether `reg` serves a job with these labels: one label must be a registration
/// label, every other one generic or a valid dynamic label, and no two dynamic labels may
/// ask for different values of the same thing.
pub fn admit(job_labels: &[String], reg: &Registration) -> Result<Admission, Decline> {
    let decline = |reason| Decline {
        registration: reg.name.clone(),
        reason,
    };
    let is_ours = |l: &str| reg.labels.iter().any(|r| r.eq_ignore_ascii_case(l));
    let runner_label = job_labels
        .iter()
        .find(|l| is_ours(l))
        .ok_or_else(|| decline(DeclineReason::NoRunnerLabel))?
        .clone();
    let mut dynamic: Vec<(String, Label)> = Vec::new();
    for label in job_labels.iter().filter(|l| !is_ours(l)) {
        match parse_label(label) {
            Label::Generic(_) => {}
            Label::Plain(_) => return Err(decline(DeclineReason::UnknownLabel(label.clone()))),
            Label::Invalid { label, reason } => {
                return Err(decline(DeclineReason::InvalidLabel { label, reason }));
            }
            parsed => {
                let clash = dynamic.iter().find(|(_, seen)| {
                    std::mem::discriminant(seen) == std::mem::discriminant(&parsed)
                        && *seen != parsed
                        && !matches!(parsed, Label::Sid(_))
                });
                if let Some((other, _)) = clash {
                    return Err(decline(DeclineReason::InvalidLabel {
                        label: label.clone(),
                        reason: format!("contradicts `{other}`"),
                    }));
                }
                dynamic.push((label.clone(), parsed));
            }
        }
    }
    Ok(Admission {
        runner_label,
        dynamic,
    })
}

/// Resolves the runner a job gets: job label > registration defaults > tenant defaults >
/// the tenant's provider section (network) > built-in defaults, bounded by the
/// registration's limits. A default is always allowed; a label must pass the allow-list.
pub fn resolve(
    job_labels: &[String],
    reg: &Registration,
    tenant: &Tenant,
) -> Result<RunnerSpec, Decline> {
    let admission = admit(job_labels, reg)?;
    let decline = |reason| Decline {
        registration: reg.name.clone(),
        reason,
    };
    let (d, t, limits) = (&reg.defaults, &tenant.defaults, &reg.limits);
    let provider = d.provider.or(t.provider).unwrap_or(DEFAULT_PROVIDER);
    let p = &tenant.providers;
    let mut cpu_millis = d.cpu_millis.or(t.cpu_millis).unwrap_or(DEFAULT_CPU_MILLIS);
    let mut memory_mib = d.memory_mib.or(t.memory_mib).unwrap_or(DEFAULT_MEMORY_MIB);
    let default_image = d
        .image
        .as_deref()
        .or(t.image.as_deref())
        .unwrap_or(DEFAULT_IMAGE);
    let mut image = default_image.to_owned();
    let section = p.default_network();
    let default_network = Network {
        vswitch: (d.network.vswitch.clone())
            .or_else(|| t.network.vswitch.clone())
            .or(section.vswitch),
        security_group: (d.network.security_group.clone())
            .or_else(|| t.network.security_group.clone())
            .or(section.security_group),
        subnet: (d.network.subnet.clone())
            .or_else(|| t.network.subnet.clone())
            .or(section.subnet),
    };
    let mut network = default_network.clone();
    let mut disk_bucket = None;
    let allowed = |value: &str, default: &Option<String>, list: &[String]| {
        default.as_deref() == Some(value) || list.iter().any(|a| a.eq_ignore_ascii_case(value))
    };
    for (label, parsed) in admission.dynamic {
        let not_allowed = || {
            decline(DeclineReason::NotAllowed {
                label: label.clone(),
            })
        };
        match parsed {
            Label::Cpu(v) => {
                if v > limits.max_cpu_millis {
                    let max = limits.max_cpu_millis;
                    return Err(decline(DeclineReason::ExceedsPolicy {
                        label,
                        reason: format!("at most {} vCPU allowed", thousandths(max)),
                    }));
                }
                cpu_millis = v;
            }
            Label::Memory(v) => {
                if v > limits.max_memory_mib {
                    let max = limits.max_memory_mib;
                    return Err(decline(DeclineReason::ExceedsPolicy {
                        label,
                        reason: format!("at most {max} MiB allowed"),
                    }));
                }
                memory_mib = v;
            }
            Label::VSwitch(id)
                if allowed(&id, &default_network.vswitch, &limits.allowed_vswitches) =>
            {
                network.vswitch = Some(id);
            }
            Label::SecurityGroup(id)
                if allowed(
                    &id,
                    &default_network.security_group,
                    &limits.allowed_security_groups,
                ) =>
            {
                network.security_group = Some(id);
            }
            Label::Subnet(name)
                if allowed(&name, &default_network.subnet, &limits.allowed_subnets) =>
            {
                network.subnet = Some(name);
            }
            Label::Image(tag) => {
                let candidate = with_tag(default_image, &tag);
                if candidate != default_image
                    && !image_allowed(&limits.allowed_images, &candidate, &tag)
                {
                    return Err(not_allowed());
                }
                image = candidate;
            }
            Label::Disk(bucket) if limits.allowed_buckets.contains(&bucket) => {
                disk_bucket = Some(bucket);
            }
            Label::Sid(_) => {}
            _ => return Err(not_allowed()),
        }
    }
    let limit = limits.max_runtime_secs;
    let mut labels: Vec<String> = Vec::new();
    for l in job_labels {
        if !labels.iter().any(|x| x.eq_ignore_ascii_case(l)) {
            labels.push(l.clone());
        }
    }
    let mut charge_labels: Vec<String> = Vec::new();
    for l in tenant.charge_labels.iter().chain(&reg.charge_labels) {
        if !charge_labels.contains(l) {
            charge_labels.push(l.clone());
        }
    }
    Ok(RunnerSpec {
        provider,
        region: p.region(provider).map(str::to_owned),
        cpu_millis,
        memory_mib,
        image,
        network,
        disk_bucket,
        dind: d.dind.or(t.dind).unwrap_or(false),
        runner_group_id: d
            .runner_group_id
            .or(t.runner_group_id)
            .unwrap_or(DEFAULT_RUNNER_GROUP_ID),
        labels,
        charge_labels,
        max_runtime_secs: d
            .max_runtime_secs
            .or(t.max_runtime_secs)
            .map_or(limit, |s| s.min(limit)),
    })
}

/// `repo:old` (or `repo@digest`) with its tag replaced.
fn with_tag(image: &str, tag: &str) -> String {
    let without_digest = image.split_once('@').map_or(image, |(r, _)| r);
    format!("{}:{tag}", syntax::split_image(without_digest).0)
}

/// An allow-list entry with `/` or `:` matches the whole reference, any other the tag; a
/// trailing `*` makes it a prefix match.
fn image_allowed(patterns: &[String], image: &str, tag: &str) -> bool {
    patterns.iter().any(|p| {
        let subject = if p.contains('/') || p.contains(':') {
            image
        } else {
            tag
        };
        match p.strip_suffix('*') {
            Some(prefix) => subject.starts_with(prefix),
            None => subject == p,
        }
    })
}

/// `1500` → `1.5`.
pub(crate) fn thousandths(v: u32) -> String {
    let (int, frac) = (v / 1000, v % 1000);
    if frac == 0 {
        int.to_string()
    } else {
        format!("{int}.{}", format!("{frac:03}").trim_end_matches('0'))
    }
}

impl DeclineReason {
    /// A stable, machine-readable name for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            DeclineReason::NoRunnerLabel => "no_runner_label",
            DeclineReason::UnknownLabel(_) => "unknown_label",
            DeclineReason::InvalidLabel { .. } => "invalid_label",
            DeclineReason::ExceedsPolicy { .. } => "exceeds_policy",
            DeclineReason::NotAllowed { .. } => "not_allowed",
        }
    }
}

impl Decline {
    /// See [`DeclineReason::code`].
    pub fn code(&self) -> &'static str {
        self.reason.code()
    }
}

impl fmt::Display for DeclineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeclineReason::NoRunnerLabel => f.write_str("no label of this registration"),
            DeclineReason::UnknownLabel(l) => write!(f, "unknown label `{l}`"),
            DeclineReason::InvalidLabel { label, reason } => {
                write!(f, "invalid label `{label}`: {reason}")
            }
            DeclineReason::ExceedsPolicy { label, reason } => {
                write!(f, "label `{label}` exceeds policy: {reason}")
            }
            DeclineReason::NotAllowed { label } => {
                write!(f, "label `{label}` is not in the registration's allow-list")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousandths_formats_without_trailing_zeros() {
        assert_eq!(thousandths(2000), "2");
        assert_eq!(thousandths(500), "0.5");
        assert_eq!(thousandths(1250), "1.25");
        assert_eq!(thousandths(1), "0.001");
    }

    #[test]
    fn with_tag_replaces_tags_and_digests_but_keeps_ports() {
        assert_eq!(with_tag("ghcr.io/a/b:latest", "2"), "ghcr.io/a/b:2");
        assert_eq!(with_tag("localhost:5000/b", "2"), "localhost:5000/b:2");
        assert_eq!(with_tag("a/b@sha256:00", "2"), "a/b:2");
    }
}
