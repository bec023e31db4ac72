//! The ledger's error type: what went wrong with a command, with the HTTP status and the
//! stable error code a client sees. Internals (database errors) are logged, never shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Everything a ledger command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{message}")]
    Malformed {
        field: Option<String>,
        message: String,
    },
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("missing bearer token")]
    Unauthenticated,
    #[error("this token lacks the scope {scope}")]
    Forbidden { scope: &'static str },
    #[error("the Idempotency-Key header is required on every POST")]
    MissingIdempotencyKey,
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyConflict,
    #[error("unknown sku {sku:?}")]
    UnknownSku { sku: String, field: String },
    #[error("unknown warehouse {warehouse:?}")]
    UnknownWarehouse { warehouse: String, field: String },
    #[error("unknown reservation {id}")]
    UnknownReservation { id: String, field: String },
    #[error("unknown order {order_id:?}")]
    UnknownOrder { order_id: String },
    #[error("unknown channel {channel:?}")]
    UnknownChannel { channel: String },
    #[error("insufficient stock for {sku:?}: requested {requested}, available {available}")]
    InsufficientStock {
        sku: String,
        requested: i64,
        available: i64,
        field: String,
    },
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error(
        "the request took longer than {limit_ms} ms and was abandoned; retry it with the same Idempotency-Key"
    )]
    Timeout { limit_ms: u128 },
    #[error("no route {path}")]
    NoRoute { path: String },
    #[error("{path} does not take {method}")]
    MethodNotAllowed { method: String, path: String },
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl LedgerError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>, field: Option<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
            field,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Malformed { .. } | Self::MissingIdempotencyKey => StatusCode::BAD_REQUEST,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::UnknownSku { .. }
            | Self::UnknownWarehouse { .. }
            | Self::UnknownReservation { .. }
            | Self::UnknownOrder { .. }
            | Self::UnknownChannel { .. } => StatusCode::NOT_FOUND,
            Self::IdempotencyConflict | Self::InsufficientStock { .. } | Self::Conflict { .. } => {
                StatusCode::CONFLICT
            }
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::NoRoute { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Database(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "malformed_request",
            Self::Invalid { .. } => "invalid_field",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden { .. } => "forbidden",
            Self::MissingIdempotencyKey => "missing_idempotency_key",
            Self::IdempotencyConflict => "idempotency_key_reused",
            Self::UnknownSku { .. } => "unknown_sku",
            Self::UnknownWarehouse { .. } => "unknown_warehouse",
            Self::UnknownReservation { .. } => "unknown_reservation",
            Self::UnknownOrder { .. } => "unknown_order",
            Self::UnknownChannel { .. } => "unknown_channel",
            Self::InsufficientStock { .. } => "insufficient_stock",
            Self::Conflict { code, .. } => code,
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::Timeout { .. } => "timeout",
            Self::NoRoute { .. } => "no_route",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Database(_) => "unavailable",
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Malformed { field, .. } | Self::Conflict { field, .. } => field.as_deref(),
            Self::Invalid { field, .. }
            | Self::UnknownSku { field, .. }
            | Self::UnknownWarehouse { field, .. }
            | Self::UnknownReservation { field, .. }
            | Self::InsufficientStock { field, .. } => Some(field),
            Self::UnknownOrder { .. } => Some("order_id"),
            Self::UnknownChannel { .. } => Some("channel"),
            Self::IdempotencyConflict | Self::MissingIdempotencyKey => Some("Idempotency-Key"),
            Self::Unauthenticated | Self::Forbidden { .. } => Some("Authorization"),
            Self::PayloadTooLarge { .. }
            | Self::Timeout { .. }
            | Self::NoRoute { .. }
            | Self::MethodNotAllowed { .. }
            | Self::Database(_) => None,
        }
    }

    /// True when retrying the same command later may succeed (the database was unavailable).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Database(_) | Self::Timeout { .. })
    }

    /// The JSON body a client sees.
    pub fn body(&self) -> ErrorBody<'_> {
        let message = match self {
            Self::Database(_) => "the ledger is temporarily unavailable; retry".to_owned(),
            other => other.to_string(),
        };
        ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
                field: self.field(),
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    pub code: &'a str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
}

impl IntoResponse for LedgerError {
    fn into_response(self) -> Response {
        if let Self::Database(source) = &self {
            tracing::warn!(error = %source, "request failed on the database");
        }
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        if matches!(self, Self::Unauthenticated) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
