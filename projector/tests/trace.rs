//! Trace context: the `traceparent` an event carries on its JetStream message (from the
//! ledger request that caused it) continues through the projector's span to the channel
//! HTTP call's `traceparent` header.
//!
//! Its own test binary: it installs an OpenTelemetry subscriber, and tracing caches each
//! callsite's interest process-wide.

#[path = "it/support.rs"]
#[allow(dead_code)]
mod support;

use std::time::Duration;

use onhand_sandbox::Channel as Sandboxed;
use onhand_testkit::eventually;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
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
