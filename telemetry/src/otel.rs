//! OpenTelemetry spans: the exporter, and joining spans to the trace a message carries.
//!
//! The actors already carry W3C `traceparent` in NATS headers. A handler span is made a
//! child of that remote context with [`set_remote_parent`], so the exported spans of every
//! process that touched a job share its trace id. [`current_span_id`] gives the id of the
//! span a message is published from, which becomes the parent id the next hop sees.
//!
//! # Caveats
//! When export is off, [`set_remote_parent`] and [`current_span_id`] do nothing and return
//! `None`: the trace id still travels in the headers and the logs.

use std::collections::HashMap;

use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::registry::LookupSpan;

use crate::Error;

/// The name of the tracer (the instrumentation scope) of every exported span.
pub const TRACER_NAME: &str = "serverless-hosted-runner";

/// A tracer provider with a batching OTLP/HTTP (protobuf) exporter to `endpoint`.
///
/// The batch processor honours the standard `OTEL_BSP_*` variables (for example
/// `OTEL_BSP_SCHEDULE_DELAY` in milliseconds); `OTEL_SERVICE_NAME` and
/// `OTEL_RESOURCE_ATTRIBUTES` override the resource.
pub(crate) fn provider(endpoint: &str, service_name: &str) -> Result<SdkTracerProvider, Error> {
    // The exporter's HTTP client uses rustls without a built-in provider: take ring, as the
    // rest of the workspace does (a provider installed earlier stays).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .build()
        .map_err(|source| Error::Exporter {
            endpoint: endpoint.to_owned(),
            source,
        })?;
    let mut resource = opentelemetry_sdk::Resource::builder()
        .with_attribute(KeyValue::new("process.pid", i64::from(std::process::id())));
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service_name.to_owned());
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// The `tracing` layer exporting spans at info level and above through `provider`.
pub(crate) fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(TRACER_NAME))
        .with_filter(LevelFilter::INFO)
}

/// Makes `span` a child of the remote span named by a `traceparent` header value.
///
/// Call it right after creating the span, before it is entered. Returns whether the parent
/// was set: `false` when export is off, the header is malformed, or the span already started.
pub fn set_remote_parent(span: &tracing::Span, traceparent: &str) -> bool {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if !context.span().span_context().is_valid() {
        return false;
    }
    span.set_parent(context).is_ok()
}

/// The exported id (16 lowercase hex digits) of the current span and its trace id, when
/// export is on and the current span is being recorded.
pub fn current_span_id() -> Option<(String, String)> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| {
        (
            span_context.trace_id().to_string(),
            span_context.span_id().to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_export_a_parent_is_not_set_and_there_is_no_span_id() {
        let span = tracing::info_span!("handle");
        assert!(!set_remote_parent(
            &span,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        let _entered = span.enter();
        assert_eq!(current_span_id(), None);
    }

    #[test]
    fn an_exported_span_takes_the_remote_trace_and_parent() {
        use opentelemetry_sdk::trace::InMemorySpanExporter;
        use tracing_subscriber::layer::SubscriberExt as _;

        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(layer(&provider));
        let seen = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("handle");
            assert!(set_remote_parent(
                &span,
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            ));
            assert!(!set_remote_parent(&span, "garbage"));
            let _entered = span.enter();
            current_span_id()
        });
        let (trace_id, span_id) = seen.unwrap();
        assert_eq!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        provider.force_flush().unwrap();
        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].parent_span_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(spans[0].span_context.span_id().to_string(), span_id);
    }
}
