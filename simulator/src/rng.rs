//! The simulation's random numbers: xoshiro256++ seeded through SplitMix64, and the few
//! distributions the model draws from. Written out here (not the `rand` crate) so that a
//! seed gives the same run on every platform and with every version of every dependency.

/// A xoshiro256++ generator. One per independent stream (a channel's shoppers, the
/// propagation delays, the stock depths), so changing how one stream is used does not
/// shift the draws of another.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// The generator of stream `stream` of run `seed`.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut x = seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let s = [
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
        ];
        Rng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = (self.s[0].wrapping_add(self.s[3]))
            .rotate_left(23)
            .wrapping_add(self.s[0]);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Exponential with the given mean (0 when the mean is 0).
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.uniform()).ln()
    }

    /// Uniform index in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        // Multiply-shift: bias below 2^-32 for the sizes used here.
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// `1 + Geometric`: at least 1, with the given mean (≥ 1).
    pub fn geometric_from_one(&mut self, mean: f64) -> u64 {
        if mean <= 1.0 {
            return 1;
        }
        let p = 1.0 / mean;
        let u = 1.0 - self.uniform(); // (0, 1]
        1 + (u.ln() / (1.0 - p).ln()).floor() as u64
    }
}

/// Draws an index with probability proportional to fixed weights (inverse of the CDF).
#[derive(Debug, Clone)]
pub struct Weighted {
    cdf: Vec<f64>,
}

impl Weighted {
    /// `weights` must be non-empty, finite, non-negative, with a positive sum.
    pub fn new(weights: &[f64]) -> Self {
        let mut total = 0.0;
        let cdf = weights
            .iter()
            .map(|w| {
                total += w;
                total
            })
            .collect::<Vec<_>>();
        let cdf = cdf.into_iter().map(|c| c / total).collect();
        Weighted { cdf }
    }

    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.uniform();
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1)
    }
}

/// Zipf weights: the item of rank `k` (1-based) weighs `1 / k^exponent`, normalised to sum 1.
pub fn zipf_weights(n: usize, exponent: f64) -> Vec<f64> {
    let raw = (1..=n)
        .map(|k| (k as f64).powf(-exponent))
        .collect::<Vec<_>>();
    let total: f64 = raw.iter().sum();
    raw.into_iter().map(|w| w / total).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_stream_same_numbers_other_stream_other_numbers() {
        let draw = |seed, stream| {
            let mut rng = Rng::new(seed, stream);
            (0..8).map(|_| rng.next_u64()).collect::<Vec<_>>()
        };
        let (a, b, c) = (draw(7, 1), draw(7, 1), draw(7, 2));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn distributions_have_their_means() {
        let mut rng = Rng::new(1, 0);
        let n = 200_000;
        let exp: f64 = (0..n).map(|_| rng.exponential(3.0)).sum::<f64>() / n as f64;
        assert!((exp - 3.0).abs() < 0.05, "exponential mean {exp}");
        let geo: f64 = (0..n)
            .map(|_| rng.geometric_from_one(4.0) as f64)
            .sum::<f64>()
            / n as f64;
        assert!((geo - 4.0).abs() < 0.05, "geometric mean {geo}");
        assert_eq!(rng.geometric_from_one(1.0), 1);
        let uni: f64 = (0..n).map(|_| rng.uniform()).sum::<f64>() / n as f64;
        assert!((uni - 0.5).abs() < 0.01, "uniform mean {uni}");
    }

    #[test]
    fn weighted_draws_follow_zipf_weights() {
        let w = zipf_weights(4, 1.0);
        // 1, 1/2, 1/3, 1/4 over 25/12.
        assert!((w[0] - 12.0 / 25.0).abs() < 1e-12);
        assert!((w[3] - 3.0 / 25.0).abs() < 1e-12);
        let table = Weighted::new(&w);
        let mut rng = Rng::new(3, 0);
        let mut counts = [0u32; 4];
        for _ in 0..100_000 {
            counts[table.sample(&mut rng)] += 1;
        }
        for (k, &c) in counts.iter().enumerate() {
            let share = f64::from(c) / 100_000.0;
            assert!((share - w[k]).abs() < 0.01, "rank {k}: {share} vs {}", w[k]);
        }
    }
}
