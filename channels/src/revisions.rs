//! A revision budget per listing, for a channel that caps how often one listing may change.
//!
//! eBay allows 250 revisions per listing per calendar day; past that the listing is blocked
//! until the next day, still showing the quantity it had (CHANNELS.md §3: "this matters for
//! real-time pushing"). A SKU that sells a few units a minute reaches the cap by midday, and
//! its listing then oversells for the rest of the day: the failure this system exists to
//! prevent. So the adapter spends revisions from two token buckets per SKU:
//!
//! - the main one: a listing starts with [`RevisionBudget::burst`] revisions in hand and
//!   earns one back every [`RevisionBudget::every`] (a cap of 250 gives a burst of 30 and
//!   one every 7.6 minutes);
//! - the sell-out reserve: [`RevisionBudget::reserve`] more (10), earned back at 10 a day,
//!   spent only by a push to 0 when the main bucket is empty, so a listing that sells out
//!   is told at once even when it has been revised often.
//!
//! No 24-hour window — whichever time zone eBay's "calendar day" uses — holds more than
//! both bursts and a day of both refills: 30 + 190 + 10 + 10 = 240 for a cap of 250, the
//! other 10 left for a restart (the buckets live in the process, and a restarted one starts
//! full). A push the budget cannot pay for now is not sent: the caller gets the time until
//! it can be, and tries again then with the SKU's newest quantity (the projector naks with
//! that delay, and newer events of the SKU supersede the held one), so a listing is never
//! more than one refill behind.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use onhand_common::Sku;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Per-SKU token buckets sized from a channel's daily revision cap.
#[derive(Debug)]
pub struct RevisionBudget {
    per_day: u32,
    burst: f64,
    reserve: f64,
    /// Time to earn one revision of the main bucket back.
    every: Duration,
    /// Time to earn one revision of the reserve back.
    reserve_every: Duration,
    listings: HashMap<Sku, Buckets>,
    /// Listings held after the last prune: the next one runs at twice as many.
    pruned_at: usize,
}

#[derive(Debug, Clone, Copy)]
struct Buckets {
    main: f64,
    reserve: f64,
    at: Instant,
}

impl RevisionBudget {
    /// A budget for `per_day` revisions per listing (at least 25: smaller caps leave no
    /// room to split).
    pub fn new(per_day: u32) -> Self {
        let per_day = per_day.max(25);
        let reserve = per_day / 25;
        let burst = per_day * 3 / 25;
        // Both bursts, the reserve's refill and a restart's margin come off the cap.
        let refill = per_day - burst - 3 * reserve;
        Self {
            per_day,
            burst: f64::from(burst),
            reserve: f64::from(reserve),
            every: DAY / refill,
            reserve_every: DAY / reserve,
            listings: HashMap::new(),
            pruned_at: 0,
        }
    }

    /// The channel's cap this budget keeps under.
    pub fn per_day(&self) -> u32 {
        self.per_day
    }

    /// Revisions a listing may make at once.
    pub fn burst(&self) -> u32 {
        self.burst as u32
    }

    /// Revisions kept for a push to 0 beyond the burst.
    pub fn reserve(&self) -> u32 {
        self.reserve as u32
    }

    /// The time it takes to earn one revision back (the longest a listing waits).
    pub fn every(&self) -> Duration {
        self.every
    }

    /// Whether the SKU's listing may be set to `quantity` now: `None`, or how long until it
    /// may.
    pub fn check(&self, sku: &Sku, quantity: i64, now: Instant) -> Option<Duration> {
        let b = self.buckets(sku, now);
        if b.main >= 1.0 || (quantity <= 0 && b.reserve >= 1.0) {
            return None;
        }
        let mut wait = self.every.mul_f64(1.0 - b.main);
        if quantity <= 0 {
            wait = wait.min(self.reserve_every.mul_f64(1.0 - b.reserve));
        }
        // At least a second: a wait shorter than that is spent on the round trip anyway.
        Some(wait.max(Duration::from_secs(1)))
    }

    /// The SKU's listing was set to `quantity`: one revision made.
    pub fn spend(&mut self, sku: &Sku, quantity: i64, now: Instant) {
        let mut b = self.buckets(sku, now);
        if b.main >= 1.0 || quantity > 0 {
            b.main = (b.main - 1.0).max(0.0);
        } else {
            b.reserve = (b.reserve - 1.0).max(0.0);
        }
        match self.listings.get_mut(sku) {
            Some(held) => *held = b,
            None => {
                self.listings.insert(sku.clone(), b);
                self.prune(now);
            }
        }
    }

    /// The SKU's buckets at `now` (a listing never seen has both full).
    fn buckets(&self, sku: &Sku, now: Instant) -> Buckets {
        match self.listings.get(sku) {
            None => Buckets {
                main: self.burst,
                reserve: self.reserve,
                at: now,
            },
            Some(b) => self.refilled(b, now),
        }
    }

    fn refilled(&self, b: &Buckets, now: Instant) -> Buckets {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        Buckets {
            main: (b.main + elapsed / self.every.as_secs_f64()).min(self.burst),
            reserve: (b.reserve + elapsed / self.reserve_every.as_secs_f64()).min(self.reserve),
            at: now,
        }
    }

    /// Forget listings whose buckets are full again (they are as if never seen), once the
    /// map has doubled since the last time: memory follows the listings revised recently,
    /// not every SKU ever pushed.
    fn prune(&mut self, now: Instant) {
        if self.listings.len() < 1024 || self.listings.len() < self.pruned_at * 2 {
            return;
        }
        let listings = std::mem::take(&mut self.listings);
        self.listings = listings
            .into_iter()
            .filter(|(_, b)| {
                let b = self.refilled(b, now);
                b.main < self.burst || b.reserve < self.reserve
            })
            .collect();
        self.pruned_at = self.listings.len();
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.listings.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sku(s: &str) -> Sku {
        Sku::parse(s).expect("sku")
    }

    #[test]
    fn ebays_cap_splits_into_a_burst_a_reserve_and_a_refill() {
        let b = RevisionBudget::new(250);
        assert_eq!((b.per_day(), b.burst(), b.reserve()), (250, 30, 10));
        // 190 a day.
        assert_eq!(b.every(), DAY / 190);
    }

    #[test]
    fn a_listing_spends_its_burst_then_waits_for_the_refill() {
        let mut b = RevisionBudget::new(250);
        let s = sku("HOT");
        let t0 = Instant::now();
        for n in 0..30 {
            assert_eq!(b.check(&s, 5, t0), None, "revision {n} of the burst");
            b.spend(&s, 5, t0);
        }
        let wait = b.check(&s, 5, t0).expect("held");
        assert_eq!(wait, b.every());
        // Earned back after one interval.
        assert_eq!(b.check(&s, 5, t0 + b.every()), None);
        // Half an interval in, half an interval to go.
        let half = b.check(&s, 5, t0 + b.every() / 2).expect("still held");
        assert!(
            half.abs_diff(b.every() / 2) < Duration::from_millis(1),
            "{half:?}"
        );
    }

    #[test]
    fn a_push_to_zero_uses_the_reserve_and_never_delays_the_others_more() {
        let mut b = RevisionBudget::new(250);
        let s = sku("SELLS-OUT");
        let t0 = Instant::now();
        for _ in 0..30 {
            b.spend(&s, 3, t0);
        }
        assert!(b.check(&s, 3, t0).is_some());
        for n in 0..10 {
            assert_eq!(b.check(&s, 0, t0), None, "zero push {n} from the reserve");
            b.spend(&s, 0, t0);
        }
        // Both empty: a zero waits for whichever refills first (the main bucket).
        assert_eq!(b.check(&s, 0, t0), Some(b.every()));
        // Spending the reserve did not push the next other revision further out.
        assert_eq!(b.check(&s, 3, t0), Some(b.every()));
        // A zero with revisions in the main bucket spends those, keeping the reserve.
        let later = t0 + b.every();
        b.spend(&s, 0, later);
        assert_eq!(b.check(&s, 0, later), Some(b.every()));
    }

    #[test]
    fn no_24_hour_window_holds_more_than_the_cap_whatever_the_pushes() {
        let mut b = RevisionBudget::new(250);
        let s = sku("ALWAYS-CHANGING");
        let t0 = Instant::now();
        // A push every 10 s for three days, every fifth to 0; count revisions made.
        let mut made = Vec::new();
        for step in 0..(3 * 24 * 360) {
            let now = t0 + Duration::from_secs(10 * step);
            let quantity = if step % 5 == 0 { 0 } else { 7 };
            if b.check(&s, quantity, now).is_none() {
                b.spend(&s, quantity, now);
                made.push(now);
            }
        }
        let most = made
            .iter()
            .map(|start| {
                made.iter()
                    .filter(|t| **t >= *start && **t < *start + DAY)
                    .count()
            })
            .max()
            .expect("revisions were made");
        assert!(most <= 240, "{most} revisions in one day");
        // And it does not starve the listing: the refills are used.
        assert!(
            made.len() >= 3 * 190,
            "{} revisions in three days",
            made.len()
        );
    }

    #[test]
    fn listings_whose_buckets_refilled_are_forgotten() {
        let mut b = RevisionBudget::new(250);
        let t0 = Instant::now();
        for i in 0..1024 {
            b.spend(&sku(&format!("OLD-{i}")), 1, t0);
        }
        // One revision back per listing after one interval: all full again.
        let later = t0 + b.every() * 2;
        for i in 0..1024 {
            b.spend(&sku(&format!("NEW-{i}")), 1, later);
        }
        assert_eq!(b.held(), 1024, "only the listings revised lately are kept");
        assert_eq!(b.check(&sku("OLD-1"), 1, later), None);
    }
}
