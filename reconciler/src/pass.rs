//! One channel's comparison, once the reconciler has connected to it: read the channel
//! back, stream the ledger past it a page at a time, classify every SKU, repair on request,
//! and build the report. [`crate::run`] says how the two read modes keep the reads in the
//! order that makes `drift` sound.

use std::collections::HashMap;
use std::time::Instant;

use onhand_channels::amazon::MAX_IDENTIFIERS;
use onhand_channels::{Channel, ChannelSettings};
use onhand_common::Sku;
use onhand_common::policy::channel_quantity;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::history;
use crate::ledger::{LedgerReader, LedgerSku};
use crate::repair::{RepairRecord, Repairer, Target};
use crate::report::{Counts, ReadMode, RepairCounts, Report, Row, Status, Worst};
use crate::run::chain;
use crate::snapshot::Snapshot;
use crate::verdict::{Seen, Verdict, Why, classify, recheck};
use crate::watermarks::WatermarkStore;

/// Why a run stopped early, and which ledger SKUs it did not get to.
#[derive(Debug)]
pub(crate) struct Stop {
    error: String,
    /// Ledger SKUs after this cursor were not compared (`Some(None)`: none was).
    rest: Option<Option<String>>,
}

impl Stop {
    pub(crate) fn all(error: String) -> Self {
        Self {
            error,
            rest: Some(None),
        }
    }

    fn after(error: String, cursor: Option<String>) -> Self {
        Self {
            error,
            rest: Some(cursor),
        }
    }
}

/// What the channel showed for a ledger SKU.
#[derive(Debug, Clone, Copy)]
enum Shown {
    Listed(i64),
    NotListed,
    /// The read-back failed before it could tell.
    NotRead,
}

/// A ledger SKU the channel does not show as expected.
#[derive(Debug)]
struct Candidate {
    sku: LedgerSku,
    expected: i64,
    available: i64,
    channel: Option<i64>,
}

/// One channel's run in progress.
pub(crate) struct Pass<'a> {
    run_id: Uuid,
    settings: &'a ChannelSettings,
    ledger: &'a LedgerReader,
    watermarks: &'a WatermarkStore,
    repair: bool,
    settle: time::Duration,
    counts: Counts,
    worst: Worst,
    read_pages: u64,
    repairs: RepairCounts,
    repair_rows: Vec<RepairRecord>,
    repair_rows_omitted: u64,
    report_rows: usize,
}

impl<'a> Pass<'a> {
    pub(crate) fn new(
        run_id: Uuid,
        settings: &'a ChannelSettings,
        ledger: &'a LedgerReader,
        watermarks: &'a WatermarkStore,
        repair: bool,
        settle: std::time::Duration,
        report_rows: usize,
    ) -> Self {
        Self {
            run_id,
            settings,
            ledger,
            watermarks,
            repair,
            settle: time::Duration::try_from(settle).unwrap_or(time::Duration::MAX),
            counts: Counts::default(),
            worst: Worst::new(report_rows),
            read_pages: 0,
            repairs: RepairCounts::default(),
            repair_rows: Vec::new(),
            repair_rows_omitted: 0,
            report_rows,
        }
    }

    /// The whole listing first, then the ledger past it.
    pub(crate) async fn listing(&mut self, channel: &Channel) -> Result<(), Stop> {
        let read_started = OffsetDateTime::now_utc();
        let mut snapshot = Snapshot::new();
        let mut full = None;
        let mut pages = 0;
        let read = channel
            .read_listing(|page| {
                pages += 1;
                for listed in &page {
                    if let Err(e) = snapshot.push(listed) {
                        full.get_or_insert(e);
                    }
                }
            })
            .await;
        snapshot.finish();
        self.read_pages = pages;
        self.counts.channel_items = snapshot.len() as u64;
        self.counts.duplicates = snapshot.duplicates();
        tracing::debug!(
            items = snapshot.len(),
            heap_bytes = snapshot.heap_bytes(),
            pages,
            "channel read back"
        );
        let read_error = match (read, full) {
            (Err(e), _) => Some(format!(
                "the channel's read-back failed after {pages} pages: {}",
                chain(&e)
            )),
            (Ok(_), Some(e)) => Some(e.to_string()),
            (Ok(_), None) => None,
        };
        let settled_before = read_started - self.settle;
        let mut after: Option<String> = None;
        loop {
            let page = self.ledger.page(after.as_deref()).await.map_err(|e| {
                Stop::after(format!("reading the ledger: {}", chain(&e)), after.clone())
            })?;
            let Some(last) = page.last().map(|s| s.sku.as_str().to_owned()) else {
                break;
            };
            let shown = page
                .iter()
                .map(|s| match snapshot.take(s.sku.as_str()) {
                    Some(q) => Shown::Listed(q),
                    None if read_error.is_some() => Shown::NotRead,
                    None => Shown::NotListed,
                })
                .collect();
            self.compare(channel, page, shown, settled_before)
                .await
                .map_err(|e| Stop::after(e, Some(last.clone())))?;
            after = Some(last);
        }
        // What is left of the listing, the ledger does not have (even a partial listing's
        // leftovers are: the ledger was read whole).
        self.counts.unknown = Some(0);
        for (sku, quantity) in snapshot.unseen() {
            self.counts.add(Verdict::Unknown);
            self.worst.offer(Row {
                sku: sku.to_owned(),
                verdict: Verdict::Unknown,
                why: Why::NotInLedger.to_string(),
                version: None,
                ledger_available: None,
                expected: None,
                channel: Some(quantity),
                watermark_version: None,
                watermark_qty: None,
                pushed_at: None,
            });
        }
        match read_error {
            Some(error) => Err(Stop { error, rest: None }),
            None => Ok(()),
        }
    }

    /// Per ledger page, the channel reads those SKUs.
    pub(crate) async fn by_sku(&mut self, channel: &Channel) -> Result<(), Stop> {
        let mut after: Option<String> = None;
        loop {
            let page = self.ledger.page(after.as_deref()).await.map_err(|e| {
                Stop::after(format!("reading the ledger: {}", chain(&e)), after.clone())
            })?;
            let Some(last) = page.last().map(|s| s.sku.as_str().to_owned()) else {
                break;
            };
            let skus: Vec<Sku> = page.iter().map(|s| s.sku.clone()).collect();
            let read_started = OffsetDateTime::now_utc();
            let listed = match channel.read_back(&skus).await {
                Ok(listed) => listed,
                Err(e) => {
                    self.counts.ledger_skus += page.len() as u64;
                    self.counts.not_read += page.len() as u64;
                    return Err(Stop::after(
                        format!(
                            "the channel's read-back failed after {} pages: {}",
                            self.read_pages,
                            chain(&e)
                        ),
                        Some(last),
                    ));
                }
            };
            self.read_pages += skus.len().div_ceil(MAX_IDENTIFIERS) as u64;
            self.counts.channel_items += listed.len() as u64;
            let listed: HashMap<Sku, i64> =
                listed.into_iter().map(|l| (l.sku, l.quantity)).collect();
            let shown = page
                .iter()
                .map(|s| {
                    listed
                        .get(&s.sku)
                        .map_or(Shown::NotListed, |q| Shown::Listed(*q))
                })
                .collect();
            self.compare(channel, page, shown, read_started - self.settle)
                .await
                .map_err(|e| Stop::after(e, Some(last.clone())))?;
            after = Some(last);
        }
        Ok(())
    }

    /// Classify a ledger page against what the channel showed; repair on request. An
    /// error (watermarks, ledger) leaves the page's undecided SKUs `not_read`.
    async fn compare(
        &mut self,
        channel: &Channel,
        page: Vec<LedgerSku>,
        shown: Vec<Shown>,
        settled_before: OffsetDateTime,
    ) -> Result<(), String> {
        let policy = &self.settings.policy;
        self.counts.ledger_skus += page.len() as u64;
        let mut candidates = Vec::new();
        for (sku, shown) in page.into_iter().zip(shown) {
            let expected = channel_quantity(&sku.state, policy);
            let channel = match shown {
                Shown::NotRead => {
                    self.counts.not_read += 1;
                    continue;
                }
                Shown::Listed(q) if q == expected => {
                    self.counts.add(Verdict::Match);
                    continue;
                }
                Shown::Listed(q) => Some(q),
                Shown::NotListed => None,
            };
            candidates.push(Candidate {
                available: sku.state.available_in(policy.warehouses.as_ref()),
                sku,
                expected,
                channel,
            });
        }
        if candidates.is_empty() {
            return Ok(());
        }
        let skus: Vec<&Sku> = candidates.iter().map(|c| &c.sku.sku).collect();
        let entries = match self.watermarks.read(&skus).await {
            Ok(entries) => entries,
            Err(e) => {
                self.counts.not_read += candidates.len() as u64;
                return Err(format!("reading the watermarks: {}", chain(&e)));
            }
        };
        let mark = |sku: &Sku| entries.get(sku).and_then(|e| e.mark);
        let pending = |sku: &Sku| entries.get(sku).is_some_and(|e| e.pending);
        let mut verdicts: Vec<(Verdict, Why)> = candidates
            .iter()
            .map(|c| {
                let watermark = mark(&c.sku.sku);
                let seen = Seen {
                    version: c.sku.state.version,
                    expected: c.expected,
                    channel: c.channel,
                    watermark: watermark.as_ref(),
                    pending: pending(&c.sku.sku),
                };
                classify(&seen, settled_before)
            })
            .collect();
        let drifted: Vec<&Sku> = candidates
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| v.0 == Verdict::Drift)
            .map(|(c, _)| &c.sku.sku)
            .collect();
        if !drifted.is_empty() {
            let now = match self.ledger.versions(&drifted).await {
                Ok(now) => now,
                Err(e) => {
                    self.counts.not_read += candidates.len() as u64;
                    return Err(format!(
                        "reading the ledger's versions again: {}",
                        chain(&e)
                    ));
                }
            };
            for (c, v) in candidates.iter().zip(verdicts.iter_mut()) {
                *v = recheck(*v, c.sku.state.version, now.get(&c.sku.sku).copied());
            }
        }
        let mut targets = Vec::new();
        for (c, (verdict, why)) in candidates.into_iter().zip(verdicts) {
            self.counts.add(verdict);
            let watermark = mark(&c.sku.sku);
            if self.repair && matches!(verdict, Verdict::Drift | Verdict::Missing) {
                targets.push(Target {
                    sku: c.sku.sku.clone(),
                    verdict,
                    channel: c.channel,
                    version: c.sku.state.version,
                    expected: c.expected,
                });
            }
            self.worst.offer(Row {
                sku: c.sku.sku.into_string(),
                verdict,
                why: why.to_string(),
                version: Some(c.sku.state.version),
                ledger_available: Some(c.available),
                expected: Some(c.expected),
                channel: c.channel,
                watermark_version: watermark.map(|w| w.version),
                watermark_qty: watermark.map(|w| w.qty),
                pushed_at: watermark.map(|w| w.pushed_at),
            });
        }
        if !targets.is_empty() {
            self.repair_targets(channel, targets).await;
        }
        Ok(())
    }

    async fn repair_targets(&mut self, channel: &Channel, targets: Vec<Target>) {
        let repairer = Repairer {
            channel,
            ledger: self.ledger,
            watermarks: self.watermarks,
            policy: &self.settings.policy,
        };
        let records = repairer.repair(targets).await;
        if let Err(e) = history::repairs(self.ledger.pool(), self.run_id, &records).await {
            tracing::warn!(error = %e, "could not record repairs in reconcile_repairs");
        }
        for record in records {
            tracing::info!(sku = %record.sku, verdict = %record.verdict, version = record.version, expected = record.expected, outcome = record.outcome.as_str(), message = record.message.as_deref(), "repair");
            self.repairs.add(record.outcome);
            if self.repair_rows.len() < self.report_rows {
                self.repair_rows.push(record);
            } else {
                self.repair_rows_omitted += 1;
            }
        }
    }

    pub(crate) async fn finish(
        mut self,
        result: Result<(), Stop>,
        read_mode: ReadMode,
        started_at: OffsetDateTime,
        clock: Instant,
        settle: std::time::Duration,
        threshold: f64,
    ) -> Report {
        let (status, error) = match result {
            Ok(()) => (Status::Complete, None),
            Err(stop) => {
                let mut error = stop.error;
                if let Some(cursor) = stop.rest {
                    match self.ledger.count_after(cursor.as_deref()).await {
                        Ok(rest) => {
                            self.counts.ledger_skus += rest;
                            self.counts.not_read += rest;
                        }
                        Err(e) => error.push_str(&format!(
                            "; and the SKUs left could not be counted: {}",
                            chain(&e)
                        )),
                    }
                }
                (Status::Partial, Some(error))
            }
        };
        if read_mode == ReadMode::BySku {
            self.counts.unknown = None;
        }
        let drift_rate = self.counts.drift_rate();
        let (rows, rows_omitted) = self.worst.into_rows();
        Report {
            run_id: self.run_id,
            channel: self.settings.name.clone(),
            kind: self.settings.kind(),
            status,
            error,
            started_at,
            finished_at: OffsetDateTime::now_utc(),
            duration_secs: clock.elapsed().as_secs_f64(),
            read_mode,
            read_pages: self.read_pages,
            settle_secs: settle.as_secs(),
            threshold,
            counts: self.counts,
            drift_rate,
            threshold_exceeded: drift_rate > threshold,
            rows,
            rows_omitted,
            repair: self.repair,
            repairs: self.repairs,
            repair_rows: self.repair_rows,
            repair_rows_omitted: self.repair_rows_omitted,
            exit_code: Report::compute_exit_code(status, drift_rate, threshold),
        }
    }
}
