//! ECI's value rules, shared by the provider (to refuse early) and the simulator (to reject
//! like the service does).
//!
//! - vCPU/memory: the specifications ECI documents as available in every region ("Specify
//!   the number of vCPUs and memory size to create an instance", help.aliyun.com
//!   document_detail/114662). ECI itself rounds other requests up; this crate only sends
//!   exact listed shapes so what is billed is what was asked for.
//! - Container group names: 2–128 characters, lowercase letters, digits and `-`, not
//!   starting or ending with `-`.
//! - Environment variable values: at most 256 characters.

/// Every (vCPU, memory GiB) pair ECI supports in all regions.
const SPECS: &[(f64, &[f64])] = &[
    (0.25, &[0.5, 1.0]),
    (0.5, &[1.0, 2.0]),
    (1.0, &[2.0, 4.0, 8.0]),
    (2.0, &[1.0, 2.0, 4.0, 8.0, 16.0]),
    (4.0, &[2.0, 4.0, 8.0, 16.0, 32.0]),
    (8.0, &[4.0, 8.0, 16.0, 32.0, 64.0]),
    (12.0, &[12.0, 24.0, 48.0, 96.0]),
    (16.0, &[16.0, 32.0, 64.0, 128.0]),
    (24.0, &[24.0, 48.0, 96.0, 192.0]),
    (32.0, &[32.0, 64.0, 128.0, 256.0]),
    (52.0, &[96.0, 192.0, 384.0]),
    (64.0, &[128.0, 256.0, 512.0]),
];

/// The longest environment variable value ECI accepts.
pub const MAX_ENV_VALUE_CHARS: usize = 256;

/// All allowed shapes as (cpu millis, memory MiB).
pub fn shapes() -> Vec<(u32, u32)> {
    SPECS
        .iter()
        .flat_map(|(cpu, mems)| {
            mems.iter()
                .map(move |mem| (to_units(*cpu, 1000.0), to_units(*mem, 1024.0)))
        })
        .collect()
}

fn to_units(value: f64, per_unit: f64) -> u32 {
    // Every listed value is a small exact binary fraction, so this is exact.
    (value * per_unit) as u32
}

/// Whether (vCPU, memory GiB), as sent on the wire, is a supported specification.
pub fn spec_allowed(cpu: f64, memory_gib: f64) -> bool {
    SPECS.iter().any(|(c, mems)| {
        (c - cpu).abs() < 1e-9 && mems.iter().any(|m| (m - memory_gib).abs() < 1e-9)
    })
}

/// `cpu_millis` as ECI's vCPU number (`500` → `0.5`).
pub fn format_cpu(cpu_millis: u32) -> String {
    format_decimal(f64::from(cpu_millis) / 1000.0)
}

/// `memory_mib` as ECI's GiB number (`512` → `0.5`).
pub fn format_memory(memory_mib: u32) -> String {
    format_decimal(f64::from(memory_mib) / 1024.0)
}

fn format_decimal(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Whether `name` is a valid ECI container group name.
pub fn valid_group_name(name: &str) -> bool {
    (2..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_the_documented_table() {
        let shapes = shapes();
        assert!(shapes.contains(&(250, 512)));
        assert!(shapes.contains(&(2000, 16384)));
        assert!(!shapes.contains(&(250, 2048)));
        assert!(!shapes.contains(&(1000, 1024)));
        assert_eq!(shapes.len(), 44);
    }

    #[test]
    fn sizes_format_as_eci_numbers() {
        assert_eq!(format_cpu(250), "0.25");
        assert_eq!(format_cpu(2000), "2");
        assert_eq!(format_memory(512), "0.5");
        assert_eq!(format_memory(4096), "4");
        assert!(spec_allowed(0.25, 0.5));
        assert!(!spec_allowed(0.25, 2.0));
    }

    #[test]
    fn group_names_follow_eci_format() {
        assert!(valid_group_name("shr-runner-01"));
        assert!(!valid_group_name("a"));
        assert!(!valid_group_name("-abc"));
        assert!(!valid_group_name("abc-"));
        assert!(!valid_group_name("Upper"));
        assert!(!valid_group_name("under_score"));
        assert!(!valid_group_name(&"a".repeat(129)));
    }
}
