//! Watermarks: per channel and SKU, the last version pushed and the quantity it set.
//! KV bucket `onhand_watermarks`, key `<channel>.<token>`, value `{version, qty, pushed_at}`.
//! The channel's projector is the only writer of its keys, so a process-local cache in
//! front of the bucket is exact.

use std::collections::HashMap;

use async_nats::jetstream::kv::Store;
use futures::{StreamExt, TryStreamExt};
use onhand_common::Sku;
use onhand_streams::names::WATERMARKS_BUCKET;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Concurrent KV requests per batch.
const CONCURRENCY: usize = 64;
/// Watermark writes published and not yet acknowledged, at most, per [`MarkWriter::write`].
/// async-nats holds a permit per unacknowledged publish (5,000 per context by default) and
/// blocks the next publish when they run out, so a commit in flight and a batch's intents
/// together must stay under that.
const WINDOW: usize = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub version: i64,
    pub qty: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub pushed_at: OffsetDateTime,
}

/// What the bucket holds: the watermark, and whether it is only an intent — written before
/// a push that jumped ahead of the consumer (a redelivered SKU brought up to the stream's
/// newest event), so that if the process dies mid-push no older version is pushed after it.
/// An intent's own version is pushed again; anything older is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    #[serde(flatten)]
    pub mark: Watermark,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum WatermarkError {
    #[error("reading watermark {key}")]
    Read {
        key: String,
        #[source]
        source: async_nats::jetstream::kv::EntryError,
    },
    #[error("watermark {key} holds an undecodable value")]
    Decode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("writing watermark {key}: {reason}")]
    Write { key: String, reason: String },
    #[error("purging the watermarks of {channel}")]
    Purge {
        channel: String,
        #[source]
        source: async_nats::Error,
    },
}

type Published = Result<async_nats::jetstream::context::PublishAckFuture, String>;

/// Watermark writes published and not yet acknowledged by the stream.
#[derive(Debug, Default)]
pub struct PendingMarks {
    /// Settled already (the window was full), in publish order.
    done: Vec<(Sku, Result<(), WatermarkError>)>,
    pending: std::collections::VecDeque<(Sku, String, Published)>,
}

async fn settle_one(
    (sku, key, published): (Sku, String, Published),
) -> (Sku, Result<(), WatermarkError>) {
    let result = match published {
        Ok(ack) => ack.await.map(drop).map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    (
        sku,
        result.map_err(|reason| WatermarkError::Write { key, reason }),
    )
}

impl PendingMarks {
    /// Wait for every acknowledgement; one result per watermark, in publish order.
    pub async fn settle(self) -> Vec<(Sku, Result<(), WatermarkError>)> {
        let mut out = self.done;
        out.extend(futures::future::join_all(self.pending.into_iter().map(settle_one)).await);
        out
    }
}

/// One channel's watermarks.
#[derive(Debug)]
pub struct Watermarks {
    channel: String,
    js: async_nats::jetstream::Context,
    kv: Store,
    cache: HashMap<Sku, Option<Stored>>,
}

impl Watermarks {
    pub fn new(channel: impl Into<String>, js: async_nats::jetstream::Context, kv: Store) -> Self {
        Self {
            channel: channel.into(),
            js,
            kv,
            cache: HashMap::new(),
        }
    }

    pub fn key(channel: &str, sku: &Sku) -> String {
        format!("{channel}.{}", sku.token())
    }

    /// The watermarks of `skus`, from the cache or the bucket (missing: never pushed). An
    /// undecodable value counts as missing (the next push rewrites it) and is logged.
    pub async fn load(&mut self, skus: &[&Sku]) -> Result<(), WatermarkError> {
        let missing: Vec<Sku> = skus
            .iter()
            .filter(|s| !self.cache.contains_key(**s))
            .map(|s| (*s).clone())
            .collect();
        let found: Vec<(Sku, Option<Stored>)> = futures::stream::iter(missing)
            .map(|sku| {
                let kv = self.kv.clone();
                let key = Self::key(&self.channel, &sku);
                async move { Self::fetch(kv, key, sku).await }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        self.cache.extend(found);
        Ok(())
    }

    async fn fetch(
        kv: Store,
        key: String,
        sku: Sku,
    ) -> Result<(Sku, Option<Stored>), WatermarkError> {
        let entry = kv.get(&key).await.map_err(|source| WatermarkError::Read {
            key: key.clone(),
            source,
        })?;
        let mark = match entry {
            None => None,
            Some(bytes) => match serde_json::from_slice::<Stored>(&bytes) {
                Ok(mark) => Some(mark),
                Err(source) => {
                    let err = WatermarkError::Decode { key, source };
                    tracing::warn!(error = %err, "ignoring an undecodable watermark");
                    None
                }
            },
        };
        Ok((sku, mark))
    }

    /// A loaded SKU's watermark.
    pub fn get(&self, sku: &Sku) -> Option<Watermark> {
        self.cache.get(sku).copied().flatten().map(|s| s.mark)
    }

    /// A loaded SKU's watermark, with whether it is an intent.
    pub fn stored(&self, sku: &Sku) -> Option<Stored> {
        self.cache.get(sku).copied().flatten()
    }

    /// Publish intents (see [`Stored`]) without waiting for their acknowledgements; the
    /// cache holds them at once, and the caller settles them before pushing and
    /// [`forget`](Self::forget)s the SKUs whose write failed.
    pub async fn publish_intents(&mut self, marks: Vec<(Sku, Watermark)>) -> PendingMarks {
        for (sku, mark) in &marks {
            let intent = Stored {
                mark: *mark,
                pending: true,
            };
            self.cache.insert(sku.clone(), Some(intent));
        }
        self.writer().write(marks, true).await
    }

    /// Hold `mark` as this SKU's watermark without writing it yet (a [`MarkWriter`] writes
    /// it later; if that fails, [`forget`](Self::forget) the SKU).
    pub fn remember(&mut self, sku: Sku, mark: Watermark) {
        self.cache.insert(
            sku,
            Some(Stored {
                mark,
                pending: false,
            }),
        );
    }

    /// A handle that writes this channel's watermarks to the bucket, leaving the cache alone.
    pub fn writer(&self) -> MarkWriter {
        MarkWriter {
            channel: self.channel.clone(),
            js: self.js.clone(),
        }
    }

    /// Drop these SKUs from the cache (their watermark write failed: read it again next time).
    pub fn forget<'a>(&mut self, skus: impl IntoIterator<Item = &'a Sku>) {
        for sku in skus {
            self.cache.remove(sku);
        }
    }

    /// Forget the cache (after the consumer was recreated, another process may have reset
    /// the bucket).
    pub fn clear_cache(&mut self) {
        self.cache.clear();
    }
}

/// Writes one channel's watermarks (see [`Watermarks::writer`]).
#[derive(Debug, Clone)]
pub struct MarkWriter {
    channel: String,
    js: async_nats::jetstream::Context,
}

impl MarkWriter {
    /// Publish each watermark (as an intent when `pending`) without waiting for the
    /// stream's acknowledgements (a KV put is a publish to `$KV.<bucket>.<key>`); at most
    /// `WINDOW` are unacknowledged at once. Publishes from one connection are stored in
    /// order, so a later write of the same key lands after this one. Settle the result for
    /// each write's outcome, in the order given.
    pub async fn write(&self, marks: Vec<(Sku, Watermark)>, pending_: bool) -> PendingMarks {
        let mut pending = PendingMarks::default();
        for (sku, mark) in marks {
            let stored = Stored {
                mark,
                pending: pending_,
            };
            if pending.pending.len() >= WINDOW
                && let Some(oldest) = pending.pending.pop_front()
            {
                pending.done.push(settle_one(oldest).await);
            }
            let key = Watermarks::key(&self.channel, &sku);
            let value =
                serde_json::to_vec(&stored).expect("invariant: a watermark always serializes");
            let published = self
                .js
                .publish(format!("$KV.{WATERMARKS_BUCKET}.{key}"), value.into())
                .await
                .map_err(|e| e.to_string());
            pending.pending.push_back((sku, key, published));
        }
        pending
    }
}

/// Purge every watermark of `channel` from the bucket.
pub async fn reset(
    js: &async_nats::jetstream::Context,
    channel: &str,
) -> Result<u64, WatermarkError> {
    let purge = |source: async_nats::Error| WatermarkError::Purge {
        channel: channel.to_owned(),
        source,
    };
    let stream = js
        .get_stream(format!("KV_{}", WATERMARKS_BUCKET))
        .await
        .map_err(|e| purge(e.into()))?;
    let response = stream
        .purge()
        .filter(format!("$KV.{}.{channel}.>", WATERMARKS_BUCKET))
        .await
        .map_err(|e| purge(e.into()))?;
    Ok(response.purged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirmed_watermark_is_the_contracts_three_fields_and_an_intent_adds_pending() {
        let mark = Watermark {
            version: 7,
            qty: 21,
            pushed_at: time::macros::datetime!(2026-11-27 04:00 UTC),
        };
        let confirmed = serde_json::to_value(Stored {
            mark,
            pending: false,
        })
        .expect("json");
        assert_eq!(
            confirmed,
            serde_json::json!({"version": 7, "qty": 21, "pushed_at": "2026-11-27T04:00:00Z"})
        );
        let intent = serde_json::to_vec(&Stored {
            mark,
            pending: true,
        })
        .expect("json");
        let read: Stored = serde_json::from_slice(&intent).expect("stored");
        assert!(read.pending);
        // Readers of the plain contract (the reconciler) still decode an intent.
        let plain: Watermark = serde_json::from_slice(&intent).expect("watermark");
        assert_eq!(plain, mark);
        let old: Stored = serde_json::from_value(confirmed).expect("stored");
        assert!(!old.pending);
    }
}
