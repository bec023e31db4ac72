//! `onhand projector`, `onhand projector rebuild`, `onhand dlq list|replay`,
//! `onhand explain`: the channel's settings from `ONHAND_CHANNEL__<NAME>__*` (and
//! `--channel-file`), the projector's from `ONHAND_PROJECTOR__*`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use onhand_channels::ChannelSettings;
use onhand_common::Sku;
use onhand_projector::ops::{self, RebuildFrom};
use onhand_projector::{ProjectorConfig, dlq, http};

/// Which channel, and where NATS is.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The channel's name (its settings: ONHAND_CHANNEL__<NAME>__*).
    #[arg(long)]
    pub channel: String,
    /// An env file of ONHAND_CHANNEL__ settings (a mounted ConfigMap); the environment wins.
    #[arg(long, env = "ONHAND_CHANNEL_FILE")]
    pub channel_file: Option<PathBuf>,
    /// The NATS server(s), comma-separated; `nats://user:password@host:port` logs in.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
}

impl Target {
    fn settings(&self) -> anyhow::Result<ChannelSettings> {
        ChannelSettings::load(&self.channel, self.channel_file.as_deref())
            .with_context(|| format!("configuration of channel {}", self.channel))
    }

    async fn jetstream(
        &self,
    ) -> anyhow::Result<(async_nats::Client, async_nats::jetstream::Context)> {
        let url = onhand_common::NatsUrl::parse("NATS_URL", &self.nats_url)?;
        let client = url
            .connect(format!("onhand-projector-{}", self.channel))
            .await
            .with_context(|| format!("connecting to NATS at {url}"))?;
        let js = async_nats::jetstream::new(client.clone());
        Ok((client, js))
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct RebuildArgs {
    /// Start from this stream sequence instead of the newest event of every SKU.
    #[arg(long, conflicts_with = "since")]
    pub from_seq: Option<u64>,
    /// Start from the first event at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Print what the rebuild would change on the channel (from its read-back); write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Reset and exit, leaving the running projector to carry on (it reattaches by itself).
    #[arg(long)]
    pub no_follow: bool,
    /// With --dry-run: print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `onhand projector [--channel X]`: run until SIGTERM/SIGINT.
pub async fn run(target: &Target, rebuild: Option<&RebuildArgs>) -> anyhow::Result<()> {
    let settings = target.settings()?;
    let config = ProjectorConfig::from_env().context("projector configuration")?;
    let (client, js) = target.jetstream().await?;
    onhand_projector::metrics::install();
    if let Some(args) = rebuild {
        if args.dry_run {
            let diff = ops::dry_run(&js, &settings)
                .await
                .context("computing the rebuild's changes")?;
            return print_dry_run(&diff, args.json);
        }
        let from = match (&args.from_seq, &args.since) {
            (Some(seq), _) => RebuildFrom::Sequence(*seq),
            (None, Some(since)) => RebuildFrom::Time(
                time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339)
                    .with_context(|| format!("--since {since:?} is not an RFC 3339 time"))?,
            ),
            (None, None) => RebuildFrom::LastPerSubject,
        };
        let purged = ops::rebuild(&js, &settings.name, &config, from)
            .await
            .context("rebuilding")?;
        tracing::info!(channel = %settings.name, watermarks_purged = purged, ?from, "consumer recreated and watermarks reset");
        if args.no_follow {
            return Ok(());
        }
    }
    let projector = ops::projector(&js, &settings, config.clone())
        .await
        .context("starting the projector")?;
    let shutdown = onhand_common::shutdown::on_signal();
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| format!("listening on {}", config.listen_addr))?;
    tracing::info!(channel = %settings.name, kind = %settings.kind(), addr = %config.listen_addr, "projector starting");
    let server = axum::serve(
        listener,
        http::router(http::Health {
            client,
            ready: projector.ready_flag(),
        }),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let server = tokio::spawn(async move { server.await });
    let mut work = tokio::spawn(projector.run(shutdown.clone()));
    tokio::select! {
        result = &mut work => result.context("the projector task failed")?,
        () = shutdown.cancelled() => {
            let grace = Duration::from_secs(onhand_common::config::env_or("ONHAND_PROJECTOR__SHUTDOWN_GRACE_SECS", 25u64)?);
            if tokio::time::timeout(grace, &mut work).await.is_err() {
                tracing::warn!(?grace, "the batch in hand did not finish within the grace period; its messages will be redelivered");
                work.abort();
            }
        }
    }
    let _ = server.await;
    Ok(())
}

fn print_dry_run(diff: &ops::DryRun, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, diff)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<40} {:>8} {:>10} {:>10}",
        "SKU", "VERSION", "CHANNEL", "REBUILD"
    )?;
    for row in &diff.would_change {
        let shown = row
            .channel
            .map_or_else(|| "-".to_owned(), |q| q.to_string());
        writeln!(
            out,
            "{:<40} {:>8} {:>10} {:>10}",
            row.sku, row.version, shown, row.expected
        )?;
    }
    writeln!(
        out,
        "{}: {} skus in the ledger, {} listed, {} would change, {} listed but unknown to the ledger, {} undecodable events (dry run: nothing written)",
        diff.channel,
        diff.skus_in_ledger,
        diff.listed_on_channel,
        diff.would_change.len(),
        diff.unknown_to_ledger,
        diff.undecodable_in_stream
    )?;
    Ok(())
}

/// `onhand dlq list`.
pub async fn dlq_list(target: &Target, json: bool) -> anyhow::Result<()> {
    let (_, js) = target.jetstream().await?;
    let records = dlq::list(&js, &target.channel)
        .await
        .map_err(|e| anyhow::anyhow!("reading the DLQ: {e}"))?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &records)?;
        writeln!(out)?;
        return Ok(());
    }
    for r in &records {
        writeln!(
            out,
            "{} {} {} seq={} {}",
            r.dlq_sequence,
            r.recorded_at,
            r.original_subject.as_deref().unwrap_or("-"),
            r.original_sequence
                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            r.reason
        )?;
    }
    writeln!(out, "{} dead letters for {}", records.len(), target.channel)?;
    Ok(())
}

/// `onhand dlq replay`.
pub async fn dlq_replay(target: &Target) -> anyhow::Result<()> {
    let settings = target.settings()?;
    let (_, js) = target.jetstream().await?;
    let report = ops::replay_dlq(&js, &settings)
        .await
        .context("replaying the DLQ")?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &report)?;
    writeln!(out)?;
    Ok(())
}

/// `onhand explain`.
pub async fn explain(target: &Target, sku: &str) -> anyhow::Result<()> {
    let sku = Sku::parse(sku).map_err(|e| anyhow::anyhow!("--sku: {e}"))?;
    let settings = target.settings()?;
    let (_, js) = target.jetstream().await?;
    let explanation = ops::explain(&js, &settings, &sku)
        .await
        .context("explaining")?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &explanation)?;
    writeln!(out)?;
    Ok(())
}
