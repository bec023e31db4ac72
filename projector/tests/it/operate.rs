//! Rebuilding a channel, its dry run, and explaining one SKU.

use std::time::Duration;

use onhand_common::Sku;
use onhand_projector::ops::{self, RebuildFrom};
use onhand_sandbox::Channel as Sandboxed;
use onhand_testkit::eventually;

use crate::support::{Harness, event, fast_config, skus};

#[tokio::test]
async fn rebuild_restores_a_wiped_channel_and_its_dry_run_writes_nothing() {
    let h = Harness::start().await;
    let items = skus("rebuild", 300);
    let zeroes: Vec<(String, i64)> = items.iter().map(|s| (s.clone(), 0)).collect();
    h.seed(Sandboxed::Shopify, &zeroes).await;
    let settings = h.settings(Sandboxed::Shopify, &[("BUFFER", "2")]);
    let config = fast_config();
    let running = h.projector(&settings, config.clone()).await;
    for version in 1..=2 {
        for (i, sku) in items.iter().enumerate() {
            h.publish(&event(sku, version, 10 + i as i64 + version))
                .await;
        }
    }
    let expected = |i: usize| (10 + i as i64 + 2 - 2).max(0);
    eventually(Duration::from_secs(30), "every sku applied", || async {
        items
            .iter()
            .enumerate()
            .all(|(i, s)| h.latest(Sandboxed::Shopify, s) == Some(expected(i)))
            .then_some(())
    })
    .await;
    running.stop().await;

    // The channel loses its state: every listing recreated at 0 (new ids too).
    h.wipe(Sandboxed::Shopify).await;
    h.seed(Sandboxed::Shopify, &zeroes).await;

    let diff = ops::dry_run(&h.js, &settings).await.expect("dry run");
    assert_eq!(diff.skus_in_ledger, items.len());
    assert_eq!(diff.would_change.len(), items.len(), "every sku differs");
    assert_eq!(diff.would_change[0].channel, Some(0));
    assert_eq!(diff.would_change[0].expected, expected(0));
    assert!(
        h.writes(Sandboxed::Shopify).is_empty(),
        "the dry run wrote nothing"
    );

    let purged = ops::rebuild(&h.js, "shopify", &config, RebuildFrom::LastPerSubject)
        .await
        .expect("rebuild");
    assert_eq!(purged, items.len() as u64, "one watermark per sku purged");
    let running = h.projector(&settings, config).await;
    eventually(
        Duration::from_secs(30),
        "the rebuild restores every sku",
        || async {
            items
                .iter()
                .enumerate()
                .all(|(i, s)| h.latest(Sandboxed::Shopify, s) == Some(expected(i)))
                .then_some(())
        },
    )
    .await;
    running.stop().await;
    let writes = h.writes(Sandboxed::Shopify);
    assert_eq!(
        writes.len(),
        items.len(),
        "one write per sku: only the newest event of each"
    );
    let diff = ops::dry_run(&h.js, &settings).await.expect("dry run");
    assert!(diff.would_change.is_empty(), "{:?}", diff.would_change);
}

#[tokio::test]
async fn explain_shows_state_policy_watermark_and_channel() {
    let h = Harness::start().await;
    let sku = "explain-1";
    h.seed(Sandboxed::Webhook, &[(sku.to_owned(), 0)]).await;
    let settings = h.settings(Sandboxed::Webhook, &[("ALLOCATION_PCT", "50")]);
    let running = h.projector(&settings, fast_config()).await;
    h.publish(&event(sku, 1, 9)).await;
    eventually(Duration::from_secs(10), "applied", || async {
        (h.latest(Sandboxed::Webhook, sku) == Some(4)).then_some(())
    })
    .await;
    running.stop().await;
    let sku = Sku::parse(sku).expect("sku");
    let x = ops::explain(&h.js, &settings, &sku).await.expect("explain");
    assert_eq!(x.version, Some(1));
    assert_eq!(x.warehouses["wh1"].on_hand, 9);
    let steps = x.steps.expect("steps");
    assert_eq!((steps.raw, steps.allocated, steps.quantity), (9, 4, 4));
    assert_eq!(x.watermark.map(|w| (w.version, w.qty)), Some((1, 4)));
    assert_eq!(
        (x.expected, x.channel_shows, x.verdict),
        (Some(4), Some(4), "match")
    );

    // Drift behind the projector's back shows as drift.
    let status = h
        .http
        .put(format!(
            "{}/admin/webhook/items/{}",
            h.sandbox_base,
            sku.as_str()
        ))
        .json(&serde_json::json!({"quantity": 1}))
        .send()
        .await
        .expect("drift")
        .status();
    assert!(status.is_success());
    let x = ops::explain(&h.js, &settings, &sku).await.expect("explain");
    assert!(x.verdict.starts_with("drift"), "{}", x.verdict);
}
