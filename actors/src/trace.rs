//! W3C trace context (`traceparent`) carried in NATS headers across the actors.
//!
//! The webhook (or the poller) starts a trace for each job event it publishes. A consumer
//! reads the header of the message it handles, runs the handler inside a span carrying the
//! trace id, and everything the handler publishes carries the same trace id with a new parent
//! id. A webhook delivery, the provision command it led to and the runner events of the cloud
//! call therefore share one trace id, and the logs of every actor show it as `trace_id`.
//!
//! When span export is on (see the `telemetry` crate), a handler span made by
//! [`handler_span`] is the exported child of the span that published the message: the parent
//! id in `traceparent` is that span's exported id ([`outgoing_headers`]).
//!
//! # Caveats
//! With export off, the parent id is a fresh random id per hop; the trace id in logs and
//! headers is what ties the hops together.

use std::future::Future;

use bus_schema::subject::TRACEPARENT_HEADER;

tokio::task_local! {
    static CURRENT: TraceParent;
}

/// One `traceparent` value: version 00, a 16-byte trace id, an 8-byte parent id, sampled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: String,
    parent_id: String,
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl TraceParent {
    /// A new trace.
    pub fn root() -> Self {
        Self {
            trace_id: uuid::Uuid::new_v4().simple().to_string(),
            parent_id: new_span_id(),
        }
    }

    /// Parses a `traceparent` header; `None` for anything malformed or all-zero.
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (version, trace_id, parent_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let valid = is_lower_hex(version, 2)
            && version != "ff"
            && is_lower_hex(trace_id, 32)
            && is_lower_hex(parent_id, 16)
            && is_lower_hex(flags, 2)
            && trace_id.bytes().any(|b| b != b'0')
            && parent_id.bytes().any(|b| b != b'0')
            && (version != "00" || parts.next().is_none());
        valid.then(|| Self {
            trace_id: trace_id.to_owned(),
            parent_id: parent_id.to_owned(),
        })
    }

    /// The same trace with a new parent id, for a message this hop publishes.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id.clone(),
            parent_id: new_span_id(),
        }
    }

    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The header value.
    pub fn header_value(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.parent_id)
    }
}

fn new_span_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id[..16].to_owned()
}

/// The trace of the message being handled, if any.
pub fn current() -> Option<TraceParent> {
    CURRENT.try_with(TraceParent::clone).ok()
}

/// The trace id of the message being handled (or of the trace started with
/// [`in_new_trace`]), for a log line that must name it; empty outside any trace.
pub fn current_id() -> String {
    CURRENT.try_with(|t| t.trace_id.clone()).unwrap_or_default()
}

/// Runs `f` as part of `trace`: what it publishes carries the trace.
pub async fn scope<F: Future>(trace: TraceParent, f: F) -> F::Output {
    CURRENT.scope(trace, f).await
}

/// The trace context of a message: its `traceparent` header, or a new trace.
pub fn of_message(headers: Option<&async_nats::HeaderMap>) -> TraceParent {
    headers
        .and_then(|h| h.get(TRACEPARENT_HEADER))
        .and_then(|v| TraceParent::parse(v.as_str()))
        .unwrap_or_else(TraceParent::root)
}

/// The span a consumer runs a message's handler in: it carries the `trace_id` in logs and,
/// when spans are exported, is the child of the span that published the message.
pub fn handler_span(trace: &TraceParent, subject: &str) -> tracing::Span {
    let span = tracing::info_span!("handle", trace_id = %trace.trace_id(), %subject);
    telemetry::otel::set_remote_parent(&span, &trace.header_value());
    span
}

/// Runs `f` inside `span`, as the start of a new trace unless one is already current. The
/// span should declare an empty `trace_id` field, which gets the new id. With export on, the
/// trace id is the exported span's, so the first hop's span is the trace's root.
pub async fn in_new_trace<F: Future>(span: tracing::Span, f: F) -> F::Output {
    use tracing::Instrument as _;
    let trace = match current() {
        Some(trace) => trace,
        None => span
            .in_scope(telemetry::otel::current_span_id)
            .and_then(|(trace_id, span_id)| {
                TraceParent::parse(&format!("00-{trace_id}-{span_id}-01"))
            })
            .unwrap_or_else(TraceParent::root),
    };
    span.record("trace_id", trace.trace_id());
    scope(trace, f.instrument(span)).await
}

/// Headers for a message published now: a child of the current trace, or a new trace. The
/// parent id is the current exported span's id when there is one in the same trace.
pub fn outgoing_headers() -> async_nats::HeaderMap {
    let trace = match current() {
        None => TraceParent::root(),
        Some(trace) => match telemetry::otel::current_span_id() {
            Some((trace_id, span_id)) if trace_id == trace.trace_id => TraceParent {
                trace_id,
                parent_id: span_id,
            },
            _ => trace.child(),
        },
    };
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(TRACEPARENT_HEADER, trace.header_value().as_str());
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_w3c_example_and_rejects_malformed_values() {
        let tp =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(TraceParent::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_child_keeps_the_trace_and_changes_the_parent() {
        let root = TraceParent::root();
        let child = root.child();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_ne!(child.header_value(), root.header_value());
        assert_eq!(TraceParent::parse(&child.header_value()), Some(child));
    }

    #[tokio::test]
    async fn publishing_inside_a_scope_continues_its_trace() {
        let root = TraceParent::root();
        let headers = scope(root.clone(), async { outgoing_headers() }).await;
        let sent = TraceParent::parse(headers.get(TRACEPARENT_HEADER).unwrap().as_str()).unwrap();
        assert_eq!(sent.trace_id(), root.trace_id());
        let outside =
            TraceParent::parse(outgoing_headers().get(TRACEPARENT_HEADER).unwrap().as_str())
                .unwrap();
        assert_ne!(outside.trace_id(), root.trace_id(), "no scope: a new trace");
    }

    #[tokio::test]
    async fn a_new_trace_is_current_inside_and_kept_when_one_exists() {
        let span = tracing::info_span!("publish", trace_id = tracing::field::Empty);
        let inner = in_new_trace(span, async { current() }).await.unwrap();
        assert_eq!(inner.trace_id().len(), 32);
        let outer = TraceParent::root();
        let kept = scope(
            outer.clone(),
            in_new_trace(tracing::info_span!("again"), async { current() }),
        )
        .await
        .unwrap();
        assert_eq!(kept, outer, "inside a trace, no new one starts");
    }
}
