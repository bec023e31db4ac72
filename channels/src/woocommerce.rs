//! The woocommerce adapter (being written).
