//! Runner slots under a registration's `max_runners` cap (the [`Slots`] record).
//!
//! # Guarantees
//! - The cap holds cluster-wide: the slot record is the one place that admits a runner, and
//!   every admission is a compare-and-set on its revision.
//! - Taking and freeing are idempotent: the record holds names, not a count.
//!
//! Used by [`crate::request`] (a runner record is written only with a slot), the scheduler
//! (a job that finds no slot waits) and [`crate::pool`] (frees, reclaims, pokes).

use bus_schema::{Slots, UnixMillis, subject};

use crate::cas::cas;
use crate::{Context, Error};

/// The `job_id` of a pool runner: no GitHub job has id 0.
pub const POOL_JOB_ID: u64 = 0;

/// The slot records (in the jobs bucket).
pub fn records(ctx: &Context) -> shr_nats::Records<Slots> {
    shr_nats::Records::new(ctx.bus.jobs.clone())
}

/// Takes a slot for runner `name` of `registration` (idempotent: `true` if it holds one).
/// `false` when the registration is at `max_runners`; a job (`job_id` not [`POOL_JOB_ID`])
/// is then remembered as waiting, and a job that gets a slot is forgotten.
pub async fn take_slot(
    ctx: &Context,
    registration: &str,
    name: &str,
    job_id: u64,
    now: UnixMillis,
) -> Result<bool, Error> {
    if ctx.is_draining(registration) {
        tracing::info!(
            registration,
            runner = name,
            job = job_id,
            "registration removed and draining: no new runner"
        );
        return Ok(false);
    }
    let max =
        usize::try_from(ctx.registration(registration)?.limits.max_runners).unwrap_or(usize::MAX);
    let key = subject::slots_key(registration)?;
    let taken = cas(&records(ctx), &key, |current| {
        Ok(take(current, max, name, job_id, now))
    })
    .await?;
    if !taken {
        tracing::info!(
            registration,
            runner = name,
            job = job_id,
            "registration at max_runners; waiting for a slot"
        );
    }
    Ok(taken)
}

/// The rule of [`take_slot`]: the record to write, and whether `name` holds a slot.
fn take(
    current: Option<&Slots>,
    max: usize,
    name: &str,
    job_id: u64,
    now: UnixMillis,
) -> (Option<Slots>, bool) {
    let is_job = job_id != POOL_JOB_ID;
    let mut slots = current.cloned().unwrap_or_default();
    let taken = slots.holders.contains_key(name) || slots.holders.len() < max;
    let mut changed = false;
    if taken {
        if !slots.holders.contains_key(name) {
            slots.holders.insert(name.to_owned(), now);
            changed = true;
        }
        changed |= is_job && slots.waiting.remove(&job_id).is_some();
    } else if is_job && !slots.waiting.contains_key(&job_id) {
        slots.waiting.insert(job_id, now);
        changed = true;
    }
    (changed.then_some(slots), taken)
}

/// Remembers that job `job_id` of `registration` waits for a runner (a free one may be
/// handed to it; a freed slot pokes it).
pub async fn note_waiting(
    ctx: &Context,
    registration: &str,
    job_id: u64,
    now: UnixMillis,
) -> Result<(), Error> {
    let key = subject::slots_key(registration)?;
    cas(&records(ctx), &key, |current| {
        let mut slots = current.cloned().unwrap_or_default();
        if slots.waiting.contains_key(&job_id) {
            return Ok((None, ()));
        }
        slots.waiting.insert(job_id, now);
        Ok((Some(slots), ()))
    })
    .await
}

/// Forgets that job `job_id` of `registration` waits for a slot (it got a runner another way).
pub async fn forget_waiting(ctx: &Context, registration: &str, job_id: u64) -> Result<(), Error> {
    let key = subject::slots_key(registration)?;
    cas(&records(ctx), &key, |current| {
        Ok(match current {
            Some(slots) if slots.waiting.contains_key(&job_id) => {
                let mut slots = slots.clone();
                slots.waiting.remove(&job_id);
                (Some(slots), ())
            }
            _ => (None, ()),
        })
    })
    .await
}

/// The jobs of `registration` waiting for a slot, longest waiting first.
pub async fn waiting(ctx: &Context, registration: &str) -> Result<Vec<u64>, Error> {
    let key = subject::slots_key(registration)?;
    let mut waiting: Vec<(u64, UnixMillis)> = records(ctx)
        .get(&key)
        .await?
        .map(|(slots, _)| slots.waiting.into_iter().collect())
        .unwrap_or_default();
    waiting.sort_by_key(|&(job, since)| (since, job));
    Ok(waiting.into_iter().map(|(job, _)| job).collect())
}

/// Frees the slots of `names`; returns the slot record afterwards.
pub async fn release(ctx: &Context, registration: &str, names: &[String]) -> Result<Slots, Error> {
    let key = subject::slots_key(registration)?;
    cas(&records(ctx), &key, |current| {
        let mut slots = current.cloned().unwrap_or_default();
        let before = slots.holders.len();
        slots.holders.retain(|n, _| !names.contains(n));
        let changed = slots.holders.len() != before;
        Ok((changed.then(|| slots.clone()), slots))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_registration_remembers_the_job_and_a_freed_slot_admits_it() {
        let (full, taken) = take(None, 1, "shr-a-1-1", 1, 10);
        assert!(taken);
        let full = full.unwrap_or_default();
        let (waiting, taken) = take(Some(&full), 1, "shr-a-2-1", 2, 11);
        assert!(!taken);
        assert_eq!(waiting.as_ref().map(|s| s.waiting.len()), Some(1));
        // The same runner again: idempotent, nothing to write.
        assert_eq!(take(Some(&full), 1, "shr-a-1-1", 1, 12), (None, true));
        let mut freed = waiting.unwrap_or_default();
        freed.holders.clear();
        let (after, taken) = take(Some(&freed), 1, "shr-a-2-1", 2, 13);
        assert!(taken);
        assert!(after.is_some_and(|s| s.waiting.is_empty() && s.holders.len() == 1));
    }
}
