//! The process-wide Prometheus recorder behind every onhand server's `/metrics` (DESIGN.md
//! §7): one per process, whichever component installs it first, with the histogram buckets
//! of every onhand histogram that has them (the others render as summaries).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The `Content-Type` of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Histogram buckets by metric name, in seconds.
const BUCKETS: &[(&str, &[f64])] = &[
    // A projector's occurred_at → channel ack latency.
    (
        "onhand_projection_latency_seconds",
        &[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
        ],
    ),
    // A storefront request: a KV read takes about a millisecond, the timeout is seconds.
    (
        "onhand_storefront_request_duration_seconds",
        &[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ],
    ),
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the process-wide recorder (once; later calls reuse it). `None` when another
/// recorder was installed first: this process's metrics are then not exported.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            for (name, buckets) in BUCKETS {
                builder = builder
                    .set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
                    .ok()?;
            }
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(err) => {
                    tracing::warn!(error = %err, "a metrics recorder is already installed; onhand metrics are not exported");
                    None
                }
            }
        })
        .as_ref()
}

/// Every metric recorded so far, as Prometheus text (empty when not exported).
pub fn render() -> String {
    install().map(PrometheusHandle::render).unwrap_or_default()
}
