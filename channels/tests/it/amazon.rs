//! amazon adapter against the sandbox (being written).
