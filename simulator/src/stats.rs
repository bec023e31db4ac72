//! Means and 95% confidence intervals over seeds (Student's t).

use serde::Serialize;

/// A mean over independent runs with its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
    /// Runs it is over.
    pub n: usize,
}

/// Two-sided 95% quantile of Student's t for `df` degrees of freedom.
fn t975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => {
            // Cornish-Fisher expansion around the normal quantile; within 0.001 above 30.
            let z: f64 = 1.959_964;
            let d = df as f64;
            z + (z.powi(3) + z) / (4.0 * d)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
        }
    }
}

impl Estimate {
    /// The mean of `values` and its 95% interval; with one value the interval is that value.
    pub fn of(values: &[f64]) -> Estimate {
        let n = values.len();
        if n == 0 {
            return Estimate {
                mean: f64::NAN,
                low: f64::NAN,
                high: f64::NAN,
                n,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Estimate {
                mean,
                low: mean,
                high: mean,
                n,
            };
        }
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let half = t975(n - 1) * (var / n as f64).sqrt();
        Estimate {
            mean,
            low: mean - half,
            high: mean + half,
            n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_of_known_values() {
        // mean 3, sample sd sqrt(2.5), n 5: half-width 2.776 * sqrt(0.5) = 1.963.
        let e = Estimate::of(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!((e.mean - 3.0).abs() < 1e-12);
        assert!(
            (e.high - e.mean - 2.776 * 0.5f64.sqrt()).abs() < 1e-9,
            "{e:?}"
        );
        assert!((e.mean - e.low - (e.high - e.mean)).abs() < 1e-12);
        let one = Estimate::of(&[4.0]);
        assert_eq!((one.low, one.mean, one.high), (4.0, 4.0, 4.0));
        let same = Estimate::of(&[2.0, 2.0, 2.0]);
        assert_eq!((same.low, same.high), (2.0, 2.0));
    }

    #[test]
    fn t_quantiles_join_the_table_smoothly() {
        assert!((t975(30) - 2.042).abs() < 1e-9);
        assert!((t975(31) - 2.040).abs() < 0.002, "{}", t975(31));
        assert!((t975(120) - 1.980).abs() < 0.001, "{}", t975(120));
    }
}
