//! The load itself: `clients` concurrent reservation clients, either in a closed loop (each
//! sends its next request as soon as the previous one is answered) or in an open loop (a
//! fixed total rate, one request due every `1/rate`, whether or not the system keeps up).
//!
//! In the open loop a request's latency is measured from the moment it was due, not from
//! when it could be sent, so a system that falls behind shows it in the percentiles instead
//! of hiding it (no coordinated omission). Requests that found all `clients` busy when they
//! were due are counted as `stalled`, and the worst delay of a send behind its schedule is
//! reported.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::client::Ledger;
use crate::stats::Sample;

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    pub clients: usize,
    pub duration: Duration,
    /// Total requests per second (open loop); `None` for a closed loop.
    pub rate: Option<f64>,
    /// No more requests than this, however fast the system is.
    pub max_requests: u64,
    pub skus: Arc<Vec<String>>,
    pub token: String,
}

/// What happened.
#[derive(Debug)]
pub struct Run {
    pub samples: Vec<Sample>,
    /// From the first send to the last response.
    pub elapsed: Duration,
    pub started_unix: f64,
    pub finished_unix: f64,
    /// Open loop only: requests due while every client was busy.
    pub stalled: u64,
    /// Open loop only: the longest a send trailed its schedule.
    pub max_behind: Duration,
}

pub async fn run(ledger: &Ledger, spec: &Spec) -> anyhow::Result<Run> {
    let started_unix = unix_now();
    let started = Instant::now();
    let (samples, stalled, max_behind) = match spec.rate {
        None => (closed(ledger, spec, started).await?, 0, Duration::ZERO),
        Some(rate) => open(ledger, spec, rate, started).await?,
    };
    Ok(Run {
        samples,
        elapsed: started.elapsed(),
        started_unix,
        finished_unix: unix_now(),
        stalled,
        max_behind,
    })
}

async fn closed(ledger: &Ledger, spec: &Spec, started: Instant) -> anyhow::Result<Vec<Sample>> {
    let deadline = started + spec.duration;
    let issued = Arc::new(AtomicU64::new(0));
    let mut clients = JoinSet::new();
    for _ in 0..spec.clients {
        let (ledger, spec, issued) = (ledger.clone(), spec.clone(), Arc::clone(&issued));
        clients.spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= spec.max_requests {
                    break;
                }
                let sku = &spec.skus[(n % spec.skus.len() as u64) as usize];
                let sent = Instant::now();
                let outcome = ledger.reserve(&spec.token, sku).await;
                let took = sent.elapsed();
                samples.push(Sample {
                    outcome,
                    latency: took,
                    service: took,
                });
            }
            samples
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = clients.join_next().await {
        all.extend(joined.context("a load client panicked")?);
    }
    Ok(all)
}

async fn open(
    ledger: &Ledger,
    spec: &Spec,
    rate: f64,
    started: Instant,
) -> anyhow::Result<(Vec<Sample>, u64, Duration)> {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let slots = Arc::new(Semaphore::new(spec.clients));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (mut stalled, mut max_behind) = (0u64, Duration::ZERO);
    for n in 0..spec.max_requests {
        let due = started + interval.mul_f64(n as f64);
        if due >= started + spec.duration {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                stalled += 1;
                Arc::clone(&slots)
                    .acquire_owned()
                    .await
                    .context("invariant: the slot semaphore is never closed")?
            }
        };
        let sent = Instant::now();
        max_behind = max_behind.max(sent.saturating_duration_since(due));
        let (ledger, token, tx) = (ledger.clone(), spec.token.clone(), tx.clone());
        let sku = spec.skus[(n % spec.skus.len() as u64) as usize].clone();
        tokio::spawn(async move {
            let outcome = ledger.reserve(&token, &sku).await;
            let done = Instant::now();
            // The receiver lives until every sender is gone; a failed send cannot happen.
            tx.send(Sample {
                outcome,
                latency: done - due,
                service: done - sent,
            })
            .ok();
            drop(slot);
        });
    }
    drop(tx);
    let mut samples = Vec::new();
    while let Some(sample) = rx.recv().await {
        samples.push(sample);
    }
    Ok((samples, stalled, max_behind))
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
