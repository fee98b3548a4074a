//! The one write path for records: read, decide, compare-and-set, retry on conflict.
//!
//! Every record write of the actors goes through here, and here only through
//! [`Records::modify`] (the one read-modify-write loop, with back-off) or, for a write that
//! must not be retried, [`replace_at`]. Deciding closures are pure: the clock is read by the
//! caller before the write and passed in, so a retry after a lost race decides with the same
//! `now`.

use shr_nats::Records;

use crate::Error;

/// Records addressed by name: the bucket, and the key a name is stored under. Plain
/// [`Records`] use the name as the key; runner records lead with their tenant
/// ([`RunnerRecords`](crate::RunnerRecords)).
pub trait Keyed<T> {
    fn records(&self) -> &Records<T>;
    fn key(&self, name: &str) -> Result<String, Error>;
}

impl<T> Keyed<T> for Records<T> {
    fn records(&self) -> &Records<T> {
        self
    }

    fn key(&self, name: &str) -> Result<String, Error> {
        Ok(name.to_owned())
    }
}

/// Reads `key`, lets `decide` return the new value (or `None` for "leave it") and a result,
/// and writes the value with the revision it read. On a revision conflict it re-reads and
/// decides again, so `decide` must be a pure function of what it is given.
pub async fn cas<T, R, F>(records: &impl Keyed<T>, key: &str, decide: F) -> Result<R, Error>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync,
    F: FnMut(Option<&T>) -> Result<(Option<T>, R), Error>,
{
    cas_revision(records, key, decide).await.map(|(r, _)| r)
}

/// [`cas`], also returning the revision written (`None` when nothing was written).
pub async fn cas_revision<T, R, F>(
    records: &impl Keyed<T>,
    name: &str,
    mut decide: F,
) -> Result<(R, Option<u64>), Error>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync,
    F: FnMut(Option<&T>) -> Result<(Option<T>, R), Error>,
{
    let key = records.key(name)?;
    let mut result = None;
    let modified = records
        .records()
        .modify::<Error, _>(&key, |current| {
            let (next, r) = decide(current)?;
            result = Some(r);
            Ok(next)
        })
        .await?;
    let revision = match modified {
        shr_nats::Modified::Written { revision, .. } => Some(revision),
        shr_nats::Modified::Unchanged => None,
    };
    // `modify` always runs the closure at least once before it returns `Ok`.
    result
        .map(|r| (r, revision))
        .ok_or_else(|| Error::bus("compare-and-set", format!("{key}: no decision")))
}

/// Writes `value` over `key` only if it is still at `revision`: one compare-and-set, no retry.
/// `Ok(None)` when someone else wrote first.
pub async fn replace_at<T>(
    records: &impl Keyed<T>,
    name: &str,
    value: &T,
    revision: u64,
) -> Result<Option<u64>, Error>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync,
{
    let key = records.key(name)?;
    match records.records().update(&key, value, revision).await {
        Ok(revision) => Ok(Some(revision)),
        Err(error) if error.is_conflict() => Ok(None),
        Err(error) => Err(error.into()),
    }
}
