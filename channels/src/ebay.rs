//! The ebay adapter (being written).
