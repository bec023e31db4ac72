//! Projector tests against a real nats-server and the sandbox's HTTP emulators.

mod commits;
mod faults;
mod flow;
mod ledger_e2e;
mod operate;
mod reads;
mod support;
mod writes;
