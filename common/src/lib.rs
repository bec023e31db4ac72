//! onhand's shared contract crate: the inventory event (v1), SKU subject tokens,
//! availability and channel policy maths, configuration helpers, telemetry
//! initialisation and shutdown signalling.
//!
//! Everything here is pure except [`telemetry`] (installs global subscribers),
//! [`shutdown`] (spawns a signal task) and [`memory`] (a process setting); no network or
//! database I/O.

pub mod backoff;
pub mod config;
pub mod event;
mod event_fast;
pub mod memory;
pub mod nats_url;
pub mod policy;
mod policy_env;
pub mod prometheus;
pub mod shutdown;
pub mod sku;
pub mod stock;
pub mod telemetry;
pub mod timestamp;
pub mod warehouse;

#[cfg(test)]
mod event_schema_tests;

pub use config::ConfigError;
pub use event::{EventError, EventType, InventoryEvent, ReleaseReason, decode_event, now_micros};
pub use nats_url::NatsUrl;
pub use policy::{ChannelPolicy, PolicyError, PolicySteps, channel_quantity, explain};
pub use sku::{MAX_SKU_BYTES, Sku, SkuError};
pub use stock::{StockState, WarehouseStock};
pub use warehouse::{WarehouseError, validate_warehouse};
