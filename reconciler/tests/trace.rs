//! A reconcile run is traced: the `reconcile_channel` span, its repairs in `repair_skus` →
//! `push_repairs`, and the channel call of a repair sends `traceparent` in that trace.
//!
//! Its own test binary: it installs an OpenTelemetry subscriber, and tracing caches each
//! callsite's interest process-wide.

#[path = "it/support.rs"]
#[allow(dead_code)]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

use onhand_sandbox::Channel as Sandboxed;
use onhand_testkit::eventually;
use support::{Harness, fast_config};

/// Keeps every finished span.
#[derive(Debug, Clone, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl opentelemetry_sdk::trace::SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.lock().expect("spans").extend(batch);
        Ok(())
    }
}

impl Collect {
    fn one(&self, name: &str) -> SpanData {
        let spans = self.0.lock().expect("spans");
        let named: Vec<&SpanData> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(named.len(), 1, "one {name} span: {named:?}");
        named[0].clone()
    }
}

// current_thread: the subscriber set below is the default on this one thread, where the
// reconciler and the sandbox also run.
#[tokio::test(flavor = "current_thread")]
async fn a_repair_is_a_child_span_of_its_run_and_its_channel_call_continues_it() {
    let spans = Collect::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let h = Harness::start().await;
    let api = h.ledger().await;
    // The projector lists the ledger's 7, then the channel drifts to 1 behind its back;
    // the repair sets 7 again.
    h.seed(Sandboxed::Webhook, &[("RT-1".to_owned(), 0)]).await;
    let projector = h
        .projector(&h.settings(Sandboxed::Webhook), fast_config())
        .await;
    api.receive("RT-1", 7).await;
    eventually(Duration::from_secs(20), "the projector lists 7", || async {
        (h.latest(Sandboxed::Webhook, "RT-1") == Some(7)).then_some(())
    })
    .await;
    projector.stop().await;
    h.drift(Sandboxed::Webhook, "RT-1", 1).await;
    let reconciler = h.reconciler(0).await;
    let report = reconciler.run(&h.settings(Sandboxed::Webhook), true).await;
    assert_eq!(report.repairs.repaired, 1, "{report:?}");
    assert_eq!(h.latest(Sandboxed::Webhook, "RT-1"), Some(7));

    let run = spans.one("reconcile_channel");
    let repair = spans.one("repair_skus");
    let push = spans.one("push_repairs");
    assert_eq!(repair.parent_span_id, run.span_context.span_id());
    assert_eq!(push.parent_span_id, repair.span_context.span_id());
    let trace = run.span_context.trace_id();
    assert_eq!(repair.span_context.trace_id(), trace);
    assert_eq!(push.span_context.trace_id(), trace);

    let writes = h.sandbox.channel(Sandboxed::Webhook).writes.clone();
    let write = writes
        .iter()
        .rfind(|w| w.sku == "RT-1" && w.quantity == 7)
        .expect("the repair's write");
    assert_eq!(
        write.traceparent.as_deref(),
        Some(format!("00-{trace}-{}-01", push.span_context.span_id()).as_str()),
        "the repair's call continues its span"
    );
    drop(provider);
}
