//! Reservations: hold stock for a cart or a checkout until it is ordered, released or expires.
//!
//! State machine: `active(cart) → active(checkout) → committed → shipped`, and
//! `active → released` on cancel or expiry. A reservation succeeds only when the available
//! quantity covers it, checked under the SKU lock.

use onhand_common::{EventType, ReleaseReason, Sku};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Applied, Outcome, Settings, fields, stock_json};
use crate::error::LedgerError;
use crate::txn::{self, EventDraft};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationKind {
    Cart,
    Checkout,
}

impl ReservationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cart => "cart",
            Self::Checkout => "checkout",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReservationBody {
    sku: String,
    qty: i64,
    order_id: String,
    kind: ReservationKind,
    warehouse: Option<String>,
    ttl_secs: Option<i64>,
}

/// `POST /v1/reservations`.
#[derive(Debug)]
pub struct Reserve {
    sku: Sku,
    qty: i64,
    order_id: String,
    kind: ReservationKind,
    warehouse: Option<String>,
    ttl_secs: Option<i64>,
}

impl Reserve {
    pub fn parse(body: &[u8], settings: &Settings) -> Result<Self, LedgerError> {
        let body: ReservationBody = fields::parse_body(body)?;
        if let Some(ttl) = body.ttl_secs
            && !(1..=settings.max_ttl_secs).contains(&ttl)
        {
            return Err(LedgerError::invalid(
                "ttl_secs",
                format!("ttl_secs must be between 1 and {}", settings.max_ttl_secs),
            ));
        }
        Ok(Self {
            sku: fields::sku("sku", &body.sku)?,
            qty: fields::qty("qty", body.qty)?,
            order_id: fields::text_id("order_id", &body.order_id, 128)?,
            kind: body.kind,
            warehouse: body
                .warehouse
                .map(|w| fields::warehouse("warehouse", &w, &settings.warehouses))
                .transpose()?,
            ttl_secs: body.ttl_secs,
        })
    }

    pub(crate) async fn apply(
        self,
        tx: &mut Transaction<'static, Postgres>,
        settings: &Settings,
    ) -> Result<Applied, LedgerError> {
        let mut book = txn::lock_sku(tx, &self.sku, false)
            .await?
            .filter(txn::SkuBook::exists)
            .ok_or_else(|| LedgerError::UnknownSku {
                sku: self.sku.to_string(),
                field: "sku".to_owned(),
            })?;
        let warehouse = match self.warehouse {
            Some(w) => w,
            None => book
                .best_warehouse_covering(self.qty)
                .unwrap_or_else(|| book.best_warehouse().map(|(w, _)| w).unwrap_or_default()),
        };
        let available = book.available(&warehouse);
        if available < self.qty {
            return Err(LedgerError::InsufficientStock {
                sku: self.sku.to_string(),
                requested: self.qty,
                available: available.max(0),
                field: "qty".to_owned(),
            });
        }
        book.warehouse_mut(&warehouse).reserved += self.qty;
        let ttl = self.ttl_secs.unwrap_or(match self.kind {
            ReservationKind::Cart => settings.cart_ttl_secs,
            ReservationKind::Checkout => settings.checkout_ttl_secs,
        });
        let id = Uuid::now_v7();
        let expires_at: OffsetDateTime = sqlx::query_scalar(
            "INSERT INTO reservations (id, sku, warehouse, qty, order_id, kind, state, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'active', now() + make_interval(secs => $7))
             RETURNING expires_at",
        )
        .bind(id)
        .bind(self.sku.as_str())
        .bind(&warehouse)
        .bind(self.qty)
        .bind(&self.order_id)
        .bind(self.kind.as_str())
        .bind(ttl as f64)
        .fetch_one(&mut **tx)
        .await?;
        book.emit(EventDraft {
            event_type: EventType::Reserved,
            warehouse: warehouse.clone(),
            qty: self.qty,
            order_id: Some(self.order_id),
            reservation_id: Some(id),
            reason: None,
        });
        let body = json!({
            "reservation_id": id,
            "warehouse": warehouse,
            "kind": self.kind,
            "expires_at": rfc3339(expires_at),
            "stock": stock_json(&book),
        });
        txn::flush(tx, book).await?;
        Ok(Applied {
            outcome: Outcome { status: 201, body },
            oversells: 0,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReservationRef {
    reservation_id: String,
}

fn reservation_id(value: &str) -> Result<Uuid, LedgerError> {
    super::parse_uuid("reservation_id", value)
}

/// `POST /v1/reservations/{id}/checkout`: the cart became a checkout; extend to its TTL.
#[derive(Debug)]
pub struct Checkout {
    id: Uuid,
}

impl Checkout {
    pub fn parse_http(id: &str, body: &[u8]) -> Result<Self, LedgerError> {
        let _: EmptyBody = fields::parse_body(body)?;
        Ok(Self {
            id: reservation_id(id)?,
        })
    }

    pub fn parse_ingest(body: &[u8]) -> Result<Self, LedgerError> {
        let body: ReservationRef = fields::parse_body(body)?;
        Ok(Self {
            id: reservation_id(&body.reservation_id)?,
        })
    }

    pub(crate) async fn apply(
        self,
        tx: &mut Transaction<'static, Postgres>,
        settings: &Settings,
    ) -> Result<Applied, LedgerError> {
        // No stock changes, so no SKU lock: the row lock on the reservation orders this
        // against the sweeper and against release.
        let extended: Option<OffsetDateTime> = sqlx::query_scalar(
            "UPDATE reservations
                SET kind = 'checkout', expires_at = now() + make_interval(secs => $2), updated_at = now()
              WHERE id = $1 AND state = 'active' AND expires_at > now()
              RETURNING expires_at",
        )
        .bind(self.id)
        .bind(settings.checkout_ttl_secs as f64)
        .fetch_optional(&mut **tx)
        .await?;
        match extended {
            Some(expires_at) => Ok(Applied {
                outcome: Outcome {
                    status: 200,
                    body: json!({
                        "reservation_id": self.id,
                        "kind": "checkout",
                        "expires_at": rfc3339(expires_at),
                    }),
                },
                oversells: 0,
            }),
            None => Err(not_active(tx, self.id).await?),
        }
    }
}

/// `DELETE /v1/reservations/{id}`: the shopper gave the stock back.
#[derive(Debug)]
pub struct Release {
    id: Uuid,
}

impl Release {
    pub fn parse_http(id: &str) -> Result<Self, LedgerError> {
        Ok(Self {
            id: reservation_id(id)?,
        })
    }

    pub fn parse_ingest(body: &[u8]) -> Result<Self, LedgerError> {
        let body: ReservationRef = fields::parse_body(body)?;
        Ok(Self {
            id: reservation_id(&body.reservation_id)?,
        })
    }

    pub(crate) async fn apply(
        self,
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<Applied, LedgerError> {
        match release(tx, self.id, ReleaseReason::Cancelled).await? {
            Some(stock) => Ok(Applied {
                outcome: Outcome {
                    status: 200,
                    body: json!({ "reservation_id": self.id, "state": "released", "stock": stock }),
                },
                oversells: 0,
            }),
            None => Err(not_active(tx, self.id).await?),
        }
    }
}

/// Release one reservation if it is still active (and, for expiry, past its TTL): give the
/// stock back and emit `stock.released`. `None` when there was nothing to release.
async fn release(
    tx: &mut Transaction<'static, Postgres>,
    id: Uuid,
    reason: ReleaseReason,
) -> Result<Option<serde_json::Value>, LedgerError> {
    let sku: Option<String> = sqlx::query_scalar("SELECT sku FROM reservations WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(sku) = sku else {
        return Ok(None);
    };
    let sku = super::stored_sku(&sku)?;
    let Some(mut book) = txn::lock_sku(tx, &sku, false).await? else {
        return Ok(None);
    };
    let released: Option<(String, i64, String)> = sqlx::query_as(
        "UPDATE reservations SET state = 'released', release_reason = $2, updated_at = now()
          WHERE id = $1 AND state = 'active' AND ($3 = false OR expires_at <= now())
          RETURNING warehouse, qty, order_id",
    )
    .bind(id)
    .bind(reason.as_str())
    .bind(reason == ReleaseReason::Expired)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((warehouse, qty, order_id)) = released else {
        return Ok(None);
    };
    book.warehouse_mut(&warehouse).reserved -= qty;
    book.emit(EventDraft {
        event_type: EventType::Released,
        warehouse,
        qty,
        order_id: Some(order_id),
        reservation_id: Some(id),
        reason: Some(reason.as_str().to_owned()),
    });
    let stock = stock_json(&book);
    txn::flush(tx, book).await?;
    Ok(Some(stock))
}

/// Release one expired reservation, if it is still active and past its TTL. Returns whether
/// this call released it (so two sweepers never release the same reservation twice).
pub async fn expire(ledger: &super::Ledger, id: Uuid) -> Result<bool, LedgerError> {
    let mut tx = ledger.pool.begin().await?;
    let released = release(&mut tx, id, ReleaseReason::Expired)
        .await?
        .is_some();
    tx.commit().await?;
    Ok(released)
}

/// Why a reservation could not be changed: unknown, or no longer active.
async fn not_active(
    tx: &mut Transaction<'static, Postgres>,
    id: Uuid,
) -> Result<LedgerError, LedgerError> {
    let state: Option<(String, bool)> =
        sqlx::query_as("SELECT state, expires_at <= now() FROM reservations WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(match state {
        None => LedgerError::UnknownReservation {
            id: id.to_string(),
            field: "reservation_id".to_owned(),
        },
        Some((state, expired)) if state == "active" && expired => LedgerError::conflict(
            "reservation_expired",
            format!("reservation {id} has expired"),
            Some("reservation_id".to_owned()),
        ),
        Some((state, _)) => LedgerError::conflict(
            "reservation_not_active",
            format!("reservation {id} is {state}"),
            Some("reservation_id".to_owned()),
        ),
    })
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
