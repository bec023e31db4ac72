//! One run of the discrete-event simulation: a brand's shoppers on several channels, its
//! ledger (the true availability) and what each channel displays, under one sync mode.
//!
//! Time is in seconds from the start of the run. Events are kept in a min-heap ordered by
//! time, then by the order they were scheduled, so a run is a pure function of its
//! parameters, its mode and its seed.
//!
//! The model, step by step (docs/OVERSELL.md says why):
//! - A shopper arrives on a channel (Poisson, with the channel's share of the demand and a
//!   daily cycle; thinning), picks a SKU by popularity, and either will order or will
//!   abandon the cart. A channel that displays 0 turns the shopper away (a lost sale).
//! - Without a reservation, an ordering shopper places the order after the checkout time;
//!   the channel accepts it if it still displays at least one unit and subtracts it from
//!   its own displayed quantity. If the ledger has a unit available it is sold, otherwise
//!   the accepted order is an **oversell** (counted, cancelled and refunded: stock is not
//!   touched).
//! - With reservations, a shopper on a reserving channel reserves the unit in the ledger at
//!   add-to-cart (refused when none is available: no oversell, a lost sale). The order
//!   commits the reservation; an abandoned cart's reservation expires after the cart TTL.
//! - Restocks: a SKU whose stock plus units on order falls to its reorder point is
//!   reordered up to reorder point + depth; the units arrive after the lead time.
//! - A channel's displayed quantity is `max(0, available − buffer)` as of the last update
//!   it received: at cron ticks, or per change after a propagation delay.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::f64::consts::TAU;

use serde::Serialize;

use crate::params::{Mode, ParamError, Params, Sync};
use crate::rng::{Rng, Weighted, zipf_weights};

/// What one run counted. Rates are over `hours`, the counted period after the warm-up;
/// the `total_*` fields cover the whole run and exist to check conservation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunStats {
    pub seed: u64,
    /// Hours counted.
    pub hours: f64,
    /// Carts started (every arriving shopper who saw the SKU displayed, and those who did not).
    pub carts: u64,
    /// Shoppers who meant to order (carts not abandoned).
    pub buyers: u64,
    /// Units sold.
    pub sales: u64,
    /// Orders a channel accepted for a unit the ledger no longer had.
    pub oversells: u64,
    /// Buyers turned away because the channel displayed 0.
    pub shown_sold_out: u64,
    /// Buyers whose reservation the ledger refused (nothing available).
    pub refused_by_ledger: u64,
    /// Times a SKU's availability fell to 0 (a sale or a reservation took the last unit).
    pub sell_outs: u64,
    /// Units on hand at the start.
    pub total_initial_units: u64,
    /// Units received by restocks over the whole run.
    pub total_restocked_units: u64,
    /// Units sold over the whole run.
    pub total_sold_units: u64,
    /// Units on hand at the end.
    pub total_final_units: u64,
}

impl RunStats {
    pub fn oversells_per_hour(&self) -> f64 {
        self.oversells as f64 / self.hours
    }

    pub fn oversells_per_week(&self) -> f64 {
        self.oversells_per_hour() * 168.0
    }

    pub fn sell_outs_per_hour(&self) -> f64 {
        self.sell_outs as f64 / self.hours
    }

    pub fn sales_per_hour(&self) -> f64 {
        self.sales as f64 / self.hours
    }

    /// Share of buyers who got the unit.
    pub fn fill_rate(&self) -> f64 {
        if self.buyers == 0 {
            1.0
        } else {
            self.sales as f64 / self.buyers as f64
        }
    }
}

/// Runs the simulation once.
pub fn run(params: &Params, mode: &Mode, seed: u64) -> Result<RunStats, ParamError> {
    params.validate()?;
    mode.validate()?;
    let mut sim = Sim::new(params, mode, seed);
    sim.run();
    Ok(sim.finish())
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Arrival {
        channel: usize,
    },
    Order {
        channel: usize,
        sku: usize,
        held: bool,
    },
    CartExpires {
        sku: usize,
    },
    Restock {
        sku: usize,
        qty: i64,
    },
    Update {
        channel: usize,
        sku: usize,
        version: u64,
        available: i64,
    },
}

#[derive(Debug)]
struct Scheduled {
    at: f64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed: the earliest event (then the first scheduled) is the heap's greatest.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .at
            .total_cmp(&self.at)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

#[derive(Debug, Clone)]
struct Sku {
    on_hand: i64,
    reserved: i64,
    on_order: i64,
    reorder_point: i64,
    depth: i64,
    /// Bumped on every change of availability (the ledger's per-SKU version).
    version: u64,
    /// The last cron tick whose refresh this SKU's channels have received.
    cron_tick: u64,
}

impl Sku {
    fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }
}

/// Independent random streams.
const STREAM_DEPTHS: u64 = 1;
const STREAM_DELAYS: u64 = 2;
const STREAM_SHOPPERS: u64 = 100;

struct Sim<'a> {
    p: &'a Params,
    mode: &'a Mode,
    seed: u64,
    now: f64,
    end: f64,
    warmup: f64,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    skus: Vec<Sku>,
    /// `displayed[channel * skus + sku]`
    displayed: Vec<i64>,
    /// Event-driven: the version each channel last applied, same layout.
    applied: Vec<u64>,
    popularity: Weighted,
    /// Per channel: the peak shopper arrival rate (per second), for thinning.
    peak_rate: Vec<f64>,
    shoppers: Vec<Rng>,
    delays_rng: Rng,
    stats: RunStats,
}

impl<'a> Sim<'a> {
    fn new(p: &'a Params, mode: &'a Mode, seed: u64) -> Self {
        let n = p.skus;
        let weights = zipf_weights(n, p.zipf_exponent);
        let mut depths = Rng::new(seed, STREAM_DEPTHS);
        let skus = weights
            .iter()
            .map(|w| {
                let demand_per_hour = w * p.sales_per_hour;
                let reorder_point = (demand_per_hour * p.reorder_cover_hours).floor() as i64;
                let depth = depths.geometric_from_one(p.depth_mean) as i64;
                Sku {
                    on_hand: reorder_point + depth,
                    reserved: 0,
                    on_order: 0,
                    reorder_point,
                    depth,
                    version: 0,
                    cron_tick: 0,
                }
            })
            .collect::<Vec<_>>();
        let channels = p.channels.len();
        let mut displayed = Vec::with_capacity(channels * n);
        for _ in 0..channels {
            displayed.extend(
                skus.iter()
                    .map(|s| (s.available() - i64::from(p.buffer)).max(0)),
            );
        }
        let total_share: f64 = p.channels.iter().map(|c| c.share).sum();
        let carts_per_hour = p.sales_per_hour / (1.0 - p.abandon_share);
        let peak_rate = p
            .channels
            .iter()
            .map(|c| carts_per_hour * c.share / total_share * (1.0 + p.peak_amplitude) / 3600.0)
            .collect();
        let shoppers = (0..channels)
            .map(|c| Rng::new(seed, STREAM_SHOPPERS + c as u64))
            .collect();
        let stats = RunStats {
            seed,
            hours: p.horizon_hours,
            total_initial_units: skus.iter().map(|s| s.on_hand as u64).sum(),
            ..RunStats::default()
        };
        let warmup = p.warmup_hours * 3600.0;
        Sim {
            p,
            mode,
            seed,
            now: 0.0,
            end: warmup + p.horizon_hours * 3600.0,
            warmup,
            seq: 0,
            queue: BinaryHeap::new(),
            skus,
            applied: vec![0; displayed.len()],
            displayed,
            popularity: Weighted::new(&weights),
            peak_rate,
            shoppers,
            delays_rng: Rng::new(seed, STREAM_DELAYS),
            stats,
        }
    }

    fn schedule(&mut self, at: f64, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            event,
        });
    }

    fn counting(&self) -> bool {
        self.now >= self.warmup
    }

    fn run(&mut self) {
        for channel in 0..self.p.channels.len() {
            let first = self.shoppers[channel].exponential(1.0 / self.peak_rate[channel]);
            self.schedule(first, Event::Arrival { channel });
        }
        while let Some(next) = self.queue.pop() {
            if next.at >= self.end {
                break;
            }
            self.now = next.at;
            match next.event {
                Event::Arrival { channel } => self.arrival(channel),
                Event::Order { channel, sku, held } => self.order(channel, sku, held),
                Event::CartExpires { sku } => {
                    self.refresh(sku);
                    self.skus[sku].reserved -= 1;
                    self.changed(sku);
                }
                Event::Restock { sku, qty } => {
                    self.refresh(sku);
                    let s = &mut self.skus[sku];
                    s.on_hand += qty;
                    s.on_order -= qty;
                    self.stats.total_restocked_units += qty as u64;
                    self.changed(sku);
                }
                Event::Update {
                    channel,
                    sku,
                    version,
                    available,
                } => self.apply(channel, sku, version, available),
            }
        }
    }

    fn finish(mut self) -> RunStats {
        self.stats.total_final_units = self.skus.iter().map(|s| s.on_hand as u64).sum();
        debug_assert!(self.seed == self.stats.seed);
        self.stats
    }

    fn idx(&self, channel: usize, sku: usize) -> usize {
        channel * self.p.skus + sku
    }

    /// A shopper arrives on `channel` (a candidate of the thinned Poisson process).
    fn arrival(&mut self, channel: usize) {
        let p = self.p;
        let rng = &mut self.shoppers[channel];
        let next = self.now + rng.exponential(1.0 / self.peak_rate[channel]);
        let hour = (self.now / 3600.0) % 24.0;
        let intensity = (1.0 + p.peak_amplitude * (TAU * (hour - p.peak_hour) / 24.0).cos())
            / (1.0 + p.peak_amplitude);
        let accepted = rng.chance(intensity);
        let shopper = accepted.then(|| {
            let sku = self.popularity.sample(rng);
            let abandons = rng.chance(p.abandon_share);
            let checkout = rng.exponential(p.checkout_minutes * 60.0);
            (sku, abandons, checkout)
        });
        self.schedule(next, Event::Arrival { channel });
        if let Some((sku, abandons, checkout)) = shopper {
            self.cart(channel, sku, abandons, checkout);
        }
    }

    fn cart(&mut self, channel: usize, sku: usize, abandons: bool, checkout: f64) {
        self.refresh(sku);
        let counting = self.counting();
        if counting {
            self.stats.carts += 1;
            self.stats.buyers += u64::from(!abandons);
        }
        let idx = self.idx(channel, sku);
        if self.displayed[idx] < 1 {
            if counting && !abandons {
                self.stats.shown_sold_out += 1;
            }
            return;
        }
        if self.mode.reservations && self.p.channels[channel].reserves {
            if self.skus[sku].available() < 1 {
                if counting && !abandons {
                    self.stats.refused_by_ledger += 1;
                }
                return;
            }
            self.skus[sku].reserved += 1;
            self.displayed[idx] -= 1;
            self.count_sell_out(sku);
            self.changed(sku);
            if abandons {
                let at = self.now + self.p.cart_ttl_minutes * 60.0;
                self.schedule(at, Event::CartExpires { sku });
            } else {
                self.schedule(
                    self.now + checkout,
                    Event::Order {
                        channel,
                        sku,
                        held: true,
                    },
                );
            }
        } else if !abandons {
            self.schedule(
                self.now + checkout,
                Event::Order {
                    channel,
                    sku,
                    held: false,
                },
            );
        }
    }

    fn order(&mut self, channel: usize, sku: usize, held: bool) {
        self.refresh(sku);
        let counting = self.counting();
        if held {
            // The reservation already took the unit out of the availability.
            let s = &mut self.skus[sku];
            s.reserved -= 1;
            s.on_hand -= 1;
            self.sold(sku);
            return;
        }
        let idx = self.idx(channel, sku);
        if self.displayed[idx] < 1 {
            if counting {
                self.stats.shown_sold_out += 1;
            }
            return;
        }
        self.displayed[idx] -= 1;
        if self.skus[sku].available() >= 1 {
            self.skus[sku].on_hand -= 1;
            self.count_sell_out(sku);
            self.sold(sku);
            self.changed(sku);
        } else if counting {
            self.stats.oversells += 1;
        }
    }

    fn count_sell_out(&mut self, sku: usize) {
        if self.counting() && self.skus[sku].available() == 0 {
            self.stats.sell_outs += 1;
        }
    }

    /// Book a unit sold (already taken off `on_hand`) and reorder if due.
    fn sold(&mut self, sku: usize) {
        self.stats.total_sold_units += 1;
        if self.counting() {
            self.stats.sales += 1;
        }
        let s = &mut self.skus[sku];
        debug_assert!(s.available() >= 0, "invariant: availability never below 0");
        let position = s.on_hand + s.on_order;
        if position <= s.reorder_point {
            let qty = s.reorder_point + s.depth - position;
            s.on_order += qty;
            let at = self.now + self.p.lead_time_hours * 3600.0;
            self.schedule(at, Event::Restock { sku, qty });
        }
    }

    /// Cron: before anything touches `sku`, deliver the refreshes of the ticks that passed
    /// since its channels were last refreshed. The availability has not changed since the
    /// last event on this SKU, so it is the value every tick in between saw.
    fn refresh(&mut self, sku: usize) {
        let Sync::Cron { interval_minutes } = self.mode.sync else {
            return;
        };
        if interval_minutes <= 0.0 {
            return; // instant: `changed` refreshes
        }
        let tick = (self.now / (interval_minutes * 60.0)).floor() as u64;
        if tick > self.skus[sku].cron_tick {
            self.skus[sku].cron_tick = tick;
            self.show_everywhere(sku);
        }
    }

    fn show_everywhere(&mut self, sku: usize) {
        let shown = (self.skus[sku].available() - i64::from(self.p.buffer)).max(0);
        for channel in 0..self.p.channels.len() {
            let idx = self.idx(channel, sku);
            self.displayed[idx] = shown;
        }
    }

    /// The SKU's availability changed: the ledger bumps its version and the sync model
    /// carries it to the channels.
    fn changed(&mut self, sku: usize) {
        self.skus[sku].version += 1;
        match &self.mode.sync {
            Sync::Cron { interval_minutes } => {
                if *interval_minutes <= 0.0 {
                    self.show_everywhere(sku);
                }
            }
            Sync::Event { delays } => {
                let version = self.skus[sku].version;
                let available = self.skus[sku].available();
                for channel in 0..self.p.channels.len() {
                    let delay = delays.sample_secs(&mut self.delays_rng);
                    if delay <= 0.0 {
                        self.apply(channel, sku, version, available);
                    } else {
                        self.schedule(
                            self.now + delay,
                            Event::Update {
                                channel,
                                sku,
                                version,
                                available,
                            },
                        );
                    }
                }
            }
        }
    }

    /// Event-driven: a channel receives a SKU's availability; older versions are ignored.
    fn apply(&mut self, channel: usize, sku: usize, version: u64, available: i64) {
        let idx = self.idx(channel, sku);
        if version > self.applied[idx] {
            self.applied[idx] = version;
            self.displayed[idx] = (available - i64::from(self.p.buffer)).max(0);
        }
    }
}
