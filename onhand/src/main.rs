//! `onhand`: one binary, one subcommand per workload. Thin: parse, build, run.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret as _;

mod ingest_cli;
mod oversell_cli;
mod projector_cli;
mod reconcile_cli;
mod sandbox_cli;
mod service_name;
mod simulate_cli;
mod storefront_cli;
mod tail;
mod top_cli;

/// mimalloc rather than glibc's malloc: the projector allocates and frees a few small
/// objects per event (messages, decoded events, acks), and glibc's allocator was ~15% of its
/// CPU in `scripts/bench projector`. Transparent huge pages are turned off first thing in
/// `main` (see `onhand_common::memory`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Inventory events on the INVENTORY stream.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Commands for the ledger's JetStream ingest (what a WMS/ERP publishes).
    Ingest {
        #[command(subcommand)]
        command: IngestCommand,
    },
    /// Run the channel API emulators (Shopify, Amazon, eBay, WooCommerce, BigCommerce,
    /// webhook) on one port, path-prefixed, with the admin API under /admin.
    Sandbox {
        #[arg(
            long,
            env = "ONHAND_SANDBOX__LISTEN_ADDR",
            default_value = "127.0.0.1:8070"
        )]
        listen_addr: std::net::SocketAddr,
        /// Seed for fault injection and item ids (runs with one seed behave alike).
        #[arg(long, env = "ONHAND_SANDBOX__SEED", default_value_t = 0)]
        seed: u64,
        /// Seed catalogues at start: {"<channel>": [{"sku", "quantity", "parent_id"?}]}.
        #[arg(long, env = "ONHAND_SANDBOX__CATALOG")]
        catalog: Option<PathBuf>,
    },
    /// Run the projector of one channel: INVENTORY events to the channel's API (settings:
    /// ONHAND_CHANNEL__<NAME>__*, ONHAND_PROJECTOR__*).
    #[command(args_conflicts_with_subcommands = true)]
    Projector {
        #[command(subcommand)]
        command: Option<ProjectorCommand>,
        // Not a flattened `Option<Target>`: an env-provided NATS_URL would make that group
        // present and its `--channel` required even before `rebuild` (its own --channel).
        /// The channel's name (its settings: ONHAND_CHANNEL__<NAME>__*).
        #[arg(long)]
        channel: Option<String>,
        /// An env file of ONHAND_CHANNEL__ settings (a mounted ConfigMap); the environment wins.
        #[arg(long, env = "ONHAND_CHANNEL_FILE")]
        channel_file: Option<std::path::PathBuf>,
        /// The NATS server(s), comma-separated; `nats://user:password@host:port` logs in.
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
    },
    /// Dead letters of a channel's projector (inventory.dlq.<channel>).
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// One SKU on one channel: ledger state per warehouse, each policy step, the expected
    /// quantity, the watermark and what the channel shows.
    Explain {
        #[arg(long)]
        sku: String,
        #[command(flatten)]
        target: projector_cli::Target,
    },
    /// Serve the storefront's read-only availability endpoint over the KV bucket
    /// onhand_availability (listen address: ONHAND_STOREFRONT__LISTEN_ADDR).
    Storefront {
        /// The NATS server.
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
    },
    /// Simulations: shoppers against a running ledger, or the oversell model.
    Simulate {
        #[command(subcommand)]
        command: SimulateCommand,
    },
    /// A live per-channel summary scraped from the projectors' /metrics.
    #[command(name = "top")]
    Dashboard(top_cli::TopArgs),
    /// Compare channels' read-backs with the ledger's totals: drift report, history,
    /// --repair; exits 3 when drift is above the threshold, 4 when a read failed.
    Reconcile(reconcile_cli::ReconcileArgs),
}

#[derive(Debug, Subcommand)]
enum SimulateCommand {
    /// Simulated shoppers on several channels against the ledger's HTTP API.
    Shoppers(simulate_cli::SimulateArgs),
    /// Oversells under a cron sync against event-driven sync, with and without
    /// reservations: a deterministic model (docs/OVERSELL.md).
    Oversell(oversell_cli::OversellArgs),
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Print each event as one line as it lands (ordered consumer; acks nothing).
    Tail {
        /// Subject filter inside the stream.
        #[arg(long, default_value = tail::DEFAULT_SUBJECT)]
        subject: String,
        /// Start from the first event still in the stream, not only new ones.
        #[arg(long)]
        since_start: bool,
        /// Exit after this many events.
        #[arg(long)]
        count: Option<u64>,
        /// The NATS server.
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectorCommand {
    /// Recreate the channel's consumer (newest event of every SKU, or --from-seq/--since),
    /// reset its watermarks, then carry on live (or exit with --no-follow).
    Rebuild {
        #[command(flatten)]
        target: projector_cli::Target,
        #[command(flatten)]
        args: projector_cli::RebuildArgs,
    },
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List a channel's dead letters with their reasons.
    List {
        #[command(flatten)]
        target: projector_cli::Target,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-drive a channel's dead letters through its adapter (after a fix); resolved ones
    /// are removed, failing ones kept.
    Replay {
        #[command(flatten)]
        target: projector_cli::Target,
    },
}

#[derive(Debug, Subcommand)]
enum IngestCommand {
    /// Publish one command (JSON) with a Nats-Msg-Id and wait for the PubAck.
    Publish {
        /// `ingest.<source>.<command>`, e.g. `ingest.wms.receipt`.
        #[arg(long)]
        subject: String,
        /// The Nats-Msg-Id header: dedupe and idempotency key.
        #[arg(long)]
        msg_id: String,
        /// The JSON body, as the HTTP API takes it.
        #[arg(long)]
        data: String,
        /// The NATS server.
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
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
    // Before anything is allocated in earnest (see the function); a kernel without the
    // setting has nothing to turn off.
    let _ = onhand_common::memory::disable_transparent_huge_pages();
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    let cli = Cli::parse();
    let _telemetry = onhand_common::telemetry::init(&service_name::service_name(&cli.command))
        .context("initialising telemetry")?;
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
            let js = jetstream(&nats_url).await?;
            let report =
                onhand_streams::apply(&js, &defs, onhand_streams::ApplyOptions { dry_run }).await?;
            #[allow(clippy::print_stdout)]
            {
                print!("{report}");
            }
            Ok(())
        }
        Top::Events {
            command:
                EventsCommand::Tail {
                    subject,
                    since_start,
                    count,
                    nats_url,
                },
        } => {
            let shutdown = onhand_common::shutdown::on_signal();
            let js = jetstream(&nats_url).await?;
            let options = tail::TailOptions {
                subject,
                since_start,
                count,
            };
            tail::run(&js, &options, shutdown, &mut std::io::stdout().lock()).await?;
            Ok(())
        }
        Top::Ingest {
            command:
                IngestCommand::Publish {
                    subject,
                    msg_id,
                    data,
                    nats_url,
                },
        } => {
            let js = jetstream(&nats_url).await?;
            let options = ingest_cli::PublishOptions {
                subject,
                msg_id,
                data,
            };
            let published = ingest_cli::publish(&js, &options).await?;
            #[allow(clippy::print_stdout)]
            {
                println!("{published}");
            }
            Ok(())
        }
        Top::Sandbox {
            listen_addr,
            seed,
            catalog,
        } => {
            let options = sandbox_cli::SandboxOptions {
                listen_addr,
                seed,
                catalog,
            };
            sandbox_cli::run(options, onhand_common::shutdown::on_signal()).await
        }
        Top::Projector {
            command: None,
            channel: Some(channel),
            channel_file,
            nats_url,
        } => {
            let target = projector_cli::Target {
                channel,
                channel_file,
                nats_url,
            };
            projector_cli::run(&target, None).await
        }
        Top::Projector {
            command: None,
            channel: None,
            ..
        } => {
            anyhow::bail!("--channel is required (or a subcommand: rebuild)")
        }
        Top::Projector {
            command: Some(ProjectorCommand::Rebuild { target, args }),
            ..
        } => projector_cli::run(&target, Some(&args)).await,
        Top::Dlq {
            command: DlqCommand::List { target, json },
        } => projector_cli::dlq_list(&target, json).await,
        Top::Dlq {
            command: DlqCommand::Replay { target },
        } => projector_cli::dlq_replay(&target).await,
        Top::Explain { sku, target } => projector_cli::explain(&target, &sku).await,
        Top::Storefront { nats_url } => {
            let shutdown = onhand_common::shutdown::on_signal();
            storefront_cli::run(jetstream(&nats_url).await?, shutdown).await
        }
        Top::Simulate {
            command: SimulateCommand::Shoppers(args),
        } => simulate_cli::run(args, onhand_common::shutdown::on_signal()).await,
        Top::Simulate {
            command: SimulateCommand::Oversell(args),
        } => oversell_cli::run(args),
        Top::Dashboard(args) => top_cli::run(args, onhand_common::shutdown::on_signal()).await,
        Top::Reconcile(args) => {
            let code = reconcile_cli::run(args).await?;
            drop(_telemetry); // flush spans before exiting with the verdict's code
            std::process::exit(code)
        }
    }
}

async fn jetstream(nats_url: &str) -> anyhow::Result<async_nats::jetstream::Context> {
    let url = onhand_common::NatsUrl::parse("NATS_URL", nats_url)?;
    let client = url
        .connect("onhand")
        .await
        .with_context(|| format!("connecting to NATS at {url}"))?;
    Ok(async_nats::jetstream::new(client))
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
