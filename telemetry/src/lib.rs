//! Telemetry for serverless-hosted-runner: logs, OpenTelemetry trace export and the names and
//! in-process families of the Prometheus metrics.
//!
//! - [`init`] installs the process's `tracing` subscriber once: plain text (no ANSI codes
//!   when stderr is not a terminal) or JSON lines, the level from `SHR_LOG`, and, when an
//!   OTLP endpoint is configured, an OpenTelemetry layer exporting spans over OTLP/HTTP
//!   (protobuf). Without an endpoint nothing is exported and no exporter thread runs.
//! - [`otel`] joins a handler span to the trace its message carries (`traceparent`), and
//!   reads the current span's id for the next hop.
//! - [`metrics`] holds every metric name as a constant and the counters and histograms that
//!   live in process memory. Cluster-wide numbers (runners by state, declines) are derived
//!   from the KV records by the binary at scrape time, not kept here.
//!
//! # Must not depend on
//! The bus, the actors or any cloud crate: this crate knows logs, spans and metric families
//! only, so every other crate can depend on it.

pub mod metrics;
pub mod otel;

use std::io::IsTerminal as _;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Environment variable with the log filter (`info`, `shr=debug,actors=info`, …).
pub const LOG_ENV: &str = "SHR_LOG";
/// Environment variable choosing the log format: `text` (default) or `json`.
pub const LOG_FORMAT_ENV: &str = "SHR_LOG_FORMAT";
/// The standard OTLP endpoint variable; spans go to `<endpoint>/v1/traces`.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The standard OTLP traces endpoint variable, used as is.
pub const OTLP_TRACES_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// Filter used when `SHR_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "warn";

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line, with the span fields (`trace_id`, …) included.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "text" | "plain" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(Error::BadLogFormat(other.to_owned())),
        }
    }
}

/// What [`init`] sets up.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The `tracing` filter directive; `None` means [`DEFAULT_LOG_FILTER`].
    pub filter: Option<String>,
    pub format: LogFormat,
    /// The full OTLP/HTTP traces URL (`http://collector:4318/v1/traces`); `None` = no export.
    pub otlp_traces_endpoint: Option<String>,
    /// `service.name` of the exported spans (`OTEL_SERVICE_NAME` wins when set).
    pub service_name: String,
}

impl Settings {
    /// Settings from the environment: [`LOG_ENV`], [`LOG_FORMAT_ENV`], and the OTLP endpoint
    /// from [`OTLP_TRACES_ENDPOINT_ENV`] or [`OTLP_ENDPOINT_ENV`] (+ `/v1/traces`).
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`Settings::from_env`], reading variables through `var` (tests pass a map).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let non_empty = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let format = match non_empty(LOG_FORMAT_ENV) {
            Some(value) => value.parse()?,
            None => LogFormat::Text,
        };
        let otlp_traces_endpoint = non_empty(OTLP_TRACES_ENDPOINT_ENV).or_else(|| {
            non_empty(OTLP_ENDPOINT_ENV)
                .map(|base| format!("{}/v1/traces", base.trim().trim_end_matches('/')))
        });
        Ok(Self {
            filter: non_empty(LOG_ENV),
            format,
            otlp_traces_endpoint,
            service_name: "shr".to_owned(),
        })
    }
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{LOG_FORMAT_ENV}: `{0}` is not a log format (text or json)")]
    BadLogFormat(String),
    #[error("{LOG_ENV}: invalid filter")]
    BadFilter(#[source] tracing_subscriber::filter::ParseError),
    #[error("building the OTLP span exporter for {endpoint}")]
    Exporter {
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("a tracing subscriber is already installed")]
    AlreadyInstalled(#[source] tracing_subscriber::util::TryInitError),
}

/// Keeps the span exporter alive; dropping it flushes what is buffered and stops the exporter.
#[derive(Debug)]
#[must_use = "dropping the guard stops trace export"]
pub struct Guard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Guard {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.force_flush();
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber: logs to stderr, and span export when configured.
pub fn init(settings: &Settings) -> Result<Guard, Error> {
    let filter = || match &settings.filter {
        Some(directive) => EnvFilter::try_new(directive).map_err(Error::BadFilter),
        None => Ok(EnvFilter::new(DEFAULT_LOG_FILTER)),
    };
    let ansi = std::io::stderr().is_terminal();
    let fmt = match settings.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_filter(filter()?)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter()?)
            .boxed(),
    };
    let (otel_layer, provider) = match &settings.otlp_traces_endpoint {
        Some(endpoint) => {
            let provider = otel::provider(endpoint, &settings.service_name)?;
            let layer = otel::layer(&provider);
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel_layer)
        .try_init()
        .map_err(Error::AlreadyInstalled)?;
    Ok(Guard { provider })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, Error> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn no_endpoint_means_no_export_and_text_logs() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.otlp_traces_endpoint, None);
        assert_eq!(s.format, LogFormat::Text);
        assert_eq!(s.filter, None);
        let blank = settings(&[(OTLP_ENDPOINT_ENV, "  ")]).unwrap();
        assert_eq!(
            blank.otlp_traces_endpoint, None,
            "a blank endpoint is no endpoint"
        );
    }

    #[test]
    fn the_base_endpoint_gets_the_traces_path_and_the_specific_one_wins() {
        let s = settings(&[(OTLP_ENDPOINT_ENV, "http://collector:4318/")]).unwrap();
        assert_eq!(
            s.otlp_traces_endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        let s = settings(&[
            (OTLP_ENDPOINT_ENV, "http://a:4318"),
            (OTLP_TRACES_ENDPOINT_ENV, "http://b:9999/custom"),
        ])
        .unwrap();
        assert_eq!(
            s.otlp_traces_endpoint.as_deref(),
            Some("http://b:9999/custom")
        );
    }

    #[test]
    fn log_format_parses_json_and_rejects_strangers() {
        let s = settings(&[(LOG_FORMAT_ENV, "JSON"), (LOG_ENV, "debug")]).unwrap();
        assert_eq!(s.format, LogFormat::Json);
        assert_eq!(s.filter.as_deref(), Some("debug"));
        let err = settings(&[(LOG_FORMAT_ENV, "xml")]).unwrap_err();
        assert!(
            matches!(err, Error::BadLogFormat(ref f) if f == "xml"),
            "{err}"
        );
    }
}
