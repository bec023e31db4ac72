//! The storefront KV channel: availability written into the NATS KV bucket
//! `onhand_availability`, the surface a storefront or a shopping agent reads directly (or
//! through the read-only HTTP endpoint in [`server`], served by `onhand storefront`).
//!
//! Key: the SKU's token ([`Sku::token`]); value:
//! `{"sku","quantity","version","event_id","updated_at"}` ([`Availability`]).
//!
//! Writes are compare-and-set on the key's revision: a push reads the stored value, keeps
//! it when its `version` is newer (an older version never overwrites a newer one, whatever
//! the order pushes arrive in, and whoever else writes), and otherwise writes with the
//! revision it read, retrying when another writer got there first. NATS errors are
//! transient. The bucket itself is created by `onhand streams apply`, not here.

pub mod server;

use futures::{StreamExt, TryStreamExt};
use onhand_common::Sku;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, Store, UpdateErrorKind};

use crate::push::{ChannelKind, Listed, Push, PushOutcome};

/// The bucket's name.
pub const BUCKET: &str = "onhand_availability";
/// Keys read or written at once.
const CONCURRENCY: usize = 64;
/// Attempts at one key's compare-and-set before the push is left transient.
const CAS_ATTEMPTS: usize = 5;

/// One SKU's availability as the bucket holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    pub sku: Sku,
    pub quantity: i64,
    /// The ledger version the quantity was computed from.
    pub version: i64,
    pub event_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
}

#[derive(Debug, thiserror::Error)]
pub enum StorefrontError {
    #[error("listing the keys of {BUCKET} failed")]
    Keys {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("reading key {key} of {BUCKET} failed")]
    Entry {
        key: String,
        #[source]
        source: kv::EntryError,
    },
    #[error("key {key} of {BUCKET} holds an undecodable value")]
    Decode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

impl StorefrontError {
    /// NATS trouble passes; a value we cannot decode does not.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Keys { .. } | Self::Entry { .. } => true,
            Self::Decode { .. } => false,
        }
    }
}

/// A page of the listing, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub items: Vec<Availability>,
    /// The key to pass as `after` for the next page; `None` on the last.
    pub next: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StorefrontKv {
    kv: Store,
}

impl StorefrontKv {
    pub fn new(kv: Store) -> Self {
        Self { kv }
    }

    pub fn kind(&self) -> ChannelKind {
        ChannelKind::StorefrontKv
    }

    pub fn store(&self) -> &Store {
        &self.kv
    }

    /// Write every quantity unless the bucket already holds a newer version; one outcome
    /// per push, in order.
    pub async fn push(&self, pushes: &[Push]) -> Vec<PushOutcome> {
        // Owned items, so the future is Send for any caller's lifetime (a closure over
        // `&Push` trips the compiler's higher-ranked Send check when spawned).
        futures::stream::iter(pushes.iter().cloned())
            .map(|push| async move { self.push_one(&push).await })
            .buffered(CONCURRENCY)
            .collect()
            .await
    }

    async fn push_one(&self, push: &Push) -> PushOutcome {
        let key = push.sku.token();
        let value = Availability {
            sku: push.sku.clone(),
            quantity: push.quantity,
            version: push.version,
            event_id: push.event_id,
            updated_at: time::OffsetDateTime::now_utc(),
        };
        let bytes = match serde_json::to_vec(&value) {
            Ok(bytes) => bytes::Bytes::from(bytes),
            Err(e) => return PushOutcome::permanent("mapping", e.to_string()),
        };
        for _ in 0..CAS_ATTEMPTS {
            let written = match self.kv.entry(key.as_str()).await {
                Err(e) => return PushOutcome::transient(format!("reading {key}: {e}")),
                Ok(None) => {
                    self.kv
                        .create(&key, bytes.clone())
                        .await
                        .map(drop)
                        .map_err(|e| match e.kind() {
                            CreateErrorKind::AlreadyExists => None,
                            _ => Some(e.to_string()),
                        })
                }
                Ok(Some(entry)) => {
                    if entry.operation == Operation::Put
                        && let Ok(stored) = serde_json::from_slice::<Availability>(&entry.value)
                        && (stored.version > push.version
                            || (stored.version == push.version && stored.quantity == push.quantity))
                    {
                        tracing::debug!(sku = %push.sku, version = push.version,
                            stored_version = stored.version, "storefront holds this or a newer version; kept");
                        return PushOutcome::Applied;
                    }
                    self.kv
                        .update(&key, bytes.clone(), entry.revision)
                        .await
                        .map(drop)
                        .map_err(|e| match e.kind() {
                            UpdateErrorKind::WrongLastRevision => None,
                            _ => Some(e.to_string()),
                        })
                }
            };
            match written {
                Ok(()) => return PushOutcome::Applied,
                // Another writer changed the key between our read and write: read again.
                Err(None) => continue,
                Err(Some(reason)) => {
                    return PushOutcome::transient(format!("writing {key}: {reason}"));
                }
            }
        }
        PushOutcome::transient(format!("{key} kept changing under compare-and-set"))
    }

    /// One SKU's stored availability.
    pub async fn get(&self, sku: &Sku) -> Result<Option<Availability>, StorefrontError> {
        self.get_key(sku.token()).await
    }

    async fn get_key(&self, key: String) -> Result<Option<Availability>, StorefrontError> {
        let value = self
            .kv
            .get(key.as_str())
            .await
            .map_err(|source| StorefrontError::Entry {
                key: key.clone(),
                source,
            })?;
        value
            .map(|bytes| serde_json::from_slice(&bytes))
            .transpose()
            .map_err(|source| StorefrontError::Decode { key, source })
    }

    /// Every key in the bucket, sorted.
    async fn keys(&self) -> Result<Vec<String>, StorefrontError> {
        let keys = self.kv.keys().await.map_err(|e| StorefrontError::Keys {
            source: Box::new(e),
        })?;
        let mut keys: Vec<String> =
            keys.try_collect()
                .await
                .map_err(|e| StorefrontError::Keys {
                    source: Box::new(e),
                })?;
        keys.sort();
        Ok(keys)
    }

    /// Values for `keys`, in order; keys deleted meanwhile are skipped.
    async fn values(&self, keys: Vec<String>) -> Result<Vec<Availability>, StorefrontError> {
        let values: Vec<Option<Availability>> = futures::stream::iter(keys)
            .map(|key| self.get_key(key))
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(values.into_iter().flatten().collect())
    }

    /// Up to `limit` values with keys after `after`, in key order. Lists every key of the
    /// bucket to find the page: fine for catalogues of tens of thousands of SKUs.
    pub async fn list(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StorefrontError> {
        let keys = self.keys().await?;
        let start = after.map_or(0, |after| keys.partition_point(|k| k.as_str() <= after));
        let end = (start + limit.max(1)).min(keys.len());
        let page: Vec<String> = keys[start..end].to_vec();
        let next = (end < keys.len()).then(|| page.last().cloned()).flatten();
        Ok(ListPage {
            items: self.values(page).await?,
            next,
        })
    }

    /// Every SKU's quantity as the storefront shows it (the reconciler's read-back).
    pub async fn read_all(&self) -> Result<Vec<Listed>, StorefrontError> {
        let keys = self.keys().await?;
        Ok(self
            .values(keys)
            .await?
            .into_iter()
            .map(|a| Listed {
                sku: a.sku,
                quantity: a.quantity,
            })
            .collect())
    }
}
