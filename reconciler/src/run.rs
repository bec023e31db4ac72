//! One channel's run: read the channel back, stream the ledger past it a page at a time,
//! classify every SKU, repair on request, and report (history row, Pushgateway).
//!
//! Memory stays bounded by a page, plus, for channels read as a whole listing, the
//! listing held compactly ([`Snapshot`]: ~16 bytes + the SKU per item):
//! - **Listing** (every channel but Amazon): the whole listing is read first, page by page
//!   into the snapshot; then the ledger is read in SKU order, a page per statement, so every
//!   ledger read comes after the channel read. What the ledger has and the listing does not
//!   is `missing`; what is left of the listing is `unknown`.
//! - **By SKU** (Amazon, whose listing search stops at 1,000 items): per ledger page, the
//!   channel reads exactly those SKUs. SKUs only Amazon has are not seen (`unknown` is
//!   not reported).
//!
//! Either way, a `drift` candidate's ledger version is read again after the channel read,
//! so a SKU whose ledger moved while the run read it is `in_flight`, not `drift`.

use std::collections::HashMap;
use std::time::Instant;

use async_nats::jetstream::Context;
use onhand_channels::amazon::MAX_IDENTIFIERS;
use onhand_channels::{Channel, ChannelSettings};
use onhand_common::Sku;
use onhand_common::policy::channel_quantity;
use onhand_streams::names::WATERMARKS_BUCKET;
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::ReconcileConfig;
use crate::history;
use crate::ledger::{LedgerReader, LedgerSku};
use crate::repair::{RepairRecord, Repairer, Target};
use crate::report::{Counts, ReadMode, RepairCounts, Report, Row, Status, Worst};
use crate::snapshot::Snapshot;
use crate::verdict::{Seen, Verdict, Why, classify, recheck};
use crate::watermarks::WatermarkStore;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid DATABASE_URL")]
    DatabaseUrl(#[source] sqlx::Error),
    #[error("cannot reach Postgres")]
    Database(#[source] sqlx::Error),
    #[error("cannot apply the ledger's database migrations (reconcile_runs lives there)")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot connect to NATS at {url}")]
    Nats {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("opening the KV bucket {WATERMARKS_BUCKET} (create it with `onhand streams apply`)")]
    Watermarks(#[source] async_nats::jetstream::context::KeyValueError),
}

/// A small pool on the ledger's database (the reconciler reads a page at a time).
pub async fn connect_database(url: &SecretString) -> Result<PgPool, StartupError> {
    let options: PgConnectOptions = url
        .expose_secret()
        .parse()
        .map_err(StartupError::DatabaseUrl)?;
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(StartupError::Database)
}

/// What the reconciler holds across channels.
#[derive(Debug)]
pub struct Reconciler {
    ledger: LedgerReader,
    js: Context,
    watermarks: async_nats::jetstream::kv::Store,
    config: ReconcileConfig,
    http: reqwest::Client,
}

impl Reconciler {
    /// Connects to Postgres (applying the ledger's migrations, which create
    /// `reconcile_runs`) and NATS.
    pub async fn connect(config: ReconcileConfig) -> Result<Self, StartupError> {
        let pool = connect_database(&config.database_url).await?;
        onhand_ledger::app::MIGRATOR.run(&pool).await?;
        let client = async_nats::ConnectOptions::new()
            .name("onhand-reconciler")
            .connect(&config.nats_url)
            .await
            .map_err(|source| StartupError::Nats {
                url: config.nats_url.clone(),
                source,
            })?;
        Self::new(pool, async_nats::jetstream::new(client), config).await
    }

    /// From a migrated pool and a JetStream context.
    pub async fn new(
        pool: PgPool,
        js: Context,
        config: ReconcileConfig,
    ) -> Result<Self, StartupError> {
        let watermarks = js
            .get_key_value(WATERMARKS_BUCKET)
            .await
            .map_err(StartupError::Watermarks)?;
        Ok(Self {
            ledger: LedgerReader::new(pool, config.page_size),
            js,
            watermarks,
            config,
            http: reqwest::Client::new(),
        })
    }

    pub fn config(&self) -> &ReconcileConfig {
        &self.config
    }

    pub fn pool(&self) -> &PgPool {
        self.ledger.pool()
    }

    /// Reconcile one channel (repairing drifted and missing SKUs with `repair`). Always
    /// gives a report: one that could not see everything is `partial` and says why.
    #[tracing::instrument(name = "reconcile_channel", skip_all, fields(channel = %settings.name, kind = %settings.kind(), repair))]
    pub async fn run(&self, settings: &ChannelSettings, repair: bool) -> Report {
        let clock = Instant::now();
        let started_at = OffsetDateTime::now_utc();
        let settle = self.config.settle_for(settings.kind());
        let run = history::Started {
            id: Uuid::now_v7(),
            channel: &settings.name,
            kind: settings.kind().as_str(),
            started_at,
            repair,
            settle_secs: settle.as_secs(),
            threshold: self.config.threshold,
        };
        if let Err(e) = history::start(self.ledger.pool(), &run).await {
            tracing::warn!(error = %e, "could not record the run in reconcile_runs");
        }
        let watermarks = WatermarkStore::new(settings.name.clone(), self.watermarks.clone());
        let mut pass = Pass {
            run_id: run.id,
            settings,
            ledger: &self.ledger,
            watermarks: &watermarks,
            repair,
            settle: time::Duration::try_from(settle).unwrap_or(time::Duration::MAX),
            counts: Counts::default(),
            worst: Worst::new(self.config.report_rows),
            read_pages: 0,
            repairs: RepairCounts::default(),
            repair_rows: Vec::new(),
            repair_rows_omitted: 0,
            report_rows: self.config.report_rows,
        };
        let (read_mode, result) = match Channel::connect(settings, Some(&self.js)).await {
            Err(e) => (
                ReadMode::Listing,
                Err(Stop::all(format!("connecting the channel: {}", chain(&e)))),
            ),
            Ok(channel) if channel.reads_by_sku() => (ReadMode::BySku, pass.by_sku(&channel).await),
            Ok(channel) => (ReadMode::Listing, pass.listing(&channel).await),
        };
        let report = pass
            .finish(
                result,
                read_mode,
                started_at,
                clock,
                settle,
                self.config.threshold,
            )
            .await;
        if let Err(e) = history::finish(self.ledger.pool(), &report).await {
            tracing::warn!(error = %e, "could not record the run's result in reconcile_runs");
        }
        if let Some(url) = &self.config.pushgateway_url
            && let Err(e) = crate::metrics::push(&self.http, url, &report).await
        {
            tracing::warn!(error = %chain(&e), "could not push the run's metrics; alerts on drift rate see the previous run");
        }
        finished(&report);
        report
    }
}

/// The run log line: one per channel, WARN when the run needs someone's attention.
fn finished(report: &Report) {
    let c = &report.counts;
    if report.status == Status::Partial || report.threshold_exceeded {
        tracing::warn!(status = ?report.status, error = report.error.as_deref(), compared = c.compared, drift = c.drift, drift_rate = report.drift_rate, missing = c.missing, not_read = c.not_read, exit_code = report.exit_code, "reconcile run needs attention");
    } else {
        tracing::info!(
            compared = c.compared,
            drift = c.drift,
            drift_rate = report.drift_rate,
            in_flight = c.in_flight,
            missing = c.missing,
            duration_secs = report.duration_secs,
            "reconcile run finished"
        );
    }
}

/// `err: its source: its source…`
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// Why a run stopped early, and which ledger SKUs it did not get to.
#[derive(Debug)]
struct Stop {
    error: String,
    /// Ledger SKUs after this cursor were not compared (`Some(None)`: none was).
    rest: Option<Option<String>>,
}

impl Stop {
    fn all(error: String) -> Self {
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
struct Pass<'a> {
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

impl Pass<'_> {
    /// The whole listing first, then the ledger past it.
    async fn listing(&mut self, channel: &Channel) -> Result<(), Stop> {
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
    async fn by_sku(&mut self, channel: &Channel) -> Result<(), Stop> {
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
        let mut verdicts: Vec<(Verdict, Why)> = candidates
            .iter()
            .map(|c| {
                let watermark = mark(&c.sku.sku);
                let seen = Seen {
                    version: c.sku.state.version,
                    expected: c.expected,
                    channel: c.channel,
                    watermark: watermark.as_ref(),
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

    #[allow(clippy::too_many_arguments)]
    async fn finish(
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
