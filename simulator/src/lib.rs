//! onhand's oversell simulator: a deterministic discrete-event model of a brand selling
//! one catalogue on several channels, to measure how many orders a channel accepts for
//! stock that is gone under a cron sync, and under event-driven sync with or without
//! reservations (DESIGN.md §1, docs/OVERSELL.md).
//!
//! Pure: no I/O and no clock. A run is a function of its [`Params`], its [`Mode`] and a
//! seed; [`experiment`] runs seeds on threads and summarises them with confidence
//! intervals; [`chart`] renders sweeps as SVG text and [`figures`] builds the documented
//! charts.

pub mod chart;
pub mod delays;
pub mod engine;
pub mod experiment;
pub mod figures;
pub mod params;
pub mod rng;
pub mod stats;

#[cfg(test)]
mod model_tests;

pub use delays::{DelayDistribution, DelayError};
pub use engine::{RunStats, run};
pub use params::{ChannelParams, Mode, ParamError, Params, Preset, Sync};
pub use stats::Estimate;
