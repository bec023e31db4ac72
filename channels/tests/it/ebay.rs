//! ebay adapter against the sandbox (being written).
