//! Ledger integration tests against a real Postgres (one database per test) and a real
//! nats-server (one per test), through the real HTTP API on port 0.

mod api;
mod concurrency;
mod expiry;
mod flows;
mod ingest;
mod relay;
mod support;
