//! Applying the latest event of each SKU to the channel: version guard against the
//! watermark, the channel's policy, push through the adapter, then the watermark. Shared by
//! the live projector and `onhand dlq replay`.

use std::sync::Arc;

use onhand_channels::{Channel, Push, PushOutcome};
use onhand_common::policy::{ChannelPolicy, channel_quantity};
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
}

/// One channel's side of projection.
#[derive(Debug)]
pub struct Applier {
    pub channel_name: String,
    pub channel: Arc<Channel>,
    pub policy: ChannelPolicy,
    pub watermarks: Watermarks,
}

impl Applier {
    /// Apply each event (at most one per SKU); one outcome per event, in order.
    pub async fn apply(&mut self, events: &[&InventoryEvent]) -> Vec<SkuOutcome> {
        let skus: Vec<&Sku> = events.iter().map(|e| &e.sku).collect();
        if let Err(err) = self.watermarks.load(&skus).await {
            tracing::warn!(error = %err, channel = %self.channel_name, "watermarks unavailable; the batch will be redelivered");
            return events
                .iter()
                .map(|_| SkuOutcome::Transient {
                    retry_after: None,
                    reason: format!("watermarks unavailable: {err}"),
                })
                .collect();
        }
        let mut outcomes: Vec<Option<SkuOutcome>> = vec![None; events.len()];
        let mut pushes = Vec::new();
        let mut pushed_index = Vec::new();
        let mut marks: Vec<(usize, Sku, Watermark)> = Vec::new();
        let now = OffsetDateTime::now_utc();
        for (i, event) in events.iter().enumerate() {
            let version = event.stock.version;
            let mark = self.watermarks.get(&event.sku);
            if let Some(mark) = mark
                && mark.version >= version
            {
                outcomes[i] = Some(SkuOutcome::Stale {
                    watermark: mark.version,
                });
                continue;
            }
            let qty = channel_quantity(&event.stock, &self.policy);
            if mark.is_some_and(|m| m.qty == qty) {
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
        if !pushes.is_empty() {
            let results = self.channel.push(&pushes).await;
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
                });
            }
        }
        let (indices, marks): (Vec<usize>, Vec<(Sku, Watermark)>) =
            marks.into_iter().map(|(i, s, m)| (i, (s, m))).unzip();
        for (i, result) in indices.into_iter().zip(self.watermarks.store(marks).await) {
            if let Err(err) = result {
                tracing::warn!(error = %err, channel = %self.channel_name, "watermark not written; the event will be redelivered");
                outcomes[i] = Some(SkuOutcome::Transient {
                    retry_after: None,
                    reason: format!("watermark not written: {err}"),
                });
            }
        }
        outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| SkuOutcome::Transient {
                    retry_after: None,
                    reason: "no outcome".to_owned(),
                })
            })
            .collect()
    }
}
