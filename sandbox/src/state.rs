//! The sandbox's state per channel: the catalogue (items with ids and quantities), the log
//! of every accepted write, the knobs (rate limit, faults, delays), and a deterministic RNG
//! for fault injection.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::bucket::Bucket;

/// The emulated channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Shopify,
    Amazon,
    Ebay,
    Woocommerce,
    Bigcommerce,
    Webhook,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Self::Shopify,
        Self::Amazon,
        Self::Ebay,
        Self::Woocommerce,
        Self::Bigcommerce,
        Self::Webhook,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shopify => "shopify",
            Self::Amazon => "amazon",
            Self::Ebay => "ebay",
            Self::Woocommerce => "woocommerce",
            Self::Bigcommerce => "bigcommerce",
            Self::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Fault injection, as probabilities per request (or per item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// A 500/503 instead of handling the request.
    pub http_5xx: f64,
    /// A throttling response (the channel's own shape) although the bucket has room.
    pub http_429: f64,
    /// Hold the request for `timeout_ms`, then drop it unanswered (the client times out).
    pub timeout: f64,
    pub timeout_ms: u64,
    /// Per item of a batch: the channel's documented per-item error (Shopify stale value,
    /// eBay 25025, WooCommerce invalid id, ...).
    pub item_error: f64,
}

/// A channel's token bucket, in the channel's own units (requests, or Shopify cost points).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateKnob {
    pub capacity: f64,
    pub refill_per_sec: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// `None`: unlimited.
    pub rate: Option<RateKnob>,
    pub faults: Faults,
    /// Asynchronous channels (Amazon, BigCommerce): a write becomes visible this long after
    /// it was accepted.
    pub apply_delay_ms: u64,
    /// Reads return the previous value for this long after a change (caches).
    pub stale_read_ms: u64,
    /// Shopify: the HTTP status of a throttled response (200 or 429; both are seen).
    pub throttle_status: u16,
    /// eBay: revisions allowed per listing per day.
    pub revisions_per_day: u32,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            rate: None,
            faults: Faults::default(),
            apply_delay_ms: 0,
            stale_read_ms: 0,
            throttle_status: 429,
            revisions_per_day: 250,
        }
    }
}

/// One catalogue item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub sku: String,
    /// The channel's numeric id for it (inventory item id, product id, offer id, ...).
    pub id: u64,
    /// WooCommerce variations: the parent product's id.
    pub parent_id: Option<u64>,
    /// The value a read returns now (after delays and staleness).
    quantity: i64,
    /// Applied quantity changes not yet visible: (visible at, quantity).
    #[serde(skip)]
    scheduled: Vec<(Instant, i64)>,
    /// The value reads keep returning until `stale_until`.
    #[serde(skip)]
    stale: Option<(Instant, i64)>,
    /// eBay revisions today: (day number, count).
    #[serde(skip)]
    revisions: (i64, u32),
}

impl Item {
    /// The quantity a read shows at `now`.
    pub fn visible(&mut self, now: Instant) -> i64 {
        self.settle(now);
        match self.stale {
            Some((until, old)) if until > now => old,
            _ => self.quantity,
        }
    }

    /// The latest quantity, delays ignored (the truth the sandbox will converge to).
    pub fn latest(&self) -> i64 {
        self.scheduled.last().map_or(self.quantity, |s| s.1)
    }

    fn settle(&mut self, now: Instant) {
        while let Some(&(at, q)) = self.scheduled.first() {
            if at > now {
                break;
            }
            self.quantity = q;
            self.scheduled.remove(0);
        }
    }
}

/// One accepted write, as a benchmark or a trace test needs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriteRecord {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    pub sku: String,
    pub quantity: i64,
    pub traceparent: Option<String>,
}

#[derive(Debug)]
pub struct ChannelState {
    pub channel: Channel,
    pub items: BTreeMap<String, Item>,
    pub writes: Vec<WriteRecord>,
    pub knobs: Knobs,
    pub bucket: Option<Bucket>,
    /// Requests answered as throttled (bucket empty or injected), for tests and benchmarks.
    pub throttled: u64,
    /// Requests that reached the gate (every authenticated API call), for benchmarks.
    pub requests: u64,
    next_id: u64,
    rng: StdRng,
}

impl ChannelState {
    fn new(channel: Channel, seed: u64) -> Self {
        Self {
            channel,
            items: BTreeMap::new(),
            writes: Vec::new(),
            knobs: Knobs::default(),
            bucket: None,
            throttled: 0,
            requests: 0,
            next_id: 1000 + seed % 1000,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn set_knobs(&mut self, knobs: Knobs) {
        self.bucket = knobs
            .rate
            .map(|r| Bucket::new(r.capacity, r.refill_per_sec));
        self.knobs = knobs;
    }

    /// Add or reset an item; returns its id.
    pub fn seed_item(&mut self, sku: &str, quantity: i64, parent_id: Option<u64>) -> u64 {
        if let Some(item) = self.items.get_mut(sku) {
            item.quantity = quantity;
            item.scheduled.clear();
            item.stale = None;
            item.parent_id = parent_id.or(item.parent_id);
            return item.id;
        }
        self.next_id += 1;
        let id = self.next_id;
        self.items.insert(
            sku.to_owned(),
            Item {
                sku: sku.to_owned(),
                id,
                parent_id,
                quantity,
                scheduled: Vec::new(),
                stale: None,
                revisions: (0, 0),
            },
        );
        id
    }

    pub fn item_by_id(&self, id: u64) -> Option<&Item> {
        self.items.values().find(|i| i.id == id)
    }

    /// Apply an accepted write: visible after the apply delay, with stale reads for the
    /// stale window after that; logged with its receive time and traceparent.
    pub fn apply_write(&mut self, sku: &str, quantity: i64, traceparent: Option<&str>) {
        let arrival = Arrival::now();
        if let Some(item) = self.items.get_mut(sku) {
            set_quantity(item, quantity, &self.knobs, arrival.at);
        }
        log_write(&mut self.writes, sku, quantity, traceparent, arrival);
    }

    /// Apply a write to a SKU the catalogue has, with one lookup: `Err("unknown_sku")`
    /// when it has none, or the reason `refuse` gives (it may draw on the fault RNG).
    pub fn write_known(
        &mut self,
        sku: &str,
        quantity: i64,
        traceparent: Option<&str>,
        arrival: Arrival,
        refuse: impl FnOnce(&mut Faulty<'_>) -> Option<&'static str>,
    ) -> Result<(), &'static str> {
        let Some(item) = self.items.get_mut(sku) else {
            return Err("unknown_sku");
        };
        if let Some(why) = refuse(&mut Faulty(&mut self.rng)) {
            return Err(why);
        }
        set_quantity(item, quantity, &self.knobs, arrival.at);
        log_write(&mut self.writes, sku, quantity, traceparent, arrival);
        Ok(())
    }

    /// Count a revision of a listing today; false when the daily cap is reached (eBay).
    pub fn revise(&mut self, sku: &str) -> bool {
        let day = OffsetDateTime::now_utc()
            .unix_timestamp()
            .div_euclid(86_400);
        let cap = self.knobs.revisions_per_day;
        let Some(item) = self.items.get_mut(sku) else {
            return true;
        };
        if item.revisions.0 != day {
            item.revisions = (day, 0);
        }
        if item.revisions.1 >= cap {
            return false;
        }
        item.revisions.1 += 1;
        true
    }

    /// Draw against a fault probability.
    pub fn roll(&mut self, probability: f64) -> bool {
        Faulty(&mut self.rng).roll(probability)
    }

    /// Spend `cost` from the bucket; `Err(wait)` when it lacks room.
    pub fn take(&mut self, cost: f64) -> Result<(), Duration> {
        match &mut self.bucket {
            None => Ok(()),
            Some(bucket) => bucket.take(cost, Instant::now()),
        }
    }

    /// What the bucket has left, for the channel's rate headers or throttle status.
    pub fn bucket_status(&mut self) -> Option<(f64, f64, f64)> {
        let now = Instant::now();
        self.bucket
            .as_mut()
            .map(|b| (b.available(now), b.capacity(), b.refill_per_sec()))
    }
}

/// The whole sandbox: one state per channel.
#[derive(Debug)]
pub struct Sandbox {
    channels: BTreeMap<Channel, Mutex<ChannelState>>,
}

impl Sandbox {
    pub fn new(seed: u64) -> Self {
        Self {
            channels: Channel::ALL
                .into_iter()
                .enumerate()
                .map(|(i, c)| {
                    (
                        c,
                        Mutex::new(ChannelState::new(c, seed.wrapping_add(i as u64))),
                    )
                })
                .collect(),
        }
    }

    /// Lock one channel's state.
    pub fn channel(&self, channel: Channel) -> MutexGuard<'_, ChannelState> {
        self.channels
            .get(&channel)
            .expect("invariant: every channel has a state")
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// When a request arrived, taken once for all its writes: the clock a write's visibility
/// counts from, and the write log's `received_at`.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub at: Instant,
    pub received_at: OffsetDateTime,
}

impl Arrival {
    pub fn now() -> Self {
        Self {
            at: Instant::now(),
            received_at: OffsetDateTime::now_utc(),
        }
    }
}

/// A channel's fault RNG, lent to [`ChannelState::write_known`]'s check.
#[derive(Debug)]
pub struct Faulty<'a>(&'a mut StdRng);

impl Faulty<'_> {
    /// True with this probability (never at 0).
    pub fn roll(&mut self, probability: f64) -> bool {
        probability > 0.0 && self.0.random::<f64>() < probability
    }
}

/// The item shows `quantity` after the apply delay, and its previous value for the stale
/// window after that.
fn set_quantity(item: &mut Item, quantity: i64, knobs: &Knobs, now: Instant) {
    let delay = Duration::from_millis(knobs.apply_delay_ms);
    let stale = Duration::from_millis(knobs.stale_read_ms);
    let previous = item.visible(now);
    if delay.is_zero() {
        item.quantity = quantity;
        item.scheduled.clear();
    } else {
        item.scheduled.push((now + delay, quantity));
    }
    if !stale.is_zero() {
        item.stale = Some((now + delay + stale, previous));
    }
}

fn log_write(
    writes: &mut Vec<WriteRecord>,
    sku: &str,
    quantity: i64,
    traceparent: Option<&str>,
    arrival: Arrival,
) {
    writes.push(WriteRecord {
        seq: writes.len() as u64 + 1,
        received_at: arrival.received_at,
        sku: sku.to_owned(),
        quantity,
        traceparent: traceparent.map(str::to_owned),
    });
}
