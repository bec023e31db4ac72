//! The outbox relay: publishes unpublished outbox rows to JetStream in id order and marks
//! them after the PubAck.
//!
//! Exactly one relay publishes at a time: the leader holds a Postgres advisory lock on its
//! own connection, and does all its outbox reads and writes on that connection, so losing
//! the connection loses leadership and stops publishing at once. Every message carries
//! `Nats-Msg-Id` = event id: a row published but not marked (relay killed, connection lost)
//! is published again and the stream's duplicate window drops the copy.
//!
//! Per-SKU order: a batch is sent in waves, at most one message per subject in flight; the
//! next message of a subject goes only after the previous one was acknowledged. When NATS is
//! down nothing is marked, the backlog grows in Postgres, and it drains after.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use futures::future::join_all;
use onhand_common::event::{HEADER_EVENT_TYPE, HEADER_TRACEPARENT};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::metrics;
use onhand_common::backoff::Backoff;

/// The advisory lock key that elects the relay leader ("onhand-relay" as an integer).
pub const RELAY_LOCK_KEY: i64 = 0x6f6e_6861_6e64_7231;

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Most rows read and published per round.
    pub batch: i64,
    /// How long to wait before looking again once the outbox is drained. Polling, not
    /// LISTEN/NOTIFY: NOTIFY takes a database-wide lock at every commit, which serialises
    /// the ledger's writes behind one another's WAL flushes.
    pub poll_interval: Duration,
    /// How long to wait for each PubAck before treating the publish as failed.
    pub ack_timeout: Duration,
    /// Published rows older than this are deleted.
    pub retention: Duration,
    /// Idempotency records older than this are deleted.
    pub idempotency_retention: Duration,
    /// How often a standby relay tries to take the lead.
    pub standby_interval: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch: 512,
            poll_interval: Duration::from_millis(10),
            ack_timeout: Duration::from_secs(5),
            retention: Duration::from_secs(7 * 24 * 3600),
            idempotency_retention: Duration::from_secs(48 * 3600),
            standby_interval: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("database")]
    Database(#[from] sqlx::Error),
    #[error("publishing to JetStream failed after {acked} of {total} messages")]
    Publish {
        acked: usize,
        total: usize,
        #[source]
        source: async_nats::Error,
    },
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: i64,
    event_id: Uuid,
    subject: String,
    event_type: String,
    payload: String,
    traceparent: Option<String>,
    created_at: OffsetDateTime,
}

/// Run the relay until `shutdown`: wait for leadership, publish while leader, step down and
/// retry with backoff on any failure.
pub async fn run(pool: PgPool, js: Context, config: RelayConfig, shutdown: CancellationToken) {
    let connect = pool.connect_options().as_ref().clone();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    while !shutdown.is_cancelled() {
        match lead(&connect, &js, &config, &shutdown).await {
            Ok(()) => {
                backoff.reset();
                metrics::relay_leader(false);
            }
            Err(err) => {
                metrics::relay_leader(false);
                metrics::relay_failed(match err {
                    RelayError::Database(_) => "database",
                    RelayError::Publish { .. } => "publish",
                });
                tracing::warn!(error = %err, source = ?std::error::Error::source(&err), failures = backoff.failures() + 1, "outbox relay stepped down; retrying");
                if !backoff.wait(&shutdown).await {
                    break;
                }
            }
        }
    }
}

/// One term: take the lock (or return when another relay holds it), then publish until an
/// error or shutdown.
async fn lead(
    connect: &PgConnectOptions,
    js: &Context,
    config: &RelayConfig,
    shutdown: &CancellationToken,
) -> Result<(), RelayError> {
    // Plan every statement for the outbox as it is now: a generic plan cached while the
    // table was small (a sequential scan) would otherwise stay for the connection's life
    // where autovacuum does not ANALYZE the table.
    let options = connect
        .clone()
        .options([("plan_cache_mode", "force_custom_plan")]);
    let mut conn = PgConnection::connect_with(&options).await?;
    let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(RELAY_LOCK_KEY)
        .fetch_one(&mut conn)
        .await?;
    if !leader {
        // Another relay leads; look again after a while.
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(config.standby_interval) => {}
        }
        return Ok(());
    }
    metrics::relay_leader(true);
    tracing::info!("outbox relay is the leader");
    let mut last_cleanup = tokio::time::Instant::now();
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
    while !shutdown.is_cancelled() {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, event_id, subject, event_type, payload::text AS payload, traceparent, created_at
               FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(config.batch)
        .fetch_all(&mut conn)
        .await?;
        if rows.is_empty() {
            if last_cleanup.elapsed() > Duration::from_secs(600) {
                cleanup(&mut conn, config).await?;
                last_cleanup = tokio::time::Instant::now();
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(config.poll_interval) => {}
            }
            continue;
        }
        let span = tracing::info_span!("publish_outbox", rows = rows.len(), first_id = rows[0].id);
        let (acked, failure) = publish(js, &rows, config.ack_timeout)
            .instrument(span)
            .await;
        if !acked.is_empty() {
            mark(&mut conn, &acked).await?;
            let now = OffsetDateTime::now_utc();
            let by_id: HashMap<i64, &Row> = rows.iter().map(|r| (r.id, r)).collect();
            metrics::relay_published(
                acked.len(),
                acked
                    .iter()
                    .filter_map(|(id, _)| by_id.get(id))
                    .map(|r| (now - r.created_at).as_seconds_f64().max(0.0)),
            );
        }
        match failure {
            None => backoff.reset(),
            Some(err) => {
                // Keep the lock: back off and retry the same rows (already published ones
                // are dropped as duplicates by the stream).
                metrics::relay_failed("publish");
                tracing::warn!(error = %err, source = ?std::error::Error::source(&err), failures = backoff.failures() + 1, "outbox publish failed; backlog kept for retry");
                if !backoff.wait(shutdown).await {
                    break;
                }
            }
        }
    }
    // Dropping the connection releases the advisory lock.
    conn.close().await?;
    Ok(())
}

/// Publish rows in waves of at most one message per subject; stop at the first failed wave.
/// Returns the acknowledged (id, stream sequence) pairs and the failure, if any.
async fn publish(
    js: &Context,
    rows: &[Row],
    ack_timeout: Duration,
) -> (Vec<(i64, i64)>, Option<RelayError>) {
    let mut waves: Vec<Vec<&Row>> = Vec::new();
    let mut depth: HashMap<&str, usize> = HashMap::new();
    for row in rows {
        let d = depth.entry(row.subject.as_str()).or_insert(0);
        if waves.len() <= *d {
            waves.push(Vec::new());
        }
        waves[*d].push(row);
        *d += 1;
    }
    let mut acked = Vec::with_capacity(rows.len());
    for wave in waves {
        let sends = wave.iter().map(|row| {
            let (span, traceparent) = publish_span(row);
            async move {
                let mut message = PublishMessage::build()
                    .payload(Bytes::from(row.payload.clone()))
                    .message_id(row.event_id.to_string())
                    .header(HEADER_EVENT_TYPE, row.event_type.as_str());
                if let Some(tp) = &traceparent {
                    message = message.header(HEADER_TRACEPARENT, tp.as_str());
                }
                let ack = js.send_publish(row.subject.clone(), message).await?;
                let ack = tokio::time::timeout(ack_timeout, ack)
                    .await
                    .map_err(|_| format!("no PubAck within {ack_timeout:?}"))??;
                if ack.duplicate {
                    // Published before by a relay that died before marking the row; the
                    // stream kept the first copy (its sequence is the one recorded).
                    metrics::relay_duplicate();
                    tracing::debug!(event_id = %row.event_id, sequence = ack.sequence, "already in the stream");
                }
                Ok::<_, async_nats::Error>((row.id, ack.sequence as i64))
            }
            .instrument(span)
        });
        let mut failure = None;
        for result in join_all(sends).await {
            match result {
                Ok(pair) => acked.push(pair),
                Err(source) => {
                    failure.get_or_insert(source);
                }
            }
        }
        if let Some(source) = failure {
            return (
                acked.clone(),
                Some(RelayError::Publish {
                    acked: acked.len(),
                    total: rows.len(),
                    source,
                }),
            );
        }
    }
    (acked, None)
}

/// A row written under a traced request gets a `publish_event` span in that request's trace,
/// and its message carries that span's `traceparent` on to the projectors (the row's own
/// when the span is switched off). An untraced row gets neither.
fn publish_span(row: &Row) -> (tracing::Span, Option<String>) {
    let Some(stored) = &row.traceparent else {
        return (tracing::Span::none(), None);
    };
    let span =
        tracing::info_span!("publish_event", event_id = %row.event_id, subject = %row.subject);
    onhand_common::telemetry::set_parent_from_traceparent(&span, stored);
    let own = if span.is_disabled() {
        None
    } else {
        span.in_scope(onhand_common::telemetry::current_traceparent)
    };
    (span, Some(own.unwrap_or_else(|| stored.clone())))
}

async fn mark(conn: &mut PgConnection, acked: &[(i64, i64)]) -> Result<(), sqlx::Error> {
    let ids: Vec<i64> = acked.iter().map(|a| a.0).collect();
    let seqs: Vec<i64> = acked.iter().map(|a| a.1).collect();
    sqlx::query(
        "UPDATE outbox o SET published_at = clock_timestamp(), stream_seq = t.seq
           FROM UNNEST($1::bigint[], $2::bigint[]) AS t(id, seq)
          WHERE o.id = t.id",
    )
    .bind(&ids)
    .bind(&seqs)
    .execute(conn)
    .await?;
    Ok(())
}

async fn cleanup(conn: &mut PgConnection, config: &RelayConfig) -> Result<(), sqlx::Error> {
    let outbox = sqlx::query(
        "DELETE FROM outbox WHERE published_at IS NOT NULL
            AND published_at < now() - make_interval(secs => $1)",
    )
    .bind(config.retention.as_secs_f64())
    .execute(&mut *conn)
    .await?;
    let idempotency =
        sqlx::query("DELETE FROM idempotency WHERE created_at < now() - make_interval(secs => $1)")
            .bind(config.idempotency_retention.as_secs_f64())
            .execute(&mut *conn)
            .await?;
    tracing::info!(
        outbox_rows = outbox.rows_affected(),
        idempotency_rows = idempotency.rows_affected(),
        "cleaned up published outbox rows and old idempotency records"
    );
    Ok(())
}
