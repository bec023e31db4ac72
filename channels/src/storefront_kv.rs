//! The storefront_kv adapter (being written).
