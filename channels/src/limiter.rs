//! A token bucket per channel: starts from the documented limit (configurable per store
//! plan) and adapts to what the API reports (remaining quota, throttle status, Retry-After).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Documented defaults are per channel; `None` rate means unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Bucket size: how many units may be spent at once.
    pub capacity: f64,
    /// Units restored per second.
    pub refill_per_sec: f64,
}

#[derive(Debug)]
struct Bucket {
    limit: RateLimit,
    available: f64,
    updated: Instant,
    paused_until: Option<Instant>,
}

/// Shared by every request to one channel account.
#[derive(Debug)]
pub struct RateLimiter {
    bucket: Option<Mutex<Bucket>>,
}

impl RateLimiter {
    pub fn new(limit: Option<RateLimit>) -> Self {
        Self {
            bucket: limit.map(|limit| {
                Mutex::new(Bucket {
                    limit,
                    available: limit.capacity,
                    updated: Instant::now(),
                    paused_until: None,
                })
            }),
        }
    }

    pub fn unlimited() -> Self {
        Self::new(None)
    }

    pub fn limit(&self) -> Option<RateLimit> {
        self.bucket.as_ref().map(|b| lock(b).limit)
    }

    /// Wait until `cost` units are available, then spend them.
    pub async fn acquire(&self, cost: f64) {
        let Some(bucket) = &self.bucket else {
            return;
        };
        loop {
            let wait = {
                let mut b = lock(bucket);
                let now = Instant::now();
                b.refill(now);
                match b.paused_until {
                    Some(until) if until > now => until - now,
                    _ => {
                        let cost = cost.min(b.limit.capacity);
                        if b.available >= cost {
                            b.available -= cost;
                            return;
                        }
                        let missing = cost - b.available;
                        Duration::from_secs_f64(missing / b.limit.refill_per_sec.max(1e-6))
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// The API told us how much is left (Shopify's `currentlyAvailable`, BigCommerce's
    /// `X-Rate-Limit-Requests-Left`): trust it when it is lower than our estimate.
    pub fn observe_available(
        &self,
        available: f64,
        capacity: Option<f64>,
        refill_per_sec: Option<f64>,
    ) {
        let Some(bucket) = &self.bucket else {
            return;
        };
        let mut b = lock(bucket);
        b.refill(Instant::now());
        if let Some(capacity) = capacity.filter(|c| *c > 0.0) {
            b.limit.capacity = capacity;
        }
        if let Some(refill) = refill_per_sec.filter(|r| *r > 0.0) {
            b.limit.refill_per_sec = refill;
        }
        b.available = b.available.min(available.max(0.0));
    }

    /// The API said to wait (429 with Retry-After, a quota reset time): nobody sends
    /// before then.
    pub fn pause_for(&self, duration: Duration) {
        let Some(bucket) = &self.bucket else {
            return;
        };
        let mut b = lock(bucket);
        let until = Instant::now() + duration;
        b.paused_until = Some(b.paused_until.map_or(until, |p| p.max(until)));
        b.available = 0.0;
    }
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.available =
            (self.available + elapsed * self.limit.refill_per_sec).min(self.limit.capacity);
        self.updated = now;
    }
}

fn lock(bucket: &Mutex<Bucket>) -> std::sync::MutexGuard<'_, Bucket> {
    // A panic while holding this lock leaves only arithmetic state behind; carry on.
    bucket
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_exceeds_the_rate() {
        let limiter = RateLimiter::new(Some(RateLimit {
            capacity: 5.0,
            refill_per_sec: 5.0,
        }));
        let start = Instant::now();
        for _ in 0..30 {
            limiter.acquire(1.0).await;
        }
        // 5 at once, then 25 more at 5/s.
        let elapsed = start.elapsed().as_secs_f64();
        assert!((4.9..=5.2).contains(&elapsed), "{elapsed}");
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_when_told_and_trusts_lower_reports() {
        let limiter = RateLimiter::new(Some(RateLimit {
            capacity: 100.0,
            refill_per_sec: 10.0,
        }));
        limiter.pause_for(Duration::from_secs(2));
        let start = Instant::now();
        limiter.acquire(1.0).await;
        assert!(start.elapsed() >= Duration::from_secs(2));
        limiter.observe_available(0.0, None, Some(50.0));
        let start = Instant::now();
        limiter.acquire(10.0).await;
        let waited = start.elapsed().as_secs_f64();
        assert!((0.19..=0.25).contains(&waited), "{waited}");
    }

    #[tokio::test]
    async fn unlimited_never_waits() {
        let limiter = RateLimiter::unlimited();
        for _ in 0..10_000 {
            limiter.acquire(1000.0).await;
        }
    }
}
