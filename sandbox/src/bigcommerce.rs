//! The BigCommerce Inventory v3 emulator (`/stores/{hash}/v3`, CHANNELS.md §5 and
//! channel-specs/bigcommerce-inventory-v3.yml). The store has one location, id 1.
//!
//! - `PUT /inventory/adjustments/absolute` `{reason, items:[{location_id, sku|variant_id|
//!   product_id, quantity}]}`, at most 2000 items. All or nothing: any invalid item (unknown
//!   identity, unknown location, quantity outside 0..=2147483647, an injected item error)
//!   refuses the whole request with 422 `application/problem+json`, whose `title` lists
//!   every refused item as `[Item with sku X ..., Item with variant_id 7 ...]` in the
//!   documented wording (the separator between entries is UNVERIFIED). A body outside the
//!   schema is a 422 too, with `errors` keyed by field. Success is 200 `{"transaction_id"}`;
//!   the levels change after `knobs.apply_delay_ms` (the API is asynchronous).
//! - `GET /inventory/items?location_id:in=&sku:in=&variant_id:in=&product_id:in=&page=&limit=`
//!   → `data[{identity, locations[...]}]` + `meta.pagination`; `limit` defaults to 50 and
//!   is at most 1000 ("Limit of 1000 items for payload length").
//!
//! No `X-Auth-Token` gives 401. Quota: BigCommerce counts requests per store in a window
//! (150 per 30 s on Standard). The emulator maps that onto the channel's token bucket:
//! `X-Rate-Limit-Requests-Quota` = capacity, `-Time-Window-Ms` = the time the bucket takes
//! to refill from empty, `-Requests-Left` = whole requests left, `-Time-Reset-Ms` = time
//! until `-Requests-Left` next grows by one (a bucket refills continuously, so it has no
//! single reset instant; with nothing left, that is when the next request fits). A bucket
//! is never looser than the fixed window it stands for (a window admits up to twice its
//! quota across a boundary). The headers are on every
//! response while a rate knob is set; over the quota is a 429 with them, an injected 429
//! comes without them ("platform load").

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::gate::{self, Gate};
use crate::state::{Channel, ChannelState, Item, Sandbox};

pub const MAX_ITEMS: usize = 2000;
pub const MAX_QUANTITY: i64 = 2_147_483_647;
pub const LOCATION_ID: i64 = 1;
pub const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 50;
const STATUS_CODES: &str =
    "https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes";

pub fn router() -> Router<Arc<Sandbox>> {
    Router::new()
        .route(
            "/stores/{hash}/v3/inventory/adjustments/absolute",
            put(adjust_absolute),
        )
        .route("/stores/{hash}/v3/inventory/items", get(items))
}

/// A problem+json error.
fn problem(status: StatusCode, title: &str, errors: Value) -> Response {
    let body =
        json!({"status": status.as_u16(), "title": title, "type": STATUS_CODES, "errors": errors});
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// The quota headers, from the bucket, while a rate knob is set.
fn quota_headers(sandbox: &Sandbox, response: &mut Response) {
    let Some((available, capacity, refill)) = sandbox.channel(Channel::Bigcommerce).bucket_status()
    else {
        return;
    };
    let ms = |secs: f64| format!("{}", (secs * 1000.0).ceil().max(0.0) as u64);
    let values = [
        (
            "X-Rate-Limit-Requests-Left",
            format!("{}", available.floor().max(0.0) as u64),
        ),
        (
            "X-Rate-Limit-Requests-Quota",
            format!("{}", capacity.floor() as u64),
        ),
        ("X-Rate-Limit-Time-Window-Ms", ms(capacity / refill)),
        (
            "X-Rate-Limit-Time-Reset-Ms",
            ms(((available.floor() + 1.0).min(capacity) - available) / refill),
        ),
    ];
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
}

/// Auth and the gate; `Err` is the response to send.
async fn admit(sandbox: &Sandbox, headers: &HeaderMap) -> Result<(), Response> {
    let token = headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if token.trim().is_empty() {
        return Err(problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: missing or invalid X-Auth-Token",
            json!({}),
        ));
    }
    match gate::admit(sandbox, Channel::Bigcommerce, 1.0) {
        Gate::Proceed => Ok(()),
        Gate::Throttled { .. } => {
            let mut response = problem(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests: the store's API quota is used up",
                json!({}),
            );
            let from_bucket = sandbox
                .channel(Channel::Bigcommerce)
                .bucket_status()
                .is_some_and(|(available, _, _)| available < 1.0);
            if from_bucket {
                quota_headers(sandbox, &mut response);
            }
            Err(response)
        }
        Gate::ServerError => Err(problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            json!({}),
        )),
        Gate::Hang(wait) => Err(gate::hang(wait).await),
    }
}

/// Quota headers on everything past the gate.
fn finish(sandbox: &Sandbox, result: Result<Response, Response>) -> Response {
    match result {
        Ok(mut response) => {
            quota_headers(sandbox, &mut response);
            response
        }
        Err(response) => response,
    }
}

/// One adjustment item, validated against the schema.
struct Adjustment {
    identity: Identity,
    location_id: i64,
    quantity: i64,
}

enum Identity {
    Sku(String),
    Variant(u64),
    Product(u64),
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sku(s) => write!(f, "sku {s}"),
            Self::Variant(id) => write!(f, "variant_id {id}"),
            Self::Product(id) => write!(f, "product_id {id}"),
        }
    }
}

/// The schema check: `Err` maps field paths to what is wrong.
fn parse_adjustments(body: &[u8]) -> Result<Vec<Adjustment>, serde_json::Map<String, Value>> {
    let mut errors = serde_json::Map::new();
    let body: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            errors.insert("body".to_owned(), json!(format!("invalid JSON: {e}")));
            return Err(errors);
        }
    };
    if body.get("reason").is_some_and(|r| !r.is_string()) {
        errors.insert("reason".to_owned(), json!("must be a string"));
    }
    let Some(items) = body.get("items").and_then(Value::as_array) else {
        errors.insert(
            "items".to_owned(),
            json!("is required and must be an array"),
        );
        return Err(errors);
    };
    let mut out = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let int = |k: &str| item.get(k).and_then(Value::as_i64);
        let ids = [
            item.get("sku")
                .and_then(Value::as_str)
                .map(|s| Identity::Sku(s.to_owned())),
            item.get("variant_id")
                .and_then(Value::as_u64)
                .map(Identity::Variant),
            item.get("product_id")
                .and_then(Value::as_u64)
                .map(Identity::Product),
        ];
        let mut ids = ids.into_iter().flatten();
        let identity = match (ids.next(), ids.next()) {
            (Some(id), None) => Some(id),
            _ => {
                errors.insert(
                    format!("items.{n}"),
                    json!("exactly one of sku, variant_id or product_id is required"),
                );
                None
            }
        };
        let location_id = int("location_id");
        if location_id.is_none() {
            errors.insert(
                format!("items.{n}.location_id"),
                json!("is required and must be an integer"),
            );
        }
        let quantity = int("quantity");
        if quantity.is_none() {
            errors.insert(
                format!("items.{n}.quantity"),
                json!("is required and must be an integer"),
            );
        }
        if let (Some(identity), Some(location_id), Some(quantity)) =
            (identity, location_id, quantity)
        {
            out.push(Adjustment {
                identity,
                location_id,
                quantity,
            });
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn find<'a>(state: &'a ChannelState, identity: &Identity) -> Option<&'a Item> {
    match identity {
        Identity::Sku(sku) => state.items.get(sku),
        Identity::Variant(id) => state.item_by_id(*id),
        Identity::Product(id) => state.item_by_id(*id).filter(|i| i.parent_id.is_none()),
    }
}

async fn adjust_absolute(
    State(sandbox): State<Arc<Sandbox>>,
    Path(_hash): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        admit(&sandbox, &headers).await?;
        let adjustments = parse_adjustments(&body).map_err(|errors| {
            problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Payload contains invalid fields",
                Value::Object(errors),
            )
        })?;
        if adjustments.len() > MAX_ITEMS {
            return Err(problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!(
                    "The request contains {} items; the limit is {MAX_ITEMS}",
                    adjustments.len()
                ),
                json!({}),
            ));
        }
        let mut state = sandbox.channel(Channel::Bigcommerce);
        let item_error = state.knobs.faults.item_error;
        let mut refused = Vec::new();
        let mut writes = Vec::with_capacity(adjustments.len());
        for a in &adjustments {
            let sku = find(&state, &a.identity).map(|i| i.sku.clone());
            let why = match sku {
                None => Some(format!("Item with {} does not exist", a.identity)),
                Some(_) if a.location_id != LOCATION_ID => Some(format!(
                    "Item with {} cannot be adjusted at location {}, which does not exist",
                    a.identity, a.location_id
                )),
                Some(_) if !(0..=MAX_QUANTITY).contains(&a.quantity) => Some(format!(
                    "Item with {} has quantity {} outside 0..{MAX_QUANTITY}",
                    a.identity, a.quantity
                )),
                Some(_) if state.roll(item_error) => Some(format!(
                    "Item with {} is tracked by product, please update stock by product id",
                    a.identity
                )),
                Some(sku) => {
                    writes.push((sku, a.quantity));
                    None
                }
            };
            refused.extend(why);
        }
        if !refused.is_empty() {
            return Err(problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("[{}]", refused.join(", ")),
                json!({}),
            ));
        }
        let traceparent = gate::traceparent(&headers);
        for (sku, quantity) in writes {
            state.apply_write(&sku, quantity, traceparent.as_deref());
        }
        Ok(axum::Json(json!({"transaction_id": uuid::Uuid::new_v4().to_string()})).into_response())
    }
    .await;
    finish(&sandbox, result)
}

fn id_list(params: &HashMap<String, String>, name: &str) -> Option<Vec<String>> {
    params.get(name).map(|v| {
        v.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

fn item_json(item: &mut Item, now: Instant, with_location: bool) -> Value {
    let quantity = item.visible(now);
    let locations = if with_location {
        json!([{
            "location_id": LOCATION_ID,
            "location_code": "BC-LOCATION-1",
            "location_name": "Default location",
            "available_to_sell": quantity,
            "total_inventory_onhand": quantity,
            "location_enabled": true,
            "settings": {"safety_stock": 0, "is_in_stock": true, "warning_level": 0, "bin_picking_number": ""},
        }])
    } else {
        json!([])
    };
    json!({
        "identity": {"sku": item.sku, "variant_id": item.id,
                     "product_id": item.parent_id.unwrap_or(item.id)},
        "locations": locations,
    })
}

async fn items(
    State(sandbox): State<Arc<Sandbox>>,
    Path(_hash): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        admit(&sandbox, &headers).await?;
        let number = |name: &'static str, default: usize| match params.get(name) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or(name),
        };
        let invalid = |name: &str| {
            problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid query parameter",
                json!({name: "must be a positive integer"}),
            )
        };
        let page = number("page", 1).map_err(invalid)?;
        let limit = number("limit", DEFAULT_LIMIT)
            .map_err(invalid)?
            .min(MAX_LIMIT);
        let with_location = id_list(&params, "location_id:in")
            .is_none_or(|ids| ids.iter().any(|id| id == &LOCATION_ID.to_string()));
        let skus = id_list(&params, "sku:in");
        let variants = id_list(&params, "variant_id:in");
        let products = id_list(&params, "product_id:in");
        let mut state = sandbox.channel(Channel::Bigcommerce);
        let now = Instant::now();
        let mut matching: Vec<&mut Item> = state
            .items
            .values_mut()
            .filter(|i| skus.as_ref().is_none_or(|s| s.contains(&i.sku)))
            .filter(|i| {
                variants
                    .as_ref()
                    .is_none_or(|v| v.contains(&i.id.to_string()))
            })
            .filter(|i| {
                products
                    .as_ref()
                    .is_none_or(|p| p.contains(&i.parent_id.unwrap_or(i.id).to_string()))
            })
            .collect();
        let total = matching.len();
        let total_pages = total.div_ceil(limit);
        let data: Vec<Value> = matching
            .iter_mut()
            .skip((page - 1).saturating_mul(limit))
            .take(limit)
            .map(|i| item_json(i, now, with_location))
            .collect();
        let mut links = json!({"current": format!("?limit={limit}&page={page}")});
        if page > 1 {
            links["previous"] = json!(format!("?limit={limit}&page={}", page - 1));
        }
        if page < total_pages {
            links["next"] = json!(format!("?limit={limit}&page={}", page + 1));
        }
        let meta = json!({"pagination": {"total": total, "count": data.len(), "per_page": limit,
                          "current_page": page, "total_pages": total_pages, "links": links}});
        Ok(axum::Json(json!({"data": data, "meta": meta})).into_response())
    }
    .await;
    finish(&sandbox, result)
}
