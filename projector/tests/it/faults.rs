//! Poison messages, refusals and transient faults: dead letters where they belong, none
//! where they do not, and the consumer keeps going.

use std::time::Duration;

use onhand_common::Sku;
use onhand_projector::dlq;
use onhand_sandbox::Channel as Sandboxed;
use onhand_sandbox::state::{Faults, Knobs};
use onhand_testkit::eventually;

use crate::support::{Harness, event, fast_config, skus};

#[tokio::test]
async fn poison_messages_are_dead_lettered_and_the_consumer_keeps_going() {
    let h = Harness::start_with_nats_config("max_payload: 4MB\n").await;
    h.seed(Sandboxed::Webhook, &[("good-1".to_owned(), 0)])
        .await;
    let running = h
        .projector(&h.settings(Sandboxed::Webhook, &[]), fast_config())
        .await;
    let subject = Sku::parse("good-1").expect("sku").subject();
    let valid = event("good-1", 1, 7);
    let mut unknown_type = serde_json::to_value(&valid).expect("json");
    unknown_type["type"] = "stock.teleported".into();
    let mut schema_2 = serde_json::to_value(&valid).expect("json");
    schema_2["schema"] = 2.into();
    let mut no_stock = serde_json::to_value(&valid).expect("json");
    no_stock.as_object_mut().expect("object").remove("stock");
    let other_subject = Sku::parse("someone-else").expect("sku").subject();
    let poison: Vec<(&str, String, Vec<u8>)> = vec![
        ("not json", subject.clone(), b"{not json".to_vec()),
        (
            "unknown type",
            subject.clone(),
            unknown_type.to_string().into_bytes(),
        ),
        (
            "schema 2",
            subject.clone(),
            schema_2.to_string().into_bytes(),
        ),
        ("2 MB", subject.clone(), vec![b' '; 2 * 1024 * 1024]),
        (
            "missing stock",
            subject.clone(),
            no_stock.to_string().into_bytes(),
        ),
        ("wrong subject", other_subject, valid.to_json()),
    ];
    for (i, (_, subject, payload)) in poison.iter().enumerate() {
        h.publish_raw(subject, Some(&format!("poison-{i}")), payload.clone())
            .await;
    }
    h.publish(&valid).await;
    eventually(
        Duration::from_secs(15),
        "the good event after the poison is applied",
        || async { (h.latest(Sandboxed::Webhook, "good-1") == Some(7)).then_some(()) },
    )
    .await;
    let records = eventually(Duration::from_secs(10), "six dead letters", || async {
        dlq::list(&h.js, "webhook")
            .await
            .ok()
            .filter(|r| r.len() == poison.len())
    })
    .await;
    running.stop().await;
    let reasons: Vec<&str> = records.iter().map(|r| r.reason.as_str()).collect();
    let expect = [
        "not a valid v1 event",
        "unknown variant `stock.teleported`",
        "schema 2 is not supported",
        "larger than an event may be",
        "missing field `stock`",
        "arrived on subject",
    ];
    for ((name, _, _), (reason, wanted)) in poison.iter().zip(reasons.iter().zip(expect)) {
        assert!(
            reason.contains(wanted),
            "{name}: reason {reason:?} should say {wanted:?}"
        );
    }
    let big = &records[3];
    assert_eq!(
        big.truncated_from,
        Some(2 * 1024 * 1024),
        "the 2 MB payload is kept cut"
    );
    assert!(big.payload.len() <= onhand_common::event::DLQ_MAX_PAYLOAD);
    // Termed, not redelivered: nothing pending on the consumer.
    let (pending, lag) = onhand_projector::consumer::sample(&h.js, "webhook")
        .await
        .expect("sample");
    assert_eq!((pending, lag), (0, 0.0));
    // The depth the projector reports: this channel's six, not another channel's.
    assert_eq!(
        onhand_projector::consumer::dlq_depth(&h.js, "webhook")
            .await
            .expect("depth"),
        poison.len() as u64
    );
    assert_eq!(
        onhand_projector::consumer::dlq_depth(&h.js, "shopify")
            .await
            .expect("depth"),
        0
    );
}

#[tokio::test]
async fn a_refused_sku_is_dead_lettered_while_the_rest_go_through_then_replayed() {
    let h = Harness::start().await;
    let items = skus("refuse", 10);
    // The last SKU is not on the channel.
    let listed: Vec<(String, i64)> = items[..9].iter().map(|s| (s.clone(), 0)).collect();
    h.seed(Sandboxed::Shopify, &listed).await;
    let settings = h.settings(Sandboxed::Shopify, &[]);
    let running = h.projector(&settings, fast_config()).await;
    for (i, sku) in items.iter().enumerate() {
        h.publish(&event(sku, 1, 100 + i as i64)).await;
    }
    eventually(
        Duration::from_secs(15),
        "the nine listed skus are applied",
        || async {
            items[..9]
                .iter()
                .enumerate()
                .all(|(i, s)| h.latest(Sandboxed::Shopify, s) == Some(100 + i as i64))
                .then_some(())
        },
    )
    .await;
    let records = eventually(Duration::from_secs(10), "one dead letter", || async {
        dlq::list(&h.js, "shopify")
            .await
            .ok()
            .filter(|r| r.len() == 1)
    })
    .await;
    running.stop().await;
    assert_eq!(
        records[0].code.as_deref(),
        Some("unknown_sku"),
        "{:?}",
        records[0]
    );
    assert_eq!(
        records[0].original_subject.as_deref(),
        Some(Sku::parse(&items[9]).expect("sku").subject().as_str())
    );

    // The fix: the item is created on the channel. Replay re-drives and clears it.
    h.seed(Sandboxed::Shopify, &[(items[9].clone(), 0)]).await;
    let report = onhand_projector::ops::replay_dlq(&h.js, &settings)
        .await
        .expect("replay");
    assert_eq!((report.records, report.resolved), (1, 1), "{report:?}");
    assert_eq!(h.latest(Sandboxed::Shopify, &items[9]), Some(109));
    assert!(dlq::list(&h.js, "shopify").await.expect("list").is_empty());
}

#[tokio::test]
async fn transient_faults_converge_exactly_without_dead_letters() {
    let h = Harness::start().await;
    let items = skus("flaky", 200);
    h.seed(
        Sandboxed::Shopify,
        &items.iter().map(|s| (s.clone(), 0)).collect::<Vec<_>>(),
    )
    .await;
    h.sandbox.channel(Sandboxed::Shopify).set_knobs(Knobs {
        faults: Faults {
            http_5xx: 0.2,
            http_429: 0.2,
            ..Faults::default()
        },
        ..Knobs::default()
    });
    let mut config = fast_config();
    config.max_batch = 50;
    let running = h
        .projector(&h.settings(Sandboxed::Shopify, &[]), config)
        .await;
    for version in 1..=5 {
        for (i, sku) in items.iter().enumerate() {
            h.publish(&event(sku, version, version * 1000 + i as i64))
                .await;
        }
    }
    eventually(
        Duration::from_secs(60),
        "every sku converges to version 5",
        || async {
            items
                .iter()
                .enumerate()
                .all(|(i, s)| h.latest(Sandboxed::Shopify, s) == Some(5000 + i as i64))
                .then_some(())
        },
    )
    .await;
    running.stop().await;
    assert_no_regression(&h.writes(Sandboxed::Shopify));
    let throttled = h.sandbox.channel(Sandboxed::Shopify).throttled;
    assert!(throttled > 0, "the fault injection did throttle");
    assert!(
        dlq::list(&h.js, "shopify").await.expect("list").is_empty(),
        "transient faults are never dead-lettered"
    );
}

#[tokio::test]
async fn nats_down_for_ten_seconds_with_a_flaky_channel_converges_exactly() {
    let mut h = Harness::start().await;
    let items = skus("outage", 300);
    h.seed(
        Sandboxed::Bigcommerce,
        &items.iter().map(|s| (s.clone(), 0)).collect::<Vec<_>>(),
    )
    .await;
    h.sandbox.channel(Sandboxed::Bigcommerce).set_knobs(Knobs {
        faults: Faults {
            http_5xx: 0.2,
            http_429: 0.2,
            ..Faults::default()
        },
        ..Knobs::default()
    });
    let mut config = fast_config();
    config.max_batch = 40;
    let running = h
        .projector(&h.settings(Sandboxed::Bigcommerce, &[]), config)
        .await;
    for version in 1..=3 {
        for (i, sku) in items.iter().enumerate() {
            h.publish(&event(sku, version, version * 1000 + i as i64))
                .await;
        }
    }
    // Mid-run: the server goes away for ten seconds (its store survives).
    h.nats.stop();
    let down = std::time::Instant::now();
    while down.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    h.nats.start_again().await;
    let js = h.nats.jetstream().await;
    for version in 4..=5 {
        for (i, sku) in items.iter().enumerate() {
            let e = event(sku, version, version * 1000 + i as i64);
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                onhand_common::event::HEADER_MSG_ID,
                e.event_id.to_string().as_str(),
            );
            js.publish_with_headers(e.subject(), headers, e.to_json().into())
                .await
                .expect("publish")
                .await
                .expect("puback");
        }
    }
    eventually(
        Duration::from_secs(90),
        "every sku converges to version 5",
        || async {
            items
                .iter()
                .enumerate()
                .all(|(i, s)| h.latest(Sandboxed::Bigcommerce, s) == Some(5000 + i as i64))
                .then_some(())
        },
    )
    .await;
    running.stop().await;
    assert!(
        dlq::list(&js, "bigcommerce")
            .await
            .expect("list")
            .is_empty(),
        "transient faults are never dead-lettered"
    );
    let writes = h.writes(Sandboxed::Bigcommerce);
    assert_no_regression(&writes);
}

/// Per SKU, the written quantities never go down (each test's quantities grow with the
/// version, so a lower one would be an older version's value).
pub fn assert_no_regression(writes: &[onhand_sandbox::state::WriteRecord]) {
    let mut last: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for w in writes {
        if let Some(prev) = last.insert(&w.sku, w.quantity) {
            assert!(
                w.quantity >= prev,
                "{} went back from {prev} to {} (write #{})",
                w.sku,
                w.quantity,
                w.seq
            );
        }
    }
}
