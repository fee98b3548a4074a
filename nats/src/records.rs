//! Typed records in a KV bucket, every write a compare-and-set on the revision.
//!
//! Values are MessagePack maps ([`bus_schema::encode`]). A deleted or purged key reads as
//! absent and can be created again. [`Records::modify`] is the one read-modify-write loop:
//! it re-reads and re-applies the change after every lost race, so concurrent writers never
//! overwrite each other.

use std::{fmt, marker::PhantomData, time::Duration};

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use futures::{StreamExt, TryStreamExt};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    Error,
    error::{BoxError, create_kind, entry_kind, update_kind, watch_kind, watcher_kind},
};

/// How many lost races [`Records::modify`] tolerates before [`Error::TooManyConflicts`].
pub const MODIFY_ATTEMPTS: u32 = 64;

/// The outcome of [`Records::modify`].
#[derive(Debug, Clone, PartialEq)]
pub enum Modified<T> {
    /// The closure asked for no change.
    Unchanged,
    /// The new value was written at `revision`.
    Written { value: T, revision: u64 },
}

/// Typed access to one KV bucket.
pub struct Records<T> {
    store: kv::Store,
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for Records<T> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            _value: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Records<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Records")
            .field("bucket", &self.store.name)
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> Records<T> {
    pub fn new(store: kv::Store) -> Self {
        Self {
            store,
            _value: PhantomData,
        }
    }

    /// The underlying bucket (for watches).
    pub fn store(&self) -> &kv::Store {
        &self.store
    }

    /// The current value and its revision; `None` when absent, deleted or purged.
    pub async fn get(&self, key: &str) -> Result<Option<(T, u64)>, Error> {
        let entry = self
            .store
            .entry(key)
            .await
            .map_err(|e| self.kv_error("reading", key, entry_kind(e.kind()), e))?;
        match entry {
            Some(entry) if entry.operation == Operation::Put => {
                let value = bus_schema::decode(&entry.value).map_err(|source| Error::Codec {
                    bucket: self.store.name.clone(),
                    key: key.to_owned(),
                    source,
                })?;
                Ok(Some((value, entry.revision)))
            }
            _ => Ok(None),
        }
    }

    /// Writes `value` if `key` is absent (or deleted); fails with [`Error::AlreadyExists`]
    /// if it holds a value.
    pub async fn create(&self, key: &str, value: &T) -> Result<u64, Error> {
        let bytes = self.encode(key, value)?;
        self.store
            .create(key, bytes)
            .await
            .map_err(|e| match e.kind() {
                CreateErrorKind::AlreadyExists => Error::AlreadyExists {
                    bucket: self.store.name.clone(),
                    key: key.to_owned(),
                },
                kind => self.kv_error("creating", key, create_kind(kind), e),
            })
    }

    /// Writes `value` if `key` is still at `revision`; fails with [`Error::WrongRevision`]
    /// otherwise.
    pub async fn update(&self, key: &str, value: &T, revision: u64) -> Result<u64, Error> {
        let bytes = self.encode(key, value)?;
        self.store
            .update(key, bytes, revision)
            .await
            .map_err(|e| match e.kind() {
                UpdateErrorKind::WrongLastRevision => Error::WrongRevision {
                    bucket: self.store.name.clone(),
                    key: key.to_owned(),
                    expected: revision,
                },
                kind => self.kv_error("updating", key, update_kind(kind), e),
            })
    }

    /// Deletes `key` (leaves a delete marker; history stays until it ages out).
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        self.store
            .delete(key)
            .await
            .map_err(|e| self.kv_error("deleting", key, update_kind(e.kind()), e))
    }

    /// Purges `key` and its history.
    pub async fn purge(&self, key: &str) -> Result<(), Error> {
        self.store
            .purge(key)
            .await
            .map_err(|e| self.kv_error("purging", key, update_kind(e.kind()), e))
    }

    /// Every key that holds a value.
    pub async fn keys(&self) -> Result<Vec<String>, Error> {
        let keys = self
            .store
            .keys()
            .await
            .map_err(|e| self.kv_error("listing", "*", watch_kind(e.kind()), e))?;
        keys.try_collect()
            .await
            .map_err(|e| self.kv_error("listing", "*", watcher_kind(e.kind()), e))
    }

    /// The keys holding a value that match `filter` (a subject pattern below the bucket, such
    /// as `acme.>`), read through a short-lived, randomly named, headers-only pull consumer
    /// whose name and filter appear in its create subject, so a grant can confine the listing
    /// to one tenant's keys (see `nats/conf/README.md`). [`Records::keys`] lists the whole
    /// bucket through an unnamed consumer, which such a grant cannot confine.
    pub async fn keys_matching(&self, filter: &str) -> Result<Vec<String>, Error> {
        use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
        let listing = |source: BoxError| Error::Kv {
            op: "listing",
            bucket: self.store.name.clone(),
            key: filter.to_owned(),
            kind: bus_schema::ErrorKind::Transient,
            source,
        };
        let name = format!(
            "keys-{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let consumer = self
            .store
            .stream
            .create_consumer(pull::Config {
                name: Some(name),
                filter_subject: format!("{}{filter}", self.store.prefix),
                deliver_policy: DeliverPolicy::LastPerSubject,
                ack_policy: AckPolicy::None,
                headers_only: true,
                memory_storage: true,
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .map_err(|e| listing(Box::new(e)))?;
        let mut pending = consumer.cached_info().num_pending;
        let mut keys = Vec::new();
        while pending > 0 {
            let mut batch = consumer
                .fetch()
                .max_messages(512)
                .expires(Duration::from_secs(5))
                .messages()
                .await
                .map_err(|e| listing(Box::new(e)))?;
            let mut got = 0;
            while let Some(msg) = batch.next().await {
                let msg = msg.map_err(&listing)?;
                got += 1;
                pending = msg.info().map_err(&listing)?.pending;
                let deleted = msg
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("KV-Operation"))
                    .is_some_and(|op| op.as_str() != "PUT");
                if let (false, Some(key)) = (
                    deleted,
                    msg.subject.strip_prefix(self.store.prefix.as_str()),
                ) {
                    keys.push(key.to_owned());
                }
            }
            if got == 0 {
                break;
            }
        }
        Ok(keys)
    }

    /// Read-modify-write with compare-and-set. `f` sees the current value (`None` when
    /// absent) and returns the new one, or `None` for no change; an `Err` from `f` aborts.
    /// After a lost race the value is re-read and `f` runs again, up to [`MODIFY_ATTEMPTS`]
    /// times with a short random back-off.
    pub async fn modify<E, F>(&self, key: &str, mut f: F) -> Result<Modified<T>, E>
    where
        E: From<Error>,
        F: FnMut(Option<&T>) -> Result<Option<T>, E>,
    {
        for attempt in 0..MODIFY_ATTEMPTS {
            let current = self.get(key).await?;
            let Some(value) = f(current.as_ref().map(|(v, _)| v))? else {
                return Ok(Modified::Unchanged);
            };
            let written = match current {
                Some((_, revision)) => self.update(key, &value, revision).await,
                None => self.create(key, &value).await,
            };
            match written {
                Ok(revision) => return Ok(Modified::Written { value, revision }),
                Err(err) if err.is_conflict() => {
                    let max_ms = 1u64 << attempt.min(5);
                    let pause = Duration::from_millis(rand::random_range(0..=max_ms));
                    tokio::time::sleep(pause).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
        Err(Error::TooManyConflicts {
            bucket: self.store.name.clone(),
            key: key.to_owned(),
            attempts: MODIFY_ATTEMPTS,
        }
        .into())
    }

    fn encode(&self, key: &str, value: &T) -> Result<bytes::Bytes, Error> {
        bus_schema::encode(value)
            .map(Into::into)
            .map_err(|source| Error::Codec {
                bucket: self.store.name.clone(),
                key: key.to_owned(),
                source,
            })
    }

    fn kv_error(
        &self,
        op: &'static str,
        key: &str,
        kind: bus_schema::ErrorKind,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Kv {
            op,
            bucket: self.store.name.clone(),
            key: key.to_owned(),
            kind,
            source: Box::new(source),
        }
    }
}
