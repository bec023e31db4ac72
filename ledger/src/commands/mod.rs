//! The ledger's write commands, shared by the HTTP API and the JetStream ingest consumer.
//!
//! A command is parsed and validated from its JSON body, then applied in one Postgres
//! transaction together with its outbox rows and, when it carries one, its idempotency record.

pub mod fields;
mod orders;
mod receipts;
mod reservations;
mod shipments;

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, Transaction};
use tracing::Instrument;
use uuid::Uuid;

use crate::error::LedgerError;
use crate::metrics::LedgerMetrics;

pub use orders::{CancelOrder, PlaceOrder};
pub use receipts::{Adjust, Receive};
pub use reservations::{Checkout, Release, Reserve, expire};
pub use shipments::Ship;

/// What the commands need besides the transaction.
#[derive(Debug, Clone)]
pub struct Ledger {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    pub metrics: LedgerMetrics,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub warehouses: BTreeSet<String>,
    pub cart_ttl_secs: i64,
    pub checkout_ttl_secs: i64,
    pub max_ttl_secs: i64,
}

/// Every write the ledger accepts.
#[derive(Debug)]
pub enum Command {
    Receive(Receive),
    Adjust(Adjust),
    Reserve(Reserve),
    Checkout(Checkout),
    Release(Release),
    PlaceOrder(PlaceOrder),
    CancelOrder(CancelOrder),
    Ship(Ship),
}

/// A command's successful result: the HTTP status and JSON body the caller sees.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: u16,
    pub body: Value,
}

/// What a command did inside its transaction.
#[derive(Debug)]
pub(crate) struct Applied {
    pub outcome: Outcome,
    pub oversells: u64,
}

/// An idempotency record's identity: the scoped key and the hash of the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: String,
}

impl IdempotencyKey {
    /// `scope` separates callers (token name, ingest source); `request` is what identifies the
    /// request beside the key (method, path, body bytes).
    pub fn new(scope: &str, key: &str, request: &[&[u8]]) -> Self {
        let mut hash = Sha256::new();
        for part in request {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        Self {
            key: format!("{scope}:{key}"),
            request_hash: hex::encode(hash.finalize()),
        }
    }
}

impl Command {
    /// Parse an ingest command (`ingest.<source>.<command>`) from its name and JSON body.
    pub fn from_ingest(
        command: &str,
        body: &[u8],
        settings: &Settings,
    ) -> Result<Self, LedgerError> {
        Ok(match command {
            "receipt" => Self::Receive(Receive::parse(body, settings)?),
            "adjustment" => Self::Adjust(Adjust::parse(body, settings)?),
            "reservation" => Self::Reserve(Reserve::parse(body, settings)?),
            "reservation_checkout" => Self::Checkout(Checkout::parse_ingest(body)?),
            "reservation_release" => Self::Release(Release::parse_ingest(body)?),
            "order" => Self::PlaceOrder(PlaceOrder::parse(body, settings)?),
            "order_cancel" => Self::CancelOrder(CancelOrder::parse_ingest(body)?),
            "shipment" => Self::Ship(Ship::parse(body, settings)?),
            other => {
                return Err(LedgerError::Malformed {
                    field: Some("subject".to_owned()),
                    message: format!(
                        "unknown ingest command {other:?}; expected receipt, adjustment, reservation, reservation_checkout, reservation_release, order, order_cancel or shipment"
                    ),
                });
            }
        })
    }

    /// The scope a caller needs for this command.
    pub fn scope(&self) -> &'static str {
        match self {
            Self::Receive(_) | Self::Adjust(_) | Self::Ship(_) => crate::auth::SCOPE_STOCK_WRITE,
            Self::Reserve(_)
            | Self::Checkout(_)
            | Self::Release(_)
            | Self::PlaceOrder(_)
            | Self::CancelOrder(_) => crate::auth::SCOPE_ORDERS_WRITE,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Receive(_) => "receive_stock",
            Self::Adjust(_) => "adjust_stock",
            Self::Reserve(_) => "reserve_stock",
            Self::Checkout(_) => "checkout_reservation",
            Self::Release(_) => "release_reservation",
            Self::PlaceOrder(_) => "place_order",
            Self::CancelOrder(_) => "cancel_order",
            Self::Ship(_) => "ship_order",
        }
    }

    async fn apply(
        self,
        tx: &mut Transaction<'static, Postgres>,
        ledger: &Ledger,
    ) -> Result<Applied, LedgerError> {
        match self {
            Self::Receive(c) => c.apply(tx).await,
            Self::Adjust(c) => c.apply(tx).await,
            Self::Reserve(c) => c.apply(tx, &ledger.settings).await,
            Self::Checkout(c) => c.apply(tx, &ledger.settings).await,
            Self::Release(c) => c.apply(tx).await,
            Self::PlaceOrder(c) => c.apply(tx).await,
            Self::CancelOrder(c) => c.apply(tx).await,
            Self::Ship(c) => c.apply(tx).await,
        }
    }
}

impl Ledger {
    /// Apply a command in one transaction. With an idempotency key, the first successful
    /// outcome is stored with the change and returned again for every retry of the same
    /// request; the same key with a different request is refused.
    pub async fn execute(
        &self,
        command: Command,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<Outcome, LedgerError> {
        let name = command.name();
        let span = tracing::info_span!("apply_command", command = name);
        self.execute_in(command, idempotency, name)
            .instrument(span)
            .await
    }

    async fn execute_in(
        &self,
        command: Command,
        idempotency: Option<&IdempotencyKey>,
        name: &'static str,
    ) -> Result<Outcome, LedgerError> {
        let mut tx = self.pool.begin().await?;
        let applied = match command.apply(&mut tx, self).await {
            Ok(applied) => applied,
            Err(err) => {
                tx.rollback().await?;
                // A retry of a request that already succeeded may now fail on its own (stock
                // is gone, the reservation is committed): the stored outcome wins.
                if let (Some(key), false) = (idempotency, err.is_transient())
                    && let Some(stored) = self.stored_outcome(key).await?
                {
                    return Ok(stored);
                }
                return Err(err);
            }
        };
        if let Some(key) = idempotency {
            let inserted: Option<String> = sqlx::query_scalar(
                "INSERT INTO idempotency (key, request_hash, status, response)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING RETURNING key",
            )
            .bind(&key.key)
            .bind(&key.request_hash)
            .bind(applied.outcome.status as i16)
            .bind(&applied.outcome.body)
            .fetch_optional(&mut *tx)
            .await?;
            if inserted.is_none() {
                tx.rollback().await?;
                return self
                    .stored_outcome(key)
                    .await?
                    .ok_or(LedgerError::IdempotencyConflict);
            }
        }
        tx.commit().await?;
        self.metrics.command_applied(name, applied.oversells);
        Ok(applied.outcome)
    }

    /// The stored outcome for a key, or a conflict when the key came with another request.
    async fn stored_outcome(&self, key: &IdempotencyKey) -> Result<Option<Outcome>, LedgerError> {
        let row: Option<(String, i16, Value)> =
            sqlx::query_as("SELECT request_hash, status, response FROM idempotency WHERE key = $1")
                .bind(&key.key)
                .fetch_optional(&self.pool)
                .await?;
        match row {
            None => Ok(None),
            Some((hash, _, _)) if hash != key.request_hash => Err(LedgerError::IdempotencyConflict),
            Some((_, status, body)) => Ok(Some(Outcome {
                status: status as u16,
                body,
            })),
        }
    }
}

/// The JSON shape of a SKU's state in responses: the event's `stock` plus the SKU.
pub(crate) fn stock_json(book: &crate::txn::SkuBook) -> Value {
    serde_json::json!({ "sku": book.sku.as_str(), "version": book.version, "warehouses": book.warehouses })
}

pub(crate) fn parse_uuid(field: &str, value: &str) -> Result<Uuid, LedgerError> {
    Uuid::parse_str(value).map_err(|_| LedgerError::UnknownReservation {
        id: value.to_owned(),
        field: field.to_owned(),
    })
}

/// A SKU read back from the database, where only valid SKUs are ever written.
pub(crate) fn stored_sku(value: &str) -> Result<onhand_common::Sku, LedgerError> {
    onhand_common::Sku::parse(value)
        .map_err(|e| LedgerError::Database(sqlx::Error::Decode(Box::new(e))))
}
