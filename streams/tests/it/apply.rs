//! Applying the embedded definitions to fresh and already-configured servers.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use futures::TryStreamExt;
use onhand_streams::{ApplyOptions, Definitions, Object, Outcome, apply, ensure};
use onhand_testkit::NatsServer;

use crate::support::stream_names;

fn all_objects() -> [Object; 6] {
    [
        Object::stream("INVENTORY"),
        Object::stream("INVENTORY_DLQ"),
        Object::stream("INGEST"),
        Object::key_value("onhand_watermarks"),
        Object::key_value("onhand_availability"),
        Object::consumer("INGEST", "ledger-ingest"),
    ]
}

#[tokio::test]
async fn a_fresh_server_gets_every_object_created() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;

    let report = ensure(&js, &Definitions::embedded()).await.expect("apply");

    assert_eq!(report.entries.len(), 6, "{report}");
    for object in all_objects() {
        assert_eq!(report.outcome(&object), Some(&Outcome::Created), "{object}");
    }
    let mut names = stream_names(&js).await;
    names.sort();
    assert_eq!(
        names,
        [
            "INGEST",
            "INVENTORY",
            "INVENTORY_DLQ",
            "KV_onhand_availability",
            "KV_onhand_watermarks"
        ]
    );

    let consumer: jetstream::consumer::PullConsumer = js
        .get_consumer_from_stream("ledger-ingest", "INGEST")
        .await
        .expect("ledger-ingest exists");
    let config = &consumer.cached_info().config;
    assert_eq!(config.ack_wait, Duration::from_secs(30));
    assert_eq!(config.max_deliver, 10);
    assert_eq!(config.max_ack_pending, 1000);
}

#[tokio::test]
async fn the_watermarks_bucket_works_as_a_key_value_store_with_history_one() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    ensure(&js, &Definitions::embedded()).await.expect("apply");

    let kv = js
        .get_key_value("onhand_watermarks")
        .await
        .expect("bucket opens");
    kv.put("shopify.TSHIRT-RED-M", r#"{"version":1}"#.into())
        .await
        .expect("put");
    kv.put("shopify.TSHIRT-RED-M", r#"{"version":2}"#.into())
        .await
        .expect("put again");

    let value = kv.get("shopify.TSHIRT-RED-M").await.expect("get");
    assert_eq!(value.as_deref(), Some(&br#"{"version":2}"#[..]));
    let history: Vec<_> = kv
        .history("shopify.TSHIRT-RED-M")
        .await
        .expect("history")
        .try_collect()
        .await
        .expect("history entries");
    assert_eq!(history.len(), 1, "history 1 keeps only the latest value");
    let status = kv.status().await.expect("status");
    assert_eq!(status.history(), 1);
}

#[tokio::test]
async fn a_message_published_twice_with_one_msg_id_is_stored_once() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    ensure(&js, &Definitions::embedded()).await.expect("apply");

    let publish = || {
        PublishMessage::build()
            .message_id("0193a1b2-0000-7000-8000-000000000001")
            .payload(r#"{"schema":1}"#.into())
    };
    let first = js
        .send_publish("inventory.sku.TSHIRT-RED-M", publish())
        .await
        .expect("publish")
        .await
        .expect("first ack");
    let second = js
        .send_publish("inventory.sku.TSHIRT-RED-M", publish())
        .await
        .expect("publish again")
        .await
        .expect("second ack");

    assert!(!first.duplicate);
    assert!(second.duplicate, "the retry is recognised as a duplicate");
    assert_eq!(second.sequence, first.sequence);
    let mut stream = js.get_stream("INVENTORY").await.expect("stream");
    assert_eq!(stream.info().await.expect("info").state.messages, 1);
}

#[tokio::test]
async fn a_second_apply_changes_nothing() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    let defs = Definitions::embedded();
    ensure(&js, &defs).await.expect("first apply");

    let report = ensure(&js, &defs).await.expect("second apply");

    for object in all_objects() {
        assert_eq!(
            report.outcome(&object),
            Some(&Outcome::Unchanged),
            "{report}"
        );
    }
    assert!(!report.has_changes());
    assert!(
        report.to_string().contains("stream INVENTORY: unchanged\n"),
        "{report}"
    );
}

#[tokio::test]
async fn a_dry_run_on_a_fresh_server_reports_and_creates_nothing() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;

    let report = apply(
        &js,
        &Definitions::embedded(),
        ApplyOptions { dry_run: true },
    )
    .await
    .expect("dry run");

    for object in all_objects() {
        assert_eq!(
            report.outcome(&object),
            Some(&Outcome::WouldCreate),
            "{object}"
        );
    }
    assert!(
        stream_names(&js).await.is_empty(),
        "dry run created streams"
    );
}
