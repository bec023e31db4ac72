//! Many runs: seeds in parallel on a few threads, summaries with confidence intervals, the
//! cron-versus-event-driven comparison, and the sweeps behind the charts. Results are
//! ordered by job, never by which thread finished first, so they do not depend on the
//! thread count.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::delays::DelayDistribution;
use crate::engine::{self, RunStats};
use crate::params::{Mode, ParamError, Params, Sync};
use crate::stats::Estimate;

/// `f` over `jobs` on up to `threads` threads; the output is in the order of `jobs`.
fn par_map<T: std::marker::Sync, R: Send>(
    jobs: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + std::marker::Sync,
) -> Vec<R> {
    let threads = threads.clamp(1, jobs.len().max(1));
    if threads == 1 {
        return jobs.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        out.push((i, f(job)));
                    }
                    out
                })
            })
            .collect::<Vec<_>>();
        workers
            .into_iter()
            .flat_map(|w| match w.join() {
                Ok(out) => out,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// One run per seed.
pub fn run_seeds(
    params: &Params,
    mode: &Mode,
    seeds: &[u64],
    threads: usize,
) -> Result<Vec<RunStats>, ParamError> {
    params.validate()?;
    mode.validate()?;
    par_map(seeds, threads, |&seed| engine::run(params, mode, seed))
        .into_iter()
        .collect()
}

/// A mode's results over seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeSummary {
    pub mode: String,
    pub oversells_per_week: Estimate,
    pub oversells_per_hour: Estimate,
    pub sales_per_hour: Estimate,
    /// Times a SKU's availability fell to 0, per hour.
    pub sell_outs_per_hour: Estimate,
    /// Share of buyers who got their unit.
    pub fill_rate: Estimate,
    /// Per-seed oversell counts over the counted hours.
    pub oversells: Vec<u64>,
}

impl ModeSummary {
    pub fn of(mode: String, runs: &[RunStats]) -> Self {
        let over = |f: fn(&RunStats) -> f64| Estimate::of(&runs.iter().map(f).collect::<Vec<_>>());
        ModeSummary {
            mode,
            oversells_per_week: over(RunStats::oversells_per_week),
            oversells_per_hour: over(RunStats::oversells_per_hour),
            sales_per_hour: over(RunStats::sales_per_hour),
            sell_outs_per_hour: over(RunStats::sell_outs_per_hour),
            fill_rate: over(RunStats::fill_rate),
            oversells: runs.iter().map(|r| r.oversells).collect(),
        }
    }
}

/// The three modes compared: the cron at `interval_minutes`, event-driven with the
/// measured delays, and event-driven with reservations.
pub fn compared_modes(interval_minutes: f64, delays: Arc<DelayDistribution>) -> [Mode; 3] {
    [
        Mode {
            sync: Sync::Cron { interval_minutes },
            reservations: false,
        },
        Mode {
            sync: Sync::Event {
                delays: Arc::clone(&delays),
            },
            reservations: false,
        },
        Mode {
            sync: Sync::Event { delays },
            reservations: true,
        },
    ]
}

/// Each mode over the same seeds (the same shoppers: each channel's shoppers draw from
/// their own random stream, so the modes see the same demand).
pub fn compare(
    params: &Params,
    modes: &[Mode],
    seeds: &[u64],
    threads: usize,
) -> Result<Vec<ModeSummary>, ParamError> {
    params.validate()?;
    for mode in modes {
        mode.validate()?;
    }
    let jobs = modes
        .iter()
        .flat_map(|m| seeds.iter().map(move |&s| (m, s)))
        .collect::<Vec<_>>();
    let runs = par_map(&jobs, threads, |&(mode, seed)| {
        engine::run(params, mode, seed)
    })
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    Ok(modes
        .iter()
        .zip(runs.chunks(seeds.len().max(1)))
        .map(|(mode, runs)| ModeSummary::of(mode.label(), runs))
        .collect())
}

/// A point of a sweep: the x value, oversells per week and the fill rate over the seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SweepPoint {
    pub x: f64,
    pub oversells_per_week: Estimate,
    /// Share of buyers served: what a buffer costs in sales.
    pub fill_rate: Estimate,
}

/// Oversells per week for each `(x, params, mode)`, over the seeds.
pub fn sweep(
    points: &[(f64, Params, Mode)],
    seeds: &[u64],
    threads: usize,
) -> Result<Vec<SweepPoint>, ParamError> {
    for (_, params, mode) in points {
        params.validate()?;
        mode.validate()?;
    }
    let jobs = points
        .iter()
        .flat_map(|point| seeds.iter().map(move |&s| (point, s)))
        .collect::<Vec<_>>();
    let runs = par_map(&jobs, threads, |&((_, params, mode), seed)| {
        engine::run(params, mode, seed)
    })
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    Ok(points
        .iter()
        .zip(runs.chunks(seeds.len().max(1)))
        .map(|((x, _, _), runs)| {
            let over =
                |f: fn(&RunStats) -> f64| Estimate::of(&runs.iter().map(f).collect::<Vec<_>>());
            SweepPoint {
                x: *x,
                oversells_per_week: over(RunStats::oversells_per_week),
                fill_rate: over(RunStats::fill_rate),
            }
        })
        .collect())
}

/// The cron at each interval (minutes), otherwise `params`.
pub fn interval_points(params: &Params, intervals: &[f64]) -> Vec<(f64, Params, Mode)> {
    intervals
        .iter()
        .map(|&interval_minutes| {
            let mode = Mode {
                sync: Sync::Cron { interval_minutes },
                reservations: false,
            };
            (interval_minutes, params.clone(), mode)
        })
        .collect()
}

/// `mode` at each buffer (units held back from every channel), otherwise `params`.
pub fn buffer_points(params: &Params, mode: &Mode, buffers: &[u32]) -> Vec<(f64, Params, Mode)> {
    buffers
        .iter()
        .map(|&buffer| {
            let p = Params {
                buffer,
                ..params.clone()
            };
            (f64::from(buffer), p, mode.clone())
        })
        .collect()
}
