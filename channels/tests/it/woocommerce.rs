//! woocommerce adapter against the sandbox (being written).
