//! ACI rules shared by the provider (checked before a call) and the simulator (checked on
//! arrival): resource names, cpu/memory granularity and maxima, tag and env sizes.
//!
//! Sources:
//! - names: ARM naming rules for `Microsoft.ContainerInstance/containerGroups` (1–63 chars,
//!   lowercase letters, digits and `-`, not starting or ending with `-`, no `--`);
//! - cpu and memory: `az container create --cpu/--memory` "accurate to one decimal place",
//!   so both move in 0.1 steps; per-group maxima from "Resource availability & quota limits
//!   for ACI" (hard ceiling 31 vCPU / 240 GB standard, 31 / 180 GB confidential; groups above
//!   4 vCPU / 16 GB need a capacity quota increase, so 4 / 16 is the default);
//! - tags: ARM allows 50 tags, names up to 512 and values up to 256 characters;
//! - env values: ACI documents no cap, but every variable reaches the container through
//!   `execve`, whose per-string cap on Linux is `MAX_ARG_STRLEN` = 131072 bytes (`NAME=value`).

/// vCPU per group a subscription gets without a capacity quota increase.
pub const DEFAULT_MAX_CPU_MILLIS: u32 = 4_000;
/// Memory per group a subscription gets without a capacity quota increase (16 GB).
pub const DEFAULT_MAX_MEMORY_MIB: u32 = 16 * 1024;
/// The largest `NAME=value` string one environment variable may be.
pub const MAX_ENV_STRING_BYTES: usize = 131_072;
/// ARM tag limits.
pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_NAME_CHARS: usize = 512;
pub const MAX_TAG_VALUE_CHARS: usize = 256;

/// Whether `name` is a valid container group or container name.
pub fn valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// A runner name turned into a valid, deterministic container group name. Names that are
/// already valid are kept; others are lowercased, cleaned, and suffixed with a hash of the
/// original so two different runner names never share a group.
pub fn group_name(runner_name: &str) -> String {
    if valid_name(runner_name) {
        return runner_name.to_owned();
    }
    let mut clean = String::with_capacity(runner_name.len());
    for c in runner_name.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && (clean.is_empty() || clean.ends_with('-'))) {
            clean.push(c);
        }
    }
    clean.truncate(54);
    let clean = clean.trim_end_matches('-');
    let hash = format!("{:08x}", fnv1a(runner_name.as_bytes()) as u32);
    if clean.is_empty() {
        format!("r-{hash}")
    } else {
        format!("{clean}-{hash}")
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Cores as ACI wants them (`0.5`, `2.0`), if `cpu_millis` is a positive multiple of 0.1 vCPU.
pub fn cpu_cores(cpu_millis: u32) -> Option<f64> {
    (cpu_millis > 0 && cpu_millis.is_multiple_of(100)).then(|| f64::from(cpu_millis / 100) / 10.0)
}

/// GB as ACI wants them, if `memory_mib` is a positive multiple of 0.1 GB (1 GB = 1024 MiB,
/// so 0.1 GB is 102.4 MiB: a value within 1 MiB of a tenth counts as that tenth).
pub fn memory_gb(memory_mib: u32) -> Option<f64> {
    let tenths = (f64::from(memory_mib) * 10.0 / 1024.0).round();
    let back = tenths * 102.4;
    (tenths >= 1.0 && (back - f64::from(memory_mib)).abs() <= 1.0).then_some(tenths / 10.0)
}

/// Whether an ARM number is a positive multiple of 0.1 (allowing float noise).
pub fn is_tenth_step(value: f64) -> bool {
    let tenths = value * 10.0;
    value > 0.0 && (tenths - tenths.round()).abs() < 1e-6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("shr-runner-1"));
        assert!(!valid_name("-a") && !valid_name("a-") && !valid_name("a--b"));
        assert!(!valid_name("Upper") && !valid_name("") && !valid_name(&"a".repeat(64)));
        assert_eq!(group_name("shr-abc"), "shr-abc");
        let g = group_name("Org_Repo/Runner.42");
        assert!(valid_name(&g), "{g}");
        assert!(g.starts_with("org-repo-runner-42-"));
        assert_ne!(group_name("A_b"), group_name("a.b"));
        assert!(valid_name(&group_name(&"X".repeat(200))));
        assert!(valid_name(&group_name("___")));
    }

    #[test]
    fn sizes() {
        assert_eq!(cpu_cores(500), Some(0.5));
        assert_eq!(cpu_cores(2000), Some(2.0));
        assert_eq!(cpu_cores(250), None);
        assert_eq!(cpu_cores(0), None);
        assert_eq!(memory_gb(1536), Some(1.5));
        assert_eq!(memory_gb(4096), Some(4.0));
        assert_eq!(memory_gb(102), Some(0.1));
        assert_eq!(memory_gb(1000), None);
        assert_eq!(memory_gb(0), None);
        assert!(is_tenth_step(1.5) && is_tenth_step(0.1) && !is_tenth_step(0.25));
    }
}
