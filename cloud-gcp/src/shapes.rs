//! Cloud Run job sizes: which (CPU, memory) pairs the platform accepts.
//!
//! From "Configure memory limits for jobs"
//! (<https://cloud.google.com/run/docs/configuring/jobs/memory-limits>) and "Configure CPU
//! limits" (<https://cloud.google.com/run/docs/configuring/jobs/cpu>): a job has at least one
//! whole CPU, memory is 512 MiB to 32 GiB, and per CPU count:
//! 1 → 512 MiB–4 GiB, 2 → 512 MiB–8 GiB, 4 → 2–16 GiB, 8 → 4–32 GiB.
//! The CPU counts are the run.v2 discovery document's: "The only supported values for CPU are
//! '1', '2', '4', and '8'" (`GoogleCloudRunV2ResourceRequirements.limits`); the product page
//! also lists 6, which the API does not accept.
//! The provider's capabilities and the simulator both use [`problem`].

/// The CPU counts a job may ask for, in millis.
pub const CPUS: [u32; 4] = [1000, 2000, 4000, 8000];
/// The largest memory a job may ask for, in MiB.
pub const MAX_MEMORY_MIB: u32 = 32 * 1024;

/// The memory range (MiB, inclusive) allowed with `cpu_millis`, if that CPU count is allowed.
pub fn memory_range(cpu_millis: u32) -> Option<(u32, u32)> {
    match cpu_millis {
        1000 => Some((512, 4 * 1024)),
        2000 => Some((512, 8 * 1024)),
        4000 => Some((2 * 1024, 16 * 1024)),
        8000 => Some((4 * 1024, 32 * 1024)),
        _ => None,
    }
}

/// Why Cloud Run would reject this size, if it would.
pub fn problem(cpu_millis: u32, memory_mib: u32) -> Option<String> {
    let Some((min, max)) = memory_range(cpu_millis) else {
        return Some(format!(
            "Invalid value specified for cpu. For jobs, cpu must be one of 1, 2, 4, 8; got {}m",
            cpu_millis
        ));
    };
    if memory_mib < min || memory_mib > max {
        return Some(format!(
            "Invalid value specified for memory. For {} CPU, memory must be between {}Mi and {}Mi inclusive; got {}Mi",
            cpu_millis / 1000,
            min,
            max,
            memory_mib
        ));
    }
    None
}

/// Every allowed pair at 256 MiB granularity, for [`providers::Capabilities::shapes`].
pub fn all() -> Vec<(u32, u32)> {
    CPUS.iter()
        .filter_map(|&cpu| memory_range(cpu).map(|range| (cpu, range)))
        .flat_map(|(cpu, (min, max))| (min..=max).step_by(256).map(move |mem| (cpu, mem)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_combinations() {
        assert!(problem(2000, 4096).is_none());
        assert!(problem(4000, 2048).is_none());
        assert!(problem(8000, 32 * 1024).is_none());
        assert!(problem(4000, 1024).is_some(), "4 CPU needs at least 2 GiB");
        assert!(problem(8000, 2048).is_some(), "8 CPU needs at least 4 GiB");
        assert!(problem(1000, 8192).is_some(), "more than 4 GiB needs 2 CPU");
        assert!(problem(3000, 4096).is_some());
        assert!(
            problem(6000, 8192).is_some(),
            "run.v2 accepts only 1, 2, 4 and 8 CPU"
        );
        assert!(problem(500, 512).is_some(), "jobs need a whole CPU");
        assert!(all().contains(&(2000, 4096)));
        assert!(all().iter().all(|&(c, m)| problem(c, m).is_none()));
    }
}
