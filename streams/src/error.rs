//! Errors of loading and applying definitions.

use std::fmt;

use serde::Deserialize;

use crate::report::{FieldChange, Object};

/// Everything that can go wrong loading or applying definitions.
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: invalid JSON: {source}")]
    Json {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{file}: {reason}")]
    Invalid { file: String, reason: String },
    #[error("JetStream request {subject} failed: {source}")]
    Request {
        subject: String,
        #[source]
        source: async_nats::jetstream::context::RequestError,
    },
    #[error("{operation} {object}: {source}")]
    Api {
        operation: Operation,
        object: Object,
        #[source]
        source: ApiError,
    },
    #[error("unexpected response to {subject}: {reason}")]
    UnexpectedResponse { subject: String, reason: String },
    #[error("{}", immutable_message(.changes))]
    Immutable { changes: Vec<ImmutableChange> },
}

impl StreamsError {
    /// Worth retrying as is (the server was unreachable, busy or electing a leader).
    pub fn is_transient(&self) -> bool {
        match self {
            StreamsError::Request { .. } => true,
            StreamsError::Api { source, .. } => source.code == 503 || source.code == 408,
            StreamsError::Read { .. }
            | StreamsError::Json { .. }
            | StreamsError::Invalid { .. }
            | StreamsError::UnexpectedResponse { .. }
            | StreamsError::Immutable { .. } => false,
        }
    }
}

/// What was being done when the JetStream API said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Inspect,
    Create,
    Update,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Inspect => "inspecting",
            Operation::Create => "creating",
            Operation::Update => "updating",
        })
    }
}

/// A JetStream API error response: `{"error": {"code": .., "err_code": .., "description": ..}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, thiserror::Error)]
#[error("{description} (status {code}, err_code {err_code})")]
pub struct ApiError {
    /// HTTP-like status (400, 404, 500, 503, ...).
    pub code: u16,
    /// The server's specific error code (`10059` stream not found, ...).
    #[serde(default)]
    pub err_code: u64,
    #[serde(default)]
    pub description: String,
}

impl ApiError {
    pub const STREAM_NOT_FOUND: u64 = 10059;
    pub const CONSUMER_NOT_FOUND: u64 = 10014;

    pub fn is_not_found(&self) -> bool {
        self.err_code == Self::STREAM_NOT_FOUND || self.err_code == Self::CONSUMER_NOT_FOUND
    }
}

/// A desired change the server cannot make to an existing object.
#[derive(Debug, Clone, PartialEq)]
pub struct ImmutableChange {
    pub object: Object,
    pub change: FieldChange,
}

impl fmt::Display for ImmutableChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: field `{}` cannot be changed in place ({} -> {})",
            self.object, self.change.field, self.change.from, self.change.to
        )
    }
}

fn immutable_message(changes: &[ImmutableChange]) -> String {
    let list: Vec<String> = changes.iter().map(ToString::to_string).collect();
    format!(
        "nothing applied: {}; recreate the object deliberately or revert the definition",
        list.join("; ")
    )
}
