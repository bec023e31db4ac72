//! The projector's watermarks (KV `onhand_watermarks`, key `<channel>.<token>`, value
//! `{version, qty, pushed_at}`; [`onhand_projector::watermark`]), read with their KV
//! revision, and written by a repair only as a compare-and-set on that revision: a repair
//! never replaces a watermark it did not read, so it never hides a newer push. A value with
//! `"pending": true` is the projector's intent, written before a push it has not confirmed
//! (yet): it says which version is on its way, not that the channel has it.

use std::collections::HashMap;

use async_nats::jetstream::kv::{Operation, Store, UpdateErrorKind};
use futures::{StreamExt as _, TryStreamExt as _};
use onhand_common::Sku;
use onhand_projector::watermark::{Stored, Watermark, Watermarks};

/// KV reads in flight at once.
const CONCURRENCY: usize = 64;

/// A SKU's watermark and the revision it was read at (`None`: the key has no value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Entry {
    pub mark: Option<Watermark>,
    /// The mark is an intent: the push of its version is not confirmed.
    pub pending: bool,
    pub revision: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum WatermarkError {
    #[error("reading watermark {key}")]
    Read {
        key: String,
        #[source]
        source: async_nats::jetstream::kv::EntryError,
    },
    #[error("writing watermark {key}")]
    Write {
        key: String,
        #[source]
        source: async_nats::jetstream::kv::UpdateError,
    },
}

/// What a compare-and-set write came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Written,
    /// Someone (the projector) wrote the key after it was read; theirs stays.
    Superseded,
}

/// One channel's watermarks.
#[derive(Debug, Clone)]
pub struct WatermarkStore {
    channel: String,
    kv: Store,
}

impl WatermarkStore {
    pub fn new(channel: impl Into<String>, kv: Store) -> Self {
        Self {
            channel: channel.into(),
            kv,
        }
    }

    /// The watermarks of `skus`. An undecodable value counts as none (as the projector
    /// reads it), keeping its revision.
    pub async fn read(&self, skus: &[&Sku]) -> Result<HashMap<Sku, Entry>, WatermarkError> {
        futures::stream::iter(skus.iter().map(|sku| (*sku).clone()))
            .map(|sku| {
                let key = Watermarks::key(&self.channel, &sku);
                let kv = self.kv.clone();
                async move {
                    let entry = kv
                        .entry(key.clone())
                        .await
                        .map_err(|source| WatermarkError::Read { key, source })?;
                    Ok((sku, decode(entry)))
                }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await
    }

    /// Writes `mark` if the key still is at `revision` (as read by [`WatermarkStore::read`]).
    pub async fn write(
        &self,
        sku: &Sku,
        mark: &Watermark,
        revision: Option<u64>,
    ) -> Result<Written, WatermarkError> {
        let key = Watermarks::key(&self.channel, sku);
        // A confirmed watermark: the contract's three fields, no `pending`.
        let value = serde_json::to_vec(mark).expect("invariant: a watermark always serializes");
        // Revision 0: "no value on this key yet" to the server.
        match self
            .kv
            .update(&key, value.into(), revision.unwrap_or(0))
            .await
        {
            Ok(_) => Ok(Written::Written),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(Written::Superseded),
            Err(source) => Err(WatermarkError::Write { key, source }),
        }
    }
}

fn decode(entry: Option<async_nats::jetstream::kv::Entry>) -> Entry {
    let Some(entry) = entry else {
        return Entry::default();
    };
    let stored = match entry.operation {
        Operation::Put => match serde_json::from_slice::<Stored>(&entry.value) {
            Ok(stored) => Some(stored),
            Err(e) => {
                tracing::warn!(key = %entry.key, error = %e, "ignoring an undecodable watermark");
                None
            }
        },
        Operation::Delete | Operation::Purge => None,
    };
    Entry {
        mark: stored.map(|s| s.mark),
        pending: stored.is_some_and(|s| s.pending),
        revision: Some(entry.revision),
    }
}
