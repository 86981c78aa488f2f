//! Traces over OTLP/HTTP, configured by the standard OpenTelemetry environment variables.
//!
//! Nothing is set up unless `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`
//! is set. The OpenTelemetry SDK reads the rest itself: `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the default, or `http/json`),
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and its `_ARG`, and the
//! batch span processor's `OTEL_BSP_*`. The batch processor exports from a thread of its own with
//! the blocking HTTP client, so it needs no async runtime.

use std::sync::OnceLock;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::SpanExporter;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

/// The provider whose spans [`flush`] exports.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Why traces cannot be exported as configured.
#[derive(Debug, thiserror::Error)]
#[error("the OTLP span exporter cannot be built: {0}")]
pub struct OtlpError(#[from] opentelemetry_otlp::ExporterBuildError);

/// Whether the environment names an OTLP endpoint for traces.
pub fn configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var(name).is_ok_and(|value| !value.trim().is_empty()))
}

/// The layer exporting spans, when an endpoint is configured; installs the provider that
/// [`flush`] flushes.
pub fn layer<S>() -> Result<Option<Box<dyn Layer<S> + Send + Sync>>, OtlpError>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    if !configured() {
        return Ok(None);
    }
    // The exporter makes its blocking HTTP client on a thread of its own: making one on a
    // runtime's thread (a Lambda `main`) would panic.
    let exporter = SpanExporter::builder().with_http().build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build();
    let tracer = provider.tracer("chatfn");
    let _ = PROVIDER.set(provider);
    // The store's call spans are DEBUG; everything else exported is INFO and above (the HTTP
    // stack's own spans stay out, the exporter's requests among them).
    let spans = Targets::new()
        .with_default(tracing::Level::INFO)
        .with_target("chatfn::store", tracing::Level::DEBUG);
    Ok(Some(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_threads(false)
            .with_location(false)
            .with_filter(spans)
            .boxed(),
    ))
}

/// Whether the exporter is installed.
pub fn exporting() -> bool {
    PROVIDER.get().is_some()
}

/// Exports the spans ended so far and waits for it. Blocking.
pub fn flush() {
    if let Some(provider) = PROVIDER.get()
        && let Err(error) = provider.force_flush()
    {
        tracing::warn!("could not export the spans: {error}");
    }
}

/// Makes the W3C `traceparent` (and `tracestate`) of `headers`, if any, the parent of `span`.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(parent);
}

/// Reads propagation fields from HTTP headers.
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}
