//! Orders: commit reservations (reserved → pending), take marketplace sales straight to
//! pending, and cancel orders (pending released with reason `order_cancelled`).
//!
//! A marketplace sale already happened, so it is never refused for lack of stock: when it
//! drives available below zero the ledger records the oversell and the `stock.committed`
//! event carries the negative availability.

use std::collections::BTreeMap;

use onhand_common::{EventType, ReleaseReason, Sku};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::{Applied, Outcome, Settings, fields, stock_json};
use crate::error::LedgerError;
use crate::txn::{self, EventDraft, SkuBook};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderBody {
    order_id: String,
    channel: String,
    lines: Vec<OrderLineBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderLineBody {
    sku: String,
    qty: i64,
    reservation_id: Option<String>,
    warehouse: Option<String>,
}

#[derive(Debug)]
struct OrderLine {
    sku: Sku,
    qty: i64,
    reservation_id: Option<Uuid>,
    warehouse: Option<String>,
}

/// `POST /v1/orders`.
#[derive(Debug)]
pub struct PlaceOrder {
    order_id: String,
    channel: String,
    lines: Vec<OrderLine>,
}

impl PlaceOrder {
    pub fn parse(body: &[u8], settings: &Settings) -> Result<Self, LedgerError> {
        let body: OrderBody = fields::parse_body(body)?;
        fields::lines("lines", &body.lines)?;
        let mut lines = Vec::with_capacity(body.lines.len());
        for (i, line) in body.lines.into_iter().enumerate() {
            let at = |f: &str| format!("lines[{i}].{f}");
            lines.push(OrderLine {
                sku: fields::sku(&at("sku"), &line.sku)?,
                qty: fields::qty(&at("qty"), line.qty)?,
                reservation_id: line
                    .reservation_id
                    .map(|id| super::parse_uuid(&at("reservation_id"), &id))
                    .transpose()?,
                warehouse: line
                    .warehouse
                    .map(|w| fields::warehouse(&at("warehouse"), &w, &settings.warehouses))
                    .transpose()?,
            });
        }
        Ok(Self {
            order_id: fields::text_id("order_id", &body.order_id, 128)?,
            channel: fields::name("channel", &body.channel)?,
            lines,
        })
    }

    pub(crate) async fn apply(
        self,
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<Applied, LedgerError> {
        let created: Option<String> = sqlx::query_scalar(
            "INSERT INTO orders (order_id, channel, state) VALUES ($1, $2, 'open')
             ON CONFLICT (order_id) DO NOTHING RETURNING order_id",
        )
        .bind(&self.order_id)
        .bind(&self.channel)
        .fetch_optional(&mut **tx)
        .await?;
        if created.is_none() {
            return Err(LedgerError::conflict(
                "order_exists",
                format!("order {:?} already exists", self.order_id),
                Some("order_id".to_owned()),
            ));
        }
        let mut books = lock_all(tx, self.lines.iter().map(|l| &l.sku)).await?;
        let mut recorded = Vec::with_capacity(self.lines.len());
        let mut oversells = Vec::new();
        for (i, line) in self.lines.iter().enumerate() {
            let at = |f: &str| format!("lines[{i}].{f}");
            let book = books
                .get_mut(line.sku.as_str())
                .filter(|b| b.exists())
                .ok_or_else(|| LedgerError::UnknownSku {
                    sku: line.sku.to_string(),
                    field: at("sku"),
                })?;
            let warehouse = match line.reservation_id {
                Some(id) => {
                    let warehouse = commit_reservation(tx, &self.order_id, line, id, &at).await?;
                    let stock = book.warehouse_mut(&warehouse);
                    stock.reserved -= line.qty;
                    stock.pending += line.qty;
                    warehouse
                }
                None => {
                    let warehouse = match &line.warehouse {
                        Some(w) => w.clone(),
                        None => book.best_warehouse_covering(line.qty).unwrap_or_else(|| {
                            book.best_warehouse().map(|(w, _)| w).unwrap_or_default()
                        }),
                    };
                    book.warehouse_mut(&warehouse).pending += line.qty;
                    warehouse
                }
            };
            let available_after = book.available(&warehouse);
            let event = book.emit(EventDraft {
                event_type: EventType::Committed,
                warehouse: warehouse.clone(),
                qty: line.qty,
                order_id: Some(self.order_id.clone()),
                reservation_id: line.reservation_id,
                reason: None,
            });
            if available_after < 0 && line.reservation_id.is_none() {
                tracing::warn!(
                    sku = %line.sku,
                    warehouse = %warehouse,
                    order_id = %self.order_id,
                    available_after,
                    "order oversold the sku"
                );
                oversells.push((
                    line.sku.to_string(),
                    warehouse.clone(),
                    available_after,
                    event.event_id,
                ));
            }
            recorded.push((
                i as i32,
                line.sku.to_string(),
                warehouse,
                line.qty,
                line.reservation_id,
            ));
        }
        let stock = flush_all(tx, books).await?;
        sqlx::query(
            "INSERT INTO order_lines (order_id, line_no, sku, warehouse, qty, reservation_id)
             SELECT $1, n, s, w, q, r
               FROM UNNEST($2::int[], $3::text[], $4::text[], $5::bigint[], $6::uuid[]) AS t(n, s, w, q, r)",
        )
        .bind(&self.order_id)
        .bind(recorded.iter().map(|r| r.0).collect::<Vec<_>>())
        .bind(recorded.iter().map(|r| r.1.clone()).collect::<Vec<_>>())
        .bind(recorded.iter().map(|r| r.2.clone()).collect::<Vec<_>>())
        .bind(recorded.iter().map(|r| r.3).collect::<Vec<_>>())
        .bind(recorded.iter().map(|r| r.4).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
        for (sku, warehouse, available_after, event_id) in &oversells {
            sqlx::query(
                "INSERT INTO oversells (sku, warehouse, order_id, available_after, event_id)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(sku)
            .bind(warehouse)
            .bind(&self.order_id)
            .bind(available_after)
            .bind(event_id)
            .execute(&mut **tx)
            .await?;
        }
        Ok(Applied {
            outcome: Outcome {
                status: 201,
                body: json!({ "order_id": self.order_id, "state": "open", "oversold": oversells.len(), "stock": stock }),
            },
            oversells: oversells.len() as u64,
        })
    }
}

/// Move an active reservation to committed for this order line; returns its warehouse.
async fn commit_reservation(
    tx: &mut Transaction<'static, Postgres>,
    order_id: &str,
    line: &OrderLine,
    id: Uuid,
    at: &(dyn Fn(&str) -> String + Sync),
) -> Result<String, LedgerError> {
    let row: Option<(String, String, i64, String)> = sqlx::query_as(
        "SELECT sku, warehouse, qty, state FROM reservations WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((sku, warehouse, qty, state)) = row else {
        return Err(LedgerError::UnknownReservation {
            id: id.to_string(),
            field: at("reservation_id"),
        });
    };
    if sku != line.sku.as_str() {
        return Err(LedgerError::invalid(
            at("reservation_id"),
            format!(
                "reservation {id} is for sku {sku:?}, not {:?}",
                line.sku.as_str()
            ),
        ));
    }
    if qty != line.qty {
        return Err(LedgerError::invalid(
            at("qty"),
            format!(
                "reservation {id} holds {qty}, the line asks for {}",
                line.qty
            ),
        ));
    }
    if line.warehouse.as_deref().is_some_and(|w| w != warehouse) {
        return Err(LedgerError::invalid(
            at("warehouse"),
            format!("reservation {id} is in warehouse {warehouse:?}"),
        ));
    }
    if state != "active" {
        return Err(LedgerError::conflict(
            "reservation_not_active",
            format!("reservation {id} is {state}"),
            Some(at("reservation_id")),
        ));
    }
    sqlx::query(
        "UPDATE reservations SET state = 'committed', order_id = $2, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(order_id)
    .execute(&mut **tx)
    .await?;
    Ok(warehouse)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderRef {
    order_id: String,
}

/// `POST /v1/orders/{id}/cancel`: release what the order still holds as pending.
#[derive(Debug)]
pub struct CancelOrder {
    order_id: String,
}

impl CancelOrder {
    pub fn parse_http(order_id: &str, body: &[u8]) -> Result<Self, LedgerError> {
        let _: EmptyBody = fields::parse_body(body)?;
        Ok(Self {
            order_id: fields::text_id("order_id", order_id, 128)?,
        })
    }

    pub fn parse_ingest(body: &[u8]) -> Result<Self, LedgerError> {
        let body: OrderRef = fields::parse_body(body)?;
        Ok(Self {
            order_id: fields::text_id("order_id", &body.order_id, 128)?,
        })
    }

    pub(crate) async fn apply(
        self,
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<Applied, LedgerError> {
        lock_open_order(tx, &self.order_id).await?;
        let lines = order_lines(tx, &self.order_id).await?;
        let skus = lines
            .iter()
            .map(|l| super::stored_sku(&l.sku))
            .collect::<Result<Vec<_>, _>>()?;
        let mut books = lock_all(tx, skus.iter()).await?;
        for line in &lines {
            let remaining = line.qty - line.shipped - line.released;
            if remaining <= 0 {
                continue;
            }
            let book = books
                .get_mut(&line.sku)
                .expect("invariant: every line's sku was locked");
            book.warehouse_mut(&line.warehouse).pending -= remaining;
            book.emit(EventDraft {
                event_type: EventType::Released,
                warehouse: line.warehouse.clone(),
                qty: remaining,
                order_id: Some(self.order_id.clone()),
                reservation_id: line.reservation_id,
                reason: Some(ReleaseReason::OrderCancelled.as_str().to_owned()),
            });
        }
        let stock = flush_all(tx, books).await?;
        sqlx::query("UPDATE order_lines SET released = qty - shipped WHERE order_id = $1;")
            .bind(&self.order_id)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "UPDATE reservations SET state = 'released', release_reason = 'order_cancelled', updated_at = now()
              WHERE id IN (SELECT reservation_id FROM order_lines WHERE order_id = $1 AND shipped = 0)
                AND state = 'committed'",
        )
        .bind(&self.order_id)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE orders SET state = 'cancelled', updated_at = now() WHERE order_id = $1",
        )
        .bind(&self.order_id)
        .execute(&mut **tx)
        .await?;
        Ok(Applied {
            outcome: Outcome {
                status: 200,
                body: json!({ "order_id": self.order_id, "state": "cancelled", "stock": stock }),
            },
            oversells: 0,
        })
    }
}

/// One stored order line.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct StoredLine {
    pub line_no: i32,
    pub sku: String,
    pub warehouse: String,
    pub qty: i64,
    pub shipped: i64,
    pub released: i64,
    pub reservation_id: Option<Uuid>,
}

/// Lock an order row; it must exist and be open.
pub(crate) async fn lock_open_order(
    tx: &mut Transaction<'static, Postgres>,
    order_id: &str,
) -> Result<(), LedgerError> {
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM orders WHERE order_id = $1 FOR UPDATE")
            .bind(order_id)
            .fetch_optional(&mut **tx)
            .await?;
    match state.as_deref() {
        None => Err(LedgerError::UnknownOrder {
            order_id: order_id.to_owned(),
        }),
        Some("open") => Ok(()),
        Some(other) => Err(LedgerError::conflict(
            "order_not_open",
            format!("order {order_id:?} is {other}"),
            Some("order_id".to_owned()),
        )),
    }
}

pub(crate) async fn order_lines(
    tx: &mut Transaction<'static, Postgres>,
    order_id: &str,
) -> Result<Vec<StoredLine>, LedgerError> {
    Ok(sqlx::query_as(
        "SELECT line_no, sku, warehouse, qty, shipped, released, reservation_id
           FROM order_lines WHERE order_id = $1 ORDER BY line_no",
    )
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await?)
}

/// Lock every distinct SKU, in sorted order (the order every transaction uses).
pub(crate) async fn lock_all<'a>(
    tx: &mut Transaction<'static, Postgres>,
    skus: impl Iterator<Item = &'a Sku>,
) -> Result<BTreeMap<String, SkuBook>, LedgerError> {
    let sorted: std::collections::BTreeSet<&Sku> = skus.collect();
    let mut books = BTreeMap::new();
    for sku in sorted {
        if let Some(book) = txn::lock_sku(tx, sku, false).await? {
            books.insert(sku.as_str().to_owned(), book);
        }
    }
    Ok(books)
}

/// Flush every book; the SKU states after the change, for the response.
pub(crate) async fn flush_all(
    tx: &mut Transaction<'static, Postgres>,
    books: BTreeMap<String, SkuBook>,
) -> Result<Vec<Value>, LedgerError> {
    let mut stock = Vec::with_capacity(books.len());
    for book in books.into_values() {
        stock.push(stock_json(&book));
        txn::flush(tx, book).await?;
    }
    Ok(stock)
}
