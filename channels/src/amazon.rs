//! The amazon adapter (being written).
