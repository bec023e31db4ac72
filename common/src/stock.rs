//! A SKU's stock state as carried in every event: per-warehouse `on_hand`, `reserved`
//! and `pending`, plus the ledger-assigned per-SKU version.
//!
//! Available is computed, never stored: `on_hand − reserved − pending`, and it may be
//! negative (an oversell that already happened). Arithmetic saturates at the `i64`
//! bounds; [`WarehouseStock::available_wide`] gives the exact value.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One warehouse's counts for one SKU. Unknown fields (e.g. `available` in API
/// responses) are ignored on read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarehouseStock {
    /// Units physically in the warehouse.
    pub on_hand: i64,
    /// Units held by active reservations (carts, checkouts).
    pub reserved: i64,
    /// Units sold but not yet shipped.
    pub pending: i64,
}

impl WarehouseStock {
    /// `on_hand − reserved − pending`, saturating at the `i64` bounds. May be negative.
    pub fn available(&self) -> i64 {
        saturate(self.available_wide())
    }

    /// `on_hand − reserved − pending`, exact.
    pub fn available_wide(&self) -> i128 {
        i128::from(self.on_hand) - i128::from(self.reserved) - i128::from(self.pending)
    }
}

/// A SKU's whole state after an event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockState {
    /// Per-SKU version, strictly increasing, assigned by the ledger (> 0 in events).
    pub version: i64,
    /// Counts per warehouse id.
    pub warehouses: BTreeMap<String, WarehouseStock>,
}

impl StockState {
    /// Available summed over all warehouses (saturating).
    pub fn available_total(&self) -> i64 {
        self.available_in(None)
    }

    /// Available summed over the warehouses in `set` (`None` = all), saturating.
    /// Warehouses in `set` that this SKU has no row for contribute nothing.
    pub fn available_in(&self, set: Option<&BTreeSet<String>>) -> i64 {
        saturate(self.available_in_wide(set))
    }

    /// Exact version of [`StockState::available_in`].
    pub fn available_in_wide(&self, set: Option<&BTreeSet<String>>) -> i128 {
        self.warehouses_in(set)
            .map(|(_, w)| w.available_wide())
            .sum()
    }

    /// The warehouses of this state that are in `set` (`None` = all), in id order.
    pub fn warehouses_in<'a>(
        &'a self,
        set: Option<&'a BTreeSet<String>>,
    ) -> impl Iterator<Item = (&'a String, &'a WarehouseStock)> + 'a {
        self.warehouses
            .iter()
            .filter(move |(id, _)| set.is_none_or(|s| s.contains(*id)))
    }
}

/// Clamps an `i128` into the `i64` range.
pub(crate) fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(on_hand: i64, reserved: i64, pending: i64) -> WarehouseStock {
        WarehouseStock {
            on_hand,
            reserved,
            pending,
        }
    }

    fn design_example() -> StockState {
        StockState {
            version: 42,
            warehouses: BTreeMap::from([
                ("ams-1".to_owned(), ws(10, 2, 1)),
                ("nyc-1".to_owned(), ws(4, 0, 0)),
            ]),
        }
    }

    #[test]
    fn available_per_warehouse_and_total() {
        let s = design_example();
        assert_eq!(s.warehouses["ams-1"].available(), 7);
        assert_eq!(s.available_total(), 11);
        let ams = BTreeSet::from(["ams-1".to_owned(), "unknown".to_owned()]);
        assert_eq!(s.available_in(Some(&ams)), 7);
        assert_eq!(s.available_in(Some(&BTreeSet::new())), 0);
    }

    #[test]
    fn available_may_be_negative_and_saturates() {
        assert_eq!(ws(1, 0, 3).available(), -2);
        assert_eq!(ws(i64::MIN, i64::MAX, i64::MAX).available(), i64::MIN);
        assert_eq!(ws(i64::MAX, i64::MIN, 0).available(), i64::MAX);
        assert_eq!(
            ws(i64::MAX, i64::MIN, 0).available_wide(),
            i128::from(i64::MAX) - i128::from(i64::MIN)
        );
    }

    #[test]
    fn reads_ignoring_unknown_fields() {
        let s: StockState = serde_json::from_str(
            r#"{"version": 3, "extra": true,
                "warehouses": {"ams-1": {"on_hand": 5, "reserved": 1, "pending": 0, "available": 4}}}"#,
        )
        .expect("valid stock");
        assert_eq!(s.version, 3);
        assert_eq!(s.warehouses["ams-1"], ws(5, 1, 0));
    }
}
