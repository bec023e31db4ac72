//! `--repair`: push the expected quantity of drifted and missing SKUs through the adapter,
//! with the projector's guard, and record each one.
//!
//! A repair carries the ledger's current version for the SKU, and:
//! - never goes out when the watermark holds a newer version than that (the projector has
//!   pushed something newer: `superseded`);
//! - after the channel confirms, reads the SKU's version again. Unchanged: no newer version
//!   existed while the push landed, so it cannot have overwritten a newer push; the
//!   watermark is then written (`{version, qty, pushed_at: now}`, so the next run gives an
//!   asynchronous channel its settle window) as a compare-and-set on the revision read
//!   before the push, so a watermark the projector wrote meanwhile stays. Changed: the
//!   projector may have pushed the newer version before this push landed, so the newest
//!   state is pushed the same way again, up to [`ROUNDS`] times, then left to the projector
//!   and the next run (`superseded`).
//! - A channel that refuses or fails the push: `failed`, with its reason.

use std::collections::HashMap;

use onhand_channels::{Channel, Push, PushOutcome};
use onhand_common::Sku;
use onhand_common::policy::{ChannelPolicy, channel_quantity};
use onhand_projector::watermark::Watermark;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ledger::LedgerReader;
use crate::verdict::Verdict;
use crate::watermarks::{Entry, WatermarkStore, Written};

/// Pushes of one SKU in one run, at most.
pub const ROUNDS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairOutcome {
    /// The channel confirmed the expected quantity of the ledger's current version.
    Repaired,
    /// A newer version got there first (or kept coming); the projector carries it.
    Superseded,
    /// The channel refused or failed the push, or the ledger or watermarks could not be read.
    Failed,
}

impl RepairOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Repaired => "repaired",
            Self::Superseded => "superseded",
            Self::Failed => "failed",
        }
    }
}

/// One repair, for the report and `reconcile_repairs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairRecord {
    pub sku: String,
    pub verdict: Verdict,
    /// The ledger version of the pushed quantity.
    pub version: i64,
    /// What the channel showed (`None`: not listed).
    pub channel: Option<i64>,
    /// What was pushed.
    pub expected: i64,
    pub outcome: RepairOutcome,
    pub message: Option<String>,
}

/// A SKU to repair, as the comparison saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub sku: Sku,
    pub verdict: Verdict,
    pub channel: Option<i64>,
    pub version: i64,
    pub expected: i64,
}

/// What a repair needs of the run.
#[derive(Debug)]
pub struct Repairer<'a> {
    pub channel: &'a Channel,
    pub ledger: &'a LedgerReader,
    pub watermarks: &'a WatermarkStore,
    pub policy: &'a ChannelPolicy,
}

impl Repairer<'_> {
    /// Repair every target; one record each (in no particular order).
    #[tracing::instrument(name = "repair_skus", skip_all, fields(channel = %self.channel.kind(), skus = targets.len()))]
    pub async fn repair(&self, targets: Vec<Target>) -> Vec<RepairRecord> {
        let mut records = Vec::with_capacity(targets.len());
        let mut todo = targets;
        for round in 0..ROUNDS {
            if todo.is_empty() {
                break;
            }
            if round > 0 {
                todo = self.refresh(todo, &mut records).await;
            }
            todo = self.round(todo, &mut records).await;
        }
        records.extend(todo.into_iter().map(|t| {
            let message = format!(
                "the ledger kept moving past v{} during the repair; left to the projector",
                t.version
            );
            record(t, RepairOutcome::Superseded, Some(message))
        }));
        records
    }

    /// The SKUs' current versions and expected quantities.
    async fn refresh(&self, todo: Vec<Target>, records: &mut Vec<RepairRecord>) -> Vec<Target> {
        let skus: Vec<&Sku> = todo.iter().map(|t| &t.sku).collect();
        let states = match self.ledger.states(&skus).await {
            Ok(states) => states,
            Err(e) => {
                let reason = format!("reading the ledger: {e}");
                records.extend(todo.into_iter().map(|t| failed(t, reason.clone())));
                return Vec::new();
            }
        };
        let mut by_sku: HashMap<Sku, _> = states.into_iter().map(|s| (s.sku, s.state)).collect();
        let mut fresh = Vec::with_capacity(todo.len());
        for t in todo {
            match by_sku.remove(&t.sku) {
                Some(state) => fresh.push(Target {
                    version: state.version,
                    expected: channel_quantity(&state, self.policy),
                    ..t
                }),
                None => records.push(failed(t, "the ledger no longer has this SKU".to_owned())),
            }
        }
        fresh
    }

    /// One push of every target; returns those whose version moved while it landed.
    #[tracing::instrument(name = "push_repairs", skip_all, fields(skus = todo.len()))]
    async fn round(&self, todo: Vec<Target>, records: &mut Vec<RepairRecord>) -> Vec<Target> {
        let skus: Vec<&Sku> = todo.iter().map(|t| &t.sku).collect();
        let entries = match self.watermarks.read(&skus).await {
            Ok(entries) => entries,
            Err(e) => {
                let reason = format!("watermarks unavailable: {e}");
                records.extend(todo.into_iter().map(|t| failed(t, reason.clone())));
                return Vec::new();
            }
        };
        let mut go: Vec<(Target, Entry)> = Vec::with_capacity(todo.len());
        for t in todo {
            let entry = entries.get(&t.sku).copied().unwrap_or_default();
            match entry.mark {
                // The guard: never write a version older than the watermark.
                Some(mark) if mark.version > t.version => {
                    let message = format!(
                        "the projector pushed v{} meanwhile (repair was v{})",
                        mark.version, t.version
                    );
                    records.push(record(t, RepairOutcome::Superseded, Some(message)));
                }
                _ => go.push((t, entry)),
            }
        }
        if go.is_empty() {
            return Vec::new();
        }
        let pushes: Vec<Push> = go
            .iter()
            .map(|(t, _)| Push {
                sku: t.sku.clone(),
                quantity: t.expected,
                version: t.version,
                event_id: Uuid::now_v7(),
            })
            .collect();
        let outcomes = self.channel.push(&pushes).await;
        let pushed_at = OffsetDateTime::now_utc();
        let mut applied = Vec::new();
        for ((t, entry), outcome) in go.into_iter().zip(outcomes) {
            match outcome {
                PushOutcome::Applied => applied.push((t, entry)),
                PushOutcome::Transient { reason, .. } => {
                    records.push(failed(t, format!("transient: {reason}")));
                }
                PushOutcome::Deferred { reason, .. } => {
                    records.push(failed(t, format!("deferred: {reason}")));
                }
                PushOutcome::Permanent { code, message } => {
                    records.push(failed(t, format!("{code}: {message}")));
                }
            }
        }
        let skus: Vec<&Sku> = applied.iter().map(|(t, _)| &t.sku).collect();
        let now = match self.ledger.versions(&skus).await {
            Ok(now) => now,
            Err(e) => {
                let reason = format!(
                    "the channel confirmed, but the ledger's version could not be checked again: {e}"
                );
                records.extend(applied.into_iter().map(|(t, _)| failed(t, reason.clone())));
                return Vec::new();
            }
        };
        let mut moved = Vec::new();
        for (t, entry) in applied {
            if now.get(&t.sku) != Some(&t.version) {
                moved.push(t);
                continue;
            }
            let mark = Watermark {
                version: t.version,
                qty: t.expected,
                pushed_at,
            };
            let message = match self.watermarks.write(&t.sku, &mark, entry.revision).await {
                Ok(Written::Written) => None,
                Ok(Written::Superseded) => {
                    Some("the projector wrote the watermark meanwhile; its write stays".to_owned())
                }
                Err(e) => Some(format!("the watermark was not written: {e}")),
            };
            records.push(record(t, RepairOutcome::Repaired, message));
        }
        moved
    }
}

fn record(t: Target, outcome: RepairOutcome, message: Option<String>) -> RepairRecord {
    RepairRecord {
        sku: t.sku.into_string(),
        verdict: t.verdict,
        version: t.version,
        channel: t.channel,
        expected: t.expected,
        outcome,
        message,
    }
}

fn failed(t: Target, message: String) -> RepairRecord {
    record(t, RepairOutcome::Failed, Some(message))
}
