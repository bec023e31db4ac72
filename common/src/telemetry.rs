//! Telemetry initialisation: JSON logs to stderr filtered by `RUST_LOG` (default
//! `info`), each line carrying the `trace_id` and `span_id` of the span it was logged in;
//! an OTLP gRPC trace exporter when the standard `OTEL_*` variables ask for one; and the
//! W3C trace-context propagator. Plus helpers that carry a trace across NATS through the
//! `traceparent` header, and [`TraceContext`] for parenting and linking spans on a trace
//! carried in from elsewhere.

use std::collections::HashMap;
use std::sync::OnceLock;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use thiserror::Error;
use tracing::dispatcher::WeakDispatch;
use tracing::{Dispatch, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FromEnvError, LevelFilter};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{self, FormatEvent, Json, JsonFields};
use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
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
    /// `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` names a protocol this build cannot speak.
    #[error(
        "{variable}={value:?} is not supported: onhand exports traces over OTLP gRPC only (\"grpc\")"
    )]
    Protocol {
        variable: &'static str,
        value: String,
    },
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

/// Installs logging and tracing for `service_name` (the default `service.name`, e.g.
/// `onhand-projector-shopify`; `OTEL_SERVICE_NAME` wins when set). Call once, early in
/// `main`, inside a multi-thread Tokio runtime (the OTLP exporter needs it); a second call
/// returns [`TelemetryError::AlreadyInitialized`].
pub fn init(service_name: &str) -> Result<TelemetryGuard, TelemetryError> {
    let service_name = service_name.to_owned();
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()?;
    let provider = if otlp_requested(|name| std::env::var(name).ok()) {
        grpc_protocol(|name| std::env::var(name).ok())?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()?;
        Some(
            SdkTracerProvider::builder()
                .with_resource(resource(&service_name))
                .with_batch_exporter(exporter)
                .build(),
        )
    } else {
        None
    };
    let otel_layer = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service_name.clone())));
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(json_logs(std::io::stderr))
        .with(otel_layer)
        .with(TraceIdsLayer::new(provider.is_some()))
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
fn resource(service_name: &str) -> Resource {
    let builder = Resource::builder();
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty());
    if named {
        builder.build()
    } else {
        builder.with_service_name(service_name.to_owned()).build()
    }
}

/// Fails unless the OTLP protocol asked for (`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else
/// `OTEL_EXPORTER_OTLP_PROTOCOL`) is gRPC, the one this build exports with; unset means
/// gRPC here (the spec's default is `http/protobuf`: set the endpoint to a collector's gRPC
/// port, usually 4317).
fn grpc_protocol(var: impl Fn(&str) -> Option<String>) -> Result<(), TelemetryError> {
    for variable in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(value) = var(variable).filter(|v| !v.trim().is_empty()) {
            return if value.trim().eq_ignore_ascii_case("grpc") {
                Ok(())
            } else {
                Err(TelemetryError::Protocol { variable, value })
            };
        }
    }
    Ok(())
}

/// The JSON log layer (one object per line; the current span's fields under `span`), with
/// `trace_id` and `span_id` at the top level of every line logged inside a span that has a
/// valid OpenTelemetry context (see [`TraceIdsLayer`]).
fn json_logs<S, W>(writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(writer)
        .map_event_format(WithTraceIds)
}

/// The OpenTelemetry ids of a span, as lowercase hex, kept in its extensions by
/// [`TraceIdsLayer`] for the log formatter.
#[derive(Debug, Clone)]
struct TraceIds {
    trace_id: String,
    span_id: String,
}

/// Records each span's OpenTelemetry trace and span ids when it is first entered (the
/// OpenTelemetry layer starts the span then, so its parent is settled), for
/// [`WithTraceIds`]. Inactive (costing nothing) when no OpenTelemetry layer is installed.
/// A span never entered has no ids recorded, so an event given it as explicit parent before
/// it ran is logged without them.
///
/// Not an `Option` layer: `Option<Layer>` does not pass `on_register_dispatch` on.
#[derive(Debug)]
struct TraceIdsLayer {
    active: bool,
    dispatch: OnceLock<WeakDispatch>,
}

impl TraceIdsLayer {
    fn new(active: bool) -> Self {
        Self {
            active,
            dispatch: OnceLock::new(),
        }
    }
}

impl<S> Layer<S> for TraceIdsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        // A layer is registered with one dispatcher; a second registration keeps the first.
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_enter(&self, id: &tracing::span::Id, ctx: LayerContext<'_, S>) {
        if !self.active {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        if span.extensions().get::<TraceIds>().is_some() {
            return;
        }
        let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        // No extension lock may be held here: this locks the span's extensions itself.
        let Some(cx) = tracing_opentelemetry::get_otel_context(id, &dispatch) else {
            return;
        };
        let otel = cx.span();
        let sc = otel.span_context();
        if !sc.is_valid() {
            return;
        }
        span.extensions_mut().insert(TraceIds {
            trace_id: sc.trace_id().to_string(),
            span_id: sc.span_id().to_string(),
        });
    }
}

/// The JSON event format with `trace_id` and `span_id` first, taken from the span the
/// event belongs to (its explicit parent, else the current span).
#[derive(Debug)]
struct WithTraceIds(format::Format<Json>);

impl<S> FormatEvent<S, JsonFields> for WithTraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let ids = ctx
            .parent_span()
            .and_then(|span| span.extensions().get::<TraceIds>().cloned());
        let Some(ids) = ids else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0
            .format_event(ctx, format::Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => {
                write!(
                    writer,
                    "{{\"trace_id\":\"{}\",\"span_id\":\"{}\",",
                    ids.trace_id, ids.span_id
                )?;
                writer.write_str(rest)
            }
            None => writer.write_str(&line),
        }
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

/// The OpenTelemetry identity of one span (trace id, span id, flags): what a span carried
/// in from elsewhere (a message's `traceparent`) or made here is known by, so that other
/// spans can be parented on it or link to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceContext(SpanContext);

impl TraceContext {
    /// The context of `span`, or `None` when it has no valid OpenTelemetry context (no
    /// OpenTelemetry layer, or the span is disabled). Starts the span's OpenTelemetry side:
    /// set its parent before calling this.
    pub fn of(span: &tracing::Span) -> Option<Self> {
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        sc.is_valid().then_some(Self(sc))
    }

    /// The remote span a W3C `traceparent` names; `None` when it does not parse.
    pub fn from_traceparent(traceparent: &str) -> Option<Self> {
        let carrier =
            HashMap::from([(HEADER_TRACEPARENT.to_owned(), traceparent.trim().to_owned())]);
        let cx = TraceContextPropagator::new().extract(&carrier);
        let sc = cx.span().span_context().clone();
        sc.is_valid().then_some(Self(sc))
    }

    /// The trace id, as lowercase hex.
    pub fn trace_id(&self) -> String {
        self.0.trace_id().to_string()
    }

    /// Whether both spans are in the same trace.
    pub fn same_trace(&self, other: &TraceContext) -> bool {
        self.0.trace_id() == other.0.trace_id()
    }

    /// Makes this span the OpenTelemetry parent of `span` (which must not be started yet:
    /// call it right after creating the span). Returns whether it took: `false` without an
    /// OpenTelemetry layer or for a disabled span.
    pub fn parent(&self, span: &tracing::Span) -> bool {
        let cx = opentelemetry::Context::new().with_remote_span_context(self.0.clone());
        span.set_parent(cx).is_ok()
    }

    /// Adds a link from `span` to this span (an OpenTelemetry link: a span related to
    /// another trace without being its child).
    pub fn link(&self, span: &tracing::Span) {
        span.add_link(self.0.clone());
    }
}

/// Makes `span` the root of a new trace (whatever the current span is), and says whether
/// it is traced: `false` without an OpenTelemetry layer or for a disabled span, so callers
/// can skip per-item tracing work. Call it right after creating the span.
pub fn new_root(span: &tracing::Span) -> bool {
    span.set_parent(opentelemetry::Context::new()).is_ok()
}

/// Parents `span` on the first of `traces` and links it to each of the others in a trace
/// of their own (one link per trace). Returns whether any was given. Call it right after
/// creating the span.
pub fn continue_first<'a>(
    span: &tracing::Span,
    traces: impl IntoIterator<Item = &'a TraceContext>,
) -> bool {
    let mut traces = traces.into_iter();
    let Some(first) = traces.next() else {
        return false;
    };
    first.parent(span);
    link_traces(span, Some(first), traces);
    true
}

/// Links `span` to each distinct trace among `traces` (the first span seen of each), except
/// the trace of `besides` (its parent's, say). The SDK keeps at most 128 links per span
/// (`OTEL_SPAN_LINK_COUNT_LIMIT`) and counts the rest as dropped.
pub fn link_traces<'a>(
    span: &tracing::Span,
    besides: Option<&TraceContext>,
    traces: impl IntoIterator<Item = &'a TraceContext>,
) {
    let mut seen: std::collections::HashSet<opentelemetry::trace::TraceId> =
        besides.map(|b| b.0.trace_id()).into_iter().collect();
    for t in traces {
        if seen.insert(t.0.trace_id()) {
            t.link(span);
        }
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

    /// Log lines written through [`json_logs`] into a buffer, with an OpenTelemetry layer
    /// (and the ids layer) when `otel`.
    fn logged<R>(otel: bool, f: impl FnOnce() -> R) -> (R, Vec<serde_json::Value>) {
        #[derive(Clone, Default)]
        struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("buffer").extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(json_logs(move || writer.clone()))
            .with(otel.then(|| tracing_opentelemetry::layer().with_tracer(provider.tracer("test"))))
            .with(TraceIdsLayer::new(otel));
        let out = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("utf-8");
        let lines = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        (out, lines)
    }

    fn ids(line: &serde_json::Value) -> (Option<&str>, Option<&str>) {
        (line["trace_id"].as_str(), line["span_id"].as_str())
    }

    #[test]
    fn log_lines_carry_the_span_trace_and_span_ids() {
        let (spans, lines) = logged(true, || {
            let outer = tracing::info_span!("handle_batch", channel = "shopify");
            set_parent_from_traceparent(&outer, PARENT);
            let inner = outer.in_scope(|| tracing::info_span!("push_batch"));
            outer.in_scope(|| tracing::info!(sku = "A-1", "in the outer span"));
            inner.in_scope(|| tracing::warn!("in the inner span"));
            tracing::info!(parent: &inner, "explicit parent");
            tracing::info!("outside any span");
            let outer = TraceContext::of(&outer).expect("outer traced");
            let inner = TraceContext::of(&inner).expect("inner traced");
            (outer, inner)
        });
        let (outer, inner) = spans;
        assert_eq!(lines.len(), 4, "{lines:?}");
        let span_id = |t: &TraceContext| t.0.span_id().to_string();
        assert_eq!(
            ids(&lines[0]),
            (
                Some(outer.trace_id().as_str()),
                Some(span_id(&outer).as_str())
            )
        );
        assert_eq!(outer.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(lines[0]["fields"]["sku"], "A-1", "the usual fields stay");
        assert_eq!(lines[0]["span"]["channel"], "shopify");
        assert_eq!(
            ids(&lines[1]),
            (
                Some(inner.trace_id().as_str()),
                Some(span_id(&inner).as_str())
            )
        );
        assert_ne!(span_id(&inner), span_id(&outer));
        assert_eq!(ids(&lines[2]), ids(&lines[1]), "an explicit parent's ids");
        assert_eq!(ids(&lines[3]), (None, None), "no span, no ids");
    }

    #[test]
    fn log_lines_have_no_ids_without_otel() {
        let ((), lines) = logged(false, || {
            let span = tracing::info_span!("handle_batch");
            set_parent_from_traceparent(&span, PARENT);
            span.in_scope(|| tracing::info!("in a span"));
        });
        let line = lines
            .iter()
            .find(|l| l["fields"]["message"] == "in a span")
            .expect("the line");
        assert_eq!(line["span"]["name"], "handle_batch");
        assert_eq!(ids(line), (None, None), "{line:?}");
    }

    /// Keeps every finished span.
    #[derive(Debug, Clone, Default)]
    struct Collect(std::sync::Arc<std::sync::Mutex<Vec<opentelemetry_sdk::trace::SpanData>>>);

    impl opentelemetry_sdk::trace::SpanExporter for Collect {
        async fn export(
            &self,
            batch: Vec<opentelemetry_sdk::trace::SpanData>,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            self.0.lock().expect("spans").extend(batch);
            Ok(())
        }
    }

    #[test]
    fn batch_spans_continue_the_first_trace_and_link_the_others() {
        let exporter = Collect::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let a = TraceContext::from_traceparent(PARENT).expect("a");
        let b = TraceContext::from_traceparent(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .expect("b");
        let a2 = TraceContext::from_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01",
        )
        .expect("a2");
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("push_batch");
            assert!(continue_first(&span, [&a, &b, &a2]));
            let root = tracing::info_span!("project_batch");
            assert!(new_root(&root));
            link_traces(&root, None, [&a, &b, &a2]);
            drop(root);
            drop(span);
        });
        let spans = exporter.0.lock().expect("spans").clone();
        let push = spans.iter().find(|s| s.name == "push_batch").expect("push");
        assert_eq!(push.span_context.trace_id().to_string(), a.trace_id());
        assert_eq!(push.parent_span_id, a.0.span_id());
        let linked: Vec<_> = push.links.iter().map(|l| l.span_context.clone()).collect();
        assert_eq!(linked, vec![b.0.clone()], "one link per other trace");
        let root = spans
            .iter()
            .find(|s| s.name == "project_batch")
            .expect("root");
        assert_ne!(root.span_context.trace_id().to_string(), a.trace_id());
        assert_ne!(root.span_context.trace_id().to_string(), b.trace_id());
        let linked: Vec<_> = root.links.iter().map(|l| l.span_context.clone()).collect();
        assert_eq!(linked, vec![a.0.clone(), b.0.clone()]);
    }

    #[test]
    fn only_grpc_is_accepted_as_the_protocol() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(grpc_protocol(env(&[])).is_ok());
        assert!(grpc_protocol(env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])).is_ok());
        assert!(grpc_protocol(env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")])).is_err());
        assert!(
            grpc_protocol(env(&[
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ]))
            .is_ok(),
            "the signal's own variable wins"
        );
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
