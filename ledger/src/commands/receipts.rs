//! Receipts (stock arrives) and adjustments (cycle counts, damage, corrections).

use onhand_common::{EventType, Sku};
use serde::Deserialize;
use serde_json::json;
use sqlx::{Postgres, Transaction};

use super::{Applied, Outcome, Settings, fields, stock_json};
use crate::error::LedgerError;
use crate::txn::{self, EventDraft};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiptBody {
    sku: String,
    warehouse: String,
    qty: i64,
    reference: Option<String>,
}

/// `POST /v1/receipts`: on hand grows by `qty`.
#[derive(Debug)]
pub struct Receive {
    sku: Sku,
    warehouse: String,
    qty: i64,
}

impl Receive {
    pub fn parse(body: &[u8], settings: &Settings) -> Result<Self, LedgerError> {
        let body: ReceiptBody = fields::parse_body(body)?;
        if let Some(reference) = &body.reference {
            fields::text_id("reference", reference, 256)?;
        }
        Ok(Self {
            sku: fields::sku("sku", &body.sku)?,
            warehouse: fields::warehouse("warehouse", &body.warehouse, &settings.warehouses)?,
            qty: fields::qty("qty", body.qty)?,
        })
    }

    pub(crate) async fn apply(
        self,
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<Applied, LedgerError> {
        let mut book = txn::lock_sku(tx, &self.sku, true)
            .await?
            .expect("invariant: lock_sku with create returns a book");
        let stock = book.warehouse_mut(&self.warehouse);
        stock.on_hand = stock.on_hand.checked_add(self.qty).ok_or_else(|| {
            LedgerError::invalid("qty", "on hand would exceed the largest storable quantity")
        })?;
        book.emit(EventDraft {
            event_type: EventType::Received,
            warehouse: self.warehouse,
            qty: self.qty,
            order_id: None,
            reservation_id: None,
            reason: None,
        });
        let body = json!({ "stock": stock_json(&book) });
        txn::flush(tx, book).await?;
        Ok(Applied {
            outcome: Outcome { status: 200, body },
            oversells: 0,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdjustmentBody {
    sku: String,
    warehouse: String,
    delta: Option<i64>,
    on_hand: Option<i64>,
    reason: String,
}

#[derive(Debug)]
enum Change {
    Delta(i64),
    SetOnHand(i64),
}

/// `POST /v1/adjustments`: on hand changes by `delta`, or is set to a counted `on_hand`.
#[derive(Debug)]
pub struct Adjust {
    sku: Sku,
    warehouse: String,
    change: Change,
    reason: String,
}

impl Adjust {
    pub fn parse(body: &[u8], settings: &Settings) -> Result<Self, LedgerError> {
        let body: AdjustmentBody = fields::parse_body(body)?;
        let change = match (body.delta, body.on_hand) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(LedgerError::invalid(
                    "delta",
                    "give exactly one of delta (a signed change) or on_hand (a counted quantity)",
                ));
            }
            (Some(delta), None) => {
                // (Not `delta.abs()`: it overflows on i64::MIN.)
                if delta == 0 || !(-fields::MAX_QTY..=fields::MAX_QTY).contains(&delta) {
                    return Err(LedgerError::invalid(
                        "delta",
                        format!(
                            "delta must be non-zero and at most {} in size",
                            fields::MAX_QTY
                        ),
                    ));
                }
                Change::Delta(delta)
            }
            (None, Some(on_hand)) => {
                if !(0..=fields::MAX_QTY).contains(&on_hand) {
                    return Err(LedgerError::invalid(
                        "on_hand",
                        format!("on_hand must be between 0 and {}", fields::MAX_QTY),
                    ));
                }
                Change::SetOnHand(on_hand)
            }
        };
        Ok(Self {
            sku: fields::sku("sku", &body.sku)?,
            warehouse: fields::warehouse("warehouse", &body.warehouse, &settings.warehouses)?,
            change,
            reason: fields::name("reason", &body.reason)?,
        })
    }

    pub(crate) async fn apply(
        self,
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<Applied, LedgerError> {
        let mut book = txn::lock_sku(tx, &self.sku, true)
            .await?
            .expect("invariant: lock_sku with create returns a book");
        let current = book
            .warehouses
            .get(&self.warehouse)
            .map_or(0, |s| s.on_hand);
        let delta = match self.change {
            Change::Delta(delta) => delta,
            Change::SetOnHand(on_hand) => on_hand - current,
        };
        if delta == 0 {
            // A count that matches the books changes nothing and emits nothing.
            let body = json!({ "stock": stock_json(&book) });
            return Ok(Applied {
                outcome: Outcome { status: 200, body },
                oversells: 0,
            });
        }
        let on_hand = current + delta;
        if on_hand < 0 {
            return Err(LedgerError::invalid(
                "delta",
                format!("on hand is {current}; a delta of {delta} would make it negative"),
            ));
        }
        if on_hand > fields::MAX_QTY {
            return Err(LedgerError::invalid(
                "delta",
                format!("on hand would exceed {}", fields::MAX_QTY),
            ));
        }
        book.warehouse_mut(&self.warehouse).on_hand = on_hand;
        book.emit(EventDraft {
            event_type: EventType::Adjusted,
            warehouse: self.warehouse,
            qty: delta,
            order_id: None,
            reservation_id: None,
            reason: Some(self.reason),
        });
        let body = json!({ "stock": stock_json(&book) });
        txn::flush(tx, book).await?;
        Ok(Applied {
            outcome: Outcome { status: 200, body },
            oversells: 0,
        })
    }
}
