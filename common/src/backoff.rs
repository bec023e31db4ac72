//! Retry pacing for background loops (the ledger's relay and ingest, projectors): capped exponential
//! backoff with jitter (the maintained `backon` crate), restarted after a success.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    max: Duration,
    current: Option<ExponentialBackoff>,
    failures: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            builder: ExponentialBuilder::new()
                .with_min_delay(min)
                .with_max_delay(max)
                .with_jitter()
                .without_max_times(),
            max,
            current: None,
            failures: 0,
        }
    }

    /// A success: the next failure waits the minimum again.
    pub fn reset(&mut self) {
        self.current = None;
        self.failures = 0;
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Record a failure and wait the next delay; `false` when `shutdown` came first.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        self.failures = self.failures.saturating_add(1);
        let builder = self.builder;
        let delay = self
            .current
            .get_or_insert_with(|| builder.build())
            .next()
            .unwrap_or(self.max);
        tokio::select! {
            () = shutdown.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn grows_to_the_cap_and_restarts_after_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let shutdown = CancellationToken::new();
        let mut waits = Vec::new();
        for _ in 0..8 {
            let start = tokio::time::Instant::now();
            assert!(b.wait(&shutdown).await);
            waits.push(start.elapsed());
        }
        assert_eq!(b.failures(), 8);
        assert!(
            waits[0] >= Duration::from_millis(100) && waits[0] <= Duration::from_millis(200),
            "{waits:?}"
        );
        assert!(
            waits.iter().all(|w| *w <= Duration::from_secs(2)),
            "{waits:?}"
        );
        assert!(
            waits[7] >= Duration::from_secs(1),
            "capped delay reached: {waits:?}"
        );
        b.reset();
        let start = tokio::time::Instant::now();
        assert!(b.wait(&shutdown).await);
        assert!(start.elapsed() <= Duration::from_millis(200));
        shutdown.cancel();
        assert!(!b.wait(&shutdown).await);
    }
}
