//! The JetStream ingest consumer: WMS/ERP commands published to `ingest.<source>.<command>`.

use std::time::Duration;

use async_nats::HeaderMap;
use futures::StreamExt;
use onhand_testkit::eventually;
use serde_json::json;

use crate::support::{Options, TestLedger};

async fn publish(t: &TestLedger, subject: &str, msg_id: Option<&str>, body: String) {
    let js = t.nats.jetstream().await;
    let mut headers = HeaderMap::new();
    if let Some(id) = msg_id {
        headers.insert("Nats-Msg-Id", id);
    }
    js.publish_with_headers(subject.to_owned(), headers, body.into())
        .await
        .expect("publish")
        .await
        .expect("puback");
}

#[tokio::test]
async fn applies_commands_once_and_dead_letters_bad_ones() {
    let t = TestLedger::spawn_with(Options {
        ingest: true,
        ..Options::default()
    })
    .await;
    let receipt = json!({"sku": "BOOT-42", "warehouse": "ams-1", "qty": 7}).to_string();
    publish(&t, "ingest.wms.receipt", Some("wms-1"), receipt.clone()).await;
    // The same command again under the same id (a WMS retry) changes nothing.
    publish(&t, "ingest.wms.receipt", Some("wms-1"), receipt.clone()).await;
    publish(
        &t,
        "ingest.wms.adjustment",
        Some("wms-2"),
        json!({"sku": "BOOT-42", "warehouse": "ams-1", "delta": -2, "reason": "damage"})
            .to_string(),
    )
    .await;
    // Rejected: bad body, unknown command, no Nats-Msg-Id, unknown warehouse.
    publish(
        &t,
        "ingest.wms.receipt",
        Some("wms-3"),
        "{\"sku\": ".to_owned(),
    )
    .await;
    publish(&t, "ingest.wms.teleport", Some("wms-4"), receipt.clone()).await;
    publish(&t, "ingest.wms.receipt", None, receipt.clone()).await;
    publish(
        &t,
        "ingest.erp.receipt",
        Some("erp-1"),
        json!({"sku": "BOOT-42", "warehouse": "mars-1", "qty": 1}).to_string(),
    )
    .await;

    let js = t.nats.jetstream().await;
    let dlq = js.get_stream("INVENTORY_DLQ").await.expect("dlq stream");
    eventually(Duration::from_secs(20), "four dead letters", || {
        let mut dlq = dlq.clone();
        async move { (dlq.info().await.ok()?.state.messages == 4).then_some(()) }
    })
    .await;
    let stock = t.stock("BOOT-42").await;
    assert_eq!(stock["warehouses"]["ams-1"]["on_hand"], 5, "{stock}");
    assert_eq!(stock["version"], 2, "{stock}");

    let consumer = dlq
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut reasons = Vec::new();
    for _ in 0..4 {
        let m = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await
            .expect("in time")
            .expect("message")
            .expect("ok");
        assert_eq!(m.subject.as_str(), "inventory.dlq.ingest");
        let h = m.headers.clone().expect("headers");
        reasons.push((
            h.get("Onhand-Original-Subject")
                .expect("subject")
                .as_str()
                .to_owned(),
            h.get("Onhand-Dlq-Reason")
                .expect("reason")
                .as_str()
                .to_owned(),
        ));
    }
    reasons.sort();
    assert!(
        reasons[0].0 == "ingest.erp.receipt" && reasons[0].1.contains("unknown_warehouse"),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(s, r)| s == "ingest.wms.receipt" && r.starts_with("malformed_request")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(s, r)| s == "ingest.wms.receipt" && r.contains("Nats-Msg-Id")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(s, r)| s == "ingest.wms.teleport" && r.contains("unknown ingest command")),
        "{reasons:?}"
    );
    // Every message was settled: nothing left pending for redelivery.
    let ingest = js.get_stream("INGEST").await.expect("ingest");
    eventually(Duration::from_secs(10), "ingest work queue empty", || {
        let mut ingest = ingest.clone();
        async move { (ingest.info().await.ok()?.state.messages == 0).then_some(()) }
    })
    .await;
}
