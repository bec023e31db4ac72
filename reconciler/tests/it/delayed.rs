//! Amazon and BigCommerce apply an accepted write later. Inside the settle window that is
//! `in_flight`, not drift; the same read with no settle window would call it drift.

use std::time::Duration;

use onhand_channels::ChannelSettings;
use onhand_common::Sku;
use onhand_projector::watermark::Watermarks;
use onhand_reconciler::{EXIT_DRIFT, EXIT_OK, Verdict};
use onhand_sandbox::Channel as Sandboxed;
use onhand_streams::names::WATERMARKS_BUCKET;
use onhand_testkit::eventually;
use serde_json::json;

use crate::support::{Harness, fast_config, skus, with_verdict};

const DELAY_MS: u64 = 6_000;

#[tokio::test]
async fn delayed_application_inside_the_settle_window_is_not_drift() {
    let h = Harness::start().await;
    let api = h.ledger().await;
    let catalogue = skus("LATE", 6);
    let listed: Vec<(String, i64)> = catalogue.iter().map(|s| (s.clone(), 0)).collect();
    let kinds = [Sandboxed::Amazon, Sandboxed::Bigcommerce];
    let mut running = Vec::new();
    for kind in kinds {
        h.seed(kind, &listed).await;
        running.push(h.projector(&h.settings(kind), fast_config()).await);
    }
    for sku in &catalogue {
        api.receive(sku, 4).await;
    }
    for kind in kinds {
        for sku in &catalogue {
            eventually(Duration::from_secs(20), "converged", || async {
                (h.latest(kind, sku) == Some(4)).then_some(())
            })
            .await;
        }
        h.knobs(kind, json!({"apply_delay_ms": DELAY_MS})).await;
    }
    // Two SKUs change; each channel accepts the new quantity and applies it later.
    let late = [catalogue[1].clone(), catalogue[4].clone()];
    let mut versions = Vec::new();
    for sku in &late {
        versions.push(api.receive(sku, 6).await);
    }
    let kv =
        h.js.get_key_value(WATERMARKS_BUCKET)
            .await
            .expect("watermarks");
    for kind in kinds {
        for (sku, version) in late.iter().zip(&versions) {
            let key = Watermarks::key(kind.as_str(), &Sku::parse(sku.as_str()).expect("sku"));
            eventually(
                Duration::from_secs(20),
                "the projector's push is accepted",
                || async {
                    let value = kv.get(&key).await.ok().flatten()?;
                    let mark: serde_json::Value = serde_json::from_slice(&value).ok()?;
                    (mark["version"].as_i64() == Some(*version)).then_some(())
                },
            )
            .await;
        }
    }

    let patient = h.reconciler(60).await;
    let hasty = h.reconciler(0).await;
    for kind in kinds {
        let settings: ChannelSettings = h.settings(kind);
        let visible = h.sandbox.channel(kind).items[&late[0]]
            .clone()
            .visible(tokio::time::Instant::now());
        assert_eq!(visible, 4, "{kind:?} still shows the old value");

        let report = patient.run(&settings, false).await;
        assert_eq!(with_verdict(&report, Verdict::InFlight), late, "{kind:?}");
        assert_eq!(report.counts.drift, 0, "{kind:?}");
        assert_eq!(report.exit_code, EXIT_OK);
        assert!(
            report.rows[0].why.contains("settle window"),
            "{:?}",
            report.rows[0]
        );

        // Without a settle window the same state reads as drift: the window is what tells.
        let report = hasty.run(&settings, false).await;
        assert_eq!(with_verdict(&report, Verdict::Drift), late, "{kind:?}");
        assert_eq!(report.exit_code, EXIT_DRIFT);
    }

    // Once applied, they match.
    for kind in kinds {
        let settings = h.settings(kind);
        eventually(
            Duration::from_millis(DELAY_MS + 10_000),
            "applied",
            || async {
                let report = patient.run(&settings, false).await;
                (report.counts.matched == 6).then_some(())
            },
        )
        .await;
    }
    for r in running {
        r.stop().await;
    }
}
