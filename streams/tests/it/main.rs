//! Integration tests: definitions applied to a real nats-server (one per test).

mod apply;
mod restart;
mod support;
mod update;
