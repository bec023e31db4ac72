//! Turning raw samples into the numbers the benchmark reports: nearest-rank latency
//! percentiles and the count of each failure kind.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::client::Outcome;

/// One request as measured: what came back, and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub outcome: Outcome,
    /// From the moment the request was due (its schedule slot in an open loop, its send in a
    /// closed loop) to the end of the response: queueing behind a slow system is included.
    pub latency: Duration,
    /// From the actual send to the end of the response.
    pub service: Duration,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    /// Nearest-rank percentiles of `values`; all zero when there are none.
    pub fn of(mut values: Vec<Duration>) -> Self {
        if values.is_empty() {
            return Self {
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                max: 0.0,
                mean: 0.0,
            };
        }
        values.sort_unstable();
        let rank = |q: f64| {
            // Nearest rank: the smallest value with at least q of the samples at or below it.
            let index = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
            ms(values[index])
        };
        let total: Duration = values.iter().sum();
        Self {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: ms(values[values.len() - 1]),
            mean: round3(total.as_secs_f64() * 1000.0 / values.len() as f64),
        }
    }
}

fn ms(d: Duration) -> f64 {
    round3(d.as_secs_f64() * 1000.0)
}

/// Three decimals: microsecond resolution in milliseconds, enough for a report.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Requests that did not get `expected`, by status code or failure kind.
pub fn errors(samples: &[Sample], expected: u16) -> BTreeMap<String, u64> {
    let mut errors = BTreeMap::new();
    for sample in samples {
        if sample.outcome != Outcome::Status(expected) {
            *errors.entry(sample.outcome.label()).or_insert(0) += 1;
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::of(values);
        assert_eq!((l.p50, l.p90, l.p99, l.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(l.mean, 50.5);
    }

    #[test]
    fn a_single_sample_is_every_percentile() {
        let l = Latency::of(vec![Duration::from_micros(1500)]);
        assert_eq!((l.p50, l.p99, l.max), (1.5, 1.5, 1.5));
    }

    #[test]
    fn errors_are_counted_by_label() {
        let s = |outcome| Sample {
            outcome,
            latency: Duration::ZERO,
            service: Duration::ZERO,
        };
        let samples = [
            s(Outcome::Status(201)),
            s(Outcome::Status(409)),
            s(Outcome::Status(409)),
            s(Outcome::Timeout),
        ];
        let e = errors(&samples, 201);
        assert_eq!(e.get("409"), Some(&2));
        assert_eq!(e.get("timeout"), Some(&1));
        assert_eq!(e.len(), 2);
    }
}
