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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub version: i64,
    pub qty: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub pushed_at: OffsetDateTime,
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

/// One channel's watermarks.
#[derive(Debug)]
pub struct Watermarks {
    channel: String,
    js: async_nats::jetstream::Context,
    kv: Store,
    cache: HashMap<Sku, Option<Watermark>>,
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
        let found: Vec<(Sku, Option<Watermark>)> = futures::stream::iter(missing)
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
    ) -> Result<(Sku, Option<Watermark>), WatermarkError> {
        let entry = kv.get(&key).await.map_err(|source| WatermarkError::Read {
            key: key.clone(),
            source,
        })?;
        let mark = match entry {
            None => None,
            Some(bytes) => match serde_json::from_slice::<Watermark>(&bytes) {
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
        self.cache.get(sku).copied().flatten()
    }

    /// Write watermarks (after the channel confirmed them); one result per item, in order.
    /// Every put is published before any acknowledgement is awaited (a KV put is a publish
    /// to `$KV.<bucket>.<key>`), so a batch costs one round trip, not one per SKU.
    pub async fn store(&mut self, marks: Vec<(Sku, Watermark)>) -> Vec<Result<(), WatermarkError>> {
        let mut pending = Vec::with_capacity(marks.len());
        for (sku, mark) in marks {
            let key = Self::key(&self.channel, &sku);
            let value =
                serde_json::to_vec(&mark).expect("invariant: a watermark always serializes");
            let published = self
                .js
                .publish(format!("$KV.{}.{key}", WATERMARKS_BUCKET), value.into())
                .await;
            pending.push((sku, mark, key, published));
        }
        let mut results = Vec::with_capacity(pending.len());
        let acks = futures::future::join_all(pending.into_iter().map(
            |(sku, mark, key, published)| async move {
                let result = match published {
                    Ok(ack) => ack.await.map(drop).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (sku, mark, key, result)
            },
        ))
        .await;
        for (sku, mark, key, result) in acks {
            match result {
                Ok(()) => {
                    self.cache.insert(sku, Some(mark));
                    results.push(Ok(()));
                }
                Err(reason) => {
                    // Unknown whether it landed: read it again next time.
                    self.cache.remove(&sku);
                    results.push(Err(WatermarkError::Write { key, reason }));
                }
            }
        }
        results
    }

    /// Forget the cache (after the consumer was recreated, another process may have reset
    /// the bucket).
    pub fn clear_cache(&mut self) {
        self.cache.clear();
    }

    /// Forget every watermark of this channel (rebuild).
    pub async fn reset(
        &mut self,
        js: &async_nats::jetstream::Context,
    ) -> Result<u64, WatermarkError> {
        self.cache.clear();
        reset(js, &self.channel).await
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
        .get_stream(format!("KV_{}", onhand_streams::names::WATERMARKS_BUCKET))
        .await
        .map_err(|e| purge(e.into()))?;
    let response = stream
        .purge()
        .filter(format!(
            "$KV.{}.{channel}.>",
            onhand_streams::names::WATERMARKS_BUCKET
        ))
        .await
        .map_err(|e| purge(e.into()))?;
    Ok(response.purged)
}
