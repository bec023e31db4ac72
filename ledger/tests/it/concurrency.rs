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
