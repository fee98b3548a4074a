//! Fargate task sizes: the (CPU, memory) pairs ECS accepts for Linux tasks.
//!
//! From "Amazon ECS task definition parameters for Fargate", *Task size*: CPU is given in
//! CPU units (1024 = 1 vCPU) and each CPU value allows a memory range in fixed steps:
//!
//! | CPU units | memory (MiB) |
//! | --- | --- |
//! | 256 | 512, 1024, 2048 |
//! | 512 | 1024–4096 in 1024 steps |
//! | 1024 | 2048–8192 in 1024 steps |
//! | 2048 | 4096–16384 in 1024 steps |
//! | 4096 | 8192–30720 in 1024 steps |
//! | 8192 | 16384–61440 in 4096 steps |
//! | 16384 | 32768–122880 in 8192 steps |
//!
//! The provider's capabilities and the simulator both use [`memory_allowed`].

/// CPU units ECS takes, for each vCPU size in millis a runner spec can ask for.
pub const CPUS: [(u32, u32); 7] = [
    (250, 256),
    (500, 512),
    (1000, 1024),
    (2000, 2048),
    (4000, 4096),
    (8000, 8192),
    (16000, 16384),
];

/// ECS CPU units for `cpu_millis`, if Fargate has that size.
pub fn cpu_units(cpu_millis: u32) -> Option<u32> {
    CPUS.iter()
        .find(|(m, _)| *m == cpu_millis)
        .map(|(_, units)| *units)
}

/// The memory values (MiB) Fargate allows with `cpu_units`.
pub fn memory_choices(cpu_units: u32) -> Vec<u32> {
    let (min, max, step) = match cpu_units {
        256 => return vec![512, 1024, 2048],
        512 => (1024, 4096, 1024),
        1024 => (2048, 8192, 1024),
        2048 => (4096, 16384, 1024),
        4096 => (8192, 30720, 1024),
        8192 => (16384, 61440, 4096),
        16384 => (32768, 122_880, 8192),
        _ => return Vec::new(),
    };
    (min..=max).step_by(step).collect()
}

/// Whether Fargate accepts `cpu_units` with `memory_mib`.
pub fn memory_allowed(cpu_units: u32, memory_mib: u32) -> bool {
    memory_choices(cpu_units).contains(&memory_mib)
}

/// Every allowed (cpu millis, memory MiB) pair, for [`providers::Capabilities::shapes`].
pub fn all() -> Vec<(u32, u32)> {
    CPUS.iter()
        .flat_map(|&(millis, units)| memory_choices(units).into_iter().map(move |m| (millis, m)))
        .collect()
}

/// The smallest Fargate size (CPU units, memory MiB) with at least `cpu_millis` and
/// `memory_mib`, within the caps. Smallest CPU first: a larger CPU's least memory is never
/// below a smaller CPU's, so this is also the cheapest.
pub fn covering(
    cpu_millis: u32,
    memory_mib: u32,
    max_cpu_millis: u32,
    max_memory_mib: u32,
) -> Option<(u32, u32)> {
    CPUS.iter()
        .filter(|&&(millis, _)| millis >= cpu_millis && millis <= max_cpu_millis)
        .find_map(|&(_, units)| {
            memory_choices(units)
                .into_iter()
                .find(|&m| m >= memory_mib && m <= max_memory_mib)
                .map(|m| (units, m))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_documented_ranges() {
        assert_eq!(all().len(), 3 + 4 + 7 + 13 + 23 + 12 + 12);
        assert!(memory_allowed(256, 512) && memory_allowed(256, 2048));
        assert!(!memory_allowed(256, 1536) && !memory_allowed(256, 4096));
        assert!(memory_allowed(1024, 2048) && !memory_allowed(1024, 1024));
        assert!(memory_allowed(4096, 30720) && !memory_allowed(4096, 31744));
        assert!(memory_allowed(8192, 20480) && !memory_allowed(8192, 17408));
        assert!(memory_allowed(16384, 122_880) && !memory_allowed(16384, 36864));
        assert_eq!(cpu_units(1000), Some(1024));
        assert_eq!(cpu_units(3000), None);
        assert!(!memory_allowed(300, 512));
    }

    #[test]
    fn covering_rounds_up_to_the_cheapest_pair() {
        let max = (16_000, 122_880);
        let cover = |c, m| covering(c, m, max.0, max.1);
        assert_eq!(cover(1000, 2048), Some((1024, 2048)), "exact pairs stay");
        assert_eq!(
            cover(1000, 1024),
            Some((1024, 2048)),
            "memory up to the CPU's least"
        );
        assert_eq!(cover(2000, 2048), Some((2048, 4096)));
        assert_eq!(
            cover(250, 3072),
            Some((512, 3072)),
            "CPU up when its memory ends"
        );
        assert_eq!(cover(3000, 1), Some((4096, 8192)));
        assert_eq!(cover(100, 100), Some((256, 512)));
        assert_eq!(cover(16_000, 122_880), Some((16384, 122_880)));
        assert_eq!(cover(16_001, 512), None);
        assert_eq!(cover(250, 122_881), None);
        assert_eq!(covering(4000, 1024, 4000, 4096), None, "4 vCPU needs 8 GiB");
        assert_eq!(covering(500, 4096, 2000, 4096), Some((512, 4096)));
    }
}
