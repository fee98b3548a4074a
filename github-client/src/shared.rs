//! What the replicas sharing one credential coordinate on: the pace of its mutating calls
//! and its rate budget. The client only calls this trait; the bus behind it lives elsewhere
//! (the actors' KV implementation), so this crate stays free of NATS.

use std::future::Future;
use std::pin::Pin;

use crate::RateBudget;

/// A future returned by [`SharedCredential::pace`].
pub type PaceFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Cluster-wide state of one credential, set with [`ClientOptions::shared`](crate::ClientOptions).
///
/// Guarantees expected of an implementation: [`pace`](Self::pace) returns when this caller
/// may send its mutating call such that all replicas together keep the credential's pace,
/// and never fails (on trouble it falls back to pacing locally); [`observed`](Self::observed)
/// does not block.
pub trait SharedCredential: Send + Sync + std::fmt::Debug {
    /// Waits for this caller's slot for one mutating call.
    fn pace(&self) -> PaceFuture<'_>;
    /// A budget read from a response, to share.
    fn observed(&self, budget: RateBudget);
    /// The newest budget any replica shared, if known.
    fn budget(&self) -> Option<RateBudget>;
}
