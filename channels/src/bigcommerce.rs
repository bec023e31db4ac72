//! The bigcommerce adapter (being written).
