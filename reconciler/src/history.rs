//! Run history in the ledger's database (`reconcile_runs`, `reconcile_repairs`; migration
//! `ledger/migrations/0002_reconcile_runs.sql`): a row when a run starts (`running`),
//! completed with its counts when it ends, and one row per repair, so drift rate over time
//! can be shown (`onhand reconcile history`).

use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::repair::RepairRecord;
use crate::report::{Report, Status};

/// A run as it starts.
#[derive(Debug, Clone)]
pub struct Started<'a> {
    pub id: Uuid,
    pub channel: &'a str,
    pub kind: &'a str,
    pub started_at: OffsetDateTime,
    pub repair: bool,
    pub settle_secs: u64,
    pub threshold: f64,
}

pub async fn start(pool: &PgPool, run: &Started<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO reconcile_runs (id, channel, kind, started_at, status, repair, settle_secs, threshold)
         VALUES ($1, $2, $3, $4, 'running', $5, $6, $7)",
    )
    .bind(run.id)
    .bind(run.channel)
    .bind(run.kind)
    .bind(run.started_at)
    .bind(run.repair)
    .bind(i64::try_from(run.settle_secs).unwrap_or(i64::MAX))
    .bind(run.threshold)
    .execute(pool)
    .await
    .map(drop)
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub async fn finish(pool: &PgPool, report: &Report) -> Result<(), sqlx::Error> {
    let c = &report.counts;
    let status = match report.status {
        Status::Complete => "complete",
        Status::Partial => "partial",
    };
    sqlx::query(
        "UPDATE reconcile_runs SET finished_at = $2, status = $3, error = $4, ledger_skus = $5,
                channel_items = $6, compared = $7, matched = $8, in_flight = $9, drift = $10,
                missing = $11, unknown = $12, not_read = $13, drift_rate = $14, read_pages = $15,
                repaired = $16, repair_failed = $17, exit_code = $18
          WHERE id = $1",
    )
    .bind(report.run_id)
    .bind(report.finished_at)
    .bind(status)
    .bind(report.error.as_deref())
    .bind(int(c.ledger_skus))
    .bind(int(c.channel_items))
    .bind(int(c.compared))
    .bind(int(c.matched))
    .bind(int(c.in_flight))
    .bind(int(c.drift))
    .bind(int(c.missing))
    .bind(c.unknown.map(int))
    .bind(int(c.not_read))
    .bind(report.drift_rate)
    .bind(int(report.read_pages))
    .bind(int(report.repairs.repaired))
    .bind(int(report.repairs.failed))
    .bind(i16::try_from(report.exit_code).unwrap_or(i16::MAX))
    .execute(pool)
    .await
    .map(drop)
}

pub async fn repairs(
    pool: &PgPool,
    run_id: Uuid,
    records: &[RepairRecord],
) -> Result<(), sqlx::Error> {
    if records.is_empty() {
        return Ok(());
    }
    let skus: Vec<&str> = records.iter().map(|r| r.sku.as_str()).collect();
    let verdicts: Vec<&str> = records.iter().map(|r| r.verdict.as_str()).collect();
    let versions: Vec<i64> = records.iter().map(|r| r.version).collect();
    let channel: Vec<Option<i64>> = records.iter().map(|r| r.channel).collect();
    let expected: Vec<i64> = records.iter().map(|r| r.expected).collect();
    let outcomes: Vec<&str> = records.iter().map(|r| r.outcome.as_str()).collect();
    let messages: Vec<Option<&str>> = records.iter().map(|r| r.message.as_deref()).collect();
    sqlx::query(
        "INSERT INTO reconcile_repairs (run_id, sku, verdict, version, channel_qty, expected, outcome, message)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::text[])
         ON CONFLICT (run_id, sku) DO UPDATE
            SET version = EXCLUDED.version, channel_qty = EXCLUDED.channel_qty, expected = EXCLUDED.expected,
                outcome = EXCLUDED.outcome, message = EXCLUDED.message, repaired_at = now()",
    )
    .bind(run_id)
    .bind(&skus)
    .bind(&verdicts)
    .bind(&versions)
    .bind(&channel)
    .bind(&expected)
    .bind(&outcomes)
    .bind(&messages)
    .execute(pool)
    .await
    .map(drop)
}

/// One finished (or running) run, for `onhand reconcile history`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RunSummary {
    pub id: Uuid,
    pub channel: String,
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub status: String,
    pub error: Option<String>,
    pub repair: bool,
    pub compared: Option<i64>,
    pub drift: Option<i64>,
    pub in_flight: Option<i64>,
    pub missing: Option<i64>,
    pub unknown: Option<i64>,
    pub not_read: Option<i64>,
    pub drift_rate: Option<f64>,
    pub repaired: Option<i64>,
    pub exit_code: Option<i16>,
}

/// The newest `limit` runs, of one channel or all, newest first.
pub async fn recent(
    pool: &PgPool,
    channel: Option<&str>,
    limit: i64,
) -> Result<Vec<RunSummary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, channel, kind, started_at, finished_at, status, error, repair, compared, drift,
                in_flight, missing, unknown, not_read, drift_rate, repaired, exit_code
           FROM reconcile_runs
          WHERE $1::text IS NULL OR channel = $1
          ORDER BY started_at DESC
          LIMIT $2",
    )
    .bind(channel)
    .bind(limit)
    .fetch_all(pool)
    .await
}
