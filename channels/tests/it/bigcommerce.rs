//! bigcommerce adapter against the sandbox (being written).
