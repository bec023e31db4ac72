//! A token bucket, for emulating a channel's rate limit.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Bucket {
    capacity: f64,
    refill_per_sec: f64,
    available: f64,
    updated: Instant,
}

impl Bucket {
    pub fn new(capacity: f64, refill_per_sec: f64) -> Self {
        Self {
            capacity,
            refill_per_sec,
            available: capacity,
            updated: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.available = (self.available + elapsed * self.refill_per_sec).min(self.capacity);
        self.updated = now;
    }

    /// Spend `cost`, or say how long until it would fit.
    pub fn take(&mut self, cost: f64, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.available >= cost {
            self.available -= cost;
            Ok(())
        } else {
            let missing = cost - self.available;
            Err(Duration::from_secs_f64(
                missing / self.refill_per_sec.max(1e-9),
            ))
        }
    }

    pub fn available(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.available
    }

    pub fn capacity(&self) -> f64 {
        self.capacity
    }

    pub fn refill_per_sec(&self) -> f64 {
        self.refill_per_sec
    }
}
