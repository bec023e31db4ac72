//! Seeding: before a run, every benchmark SKU receives so much stock through
//! `POST /v1/receipts` that reservations never run out during the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, bail};
use tokio::task::JoinSet;

use crate::client::{Ledger, Outcome};

/// Stock received per SKU: the ledger's largest quantity per request (1e9), far more than
/// any bounded run can reserve.
pub const SEED_QTY: i64 = 1_000_000_000;

/// The SKU names of a run: `{prefix}{index:05}`.
pub fn sku_names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i:05}")).collect()
}

/// Receive [`SEED_QTY`] of every SKU in `warehouse`, `concurrency` requests at a time.
/// Every receipt must succeed (200): a benchmark on half-seeded stock would measure 409s.
pub async fn seed(
    ledger: &Ledger,
    token: &str,
    warehouse: &str,
    skus: &Arc<Vec<String>>,
    concurrency: usize,
) -> anyhow::Result<usize> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (ledger, token, warehouse) = (ledger.clone(), token.to_owned(), warehouse.to_owned());
        let (skus, next) = (Arc::clone(skus), Arc::clone(&next));
        workers.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(sku) = skus.get(index) else {
                    return Ok(());
                };
                match ledger.receive(&token, sku, &warehouse, SEED_QTY).await {
                    Outcome::Status(200) => {}
                    other => bail!(
                        "seeding {sku}: POST /v1/receipts answered {} (is --wms-token a stock:write token, and {warehouse:?} a configured warehouse?)",
                        other.label()
                    ),
                }
            }
        });
    }
    while let Some(joined) = workers.join_next().await {
        joined.context("a seeding task panicked")??;
    }
    Ok(skus.len())
}
