//! Events to channels: every kind, with its policy; coalescing; the version guard.

use std::time::Duration;

use onhand_channels::storefront_kv::{BUCKET, StorefrontKv};
use onhand_common::Sku;
use onhand_common::policy::channel_quantity;
use onhand_sandbox::Channel as Sandboxed;
use onhand_testkit::eventually;

use crate::support::{Harness, event, fast_config, skus};

#[tokio::test]
async fn events_reach_every_channel_with_its_policy() {
    let h = Harness::start().await;
    let items = skus("e2e", 20);
    let mut running = Vec::new();
    for kind in Sandboxed::ALL {
        h.seed(
            kind,
            &items.iter().map(|s| (s.clone(), 0)).collect::<Vec<_>>(),
        )
        .await;
        let settings = h.settings(kind, &[("ALLOCATION_PCT", "50"), ("BUFFER", "1")]);
        running.push(h.projector(&settings, fast_config()).await);
    }
    running.push(h.projector(&h.storefront_settings(), fast_config()).await);
    // Three versions per SKU; the last one decides.
    let mut last = Vec::new();
    for version in 1..=3 {
        for (i, sku) in items.iter().enumerate() {
            let e = event(sku, version, 10 * version + i as i64);
            h.publish(&e).await;
            if version == 3 {
                last.push(e);
            }
        }
    }
    let policy = h
        .settings(
            Sandboxed::Shopify,
            &[("ALLOCATION_PCT", "50"), ("BUFFER", "1")],
        )
        .policy;
    for kind in Sandboxed::ALL {
        eventually(
            Duration::from_secs(30),
            &format!("{kind:?} shows the policy quantities"),
            || async {
                last.iter()
                    .all(|e| {
                        h.latest(kind, e.sku.as_str()) == Some(channel_quantity(&e.stock, &policy))
                    })
                    .then_some(())
            },
        )
        .await;
    }
    let kv = StorefrontKv::new(h.js.get_key_value(BUCKET).await.expect("bucket"));
    for e in &last {
        let full = channel_quantity(&e.stock, &Default::default());
        eventually(
            Duration::from_secs(10),
            "the storefront shows every sku",
            || async {
                kv.get(&e.sku)
                    .await
                    .ok()
                    .flatten()
                    .filter(|a| a.quantity == full && a.version == 3)
                    .map(drop)
            },
        )
        .await;
    }
    for r in running {
        r.stop().await;
    }
}

#[tokio::test]
async fn a_burst_for_one_sku_is_one_channel_write() {
    let h = Harness::start().await;
    let sku = "burst-1";
    h.seed(Sandboxed::Webhook, &[(sku.to_owned(), 0)]).await;
    let settings = h.settings(Sandboxed::Webhook, &[]);
    // Bind the consumer, then stop: the burst lands while nobody consumes.
    h.publish(&event(sku, 1, 1)).await;
    let first = h.projector(&settings, fast_config()).await;
    eventually(Duration::from_secs(10), "version 1 applied", || async {
        (h.latest(Sandboxed::Webhook, sku) == Some(1)).then_some(())
    })
    .await;
    first.stop().await;
    for version in 2..=50 {
        h.publish(&event(sku, version, version)).await;
    }
    let second = h.projector(&settings, fast_config()).await;
    eventually(Duration::from_secs(10), "version 50 applied", || async {
        (h.latest(Sandboxed::Webhook, sku) == Some(50)).then_some(())
    })
    .await;
    second.stop().await;
    let writes: Vec<i64> = h
        .writes(Sandboxed::Webhook)
        .iter()
        .map(|w| w.quantity)
        .collect();
    assert!(
        writes.len() <= 3,
        "49 queued events coalesce into few writes, got {writes:?}"
    );
    assert_eq!(writes.first(), Some(&1));
    assert_eq!(writes.last(), Some(&50));
}

#[tokio::test]
async fn an_older_version_never_overwrites_a_newer_one() {
    let h = Harness::start().await;
    let sku = "guard-1";
    h.seed(Sandboxed::Webhook, &[(sku.to_owned(), 0)]).await;
    let running = h
        .projector(&h.settings(Sandboxed::Webhook, &[]), fast_config())
        .await;
    h.publish(&event(sku, 5, 50)).await;
    eventually(Duration::from_secs(10), "version 5 applied", || async {
        (h.latest(Sandboxed::Webhook, sku) == Some(50)).then_some(())
    })
    .await;
    // A late, older event (a replay, a reordering) and then a newer one.
    h.publish(&event(sku, 3, 30)).await;
    h.publish(&event(sku, 6, 60)).await;
    eventually(Duration::from_secs(10), "version 6 applied", || async {
        (h.latest(Sandboxed::Webhook, sku) == Some(60)).then_some(())
    })
    .await;
    running.stop().await;
    let writes: Vec<i64> = h
        .writes(Sandboxed::Webhook)
        .iter()
        .map(|w| w.quantity)
        .collect();
    assert_eq!(writes, [50, 60], "version 3 was never pushed");
    // The watermark holds what was pushed.
    let kv =
        h.js.get_key_value("onhand_watermarks")
            .await
            .expect("bucket");
    let key = format!("webhook.{}", Sku::parse(sku).expect("sku").token());
    let mark: serde_json::Value =
        serde_json::from_slice(&kv.get(&key).await.expect("get").expect("watermark"))
            .expect("json");
    assert_eq!(
        (mark["version"].as_i64(), mark["qty"].as_i64()),
        (Some(6), Some(60))
    );
}

#[tokio::test]
async fn a_hot_ebay_listing_waits_for_its_revision_budget_and_a_sell_out_goes_through() {
    onhand_projector::metrics::install();
    let h = Harness::start().await;
    let (hot, calm) = ("rev-hot", "rev-calm");
    h.seed(
        Sandboxed::Ebay,
        &[(hot.to_owned(), 0), (calm.to_owned(), 0)],
    )
    .await;
    // onhand_projector_events_total{channel="ebay",outcome=...}, 0 when not counted yet.
    let ebay_events = |outcome: &str| {
        let prefix =
            format!(r#"onhand_projector_events_total{{channel="ebay",outcome="{outcome}"}} "#);
        onhand_common::prometheus::render()
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_owned))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let retried_before = ebay_events("retried");
    let running = h
        .projector(&h.settings(Sandboxed::Ebay, &[]), fast_config())
        .await;
    // A SKU selling one unit at a time: each sale one revision of its listing. The first 30
    // of eBay's 250 a day are spent at once (the adapter's burst).
    for version in 1..=30 {
        h.publish(&event(hot, version, 100 - version)).await;
        eventually(
            Duration::from_secs(10),
            &format!("version {version} applied"),
            || async { (h.latest(Sandboxed::Ebay, hot) == Some(100 - version)).then_some(()) },
        )
        .await;
    }
    // The 31st waits for the budget (7.6 minutes for one revision); another SKU published
    // after it goes through, so by the time it shows, the 31st was decided.
    // (It happened two minutes ago: the lag must show that much while it waits.)
    let mut waiting = event(hot, 31, 60);
    waiting.occurred_at -= Duration::from_secs(120);
    h.publish(&waiting).await;
    h.publish(&event(calm, 1, 5)).await;
    eventually(Duration::from_secs(10), "the other sku applied", || async {
        (h.latest(Sandboxed::Ebay, calm) == Some(5)).then_some(())
    })
    .await;
    assert_eq!(
        h.latest(Sandboxed::Ebay, hot),
        Some(70),
        "the 31st revision waits"
    );
    // More sales while it waits: each is put off in its turn, and the server keeps only the
    // newest of them unacked (not one per sale, which would fill max_ack_pending).
    for version in 32..=40 {
        h.publish(&event(hot, version, 100 - version)).await;
    }
    h.publish(&event(calm, 2, 4)).await;
    eventually(Duration::from_secs(10), "the marker applied", || async {
        (h.latest(Sandboxed::Ebay, calm) == Some(4)).then_some(())
    })
    .await;
    let unacked = || async {
        let stream =
            h.js.get_stream(onhand_streams::names::INVENTORY_STREAM)
                .await
                .expect("stream");
        stream
            .consumer_info(onhand_projector::consumer::name("ebay"))
            .await
            .expect("consumer info")
            .num_ack_pending
    };
    eventually(
        Duration::from_secs(10),
        "one put-off delivery left unacked",
        || async { (unacked().await == 1).then_some(()) },
    )
    .await;
    // The unacked one is seconds old, but the channel has been behind since version 31.
    let lag = || {
        let text = onhand_common::prometheus::render();
        text.lines()
            .find_map(|l| l.strip_prefix(r#"onhand_projector_event_lag_seconds{channel="ebay"} "#))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    eventually(
        Duration::from_secs(10),
        "the lag counts from version 31",
        || async { lag().filter(|l| *l >= 120.0).map(drop) },
    )
    .await;
    // Sold out: pushed at once, from the reserve; it covers the put-off one, acked too.
    h.publish(&event(hot, 41, 0)).await;
    eventually(Duration::from_secs(10), "the sell-out applied", || async {
        (h.latest(Sandboxed::Ebay, hot) == Some(0)).then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "nothing left unacked", || async {
        (unacked().await == 0).then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "no lag once applied", || async {
        (lag() == Some(0.0)).then_some(())
    })
    .await;
    // The put-off versions count as deferred, not as failures retried.
    assert!(
        ebay_events("deferred") >= 1.0,
        "deferred: {}",
        ebay_events("deferred")
    );
    assert_eq!(ebay_events("retried"), retried_before, "nothing failed");
    running.stop().await;
    let revisions: Vec<i64> = h
        .writes(Sandboxed::Ebay)
        .iter()
        .filter(|w| w.sku == hot)
        .map(|w| w.quantity)
        .collect();
    let expected: Vec<i64> = (1..=30).map(|v| 100 - v).chain([0]).collect();
    assert_eq!(revisions, expected, "versions 31 to 40 were never sent");
    assert!(
        onhand_projector::dlq::list(&h.js, "ebay")
            .await
            .expect("list")
            .is_empty(),
        "a spent budget is transient: nothing is dead-lettered"
    );
}
