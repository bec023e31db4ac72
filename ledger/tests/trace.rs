//! Trace context: a caller's `traceparent` continues through the ledger request, is stored
//! on the outbox row, and travels on the JetStream message (as the relay's publish span, a
//! child of the stored one).
//!
//! Its own test binary: it installs an OpenTelemetry subscriber, and tracing caches each
//! callsite's interest process-wide, so tests without a subscriber running alongside
//! would switch its spans off.

#[path = "it/support.rs"]
#[allow(dead_code)]
mod support;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;

use support::{TestLedger, WMS_TOKEN, stream_events};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

// current_thread: the OpenTelemetry subscriber set below is the default on this one
// thread, where the ledger's server and relay tasks also run.
#[tokio::test(flavor = "current_thread")]
async fn callers_traceparent_reaches_the_outbox_and_the_stream() {
    let provider = SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let t = TestLedger::spawn().await;
    let response = t
        .http
        .post(format!("{}/v1/receipts", t.base))
        .bearer_auth(WMS_TOKEN)
        .header("Idempotency-Key", "traced-1")
        .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
        .json(&json!({"sku": "TRACED", "warehouse": "ams-1", "qty": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 200);
    let stored: Option<String> = sqlx::query_scalar("SELECT traceparent FROM outbox")
        .fetch_one(t.db.pool())
        .await
        .expect("row");
    let stored = stored.expect("traceparent stored on the outbox row");
    assert!(stored.starts_with(&format!("00-{TRACE_ID}-")), "{stored}");
    assert!(
        !stored.contains("00f067aa0ba902b7"),
        "a child span of the caller's: {stored}"
    );
    t.drained().await;
    let events = stream_events(&t.nats).await;
    let header = events[0]
        .2
        .get("traceparent")
        .map(|v| v.as_str().to_owned());
    let header = header.expect("the message carries a traceparent");
    // The relay's publish span: a child of the request's, in the same trace.
    assert!(header.starts_with(&format!("00-{TRACE_ID}-")), "{header}");
    assert_ne!(header, stored, "the relay's own span, not the request's");
}
