//! Logs and traces. `RUST_LOG` filters (default `info`); logs are
//! human-readable text, or JSON lines with `PRACTICE_LOG_FORMAT=json`.
//! When `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans are also exported over
//! OTLP/gRPC in batches (a full queue drops spans rather than blocking a
//! request); the guard flushes them at shutdown. Incoming W3C
//! `traceparent`/`tracestate` are honoured through the global propagator.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::{EnvFilter, Layer as _, fmt, prelude::*};

use crate::config::LogFormat;

/// Keeps the span exporter alive; `shutdown` flushes what is queued.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Flushes and stops the exporter. Blocking: call it off the async
    /// workers (it is quick when nothing is queued).
    /// Exports the spans ended so far.
    pub async fn flush(&self) {
        if let Some(provider) = self.provider.clone() {
            let _ = tokio::task::spawn_blocking(move || provider.force_flush()).await;
        }
    }

    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = provider.shutdown() {
                    eprintln!("flushing spans failed: {e}");
                }
            })
            .await;
        }
    }
}

fn otlp_provider() -> Option<SdkTracerProvider> {
    std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())?;
    // The endpoint, headers and timeout come from the standard OTEL_*
    // variables, read by the exporter itself.
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("OTLP exporter not started: {e}");
            return None;
        }
    };
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name("practice-service");
    }
    // The tonic exporter needs the Tokio reactor, which the default
    // thread-based batch processor doesn't have: export from a Tokio task.
    let processor =
        BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    Some(
        SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource.build())
            .build(),
    )
}

/// Installs the global subscriber (once; later calls do nothing) and, with
/// an OTLP endpoint configured, the exporter. Call inside the Tokio runtime.
pub fn init(format: LogFormat) -> TelemetryGuard {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let provider = otlp_provider();
    // Spans are exported whatever RUST_LOG says about log lines.
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("practice-service"))
            .with_filter(Targets::new().with_target("practice_service", Level::INFO))
    });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt_layer = match format {
        LogFormat::Text => fmt::layer().with_target(false).boxed(),
        LogFormat::Json => fmt::layer().json().flatten_event(true).boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(fmt_layer.with_filter(filter))
        .with(otel)
        .try_init();
    TelemetryGuard { provider }
}

/// For tests: logs go through the test harness's capture (shown for failing
/// tests), `warn` and up unless `RUST_LOG` says otherwise.
pub fn init_for_tests() {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_test_writer())
        .try_init();
}
