//! The expiry sweeper: releases reservations past their TTL and emits `stock.released` with
//! reason `expired`. Several sweepers may run (one per ledger replica): each release happens
//! under the SKU lock and only if the reservation is still active, so it happens once.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::commands::{Ledger, expire};
use crate::metrics;

#[derive(Debug, Clone)]
pub struct SweeperConfig {
    pub interval: Duration,
    pub batch: i64,
}

impl Default for SweeperConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            batch: 500,
        }
    }
}

/// Sweep until `shutdown`.
pub async fn run(ledger: Ledger, config: SweeperConfig, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let more = match sweep_once(&ledger, config.batch).await {
            Ok(n) => n as i64 == config.batch,
            Err(err) => {
                tracing::warn!(error = %err, "expiry sweep failed; retrying");
                false
            }
        };
        if more {
            continue;
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(config.interval) => {}
        }
    }
}

/// Release up to `batch` expired reservations; returns how many were due (released here or
/// by a concurrent sweeper).
#[tracing::instrument(skip_all, fields(due, released), err)]
pub async fn sweep_once(ledger: &Ledger, batch: i64) -> Result<usize, crate::LedgerError> {
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM reservations WHERE state = 'active' AND expires_at <= now()
          ORDER BY expires_at LIMIT $1",
    )
    .bind(batch)
    .fetch_all(&ledger.pool)
    .await?;
    let mut released = 0u64;
    for id in &due {
        if expire(ledger, *id).await? {
            released += 1;
        }
    }
    tracing::Span::current().record("due", due.len());
    tracing::Span::current().record("released", released);
    if released > 0 {
        metrics::reservations_expired(released);
        tracing::info!(released, "released expired reservations");
    }
    Ok(due.len())
}
