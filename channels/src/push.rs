//! What a projector asks of a channel (set this SKU to this quantity) and what came of it.

use std::time::Duration;

use onhand_common::Sku;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The channels onhand speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Shopify,
    Amazon,
    Ebay,
    Woocommerce,
    Bigcommerce,
    Webhook,
    StorefrontKv,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 7] = [
        Self::Shopify,
        Self::Amazon,
        Self::Ebay,
        Self::Woocommerce,
        Self::Bigcommerce,
        Self::Webhook,
        Self::StorefrontKv,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shopify => "shopify",
            Self::Amazon => "amazon",
            Self::Ebay => "ebay",
            Self::Woocommerce => "woocommerce",
            Self::Bigcommerce => "bigcommerce",
            Self::Webhook => "webhook",
            Self::StorefrontKv => "storefront_kv",
        }
    }
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ChannelKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown channel kind {s:?}; expected one of shopify, amazon, ebay, woocommerce, bigcommerce, webhook, storefront_kv"
                )
            })
    }
}

/// Set one SKU's listed quantity on a channel. Absolute, never a delta, so a replay is safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub sku: Sku,
    pub quantity: i64,
    /// The ledger version this quantity was computed from.
    pub version: i64,
    /// The event that produced it (carried to channels that can record a reference).
    pub event_id: Uuid,
}

/// What became of one push. The projector's ack decision is one exhaustive match on this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The channel confirmed the quantity (or, for asynchronous channels, accepted it; the
    /// read-back decides whether it was applied).
    Applied,
    /// Try again later; the channel said when, if it did.
    Transient {
        retry_after: Option<Duration>,
        reason: String,
    },
    /// The channel refused this SKU for good (unknown SKU, rejected value): dead-letter it.
    Permanent { code: String, message: String },
    /// Not sent: the channel caps how often a listing may change (eBay's revisions a day)
    /// and this one has spent its budget for now. Push its newest value after `wait`.
    /// Nothing failed; the channel was not called for it.
    Deferred { wait: Duration, reason: String },
}

impl PushOutcome {
    pub fn transient(reason: impl Into<String>) -> Self {
        Self::Transient {
            retry_after: None,
            reason: reason.into(),
        }
    }

    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Permanent {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// One SKU's quantity as the channel shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    pub sku: Sku,
    pub quantity: i64,
}
