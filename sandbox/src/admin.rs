//! The admin API: seed catalogues, read and change quantities behind the adapter's back
//! (to create drift), set knobs, and fetch the log of accepted writes.
//!
//! - `POST   /admin/{channel}/items`         `[{"sku", "quantity", "parent_id"?}]` → ids
//! - `GET    /admin/{channel}/items`         every item with its visible and latest quantity
//! - `PUT    /admin/{channel}/items/{sku}`   `{"quantity"}` (not logged as a write)
//! - `DELETE /admin/{channel}/items`         wipe the catalogue and the write log
//! - `GET    /admin/{channel}/writes?after=` accepted writes after a sequence number
//! - `GET|PUT /admin/{channel}/knobs`        rate limit, faults, delays

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use crate::state::{Channel, Knobs, Sandbox};

pub fn router() -> Router<Arc<Sandbox>> {
    Router::new()
        .route("/admin/{channel}/items", get(list).post(seed).delete(wipe))
        .route("/admin/{channel}/items/{sku}", put(set_quantity))
        .route("/admin/{channel}/writes", get(writes))
        .route("/admin/{channel}/knobs", get(knobs).put(set_knobs))
}

/// An admin request that cannot be done, with the reason.
#[derive(Debug)]
struct AdminError(StatusCode, String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

type Result<T> = std::result::Result<T, AdminError>;

fn channel(name: &str) -> Result<Channel> {
    Channel::parse(name)
        .ok_or_else(|| AdminError(StatusCode::NOT_FOUND, format!("unknown channel {name:?}")))
}

fn bad_request(message: String) -> AdminError {
    AdminError(StatusCode::BAD_REQUEST, message)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedItem {
    sku: String,
    quantity: i64,
    parent_id: Option<u64>,
}

async fn seed(
    State(sandbox): State<Arc<Sandbox>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response> {
    let channel = channel(&name)?;
    let items: Vec<SeedItem> = match serde_json::from_slice(&body) {
        Ok(items) => items,
        Err(e) => {
            return Err(bad_request(format!(
                "expected [{{sku, quantity, parent_id?}}]: {e}"
            )));
        }
    };
    let mut state = sandbox.channel(channel);
    let ids: Vec<_> = items
        .iter()
        .map(|i| json!({"sku": i.sku, "id": state.seed_item(&i.sku, i.quantity, i.parent_id)}))
        .collect();
    Ok(Json(json!({"items": ids})).into_response())
}

async fn list(State(sandbox): State<Arc<Sandbox>>, Path(name): Path<String>) -> Result<Response> {
    let channel = channel(&name)?;
    let mut state = sandbox.channel(channel);
    let now = Instant::now();
    let items: Vec<_> = state
        .items
        .values_mut()
        .map(|i| {
            json!({"sku": i.sku, "id": i.id, "parent_id": i.parent_id,
                   "quantity": i.visible(now), "latest": i.latest()})
        })
        .collect();
    Ok(Json(json!({"items": items})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetQuantity {
    quantity: i64,
}

async fn set_quantity(
    State(sandbox): State<Arc<Sandbox>>,
    Path((name, sku)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response> {
    let channel = channel(&name)?;
    let set: SetQuantity = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return Err(bad_request(format!("expected {{quantity}}: {e}"))),
    };
    let mut state = sandbox.channel(channel);
    if !state.items.contains_key(&sku) {
        return Err(AdminError(
            StatusCode::NOT_FOUND,
            format!("unknown sku {sku:?}"),
        ));
    }
    state.seed_item(&sku, set.quantity, None);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn wipe(State(sandbox): State<Arc<Sandbox>>, Path(name): Path<String>) -> Result<Response> {
    let channel = channel(&name)?;
    let mut state = sandbox.channel(channel);
    state.items.clear();
    state.writes.clear();
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
struct After {
    after: Option<u64>,
}

async fn writes(
    State(sandbox): State<Arc<Sandbox>>,
    Path(name): Path<String>,
    Query(after): Query<After>,
) -> Result<Response> {
    let channel = channel(&name)?;
    let state = sandbox.channel(channel);
    let after = after.after.unwrap_or(0);
    let writes: Vec<_> = state.writes.iter().filter(|w| w.seq > after).collect();
    Ok(Json(json!({"writes": writes})).into_response())
}

async fn knobs(State(sandbox): State<Arc<Sandbox>>, Path(name): Path<String>) -> Result<Response> {
    let channel = channel(&name)?;
    Ok(Json(sandbox.channel(channel).knobs.clone()).into_response())
}

async fn set_knobs(
    State(sandbox): State<Arc<Sandbox>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response> {
    let channel = channel(&name)?;
    let knobs: Knobs = match serde_json::from_slice(&body) {
        Ok(k) => k,
        Err(e) => return Err(bad_request(format!("invalid knobs: {e}"))),
    };
    let f = &knobs.faults;
    if [f.http_5xx, f.http_429, f.timeout, f.item_error]
        .iter()
        .any(|p| !(0.0..=1.0).contains(p))
    {
        return Err(bad_request(
            "fault probabilities must be between 0 and 1".to_owned(),
        ));
    }
    if knobs
        .rate
        .is_some_and(|r| !(r.capacity > 0.0 && r.refill_per_sec > 0.0))
    {
        return Err(bad_request(
            "rate capacity and refill_per_sec must be positive".to_owned(),
        ));
    }
    sandbox.channel(channel).set_knobs(knobs);
    Ok(StatusCode::NO_CONTENT.into_response())
}
