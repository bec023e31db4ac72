//! Reservations race for the last units: exactly the available quantity succeeds.

use std::sync::Arc;

use crate::support::TestLedger;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_reservations_for_ten_units() {
    let t = Arc::new(TestLedger::spawn().await);
    t.receive("LAST-TEN", "ams-1", 6).await;
    t.receive("LAST-TEN", "nyc-1", 4).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let t = Arc::clone(&t);
        tasks.push(tokio::spawn(async move {
            t.reserve("LAST-TEN", 1, &format!("web-{i}")).await
        }));
    }
    let (mut created, mut refused) = (0, 0);
    for task in tasks {
        let (status, body) = task.await.expect("task");
        match status {
            201 => created += 1,
            409 => {
                assert_eq!(body["error"]["code"], "insufficient_stock", "{body}");
                refused += 1;
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert_eq!((created, refused), (10, 190));
    let stock = t.stock("LAST-TEN").await;
    assert_eq!(stock["available"], 0, "{stock}");
    for w in ["ams-1", "nyc-1"] {
        let on_hand = stock["warehouses"][w]["on_hand"].as_i64().expect("on_hand");
        assert_eq!(
            stock["warehouses"][w]["reserved"].as_i64(),
            Some(on_hand),
            "{stock}"
        );
    }
    // The books agree with the reservations table: nothing reserved twice, nothing lost.
    let (rows, units): (i64, Option<i64>) = sqlx::query_as(
        "SELECT count(*), sum(qty)::bigint FROM reservations WHERE state = 'active'",
    )
    .fetch_one(t.db.pool())
    .await
    .expect("reservations");
    assert_eq!((rows, units), (10, Some(10)));
    // 2 receipts + 10 reservations: one event each, versions 1..=12 without gaps.
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT (payload->'stock'->>'version')::bigint FROM outbox ORDER BY id")
            .fetch_all(t.db.pool())
            .await
            .expect("versions");
    assert_eq!(versions, (1..=12).collect::<Vec<_>>());
}

/// A reservation waiting on the SKU lock while another transaction adds the SKU's first
/// stock row in a new warehouse sees that row once it gets the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_waiter_sees_a_warehouse_added_meanwhile() {
    use std::time::Duration;

    let t = Arc::new(TestLedger::spawn().await);
    t.receive("NEW-WH", "ams-1", 1).await;
    // Another writer holds the SKU and adds stock in nyc-1, as a first receipt there would.
    let mut other = t.db.pool().begin().await.expect("begin");
    sqlx::query("SELECT version FROM sku_versions WHERE sku = 'NEW-WH' FOR UPDATE")
        .execute(&mut *other)
        .await
        .expect("lock");
    sqlx::query("INSERT INTO stock (sku, warehouse, on_hand) VALUES ('NEW-WH', 'nyc-1', 5)")
        .execute(&mut *other)
        .await
        .expect("insert");
    sqlx::query(
        "UPDATE sku_versions SET version = version + 1, warehouses = 2 WHERE sku = 'NEW-WH'",
    )
    .execute(&mut *other)
    .await
    .expect("update");
    let waiter = {
        let t = Arc::clone(&t);
        tokio::spawn(async move {
            t.post(
                crate::support::SHOP_TOKEN,
                "/v1/reservations",
                serde_json::json!({"sku": "NEW-WH", "qty": 5, "order_id": "o-1", "kind": "cart", "warehouse": "nyc-1"}),
            )
            .await
        })
    };
    let pool = t.db.pool().clone();
    onhand_testkit::eventually(
        Duration::from_secs(10),
        "reservation waiting on the SKU lock",
        || {
            let pool = pool.clone();
            async move {
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .fetch_one(&pool)
                .await
                .ok()?;
                (waiting > 0).then_some(())
            }
        },
    )
    .await;
    other.commit().await.expect("commit");
    let (status, body) = waiter.await.expect("waiter");
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["stock"]["warehouses"]["nyc-1"]["reserved"], 5,
        "{body}"
    );
    assert_eq!(body["stock"]["warehouses"]["ams-1"]["on_hand"], 1, "{body}");
}
