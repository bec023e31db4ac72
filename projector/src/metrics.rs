//! Projector metrics (DESIGN.md §7). SKUs and event ids go in spans and logs, never in
//! labels: the only label is the channel.

use metrics::{counter, gauge, histogram};
/// The process-wide Prometheus recorder (the one every onhand server shares).
pub use onhand_common::prometheus::install;

/// What became of an event (the `outcome` label of `onhand_projector_events_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its quantity was pushed and confirmed.
    Applied,
    /// Its quantity was what the channel already had; only the watermark moved.
    Unchanged,
    /// A newer event of the same SKU in the batch carried it.
    Coalesced,
    /// The watermark already held this version or a newer one.
    Stale,
    /// Transient failure: redelivered later.
    Retried,
    /// Not sent yet: the listing's change budget is spent (eBay); redelivered when it
    /// allows.
    Deferred,
    /// Refused by the channel for good: dead-lettered.
    DeadLettered,
    /// Undecodable or not a v1 event: dead-lettered.
    Poison,
}

impl Outcome {
    /// Every outcome, in declaration order (its index in a [`Tally`]).
    pub const ALL: [Outcome; 8] = [
        Self::Applied,
        Self::Unchanged,
        Self::Coalesced,
        Self::Stale,
        Self::Retried,
        Self::Deferred,
        Self::DeadLettered,
        Self::Poison,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Unchanged => "unchanged",
            Self::Coalesced => "coalesced",
            Self::Stale => "stale",
            Self::Retried => "retried",
            Self::Deferred => "deferred",
            Self::DeadLettered => "dead_lettered",
            Self::Poison => "poison",
        }
    }
}

pub fn events(channel: &str, outcome: Outcome, n: u64) {
    if n > 0 {
        counter!("onhand_projector_events_total", "channel" => channel.to_owned(), "outcome" => outcome.as_str())
            .increment(n);
    }
}

pub fn lag(channel: &str, seconds: f64) {
    gauge!("onhand_projector_event_lag_seconds", "channel" => channel.to_owned()).set(seconds);
}

/// Dead letters of the channel waiting in `INVENTORY_DLQ` (replayed or purged ones leave).
pub fn dlq_depth(channel: &str, n: u64) {
    gauge!("onhand_projector_dlq_depth", "channel" => channel.to_owned()).set(n as f64);
}

pub fn pending(channel: &str, n: u64) {
    gauge!("onhand_projector_pending", "channel" => channel.to_owned()).set(n as f64);
}

pub fn batch(channel: &str, messages: usize, pushed: usize) {
    histogram!("onhand_projector_batch_messages", "channel" => channel.to_owned())
        .record(messages as f64);
    counter!("onhand_projector_pushes_total", "channel" => channel.to_owned())
        .increment(pushed as u64);
}

/// One batch's outcomes and latencies, counted locally and recorded once: a labelled
/// metric lookup per SKU would cost more than the rest of the batch's bookkeeping.
#[derive(Debug, Default)]
pub struct Tally {
    counts: [u64; Outcome::ALL.len()],
    latencies: Vec<f64>,
}

impl Tally {
    pub fn add(&mut self, outcome: Outcome, n: u64) {
        self.counts[outcome as usize] += n;
    }

    pub fn latency(&mut self, seconds: f64) {
        self.latencies.push(seconds.max(0.0));
    }

    pub fn record(self, channel: &str) {
        for outcome in Outcome::ALL {
            events(channel, outcome, self.counts[outcome as usize]);
        }
        if !self.latencies.is_empty() {
            let h =
                histogram!("onhand_projection_latency_seconds", "channel" => channel.to_owned());
            for s in self.latencies {
                h.record(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome;

    #[test]
    fn every_outcome_is_listed_once_at_its_own_index() {
        for (i, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*outcome as usize, i, "{}", outcome.as_str());
        }
        let mut names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Outcome::ALL.len());
    }
}
