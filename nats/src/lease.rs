//! Leases: exclusive, expiring ownership of a key in the leases bucket.
//!
//! A lease is a KV entry whose value is the holder id. Taking it is a `create` (which
//! succeeds on an absent or deleted key), renewing is a compare-and-set `update` on the
//! revision we wrote last, releasing is a delete expecting that revision. So at most one
//! holder has a given revision, and a holder that lost its lease finds out on renewal.
//!
//! Expiry relies on the bucket's `max_age` ([`LEASE_TTL`] for
//! [`subject::LEASES_BUCKET`](bus_schema::subject::LEASES_BUCKET)): the server removes an
//! entry that was not rewritten within the TTL, after which anyone may take it. Renew every
//! [`LEASE_RENEW_EVERY`] (a third of the TTL). A holder that dies without releasing blocks
//! the key for at most the TTL; the server's expiry timer may add a second or so.

use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};

use crate::{
    Error,
    error::{create_kind, entry_kind, update_kind},
};

/// How long a lease lives without renewal: the leases bucket's `max_age`.
pub const LEASE_TTL: Duration = Duration::from_secs(30);
/// How often a holder should renew.
pub const LEASE_RENEW_EVERY: Duration = Duration::from_secs(10);

/// Takes leases in one bucket.
#[derive(Debug, Clone)]
pub struct Leases {
    store: kv::Store,
}

/// A held lease: the key, the holder and the revision it last wrote.
/// Dropping it without [`Lease::release`] leaves it to expire after the TTL.
#[derive(Debug)]
pub struct Lease {
    store: kv::Store,
    key: String,
    holder: String,
    revision: u64,
}

impl Leases {
    /// Leases over `store`, whose `max_age` is the TTL (normally [`Bus::leases`](crate::Bus)).
    pub fn new(store: kv::Store) -> Self {
        Self { store }
    }

    /// Takes `key` for `holder` if nobody holds it. `None` when someone else does.
    /// If `holder` itself holds it (a restart within the TTL), the lease is taken over by
    /// compare-and-set, so the earlier incarnation's renewals fail.
    pub async fn try_acquire(&self, key: &str, holder: &str) -> Result<Option<Lease>, Error> {
        let lease = |revision| Lease {
            store: self.store.clone(),
            key: key.to_owned(),
            holder: holder.to_owned(),
            revision,
        };
        match self.store.create(key, holder.to_owned().into()).await {
            Ok(revision) => return Ok(Some(lease(revision))),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(kv_error(
                    &self.store,
                    "acquiring lease",
                    key,
                    create_kind(e.kind()),
                    e,
                ));
            }
        }
        let entry =
            self.store.entry(key).await.map_err(|e| {
                kv_error(&self.store, "reading lease", key, entry_kind(e.kind()), e)
            })?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        let ours = entry.operation == Operation::Put && entry.value == holder.as_bytes();
        if !ours {
            return Ok(None);
        }
        match self
            .store
            .update(key, holder.to_owned().into(), entry.revision)
            .await
        {
            Ok(revision) => Ok(Some(lease(revision))),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(kv_error(
                &self.store,
                "acquiring lease",
                key,
                update_kind(e.kind()),
                e,
            )),
        }
    }
}

impl Lease {
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The revision of the last write: changes on every renewal.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Extends the lease by another TTL. [`Error::LeaseLost`] when it expired or someone
    /// else took it: stop the leased work.
    pub async fn renew(&mut self) -> Result<(), Error> {
        match self
            .store
            .update(&self.key, self.holder.clone().into(), self.revision)
            .await
        {
            Ok(revision) => {
                self.revision = revision;
                Ok(())
            }
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Err(Error::LeaseLost {
                key: self.key.clone(),
                holder: self.holder.clone(),
            }),
            Err(e) => Err(kv_error(
                &self.store,
                "renewing lease",
                &self.key,
                update_kind(e.kind()),
                e,
            )),
        }
    }

    /// Gives the lease up so another holder can take it at once. A lease that was already
    /// lost is left alone (that is not an error).
    pub async fn release(self) -> Result<(), Error> {
        match self
            .store
            .delete_expect_revision(&self.key, Some(self.revision))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(()),
            Err(e) => Err(kv_error(
                &self.store,
                "releasing lease",
                &self.key,
                update_kind(e.kind()),
                e,
            )),
        }
    }
}

fn kv_error(
    store: &kv::Store,
    op: &'static str,
    key: &str,
    kind: bus_schema::ErrorKind,
    source: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::Kv {
        op,
        bucket: store.name.clone(),
        key: key.to_owned(),
        kind,
        source: Box::new(source),
    }
}
