//! One ledger transaction: lock the SKUs a command touches, change their stock in memory,
//! emit events, then write stock, version and outbox rows in the same Postgres transaction.
//!
//! Every change to a SKU happens under the row lock on `sku_versions`, taken before the SKU's
//! stock is read, so checks like "available ≥ qty" cannot race, and the outbox rows of one SKU
//! are inserted in commit order. SKUs are locked in sorted order to rule out deadlocks.

use std::collections::BTreeMap;

use onhand_common::{EventType, InventoryEvent, Sku, StockState, WarehouseStock};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::error::LedgerError;

/// A locked SKU's state inside a transaction.
#[derive(Debug)]
pub struct SkuBook {
    pub sku: Sku,
    pub version: i64,
    pub warehouses: BTreeMap<String, WarehouseStock>,
    dirty: bool,
    events: Vec<InventoryEvent>,
}

impl SkuBook {
    pub fn state(&self) -> StockState {
        StockState {
            version: self.version,
            warehouses: self.warehouses.clone(),
        }
    }

    pub fn exists(&self) -> bool {
        !self.warehouses.is_empty()
    }

    pub fn available(&self, warehouse: &str) -> i64 {
        self.warehouses
            .get(warehouse)
            .map_or(0, WarehouseStock::available)
    }

    /// Mutable stock of one warehouse, created at zero when the SKU has none there yet.
    pub fn warehouse_mut(&mut self, warehouse: &str) -> &mut WarehouseStock {
        self.dirty = true;
        self.warehouses
            .entry(warehouse.to_owned())
            .or_insert(WarehouseStock {
                on_hand: 0,
                reserved: 0,
                pending: 0,
            })
    }

    /// The warehouse with the most available stock that covers `qty`, ties broken by name.
    pub fn best_warehouse_covering(&self, qty: i64) -> Option<String> {
        self.best_warehouse()
            .filter(|(_, available)| *available >= qty)
            .map(|(w, _)| w)
    }

    /// The warehouse with the most available stock, whatever it is.
    pub fn best_warehouse(&self) -> Option<(String, i64)> {
        self.warehouses
            .iter()
            .map(|(w, s)| (w.clone(), s.available()))
            .reduce(|best, next| if next.1 > best.1 { next } else { best })
    }

    /// Record an event carrying the SKU's whole state after the change; bumps the version.
    pub fn emit(&mut self, event: EventDraft) -> &InventoryEvent {
        self.version += 1;
        let event = InventoryEvent {
            schema: onhand_common::event::SCHEMA_VERSION,
            event_id: Uuid::now_v7(),
            event_type: event.event_type,
            occurred_at: onhand_common::event::now_micros(),
            sku: self.sku.clone(),
            warehouse: event.warehouse,
            qty: event.qty,
            order_id: event.order_id,
            reservation_id: event.reservation_id,
            reason: event.reason,
            stock: self.state(),
        };
        self.events.push(event);
        self.events
            .last()
            .expect("invariant: an event was just pushed")
    }
}

/// The parts of an event a command decides; the book fills in ids, time, version and state.
#[derive(Debug)]
pub struct EventDraft {
    pub event_type: EventType,
    pub warehouse: String,
    pub qty: i64,
    pub order_id: Option<String>,
    pub reservation_id: Option<Uuid>,
    pub reason: Option<String>,
}

/// Lock a SKU and read its state. With `create`, an unknown SKU starts empty at version 0;
/// without, an unknown SKU is `None`.
///
/// Fast path, one statement: lock the version row and the SKU's stock rows together. Under
/// `FOR UPDATE` a row changed while we waited is re-read at its latest version, but a stock
/// row *inserted* meanwhile (a first receipt into another warehouse) is not seen; the
/// version row counts the SKU's warehouses, so a short read is detected and the slow path
/// (lock, then read in a new statement) runs instead.
pub async fn lock_sku(
    conn: &mut PgConnection,
    sku: &Sku,
    create: bool,
) -> Result<Option<SkuBook>, LedgerError> {
    let rows: Vec<(i64, i32, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT v.version, v.warehouses, s.warehouse, s.on_hand, s.reserved, s.pending
           FROM sku_versions v JOIN stock s ON s.sku = v.sku
          WHERE v.sku = $1
            FOR UPDATE",
    )
    .bind(sku.as_str())
    .fetch_all(&mut *conn)
    .await?;
    if let Some(&(version, count, ..)) = rows.first()
        && usize::try_from(count).is_ok_and(|c| c == rows.len())
    {
        let warehouses = rows
            .into_iter()
            .map(|(_, _, w, on_hand, reserved, pending)| (w, stock(on_hand, reserved, pending)))
            .collect();
        return Ok(Some(book(sku, version, warehouses)));
    }
    lock_then_read(conn, sku, create).await
}

async fn lock_then_read(
    conn: &mut PgConnection,
    sku: &Sku,
    create: bool,
) -> Result<Option<SkuBook>, LedgerError> {
    let version: Option<i64> = if create {
        sqlx::query_scalar(
            "INSERT INTO sku_versions (sku, version) VALUES ($1, 0)
             ON CONFLICT (sku) DO UPDATE SET version = sku_versions.version
             RETURNING version",
        )
        .bind(sku.as_str())
        .fetch_optional(&mut *conn)
        .await?
    } else {
        sqlx::query_scalar("SELECT version FROM sku_versions WHERE sku = $1 FOR UPDATE")
            .bind(sku.as_str())
            .fetch_optional(&mut *conn)
            .await?
    };
    let Some(version) = version else {
        return Ok(None);
    };
    // A new statement after the lock: it sees every change committed before we got it.
    let rows: Vec<(String, i64, i64, i64)> =
        sqlx::query_as("SELECT warehouse, on_hand, reserved, pending FROM stock WHERE sku = $1")
            .bind(sku.as_str())
            .fetch_all(&mut *conn)
            .await?;
    let warehouses = rows
        .into_iter()
        .map(|(w, on_hand, reserved, pending)| (w, stock(on_hand, reserved, pending)))
        .collect();
    Ok(Some(book(sku, version, warehouses)))
}

fn stock(on_hand: i64, reserved: i64, pending: i64) -> WarehouseStock {
    WarehouseStock {
        on_hand,
        reserved,
        pending,
    }
}

fn book(sku: &Sku, version: i64, warehouses: BTreeMap<String, WarehouseStock>) -> SkuBook {
    SkuBook {
        sku: sku.clone(),
        version,
        warehouses,
        dirty: false,
        events: Vec::new(),
    }
}

/// Write a book back: its stock rows, its version and its outbox rows, in one statement.
/// Returns the events written.
pub async fn flush(
    tx: &mut Transaction<'static, Postgres>,
    book: SkuBook,
) -> Result<Vec<InventoryEvent>, LedgerError> {
    let traceparent = onhand_common::telemetry::current_traceparent();
    if !book.dirty && book.events.is_empty() {
        return Ok(Vec::new());
    }
    let (mut whs, mut on_hand, mut reserved, mut pending) = (vec![], vec![], vec![], vec![]);
    for (w, s) in &book.warehouses {
        whs.push(w.clone());
        on_hand.push(s.on_hand);
        reserved.push(s.reserved);
        pending.push(s.pending);
    }
    let (mut ids, mut subjects, mut types, mut payloads) = (vec![], vec![], vec![], vec![]);
    for e in &book.events {
        ids.push(e.event_id);
        subjects.push(book.sku.subject());
        types.push(e.event_type.as_str().to_owned());
        payloads.push(
            serde_json::to_string(e)
                .map_err(|source| LedgerError::Database(sqlx::Error::Encode(Box::new(source))))?,
        );
    }
    sqlx::query(
        "WITH s AS (
             INSERT INTO stock (sku, warehouse, on_hand, reserved, pending)
             SELECT $1, w, o, r, p FROM UNNEST($3::text[], $4::bigint[], $5::bigint[], $6::bigint[]) AS t(w, o, r, p)
             ON CONFLICT (sku, warehouse) DO UPDATE
               SET on_hand = EXCLUDED.on_hand, reserved = EXCLUDED.reserved, pending = EXCLUDED.pending
         ), o AS (
             INSERT INTO outbox (event_id, subject, event_type, payload, traceparent)
             SELECT i, s, t, p::json, $11 FROM UNNEST($7::uuid[], $8::text[], $9::text[], $10::text[]) WITH ORDINALITY AS x(i, s, t, p, n)
             ORDER BY n
         )
         UPDATE sku_versions SET version = $2, warehouses = $12 WHERE sku = $1",
    )
    .bind(book.sku.as_str())
    .bind(book.version)
    .bind(&whs)
    .bind(&on_hand)
    .bind(&reserved)
    .bind(&pending)
    .bind(&ids)
    .bind(&subjects)
    .bind(&types)
    .bind(&payloads)
    .bind(traceparent.as_deref())
    .bind(whs.len() as i32)
    .execute(&mut **tx)
    .await?;
    Ok(book.events)
}
