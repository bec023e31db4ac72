//! Under live traffic (ledger changes flowing while the reconciler runs), SKUs whose events
//! have not been applied yet are `in_flight`, never `drift`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use onhand_projector::ProjectorConfig;
use onhand_reconciler::report::Status;
use onhand_reconciler::{EXIT_OK, Verdict};
use onhand_sandbox::Channel as Sandboxed;
use onhand_testkit::eventually;

use crate::support::{Harness, fast_config, skus, with_verdict};

#[tokio::test]
async fn events_not_yet_applied_are_in_flight_never_drift() {
    let h = Harness::start().await;
    let api = h.ledger().await;
    let catalogue = skus("LIVE", 20);
    let listed: Vec<(String, i64)> = catalogue.iter().map(|s| (s.clone(), 0)).collect();
    h.seed(Sandboxed::Webhook, &listed).await;
    let settings = h.settings(Sandboxed::Webhook);
    let projector = h.projector(&settings, fast_config()).await;
    for sku in &catalogue {
        api.receive(sku, 5).await;
    }
    for sku in &catalogue {
        eventually(Duration::from_secs(20), "converged", || async {
            (h.latest(Sandboxed::Webhook, sku) == Some(5)).then_some(())
        })
        .await;
    }
    // The projector stops; the ledger goes on changing a third of the catalogue.
    projector.stop().await;
    let changed: Vec<String> = catalogue.iter().step_by(3).cloned().collect();
    for sku in &changed {
        api.receive(sku, 2).await;
    }

    let reconciler = h.reconciler(0).await;
    let report = reconciler.run(&settings, true).await;
    let c = &report.counts;
    assert_eq!(report.status, Status::Complete);
    assert_eq!(with_verdict(&report, Verdict::InFlight), changed);
    assert_eq!(
        (c.drift, c.in_flight, c.matched),
        (0, changed.len() as u64, 13)
    );
    assert_eq!(report.exit_code, EXIT_OK);
    assert_eq!(
        report.repairs.attempted, 0,
        "in-flight SKUs are the projector's"
    );
    let row = &report.rows[0];
    assert_eq!(
        (row.channel, row.expected, row.watermark_version),
        (Some(5), Some(7), Some(1))
    );

    // Once the projector is back, they match.
    let projector = h.projector(&settings, fast_config()).await;
    for sku in &changed {
        eventually(Duration::from_secs(20), "caught up", || async {
            (h.latest(Sandboxed::Webhook, sku) == Some(7)).then_some(())
        })
        .await;
    }
    let report = reconciler.run(&settings, false).await;
    assert_eq!((report.counts.matched, report.counts.drift), (20, 0));
    projector.stop().await;
}

#[tokio::test]
async fn runs_during_a_stream_of_ledger_changes_never_report_drift() {
    let h = Harness::start().await;
    let api = Arc::new(h.ledger().await);
    let catalogue = skus("BUSY", 600);
    let listed: Vec<(String, i64)> = catalogue.iter().map(|s| (s.clone(), 0)).collect();
    // Two listing channels of different page sizes, one read by SKU.
    let kinds = [Sandboxed::Shopify, Sandboxed::Webhook, Sandboxed::Amazon];
    let mut running = Vec::new();
    // A projector that lingers, so changes wait in flight for a while.
    let slow = ProjectorConfig {
        linger: Duration::from_millis(40),
        ..fast_config()
    };
    for kind in kinds {
        h.seed(kind, &listed).await;
        running.push(h.projector(&h.settings(kind), slow.clone()).await);
    }
    for sku in &catalogue {
        api.receive(sku, 3).await;
    }
    for kind in kinds {
        for sku in &catalogue {
            eventually(Duration::from_secs(30), "converged", || async {
                (h.latest(kind, sku) == Some(3)).then_some(())
            })
            .await;
        }
    }

    // Receipts on the first 60 SKUs, as fast as the ledger takes them, while the
    // reconciler runs again and again.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let traffic = {
        let (api, stop, sent) = (api.clone(), stop.clone(), sent.clone());
        let hot: Vec<String> = catalogue[..60].to_vec();
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                api.receive(&hot[i % hot.len()], 1).await;
                sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        })
    };
    let reconciler = h.reconciler(0).await;
    let mut in_flight = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut round = 0;
    // At least four rounds, and until 300 changes went through the ledger during them.
    while round < 4 || sent.load(Ordering::Relaxed) < 300 {
        assert!(
            std::time::Instant::now() < deadline,
            "the traffic is too slow"
        );
        round += 1;
        for kind in kinds {
            let report = reconciler.run(&h.settings(kind), false).await;
            let c = &report.counts;
            assert_eq!(report.status, Status::Complete, "{kind:?}");
            assert_eq!(
                c.drift,
                0,
                "{kind:?} round {round}: {:?}",
                with_verdict(&report, Verdict::Drift)
            );
            assert_eq!(c.compared, 600, "{kind:?}");
            in_flight += c.in_flight;
        }
    }
    stop.store(true, Ordering::Relaxed);
    traffic.await.expect("traffic");
    let sent = sent.load(Ordering::Relaxed);
    eprintln!(
        "{round} rounds, {sent} ledger changes during the runs; {in_flight} SKU verdicts in flight"
    );
    for r in running {
        r.stop().await;
    }
}
