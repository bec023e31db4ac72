//! Expiry: a reservation past its TTL is released exactly once, even with two sweepers.

use std::time::Duration;

use onhand_ledger::sweeper::sweep_once;
use onhand_testkit::eventually;
use serde_json::json;

use crate::support::{Options, SHOP_TOKEN, TestLedger};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_reservations_are_released_once_with_two_sweepers() {
    let t = TestLedger::spawn_with(Options {
        sweeper: true,
        ..Options::default()
    })
    .await;
    t.receive("SCARF", "ams-1", 50).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let (status, body) = t
            .post(
                SHOP_TOKEN,
                "/v1/reservations",
                json!({"sku": "SCARF", "qty": 2, "order_id": format!("cart-{i}"), "kind": "cart", "ttl_secs": 1}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["reservation_id"].as_str().expect("id").to_owned());
    }
    // A second sweeper races the service's own one.
    let ledger = t.ledger.clone();
    let second = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::time::Instant::now() < deadline {
            sweep_once(&ledger, 7).await.expect("sweep");
            tokio::task::yield_now().await;
            let left: i64 =
                sqlx::query_scalar("SELECT count(*) FROM reservations WHERE state = 'active'")
                    .fetch_one(&ledger.pool)
                    .await
                    .expect("count");
            if left == 0 {
                break;
            }
        }
    });
    let pool = t.db.pool().clone();
    eventually(Duration::from_secs(20), "all reservations expired", || {
        let pool = pool.clone();
        async move {
            let left: i64 =
                sqlx::query_scalar("SELECT count(*) FROM reservations WHERE state = 'active'")
                    .fetch_one(&pool)
                    .await
                    .ok()?;
            (left == 0).then_some(())
        }
    })
    .await;
    second.await.expect("second sweeper");
    let released: Vec<(String, i64)> = sqlx::query_as(
        "SELECT payload->>'reservation_id', count(*) FROM outbox
          WHERE event_type = 'stock.released' AND payload->>'reason' = 'expired'
          GROUP BY 1",
    )
    .fetch_all(t.db.pool())
    .await
    .expect("released events");
    assert_eq!(
        released.len(),
        20,
        "one release event per reservation: {released:?}"
    );
    assert!(released.iter().all(|(_, n)| *n == 1), "{released:?}");
    let stock = t.stock("SCARF").await;
    assert_eq!(stock["warehouses"]["ams-1"]["reserved"], 0, "{stock}");
    assert_eq!(stock["available"], 50, "{stock}");
    // An expired reservation can neither be extended nor released again.
    let (status, body) = t
        .post(
            SHOP_TOKEN,
            &format!("/v1/reservations/{}/checkout", ids[0]),
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reservation_not_active");
    let (status, _) = t
        .delete(SHOP_TOKEN, &format!("/v1/reservations/{}", ids[0]))
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn checkout_extends_and_release_gives_stock_back() {
    let t = TestLedger::spawn().await;
    t.receive("GLOVES", "nyc-1", 5).await;
    let (status, body) = t.reserve("GLOVES", 3, "web-7").await;
    assert_eq!(status, 201, "{body}");
    let id = body["reservation_id"].as_str().expect("id").to_owned();
    let cart_expiry = time::OffsetDateTime::parse(
        body["expires_at"].as_str().expect("expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("rfc3339");
    let (status, body) = t
        .post(
            SHOP_TOKEN,
            &format!("/v1/reservations/{id}/checkout"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let checkout_expiry = time::OffsetDateTime::parse(
        body["expires_at"].as_str().expect("expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("rfc3339");
    // cart 5 min → checkout 30 min
    let extended = (checkout_expiry - cart_expiry).whole_seconds();
    assert!((1490..=1510).contains(&extended), "extended by {extended}s");
    assert_eq!(t.stock("GLOVES").await["available"], 2);
    let (status, body) = t
        .delete(SHOP_TOKEN, &format!("/v1/reservations/{id}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stock"]["warehouses"]["nyc-1"]["reserved"], 0);
    assert_eq!(t.stock("GLOVES").await["available"], 5);
    let reason: String = sqlx::query_scalar(
        "SELECT payload->>'reason' FROM outbox WHERE event_type = 'stock.released'",
    )
    .fetch_one(t.db.pool())
    .await
    .expect("release event");
    assert_eq!(reason, "cancelled");
}
