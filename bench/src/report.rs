//! The JSON result of a reservations run, and the gate that refuses to let a broken ledger
//! produce a pretty number: too many failed requests, or events that never reached the
//! stream, make the run fail.

use std::collections::BTreeMap;

use anyhow::bail;
use serde::Serialize;

use crate::stats::Latency;
use crate::stream::StreamState;

#[derive(Debug, Serialize)]
pub struct Report {
    /// `closed` (each client sends when answered) or `open` (fixed total rate).
    pub mode: &'static str,
    pub clients: usize,
    /// Open loop: the requested total rate per second.
    pub target_rate: Option<f64>,
    pub skus: usize,
    pub seeded: usize,
    pub started_unix: f64,
    pub finished_unix: f64,
    pub elapsed_secs: f64,
    pub requests: u64,
    /// Answered 201 Created.
    pub ok: u64,
    /// Every other answer, by status code or `timeout` / `transport`.
    pub errors: BTreeMap<String, u64>,
    pub error_rate: f64,
    /// Successful reservations per second of the run.
    pub throughput_per_sec: f64,
    /// Closed loop: per request. Open loop: from the moment the request was due.
    pub latency_ms: Latency,
    /// From the actual send (equals `latency_ms` in a closed loop).
    pub service_latency_ms: Latency,
    /// Open loop: requests due while all clients were busy (the system fell behind).
    pub stalled: u64,
    pub max_behind_ms: f64,
    /// Present when the run watched the stream (`--nats-url`).
    pub stream: Option<StreamReport>,
}

/// What reached JetStream, counted by stream sequence.
#[derive(Debug, Serialize)]
pub struct StreamReport {
    pub name: String,
    /// At the first request of the run (after the seed events had arrived).
    pub at_start: StreamState,
    /// When the last response arrived.
    pub at_end: StreamState,
    /// Once every successful reservation's event had arrived.
    pub drained: StreamState,
    /// Events that arrived during the run, per second of the run.
    pub in_run_per_sec: f64,
    /// Events delivered from the start of the run until drained.
    pub delivered: u64,
    /// How long after the last response the stream caught up.
    pub drain_secs: f64,
}

impl Report {
    /// Fail unless at most `max_error_rate` of the requests failed, some succeeded, and (if
    /// watched) every success reached the stream.
    pub fn check(&self, max_error_rate: f64) -> anyhow::Result<()> {
        if self.ok == 0 {
            bail!(
                "no reservation succeeded ({} requests, errors {:?})",
                self.requests,
                self.errors
            );
        }
        if self.error_rate > max_error_rate {
            bail!(
                "{:.2}% of {} requests failed (limit {:.2}%): errors {:?}",
                self.error_rate * 100.0,
                self.requests,
                max_error_rate * 100.0,
                self.errors
            );
        }
        if let Some(stream) = &self.stream
            && stream.delivered < self.ok
        {
            bail!(
                "only {} events reached stream {} for {} successful reservations",
                stream.delivered,
                stream.name,
                self.ok
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(requests: u64, ok: u64, delivered: Option<u64>) -> Report {
        let zero = Latency::of(Vec::new());
        let state = StreamState {
            messages: 0,
            first_seq: 0,
            last_seq: 0,
        };
        Report {
            mode: "closed",
            clients: 1,
            target_rate: None,
            skus: 1,
            seeded: 1,
            started_unix: 0.0,
            finished_unix: 1.0,
            elapsed_secs: 1.0,
            requests,
            ok,
            errors: BTreeMap::from([("500".to_owned(), requests - ok)]),
            error_rate: (requests - ok) as f64 / requests as f64,
            throughput_per_sec: ok as f64,
            latency_ms: zero.clone(),
            service_latency_ms: zero,
            stalled: 0,
            max_behind_ms: 0.0,
            stream: delivered.map(|delivered| StreamReport {
                name: "INVENTORY".to_owned(),
                at_start: state,
                at_end: state,
                drained: state,
                in_run_per_sec: 0.0,
                delivered,
                drain_secs: 0.0,
            }),
        }
    }

    #[test]
    fn a_run_with_more_than_the_allowed_errors_fails() {
        assert!(report(1000, 995, None).check(0.01).is_ok());
        assert!(report(1000, 980, None).check(0.01).is_err());
        assert!(report(10, 0, None).check(1.0).is_err());
    }

    #[test]
    fn a_run_whose_events_went_missing_fails() {
        assert!(report(100, 100, Some(100)).check(0.01).is_ok());
        assert!(report(100, 100, Some(99)).check(0.01).is_err());
    }
}
