//! `onhand-chaos`: the fault suite behind `scripts/chaos` (issue 7). Starts a 3-node
//! NATS cluster with R3 streams, a Postgres of its own, the ledger, the sandbox and a
//! projector per channel as child processes, puts the ledger under load, then: kills one
//! NATS node and brings it back, restarts the whole cluster, restarts Postgres, and runs
//! the channels at 30% faults with one channel down past the lag alert. Every recovery is
//! waited for with a deadline and timed; at the end every channel must equal the ledger,
//! the DLQ must be empty and `onhand reconcile` must agree. Prints a Markdown report
//! (and writes it with `--report`); exits 1 when any check failed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;

/// A progress line on stderr (the report goes to stdout).
macro_rules! say {
    ($($arg:tt)*) => {
        eprintln!("[chaos] {}", format_args!($($arg)*))
    };
}

mod cluster;
mod load;
mod observe;
mod pg;
mod procs;
mod report;
mod scenarios;
mod verdict;
mod world;

#[derive(Debug, Parser)]
#[command(
    name = "onhand-chaos",
    about = "Fault suite: NATS node, cluster and Postgres restarts, channel faults"
)]
struct Cli {
    /// The CI form: fewer SKUs, shorter outages (the channel outage still > 60 s).
    #[arg(long)]
    short: bool,
    /// The `onhand` binary.
    #[arg(long, default_value = "target/debug/onhand")]
    onhand_bin: PathBuf,
    /// The nats-server binary (>= 2.10).
    #[arg(
        long,
        env = "ONHAND_NATS_SERVER_BIN",
        default_value = ".tools/bin/nats-server"
    )]
    nats_server_bin: PathBuf,
    /// Postgres's bin directory (initdb, postgres, pg_isready, createdb); default: the
    /// newest /usr/lib/postgresql/<version>/bin.
    #[arg(long)]
    pg_bin_dir: Option<PathBuf>,
    /// Where stores and logs go (emptied first).
    #[arg(long, default_value = ".run/chaos")]
    run_dir: PathBuf,
    /// Also write the report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The command line to name in the report.
    #[arg(long, default_value = "onhand-chaos")]
    command: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    let cli = Cli::parse();
    let profile = if cli.short {
        scenarios::Profile::short()
    } else {
        scenarios::Profile::full()
    };
    let started = Instant::now();
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .context("formatting the date")?;
    let tools = world::Tools {
        onhand: std::path::absolute(&cli.onhand_bin)?,
        nats_server: std::path::absolute(&cli.nats_server_bin)?,
        pg_bin_dir: match cli.pg_bin_dir {
            Some(dir) => dir,
            None => pg::find_bin_dir()?,
        },
    };
    anyhow::ensure!(
        tools.onhand.is_file(),
        "{} not found (cargo build -p onhand)",
        tools.onhand.display()
    );
    anyhow::ensure!(
        tools.nats_server.is_file(),
        "{} not found (scripts/setup)",
        tools.nats_server.display()
    );
    let run_dir = std::path::absolute(&cli.run_dir)?;
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("emptying {}", run_dir.display()))?;
    }
    std::fs::create_dir_all(&run_dir)?;
    say!(
        "{} profile; logs and stores in {}",
        profile.name,
        run_dir.display()
    );

    // Every child belongs to the world inside this future: when it ends, fails or is
    // dropped (SIGINT/SIGTERM below), the children are killed with it.
    let suite = async {
        let mut world = world::World::start(&tools, &run_dir, profile.skus).await?;
        let outcome = scenarios::run(&mut world, &profile).await?;
        world.shutdown().await.context("stopping the system")?;
        anyhow::Ok(outcome)
    };
    // A bound on the whole run, far above its usual length: a hang fails, it never stalls CI.
    let limit = std::time::Duration::from_secs(if cli.short { 9 * 60 } else { 20 * 60 });
    let outcome = tokio::select! {
        outcome = suite => outcome,
        signal = terminated() => Err(anyhow::anyhow!("stopped by {signal}")),
        () = tokio::time::sleep(limit) => Err(anyhow::anyhow!(
            "the suite did not finish within {} minutes", limit.as_secs() / 60
        )),
    };
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => {
            say!("FAILED: {err:#}");
            say!("logs: {}", run_dir.display());
            std::process::exit(1);
        }
    };

    let info = report::RunInfo {
        command: cli.command,
        date,
        machine: report::machine(),
        nats_version: version(&tools.nats_server, "--version").await,
        postgres_version: version(&tools.pg_bin_dir.join("postgres"), "--version").await,
        duration_secs: started.elapsed().as_secs_f64(),
    };
    let text = report::render(&profile, &info, &outcome)?;
    #[allow(clippy::print_stdout)]
    {
        println!("{text}");
    }
    if let Some(path) = &cli.report {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
        say!("report written to {}", path.display());
    }
    let failed: Vec<_> = outcome.checks.iter().filter(|c| !c.ok).collect();
    if failed.is_empty() {
        say!(
            "every check passed in {:.1} minutes",
            started.elapsed().as_secs_f64() / 60.0
        );
        Ok(())
    } else {
        for c in &failed {
            say!("FAILED: {}: {}", c.name, c.detail);
        }
        std::process::exit(1)
    }
}

/// Resolves on SIGINT or SIGTERM, naming it.
async fn terminated() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            say!("cannot watch for SIGTERM: {err}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// The first line a binary prints for `flag`.
async fn version(bin: &std::path::Path, flag: &str) -> String {
    let mut command = tokio::process::Command::new(bin);
    command.arg(flag);
    match procs::output(command, std::time::Duration::from_secs(10), "--version").await {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("unknown")
            .trim()
            .to_owned(),
        Err(_) => "unknown".to_owned(),
    }
}
