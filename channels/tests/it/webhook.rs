//! webhook adapter against the sandbox (being written).
