//! The ledger's side: every SKU's state (version and per-warehouse counts) in SKU order,
//! a page at a time (keyset on `sku_versions`' primary key, so a page costs the same at
//! the millionth SKU as at the first), each page one statement and so one snapshot; and the
//! versions of a few SKUs again after the channel was read.

use std::collections::{BTreeMap, HashMap};

use onhand_common::{Sku, StockState, WarehouseStock};
use sqlx::PgPool;

/// One SKU as the ledger has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSku {
    pub sku: Sku,
    pub state: StockState,
}

type Row = (
    String,
    i64,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

const PAGE: &str = "
    WITH page AS (SELECT sku, version FROM sku_versions ORDER BY sku LIMIT $1)
    SELECT p.sku, p.version, s.warehouse, s.on_hand, s.reserved, s.pending
      FROM page p LEFT JOIN stock s ON s.sku = p.sku
     ORDER BY p.sku, s.warehouse";

const PAGE_AFTER: &str = "
    WITH page AS (SELECT sku, version FROM sku_versions WHERE sku > $2 ORDER BY sku LIMIT $1)
    SELECT p.sku, p.version, s.warehouse, s.on_hand, s.reserved, s.pending
      FROM page p LEFT JOIN stock s ON s.sku = p.sku
     ORDER BY p.sku, s.warehouse";

const STATES: &str = "
    SELECT v.sku, v.version, s.warehouse, s.on_hand, s.reserved, s.pending
      FROM sku_versions v LEFT JOIN stock s ON s.sku = v.sku
     WHERE v.sku = ANY($1)
     ORDER BY v.sku, s.warehouse";

/// Reads the ledger's tables.
#[derive(Debug, Clone)]
pub struct LedgerReader {
    pool: PgPool,
    page_size: i64,
}

impl LedgerReader {
    pub fn new(pool: PgPool, page_size: usize) -> Self {
        Self {
            pool,
            page_size: i64::try_from(page_size.max(1)).unwrap_or(i64::MAX),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Up to a page of SKUs after `after` (from the first without), in the database's
    /// order of `sku`; empty at the end.
    pub async fn page(&self, after: Option<&str>) -> Result<Vec<LedgerSku>, sqlx::Error> {
        let rows: Vec<Row> = match after {
            None => {
                sqlx::query_as(PAGE)
                    .bind(self.page_size)
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(after) => {
                sqlx::query_as(PAGE_AFTER)
                    .bind(self.page_size)
                    .bind(after)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(group(rows))
    }

    /// The current states of `skus` (those the ledger knows), in SKU order.
    pub async fn states(&self, skus: &[&Sku]) -> Result<Vec<LedgerSku>, sqlx::Error> {
        let names: Vec<&str> = skus.iter().map(|s| s.as_str()).collect();
        let rows: Vec<Row> = sqlx::query_as(STATES)
            .bind(&names)
            .fetch_all(&self.pool)
            .await?;
        Ok(group(rows))
    }

    /// The current versions of `skus` (those the ledger knows).
    pub async fn versions(&self, skus: &[&Sku]) -> Result<HashMap<Sku, i64>, sqlx::Error> {
        if skus.is_empty() {
            return Ok(HashMap::new());
        }
        let names: Vec<&str> = skus.iter().map(|s| s.as_str()).collect();
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT sku, version FROM sku_versions WHERE sku = ANY($1)")
                .bind(&names)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(sku, version)| Sku::parse(sku).ok().map(|sku| (sku, version)))
            .collect())
    }

    /// SKUs after `after` (all without), for what a failed run did not compare.
    pub async fn count_after(&self, after: Option<&str>) -> Result<u64, sqlx::Error> {
        let (n,): (i64,) = match after {
            None => {
                sqlx::query_as("SELECT count(*) FROM sku_versions")
                    .fetch_one(&self.pool)
                    .await?
            }
            Some(after) => {
                sqlx::query_as("SELECT count(*) FROM sku_versions WHERE sku > $1")
                    .bind(after)
                    .fetch_one(&self.pool)
                    .await?
            }
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// Rows ordered by SKU (one per stock row, or one with no warehouse) into states.
fn group(rows: Vec<Row>) -> Vec<LedgerSku> {
    let mut out: Vec<LedgerSku> = Vec::new();
    let mut current: Option<(String, i64, BTreeMap<String, WarehouseStock>)> = None;
    let mut flush = |current: Option<(String, i64, BTreeMap<String, WarehouseStock>)>| {
        if let Some((sku, version, warehouses)) = current {
            match Sku::parse(sku) {
                Ok(sku) => out.push(LedgerSku {
                    sku,
                    state: StockState {
                        version,
                        warehouses,
                    },
                }),
                // The ledger validates SKUs at the edge; a row that is not one is not ours.
                Err(e) => tracing::warn!(error = %e, "skipped a ledger row whose SKU is invalid"),
            }
        }
    };
    for (sku, version, warehouse, on_hand, reserved, pending) in rows {
        if current.as_ref().is_none_or(|c| c.0 != sku) {
            flush(current.take());
            current = Some((sku, version, BTreeMap::new()));
        }
        if let (Some(c), Some(w)) = (current.as_mut(), warehouse) {
            c.2.insert(
                w,
                WarehouseStock {
                    on_hand: on_hand.unwrap_or(0),
                    reserved: reserved.unwrap_or(0),
                    pending: pending.unwrap_or(0),
                },
            );
        }
    }
    flush(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_group_into_states() {
        let rows: Vec<Row> = vec![
            ("A".into(), 3, Some("ams".into()), Some(5), Some(1), Some(0)),
            ("A".into(), 3, Some("nyc".into()), Some(2), Some(0), Some(1)),
            ("B".into(), 1, None, None, None, None),
            ("C".into(), 9, Some("ams".into()), Some(1), Some(0), Some(0)),
        ];
        let skus = group(rows);
        assert_eq!(skus.len(), 3);
        assert_eq!(skus[0].sku.as_str(), "A");
        assert_eq!(skus[0].state.version, 3);
        assert_eq!(skus[0].state.available_total(), 5);
        assert!(skus[1].state.warehouses.is_empty());
        assert_eq!(skus[2].state.version, 9);
    }
}
