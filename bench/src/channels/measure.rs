//! The two measurements of one channel.
//!
//! - [`unlimited`]: no bucket in the sandbox, no limiter in the adapter. A first pass over
//!   every SKU (which resolves channel ids where the adapter needs them), then batches of
//!   the adapter's size, quantities changing every round, for a fixed time. Every outcome
//!   must be `Applied`.
//! - [`limited`]: the sandbox's bucket set to the channel's documented default limit, the
//!   adapter's limiter to the adapter's own default (`default_rate_limit()`). The run goes until every SKU has been pushed once (if the adapter resolves
//!   ids) and the sandbox's bucket has been nearly empty for a moment
//!   ([`burst_spent_below`]: the burst is spent); from then on, for a fixed time, it is steady state: units admitted per second
//!   against the allowed rate, and throttled answers.
//!
//! One caller, one request in flight: `push` is awaited batch after batch, as a projector
//! does for one channel.

use std::time::{Duration, Instant};

use anyhow::bail;
use onhand_channels::{ChannelKind, Push, PushOutcome, RateLimit};
use onhand_common::Sku;
use onhand_sandbox::Channel;
use serde::Serialize;

use super::adapters::{Limit, Pusher};
use super::counters::{self, Counters};
use super::cpu;
use super::sandbox::{SandboxThread, Status};

/// Where one channel's numbers come from.
#[derive(Debug)]
pub struct Probe<'a> {
    pub kind: ChannelKind,
    pub counters: &'a Counters,
    pub sandbox: &'a SandboxThread,
    /// The sandbox's emulator of this channel (none for storefront KV).
    pub emulator: Option<Channel>,
}

/// Everything counted at one moment.
#[derive(Debug, Clone)]
struct Mark {
    at: Instant,
    requests: counters::Snapshot,
    sandbox: Option<Status>,
    adapter_cpu: Option<Duration>,
    sandbox_cpu: Option<Duration>,
    outcomes: Outcomes,
    pushes: u64,
}

impl Probe<'_> {
    fn mark(&self, tally: &Tally) -> Mark {
        Mark {
            at: Instant::now(),
            requests: self.counters.snapshot(self.kind.as_str()),
            sandbox: self.emulator.map(|c| self.sandbox.status(c)),
            adapter_cpu: cpu::current_tid().and_then(cpu::thread_cpu),
            sandbox_cpu: self.sandbox.tid.and_then(cpu::thread_cpu),
            outcomes: tally.outcomes,
            pushes: tally.pushes,
        }
    }
}

/// What became of the pushes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    pub applied: u64,
    pub transient: u64,
    pub permanent: u64,
}

impl Outcomes {
    fn since(self, earlier: Outcomes) -> Outcomes {
        Outcomes {
            applied: self.applied - earlier.applied,
            transient: self.transient - earlier.transient,
            permanent: self.permanent - earlier.permanent,
        }
    }
}

/// Running totals, and the first outcome that was not `Applied` (for the error message).
#[derive(Debug, Default)]
struct Tally {
    outcomes: Outcomes,
    pushes: u64,
    first_failure: Option<String>,
}

impl Tally {
    fn add(&mut self, outcomes: &[PushOutcome]) {
        for outcome in outcomes {
            self.pushes += 1;
            match outcome {
                PushOutcome::Applied => self.outcomes.applied += 1,
                PushOutcome::Transient { .. } | PushOutcome::Deferred { .. } => {
                    self.outcomes.transient += 1;
                }
                PushOutcome::Permanent { .. } => self.outcomes.permanent += 1,
            }
            if !matches!(outcome, PushOutcome::Applied) && self.first_failure.is_none() {
                self.first_failure = Some(format!("{outcome:?}"));
            }
        }
    }
}

/// SKUs in batches of the adapter's size, round after round; every round sets every SKU to
/// a quantity different from the previous round's.
#[derive(Debug)]
struct Cursor {
    skus: Vec<Sku>,
    batch: usize,
    next: usize,
    round: i64,
}

impl Cursor {
    fn new(skus: &[Sku], batch: usize) -> Self {
        Self {
            skus: skus.to_vec(),
            batch: batch.max(1),
            next: 0,
            round: 1,
        }
    }

    fn next_batch(&mut self) -> Vec<Push> {
        let end = (self.next + self.batch).min(self.skus.len());
        let pushes = (self.next..end)
            .map(|i| Push {
                sku: self.skus[i].clone(),
                quantity: quantity(self.round, i),
                version: self.round,
                event_id: uuid::Uuid::now_v7(),
            })
            .collect();
        self.next = end;
        if self.next >= self.skus.len() {
            self.next = 0;
            self.round += 1;
        }
        pushes
    }

    /// Every SKU has been pushed at least once.
    fn first_pass_done(&self) -> bool {
        self.round > 1
    }
}

/// 1..=500, and never the same for one SKU in two consecutive rounds.
fn quantity(round: i64, index: usize) -> i64 {
    (round * 37 + index as i64).rem_euclid(500) + 1
}

/// One stretch of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub secs: f64,
    pub pushes: u64,
    pub outcomes: Outcomes,
    /// Requests the adapter sent, by response status.
    pub requests_by_status: std::collections::BTreeMap<String, u64>,
    pub requests: u64,
    pub requests_per_sec: f64,
    /// `Applied` outcomes per second.
    pub skus_per_sec: f64,
    /// Requests the sandbox answered as throttled.
    pub sandbox_throttled: Option<u64>,
    /// Responses the adapter classified as throttled (429, or THROTTLED in a 200).
    pub adapter_throttled: u64,
    /// SKU writes the sandbox accepted.
    pub sandbox_writes: Option<u64>,
    /// CPU time of the adapter's thread and of the sandbox's thread.
    pub adapter_cpu_secs: Option<f64>,
    pub sandbox_cpu_secs: Option<f64>,
}

impl Phase {
    fn between(from: &Mark, to: &Mark) -> Self {
        let secs = to.at.duration_since(from.at).as_secs_f64().max(1e-9);
        let requests = to.requests.since(&from.requests);
        let outcomes = to.outcomes.since(from.outcomes);
        let cpu =
            |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?).as_secs_f64());
        Phase {
            secs,
            pushes: to.pushes - from.pushes,
            outcomes,
            requests: requests.requests(),
            requests_per_sec: requests.requests() as f64 / secs,
            requests_by_status: requests.by_status,
            skus_per_sec: outcomes.applied as f64 / secs,
            sandbox_throttled: from
                .sandbox
                .zip(to.sandbox)
                .map(|(a, b)| b.throttled - a.throttled),
            adapter_throttled: requests.throttled,
            sandbox_writes: from
                .sandbox
                .zip(to.sandbox)
                .map(|(a, b)| b.writes - a.writes),
            adapter_cpu_secs: cpu(from.adapter_cpu, to.adapter_cpu),
            sandbox_cpu_secs: cpu(from.sandbox_cpu, to.sandbox_cpu),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Unlimited {
    pub skus: usize,
    pub batch: usize,
    /// The first pass over every SKU (resolving ids where the adapter needs them).
    pub warmup: Phase,
    pub measured: Phase,
    /// Adapter thread CPU per applied SKU, in microseconds.
    pub adapter_cpu_us_per_sku: Option<f64>,
}

/// Limits off: push for `secs` after a first pass; fail on any outcome but `Applied`.
pub async fn unlimited<P: Pusher>(
    probe: &Probe<'_>,
    pusher: &P,
    skus: &[Sku],
    secs: f64,
) -> anyhow::Result<Unlimited> {
    let mut cursor = Cursor::new(skus, pusher.batch());
    let mut tally = Tally::default();
    let start = probe.mark(&tally);
    while !cursor.first_pass_done() {
        tally.add(&pusher.push(&cursor.next_batch()).await);
    }
    let warm = probe.mark(&tally);
    let deadline = warm.at + Duration::from_secs_f64(secs);
    while Instant::now() < deadline {
        tally.add(&pusher.push(&cursor.next_batch()).await);
    }
    let end = probe.mark(&tally);
    if let Some(failure) = &tally.first_failure {
        bail!(
            "{}: with limits off every push must be applied, but {} were transient and {} permanent (first: {failure})",
            probe.kind,
            tally.outcomes.transient,
            tally.outcomes.permanent
        );
    }
    let measured = Phase::between(&warm, &end);
    if let Some(writes) = measured.sandbox_writes
        && writes < measured.outcomes.applied
    {
        bail!(
            "{}: the adapter reported {} pushes applied but the sandbox accepted {writes} writes",
            probe.kind,
            measured.outcomes.applied
        );
    }
    Ok(Unlimited {
        skus: skus.len(),
        batch: pusher.batch(),
        warmup: Phase::between(&start, &warm),
        adapter_cpu_us_per_sku: measured
            .adapter_cpu_secs
            .filter(|_| measured.outcomes.applied > 0)
            .map(|s| s * 1e6 / measured.outcomes.applied as f64),
        measured,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Limited {
    pub skus: usize,
    pub batch: usize,
    pub unit: &'static str,
    /// The documented limit, which the sandbox's bucket enforces: its size and the allowed
    /// rate (units restored per second).
    pub capacity: f64,
    pub refill_per_sec: f64,
    /// The adapter's own limiter (`default_rate_limit()`).
    pub adapter_limit: Option<AdapterLimit>,
    /// Units one write request costs.
    pub write_cost: f64,
    /// Write requests per second the limit allows (refill ÷ write cost).
    pub allowed_requests_per_sec: f64,
    /// Steady state started once the sandbox's bucket held less than this.
    pub spent_below: f64,
    /// Until the burst was spent (and, where the adapter resolves ids, every SKU resolved).
    pub warmup: Phase,
    pub steady: Phase,
    /// Units the sandbox's bucket admitted during steady state (what it held at the start,
    /// plus what it restored, minus what it held at the end), per second.
    pub units_per_sec: f64,
    /// `units_per_sec` ÷ `refill_per_sec`.
    pub ratio: f64,
    /// Requests not answered as throttled during steady state, per second.
    pub admitted_requests_per_sec: f64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct AdapterLimit {
    pub capacity: f64,
    pub refill_per_sec: f64,
}

/// The sandbox's bucket is taken as nearly drained below this level; steady state starts
/// once it has stayed there for twice the time the level takes to restore (at least 1 s),
/// by when what was left of the burst is spent too, or the window would start with units
/// in hand and overstate the rate. Not below one write's cost: in steady state the
/// adapter's limiter may trail the sandbox's bucket by up to a write or so (after a 429
/// its pause empties its own bucket, and it trusts a reported level lower than its own),
/// which leaves the bucket hovering a little above zero for good.
fn burst_spent_below(limit: Limit) -> f64 {
    (2.0 * limit.write_cost).max(0.05 * limit.documented.capacity)
}

/// Documented limits on (the sandbox set to `limit`, the adapter to `adapter_limit`): warm
/// up until the burst is spent, then measure for `secs`.
#[allow(clippy::too_many_arguments)]
pub async fn limited<P: Pusher>(
    probe: &Probe<'_>,
    pusher: &P,
    limit: Limit,
    adapter_limit: Option<RateLimit>,
    resolves_ids: bool,
    skus: &[Sku],
    secs: f64,
    max_warmup_secs: f64,
) -> anyhow::Result<Limited> {
    let Some(emulator) = probe.emulator else {
        bail!("{}: no emulator to limit", probe.kind);
    };
    let RateLimit {
        capacity,
        refill_per_sec,
    } = limit.documented;
    let mut cursor = Cursor::new(skus, pusher.batch());
    let mut tally = Tally::default();
    let start = probe.mark(&tally);
    let warmup_deadline = start.at + Duration::from_secs_f64(max_warmup_secs);
    let spent_below = burst_spent_below(limit);
    let settle = Duration::from_secs_f64((2.0 * spent_below / refill_per_sec).max(1.0));
    let mut spent_at: Option<Instant> = None;
    loop {
        tally.add(&pusher.push(&cursor.next_batch()).await);
        let spent = probe
            .sandbox
            .status(emulator)
            .available
            .is_some_and(|a| a < spent_below);
        if spent && (cursor.first_pass_done() || !resolves_ids) {
            let since = *spent_at.get_or_insert_with(Instant::now);
            if since.elapsed() >= settle {
                break;
            }
        }
        if Instant::now() > warmup_deadline {
            bail!(
                "{}: the burst was not spent within {max_warmup_secs} s",
                probe.kind
            );
        }
    }
    let warm = probe.mark(&tally);
    let deadline = warm.at + Duration::from_secs_f64(secs);
    while Instant::now() < deadline {
        tally.add(&pusher.push(&cursor.next_batch()).await);
    }
    let end = probe.mark(&tally);
    if tally.outcomes.permanent > 0 {
        bail!(
            "{}: {} pushes failed permanently (first: {})",
            probe.kind,
            tally.outcomes.permanent,
            tally.first_failure.as_deref().unwrap_or("?")
        );
    }
    let steady = Phase::between(&warm, &end);
    if steady.outcomes.applied == 0 {
        bail!("{}: nothing was applied in steady state", probe.kind);
    }
    let available = |m: &Mark| m.sandbox.and_then(|s| s.available).unwrap_or(0.0);
    let units = available(&warm) + refill_per_sec * steady.secs - available(&end);
    let units_per_sec = units / steady.secs;
    let admitted = steady.requests.saturating_sub(steady.adapter_throttled);
    Ok(Limited {
        skus: skus.len(),
        batch: pusher.batch(),
        unit: limit.unit,
        capacity,
        refill_per_sec,
        adapter_limit: adapter_limit.map(|l| AdapterLimit {
            capacity: l.capacity,
            refill_per_sec: l.refill_per_sec,
        }),
        write_cost: limit.write_cost,
        allowed_requests_per_sec: refill_per_sec / limit.write_cost,
        spent_below,
        warmup: Phase::between(&start, &warm),
        units_per_sec,
        ratio: units_per_sec / refill_per_sec,
        admitted_requests_per_sec: admitted as f64 / steady.secs,
        steady,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_cover_every_sku_and_change_every_quantity() {
        let skus: Vec<Sku> = (0..5)
            .map(|i| Sku::parse(format!("S-{i}")).expect("sku"))
            .collect();
        let mut cursor = Cursor::new(&skus, 2);
        let sizes: Vec<usize> = (0..3).map(|_| cursor.next_batch().len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        assert!(cursor.first_pass_done());
        let again = cursor.next_batch();
        assert_eq!(again[0].sku, skus[0]);
        assert_eq!(again[0].version, 2);
        for i in 0..5 {
            for round in 1..100 {
                assert_ne!(quantity(round, i), quantity(round + 1, i));
                assert!((1..=500).contains(&quantity(round, i)));
            }
        }
    }
}
