//! `onhand-bench reservations`: seed stock, run the reservation load, watch the stream, and
//! assemble the [`Report`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::client::Ledger;
use crate::load::{self, Spec};
use crate::report::{Report, StreamReport};
use crate::seed;
use crate::stats::{self, Latency, round3};
use crate::stream::Watched;

/// Longest run accepted: the benchmark is bounded in time.
pub const MAX_DURATION_SECS: u64 = 3600;
/// How long seed events may take to reach the stream before the run starts.
const SEED_ARRIVAL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub token: String,
    pub wms_token: String,
    pub warehouse: String,
    pub clients: usize,
    pub duration_secs: u64,
    pub skus: usize,
    pub sku_prefix: String,
    pub rate: Option<f64>,
    pub max_requests: u64,
    pub nats_url: Option<String>,
    pub stream: String,
    pub drain_timeout_secs: u64,
}

pub async fn run(options: Options) -> anyhow::Result<Report> {
    if !(1..=1024).contains(&options.clients) {
        bail!("--clients must be between 1 and 1024");
    }
    if !(1..=MAX_DURATION_SECS).contains(&options.duration_secs) {
        bail!("--duration-secs must be between 1 and {MAX_DURATION_SECS}");
    }
    if !(1..=100_000).contains(&options.skus) {
        bail!("--skus must be between 1 and 100000");
    }
    if let Some(rate) = options.rate
        && !(rate.is_finite() && (0.1..=100_000.0).contains(&rate))
    {
        bail!("--rate must be between 0.1 and 100000 requests per second");
    }
    let ledger = Ledger::new(&options.url, options.clients)?;
    let watched = match &options.nats_url {
        Some(url) => Some(Watched::connect(url, &options.stream).await?),
        None => None,
    };
    let skus = Arc::new(seed::sku_names(&options.sku_prefix, options.skus));

    let before_seed = match &watched {
        Some(w) => Some(w.state().await?),
        None => None,
    };
    let seeded = seed::seed(
        &ledger,
        &options.wms_token,
        &options.warehouse,
        &skus,
        options.clients,
    )
    .await?;
    // Let the seed events through first, so the run's stream counts are its own.
    let at_start = match (&watched, before_seed) {
        (Some(w), Some(before)) => Some(
            w.wait_for_seq(before.last_seq + seeded as u64, SEED_ARRIVAL_TIMEOUT)
                .await
                .context("waiting for the seed receipts' events")?
                .0,
        ),
        _ => None,
    };

    let spec = Spec {
        clients: options.clients,
        duration: Duration::from_secs(options.duration_secs),
        rate: options.rate,
        max_requests: options.max_requests,
        skus: Arc::clone(&skus),
        token: options.token.clone(),
    };
    let run = load::run(&ledger, &spec).await?;

    let requests = run.samples.len() as u64;
    let errors = stats::errors(&run.samples, 201);
    let failed: u64 = errors.values().sum();
    let ok = requests - failed;
    let elapsed = run.elapsed.as_secs_f64();

    let stream = match (&watched, at_start) {
        (Some(w), Some(at_start)) => {
            let at_end = w.state().await?;
            let (drained, drain) = w
                .wait_for_seq(
                    at_start.last_seq + ok,
                    Duration::from_secs(options.drain_timeout_secs),
                )
                .await
                .context("waiting for the reservations' events")?;
            Some(StreamReport {
                name: options.stream.clone(),
                at_start,
                at_end,
                drained,
                in_run_per_sec: round3((at_end.last_seq - at_start.last_seq) as f64 / elapsed),
                delivered: drained.last_seq - at_start.last_seq,
                drain_secs: round3(drain.as_secs_f64()),
            })
        }
        _ => None,
    };

    Ok(Report {
        mode: if options.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        clients: options.clients,
        target_rate: options.rate,
        skus: options.skus,
        seeded,
        started_unix: run.started_unix,
        finished_unix: run.finished_unix,
        elapsed_secs: round3(elapsed),
        requests,
        ok,
        error_rate: if requests == 0 {
            0.0
        } else {
            failed as f64 / requests as f64
        },
        errors,
        throughput_per_sec: round3(ok as f64 / elapsed),
        latency_ms: Latency::of(run.samples.iter().map(|s| s.latency).collect()),
        service_latency_ms: Latency::of(run.samples.iter().map(|s| s.service).collect()),
        stalled: run.stalled,
        max_behind_ms: round3(run.max_behind.as_secs_f64() * 1000.0),
        stream,
    })
}
