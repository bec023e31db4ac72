//! The sandbox: local servers that behave like each channel's documented inventory API
//! (../shared/CHANNELS.md and channel-specs/), for the demo, the tests and the benchmarks.
//! Faithful in request and response shapes, batch caps, error bodies and throttling, with
//! knobs for rate limits, delays and injected faults, and an admin API.

pub mod admin;
pub mod app;
pub mod bucket;
pub mod credentials;
pub mod gate;
pub mod state;

pub mod amazon;
pub mod bigcommerce;
pub mod ebay;
pub mod shopify;
pub mod webhook;
pub mod woocommerce;

pub use app::{SandboxApp, build, router};
pub use state::{Channel, Knobs, Sandbox};
