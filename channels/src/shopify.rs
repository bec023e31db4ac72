//! The shopify adapter (being written).
