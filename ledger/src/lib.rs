//! The ledger: onhand's source of truth for stock, reservations, orders and shipments.
//!
//! Postgres holds the record; every change writes stock, the SKU's version and an outbox row
//! in one transaction; the relay publishes the outbox to JetStream.

pub mod app;
pub mod auth;
pub mod commands;
pub mod config;
pub mod error;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod queries;
pub mod relay;
pub mod sweeper;
mod txn;

pub use app::{LedgerApp, StartupError, build, migrate};
pub use commands::{Command, Ledger, Outcome};
pub use config::LedgerConfig;
pub use error::LedgerError;
