//! Durable JetStream consumption shared by the actors: ack after the effect, retry on failure.
//!
//! Messages are spread over `lanes` sequential workers by the key of the record they are
//! about (a job key, a runner name; never a hash of the payload), so messages about the same
//! thing are handled one at a time and in stream order, while different things proceed in
//! parallel. A handler's `Ok` acks; a retryable error naks with
//! a growing delay; a permanent error is logged and the message terminated, so one poison
//! message never blocks a lane. A handler gets the message by value and hands it back with
//! its result.
//!
//! # Crash behaviour
//! A message in hand when a process dies comes back to another replica after [`ACK_WAIT`].
//! To keep that short while allowing slow effects (a cloud create can take minutes), a
//! running handler reports progress every [`PROGRESS_EVERY`], which resets the server's ack
//! timer, and is abandoned only after its spec's `handler_timeout`. Each process pulls few
//! messages ahead (small batches, one queued per lane), so a crash strands few.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, Message, consumer::pull};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Error;

/// Which messages a consumer reads, and how.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub stream: &'static str,
    pub durable: String,
    /// One filter subject: async-nats puts a single filter into the create subject
    /// (`$JS.API.CONSUMER.CREATE.<stream>.<durable>.<filter>`), so a grant can name it.
    pub filter: String,
    pub lanes: usize,
    /// How long one handler may run before it is abandoned and the message retried.
    pub handler_timeout: Duration,
}

/// How long the server waits for an ack (or a progress report) before redelivering.
pub const ACK_WAIT: Duration = Duration::from_secs(30);
/// How often a running handler tells the server it is still working.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// A pull stream that delivers nothing for this long is re-created: it recovers a
/// subscription lost across a server restart that reported no error.
const IDLE_RESUBSCRIBE: Duration = Duration::from_secs(30);
/// Failed attempts to bind a consumer (one a second) before it is logged as a warning.
const UNAVAILABLE_WARN_AFTER: u32 = 10;

/// The delay before redelivery after the `delivered`-th failed attempt: 0.5 s doubling, to 30 s.
pub fn backoff(delivered: i64) -> Duration {
    let exp = u32::try_from(delivered.clamp(1, 7) - 1).unwrap_or(6);
    Duration::from_millis(500u64 << exp).min(Duration::from_secs(30))
}

/// The lane of a message with record key `key` (a job key, a runner name): the same key
/// always maps to the same lane, so one thing's messages are handled one at a time.
pub fn lane_of(key: &str, lanes: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    usize::try_from(h.finish() % lanes.max(1) as u64).unwrap_or(0)
}

/// Consumes `spec` until `cancel` fires. `key` names the record a message is about (the
/// subject/record key: a job key or a runner name), which picks its lane; `handler` does the
/// work.
pub async fn run<K, H, Fut>(
    js: jetstream::Context,
    spec: ConsumerSpec,
    cancel: CancellationToken,
    key: K,
    handler: H,
) -> Result<(), Error>
where
    K: Fn(&Message) -> String + Send + 'static,
    H: Fn(Message) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = (Message, Result<(), Error>)> + Send,
{
    let lanes = spec.lanes.max(1);
    let (senders, mut workers) = spawn_lanes(&spec, lanes, handler);
    // The bus may be down when we start (or restarting): keep trying rather than exit.
    let mut attempts = 0u32;
    let consumer = loop {
        match bind_consumer(&js, &spec, lanes).await {
            Ok(consumer) => break consumer,
            Err(error) => {
                attempts += 1;
                // Expected for a few seconds while another process creates the streams; a
                // fault an operator should see once it lasts.
                if attempts < UNAVAILABLE_WARN_AFTER {
                    tracing::debug!(durable = %spec.durable, %error, "consumer unavailable; retrying");
                } else {
                    tracing::warn!(durable = %spec.durable, %error, attempts, "consumer still unavailable; retrying");
                }
                tokio::select! {
                    () = cancel.cancelled() => return Ok(()),
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    tracing::info!(durable = %spec.durable, filter = %spec.filter, lanes, "consumer started");
    while !cancel.is_cancelled() {
        if pull(&consumer, &spec, lanes, &cancel, &key, &senders).await == Pulled::Stop {
            break;
        }
    }
    drop(senders);
    while workers.join_next().await.is_some() {}
    Ok(())
}

/// Starts `lanes` sequential workers; a message sent to lane `n` is handled by worker `n`.
fn spawn_lanes<H, Fut>(
    spec: &ConsumerSpec,
    lanes: usize,
    handler: H,
) -> (Vec<mpsc::Sender<Message>>, tokio::task::JoinSet<()>)
where
    H: Fn(Message) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = (Message, Result<(), Error>)> + Send,
{
    let mut senders = Vec::with_capacity(lanes);
    let mut workers = tokio::task::JoinSet::new();
    for lane in 0..lanes {
        let (tx, mut rx) = mpsc::channel::<Message>(1);
        senders.push(tx);
        let handler = handler.clone();
        let durable = spec.durable.clone();
        let limit = spec.handler_timeout;
        workers.spawn(async move {
            while let Some(msg) = rx.recv().await {
                handle_one(&durable, lane, limit, msg, &handler).await;
            }
        });
    }
    (senders, workers)
}

/// Handles one message in its lane: progress reports while it runs, settle when done. A
/// handler that hangs must not stall its lane (and, once the lane's queue is full, every
/// lane): past `limit` it is abandoned and the message retried.
async fn handle_one<H, Fut>(durable: &str, lane: usize, limit: Duration, msg: Message, handler: &H)
where
    H: Fn(Message) -> Fut,
    Fut: Future<Output = (Message, Result<(), Error>)>,
{
    let subject = msg.subject.clone();
    let progress = msg.clone();
    let heartbeat = async move {
        loop {
            tokio::time::sleep(PROGRESS_EVERY).await;
            let _ = progress.ack_with(AckKind::Progress).await;
        }
    };
    // Continue the trace the message carries; logs of the handler show its id.
    let trace = crate::trace::of_message(msg.headers.as_ref());
    let span = crate::trace::handler_span(&trace, &subject);
    let work = tokio::time::timeout(
        limit,
        crate::trace::scope(trace, tracing::Instrument::instrument(handler(msg), span)),
    );
    tokio::select! {
        done = work => match done {
            Ok((msg, result)) => settle(durable, lane, msg, result).await,
            Err(_) => {
                tracing::error!(%durable, lane, %subject, ?limit, "handler timed out; message will be redelivered");
            }
        },
        () = heartbeat => {}
    }
}

/// Whether to keep pulling.
#[derive(Debug, PartialEq, Eq)]
enum Pulled {
    Again,
    Stop,
}

/// One pull subscription: hands its messages to their lanes until it goes idle or fails.
async fn pull<K>(
    consumer: &jetstream::consumer::PullConsumer,
    spec: &ConsumerSpec,
    lanes: usize,
    cancel: &CancellationToken,
    key: &K,
    senders: &[mpsc::Sender<Message>],
) -> Pulled
where
    K: Fn(&Message) -> String,
{
    let batch = consumer
        .stream()
        .max_messages_per_batch(lanes * 2)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(15))
        .messages()
        .await;
    let mut messages = match batch {
        Ok(m) => m,
        Err(error) => {
            tracing::warn!(durable = %spec.durable, %error, "consumer stream failed; retrying");
            return tokio::select! {
                () = cancel.cancelled() => Pulled::Stop,
                () = tokio::time::sleep(Duration::from_secs(1)) => Pulled::Again,
            };
        }
    };
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => return Pulled::Stop,
            next = tokio::time::timeout(IDLE_RESUBSCRIBE, messages.next()) => next,
        };
        let Ok(next) = next else {
            tracing::debug!(durable = %spec.durable, "no messages for a while; resubscribing");
            return Pulled::Again;
        };
        match next {
            Some(Ok(msg)) => {
                let lane = lane_of(&key(&msg), lanes);
                if senders[lane].send(msg).await.is_err() {
                    return Pulled::Stop;
                }
            }
            Some(Err(error)) => {
                tracing::warn!(durable = %spec.durable, %error, "consumer error; resubscribing");
                return Pulled::Again;
            }
            None => return Pulled::Again,
        }
    }
}

/// Gets (or creates) the durable pull consumer of `spec`, by name: no stream look-up, so a
/// tenant agent needs grants on its own consumer's subjects only.
async fn bind_consumer(
    js: &jetstream::Context,
    spec: &ConsumerSpec,
    lanes: usize,
) -> Result<jetstream::consumer::PullConsumer, Error> {
    if let Ok(consumer) = js
        .get_consumer_from_stream::<pull::Config, _, _>(&spec.durable, spec.stream)
        .await
    {
        return Ok(consumer);
    }
    js.create_consumer_on_stream(
        pull::Config {
            durable_name: Some(spec.durable.clone()),
            filter_subject: spec.filter.clone(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_ack_pending: i64::try_from(lanes * 4).unwrap_or(1024),
            ..Default::default()
        },
        spec.stream,
    )
    .await
    .map_err(|e| Error::bus("create consumer", e))
}

async fn settle(durable: &str, lane: usize, msg: Message, result: Result<(), Error>) {
    let error = match result {
        Ok(()) => return ack(&msg).await,
        Err(error) => error,
    };
    let delivered = msg.info().map(|i| i.delivered).unwrap_or(1);
    let kind = error.kind();
    if kind.is_retryable() {
        let delay = backoff(delivered);
        if error.is_expected_race() {
            tracing::debug!(durable, lane, subject = %msg.subject, delivered, %error, ?delay, "another worker has it; will retry");
        } else {
            tracing::warn!(durable, lane, subject = %msg.subject, delivered, ?kind, %error, ?delay, "handler failed; will retry");
        }
        if let Err(error) = msg.ack_with(AckKind::Nak(Some(delay))).await {
            tracing::warn!(durable, %error, "nak failed; the message will be redelivered after ack_wait");
        }
    } else {
        tracing::error!(durable, lane, subject = %msg.subject, delivered, ?kind, %error, "handler failed permanently; message terminated");
        if let Err(error) = msg.ack_with(AckKind::Term).await {
            tracing::warn!(durable, %error, "term failed");
        }
    }
}

/// Refuses a message that names another tenant than its subject (or is otherwise not this
/// consumer's to act on): logs it and returns `Ok`, so it is acked and changes nothing.
pub fn refuse(subject: &str, why: &dyn std::fmt::Display) -> Result<(), Error> {
    tracing::warn!(%subject, reason = %why, "message refused: it is not about this subject's tenant; acked, nothing changed");
    Ok(())
}

/// Checks that `registration`, if this process knows it, is one of `tenant`'s.
pub fn registration_of(
    ctx: &crate::Context,
    tenant: &str,
    registration: &str,
) -> Result<(), Error> {
    match ctx.config.registration(registration) {
        Some(reg) if reg.tenant == tenant => Ok(()),
        Some(reg) => Err(Error::Config(format!(
            "registration `{registration}` belongs to tenant `{}`, not `{tenant}`",
            reg.tenant
        ))),
        None => Ok(()),
    }
}

/// Acks a handled message; a failed ack means the message will come again, which handlers
/// tolerate, so it is only logged.
pub async fn ack(msg: &Message) {
    if let Err(error) = msg.ack().await {
        tracing::warn!(subject = %msg.subject, %error, "ack failed; message will be redelivered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_caps() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(5), Duration::from_secs(8));
        assert_eq!(backoff(100), Duration::from_secs(30));
    }
}
