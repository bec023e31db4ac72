//! The reconciler (DESIGN.md §6): for each channel, the ledger's totals with their versions
//! (Postgres), the expected quantity by the shared policy function, the channel's read-back
//! through its adapter (paged, inside its rate limit), and the projector's watermarks. Each
//! SKU is `match`, `in_flight`, `drift`, `missing` or `unknown` ([`verdict`]); drift rate =
//! drift / compared. `--repair` pushes the expected quantity of drifted and missing SKUs
//! with the projector's version guard ([`repair`]). The report is JSON and a table
//! ([`report`]), the history is in Postgres ([`history`]), the metrics go to a Pushgateway
//! ([`metrics`]); a run exits 3 when the drift rate is above the threshold and 4 when it
//! could not read everything.

pub mod config;
pub mod history;
pub mod ledger;
pub mod metrics;
mod pass;
pub mod repair;
pub mod report;
pub mod run;
pub mod snapshot;
pub mod verdict;
pub mod watermarks;

pub use config::ReconcileConfig;
pub use report::{EXIT_DRIFT, EXIT_OK, EXIT_PARTIAL, Report, Status};
pub use run::{Reconciler, StartupError};
pub use verdict::Verdict;
