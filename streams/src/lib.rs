//! onhand's JetStream objects — streams `INVENTORY`, `INVENTORY_DLQ`, `INGEST`, the
//! `ledger-ingest` consumer and the `onhand_watermarks` key-value bucket — as JSON files
//! in the server's own config format (`definitions/`, compiled in), and the code that
//! applies them idempotently: [`ensure`] (tests, tools), [`apply`] (with dry run and
//! a field-level diff) behind `onhand streams apply`.
//!
//! ```no_run
//! # async fn run(js: async_nats::jetstream::Context) -> Result<(), onhand_streams::StreamsError> {
//! let defs = onhand_streams::Definitions::embedded();
//! let report = onhand_streams::apply(&js, &defs, onhand_streams::ApplyOptions { dry_run: true }).await?;
//! print!("{report}");
//! # Ok(()) }
//! ```

mod api;
mod apply;
mod definitions;
mod diff;
mod error;
mod report;
mod validate;

pub use apply::{ApplyOptions, apply, ensure};
pub use definitions::{ConsumerDef, Definitions, KeyValueDef, StreamDef};
pub use error::{ApiError, ImmutableChange, Operation, StreamsError};
pub use report::{ApplyReport, FieldChange, Object, Outcome, ReportEntry};

/// Stream names and subjects from the event contract (DESIGN.md §3–5).
pub mod names {
    pub const INVENTORY_STREAM: &str = "INVENTORY";
    pub const DLQ_STREAM: &str = "INVENTORY_DLQ";
    pub const INGEST_STREAM: &str = "INGEST";
    pub const LEDGER_INGEST_CONSUMER: &str = "ledger-ingest";
    pub const WATERMARKS_BUCKET: &str = "onhand_watermarks";
}
