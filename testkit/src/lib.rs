//! Test support for onhand's integration tests (a dev-dependency only).
//!
//! - [`NatsServer`]: a real `nats-server` (the pinned one from `scripts/setup`) per test,
//!   on a free port with its own JetStream store directory, killed on drop.
//! - [`TestDb`]: a fresh Postgres database per test, dropped on drop.
//! - [`eventually`]: poll with a deadline instead of sleeping.
//! - [`unique_name`]: collision-free names for streams, durables, buckets and subjects.
//!
//! Fixtures panic on setup failure: a test that cannot get its server should fail loudly
//! with the reason, not limp on.

mod db;
mod names;
mod nats;
mod poll;

pub use db::{TestDb, admin_database_url};
pub use names::unique_name;
pub use nats::{NatsServer, nats_server_bin};
pub use poll::{POLL_INTERVAL, eventually};
