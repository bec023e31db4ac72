//! Reconciler tests against a real Postgres, nats-server, sandbox, and (where traffic
//! matters) the ledger and the projectors running in this process.

mod delayed;
mod drift;
mod live;
mod partial;
mod support;
