//! Channel adapters. Per-channel code is only the mapping ([`ChannelApi`]); sending, auth,
//! rate limiting, retry classification and telemetry are written once ([`Transport`],
//! [`HttpChannel`]).

pub mod api;
pub mod channel;
pub mod classify;
pub mod config;
pub mod http_channel;
pub mod limiter;
pub mod push;
pub mod revisions;
pub mod transport;

#[cfg(test)]
mod test_support;

pub mod amazon;
pub mod bigcommerce;
pub mod ebay;
pub mod shopify;
pub mod storefront_kv;
pub mod webhook;
pub mod woocommerce;

pub use api::{
    ApiRequest, ApiResponse, ChannelApi, ChannelRef, ItemResult, MappingError, PageToken, ReadPage,
    Target,
};
pub use channel::{Channel, ConnectError, ReadBackError};
pub use config::{ChannelSettings, Connection, RateSetting};
pub use http_channel::{HttpChannel, ReadError};
pub use limiter::{RateLimit, RateLimiter};
pub use push::{ChannelKind, Listed, Push, PushOutcome};
pub use revisions::RevisionBudget;
pub use transport::{Auth, Transport, TransportError};
