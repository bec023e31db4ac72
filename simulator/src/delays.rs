//! The event-driven propagation delay distribution: the empirical distribution of
//! ledger-to-channel delays measured by the projector benchmark (`scripts/bench`, written
//! to `docs/results/projector-propagation.json`), parsed and validated here. The caller
//! reads the file; this module does no I/O.

use serde::Deserialize;

use crate::rng::Rng;

/// Why a delays file was refused.
#[derive(Debug, thiserror::Error)]
pub enum DelayError {
    #[error("not the projector benchmark's results JSON ({{\"samples_ms\": [number, ...], ...}})")]
    Json(#[source] serde_json::Error),
    #[error("samples_ms is empty: there is no delay to draw from")]
    Empty,
    #[error("samples_ms[{index}] = {value} is not a finite number")]
    NotFinite { index: usize, value: f64 },
    #[error("samples_ms[{index}] = {value} is negative")]
    Negative { index: usize, value: f64 },
}

/// Propagation delays in milliseconds; a draw picks one sample uniformly.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayDistribution {
    samples_ms: Vec<f64>,
}

#[derive(Deserialize)]
struct ResultsFile {
    samples_ms: Vec<f64>,
}

impl DelayDistribution {
    /// Parses the benchmark's results (`{"rate_per_s": 500, "samples_ms": [..], ..}`;
    /// fields other than `samples_ms` are ignored) and validates the samples.
    pub fn from_json(text: &str) -> Result<Self, DelayError> {
        let file: ResultsFile = serde_json::from_str(text).map_err(DelayError::Json)?;
        Self::from_samples(file.samples_ms)
    }

    /// Non-empty, finite, non-negative samples in milliseconds.
    pub fn from_samples(samples_ms: Vec<f64>) -> Result<Self, DelayError> {
        if samples_ms.is_empty() {
            return Err(DelayError::Empty);
        }
        for (index, &value) in samples_ms.iter().enumerate() {
            if !value.is_finite() {
                return Err(DelayError::NotFinite { index, value });
            }
            if value < 0.0 {
                return Err(DelayError::Negative { index, value });
            }
        }
        Ok(DelayDistribution { samples_ms })
    }

    /// A delay in seconds.
    pub fn sample_secs(&self, rng: &mut Rng) -> f64 {
        self.samples_ms[rng.below(self.samples_ms.len())] / 1000.0
    }

    pub fn len(&self) -> usize {
        self.samples_ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples_ms.is_empty()
    }

    /// The `q` quantile (0–1) in milliseconds, nearest rank.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let mut sorted = self.samples_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank.min(sorted.len()) - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../tests/fixtures/projector-propagation.json");

    #[test]
    fn the_fixture_parses_and_draws_its_own_samples() {
        let d = DelayDistribution::from_json(FIXTURE).expect("fixture is valid");
        assert!(d.len() >= 100);
        let p50 = d.quantile_ms(0.5);
        assert!(p50 > 5.0 && p50 < 25.0, "p50 {p50}");
        let mut rng = Rng::new(1, 0);
        for _ in 0..1000 {
            let s = d.sample_secs(&mut rng) * 1000.0;
            assert!(d.samples_ms.iter().any(|&x| (x - s).abs() < 1e-9));
        }
    }

    #[test]
    fn invalid_files_are_refused_with_the_problem() {
        let err = DelayDistribution::from_json("{\"rate_per_s\": 500}").expect_err("no samples");
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            cause.is_some_and(|c| c.contains("missing field `samples_ms`")),
            "{err:?}"
        );
        let err = DelayDistribution::from_json("{\"samples_ms\": []}").expect_err("empty");
        assert!(matches!(err, DelayError::Empty));
        let err =
            DelayDistribution::from_json("{\"samples_ms\": [1.5, -2]}").expect_err("negative");
        assert!(
            err.to_string().contains("samples_ms[1] = -2 is negative"),
            "{err}"
        );
        let err = DelayDistribution::from_json("{\"samples_ms\": [1, \"x\"]}").expect_err("string");
        assert!(matches!(err, DelayError::Json(_)), "{err}");
        let err = DelayDistribution::from_json("{\"samples_ms\": [1e999]}").expect_err("overflow");
        assert!(matches!(err, DelayError::Json(_)), "{err}");
        let err = DelayDistribution::from_samples(vec![0.0, f64::INFINITY]).expect_err("inf");
        assert!(
            err.to_string()
                .contains("samples_ms[1] = inf is not a finite number"),
            "{err}"
        );
    }
}
