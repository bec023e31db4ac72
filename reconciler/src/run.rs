//! One channel's run: read the channel back, stream the ledger past it a page at a time,
//! classify every SKU, repair on request, and report (history row, Pushgateway).
//!
//! Memory stays bounded by a page, plus, for channels read as a whole listing, the
//! listing held compactly ([`crate::snapshot::Snapshot`]: ~16 bytes + the SKU per item):
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

use std::time::Instant;

use async_nats::jetstream::Context;
use onhand_channels::{Channel, ChannelSettings};
use onhand_streams::names::WATERMARKS_BUCKET;
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::ReconcileConfig;
use crate::history;
use crate::ledger::LedgerReader;
use crate::pass::{Pass, Stop};
use crate::report::{ReadMode, Report, Status};
use crate::watermarks::WatermarkStore;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid DATABASE_URL")]
    DatabaseUrl(#[source] sqlx::Error),
    #[error("cannot reach Postgres")]
    Database(#[source] sqlx::Error),
    #[error("cannot apply the ledger's database migrations (reconcile_runs lives there)")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    NatsUrl(#[from] onhand_common::ConfigError),
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
        let nats_url = onhand_common::NatsUrl::parse("NATS_URL", &config.nats_url)?;
        let client = nats_url
            .connect("onhand-reconciler")
            .await
            .map_err(|source| StartupError::Nats {
                url: nats_url.to_string(),
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
    #[tracing::instrument(name = "reconcile_channel", skip_all, fields(channel = %settings.name, kind = %settings.kind(), repair = repair))]
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
        let mut pass = Pass::new(
            run.id,
            settings,
            &self.ledger,
            &watermarks,
            repair,
            settle,
            self.config.report_rows,
        );
        // The read-back takes its share of the channel's quota; the projector keeps the rest.
        let mut shared = settings.clone();
        shared.rate_share = self.config.rate_share;
        let (read_mode, result) = match Channel::connect(&shared, Some(&self.js)).await {
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
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}
