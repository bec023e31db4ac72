//! Bad input: every malformed or out-of-range request gets a 4xx JSON error naming the
//! problem, and the database is left exactly as it was.

use serde_json::{Value, json};

use crate::support::{READER_TOKEN, SHOP_TOKEN, TestLedger, WMS_TOKEN};

fn assert_error(
    status: u16,
    body: &Value,
    want_status: u16,
    want_code: &str,
    want_field: Option<&str>,
) {
    assert_eq!(status, want_status, "status for {body}");
    assert_eq!(body["error"]["code"], want_code, "code in {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "message in {body}"
    );
    if let Some(field) = want_field {
        assert_eq!(body["error"]["field"], field, "field in {body}");
    }
}

#[tokio::test]
async fn rejects_bad_bodies_without_changing_anything() {
    let t = TestLedger::spawn().await;
    t.receive("TSHIRT-RED-M", "ams-1", 10).await;
    let before = t.fingerprint().await;
    let long_sku = "x".repeat(256);
    // (token, path, body, status, code, field)
    type Case<'a> = (&'a str, &'a str, String, u16, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (WMS_TOKEN, "/v1/receipts", "{\"sku\": \"A\", ".into(), 400, "malformed_request", None),
        (WMS_TOKEN, "/v1/receipts", "[1,2]".into(), 400, "malformed_request", None),
        (WMS_TOKEN, "/v1/receipts", json!({"sku":"A","warehouse":"ams-1","qty":1,"colour":"red"}).to_string(), 400, "malformed_request", Some("colour")),
        (WMS_TOKEN, "/v1/receipts", json!({"sku":"A","warehouse":"ams-1"}).to_string(), 400, "malformed_request", Some("qty")),
        (WMS_TOKEN, "/v1/receipts", json!({"sku":"A","warehouse":"ams-1","qty":"5"}).to_string(), 400, "malformed_request", Some("qty")),
        (WMS_TOKEN, "/v1/receipts", json!({"sku":"A","warehouse":"ams-1","qty":0}).to_string(), 422, "invalid_field", Some("qty")),
        (WMS_TOKEN, "/v1/receipts", json!({"sku":"A","warehouse":"ams-1","qty":-4}).to_string(), 422, "invalid_field", Some("qty")),
        (WMS_TOKEN, "/v1/receipts", json!({"sku":"A","warehouse":"ams-1","qty":1_000_000_001i64}).to_string(), 422, "invalid_field", Some("qty")),
        (WMS_TOKEN, "/v1/receipts", json!({"sku":"","warehouse":"ams-1","qty":1}).to_string(), 422, "invalid_field", Some("sku")),
        (WMS_TOKEN, "/v1/receipts", json!({"sku":long_sku,"warehouse":"ams-1","qty":1}).to_string(), 422, "invalid_field", Some("sku")),
        (WMS_TOKEN, "/v1/receipts", json!({"sku":"bad\u{0007}sku","warehouse":"ams-1","qty":1}).to_string(), 422, "invalid_field", Some("sku")),
        (WMS_TOKEN, "/v1/receipts", json!({"sku":"A","warehouse":"lon-9","qty":1}).to_string(), 404, "unknown_warehouse", Some("warehouse")),
        (WMS_TOKEN, "/v1/adjustments", json!({"sku":"A","warehouse":"ams-1","delta":2,"on_hand":3,"reason":"cycle_count"}).to_string(), 422, "invalid_field", Some("delta")),
        (WMS_TOKEN, "/v1/adjustments", json!({"sku":"TSHIRT-RED-M","warehouse":"ams-1","delta":-11,"reason":"damage"}).to_string(), 422, "invalid_field", Some("delta")),
        (SHOP_TOKEN, "/v1/reservations", json!({"sku":"TSHIRT-RED-M","qty":1,"order_id":"o1","kind":"wishlist"}).to_string(), 400, "malformed_request", Some("kind")),
        (SHOP_TOKEN, "/v1/reservations", json!({"sku":"NOPE","qty":1,"order_id":"o1","kind":"cart"}).to_string(), 404, "unknown_sku", Some("sku")),
        (SHOP_TOKEN, "/v1/reservations", json!({"sku":"TSHIRT-RED-M","qty":1,"order_id":"o1","kind":"cart","ttl_secs":0}).to_string(), 422, "invalid_field", Some("ttl_secs")),
        (SHOP_TOKEN, "/v1/reservations", json!({"sku":"TSHIRT-RED-M","qty":11,"order_id":"o1","kind":"cart"}).to_string(), 409, "insufficient_stock", Some("qty")),
        (SHOP_TOKEN, "/v1/reservations/0193a1b2-0000-7000-8000-000000000000/checkout", "{}".into(), 404, "unknown_reservation", Some("reservation_id")),
        (SHOP_TOKEN, "/v1/reservations/not-a-uuid/checkout", "{}".into(), 404, "unknown_reservation", Some("reservation_id")),
        (SHOP_TOKEN, "/v1/orders", json!({"order_id":"o1","channel":"shopify","lines":[]}).to_string(), 422, "invalid_field", Some("lines")),
        (SHOP_TOKEN, "/v1/orders", json!({"order_id":"o1","channel":"shopify","lines":[{"sku":"TSHIRT-RED-M","qty":1},{"sku":"TSHIRT-RED-M","qty":0}]}).to_string(), 422, "invalid_field", Some("lines[1].qty")),
        (SHOP_TOKEN, "/v1/orders", json!({"order_id":"o1","channel":"shopify","lines":[{"sku":"TSHIRT-RED-M","qty":1,"reservation_id":"0193a1b2-0000-7000-8000-000000000000"}]}).to_string(), 404, "unknown_reservation", Some("lines[0].reservation_id")),
        (SHOP_TOKEN, "/v1/orders/none/cancel", "{}".into(), 404, "unknown_order", Some("order_id")),
        (WMS_TOKEN, "/v1/shipments", json!({"order_id":"none","lines":[{"sku":"TSHIRT-RED-M","warehouse":"ams-1","qty":1}]}).to_string(), 404, "unknown_order", Some("order_id")),
        // Wrong scope: the storefront may not receive stock, the WMS may not reserve.
        (SHOP_TOKEN, "/v1/receipts", json!({"sku":"A","warehouse":"ams-1","qty":1}).to_string(), 403, "forbidden", Some("Authorization")),
        (WMS_TOKEN, "/v1/reservations", json!({"sku":"TSHIRT-RED-M","qty":1,"order_id":"o1","kind":"cart"}).to_string(), 403, "forbidden", Some("Authorization")),
        (READER_TOKEN, "/v1/orders", json!({"order_id":"o1","channel":"shopify","lines":[{"sku":"TSHIRT-RED-M","qty":1}]}).to_string(), 403, "forbidden", Some("Authorization")),
        ("not-a-known-token-at-all", "/v1/receipts", json!({"sku":"A","warehouse":"ams-1","qty":1}).to_string(), 401, "unauthenticated", Some("Authorization")),
    ];
    for (i, (token, path, body, status, code, field)) in cases.into_iter().enumerate() {
        let (got_status, got) = t
            .post_raw(token, path, &format!("bad-{i}"), body.clone())
            .await;
        assert_error(got_status, &got, status, code, field);
        assert_eq!(
            t.fingerprint().await,
            before,
            "case {i} ({path} {body}) changed the database"
        );
    }
}

#[tokio::test]
async fn rejects_missing_auth_keys_and_oversized_bodies() {
    let t = TestLedger::spawn().await;
    let before = t.fingerprint().await;
    let url = format!("{}/v1/receipts", t.base);
    let body = json!({"sku":"A","warehouse":"ams-1","qty":1}).to_string();

    let r = t
        .http
        .post(&url)
        .header("Idempotency-Key", "k")
        .body(body.clone())
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");

    let r = t
        .http
        .post(&url)
        .bearer_auth(WMS_TOKEN)
        .body(body.clone())
        .send()
        .await
        .expect("sent");
    let status = r.status().as_u16();
    let got: Value = r.json().await.expect("json");
    assert_error(
        status,
        &got,
        400,
        "missing_idempotency_key",
        Some("Idempotency-Key"),
    );

    let huge = format!(
        "{{\"sku\":\"A\",\"warehouse\":\"ams-1\",\"qty\":1,\"reference\":\"{}\"}}",
        "x".repeat(70_000)
    );
    let (status, got) = t.post_raw(WMS_TOKEN, "/v1/receipts", "big", huge).await;
    assert_error(status, &got, 413, "payload_too_large", None);

    let (status, got) = t.get(READER_TOKEN, "/v1/stock/UNKNOWN").await;
    assert_error(status, &got, 404, "unknown_sku", Some("sku"));
    let (status, got) = t.get(READER_TOKEN, "/v2/nothing").await;
    assert_error(status, &got, 404, "no_route", None);
    assert_eq!(t.fingerprint().await, before);
}

#[tokio::test]
async fn idempotency_key_replays_the_first_response_and_refuses_a_different_body() {
    let t = TestLedger::spawn().await;
    t.receive("MUG", "ams-1", 1).await;
    let body = json!({"sku":"MUG","qty":1,"order_id":"web-1","kind":"cart"}).to_string();
    let (s1, first) = t
        .post_raw(SHOP_TOKEN, "/v1/reservations", "retry-me", body.clone())
        .await;
    assert_eq!(s1, 201, "{first}");
    // The retry returns the same reservation even though no stock is left for a new one.
    let (s2, second) = t
        .post_raw(SHOP_TOKEN, "/v1/reservations", "retry-me", body.clone())
        .await;
    assert_eq!((s2, &second), (201, &first));
    let before = t.fingerprint().await;
    let other = json!({"sku":"MUG","qty":1,"order_id":"web-2","kind":"cart"}).to_string();
    let (s3, third) = t
        .post_raw(SHOP_TOKEN, "/v1/reservations", "retry-me", other)
        .await;
    assert_error(
        s3,
        &third,
        409,
        "idempotency_key_reused",
        Some("Idempotency-Key"),
    );
    assert_eq!(t.fingerprint().await, before);
    let reservations: i64 = sqlx::query_scalar("SELECT count(*) FROM reservations")
        .fetch_one(t.db.pool())
        .await
        .expect("count");
    assert_eq!(reservations, 1);
}

#[tokio::test]
async fn stock_explain_health_and_metrics() {
    let t = TestLedger::spawn().await;
    t.receive("CAP", "ams-1", 9).await;
    t.receive("CAP", "nyc-1", 3).await;
    let (status, _) = t.reserve("CAP", 2, "web-9").await;
    assert_eq!(status, 201);
    let stock = t.stock("CAP").await;
    assert_eq!(stock["available"], 10);
    assert_eq!(stock["version"], 3);
    assert_eq!(
        stock["warehouses"]["ams-1"]["reserved"], 2,
        "most available warehouse picked: {stock}"
    );
    assert_eq!(stock["warehouses"]["ams-1"]["available"], 7);

    let (status, explain) = t
        .get(READER_TOKEN, "/v1/stock/CAP/explain?channel=shopify")
        .await;
    assert_eq!(status, 200, "{explain}");
    // floor(10 × 50%) − 1 = 4
    assert_eq!(explain["quantity"], 4, "{explain}");
    assert_eq!(explain["steps"]["raw"], 10, "{explain}");
    let (status, body) = t
        .get(READER_TOKEN, "/v1/stock/CAP/explain?channel=ebay")
        .await;
    assert_error(status, &body, 404, "unknown_channel", Some("channel"));

    let ready = t
        .http
        .get(format!("{}/readyz", t.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status().as_u16(), 200);
    let metrics = t.metrics().await;
    assert!(metrics.contains("onhand_outbox_backlog "), "{metrics}");
    assert!(metrics.contains("onhand_oversold_total 0"), "{metrics}");
    // 2 reserved of 12 on hand.
    let pressure = metrics
        .lines()
        .find_map(|l| l.strip_prefix("onhand_reservation_pressure "))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("pressure gauge");
    assert!((pressure - 2.0 / 12.0).abs() < 1e-9, "{pressure}");
}
