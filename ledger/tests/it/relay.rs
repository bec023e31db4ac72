//! The outbox relay under faults: NATS stopped and restarted mid-run, the relay killed at
//! arbitrary points (including between publish and mark). Every outbox row reaches the
//! stream exactly once as seen by a consumer deduping by event_id, in per-SKU version order.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use onhand_ledger::relay::{self, RelayConfig};
use onhand_testkit::eventually;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{Options, SHOP_TOKEN, TestLedger, WMS_TOKEN, stream_events};

const SKUS: [&str; 4] = ["HAT-A", "HAT-B", "Hat C/ü", "HAT-D"];

/// A client writing a steady mix of receipts and reservations, independent of `TestLedger`
/// borrows so the test can stop and start NATS meanwhile.
async fn write_load(http: reqwest::Client, base: String, rounds: usize) {
    for i in 0..rounds {
        let sku = SKUS[i % SKUS.len()];
        let (path, token, body) = if i % 3 == 0 {
            (
                "/v1/reservations",
                SHOP_TOKEN,
                json!({"sku": sku, "qty": 1, "order_id": format!("o-{i}"), "kind": "cart"}),
            )
        } else {
            (
                "/v1/receipts",
                WMS_TOKEN,
                json!({"sku": sku, "warehouse": if i % 2 == 0 { "ams-1" } else { "nyc-1" }, "qty": 2}),
            )
        };
        let response = http
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .header("Idempotency-Key", format!("load-{i}"))
            .json(&body)
            .send()
            .await
            .expect("sent");
        let status = response.status().as_u16();
        assert!(
            status == 200 || status == 201,
            "write {i} failed with {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
}

/// Exactly once per outbox row after dedupe by event_id, and per-SKU versions 1, 2, 3, …
/// in stream order.
async fn assert_stream_matches_outbox(t: &TestLedger) -> usize {
    let outbox: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT event_id FROM outbox ORDER BY id")
        .fetch_all(t.db.pool())
        .await
        .expect("outbox");
    let events = stream_events(&t.nats).await;
    let mut seen = HashSet::new();
    let mut versions: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut duplicates = 0;
    for (_, event, _) in &events {
        if !seen.insert(event.event_id) {
            duplicates += 1;
            continue;
        }
        versions
            .entry(event.sku.to_string())
            .or_default()
            .push(event.stock.version);
    }
    assert_eq!(
        seen.len(),
        outbox.len(),
        "every outbox row reached the stream"
    );
    assert_eq!(seen, outbox.iter().copied().collect::<HashSet<_>>());
    for (sku, v) in &versions {
        assert_eq!(
            v,
            &(1..=v.len() as i64).collect::<Vec<_>>(),
            "per-SKU version order for {sku}"
        );
    }
    duplicates
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_stopped_and_restarted_mid_run_loses_nothing() {
    let mut t = TestLedger::spawn().await;
    for sku in SKUS {
        t.receive(sku, "ams-1", 100).await;
    }
    let writer = tokio::spawn(write_load(t.http.clone(), t.base.clone(), 300));
    let pool = t.db.pool().clone();
    // Let some events through, then take NATS away.
    eventually(Duration::from_secs(20), "some events published", || {
        let pool = pool.clone();
        async move {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
                    .fetch_one(&pool)
                    .await
                    .ok()?;
            (n >= 30).then_some(())
        }
    })
    .await;
    t.nats.stop();
    // Writes go on; the backlog grows in Postgres.
    eventually(
        Duration::from_secs(20),
        "backlog grows while NATS is down",
        || {
            let pool = pool.clone();
            async move {
                let n: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                        .fetch_one(&pool)
                        .await
                        .ok()?;
                (n >= 40).then_some(())
            }
        },
    )
    .await;
    let metrics = t.metrics().await;
    let backlog: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("onhand_outbox_backlog "))
        .and_then(|v| v.parse().ok())
        .expect("backlog gauge");
    assert!(backlog >= 40, "backlog gauge {backlog}");
    let oldest: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("onhand_outbox_oldest_age_seconds "))
        .and_then(|v| v.parse().ok())
        .expect("oldest age gauge");
    assert!(
        oldest > 0.0,
        "the oldest unpublished row has an age: {oldest}"
    );
    t.nats.start_again().await;
    writer.await.expect("writer");
    t.drained().await;
    assert_stream_matches_outbox(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_killed_at_any_point_publishes_every_row_once() {
    let t = TestLedger::spawn_with(Options {
        relay: false,
        ..Options::default()
    })
    .await;
    for sku in SKUS {
        t.receive(sku, "ams-1", 100).await;
    }
    let writer = tokio::spawn(write_load(t.http.clone(), t.base.clone(), 240));
    let js = t.nats.jetstream().await;
    let config = RelayConfig {
        batch: 16,
        poll_interval: Duration::from_millis(20),
        standby_interval: Duration::from_millis(20),
        ..RelayConfig::default()
    };
    // Start and abort the relay again and again: an abort lands on any await point,
    // between a PubAck and the mark among them.
    let mut kills = 0;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    while !writer.is_finished() || kills < 10 {
        let task = tokio::spawn(relay::run(
            t.ledger.pool.clone(),
            js.clone(),
            config.clone(),
            CancellationToken::new(),
        ));
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let run_for = Duration::from_millis(5 + seed % 60);
        tokio::time::timeout(run_for, std::future::pending::<()>())
            .await
            .ok();
        task.abort();
        task.await.ok();
        kills += 1;
    }
    writer.await.expect("writer");
    // A crashed relay that published rows but never marked them: publish the next rows by
    // hand, exactly as the relay would, and leave them unmarked.
    let pending: Vec<(uuid::Uuid, String, String, String)> = sqlx::query_as(
        "SELECT event_id, subject, event_type, payload::text FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 5",
    )
    .fetch_all(t.db.pool())
    .await
    .expect("pending rows");
    for (id, subject, event_type, payload) in &pending {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.to_string().as_str());
        headers.insert("Onhand-Event-Type", event_type.as_str());
        js.publish_with_headers(subject.clone(), headers, payload.clone().into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    let shutdown = CancellationToken::new();
    let last = tokio::spawn(relay::run(
        t.ledger.pool.clone(),
        js.clone(),
        config.clone(),
        shutdown.clone(),
    ));
    t.drained().await;
    shutdown.cancel();
    last.await.expect("relay stopped");
    assert!(kills >= 10);
    let duplicates = assert_stream_matches_outbox(&t).await;
    // The stream's duplicate window dropped every republished copy.
    assert_eq!(duplicates, 0);
    // The relay counted those copies: the rows published by hand, and any a killed relay
    // had published without marking.
    let metrics = t.metrics().await;
    let counted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("onhand_outbox_duplicates_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a duplicates counter in {metrics}"));
    assert!(
        counted >= pending.len() as u64,
        "{counted} duplicates counted, {} republished by hand",
        pending.len()
    );
}

#[tokio::test]
async fn only_one_relay_leads() {
    let mut t = TestLedger::spawn().await;
    let js = t.nats.jetstream().await;
    // A second relay in the same deployment stays on standby while the first holds the lock.
    let shutdown = CancellationToken::new();
    let standby = tokio::spawn(relay::run(
        t.ledger.pool.clone(),
        js,
        RelayConfig {
            standby_interval: Duration::from_millis(20),
            ..RelayConfig::default()
        },
        shutdown.clone(),
    ));
    for i in 0..30 {
        t.receive(SKUS[i % 4], "nyc-1", 1).await;
    }
    t.drained().await;
    let holders: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND ((classid::bigint << 32) | objid::bigint) = $1",
    )
    .bind(relay::RELAY_LOCK_KEY)
    .fetch_one(t.db.pool())
    .await
    .expect("locks");
    assert_eq!(holders, 1);
    shutdown.cancel();
    standby.await.expect("standby stopped");
    assert_eq!(assert_stream_matches_outbox(&t).await, 0);
    // Graceful shutdown: the service stops serving and its loops end.
    t.stop().await;
    assert!(
        t.http
            .get(format!("{}/healthz", t.base))
            .send()
            .await
            .is_err()
    );
}
