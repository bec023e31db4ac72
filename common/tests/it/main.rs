//! Integration tests of the process-global parts of onhand-common: telemetry
//! initialisation and signal-driven shutdown. Kept in their own binary because they
//! install global state.

mod shutdown;
mod telemetry;
