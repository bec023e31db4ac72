//! `onhand`: one binary, one subcommand per workload. Thin: parse, build, run.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret as _;

#[derive(Debug, Parser)]
#[command(name = "onhand", version, about = "Real-time multichannel inventory")]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Run the ledger (HTTP API, outbox relay, expiry sweeper, ingest consumer).
    Ledger {
        #[command(subcommand)]
        command: Option<LedgerCommand>,
    },
    /// JetStream streams, consumers and KV buckets.
    Streams {
        #[command(subcommand)]
        command: StreamsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum LedgerCommand {
    /// Apply the ledger's database migrations and exit.
    Migrate,
}

#[derive(Debug, Subcommand)]
enum StreamsCommand {
    /// Create or update the stream, consumer and KV definitions; print the diff.
    Apply {
        /// Show what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Read definitions from this directory instead of the ones compiled in.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The NATS server.
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    let cli = Cli::parse();
    let _telemetry = onhand_common::telemetry::init("onhand").context("initialising telemetry")?;
    match cli.command {
        Top::Ledger { command: None } => run_ledger().await,
        Top::Ledger {
            command: Some(LedgerCommand::Migrate),
        } => {
            let url = onhand_common::config::env_secret("DATABASE_URL")?
                .context("DATABASE_URL is required")?;
            onhand_ledger::migrate(url.expose_secret())
                .await
                .context("migrating the ledger database")?;
            tracing::info!("ledger database migrated");
            Ok(())
        }
        Top::Streams {
            command:
                StreamsCommand::Apply {
                    dry_run,
                    dir,
                    nats_url,
                },
        } => {
            let defs = match dir {
                Some(dir) => onhand_streams::Definitions::load_dir(&dir)?,
                None => onhand_streams::Definitions::embedded(),
            };
            let client = async_nats::connect(&nats_url)
                .await
                .with_context(|| format!("connecting to NATS at {nats_url}"))?;
            let js = async_nats::jetstream::new(client);
            let report =
                onhand_streams::apply(&js, &defs, onhand_streams::ApplyOptions { dry_run }).await?;
            #[allow(clippy::print_stdout)]
            {
                print!("{report}");
            }
            Ok(())
        }
    }
}

async fn run_ledger() -> anyhow::Result<()> {
    let config = onhand_ledger::LedgerConfig::from_env().context("ledger configuration")?;
    let shutdown = onhand_common::shutdown::on_signal();
    let app = onhand_ledger::build(config, shutdown)
        .await
        .context("starting the ledger")?;
    app.run().await.context("serving the ledger API")?;
    tracing::info!("ledger stopped");
    Ok(())
}
