//! `onhand-bench`: the load generator and stream probe behind `scripts/bench`.
//!
//! - `reservations`: seed stock, then drive `POST /v1/reservations` from many clients (closed
//!   loop, or open loop at a fixed rate) and print a JSON report; exits non-zero when more
//!   than `--max-error-rate` of the requests failed or events went missing.
//! - `stream-info`: print a JetStream stream's message count and sequences as JSON.
//! - `channels`: SKUs per second through each channel adapter and the sandbox, with limits
//!   off and with the documented default limits on, as JSON ([`channels`]).
//! - `reconcile`: time, peak memory and read-back calls of `onhand reconcile` over N SKUs
//!   per sandbox channel, limits off, as JSON ([`reconcile`]).

mod channels;
mod client;
mod load;
mod procfs;
mod projector;
mod reconcile;
mod report;
mod reservations;
mod seed;
mod stats;
mod stream;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// Measured with the allocator the `onhand` binary ships with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "onhand-bench", about = "Load generator for the onhand ledger")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Seed stock, run reservations, print the result as JSON.
    Reservations(ReservationsArgs),
    /// Print a JetStream stream's messages, first and last sequence as JSON.
    StreamInfo {
        #[arg(long, env = "NATS_URL")]
        nats_url: String,
        #[arg(long, default_value = "INVENTORY")]
        stream: String,
    },
    /// Push SKUs through every channel adapter against an in-process sandbox, print JSON.
    Channels(ChannelsArgs),
    /// The projector: throughput against async-nats alone, a burst against Shopify's
    /// limits, or propagation through a running system; print JSON.
    Projector(ProjectorArgs),
    /// `onhand reconcile` over N SKUs per sandbox channel, limits off: time, peak memory,
    /// read-back calls; print JSON. Fails when a report misses the seeded drift.
    Reconcile(ReconcileArgs),
}

#[derive(Debug, clap::Args)]
struct ReconcileArgs {
    /// The `onhand` binary to run (release build).
    #[arg(long, default_value = "target/release/onhand")]
    onhand_bin: std::path::PathBuf,
    /// A database of the benchmark's own (its ledger tables are emptied and refilled).
    #[arg(long)]
    database_url: String,
    /// A NATS server with the streams applied (the watermarks bucket).
    #[arg(long, env = "NATS_URL")]
    nats_url: String,
    #[arg(long, default_value_t = 100_000)]
    skus: usize,
    /// Channels, comma-separated (those with a sandbox emulator).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "shopify,amazon,ebay,woocommerce,bigcommerce,webhook"
    )]
    channels: Vec<onhand_channels::ChannelKind>,
}

#[derive(Debug, clap::Args)]
struct ProjectorArgs {
    #[command(subcommand)]
    run: ProjectorRun,
    /// A NATS server with the streams applied (for throughput and burst: one this run owns).
    #[arg(long, env = "NATS_URL", global = true)]
    nats_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ProjectorRun {
    /// N events over S SKUs: async-nats pull+ack alone vs one projector to the sandbox.
    Throughput {
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        #[arg(long, default_value_t = 10_000)]
        skus: usize,
        /// shopify or webhook.
        #[arg(long, default_value = "webhook")]
        channel: String,
        #[arg(long, value_enum, default_value = "zipf")]
        spread: projector::Spread,
        /// The nats-server's pid, to count its CPU in each phase.
        #[arg(long)]
        nats_pid: Option<u32>,
    },
    /// Decoding N events: decode_event against serde_json alone, same payloads, same
    /// process (needs no server).
    Decode {
        #[arg(long, default_value_t = 100_000)]
        events: usize,
    },
    /// B events for K SKUs within one second against Shopify's documented limits.
    Burst {
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        #[arg(long, default_value_t = 200)]
        skus: usize,
    },
    /// Reservations at a fixed rate through a running ledger, sandbox and webhook projector.
    Propagation {
        #[arg(long)]
        ledger_url: String,
        #[arg(long)]
        sandbox_url: String,
        #[arg(long, env = "ONHAND_BENCH_TOKEN", hide_env_values = true)]
        token: String,
        #[arg(long, env = "ONHAND_BENCH_WMS_TOKEN", hide_env_values = true)]
        wms_token: String,
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
        #[arg(long, default_value_t = 20)]
        duration_secs: u64,
        #[arg(long, default_value_t = 500)]
        skus: usize,
        /// The projector process, for its resident memory.
        #[arg(long)]
        projector_pid: Option<u32>,
        /// Also write every latency sample (ms, sorted) to this JSON file.
        #[arg(long)]
        samples_out: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct ChannelsArgs {
    /// Channels to measure, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "shopify,amazon,ebay,woocommerce,bigcommerce,webhook,storefront_kv"
    )]
    channels: Vec<onhand_channels::ChannelKind>,
    /// SKUs seeded for the limits-off run.
    #[arg(long, default_value_t = 2000)]
    skus: usize,
    /// How long each limits-off run pushes after its first pass.
    #[arg(long, default_value_t = 5.0)]
    unlimited_secs: f64,
    /// How long each limits-on run measures steady state.
    #[arg(long, default_value_t = 30.0)]
    limited_secs: f64,
    /// SKUs in the limits-on runs (at least one full batch, at most --skus).
    #[arg(long, default_value_t = 500)]
    limited_skus: usize,
    /// A limits-on run fails when its burst is not spent by then.
    #[arg(long, default_value_t = 120.0)]
    max_warmup_secs: f64,
    /// A NATS server with JetStream, for the storefront KV channel (skipped without).
    #[arg(long)]
    nats_url: Option<String>,
}

#[derive(Debug, clap::Args)]
struct ReservationsArgs {
    /// The ledger's base URL (loopback only).
    #[arg(long)]
    url: String,
    /// Bearer token with orders:write, for the reservations.
    #[arg(long, env = "ONHAND_BENCH_TOKEN", hide_env_values = true)]
    token: String,
    /// Bearer token with stock:write, for seeding stock.
    #[arg(long, env = "ONHAND_BENCH_WMS_TOKEN", hide_env_values = true)]
    wms_token: String,
    /// The warehouse that receives the seed stock.
    #[arg(long, default_value = "wh1")]
    warehouse: String,
    /// Concurrent clients (closed loop), or most requests in flight (open loop).
    #[arg(long, default_value_t = 32)]
    clients: usize,
    #[arg(long, default_value_t = 30)]
    duration_secs: u64,
    /// SKUs the reservations spread over, round-robin.
    #[arg(long, default_value_t = 1000)]
    skus: usize,
    #[arg(long, default_value = "bench-")]
    sku_prefix: String,
    /// Open loop: total requests per second across all clients.
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many requests even if the duration has not passed.
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: u64,
    /// Fail when more than this fraction of requests did not get 201.
    #[arg(long, default_value_t = 0.01)]
    max_error_rate: f64,
    /// Watch this NATS server's stream: count the events that reach it.
    #[arg(long)]
    nats_url: Option<String>,
    #[arg(long, default_value = "INVENTORY")]
    stream: String,
    /// After the run, how long the stream may take to receive every event.
    #[arg(long, default_value_t = 60)]
    drain_timeout_secs: u64,
}

fn main() -> anyhow::Result<()> {
    // Before anything is allocated in earnest (see the function); a kernel without the
    // setting has nothing to turn off.
    let _ = onhand_common::memory::disable_transparent_huge_pages();
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    let cli = Cli::parse();
    if let Command::Projector(args) = cli.command {
        // The projector runs as it does in production: on the multi-threaded runtime.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        return runtime.block_on(run_projector(args));
    }
    // One thread drives all clients: the load generator shares the machine with the ledger,
    // Postgres and NATS, and should take as little of it as it can.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Reservations(args) => {
            let max_error_rate = args.max_error_rate;
            let report = reservations::run(reservations::Options {
                url: args.url,
                token: args.token,
                wms_token: args.wms_token,
                warehouse: args.warehouse,
                clients: args.clients,
                duration_secs: args.duration_secs,
                skus: args.skus,
                sku_prefix: args.sku_prefix,
                rate: args.rate,
                max_requests: args.max_requests,
                nats_url: args.nats_url,
                stream: args.stream,
                drain_timeout_secs: args.drain_timeout_secs,
            })
            .await?;
            print_json(&report)?;
            report.check(max_error_rate)
        }
        Command::StreamInfo { nats_url, stream } => {
            let state = stream::Watched::connect(&nats_url, &stream)
                .await?
                .state()
                .await?;
            print_json(&state)
        }
        Command::Channels(args) => {
            let report = channels::run(channels::Options {
                channels: args.channels,
                skus: args.skus,
                unlimited_secs: args.unlimited_secs,
                limited_secs: args.limited_secs,
                limited_skus: args.limited_skus,
                max_warmup_secs: args.max_warmup_secs,
                nats_url: args.nats_url,
            })
            .await?;
            print_json(&report)
        }
        Command::Projector(args) => run_projector(args).await,
        Command::Reconcile(args) => {
            let report = reconcile::run(reconcile::Options {
                onhand_bin: args.onhand_bin,
                database_url: args.database_url,
                nats_url: args.nats_url,
                skus: args.skus,
                channels: args.channels,
            })
            .await?;
            print_json(&report)?;
            reconcile::check_report(&report)
        }
    }
}

async fn run_projector(args: ProjectorArgs) -> anyhow::Result<()> {
    let nats_url = args.nats_url;
    let jetstream = || async {
        let nats_url = nats_url
            .as_deref()
            .context("--nats-url (or NATS_URL) is required")?;
        let client = async_nats::connect(nats_url)
            .await
            .with_context(|| format!("connecting to {nats_url}"))?;
        anyhow::Ok(async_nats::jetstream::new(client))
    };
    match args.run {
        ProjectorRun::Decode { events } => print_json(&projector::decode(events)?),
        ProjectorRun::Throughput {
            events,
            skus,
            channel,
            spread,
            nats_pid,
        } => {
            let channel = onhand_sandbox::Channel::parse(&channel)
                .with_context(|| format!("unknown channel {channel:?}"))?;
            let js = jetstream().await?;
            print_json(&projector::throughput(&js, events, skus, spread, channel, nats_pid).await?)
        }
        ProjectorRun::Burst { events, skus } => {
            print_json(&projector::burst(&jetstream().await?, events, skus).await?)
        }
        ProjectorRun::Propagation {
            ledger_url,
            sandbox_url,
            token,
            wms_token,
            rate,
            duration_secs,
            skus,
            projector_pid,
            samples_out,
        } => {
            let args = projector::PropagationArgs {
                ledger_url,
                sandbox_url,
                token,
                wms_token,
                rate,
                duration: std::time::Duration::from_secs(duration_secs),
                skus,
                projector_pid,
                samples_out,
            };
            print_json(&projector::propagation(&jetstream().await?, &args).await?)
        }
    }
}

#[allow(clippy::print_stdout)]
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).context("encoding the result")?
    );
    Ok(())
}
