//! Telemetry initialisation: JSON logs to stderr filtered by `RUST_LOG` (default
//! `info`), an OTLP gRPC trace exporter when the standard `OTEL_*` variables ask for one,
//! and the W3C trace-context propagator. Plus helpers that carry a trace across NATS
//! through the `traceparent` header.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use thiserror::Error;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FromEnvError, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::event::HEADER_TRACEPARENT;

/// Telemetry could not be set up.
#[derive(Debug, Error)]
pub enum TelemetryError {
    /// `RUST_LOG` does not parse.
    #[error("RUST_LOG is not a valid filter: {0}")]
    Filter(#[from] FromEnvError),
    /// The OTLP exporter could not be built.
    #[error("cannot build the OTLP trace exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// A global subscriber is already installed (e.g. `init` called twice).
    #[error("telemetry is already initialised: {0}")]
    AlreadyInitialized(#[from] tracing_subscriber::util::TryInitError),
}

/// Keeps the trace pipeline alive; flushes and shuts it down on drop.
#[derive(Debug)]
#[must_use = "dropping the guard shuts tracing export down"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported over OTLP.
    pub fn otlp_enabled(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "trace provider shutdown failed; spans may be lost");
        }
    }
}

/// Installs logging and tracing for `service_name`. Call once, early in `main`, inside
/// a multi-thread Tokio runtime (the OTLP exporter needs it); a second call returns
/// [`TelemetryError::AlreadyInitialized`].
pub fn init(service_name: &'static str) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()?;
    let provider = if otlp_requested(|name| std::env::var(name).ok()) {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()?;
        Some(
            SdkTracerProvider::builder()
                .with_resource(resource(service_name))
                .with_batch_exporter(exporter)
                .build(),
        )
    } else {
        None
    };
    let otel_layer = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service_name)));
    let fmt_layer = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::io::stderr);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init();
    if let Err(error) = installed {
        if let Some(provider) = provider
            && let Err(shutdown) = provider.shutdown()
        {
            tracing::debug!(error = %shutdown, "discarded trace provider shutdown failed");
        }
        return Err(error.into());
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    if let Some(provider) = &provider {
        opentelemetry::global::set_tracer_provider(provider.clone());
    }
    tracing::debug!(
        service = service_name,
        otlp = provider.is_some(),
        "telemetry initialised"
    );
    Ok(TelemetryGuard { provider })
}

/// The resource: `OTEL_SERVICE_NAME` (and `OTEL_RESOURCE_ATTRIBUTES`) win when set, as
/// the OpenTelemetry spec asks; `service_name` is the default.
fn resource(service_name: &'static str) -> Resource {
    let builder = Resource::builder();
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty());
    if named {
        builder.build()
    } else {
        builder.with_service_name(service_name).build()
    }
}

/// Whether the standard `OTEL_*` variables ask for OTLP trace export.
fn otlp_requested(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name| var(name).is_some_and(|v| !v.trim().is_empty());
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// The W3C `traceparent` of the current tracing span, or `None` when it has no valid
/// OpenTelemetry span context (no exporter, or no span).
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(HEADER_TRACEPARENT)
}

/// Makes the trace in `traceparent` the parent of `span`. Invalid input is ignored.
/// Call it right after creating the span, before it is entered.
pub fn set_parent_from_traceparent(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([(HEADER_TRACEPARENT.to_owned(), traceparent.trim().to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if !cx.span().span_context().is_valid() {
        return;
    }
    if let Err(error) = span.set_parent(cx) {
        tracing::debug!(%error, "cannot set the remote parent of a span");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn with_otel<R>(f: impl FnOnce() -> R) -> R {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, f)
    }

    #[test]
    fn traceparent_is_carried_across() {
        let inside = with_otel(|| {
            let span = tracing::info_span!("handle_batch");
            set_parent_from_traceparent(&span, PARENT);
            span.in_scope(current_traceparent)
        })
        .expect("a valid span context");
        let parts: Vec<&str> = inside.split('-').collect();
        assert_eq!(parts.len(), 4, "{inside}");
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace");
        assert_ne!(parts[2], "00f067aa0ba902b7", "a new child span");
        assert_eq!(parts[3], "01");
    }

    #[test]
    fn invalid_traceparent_is_ignored() {
        with_otel(|| {
            for bad in [
                "",
                "garbage",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            ] {
                let span = tracing::info_span!("handle_batch");
                set_parent_from_traceparent(&span, bad);
                let tp = span
                    .in_scope(current_traceparent)
                    .expect("a fresh root span");
                assert!(!tp.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
            }
        });
    }

    #[test]
    fn no_traceparent_without_otel() {
        let span = tracing::info_span!("handle_batch");
        assert_eq!(span.in_scope(current_traceparent), None);
    }

    #[test]
    fn otlp_only_when_asked_and_not_disabled() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(!otlp_requested(env(&[])));
        assert!(otlp_requested(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://c:4317"
        )])));
        assert!(otlp_requested(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4317"
        )])));
        assert!(!otlp_requested(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")])));
        assert!(!otlp_requested(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_SDK_DISABLED", "true"),
        ])));
        assert!(otlp_requested(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_SDK_DISABLED", "false"),
        ])));
    }
}
