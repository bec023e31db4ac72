//! The adapters' own request counters, read back in-process: a `metrics` recorder that
//! keeps every counter the channels crate increments (`onhand_channel_requests_total` by
//! channel and status, `onhand_channel_throttled_total` by channel) so the benchmark counts
//! requests exactly as the adapter sent them, statuses included. Gauges and histograms are
//! dropped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

/// Every request an adapter sent, by response status (`200`, `429`, `timeout`, `error`).
pub const REQUESTS: &str = "onhand_channel_requests_total";
/// Responses the adapter classified as throttled (429, or Shopify's THROTTLED in a 200).
pub const THROTTLED: &str = "onhand_channel_throttled_total";

/// Counters by (name, channel label, status label).
type Table = BTreeMap<(String, String, String), Arc<AtomicU64>>;

#[derive(Debug, Clone, Default)]
pub struct Counters {
    table: Arc<Mutex<Table>>,
}

impl Counters {
    /// Install as the process's metrics recorder.
    pub fn install() -> anyhow::Result<Self> {
        let counters = Self::default();
        metrics::set_global_recorder(counters.clone())
            .map_err(|_| anyhow::anyhow!("a metrics recorder was already installed"))?;
        Ok(counters)
    }

    /// One channel's counts now.
    pub fn snapshot(&self, channel: &str) -> Snapshot {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let mut snapshot = Snapshot::default();
        for ((name, ch, status), value) in table.iter() {
            if ch != channel {
                continue;
            }
            let value = value.load(Ordering::Relaxed);
            match name.as_str() {
                REQUESTS => *snapshot.by_status.entry(status.clone()).or_default() += value,
                THROTTLED => snapshot.throttled += value,
                _ => {}
            }
        }
        snapshot
    }
}

/// One channel's request counts at a moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub by_status: BTreeMap<String, u64>,
    pub throttled: u64,
}

impl Snapshot {
    pub fn requests(&self) -> u64 {
        self.by_status.values().sum()
    }

    /// What happened between `earlier` and this snapshot.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            by_status: self
                .by_status
                .iter()
                .map(|(k, v)| {
                    let before = earlier.by_status.get(k).copied().unwrap_or(0);
                    (k.clone(), v.saturating_sub(before))
                })
                .filter(|(_, v)| *v > 0)
                .collect(),
            throttled: self.throttled.saturating_sub(earlier.throttled),
        }
    }
}

impl Recorder for Counters {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let name = key.name();
        if name != REQUESTS && name != THROTTLED {
            return Counter::noop();
        }
        let label = |wanted: &str| {
            key.labels()
                .find(|l| l.key() == wanted)
                .map_or_else(String::new, |l| l.value().to_owned())
        };
        let id = (name.to_owned(), label("channel"), label("status"));
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        Counter::from_arc(Arc::clone(table.entry(id).or_default()))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_by_channel_and_status() {
        let counters = Counters::default();
        metrics::with_local_recorder(&counters, || {
            metrics::counter!(REQUESTS, "channel" => "amazon", "status" => "200").increment(3);
            metrics::counter!(REQUESTS, "channel" => "amazon", "status" => "429").increment(1);
            metrics::counter!(THROTTLED, "channel" => "amazon").increment(1);
            metrics::counter!(REQUESTS, "channel" => "ebay", "status" => "200").increment(7);
            metrics::counter!("something_else", "channel" => "amazon").increment(9);
        });
        let before = Snapshot::default();
        let amazon = counters.snapshot("amazon");
        assert_eq!(amazon.requests(), 4);
        assert_eq!(amazon.by_status.get("429"), Some(&1));
        assert_eq!(amazon.throttled, 1);
        assert_eq!(amazon.since(&before), amazon);
        assert_eq!(counters.snapshot("ebay").requests(), 7);
        assert_eq!(amazon.since(&amazon).requests(), 0);
    }
}
