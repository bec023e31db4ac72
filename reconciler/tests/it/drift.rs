//! Drift injected behind the adapter's back is found exactly, `--repair` clears it, and the
//! next run reports none: on every sandbox channel and on the storefront KV channel, with
//! the ledger, its relay and the projectors running.

use std::time::Duration;

use onhand_channels::storefront_kv::{Availability, BUCKET, StorefrontKv};
use onhand_common::Sku;
use onhand_reconciler::report::Status;
use onhand_reconciler::{EXIT_DRIFT, EXIT_OK, Verdict};
use onhand_sandbox::Channel as Sandboxed;
use onhand_testkit::eventually;

use crate::support::{Harness, fast_config, skus, with_verdict};

const CHANNELS: [Sandboxed; 6] = [
    Sandboxed::Shopify,
    Sandboxed::Amazon,
    Sandboxed::Ebay,
    Sandboxed::Woocommerce,
    Sandboxed::Bigcommerce,
    Sandboxed::Webhook,
];

#[tokio::test]
async fn drift_behind_the_adapters_back_is_found_exactly_and_repair_clears_it() {
    let h = Harness::start().await;
    let api = h.ledger().await;
    let catalogue = skus("DRIFT", 30);
    // On every channel but not in the ledger: `unknown`. In the ledger but on no channel:
    // `missing` (its pushes are dead-lettered).
    let channel_only = "DRIFT-CHANNEL-ONLY".to_owned();
    let ledger_only = "DRIFT-LEDGER-ONLY";
    let mut listed: Vec<(String, i64)> = catalogue.iter().map(|s| (s.clone(), 0)).collect();
    listed.push((channel_only.clone(), 4));
    let mut running = Vec::new();
    for kind in CHANNELS {
        h.seed(kind, &listed).await;
        running.push(h.projector(&h.settings(kind), fast_config()).await);
    }
    running.push(h.projector(&h.storefront_settings(), fast_config()).await);
    for (i, sku) in catalogue.iter().enumerate() {
        api.receive(sku, 10 + i as i64).await;
    }
    api.receive(ledger_only, 3).await;
    let kv = StorefrontKv::new(h.js.get_key_value(BUCKET).await.expect("bucket"));
    for (i, sku) in catalogue.iter().enumerate() {
        let expected = 10 + i as i64;
        for kind in CHANNELS {
            eventually(
                Duration::from_secs(20),
                &format!("{kind:?} shows {expected} for {sku}"),
                || async { (h.latest(kind, sku) == Some(expected)).then_some(()) },
            )
            .await;
        }
        let key = Sku::parse(sku.as_str()).expect("sku");
        eventually(
            Duration::from_secs(20),
            "the storefront converges",
            || async {
                kv.get(&key)
                    .await
                    .ok()
                    .flatten()
                    .filter(|a| a.quantity == expected)
                    .map(drop)
            },
        )
        .await;
    }

    // Someone edits stock in each channel's admin.
    let drifted: Vec<String> = [3, 7, 19].map(|i| catalogue[i].clone()).into();
    for kind in CHANNELS {
        for (n, sku) in drifted.iter().enumerate() {
            h.drift(kind, sku, n as i64).await;
        }
    }
    for (n, sku) in drifted.iter().enumerate() {
        let key = Sku::parse(sku.as_str()).expect("sku");
        let mut value = kv.get(&key).await.expect("read").expect("value");
        value.quantity = 100 + n as i64;
        put(&kv, &value).await;
    }

    let reconciler = h.reconciler(0).await;
    for kind in CHANNELS {
        let settings = h.settings(kind);
        let report = reconciler.run(&settings, false).await;
        let c = &report.counts;
        assert_eq!(report.status, Status::Complete, "{kind:?}: {report:?}");
        assert_eq!(with_verdict(&report, Verdict::Drift), drifted, "{kind:?}");
        assert_eq!(
            (c.matched, c.in_flight, c.drift, c.missing),
            (27, 0, 3, 1),
            "{kind:?}"
        );
        assert_eq!(with_verdict(&report, Verdict::Missing), [ledger_only]);
        if kind == Sandboxed::Amazon {
            // Read by SKU: what only Amazon lists is not seen.
            assert_eq!(c.unknown, None);
        } else {
            assert_eq!(
                with_verdict(&report, Verdict::Unknown),
                [channel_only.as_str()]
            );
        }
        assert_eq!(report.exit_code, EXIT_DRIFT, "3 of 30 is above 0.1 %");
        let row = report
            .rows
            .iter()
            .find(|r| r.sku == drifted[1])
            .expect("row");
        assert_eq!((row.channel, row.expected), (Some(1), Some(17)));

        let repaired = reconciler.run(&settings, true).await;
        assert_eq!(repaired.counts.drift, 3, "{kind:?}");
        assert_eq!(repaired.repairs.repaired, 3, "{kind:?}: {repaired:?}");
        // The ledger-only SKU has no item on the channel: the push is refused.
        assert_eq!(repaired.repairs.failed, 1, "{kind:?}: {repaired:?}");
        for sku in &drifted {
            let expected = 10 + catalogue.iter().position(|s| s == sku).expect("pos") as i64;
            assert_eq!(h.latest(kind, sku), Some(expected), "{kind:?} {sku}");
        }

        let after = reconciler.run(&settings, false).await;
        assert_eq!(after.counts.drift, 0, "{kind:?}: {after:?}");
        assert_eq!(after.counts.matched, 30, "{kind:?}");
        assert_eq!(after.exit_code, EXIT_OK, "{kind:?}");
    }

    // The storefront's bucket, edited by hand.
    let settings = h.storefront_settings();
    let report = reconciler.run(&settings, false).await;
    assert_eq!(with_verdict(&report, Verdict::Drift), drifted);
    // The projector wrote the ledger-only SKU too: nothing is missing there.
    assert_eq!(
        (
            report.counts.matched,
            report.counts.drift,
            report.counts.missing
        ),
        (28, 3, 0)
    );
    let repaired = reconciler.run(&settings, true).await;
    assert_eq!(repaired.repairs.repaired, 3, "{repaired:?}");
    let after = reconciler.run(&settings, false).await;
    assert_eq!((after.counts.drift, after.counts.matched), (0, 31));

    // Every run is in the history, with its repairs.
    let (runs, repairs): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM reconcile_runs WHERE status = 'complete'),
                (SELECT count(*) FROM reconcile_repairs WHERE outcome = 'repaired')",
    )
    .fetch_one(h.db.pool())
    .await
    .expect("history");
    assert_eq!((runs, repairs), (21, 21));
    for r in running {
        r.stop().await;
    }
}

/// Overwrite a storefront value, as someone with access to the bucket would.
async fn put(kv: &StorefrontKv, value: &Availability) {
    let bytes = serde_json::to_vec(value).expect("json");
    kv.store()
        .put(value.sku.token(), bytes.into())
        .await
        .expect("put");
}
