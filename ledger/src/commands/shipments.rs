//! Shipments: pending stock leaves the warehouse (pending and on hand both drop).

use onhand_common::{EventType, Sku};
use serde::Deserialize;
use serde_json::json;
use sqlx::{Postgres, Transaction};

use super::orders::{flush_all, lock_all, lock_open_order, order_lines};
use super::{Applied, Outcome, Settings, fields};
use crate::error::LedgerError;
use crate::txn::EventDraft;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShipmentBody {
    order_id: String,
    lines: Vec<ShipmentLineBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShipmentLineBody {
    sku: String,
    warehouse: String,
    qty: i64,
}

#[derive(Debug)]
struct ShipmentLine {
    sku: Sku,
    warehouse: String,
    qty: i64,
}

/// `POST /v1/shipments`.
#[derive(Debug)]
pub struct Ship {
    order_id: String,
    lines: Vec<ShipmentLine>,
}

impl Ship {
    pub fn parse(body: &[u8], settings: &Settings) -> Result<Self, LedgerError> {
        let body: ShipmentBody = fields::parse_body(body)?;
        fields::lines("lines", &body.lines)?;
        let mut lines = Vec::with_capacity(body.lines.len());
        for (i, line) in body.lines.into_iter().enumerate() {
            let at = |f: &str| format!("lines[{i}].{f}");
            lines.push(ShipmentLine {
                sku: fields::sku(&at("sku"), &line.sku)?,
                warehouse: fields::warehouse(
                    &at("warehouse"),
                    &line.warehouse,
                    &settings.warehouses,
                )?,
                qty: fields::qty(&at("qty"), line.qty)?,
            });
        }
        Ok(Self {
            order_id: fields::text_id("order_id", &body.order_id, 128)?,
            lines,
        })
    }

    pub(crate) async fn apply(
        self,
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<Applied, LedgerError> {
        lock_open_order(tx, &self.order_id).await?;
        let mut stored = order_lines(tx, &self.order_id).await?;
        // Allocate each shipped line to the order's unshipped lines of the same SKU and warehouse.
        let mut shipped_per_line = vec![0i64; stored.len()];
        for (i, line) in self.lines.iter().enumerate() {
            let mut left = line.qty;
            for (j, s) in stored.iter_mut().enumerate() {
                if s.sku != line.sku.as_str() || s.warehouse != line.warehouse {
                    continue;
                }
                let open = s.qty - s.shipped - s.released;
                let take = open.min(left);
                if take > 0 {
                    s.shipped += take;
                    shipped_per_line[j] += take;
                    left -= take;
                }
            }
            if left > 0 {
                let unshipped = line.qty - left;
                return Err(LedgerError::invalid(
                    format!("lines[{i}].qty"),
                    format!(
                        "order {:?} has {unshipped} unshipped of sku {:?} in warehouse {:?}; cannot ship {}",
                        self.order_id,
                        line.sku.as_str(),
                        line.warehouse,
                        line.qty
                    ),
                ));
            }
        }
        let mut books = lock_all(tx, self.lines.iter().map(|l| &l.sku)).await?;
        for line in &self.lines {
            let book = books
                .get_mut(line.sku.as_str())
                .expect("invariant: the order holds this sku, so its stock exists");
            let stock = book.warehouse_mut(&line.warehouse);
            stock.pending -= line.qty;
            stock.on_hand -= line.qty;
            book.emit(EventDraft {
                event_type: EventType::Shipped,
                warehouse: line.warehouse.clone(),
                qty: line.qty,
                order_id: Some(self.order_id.clone()),
                reservation_id: None,
                reason: None,
            });
        }
        let stock = flush_all(tx, books).await?;
        let (nos, shipped): (Vec<i32>, Vec<i64>) = stored
            .iter()
            .zip(&shipped_per_line)
            .filter(|(_, n)| **n > 0)
            .map(|(s, _)| (s.line_no, s.shipped))
            .unzip();
        sqlx::query(
            "UPDATE order_lines l SET shipped = t.shipped
               FROM UNNEST($2::int[], $3::bigint[]) AS t(n, shipped)
              WHERE l.order_id = $1 AND l.line_no = t.n",
        )
        .bind(&self.order_id)
        .bind(&nos)
        .bind(&shipped)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE reservations SET state = 'shipped', updated_at = now()
              WHERE id IN (SELECT reservation_id FROM order_lines
                            WHERE order_id = $1 AND shipped = qty AND reservation_id IS NOT NULL)
                AND state = 'committed'",
        )
        .bind(&self.order_id)
        .execute(&mut **tx)
        .await?;
        let complete = stored.iter().all(|s| s.shipped + s.released == s.qty);
        let state = if complete { "shipped" } else { "open" };
        if complete {
            sqlx::query(
                "UPDATE orders SET state = 'shipped', updated_at = now() WHERE order_id = $1",
            )
            .bind(&self.order_id)
            .execute(&mut **tx)
            .await?;
        }
        Ok(Applied {
            outcome: Outcome {
                status: 200,
                body: json!({ "order_id": self.order_id, "state": state, "stock": stock }),
            },
            oversells: 0,
        })
    }
}
