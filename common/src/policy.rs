//! Channel policy: how much of a SKU's availability a channel may list.
//!
//! One pure function ([`channel_quantity`]) used by the projector, the reconciler and
//! the explain endpoint (DESIGN.md §3):
//!
//! ```text
//! raw = Σ available(w) for w in the channel's warehouses
//! q   = floor(raw × allocation_pct / 100) − buffer      (floor toward −∞)
//! q   = clamp(q, 0, max_listed)
//! q   = 0 when raw ≤ zero_below
//! ```
//!
//! Arithmetic is done in `i128`, so no input overflows, and the result is always in
//! `[0, max_listed]` (0 when `max_listed` is negative). Policies are read from the
//! environment by [`policies_from_env`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::stock::{StockState, saturate};
use crate::warehouse::{WarehouseError, validate_warehouse};

pub use crate::policy_env::{
    CHANNEL_ENV_PREFIX, CONNECTION_SETTINGS, POLICY_SETTINGS, policies_from_env,
    validate_channel_name,
};

/// One channel's listing policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelPolicy {
    /// Share of the available units offered to this channel, 0..=100.
    pub allocation_pct: u32,
    /// Units held back after allocation.
    pub buffer: i64,
    /// Upper bound on the listed quantity.
    pub max_listed: i64,
    /// List 0 when the raw availability is at or below this.
    pub zero_below: i64,
    /// Warehouses whose stock this channel sells; `None` = all.
    pub warehouses: Option<BTreeSet<String>>,
}

impl Default for ChannelPolicy {
    fn default() -> Self {
        ChannelPolicy {
            allocation_pct: 100,
            buffer: 0,
            max_listed: 1_000_000_000,
            zero_below: 0,
            warehouses: None,
        }
    }
}

/// Why a channel policy is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    /// `allocation_pct` above 100.
    #[error("allocation_pct must be between 0 and 100 (got {value})")]
    AllocationPct {
        /// The rejected value.
        value: u32,
    },
    /// `buffer`, `max_listed` or `zero_below` below zero.
    #[error("{field} must not be negative (got {value})")]
    Negative {
        /// Which field.
        field: &'static str,
        /// The rejected value.
        value: i64,
    },
    /// `warehouses` is present but empty.
    #[error("warehouses must not be empty (leave it unset for all warehouses)")]
    NoWarehouses,
    /// An entry of `warehouses` is not a valid warehouse id.
    #[error("warehouses contains an invalid id: {source}")]
    Warehouse {
        /// Why the id is invalid.
        #[source]
        source: WarehouseError,
    },
}

impl ChannelPolicy {
    /// Checks the ranges: pct 0..=100, buffer / max_listed / zero_below ≥ 0, warehouse
    /// ids valid and the set non-empty when given.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.allocation_pct > 100 {
            return Err(PolicyError::AllocationPct {
                value: self.allocation_pct,
            });
        }
        for (field, value) in [
            ("buffer", self.buffer),
            ("max_listed", self.max_listed),
            ("zero_below", self.zero_below),
        ] {
            if value < 0 {
                return Err(PolicyError::Negative { field, value });
            }
        }
        if let Some(set) = &self.warehouses {
            if set.is_empty() {
                return Err(PolicyError::NoWarehouses);
            }
            for id in set {
                validate_warehouse(id).map_err(|source| PolicyError::Warehouse { source })?;
            }
        }
        Ok(())
    }
}

/// Every step of [`channel_quantity`], for the explain endpoint and logs. Values beyond
/// the `i64` range (only possible with absurd inputs) are shown saturated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySteps {
    /// Available per warehouse that counts for this channel.
    pub warehouses: BTreeMap<String, i64>,
    /// Σ of those.
    pub raw: i64,
    /// The policy's allocation percentage.
    pub allocation_pct: u32,
    /// `floor(raw × allocation_pct / 100)`.
    pub allocated: i64,
    /// The policy's buffer.
    pub buffer: i64,
    /// `allocated − buffer`.
    pub after_buffer: i64,
    /// The policy's max_listed.
    pub max_listed: i64,
    /// `after_buffer` clamped to `[0, max_listed]`.
    pub clamped: i64,
    /// The policy's zero_below.
    pub zero_below: i64,
    /// Whether `raw ≤ zero_below` forced the result to 0.
    pub zero_below_applied: bool,
    /// The quantity to list.
    pub quantity: i64,
}

/// The quantity `policy` lists for `stock`; always in `[0, max(max_listed, 0)]`.
pub fn channel_quantity(stock: &StockState, policy: &ChannelPolicy) -> i64 {
    let raw = stock.available_in_wide(policy.warehouses.as_ref());
    Steps::compute(raw, policy).quantity
}

/// [`channel_quantity`] with every intermediate step.
pub fn explain(stock: &StockState, policy: &ChannelPolicy) -> PolicySteps {
    let set = policy.warehouses.as_ref();
    let raw = stock.available_in_wide(set);
    let steps = Steps::compute(raw, policy);
    PolicySteps {
        warehouses: stock
            .warehouses_in(set)
            .map(|(id, w)| (id.clone(), w.available()))
            .collect(),
        raw: saturate(raw),
        allocation_pct: policy.allocation_pct,
        allocated: saturate(steps.allocated),
        buffer: policy.buffer,
        after_buffer: saturate(steps.after_buffer),
        max_listed: policy.max_listed,
        clamped: steps.clamped,
        zero_below: policy.zero_below,
        zero_below_applied: steps.zero_below_applied,
        quantity: steps.quantity,
    }
}

/// The arithmetic, exact in `i128`.
struct Steps {
    allocated: i128,
    after_buffer: i128,
    clamped: i64,
    zero_below_applied: bool,
    quantity: i64,
}

impl Steps {
    fn compute(raw: i128, policy: &ChannelPolicy) -> Steps {
        // |raw| < 2^66 (a few warehouses of i64 triples) and pct < 2^32: no overflow.
        let allocated = (raw * i128::from(policy.allocation_pct)).div_euclid(100);
        let after_buffer = allocated - i128::from(policy.buffer);
        let max = policy.max_listed.max(0);
        let clamped = i64::try_from(after_buffer.clamp(0, i128::from(max)))
            .expect("invariant: clamped into [0, max_listed] which fits i64");
        let zero_below_applied = raw <= i128::from(policy.zero_below);
        Steps {
            allocated,
            after_buffer,
            clamped,
            zero_below_applied,
            quantity: if zero_below_applied { 0 } else { clamped },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stock::WarehouseStock;
    use proptest::prelude::*;

    fn stock(rows: &[(&str, i64, i64, i64)]) -> StockState {
        StockState {
            version: 1,
            warehouses: rows
                .iter()
                .map(|&(id, on_hand, reserved, pending)| {
                    (
                        id.to_owned(),
                        WarehouseStock {
                            on_hand,
                            reserved,
                            pending,
                        },
                    )
                })
                .collect(),
        }
    }

    /// The SKU from the DESIGN.md §3 example: ams-1 available 7, nyc-1 available 4.
    fn design_stock() -> StockState {
        stock(&[("ams-1", 10, 2, 1), ("nyc-1", 4, 0, 0)])
    }

    fn only(ids: &[&str]) -> Option<BTreeSet<String>> {
        Some(ids.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn default_lists_everything_available() {
        assert_eq!(
            channel_quantity(&design_stock(), &ChannelPolicy::default()),
            11
        );
    }

    #[test]
    fn worked_examples() {
        let s = design_stock();
        // 60% of 11 = 6.6 → 6, minus buffer 2 → 4.
        let p = ChannelPolicy {
            allocation_pct: 60,
            buffer: 2,
            ..ChannelPolicy::default()
        };
        assert_eq!(channel_quantity(&s, &p), 4);
        // Only ams-1 (7), capped at 5.
        let p = ChannelPolicy {
            max_listed: 5,
            warehouses: only(&["ams-1"]),
            ..ChannelPolicy::default()
        };
        assert_eq!(channel_quantity(&s, &p), 5);
        // Only nyc-1 (4), zero_below 4 → 0; zero_below 3 → 4.
        let mut p = ChannelPolicy {
            zero_below: 4,
            warehouses: only(&["nyc-1"]),
            ..ChannelPolicy::default()
        };
        assert_eq!(channel_quantity(&s, &p), 0);
        p.zero_below = 3;
        assert_eq!(channel_quantity(&s, &p), 4);
        // Buffer larger than the allocation never lists a negative number.
        let p = ChannelPolicy {
            buffer: 20,
            ..ChannelPolicy::default()
        };
        assert_eq!(channel_quantity(&s, &p), 0);
        // An oversold SKU (available −3) lists 0.
        let oversold = stock(&[("ams-1", 1, 0, 4)]);
        assert_eq!(channel_quantity(&oversold, &ChannelPolicy::default()), 0);
    }

    #[test]
    fn floor_is_toward_negative_infinity() {
        // raw −1 at 50%: floor(−0.5) = −1, not 0. Visible through explain.
        let steps = explain(
            &stock(&[("w", 0, 1, 0)]),
            &ChannelPolicy {
                allocation_pct: 50,
                zero_below: -10,
                ..ChannelPolicy::default()
            },
        );
        assert_eq!(steps.allocated, -1);
        assert_eq!(steps.quantity, 0);
    }

    #[test]
    fn explain_shows_each_step() {
        let p = ChannelPolicy {
            allocation_pct: 60,
            buffer: 2,
            max_listed: 3,
            zero_below: 1,
            warehouses: only(&["ams-1", "nyc-1", "lon-1"]),
        };
        let steps = explain(&design_stock(), &p);
        assert_eq!(
            steps,
            PolicySteps {
                warehouses: BTreeMap::from([("ams-1".to_owned(), 7), ("nyc-1".to_owned(), 4)]),
                raw: 11,
                allocation_pct: 60,
                allocated: 6,
                buffer: 2,
                after_buffer: 4,
                max_listed: 3,
                clamped: 3,
                zero_below: 1,
                zero_below_applied: false,
                quantity: 3,
            }
        );
        let json = serde_json::to_value(&steps).expect("json");
        assert_eq!(json["zero_below_applied"], false);
        assert_eq!(json["warehouses"]["ams-1"], 7);
    }

    #[test]
    fn validate_ranges() {
        assert_eq!(ChannelPolicy::default().validate(), Ok(()));
        let bad = [
            ChannelPolicy {
                allocation_pct: 101,
                ..ChannelPolicy::default()
            },
            ChannelPolicy {
                buffer: -1,
                ..ChannelPolicy::default()
            },
            ChannelPolicy {
                max_listed: -1,
                ..ChannelPolicy::default()
            },
            ChannelPolicy {
                zero_below: -1,
                ..ChannelPolicy::default()
            },
            ChannelPolicy {
                warehouses: only(&[]),
                ..ChannelPolicy::default()
            },
            ChannelPolicy {
                warehouses: only(&["ams 1"]),
                ..ChannelPolicy::default()
            },
        ];
        for p in bad {
            assert!(p.validate().is_err(), "{p:?}");
        }
        assert_eq!(
            PolicyError::Negative {
                field: "buffer",
                value: -1
            }
            .to_string(),
            "buffer must not be negative (got -1)"
        );
    }

    #[test]
    fn serde_defaults_and_rejects_unknown_fields() {
        let p: ChannelPolicy = serde_json::from_str(r#"{"buffer": 3}"#).expect("valid");
        assert_eq!(
            p,
            ChannelPolicy {
                buffer: 3,
                ..ChannelPolicy::default()
            }
        );
        assert!(serde_json::from_str::<ChannelPolicy>(r#"{"bufer": 3}"#).is_err());
    }

    fn any_stock() -> impl Strategy<Value = StockState> {
        let n = prop_oneof![any::<i64>(), -1_000i64..1_000];
        proptest::collection::btree_map(
            "[a-d]",
            (n.clone(), n.clone(), n).prop_map(|(on_hand, reserved, pending)| WarehouseStock {
                on_hand,
                reserved,
                pending,
            }),
            0..4,
        )
        .prop_map(|warehouses| StockState {
            version: 1,
            warehouses,
        })
    }

    fn any_policy() -> impl Strategy<Value = ChannelPolicy> {
        let n = prop_oneof![any::<i64>(), -100i64..1_000];
        (
            prop_oneof![0u32..=100, any::<u32>()],
            n.clone(),
            n.clone(),
            n,
            proptest::option::of(proptest::collection::btree_set("[a-e]", 0..4)),
        )
            .prop_map(
                |(allocation_pct, buffer, max_listed, zero_below, warehouses)| ChannelPolicy {
                    allocation_pct,
                    buffer,
                    max_listed,
                    zero_below,
                    warehouses,
                },
            )
    }

    proptest! {
        #[test]
        fn quantity_is_within_bounds(s in any_stock(), p in any_policy()) {
            let q = channel_quantity(&s, &p);
            prop_assert!(q >= 0);
            prop_assert!(q <= p.max_listed.max(0));
            prop_assert_eq!(explain(&s, &p).quantity, q);
        }

        #[test]
        fn quantity_is_monotonic_in_availability(
            s in any_stock(),
            p in any_policy(),
            extra in 0i64..1_000_000,
            id in "[a-d]",
        ) {
            let before = channel_quantity(&s, &p);
            let mut more = s.clone();
            let w = more.warehouses.entry(id).or_default();
            w.on_hand = w.on_hand.saturating_add(extra);
            prop_assert!(channel_quantity(&more, &p) >= before);
        }

        #[test]
        fn zero_below_wins(s in any_stock(), p in any_policy()) {
            if s.available_in_wide(p.warehouses.as_ref()) <= i128::from(p.zero_below) {
                prop_assert_eq!(channel_quantity(&s, &p), 0);
            }
        }

        #[test]
        fn full_allocation_without_limits_is_availability(avail in 1i64..1_000_000_000) {
            let s = stock(&[("w", avail, 0, 0)]);
            prop_assert_eq!(channel_quantity(&s, &ChannelPolicy::default()), avail);
        }
    }
}
