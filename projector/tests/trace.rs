//! Trace context: the `traceparent` an event carries on its JetStream message (from the
//! ledger request that caused it) continues through the projector's span to the channel
//! HTTP call's `traceparent` header; a batch coalescing many traces links to all of them,
//! and each SKU's channel call continues the trace of the SKU's newest event (one call per
//! chunk: the chunk's first SKU's trace, the others linked).
//!
//! Its own test binary: it installs an OpenTelemetry subscriber, and tracing caches each
//! callsite's interest process-wide.

#[path = "it/support.rs"]
#[allow(dead_code)]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use onhand_sandbox::Channel as Sandboxed;
use onhand_testkit::eventually;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::trace::{SpanContext, SpanId};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

use support::{Harness, event, fast_config};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

// current_thread: the subscriber set below is the default on this one thread, where the
// projector and the sandbox also run.
#[tokio::test(flavor = "current_thread")]
async fn an_events_traceparent_reaches_the_channel_call() {
    let provider = SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let h = Harness::start().await;
    h.seed(Sandboxed::Webhook, &[("traced-1".to_owned(), 0)])
        .await;
    let running = h
        .projector(&h.settings(Sandboxed::Webhook, &[]), fast_config())
        .await;
    let e = event("traced-1", 1, 5);
    let parent = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
    h.publish_with(
        &e.subject(),
        Some(&e.event_id.to_string()),
        Some(&parent),
        e.to_json(),
    )
    .await;
    let write = eventually(Duration::from_secs(10), "the write lands", || async {
        h.writes(Sandboxed::Webhook).into_iter().next()
    })
    .await;
    running.stop().await;
    let tp = write
        .traceparent
        .expect("the channel call carried a traceparent");
    assert!(
        tp.starts_with(&format!("00-{TRACE_ID}-")),
        "same trace: {tp}"
    );
    assert!(
        !tp.contains("00f067aa0ba902b7"),
        "a child span, not the relay's: {tp}"
    );
}

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
    fn named(&self, name: &str) -> Vec<SpanData> {
        let spans = self.0.lock().expect("spans");
        spans.iter().filter(|s| s.name == name).cloned().collect()
    }
}

fn traceparent(trace: &str, span: &str) -> String {
    format!("00-{trace}-{span}-01")
}

fn linked(span: &SpanData) -> Vec<SpanContext> {
    span.links.iter().map(|l| l.span_context.clone()).collect()
}

fn span_id(hex: &str) -> SpanId {
    SpanId::from_hex(hex).expect("span id")
}

#[tokio::test(flavor = "current_thread")]
async fn a_coalesced_batch_links_every_trace_and_each_call_continues_its_skus() {
    let spans = Collect::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let h = Harness::start().await;
    let names = ["co-a", "co-b", "co-c"];
    h.seed(Sandboxed::Webhook, &names.map(|s| (s.to_owned(), 0)))
        .await;
    // Two SKUs a call: co-a and co-b share one, co-c has its own.
    let config = onhand_projector::ProjectorConfig {
        linger: Duration::from_millis(500),
        ..fast_config()
    };
    let running = h
        .projector(
            &h.settings(Sandboxed::Webhook, &[("MAX_BATCH", "2")]),
            config,
        )
        .await;
    // Four ledger requests, four traces: co-a twice (coalesced), co-b, co-c; published at
    // once, within the projector's linger, so they arrive in one batch.
    let traces = [
        (
            "co-a",
            1,
            "11111111111111111111111111111111",
            "a1a1a1a1a1a1a1a1",
        ),
        (
            "co-a",
            2,
            "22222222222222222222222222222222",
            "a2a2a2a2a2a2a2a2",
        ),
        (
            "co-b",
            1,
            "33333333333333333333333333333333",
            "b1b1b1b1b1b1b1b1",
        ),
        (
            "co-c",
            1,
            "44444444444444444444444444444444",
            "c1c1c1c1c1c1c1c1",
        ),
    ];
    for (sku, version, trace, span) in traces {
        let e = event(sku, version, 10 * version);
        h.publish_with(
            &e.subject(),
            Some(&e.event_id.to_string()),
            Some(&traceparent(trace, span)),
            e.to_json(),
        )
        .await;
    }
    let writes = eventually(Duration::from_secs(10), "the three writes land", || async {
        let w = h.writes(Sandboxed::Webhook);
        (w.len() >= 3).then_some(w)
    })
    .await;
    running.stop().await;

    let batches = spans.named("project_batch");
    assert_eq!(batches.len(), 1, "one batch: {batches:?}");
    let batch = &batches[0];
    let batch_links: Vec<String> = linked(batch)
        .iter()
        .map(|c| c.trace_id().to_string())
        .collect();
    let all: Vec<&str> = traces.iter().map(|t| t.2).collect();
    assert_eq!(
        batch_links, all,
        "the batch links to every trace it carries"
    );
    assert!(
        !all.contains(&batch.span_context.trace_id().to_string().as_str()),
        "the batch is a trace of its own"
    );

    // One project_sku span per SKU, in the trace of its newest event, linked to the batch.
    let per_sku = spans.named("project_sku");
    assert_eq!(per_sku.len(), 3, "{per_sku:?}");
    let sku_span = |trace: &str, parent: &str| -> SpanData {
        let s = per_sku
            .iter()
            .find(|s| s.span_context.trace_id().to_string() == trace)
            .unwrap_or_else(|| panic!("a project_sku span in trace {trace}: {per_sku:?}"))
            .clone();
        assert_eq!(
            s.parent_span_id,
            span_id(parent),
            "child of the carried span"
        );
        assert_eq!(
            linked(&s),
            vec![batch.span_context.clone()],
            "linked to the batch"
        );
        s
    };
    let a = sku_span(traces[1].2, traces[1].3);
    let b = sku_span(traces[2].2, traces[2].3);
    let c = sku_span(traces[3].2, traces[3].3);

    // One push_batch span per call: co-a's trace (b linked), then co-c's.
    let calls = spans.named("push_batch");
    assert_eq!(calls.len(), 2, "{calls:?}");
    let call_in = |sku: &SpanData| -> SpanData {
        calls
            .iter()
            .find(|s| s.parent_span_id == sku.span_context.span_id())
            .unwrap_or_else(|| panic!("a push_batch child of {sku:?}"))
            .clone()
    };
    let ab = call_in(&a);
    assert_eq!(ab.span_context.trace_id(), a.span_context.trace_id());
    assert_eq!(
        linked(&ab),
        vec![b.span_context.clone()],
        "co-b's trace linked"
    );
    let c_call = call_in(&c);
    assert!(c_call.links.is_empty());

    // What the channel received: each call's own span as its traceparent.
    let received = |sku: &str| -> String {
        writes
            .iter()
            .find(|w| w.sku == sku)
            .and_then(|w| w.traceparent.clone())
            .unwrap_or_else(|| panic!("a traced write of {sku}: {writes:?}"))
    };
    let expected = |call: &SpanData| {
        traceparent(
            &call.span_context.trace_id().to_string(),
            &call.span_context.span_id().to_string(),
        )
    };
    assert_eq!(received("co-a"), expected(&ab));
    assert_eq!(received("co-b"), expected(&ab), "one call, one traceparent");
    assert_eq!(received("co-c"), expected(&c_call));
    drop(provider);
}
