//! The webhook receiver: what a system behind onhand's generic webhook channel would run.
//! Nested at `/webhook`; any path below it is the same endpoint (the adapter's `path`).
//!
//! - `PUT  <path>`          `{"items":[{"sku","quantity","version","event_id"}]}` (at most
//!   [`MAX_ITEMS`]) → 200 `{"results":[{"sku","status":"applied"|"rejected","error"?}]}`
//! - `GET  <path>?page=N`   (N from 1, [`PAGE_SIZE`] per page) →
//!   `{"items":[{"sku","quantity"}],"next_page":N|null}`
//!
//! Every request must carry `Onhand-Timestamp: <unix seconds>` and
//! `Onhand-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>` (an empty body
//! for a GET). The secret is [`SECRET`], a sandbox constant (configure the adapter with it).
//! A missing or wrong signature is 401, and so is a timestamp more than
//! [`REPLAY_WINDOW_SECS`] (5 minutes) from the sandbox's clock (`timestamp_out_of_window`:
//! the replay window, as the adapter's protocol documents it in
//! `onhand_channels::webhook`); a timestamp that is not unix seconds is 400. The signature
//! is checked over the raw bytes received, before the body is parsed.
//!
//! Items for SKUs not in the catalogue are rejected (`unknown_sku`), as are negative
//! quantities; `faults.item_error` rejects items at random. Throttling and injected faults
//! go through [`gate::admit`]: 429 with `Retry-After` (whole seconds), 503, or a hang.
//! Errors are `{"error":{"code","message"}}`.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use tokio::time::Instant;

use crate::gate::{self, Gate};
use crate::state::{Arrival, Channel, Sandbox};

/// The shared HMAC secret the sandbox's receiver verifies with.
pub const SECRET: &str = "onhand-sandbox-webhook-secret";
/// Requests signed further than this from the receiver's clock are refused (401).
pub const REPLAY_WINDOW_SECS: i64 = 5 * 60;
/// Most items in one PUT (413 above it).
pub const MAX_ITEMS: usize = 1000;
/// Items per read-back page.
pub const PAGE_SIZE: usize = 500;

const HEADER_TIMESTAMP: &str = "onhand-timestamp";
const HEADER_SIGNATURE: &str = "onhand-signature";

pub fn router() -> Router<Arc<Sandbox>> {
    Router::new()
        .route("/", get(read).put(write))
        .route("/{*path}", get(read).put(write))
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

/// Throttling and injected faults, answered in the webhook's shape.
async fn admit(sandbox: &Sandbox) -> Option<Response> {
    match gate::admit(sandbox, Channel::Webhook, 1.0) {
        Gate::Proceed => None,
        Gate::Throttled { wait } => {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; retry after {secs} s"),
            );
            if let Ok(value) = secs.to_string().parse() {
                response.headers_mut().insert("retry-after", value);
            }
            Some(response)
        }
        Gate::ServerError => Some(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "injected server error",
        )),
        Gate::Hang(duration) => Some(gate::hang(duration).await),
    }
}

/// Verify the signature over the raw body, then the timestamp window; the refusal when
/// either fails.
fn verify(headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    let unauthorized = |message: &str| {
        error(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            message.to_owned(),
        )
    };
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(timestamp), Some(signature)) = (header(HEADER_TIMESTAMP), header(HEADER_SIGNATURE))
    else {
        return Some(unauthorized(
            "Onhand-Timestamp and Onhand-Signature are required",
        ));
    };
    let Some(given) = signature
        .strip_prefix("v1=")
        .and_then(|hex_sig| hex::decode(hex_sig).ok())
    else {
        return Some(unauthorized("Onhand-Signature must be v1=<hex>"));
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes())
        .expect("invariant: HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    // Constant-time comparison.
    if mac.verify_slice(&given).is_err() {
        return Some(unauthorized("signature mismatch"));
    }
    let Ok(signed_at) = timestamp.trim().parse::<i64>() else {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "invalid_timestamp",
            "Onhand-Timestamp must be unix seconds",
        ));
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if (now - signed_at).abs() > REPLAY_WINDOW_SECS {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "timestamp_out_of_window",
            format!("Onhand-Timestamp must be within {REPLAY_WINDOW_SECS} s of now"),
        ));
    }
    None
}

/// Borrowed from the request body where it holds no escapes.
#[derive(Debug, Deserialize)]
struct WriteBody<'a> {
    #[serde(borrow)]
    items: Vec<WriteItem<'a>>,
}

#[derive(Debug, Deserialize)]
struct WriteItem<'a> {
    #[serde(borrow)]
    sku: Cow<'a, str>,
    quantity: i64,
    version: i64,
    event_id: uuid::Uuid,
}

async fn write(State(sandbox): State<Arc<Sandbox>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(response) = admit(&sandbox).await {
        return response;
    }
    if let Some(response) = verify(&headers, &body) {
        return response;
    }
    let parsed: WriteBody = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("expected {{\"items\":[{{sku, quantity, version, event_id}}]}}: {e}"),
            );
        }
    };
    if parsed.items.len() > MAX_ITEMS {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("at most {MAX_ITEMS} items per request"),
        );
    }
    let traceparent = gate::traceparent(&headers);
    let arrival = Arrival::now();
    let mut state = sandbox.channel(Channel::Webhook);
    let item_error = state.knobs.faults.item_error;
    let results: Vec<ItemResult> = parsed
        .items
        .iter()
        .map(|item| {
            let written = state.write_known(
                &item.sku,
                item.quantity,
                traceparent.as_deref(),
                arrival,
                |faults| {
                    if item.quantity < 0 {
                        Some("invalid_quantity")
                    } else if faults.roll(item_error) {
                        Some("injected item error")
                    } else {
                        None
                    }
                },
            );
            match written {
                Ok(()) => {
                    tracing::debug!(sku = %item.sku, quantity = item.quantity, version = item.version,
                        event_id = %item.event_id, "webhook item applied");
                    ItemResult {
                        sku: &item.sku,
                        status: "applied",
                        error: None,
                    }
                }
                Err(error) => ItemResult {
                    sku: &item.sku,
                    status: "rejected",
                    error: Some(error),
                },
            }
        })
        .collect();
    Json(WriteResults { results }).into_response()
}

/// The answer to a write: one result per item, in order.
#[derive(Debug, Serialize)]
struct WriteResults<'a> {
    results: Vec<ItemResult<'a>>,
}

#[derive(Debug, Serialize)]
struct ItemResult<'a> {
    sku: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

#[derive(Debug, Deserialize)]
struct Page {
    page: Option<usize>,
}

async fn read(
    State(sandbox): State<Arc<Sandbox>>,
    headers: HeaderMap,
    query: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Some(response) = admit(&sandbox).await {
        return response;
    }
    if let Some(response) = verify(&headers, b"") {
        return response;
    }
    let page = match query {
        Ok(Query(Page { page: None })) => 1,
        Ok(Query(Page { page: Some(n) })) if n >= 1 => n,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_page",
                "page must be a number from 1",
            );
        }
    };
    let mut state = sandbox.channel(Channel::Webhook);
    let now = Instant::now();
    let start = (page - 1).saturating_mul(PAGE_SIZE);
    let total = state.items.len();
    let items: Vec<_> = state
        .items
        .values_mut()
        .skip(start)
        .take(PAGE_SIZE)
        .map(|item| json!({"sku": item.sku, "quantity": item.visible(now)}))
        .collect();
    let next_page = (start + PAGE_SIZE < total).then_some(page + 1);
    Json(json!({"items": items, "next_page": next_page})).into_response()
}
