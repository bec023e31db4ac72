//! `onhand reconcile --channel X | --all [--repair] [--report FILE] [--settle-secs N]`
//! and `onhand reconcile history`: each channel's settings from `ONHAND_CHANNEL__<NAME>__*`
//! (and `--channel-file`), the reconciler's from `ONHAND_RECONCILE__*`, `DATABASE_URL`,
//! `NATS_URL`, `ONHAND_PUSHGATEWAY_URL`. Exit code: 0 in sync, 3 drift rate above the
//! threshold, 4 a run could not read everything (the worst over the channels).

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use onhand_channels::ChannelSettings;
use onhand_common::policy::{CHANNEL_ENV_PREFIX, policies_from_env};
use onhand_reconciler::history;
use onhand_reconciler::{EXIT_DRIFT, EXIT_OK, EXIT_PARTIAL, ReconcileConfig, Reconciler, Report};
use serde::Serialize;
use tracing::Instrument as _;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReconcileArgs {
    #[command(subcommand)]
    pub command: Option<ReconcileCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum ReconcileCommand {
    /// The latest runs from reconcile_runs: drift rate over time.
    History {
        /// Only this channel.
        #[arg(long)]
        channel: Option<String>,
        /// How many runs, newest first.
        #[arg(long, default_value_t = 24)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A channel to reconcile (repeatable); its settings: ONHAND_CHANNEL__<NAME>__*.
    #[arg(long = "channel", value_name = "NAME", conflicts_with = "all")]
    pub channels: Vec<String>,
    /// Every channel configured in the environment (and --channel-file), one after another.
    #[arg(long)]
    pub all: bool,
    /// Push the expected quantity of drifted and missing SKUs (with the projector's
    /// version guard) and record each repair.
    #[arg(long)]
    pub repair: bool,
    /// Write the JSON report here (`-` for stdout, instead of the table).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Settle window for every channel, in seconds (default per kind: Amazon 300,
    /// BigCommerce 60, others 15; or ONHAND_RECONCILE__SETTLE_SECS).
    #[arg(long)]
    pub settle_secs: Option<u64>,
    /// Drift rate above which the run exits 3 (default 0.001, or
    /// ONHAND_RECONCILE__DRIFT_THRESHOLD).
    #[arg(long)]
    pub threshold: Option<f64>,
    /// SKUs listed per channel in the table, worst first.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// An env file of ONHAND_CHANNEL__ settings (a mounted ConfigMap); the environment wins.
    #[arg(long, env = "ONHAND_CHANNEL_FILE")]
    pub channel_file: Option<PathBuf>,
}

/// What `--report` writes.
#[derive(Debug, Serialize)]
struct Reports<'a> {
    exit_code: i32,
    channels: &'a [Report],
}

/// Runs the command; returns the process's exit code.
pub async fn run(args: ReconcileArgs) -> anyhow::Result<i32> {
    match args.command {
        Some(ReconcileCommand::History {
            channel,
            limit,
            json,
        }) => history_cmd(channel.as_deref(), limit, json).await,
        None => reconcile(args.run).await,
    }
}

async fn reconcile(args: RunArgs) -> anyhow::Result<i32> {
    let mut config = ReconcileConfig::from_env().context("reconciler configuration")?;
    if let Some(secs) = args.settle_secs {
        config.settle = Some(Duration::from_secs(secs));
    }
    if let Some(threshold) = args.threshold {
        config.threshold = threshold;
    }
    config.validate().context("reconciler configuration")?;
    let names = if args.all {
        configured_channels(args.channel_file.as_deref())?
    } else if args.channels.is_empty() {
        anyhow::bail!("--channel NAME or --all is required");
    } else {
        args.channels.clone()
    };
    // Every channel's settings are checked before anything is read.
    let settings = names
        .iter()
        .map(|name| {
            ChannelSettings::load(name, args.channel_file.as_deref())
                .with_context(|| format!("configuration of channel {name}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let reconciler = Reconciler::connect(config)
        .await
        .context("starting the reconciler")?;
    let mut reports = Vec::with_capacity(settings.len());
    let to_stdout = args.report.as_deref() == Some(std::path::Path::new("-"));
    // One trace per run, each channel's `reconcile_channel` (and its repairs) inside it.
    let span = tracing::info_span!(
        "reconcile_run",
        channels = settings.len(),
        repair = args.repair
    );
    for settings in &settings {
        let report = reconciler
            .run(settings, args.repair)
            .instrument(span.clone())
            .await;
        if !to_stdout {
            print(&report.table(args.top))?;
        }
        reports.push(report);
    }
    let exit_code = worst(reports.iter().map(|r| r.exit_code));
    if let Some(path) = &args.report {
        let json = serde_json::to_string_pretty(&Reports {
            exit_code,
            channels: &reports,
        })
        .context("encoding the report")?;
        if to_stdout {
            print(&format!("{json}\n"))?;
        } else {
            std::fs::write(path, json)
                .with_context(|| format!("writing the report to {}", path.display()))?;
        }
    }
    Ok(exit_code)
}

/// 4 over 3 over 0.
fn worst(codes: impl Iterator<Item = i32>) -> i32 {
    codes
        .max_by_key(|code| match *code {
            EXIT_PARTIAL => 2,
            EXIT_DRIFT => 1,
            _ => 0,
        })
        .unwrap_or(EXIT_OK)
}

/// Channel names mentioned by any `ONHAND_CHANNEL__<NAME>__*` variable (environment and
/// file).
fn configured_channels(file: Option<&std::path::Path>) -> anyhow::Result<Vec<String>> {
    let mut vars: Vec<(String, String)> = match file {
        Some(path) => onhand_channels::config::read_env_file(path)?
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    vars.extend(std::env::vars().filter(|(k, _)| k.starts_with(CHANNEL_ENV_PREFIX)));
    let names: Vec<String> = policies_from_env(vars)?.into_keys().collect();
    anyhow::ensure!(
        !names.is_empty(),
        "--all found no channel: no ONHAND_CHANNEL__<NAME>__* variable is set"
    );
    Ok(names)
}

async fn history_cmd(channel: Option<&str>, limit: i64, json: bool) -> anyhow::Result<i32> {
    let config = ReconcileConfig::from_env().context("reconciler configuration")?;
    let pool = onhand_reconciler::run::connect_database(&config.database_url)
        .await
        .context("connecting to the ledger's database")?;
    let runs = history::recent(&pool, channel, limit)
        .await
        .context("reading reconcile_runs")?;
    if json {
        print(&format!("{}\n", serde_json::to_string_pretty(&runs)?))?;
        return Ok(EXIT_OK);
    }
    let mut out = format!(
        "{:<20}  {:<14}  {:<8}  {:>9}  {:>6}  {:>8}  {:>9}  {:>7}  {:>8}  {:>4}\n",
        "STARTED",
        "CHANNEL",
        "STATUS",
        "COMPARED",
        "DRIFT",
        "RATE",
        "IN_FLIGHT",
        "MISSING",
        "REPAIRED",
        "EXIT"
    );
    let n = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    for r in &runs {
        let started = r
            .started_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<20}  {:<14}  {:<8}  {:>9}  {:>6}  {:>8}  {:>9}  {:>7}  {:>8}  {:>4}\n",
            &started[..started.len().min(19)],
            r.channel,
            r.status,
            n(r.compared),
            n(r.drift),
            r.drift_rate
                .map_or_else(|| "-".to_owned(), |v| format!("{:.3}%", v * 100.0)),
            n(r.in_flight),
            n(r.missing),
            n(r.repaired),
            r.exit_code
                .map_or_else(|| "-".to_owned(), |c| c.to_string()),
        ));
    }
    print(&out)?;
    Ok(EXIT_OK)
}

fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_exit_code_wins() {
        assert_eq!(worst([0, 3, 0].into_iter()), 3);
        assert_eq!(worst([3, 4, 0].into_iter()), 4);
        assert_eq!(worst([0, 0].into_iter()), 0);
        assert_eq!(worst(std::iter::empty()), 0);
    }
}
