//! A run's metrics (DESIGN.md §7), pushed to a Prometheus Pushgateway when
//! `ONHAND_PUSHGATEWAY_URL` is set: `PUT <url>/metrics/job/onhand_reconciler/channel/<name>`
//! (PUT replaces the channel's group, so a metric of the previous run never lingers).
//! Recorded through the `metrics` facade into a recorder of the run's own, so one channel's
//! push carries that channel's figures only. Labels: `channel`, `verdict`, `outcome`.
//!
//! | metric | meaning |
//! |---|---|
//! | `onhand_reconcile_drift_rate{channel}` | drift / compared of the last run |
//! | `onhand_reconcile_skus{channel,verdict}` | SKUs per verdict (`match`, `in_flight`, `drift`, `missing`, `unknown`, `not_read`) |
//! | `onhand_reconcile_complete{channel}` | 1 when the run compared everything, 0 when partial |
//! | `onhand_reconcile_threshold_exceeded{channel}` | 1 when the drift rate is above the threshold |
//! | `onhand_reconcile_repairs{channel,outcome}` | repairs (`repaired`, `superseded`, `failed`) |
//! | `onhand_reconcile_read_pages{channel}` | read-back pages |
//! | `onhand_reconcile_duration_seconds{channel}` | the run's wall time |
//! | `onhand_reconcile_last_run_timestamp_seconds{channel}` | when it finished (alert when stale) |

use metrics::gauge;
use metrics_exporter_prometheus::PrometheusBuilder;

use crate::report::{Report, Status};

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("pushing metrics to {url}")]
    Send {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the Pushgateway at {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
}

/// The run's metrics in the Prometheus text format.
pub fn render(report: &Report) -> String {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let channel = report.channel.clone();
        let c = &report.counts;
        gauge!("onhand_reconcile_drift_rate", "channel" => channel.clone()).set(report.drift_rate);
        for (verdict, n) in [
            ("match", Some(c.matched)),
            ("in_flight", Some(c.in_flight)),
            ("drift", Some(c.drift)),
            ("missing", Some(c.missing)),
            ("unknown", c.unknown),
            ("not_read", Some(c.not_read)),
        ] {
            if let Some(n) = n {
                gauge!("onhand_reconcile_skus", "channel" => channel.clone(), "verdict" => verdict)
                    .set(n as f64);
            }
        }
        let complete = f64::from(u8::from(report.status == Status::Complete));
        gauge!("onhand_reconcile_complete", "channel" => channel.clone()).set(complete);
        gauge!("onhand_reconcile_threshold_exceeded", "channel" => channel.clone())
            .set(f64::from(u8::from(report.threshold_exceeded)));
        if report.repair {
            let r = &report.repairs;
            for (outcome, n) in [
                ("repaired", r.repaired),
                ("superseded", r.superseded),
                ("failed", r.failed),
            ] {
                gauge!("onhand_reconcile_repairs", "channel" => channel.clone(), "outcome" => outcome)
                    .set(n as f64);
            }
        }
        gauge!("onhand_reconcile_read_pages", "channel" => channel.clone())
            .set(report.read_pages as f64);
        gauge!("onhand_reconcile_duration_seconds", "channel" => channel.clone())
            .set(report.duration_secs);
        gauge!("onhand_reconcile_last_run_timestamp_seconds", "channel" => channel)
            .set(report.finished_at.unix_timestamp() as f64);
    });
    handle.render()
}

/// PUT the run's metrics into its channel's group.
pub async fn push(client: &reqwest::Client, base: &str, report: &Report) -> Result<(), PushError> {
    let url = format!(
        "{}/metrics/job/onhand_reconciler/channel/{}",
        base.trim_end_matches('/'),
        report.channel
    );
    let response = client
        .put(&url)
        .header("content-type", "text/plain; version=0.0.4")
        .body(render(report))
        .send()
        .await
        .map_err(|source| PushError::Send {
            url: url.clone(),
            source,
        })?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(PushError::Status {
            url,
            status: status.as_u16(),
        })
    }
}
