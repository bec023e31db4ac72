//! Applying the latest event of each SKU to the channel: version guard against the
//! watermark, the channel's policy, push through the adapter, then the watermark. Shared by
//! the live projector and `onhand dlq replay`.

use std::sync::Arc;

use onhand_channels::{Channel, Push, PushOutcome};
use onhand_common::policy::{ChannelPolicy, channel_quantity};
use onhand_common::telemetry::TraceContext;
use onhand_common::{InventoryEvent, Sku};
use time::OffsetDateTime;

use crate::watermark::{Watermark, Watermarks};

/// What became of one SKU's latest event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkuOutcome {
    /// The channel confirmed the quantity; the watermark holds it.
    Applied { qty: i64 },
    /// The channel already had this quantity from an earlier version; only the watermark
    /// moved.
    Unchanged { qty: i64 },
    /// The watermark holds this version or a newer one: nothing to do.
    Stale { watermark: i64 },
    /// Try again later (the message stays in the stream).
    Transient {
        retry_after: Option<std::time::Duration>,
        reason: String,
    },
    /// The channel refused it for good.
    Permanent { code: String, message: String },
    /// Not sent: the listing's change budget is spent for now (see
    /// [`PushOutcome::Deferred`]); the message stays in the stream.
    Deferred {
        wait: std::time::Duration,
        reason: String,
    },
}

/// One channel's side of projection.
#[derive(Debug)]
pub struct Applier {
    pub channel_name: String,
    pub channel: Arc<Channel>,
    pub policy: ChannelPolicy,
    pub watermarks: Watermarks,
}

/// A batch pushed: each event's outcome and, for those applied or unchanged, the watermark
/// it now has (in the cache already; not yet written to the bucket).
#[derive(Debug)]
pub struct Pushed {
    pub outcomes: Vec<SkuOutcome>,
    pub marks: Vec<Option<Watermark>>,
}

impl Applier {
    /// Apply each event (at most one per SKU) and write its watermark at once; one outcome
    /// per event, in order. A SKU whose watermark could not be written is transient.
    pub async fn apply(&mut self, events: &[&InventoryEvent]) -> Vec<SkuOutcome> {
        let Pushed {
            mut outcomes,
            marks,
        } = self.push(events, &[], &[]).await;
        let (index, marks): (Vec<usize>, Vec<(Sku, Watermark)>) = marks
            .into_iter()
            .enumerate()
            .filter_map(|(i, m)| Some((i, (events[i].sku.clone(), m?))))
            .unzip();
        // The cache holds them already (push remembers what it confirmed).
        let written = self
            .watermarks
            .writer()
            .write(marks, false)
            .await
            .settle()
            .await;
        let mut failed = Vec::new();
        for (i, (sku, result)) in index.into_iter().zip(written) {
            if let Err(err) = result {
                tracing::warn!(error = %err, channel = %self.channel_name, "watermark not written; the event will be redelivered");
                outcomes[i] = SkuOutcome::Transient {
                    retry_after: None,
                    reason: format!("watermark not written: {err}"),
                };
                failed.push(sku);
            }
        }
        self.watermarks.forget(&failed);
        outcomes
    }

    /// Guard, policy, push; the watermarks of what the channel confirmed go into the cache
    /// and are returned for the caller to write (at once, or coalesced over several batches).
    /// `ahead[i]`: event i is newer than anything the consumer has delivered for its SKU (a
    /// redelivered SKU brought up to the stream's newest); its watermark is written as an
    /// intent, and settled, before the push. `traces[i]`: the trace event i's channel call
    /// continues (empty when untraced; see [`Channel::push_traced`]).
    pub async fn push(
        &mut self,
        events: &[&InventoryEvent],
        ahead: &[bool],
        traces: &[Option<TraceContext>],
    ) -> Pushed {
        let skus: Vec<&Sku> = events.iter().map(|e| &e.sku).collect();
        let stored_now = match self.watermarks.load_stored(&skus).await {
            Ok(stored) => stored,
            Err(err) => {
                tracing::warn!(error = %err, channel = %self.channel_name, "watermarks unavailable; the batch will be redelivered");
                return Pushed {
                    outcomes: events
                        .iter()
                        .map(|_| SkuOutcome::Transient {
                            retry_after: None,
                            reason: format!("watermarks unavailable: {err}"),
                        })
                        .collect(),
                    marks: vec![None; events.len()],
                };
            }
        };
        let mut outcomes: Vec<Option<SkuOutcome>> = vec![None; events.len()];
        let mut pushes = Vec::with_capacity(events.len());
        let mut pushed_index = Vec::with_capacity(events.len());
        let mut marks: Vec<(usize, Sku, Watermark)> = Vec::with_capacity(events.len());
        let now = OffsetDateTime::now_utc();
        for (i, event) in events.iter().enumerate() {
            let version = event.stock.version;
            let stored = stored_now[i];
            let mark = stored.map(|s| s.mark);
            // An intent at this very version may not have reached the channel: push again.
            if let Some(s) = stored
                && (s.mark.version > version || (s.mark.version == version && !s.pending))
            {
                outcomes[i] = Some(SkuOutcome::Stale {
                    watermark: s.mark.version,
                });
                continue;
            }
            let qty = channel_quantity(&event.stock, &self.policy);
            if stored.is_some_and(|s| !s.pending && s.mark.qty == qty) {
                marks.push((
                    i,
                    event.sku.clone(),
                    Watermark {
                        version,
                        qty,
                        pushed_at: mark.map_or(now, |m| m.pushed_at),
                    },
                ));
                outcomes[i] = Some(SkuOutcome::Unchanged { qty });
                continue;
            }
            pushes.push(Push {
                sku: event.sku.clone(),
                quantity: qty,
                version,
                event_id: event.event_id,
            });
            pushed_index.push(i);
        }
        // Intents first, for pushes that jump ahead of the consumer; one that cannot be
        // written holds its push back.
        let intents: Vec<(Sku, Watermark)> = pushed_index
            .iter()
            .zip(&pushes)
            .filter(|(i, _)| ahead.get(**i).copied().unwrap_or(false))
            .map(|(_, p)| {
                (
                    p.sku.clone(),
                    Watermark {
                        version: p.version,
                        qty: p.quantity,
                        pushed_at: now,
                    },
                )
            })
            .collect();
        if !intents.is_empty() {
            let settled = self
                .watermarks
                .publish_intents(intents)
                .await
                .settle()
                .await;
            let failed: std::collections::HashSet<Sku> = settled
                .into_iter()
                .filter_map(|(sku, r)| r.err().map(|e| (sku, e)))
                .map(|(sku, err)| {
                    tracing::warn!(error = %err, channel = %self.channel_name, "intent not written; the push waits");
                    sku
                })
                .collect();
            if !failed.is_empty() {
                self.watermarks.forget(&failed);
                let mut kept_pushes = Vec::with_capacity(pushes.len());
                let mut kept_index = Vec::with_capacity(pushes.len());
                for (i, push) in pushed_index.into_iter().zip(pushes) {
                    if failed.contains(&push.sku) {
                        outcomes[i] = Some(SkuOutcome::Transient {
                            retry_after: None,
                            reason: "watermark intent not written".to_owned(),
                        });
                    } else {
                        kept_index.push(i);
                        kept_pushes.push(push);
                    }
                }
                pushes = kept_pushes;
                pushed_index = kept_index;
            }
        }
        if !pushes.is_empty() {
            let traces: Vec<Option<TraceContext>> = match traces {
                [] => Vec::new(),
                _ => pushed_index
                    .iter()
                    .map(|&i| traces.get(i).cloned().flatten())
                    .collect(),
            };
            let results = self.channel.push_traced(&pushes, &traces).await;
            let pushed_at = OffsetDateTime::now_utc();
            for ((i, push), result) in pushed_index.into_iter().zip(pushes).zip(results) {
                outcomes[i] = Some(match result {
                    PushOutcome::Applied => {
                        marks.push((
                            i,
                            push.sku,
                            Watermark {
                                version: push.version,
                                qty: push.quantity,
                                pushed_at,
                            },
                        ));
                        SkuOutcome::Applied { qty: push.quantity }
                    }
                    PushOutcome::Transient {
                        retry_after,
                        reason,
                    } => SkuOutcome::Transient {
                        retry_after,
                        reason,
                    },
                    PushOutcome::Permanent { code, message } => {
                        SkuOutcome::Permanent { code, message }
                    }
                    PushOutcome::Deferred { wait, reason } => SkuOutcome::Deferred { wait, reason },
                });
            }
        }
        let mut by_event = vec![None; events.len()];
        for (i, sku, mark) in marks {
            self.watermarks.remember(sku, mark);
            by_event[i] = Some(mark);
        }
        Pushed {
            outcomes: outcomes
                .into_iter()
                .map(|o| {
                    o.unwrap_or_else(|| SkuOutcome::Transient {
                        retry_after: None,
                        reason: "no outcome".to_owned(),
                    })
                })
                .collect(),
            marks: by_event,
        }
    }
}
