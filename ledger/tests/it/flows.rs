//! A day in the ledger, end to end: every change lands in JetStream as a valid v1 event
//! carrying the SKU's whole state, in per-SKU version order.

use std::collections::BTreeMap;

use onhand_common::EventType;
use serde_json::json;

use crate::support::{SHOP_TOKEN, TestLedger, WMS_TOKEN, stream_events};

#[tokio::test]
async fn a_day_of_stock_reaches_the_stream() {
    let t = TestLedger::spawn().await;
    t.receive("TSHIRT-RED-M", "ams-1", 10).await;
    t.receive("TSHIRT-RED-M", "nyc-1", 4).await;
    // Storefront: cart → checkout → order.
    let (s, r) = t.reserve("TSHIRT-RED-M", 2, "web-1001").await;
    assert_eq!(s, 201, "{r}");
    let rid = r["reservation_id"].as_str().expect("id").to_owned();
    let (s, _) = t
        .post(
            SHOP_TOKEN,
            &format!("/v1/reservations/{rid}/checkout"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, o) = t
        .post(
            SHOP_TOKEN,
            "/v1/orders",
            json!({"order_id": "web-1001", "channel": "storefront",
            "lines": [{"sku": "TSHIRT-RED-M", "qty": 2, "reservation_id": rid}]}),
        )
        .await;
    assert_eq!(s, 201, "{o}");
    assert_eq!(o["oversold"], 0);
    // The reservation is now committed: it cannot be used twice.
    let (s, again) = t
        .post(
            SHOP_TOKEN,
            "/v1/orders",
            json!({"order_id": "web-1002", "channel": "storefront",
            "lines": [{"sku": "TSHIRT-RED-M", "qty": 2, "reservation_id": rid}]}),
        )
        .await;
    assert_eq!(s, 409, "{again}");
    assert_eq!(again["error"]["code"], "reservation_not_active");
    // Marketplace sale without a reservation, more than is available: recorded, not refused.
    let (s, o) = t
        .post(
            SHOP_TOKEN,
            "/v1/orders",
            json!({"order_id": "amz-77", "channel": "amazon",
            "lines": [{"sku": "TSHIRT-RED-M", "qty": 9, "warehouse": "ams-1"}]}),
        )
        .await;
    assert_eq!(s, 201, "{o}");
    assert_eq!(o["oversold"], 1, "{o}");
    let stock = t.stock("TSHIRT-RED-M").await;
    assert_eq!(stock["warehouses"]["ams-1"]["available"], -1, "{stock}");
    // Ship part of the storefront order, cancel the marketplace one.
    let (s, sh) = t
        .post(
            WMS_TOKEN,
            "/v1/shipments",
            json!({"order_id": "web-1001",
            "lines": [{"sku": "TSHIRT-RED-M", "warehouse": "ams-1", "qty": 1}]}),
        )
        .await;
    assert_eq!(s, 200, "{sh}");
    assert_eq!(sh["state"], "open");
    let (s, too_many) = t
        .post(
            WMS_TOKEN,
            "/v1/shipments",
            json!({"order_id": "web-1001",
            "lines": [{"sku": "TSHIRT-RED-M", "warehouse": "ams-1", "qty": 2}]}),
        )
        .await;
    assert_eq!(s, 422, "{too_many}");
    assert_eq!(too_many["error"]["field"], "lines[0].qty");
    let (s, sh) = t
        .post(
            WMS_TOKEN,
            "/v1/shipments",
            json!({"order_id": "web-1001",
            "lines": [{"sku": "TSHIRT-RED-M", "warehouse": "ams-1", "qty": 1}]}),
        )
        .await;
    assert_eq!(s, 200, "{sh}");
    assert_eq!(sh["state"], "shipped");
    let (s, c) = t
        .post(SHOP_TOKEN, "/v1/orders/amz-77/cancel", json!({}))
        .await;
    assert_eq!(s, 200, "{c}");
    let (s, c) = t
        .post(SHOP_TOKEN, "/v1/orders/amz-77/cancel", json!({}))
        .await;
    assert_eq!(s, 409, "{c}");
    assert_eq!(c["error"]["code"], "order_not_open");
    // Cycle count: set on hand.
    let (s, a) = t
        .post(
            WMS_TOKEN,
            "/v1/adjustments",
            json!({"sku": "TSHIRT-RED-M", "warehouse": "nyc-1",
            "on_hand": 3, "reason": "cycle_count"}),
        )
        .await;
    assert_eq!(s, 200, "{a}");

    let stock = t.stock("TSHIRT-RED-M").await;
    assert_eq!(
        stock["warehouses"]["ams-1"],
        json!({"on_hand": 8, "reserved": 0, "pending": 0, "available": 8})
    );
    assert_eq!(
        stock["warehouses"]["nyc-1"],
        json!({"on_hand": 3, "reserved": 0, "pending": 0, "available": 3})
    );

    t.drained().await;
    let events = stream_events(&t.nats).await;
    let types: Vec<EventType> = events.iter().map(|(_, e, _)| e.event_type).collect();
    use EventType::*;
    assert_eq!(
        types,
        vec![
            Received, Received, Reserved, Committed, Committed, Shipped, Shipped, Released,
            Adjusted
        ]
    );
    let versions: Vec<i64> = events.iter().map(|(_, e, _)| e.stock.version).collect();
    assert_eq!(versions, (1..=9).collect::<Vec<_>>());
    for (_, event, headers) in &events {
        assert_eq!(
            headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned()),
            Some(event.event_id.to_string())
        );
        assert_eq!(
            headers
                .get("Onhand-Event-Type")
                .map(|v| v.as_str().to_owned()),
            Some(event.event_type.as_str().to_owned())
        );
    }
    let oversell = &events[4].1;
    assert_eq!(oversell.order_id.as_deref(), Some("amz-77"));
    assert_eq!(oversell.stock.warehouses["ams-1"].available(), -1);
    let cancel = &events[7].1;
    assert_eq!(cancel.reason.as_deref(), Some("order_cancelled"));
    assert_eq!(cancel.qty, 9);
    let adjust = &events[8].1;
    assert_eq!(
        (adjust.qty, adjust.reason.as_deref()),
        (-1, Some("cycle_count"))
    );
    // Each event's state is the ledger's state after it: the last one matches the read.
    let last: BTreeMap<_, _> = events[8]
        .1
        .stock
        .warehouses
        .iter()
        .map(|(w, s)| (w.clone(), s.available()))
        .collect();
    assert_eq!(
        last,
        BTreeMap::from([("ams-1".to_owned(), 8), ("nyc-1".to_owned(), 3)])
    );

    let metrics = t.metrics().await;
    assert!(metrics.contains("onhand_oversold_total 1"), "{metrics}");
    assert!(metrics.contains("onhand_outbox_backlog 0"), "{metrics}");
}

#[tokio::test]
async fn non_token_skus_travel_under_their_encoded_subject() {
    let t = TestLedger::spawn().await;
    let sku = "Café crème/250g.v2";
    t.receive(sku, "ams-1", 3).await;
    let encoded = url_path(sku);
    let stock = t.stock(&encoded).await;
    assert_eq!(stock["sku"], sku);
    t.drained().await;
    let events = stream_events(&t.nats).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1.sku.as_str(), sku);
    let subject: String = sqlx::query_scalar("SELECT subject FROM outbox")
        .fetch_one(t.db.pool())
        .await
        .expect("subject");
    assert_eq!(
        subject,
        onhand_common::Sku::parse(sku).expect("sku").subject()
    );
    assert!(subject.starts_with("inventory.sku.="), "{subject}");
}

fn url_path(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
