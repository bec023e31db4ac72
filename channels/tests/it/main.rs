//! Adapter tests against the sandbox (real HTTP servers on port 0), one module per channel.

mod admin;
mod amazon;
mod bigcommerce;
mod configured;
mod core;
mod ebay;
mod shopify;
mod storefront_kv;
mod support;
mod webhook;
mod woocommerce;
