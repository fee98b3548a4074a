//! The scheduler's pool records: runner slots under a registration's `max_runners` cap, and
//! the per-tenant sequence that names warm pool runners. Both live in the jobs bucket.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::UnixMillis;

/// A registration's slots under its `max_runners` cap. Key
/// [`slots_key`](crate::subject::slots_key), in the jobs bucket.
///
/// The record holds names, not a count, so taking or freeing a slot twice changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slots {
    /// Runner names holding a slot, with when the slot was taken.
    #[serde(default)]
    pub holders: BTreeMap<String, UnixMillis>,
    /// Jobs that found no free slot, with when they started waiting.
    #[serde(default)]
    pub waiting: BTreeMap<u64, UnixMillis>,
}

/// The next pool runner number of a tenant. Key
/// [`pool_sequence_key`](crate::subject::pool_sequence_key), in the jobs bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSequence {
    /// The number the last pool runner got.
    pub next: u32,
}

impl Slots {
    /// How many slots of `max` are free.
    pub fn free(&self, max: usize) -> usize {
        max.saturating_sub(self.holders.len())
    }
}
