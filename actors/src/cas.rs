//! The one write path for records: read, decide, compare-and-set, retry on conflict.

use shr_nats::Records;

use crate::Error;

const MAX_CONFLICTS: usize = 32;

/// Reads `key`, lets `decide` return the new value (or `None` for "leave it") and a result,
/// and writes the value with the revision it read. On a revision conflict it re-reads and
/// decides again, so `decide` must be a pure function of what it is given.
pub async fn cas<T, R, F>(records: &Records<T>, key: &str, mut decide: F) -> Result<R, Error>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync,
    F: FnMut(Option<&T>) -> Result<(Option<T>, R), Error>,
{
    for _ in 0..MAX_CONFLICTS {
        let current = records.get(key).await?;
        let (next, result) = decide(current.as_ref().map(|(value, _)| value))?;
        let Some(next) = next else {
            return Ok(result);
        };
        let written = match &current {
            None => records.create(key, &next).await,
            Some((_, revision)) => records.update(key, &next, *revision).await,
        };
        match written {
            Ok(_) => return Ok(result),
            Err(error) if error.is_conflict() => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::bus(
        "compare-and-set",
        format!("{key}: too many concurrent writers"),
    ))
}
