//! The model's parameters, the two presets cited in DESIGN.md §1, the sync modes, and
//! their validation. Every field says what it means and its unit; `docs/OVERSELL.md`
//! explains why each preset value was chosen.

use std::sync::Arc;

use serde::Serialize;

use crate::delays::DelayDistribution;

/// One sales channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelParams {
    /// A label for output only.
    pub name: String,
    /// Relative weight of the brand's demand that comes through this channel (weights are
    /// normalised over the channels).
    pub share: f64,
    /// Whether the channel's checkout reserves stock in the ledger when reservations are
    /// on (a storefront; marketplaces take orders without a reservation).
    pub reserves: bool,
}

/// A brand's catalogue, demand, replenishment and shoppers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Params {
    /// Number of SKUs in the catalogue.
    pub skus: usize,
    /// Popularity: the SKU of rank k draws demand in proportion to `1 / k^zipf_exponent`
    /// (0 = every SKU alike; 1 = classic Zipf).
    pub zipf_exponent: f64,
    /// Stock depth: mean units a SKU holds after a restock above its reorder point, drawn
    /// per SKU as `1 + Geometric` (at least 1 unit; most SKUs get a few). It is also the
    /// restock batch size.
    pub depth_mean: f64,
    /// The brand's demand in orders (one unit each) per hour over all channels, averaged
    /// over the day, when everything is in stock.
    pub sales_per_hour: f64,
    /// The channels, in order; demand is split by their shares.
    pub channels: Vec<ChannelParams>,
    /// Daily cycle of demand: the rate at hour h is `mean × (1 + a × cos(2π (h − peak) / 24))`
    /// with `a` this amplitude, in [0, 1).
    pub peak_amplitude: f64,
    /// Hour of the day (0–24) when demand peaks.
    pub peak_hour: f64,
    /// Hours from a restock order to the units being on hand.
    pub lead_time_hours: f64,
    /// Reorder point as hours of the SKU's mean demand: a SKU is reordered when its stock
    /// plus units on order falls to `floor(demand per hour × this)`. 0 = reorder only when
    /// sold out. Equal to the lead time = no safety stock.
    pub reorder_cover_hours: f64,
    /// Share of carts abandoned (the shopper never orders), in [0, 1).
    pub abandon_share: f64,
    /// Mean minutes from adding to the cart to placing the order (exponential).
    pub checkout_minutes: f64,
    /// Minutes an abandoned cart's reservation is held before it expires (DESIGN.md §4:
    /// a cart reservation lives 5 minutes).
    pub cart_ttl_minutes: f64,
    /// Units held back from every channel's displayed quantity.
    pub buffer: u32,
    /// Hours simulated before counting starts (stock and restocks settle).
    pub warmup_hours: f64,
    /// Hours counted.
    pub horizon_hours: f64,
}

/// How channels learn the availability.
#[derive(Debug, Clone, PartialEq)]
pub enum Sync {
    /// Every channel's displayed quantity is refreshed from the true availability every
    /// `interval_minutes` (0 = after every change, an instant sync). Between refreshes a
    /// channel only subtracts its own sales and reservations.
    Cron { interval_minutes: f64 },
    /// Every change of a SKU's availability reaches each channel after its own delay
    /// drawn from the distribution; a channel ignores an update older than one it has
    /// applied (the projector's version guard).
    Event { delays: Arc<DelayDistribution> },
}

/// A sync model, with or without reservations.
#[derive(Debug, Clone, PartialEq)]
pub struct Mode {
    pub sync: Sync,
    /// Whether channels marked `reserves` reserve a unit in the ledger at add-to-cart.
    pub reservations: bool,
}

impl Mode {
    /// A short label: `cron 15 min`, `event-driven`, `event-driven + reservations`.
    pub fn label(&self) -> String {
        let sync = match &self.sync {
            Sync::Cron { interval_minutes } => format!("cron {interval_minutes} min"),
            Sync::Event { .. } => "event-driven".to_owned(),
        };
        if self.reservations {
            format!("{sync} + reservations")
        } else {
            sync
        }
    }
}

/// The two scenarios DESIGN.md §1 cites for a 15-minute cron.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// 2 channels, 500 SKUs, 30 sales an hour.
    Small,
    /// 5 channels, 2,000 SKUs, 200 sales an hour.
    Large,
}

/// The cron interval of both cited scenarios.
pub const CITED_CRON_MINUTES: f64 = 15.0;

impl Preset {
    pub const ALL: [Preset; 2] = [Preset::Small, Preset::Large];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Small => "small",
            Preset::Large => "large",
        }
    }

    /// The scenario as DESIGN.md §1 states it, and the value it cites for a 15-minute cron.
    pub fn cited(self) -> &'static str {
        match self {
            Preset::Small => "2 channels, 500 SKUs, 30 sales/hour: about 12 oversells a week",
            Preset::Large => "5 channels, 2,000 SKUs, 200 sales/hour: about 9 oversells an hour",
        }
    }

    pub fn params(self) -> Params {
        let channel = |name: &str, share: f64, reserves: bool| ChannelParams {
            name: name.to_owned(),
            share,
            reserves,
        };
        let (skus, sales_per_hour, channels) = match self {
            Preset::Small => (
                500,
                30.0,
                vec![
                    channel("storefront", 0.6, true),
                    channel("amazon", 0.4, false),
                ],
            ),
            Preset::Large => (
                2000,
                200.0,
                vec![
                    channel("storefront", 0.35, true),
                    channel("woocommerce", 0.10, true),
                    channel("amazon", 0.30, false),
                    channel("ebay", 0.15, false),
                    channel("walmart", 0.10, false),
                ],
            ),
        };
        Params {
            skus,
            zipf_exponent: 1.0,
            depth_mean: 4.0,
            sales_per_hour,
            channels,
            peak_amplitude: 0.5,
            peak_hour: 20.0,
            lead_time_hours: 72.0,
            reorder_cover_hours: 72.0,
            abandon_share: 0.7,
            checkout_minutes: 4.0,
            cart_ttl_minutes: 5.0,
            buffer: 0,
            warmup_hours: 168.0,
            horizon_hours: 168.0,
        }
    }
}

/// A parameter outside what the model accepts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{name} = {value}: {expected}")]
pub struct ParamError {
    pub name: &'static str,
    pub value: String,
    pub expected: &'static str,
}

fn check(
    ok: bool,
    name: &'static str,
    value: impl ToString,
    expected: &'static str,
) -> Result<(), ParamError> {
    if ok {
        Ok(())
    } else {
        Err(ParamError {
            name,
            value: value.to_string(),
            expected,
        })
    }
}

fn in_range(v: f64, lo: f64, hi: f64) -> bool {
    v.is_finite() && v >= lo && v <= hi
}

/// Upper bounds that keep a run within memory and a sensible time.
const MAX_SKUS: usize = 1_000_000;
const MAX_HOURS: f64 = 24.0 * 366.0;

impl Params {
    pub fn validate(&self) -> Result<(), ParamError> {
        check(
            (1..=MAX_SKUS).contains(&self.skus),
            "skus",
            self.skus,
            "must be between 1 and 1,000,000",
        )?;
        check(
            in_range(self.zipf_exponent, 0.0, 10.0),
            "zipf_exponent",
            self.zipf_exponent,
            "must be between 0 and 10",
        )?;
        check(
            in_range(self.depth_mean, 1.0, 1e6),
            "depth_mean",
            self.depth_mean,
            "must be at least 1 unit",
        )?;
        check(
            in_range(self.sales_per_hour, f64::MIN_POSITIVE, 1e6),
            "sales_per_hour",
            self.sales_per_hour,
            "must be above 0 (and at most 1,000,000)",
        )?;
        check(
            (1..=64).contains(&self.channels.len()),
            "channels",
            self.channels.len(),
            "there must be between 1 and 64 channels",
        )?;
        for c in &self.channels {
            check(
                in_range(c.share, f64::MIN_POSITIVE, 1e6),
                "channel share",
                format!("{} for {}", c.share, c.name),
                "every channel's share must be above 0",
            )?;
        }
        check(
            in_range(self.peak_amplitude, 0.0, 0.999_999),
            "peak_amplitude",
            self.peak_amplitude,
            "must be at least 0 and below 1",
        )?;
        check(
            in_range(self.peak_hour, 0.0, 24.0),
            "peak_hour",
            self.peak_hour,
            "must be an hour between 0 and 24",
        )?;
        check(
            in_range(self.lead_time_hours, 0.0, MAX_HOURS),
            "lead_time_hours",
            self.lead_time_hours,
            "must be between 0 and a year",
        )?;
        check(
            in_range(self.reorder_cover_hours, 0.0, MAX_HOURS),
            "reorder_cover_hours",
            self.reorder_cover_hours,
            "must be between 0 and a year",
        )?;
        check(
            in_range(self.abandon_share, 0.0, 0.999_999),
            "abandon_share",
            self.abandon_share,
            "must be at least 0 and below 1",
        )?;
        check(
            in_range(self.checkout_minutes, 0.0, 24.0 * 60.0),
            "checkout_minutes",
            self.checkout_minutes,
            "must be between 0 and a day",
        )?;
        check(
            in_range(self.cart_ttl_minutes, 0.0, 24.0 * 60.0),
            "cart_ttl_minutes",
            self.cart_ttl_minutes,
            "must be between 0 and a day",
        )?;
        check(
            in_range(self.warmup_hours, 0.0, MAX_HOURS),
            "warmup_hours",
            self.warmup_hours,
            "must be between 0 and a year",
        )?;
        check(
            in_range(self.horizon_hours, 1.0 / 60.0, MAX_HOURS),
            "horizon_hours",
            self.horizon_hours,
            "must be between a minute and a year",
        )?;
        Ok(())
    }
}

impl Mode {
    pub fn validate(&self) -> Result<(), ParamError> {
        if let Sync::Cron { interval_minutes } = self.sync {
            check(
                in_range(interval_minutes, 0.0, 7.0 * 24.0 * 60.0),
                "interval_minutes",
                interval_minutes,
                "the cron interval must be between 0 and a week",
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_match_the_cited_scenarios() {
        let small = Preset::Small.params();
        assert_eq!(
            (small.channels.len(), small.skus, small.sales_per_hour),
            (2, 500, 30.0)
        );
        let large = Preset::Large.params();
        assert_eq!(
            (large.channels.len(), large.skus, large.sales_per_hour),
            (5, 2000, 200.0)
        );
        small.validate().expect("small preset is valid");
        large.validate().expect("large preset is valid");
    }

    #[test]
    fn invalid_parameters_are_named() {
        let mut p = Preset::Small.params();
        p.abandon_share = 1.0;
        let err = p.validate().expect_err("abandon_share 1 is refused");
        assert_eq!(err.name, "abandon_share");
        assert!(err.to_string().contains("below 1"), "{err}");

        let mut p = Preset::Small.params();
        p.channels[1].share = 0.0;
        assert_eq!(p.validate().map_err(|e| e.name), Err("channel share"));

        let mut p = Preset::Small.params();
        p.sales_per_hour = f64::NAN;
        assert_eq!(p.validate().map_err(|e| e.name), Err("sales_per_hour"));

        let mut p = Preset::Small.params();
        p.skus = 0;
        assert_eq!(p.validate().map_err(|e| e.name), Err("skus"));

        let mode = Mode {
            sync: Sync::Cron {
                interval_minutes: -1.0,
            },
            reservations: false,
        };
        assert_eq!(mode.validate().map_err(|e| e.name), Err("interval_minutes"));
    }
}
