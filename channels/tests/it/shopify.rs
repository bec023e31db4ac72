//! shopify adapter against the sandbox (being written).
