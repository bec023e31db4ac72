//! Watermarks: per channel and SKU, the last version pushed and the quantity it set.
//! KV bucket `onhand_watermarks`, key `<channel>.<token>`, value `{version, qty, pushed_at}`.
//! The channel's projector is the only writer of its keys, so a process-local cache in
//! front of the bucket is exact.

use foldhash::{HashMap, HashMapExt};

use async_nats::jetstream::kv::Store;
use futures::{StreamExt, TryStreamExt};
use onhand_common::Sku;
use onhand_streams::names::WATERMARKS_BUCKET;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::multiget;
use crate::puback::Acks;

/// Concurrent KV requests per batch.
const CONCURRENCY: usize = 64;
/// Concurrent batched reads (each of up to [`multiget::MAX_SUBJECTS`] keys).
const BATCHED_CONCURRENCY: usize = 4;
/// The JetStream API prefix (every component uses the default context).
const API_PREFIX: &str = "$JS.API";
/// The longest wait for each answer of a batched read (the JetStream context's default).
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// The header that marks a KV delete or purge.
const KV_OPERATION: &str = "KV-Operation";
/// The longest wait for each watermark write's acknowledgement.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

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
    #[error("reading the watermarks of {count} skus: {reason}")]
    ReadMany { count: usize, reason: String },
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

/// Watermark writes published and not yet acknowledged by the stream.
#[derive(Debug)]
pub struct PendingMarks {
    channel: String,
    /// Each write's SKU and key, in publish order, from the first not settled yet.
    written: std::collections::VecDeque<(Sku, String)>,
    pending: bool,
    acks: Acks,
}

impl PendingMarks {
    /// Publish more watermarks with these (see [`MarkWriter::write`]).
    pub async fn write(&mut self, marks: Vec<(Sku, Watermark)>) {
        for (sku, mark) in marks {
            let stored = Stored {
                mark,
                pending: self.pending,
            };
            let key = Watermarks::key(&self.channel, &sku);
            let value =
                serde_json::to_vec(&stored).expect("invariant: a watermark always serializes");
            self.acks.publish(subject(&key), value.into()).await;
            self.written.push_back((sku, key));
        }
    }

    /// Wait for the acknowledgements of the next `n` writes not settled yet; one result
    /// per watermark, in publish order.
    pub async fn settle_next(&mut self, n: usize) -> Vec<(Sku, Result<(), WatermarkError>)> {
        let results = self.acks.settle_next(n).await;
        self.written
            .drain(..results.len())
            .zip(results)
            .map(|((sku, key), result)| {
                (
                    sku,
                    result.map_err(|reason| WatermarkError::Write { key, reason }),
                )
            })
            .collect()
    }

    /// Wait for every acknowledgement not settled yet; one result per watermark, in
    /// publish order.
    pub async fn settle(mut self) -> Vec<(Sku, Result<(), WatermarkError>)> {
        self.settle_next(usize::MAX).await
    }
}

/// One channel's watermarks.
#[derive(Debug)]
pub struct Watermarks {
    channel: String,
    js: async_nats::jetstream::Context,
    kv: Store,
    cache: HashMap<Sku, Option<Stored>>,
    /// Whether uncached watermarks are read [`multiget::MAX_SUBJECTS`] per request (the
    /// server is 2.11 or newer and has not refused one); else one request per key.
    batched: bool,
}

impl Watermarks {
    pub fn new(channel: impl Into<String>, js: async_nats::jetstream::Context, kv: Store) -> Self {
        let batched = supports_multi_get(&js.client().server_info().version);
        Self {
            channel: channel.into(),
            js,
            kv,
            cache: HashMap::new(),
            batched,
        }
    }

    /// Read uncached watermarks in batches (`true`, when the server supports it) or one
    /// request per key (`false`).
    pub fn with_batched_reads(mut self, batched: bool) -> Self {
        self.batched = batched && supports_multi_get(&self.js.client().server_info().version);
        self
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
        // One SKU: a plain get costs the server less than a batch of one.
        if self.batched && missing.len() > 1 {
            match self.read_batched(&missing).await {
                Ok(found) => {
                    self.cache.extend(found);
                    return Ok(());
                }
                Err(err @ multiget::MultiGetError::Unsupported { .. }) => {
                    tracing::warn!(error = %err, channel = %self.channel, "reading watermarks one request per key from now on");
                    self.batched = false;
                }
                Err(err) => {
                    return Err(WatermarkError::ReadMany {
                        count: missing.len(),
                        reason: err.to_string(),
                    });
                }
            }
        }
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

    /// [`load`](Self::load) `skus`, and what each holds (`None`: never pushed), in order;
    /// one cache lookup per SKU already cached.
    pub async fn load_stored(
        &mut self,
        skus: &[&Sku],
    ) -> Result<Vec<Option<Stored>>, WatermarkError> {
        let mut stored = Vec::with_capacity(skus.len());
        let mut missing = Vec::new();
        for (i, sku) in skus.iter().enumerate() {
            match self.cache.get(*sku) {
                Some(found) => stored.push(*found),
                None => {
                    stored.push(None);
                    missing.push(i);
                }
            }
        }
        if !missing.is_empty() {
            let wanted: Vec<&Sku> = missing.iter().map(|&i| skus[i]).collect();
            self.load(&wanted).await?;
            for i in missing {
                stored[i] = self.stored(skus[i]);
            }
        }
        Ok(stored)
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
        Ok((sku, entry.and_then(|bytes| decode(key, &bytes))))
    }

    /// The watermarks of `skus` (none cached), [`multiget::MAX_SUBJECTS`] per request, a
    /// few requests at a time; every SKU gets an entry.
    async fn read_batched(
        &self,
        skus: &[Sku],
    ) -> Result<Vec<(Sku, Option<Stored>)>, multiget::MultiGetError> {
        let chunks: Vec<Vec<Sku>> = skus
            .chunks(multiget::MAX_SUBJECTS)
            .map(<[Sku]>::to_vec)
            .collect();
        let mut answers = futures::stream::iter(chunks)
            .map(|chunk| read_chunk(self.js.client(), self.channel.clone(), chunk))
            .buffer_unordered(BATCHED_CONCURRENCY);
        let mut found = Vec::with_capacity(skus.len());
        while let Some(chunk) = answers.next().await {
            found.extend(chunk?);
        }
        Ok(found)
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
            client: self.js.client(),
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
    client: async_nats::Client,
}

impl MarkWriter {
    /// Publish each watermark (as an intent when `pending`) without waiting for the
    /// stream's acknowledgements (a KV put is a publish to `$KV.<bucket>.<key>`); at most
    /// [`crate::puback::WINDOW`] are unacknowledged at once. Publishes from one connection
    /// are stored in order, so a later write of the same key lands after this one. Settle
    /// the result for each write's outcome, in the order given; more writes can follow on
    /// the same [`PendingMarks`].
    pub async fn write(&self, marks: Vec<(Sku, Watermark)>, pending: bool) -> PendingMarks {
        let mut written = self.start(pending).await;
        written.write(marks).await;
        written
    }

    /// A run of writes with nothing published yet (see [`write`](Self::write)).
    pub async fn start(&self, pending: bool) -> PendingMarks {
        PendingMarks {
            channel: self.channel.clone(),
            written: std::collections::VecDeque::new(),
            pending,
            acks: Acks::new(&self.client, WRITE_TIMEOUT).await,
        }
    }
}

/// One request's worth of `channel`'s watermarks (at most [`multiget::MAX_SUBJECTS`]).
async fn read_chunk(
    client: async_nats::Client,
    channel: String,
    skus: Vec<Sku>,
) -> Result<Vec<(Sku, Option<Stored>)>, multiget::MultiGetError> {
    let keys: Vec<String> = skus
        .iter()
        .map(|sku| Watermarks::key(&channel, sku))
        .collect();
    let subjects: Vec<String> = keys.iter().map(|k| subject(k)).collect();
    let mut found = multiget::last_for_subjects(
        &client,
        API_PREFIX,
        &format!("KV_{WATERMARKS_BUCKET}"),
        &subjects,
        READ_TIMEOUT,
    )
    .await?;
    Ok(skus
        .into_iter()
        .zip(keys.into_iter().zip(subjects))
        .map(|(sku, (key, subject))| {
            let value = found.remove(&subject).and_then(|m| {
                // A deleted or purged key's marker: no watermark.
                match m.headers.as_ref().and_then(|h| h.get(KV_OPERATION)) {
                    Some(op) if matches!(op.as_str(), "DEL" | "PURGE") => None,
                    _ => decode(key, &m.payload),
                }
            });
            (sku, value)
        })
        .collect())
}

/// The bucket subject of watermark `key`.
fn subject(key: &str) -> String {
    format!("$KV.{WATERMARKS_BUCKET}.{key}")
}

/// A stored value, or none when it does not decode (logged; the next push rewrites it).
fn decode(key: String, bytes: &[u8]) -> Option<Stored> {
    match serde_json::from_slice::<Stored>(bytes) {
        Ok(mark) => Some(mark),
        Err(source) => {
            let err = WatermarkError::Decode { key, source };
            tracing::warn!(error = %err, "ignoring an undecodable watermark");
            None
        }
    }
}

/// Whether a server of `version` (as its INFO gives it, `2.11.0`, `2.12.0-RC.1`) answers
/// batched direct gets (`multi_last`, since 2.11).
fn supports_multi_get(version: &str) -> bool {
    let mut parts = version.split(['.', '-']).map(|p| p.parse::<u64>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (2, 11),
        _ => false,
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
    fn a_watermarks_subject_is_the_buckets_and_its_key() {
        assert_eq!(
            subject(&Watermarks::key(
                "webhook",
                &Sku::parse("A-1").expect("sku")
            )),
            format!(
                "$KV.{WATERMARKS_BUCKET}.webhook.{}",
                Sku::parse("A-1").expect("sku").token()
            )
        );
    }

    #[test]
    fn batched_reads_need_nats_server_2_11() {
        for (version, batched) in [
            ("2.11.0", true),
            ("2.15.1", true),
            ("2.12.0-RC.1", true),
            ("3.0.0", true),
            ("2.10.26", false),
            ("2.9.10", false),
            ("", false),
            ("garbage", false),
        ] {
            assert_eq!(supports_multi_get(version), batched, "{version}");
        }
    }

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
