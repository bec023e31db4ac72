//! A run's report: the counts per verdict, the drift rate, the worst SKUs (a bounded
//! list, worst first: drift by how far off, then missing, unknown, in flight), the repairs,
//! and whether the run saw everything. JSON (`--report`) and a human table.
//!
//! A run that could not read everything is `partial`, says how much it did not compare,
//! and exits 4, never 0: its drift count covers only what it read.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use onhand_channels::ChannelKind;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::repair::{RepairOutcome, RepairRecord};
use crate::verdict::Verdict;

/// Appends one formatted line to a `String`.
macro_rules! line {
    ($out:expr, $($arg:tt)*) => {{
        $out.push_str(&format!($($arg)*));
        $out.push('\n');
    }};
}

/// Exit codes of `onhand reconcile`.
pub const EXIT_OK: i32 = 0;
pub const EXIT_DRIFT: i32 = 3;
pub const EXIT_PARTIAL: i32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every SKU of the ledger and of the channel was compared.
    Complete,
    /// The read-back, the ledger or the watermarks failed part-way: see `error` and
    /// `counts.not_read`.
    Partial,
}

/// How the channel was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// The whole listing, paged (SKUs only the channel has are `unknown`).
    Listing,
    /// The ledger's SKUs, by SKU (Amazon): SKUs only the channel has are not seen.
    BySku,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// SKUs the ledger has (that were read from it).
    pub ledger_skus: u64,
    /// Items the channel's read-back returned (distinct SKUs).
    pub channel_items: u64,
    /// SKUs both sides have: match + in_flight + drift (the drift rate's denominator).
    pub compared: u64,
    #[serde(rename = "match")]
    pub matched: u64,
    pub in_flight: u64,
    pub drift: u64,
    pub missing: u64,
    /// `None` when the read-back cannot tell (by SKU).
    pub unknown: Option<u64>,
    /// Ledger SKUs not compared because the run stopped early.
    pub not_read: u64,
    /// Items the channel listed twice or more (the first read was compared).
    pub duplicates: u64,
}

impl Counts {
    pub fn add(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Match => self.matched += 1,
            Verdict::InFlight => self.in_flight += 1,
            Verdict::Drift => self.drift += 1,
            Verdict::Missing => self.missing += 1,
            Verdict::Unknown => *self.unknown.get_or_insert(0) += 1,
        }
        if matches!(verdict, Verdict::Match | Verdict::InFlight | Verdict::Drift) {
            self.compared += 1;
        }
    }

    /// drift / compared (0 when nothing was compared).
    pub fn drift_rate(&self) -> f64 {
        if self.compared == 0 {
            0.0
        } else {
            self.drift as f64 / self.compared as f64
        }
    }
}

/// One SKU that is not a plain match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub sku: String,
    pub verdict: Verdict,
    /// Why, in words.
    pub why: String,
    /// The ledger's version compared.
    pub version: Option<i64>,
    /// The ledger's availability in the channel's warehouses (before the policy).
    pub ledger_available: Option<i64>,
    /// The policy's quantity.
    pub expected: Option<i64>,
    /// What the channel shows (`None`: not listed).
    pub channel: Option<i64>,
    pub watermark_version: Option<i64>,
    pub watermark_qty: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub pushed_at: Option<OffsetDateTime>,
}

impl Row {
    /// How far off the channel is (0 when a side is missing).
    pub fn diff(&self) -> i64 {
        match (self.channel, self.expected) {
            (Some(c), Some(e)) => c.saturating_sub(e),
            _ => 0,
        }
    }

    /// Smaller is worse.
    fn rank(&self) -> (Verdict, Reverse<u64>, &str) {
        (self.verdict, Reverse(self.diff().unsigned_abs()), &self.sku)
    }
}

/// The worst `cap` rows seen, in bounded memory.
#[derive(Debug)]
pub struct Worst {
    cap: usize,
    /// A max-heap on rank: its top is the least bad row kept, the first to go.
    heap: BinaryHeap<Ranked>,
    omitted: u64,
}

#[derive(Debug, PartialEq, Eq)]
struct Ranked(Row);

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.rank().cmp(&other.0.rank())
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Worst {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            heap: BinaryHeap::new(),
            omitted: 0,
        }
    }

    pub fn offer(&mut self, row: Row) {
        if self.heap.len() < self.cap {
            self.heap.push(Ranked(row));
            return;
        }
        self.omitted += 1;
        if let Some(top) = self.heap.peek()
            && row.rank() < top.0.rank()
        {
            self.heap.pop();
            self.heap.push(Ranked(row));
        }
    }

    /// Worst first, and how many rows were left out.
    pub fn into_rows(self) -> (Vec<Row>, u64) {
        let rows = self
            .heap
            .into_sorted_vec()
            .into_iter()
            .map(|r| r.0)
            .collect();
        (rows, self.omitted)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepairCounts {
    pub attempted: u64,
    pub repaired: u64,
    pub superseded: u64,
    pub failed: u64,
}

impl RepairCounts {
    pub fn add(&mut self, outcome: RepairOutcome) {
        self.attempted += 1;
        match outcome {
            RepairOutcome::Repaired => self.repaired += 1,
            RepairOutcome::Superseded => self.superseded += 1,
            RepairOutcome::Failed => self.failed += 1,
        }
    }
}

/// One channel's run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run_id: Uuid,
    pub channel: String,
    pub kind: ChannelKind,
    pub status: Status,
    /// What stopped the run early (with `status: partial`).
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    pub duration_secs: f64,
    pub read_mode: ReadMode,
    /// Read-back pages (requests that returned items; retries not counted).
    pub read_pages: u64,
    pub settle_secs: u64,
    pub threshold: f64,
    pub counts: Counts,
    pub drift_rate: f64,
    pub threshold_exceeded: bool,
    /// The worst SKUs, worst first; `rows_omitted` more were not listed.
    pub rows: Vec<Row>,
    pub rows_omitted: u64,
    pub repair: bool,
    pub repairs: RepairCounts,
    /// Each repair (the first `report_rows`; all of them are in `reconcile_repairs`).
    pub repair_rows: Vec<RepairRecord>,
    pub repair_rows_omitted: u64,
    pub exit_code: i32,
}

impl Report {
    /// 4 when the run is partial, else 3 when the drift rate exceeds the threshold, else 0.
    pub fn compute_exit_code(status: Status, drift_rate: f64, threshold: f64) -> i32 {
        match status {
            Status::Partial => EXIT_PARTIAL,
            Status::Complete if drift_rate > threshold => EXIT_DRIFT,
            Status::Complete => EXIT_OK,
        }
    }

    /// The human summary: a headline, what a partial run missed, and the worst `top` rows.
    pub fn table(&self, top: usize) -> String {
        let c = &self.counts;
        let mut out = String::new();
        let state = match self.status {
            Status::Complete => "complete",
            Status::Partial => "PARTIAL",
        };
        let unknown = c
            .unknown
            .map_or_else(|| "not checked (read by SKU)".to_owned(), group);
        line!(
            out,
            "{} ({}): {state}, {:.1} s, {} read pages{}",
            self.channel,
            self.kind,
            self.duration_secs,
            group(self.read_pages),
            if self.repair { ", --repair" } else { "" },
        );
        line!(
            out,
            "  drift {} of {} compared = {:.3}% (threshold {:.3}%){}",
            group(c.drift),
            group(c.compared),
            self.drift_rate * 100.0,
            self.threshold * 100.0,
            if self.threshold_exceeded {
                "  EXCEEDED"
            } else {
                ""
            },
        );
        line!(
            out,
            "  match {}  in_flight {}  missing {}  unknown {}  | ledger {} SKUs, channel {} items{}",
            group(c.matched),
            group(c.in_flight),
            group(c.missing),
            unknown,
            group(c.ledger_skus),
            group(c.channel_items),
            if c.duplicates > 0 {
                format!(" ({} listed twice)", group(c.duplicates))
            } else {
                String::new()
            },
        );
        if self.status == Status::Partial {
            line!(
                out,
                "  PARTIAL: {}; {} ledger SKUs were not compared. The counts cover only what was read: this run does not show that the channel is in sync.",
                self.error.as_deref().unwrap_or("the run stopped early"),
                group(c.not_read),
            );
        }
        if self.repair {
            let r = &self.repairs;
            line!(
                out,
                "  repairs: {} attempted, {} repaired, {} superseded by newer versions, {} failed",
                group(r.attempted),
                group(r.repaired),
                group(r.superseded),
                group(r.failed),
            );
        }
        if !self.rows.is_empty() {
            let shown = &self.rows[..self.rows.len().min(top)];
            let width = shown
                .iter()
                .map(|r| r.sku.chars().count())
                .max()
                .unwrap_or(3)
                .max(3);
            let opt = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
            line!(
                out,
                "  {:<width$}  {:<9}  {:>7}  {:>8}  {:>7}  {:>7}  {:>9}  WHY",
                "SKU",
                "VERDICT",
                "LEDGER",
                "EXPECTED",
                "CHANNEL",
                "VERSION",
                "WATERMARK"
            );
            for r in shown {
                let watermark = match (r.watermark_version, r.watermark_qty) {
                    (Some(v), Some(q)) => format!("v{v}={q}"),
                    _ => "-".to_owned(),
                };
                line!(
                    out,
                    "  {:<width$}  {:<9}  {:>7}  {:>8}  {:>7}  {:>7}  {:>9}  {}",
                    r.sku,
                    r.verdict.as_str(),
                    opt(r.ledger_available),
                    opt(r.expected),
                    opt(r.channel),
                    r.version
                        .map_or_else(|| "-".to_owned(), |v| format!("v{v}")),
                    watermark,
                    r.why,
                );
            }
            let more = self.rows.len() as u64 - shown.len() as u64 + self.rows_omitted;
            if more > 0 {
                line!(out, "  … {} more (see --report)", group(more));
            }
        }
        out
    }
}

/// 1234567 → "1,234,567".
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sku: &str, verdict: Verdict, channel: i64, expected: i64) -> Row {
        Row {
            sku: sku.to_owned(),
            verdict,
            why: String::new(),
            version: Some(1),
            ledger_available: Some(expected),
            expected: Some(expected),
            channel: Some(channel),
            watermark_version: None,
            watermark_qty: None,
            pushed_at: None,
        }
    }

    #[test]
    fn the_worst_rows_are_kept_worst_first() {
        let mut worst = Worst::new(3);
        worst.offer(row("in-flight", Verdict::InFlight, 100, 0));
        worst.offer(row("small", Verdict::Drift, 11, 10));
        worst.offer(row("big", Verdict::Drift, 0, 50));
        worst.offer(row("missing", Verdict::Missing, 0, 0));
        worst.offer(row("medium", Verdict::Drift, 15, 10));
        let (rows, omitted) = worst.into_rows();
        let skus: Vec<&str> = rows.iter().map(|r| r.sku.as_str()).collect();
        assert_eq!(skus, ["big", "medium", "small"]);
        assert_eq!(omitted, 2);
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Report::compute_exit_code(Status::Complete, 0.0, 0.001), 0);
        assert_eq!(Report::compute_exit_code(Status::Complete, 0.001, 0.001), 0);
        assert_eq!(
            Report::compute_exit_code(Status::Complete, 0.0011, 0.001),
            3
        );
        // A partial run never exits 0, even when what it read had no drift.
        assert_eq!(Report::compute_exit_code(Status::Partial, 0.0, 0.001), 4);
        assert_eq!(Report::compute_exit_code(Status::Partial, 0.5, 0.001), 4);
    }

    #[test]
    fn counts_and_rate() {
        let mut c = Counts::default();
        for v in [
            Verdict::Match,
            Verdict::Match,
            Verdict::Drift,
            Verdict::InFlight,
        ] {
            c.add(v);
        }
        c.add(Verdict::Missing);
        assert_eq!(c.compared, 4);
        assert!((c.drift_rate() - 0.25).abs() < 1e-12);
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(group(12), "12");
    }
}
