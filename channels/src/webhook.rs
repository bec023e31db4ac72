//! The webhook adapter (being written).
