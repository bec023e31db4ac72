//! Ledger metrics: "internal events" that count in one place, and the `/metrics` text.
//!
//! Process counters go through the `metrics` facade into one Prometheus recorder. Gauges
//! that describe the books themselves (outbox backlog, reservation pressure, oversells) are
//! read from Postgres at scrape time, so every replica reports the same, exact figures.

use std::fmt::Write as _;

use axum::http::{Method, StatusCode};
use metrics::{counter, gauge, histogram};
use sqlx::PgPool;

use crate::error::LedgerError;

/// The process-wide Prometheus recorder (the one every onhand server shares).
pub use onhand_common::prometheus::install;

/// The ledger's internal events.
#[derive(Debug, Clone, Default)]
pub struct LedgerMetrics;

impl LedgerMetrics {
    pub fn command_applied(&self, command: &'static str, oversells: u64) {
        counter!("onhand_ledger_commands_total", "command" => command).increment(1);
        if oversells > 0 {
            counter!("onhand_ledger_oversold_lines_total").increment(oversells);
        }
    }
}

pub fn http_request(method: &Method, route: String, status: StatusCode) {
    counter!(
        "onhand_ledger_http_requests_total",
        "method" => method.as_str().to_owned(),
        "route" => route,
        "status" => status.as_u16().to_string()
    )
    .increment(1);
}

pub fn relay_published(count: usize, lag_seconds: impl Iterator<Item = f64>) {
    counter!("onhand_outbox_published_total").increment(count as u64);
    let h = histogram!("onhand_outbox_publish_lag_seconds");
    for lag in lag_seconds {
        h.record(lag);
    }
}

/// A row the stream already had (same `Nats-Msg-Id` inside the duplicate window).
pub fn relay_duplicate() {
    counter!("onhand_outbox_duplicates_total").increment(1);
}

pub fn relay_failed(stage: &'static str) {
    counter!("onhand_outbox_relay_errors_total", "stage" => stage).increment(1);
}

pub fn relay_leader(is_leader: bool) {
    gauge!("onhand_outbox_relay_leader").set(if is_leader { 1.0 } else { 0.0 });
}

pub fn reservations_expired(count: u64) {
    counter!("onhand_reservations_expired_total").increment(count);
}

pub fn ingest_message(outcome: &'static str) {
    counter!("onhand_ingest_messages_total", "outcome" => outcome).increment(1);
}

/// The `/metrics` text: process metrics, then the books' gauges read now.
pub async fn render(pool: &PgPool) -> Result<String, LedgerError> {
    let (backlog, oldest, pressure, oversold, cart, checkout): (i64, f64, f64, i64, i64, i64) = sqlx::query_as(
        "SELECT
           (SELECT count(*) FROM outbox WHERE published_at IS NULL),
           (SELECT coalesce(extract(epoch FROM clock_timestamp() - min(created_at))::float8, 0) FROM outbox WHERE published_at IS NULL),
           (SELECT coalesce(sum(reserved + pending)::float8 / nullif(sum(on_hand), 0), 0) FROM stock WHERE on_hand > 0),
           (SELECT count(*) FROM oversells),
           (SELECT count(*) FROM reservations WHERE state = 'active' AND kind = 'cart'),
           (SELECT count(*) FROM reservations WHERE state = 'active' AND kind = 'checkout')",
    )
    .fetch_one(pool)
    .await?;
    let mut text = onhand_common::prometheus::render();
    let _ = write!(
        text,
        "# HELP onhand_outbox_backlog Outbox rows not yet acknowledged by JetStream.\n\
         # TYPE onhand_outbox_backlog gauge\n\
         onhand_outbox_backlog {backlog}\n\
         # HELP onhand_outbox_oldest_age_seconds Age of the oldest outbox row not yet acknowledged by JetStream (0 when none).\n\
         # TYPE onhand_outbox_oldest_age_seconds gauge\n\
         onhand_outbox_oldest_age_seconds {oldest}\n\
         # HELP onhand_reservation_pressure (reserved + pending) / on_hand over all stock.\n\
         # TYPE onhand_reservation_pressure gauge\n\
         onhand_reservation_pressure {pressure}\n\
         # HELP onhand_oversold_total Order lines that drove available below zero.\n\
         # TYPE onhand_oversold_total counter\n\
         onhand_oversold_total {oversold}\n\
         # HELP onhand_reservations_active Active reservations by kind.\n\
         # TYPE onhand_reservations_active gauge\n\
         onhand_reservations_active{{kind=\"cart\"}} {cart}\n\
         onhand_reservations_active{{kind=\"checkout\"}} {checkout}\n"
    );
    Ok(text)
}
