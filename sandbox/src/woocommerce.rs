//! The WooCommerce REST v3 emulator (`/wp-json/wc/v3`, CHANNELS.md §4).
//!
//! - `POST /products/batch` and `POST /products/{id}/variations/batch` with
//!   `{"update":[{"id","manage_stock","stock_quantity"}]}`: ≤ 100 items across create,
//!   update and delete (else 413 `woocommerce_rest_request_entity_too_large`); 200 with the
//!   full product per item, or its own `error` object (unknown id, a variation sent to the
//!   products endpoint or to another parent, injected `faults.item_error` → `..._invalid_id`).
//!   `stock_quantity` is applied only when the store option `woocommerce_manage_stock` is
//!   `yes` and the product manages stock (`manage_stock` true in the request, or already);
//!   otherwise it is reset to `''` (answered as `null`) and nothing is written. Seeded items
//!   manage stock; only create/delete are counted, not performed.
//! - `GET /products?sku=A,B&per_page=&page=` matches products and variations; without
//!   `sku` it lists products only, as WooCommerce does (variations are read per parent via
//!   `GET /products/{id}/variations`). Always ordered by id; `X-WP-Total` and
//!   `X-WP-TotalPages`; `_fields` trims the objects.
//! - `GET|PUT /settings/products/woocommerce_manage_stock` (`{"value":"yes"|"no"}`).
//!
//! Auth is HTTP Basic with [`CONSUMER_KEY`]/[`CONSUMER_SECRET`] (or the same as the
//! `consumer_key`/`consumer_secret` query parameters): missing → 401
//! `woocommerce_rest_cannot_view`, wrong → 401 `woocommerce_rest_authentication_error`.
//! WooCommerce has no rate limit of its own; the gate's throttling answers 429 with
//! `Retry-After` and injected 5xx answer 503, as a host or WAF would.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::gate::{self, Gate};
use crate::state::{Channel, ChannelState, Item, Sandbox};

pub const CONSUMER_KEY: &str = "ck_onhand_sandbox";
pub const CONSUMER_SECRET: &str = "cs_onhand_sandbox";
/// Items per batch request (the default of `woocommerce_rest_batch_items_limit`).
pub const BATCH_LIMIT: usize = 100;
pub const MAX_PER_PAGE: usize = 100;

const BASE: &str = "/wp-json/wc/v3";

/// Store state WooCommerce has and the shared catalogue does not.
#[derive(Debug)]
struct Store {
    /// The store option "Enable stock management".
    manage_stock: bool,
    /// Items whose `manage_stock` was turned off.
    unmanaged: HashSet<u64>,
}

type Shared = Arc<Mutex<Store>>;

fn lock(store: &Shared) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn router() -> Router<Arc<Sandbox>> {
    let store: Shared = Arc::new(Mutex::new(Store {
        manage_stock: true,
        unmanaged: HashSet::new(),
    }));
    Router::new()
        .route(&format!("{BASE}/products"), get(list_products))
        .route(&format!("{BASE}/products/batch"), post(products_batch))
        .route(
            &format!("{BASE}/products/{{id}}/variations"),
            get(list_variations),
        )
        .route(
            &format!("{BASE}/products/{{id}}/variations/batch"),
            post(variations_batch),
        )
        .route(
            &format!("{BASE}/settings/products/woocommerce_manage_stock"),
            get(get_setting).put(put_setting).post(put_setting),
        )
        .layer(Extension(store))
}

fn wc_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"code": code, "message": message, "data": {"status": status.as_u16()}})),
    )
        .into_response()
}

/// Standard base64 (with or without padding); `None` when malformed.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let value = ALPHABET.iter().position(|&a| a == c)? as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Auth and the gate; `None` means go ahead.
async fn admit(
    sandbox: &Sandbox,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Option<Response> {
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(|b64| {
            base64_decode(b64.trim())
                .and_then(|raw| String::from_utf8(raw).ok())
                .unwrap_or_default()
        });
    let credentials = basic.or_else(|| {
        let key = query.get("consumer_key")?;
        let secret = query.get("consumer_secret")?;
        Some(format!("{key}:{secret}"))
    });
    match credentials {
        None => {
            return Some(wc_error(
                StatusCode::UNAUTHORIZED,
                "woocommerce_rest_cannot_view",
                "Sorry, you cannot list resources.",
            ));
        }
        Some(c) if c != format!("{CONSUMER_KEY}:{CONSUMER_SECRET}") => {
            return Some(wc_error(
                StatusCode::UNAUTHORIZED,
                "woocommerce_rest_authentication_error",
                "Consumer key is invalid.",
            ));
        }
        Some(_) => {}
    }
    match gate::admit(sandbox, Channel::Woocommerce, 1.0) {
        Gate::Proceed => None,
        Gate::Hang(duration) => Some(gate::hang(duration).await),
        Gate::ServerError => Some(wc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "The server is temporarily unable to handle the request.",
        )),
        Gate::Throttled { wait } => {
            let mut resp = wc_error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Too many requests.",
            );
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert("retry-after", value);
            }
            Some(resp)
        }
    }
}

/// Ids of products that have variations.
fn parents(state: &ChannelState) -> BTreeSet<u64> {
    state.items.values().filter_map(|i| i.parent_id).collect()
}

fn product_json(
    item: &mut Item,
    now: Instant,
    parents: &BTreeSet<u64>,
    store: &Store,
    fields: Option<&[&str]>,
) -> Value {
    let managed = store.manage_stock && !store.unmanaged.contains(&item.id);
    let quantity = managed.then(|| item.visible(now));
    let kind = match item.parent_id {
        Some(_) => "variation",
        None if parents.contains(&item.id) => "variable",
        None => "simple",
    };
    let stock_status = match quantity {
        Some(q) if q <= 0 => "outofstock",
        _ => "instock",
    };
    let full = json!({
        "id": item.id,
        "name": item.sku,
        "type": kind,
        "status": "publish",
        "sku": item.sku,
        "parent_id": item.parent_id.unwrap_or(0),
        "manage_stock": managed,
        "stock_quantity": quantity,
        "stock_status": stock_status,
    });
    match (fields, full) {
        (Some(fields), Value::Object(object)) => Value::Object(
            object
                .into_iter()
                .filter(|(k, _)| fields.contains(&k.as_str()))
                .collect::<Map<_, _>>(),
        ),
        (_, full) => full,
    }
}

/// `page` and `per_page`, validated as WordPress does.
/// `None` when invalid.
fn paging(query: &HashMap<String, String>) -> Option<(usize, usize)> {
    let number = |name: &str, default: usize| match query.get(name) {
        None => Some(default),
        Some(v) => v.parse::<usize>().ok(),
    };
    let (page, per_page) = (number("page", 1)?, number("per_page", 10)?);
    (page >= 1 && (1..=MAX_PER_PAGE).contains(&per_page)).then_some((page, per_page))
}

/// One page of these SKUs (ordered by id) as product objects, with WordPress's paging headers.
fn page_of(
    state: &mut ChannelState,
    store: &Store,
    mut skus: Vec<String>,
    query: &HashMap<String, String>,
) -> Response {
    let Some((page, per_page)) = paging(query) else {
        return wc_error(
            StatusCode::BAD_REQUEST,
            "rest_invalid_param",
            "Invalid parameter(s): page, per_page (per_page must be between 1 (inclusive) and 100 (inclusive))",
        );
    };
    let fields: Option<Vec<&str>> = query.get("_fields").map(|f| f.split(',').collect());
    let parents = parents(state);
    skus.sort_by_key(|s| state.items.get(s).map(|i| i.id));
    let total = skus.len();
    let pages = total.div_ceil(per_page);
    let now = Instant::now();
    let body: Vec<Value> = skus
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .filter_map(|sku| {
            let item = state.items.get_mut(sku)?;
            Some(product_json(item, now, &parents, store, fields.as_deref()))
        })
        .collect();
    let mut resp = Json(body).into_response();
    for (name, value) in [("x-wp-total", total), ("x-wp-totalpages", pages)] {
        if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

async fn list_products(
    State(sandbox): State<Arc<Sandbox>>,
    Extension(store): Extension<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = admit(&sandbox, &headers, &query).await {
        return refused;
    }
    let mut state = sandbox.channel(Channel::Woocommerce);
    let store = lock(&store);
    let skus: Vec<String> = match query.get("sku") {
        // The SKU filter widens the query to variations.
        Some(wanted) => wanted
            .split(',')
            .map(str::trim)
            .filter(|s| state.items.contains_key(*s))
            .map(str::to_owned)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        None => state
            .items
            .values()
            .filter(|i| i.parent_id.is_none())
            .map(|i| i.sku.clone())
            .collect(),
    };
    page_of(&mut state, &store, skus, &query)
}

async fn list_variations(
    State(sandbox): State<Arc<Sandbox>>,
    Extension(store): Extension<Shared>,
    headers: HeaderMap,
    Path(parent): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = admit(&sandbox, &headers, &query).await {
        return refused;
    }
    let mut state = sandbox.channel(Channel::Woocommerce);
    let store = lock(&store);
    let parent = parent.parse::<u64>().ok();
    let skus: Vec<String> = state
        .items
        .values()
        .filter(|i| i.parent_id.is_some() && i.parent_id == parent)
        .map(|i| i.sku.clone())
        .collect();
    if skus.is_empty() && state.item_by_id(parent.unwrap_or(0)).is_none() {
        return wc_error(
            StatusCode::NOT_FOUND,
            "woocommerce_rest_product_invalid_id",
            "Invalid ID.",
        );
    }
    page_of(&mut state, &store, skus, &query)
}

async fn products_batch(
    State(sandbox): State<Arc<Sandbox>>,
    Extension(store): Extension<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    batch(&sandbox, &store, &headers, &query, None, &body).await
}

async fn variations_batch(
    State(sandbox): State<Arc<Sandbox>>,
    Extension(store): Extension<Shared>,
    headers: HeaderMap,
    Path(parent): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let Ok(parent) = parent.parse::<u64>() else {
        return wc_error(
            StatusCode::NOT_FOUND,
            "rest_no_route",
            "No route was found matching the URL and request method.",
        );
    };
    batch(&sandbox, &store, &headers, &query, Some(parent), &body).await
}

async fn batch(
    sandbox: &Sandbox,
    store: &Shared,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    parent: Option<u64>,
    body: &[u8],
) -> Response {
    if let Some(refused) = admit(sandbox, headers, query).await {
        return refused;
    }
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        return wc_error(
            StatusCode::BAD_REQUEST,
            "rest_invalid_json",
            "Invalid JSON body passed.",
        );
    };
    let count: usize = ["create", "update", "delete"]
        .iter()
        .map(|k| {
            request
                .get(*k)
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        })
        .sum();
    if count > BATCH_LIMIT {
        return wc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "woocommerce_rest_request_entity_too_large",
            &format!("Unable to accept more than {BATCH_LIMIT} items for this request."),
        );
    }
    let invalid_id = match parent {
        None => "woocommerce_rest_product_invalid_id",
        Some(_) => "woocommerce_rest_product_variation_invalid_id",
    };
    let traceparent = gate::traceparent(headers);
    let mut state = sandbox.channel(Channel::Woocommerce);
    let mut store = lock(store);
    let by_id: HashMap<u64, String> = state
        .items
        .values()
        .map(|i| (i.id, i.sku.clone()))
        .collect();
    let parents = parents(&state);
    let now = Instant::now();
    let mut updated = Vec::new();
    for entry in request
        .get("update")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = entry.get("id").and_then(Value::as_u64).unwrap_or(0);
        let item_error = |code: &str, message: &str, status: u16| json!({"id": id, "error": {"code": code, "message": message, "data": {"status": status}}});
        let sku = by_id
            .get(&id)
            .filter(|sku| state.items.get(*sku).map(|i| i.parent_id) == Some(parent));
        let Some(sku) = sku.cloned() else {
            updated.push(item_error(invalid_id, "Invalid ID.", 400));
            continue;
        };
        let faults = state.knobs.faults.clone();
        if state.roll(faults.item_error) {
            updated.push(item_error(invalid_id, "Invalid ID.", 400));
            continue;
        }
        match entry.get("manage_stock") {
            Some(Value::Bool(true)) => {
                store.unmanaged.remove(&id);
            }
            Some(Value::Bool(false)) => {
                store.unmanaged.insert(id);
            }
            _ => {}
        }
        let managed = store.manage_stock && !store.unmanaged.contains(&id);
        match entry.get("stock_quantity") {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_i64() {
                // Without stock management the quantity is reset to '' (shown as null).
                Some(_) if !managed => {}
                Some(q) => state.apply_write(&sku, q, traceparent.as_deref()),
                None => {
                    updated.push(item_error(
                        "rest_invalid_param",
                        "Invalid parameter(s): stock_quantity",
                        400,
                    ));
                    continue;
                }
            },
        }
        if let Some(item) = state.items.get_mut(&sku) {
            updated.push(product_json(item, now, &parents, &store, None));
        }
    }
    let mut response = Map::new();
    for key in ["create", "update", "delete"] {
        if key == "update" {
            response.insert(key.to_owned(), Value::Array(std::mem::take(&mut updated)));
        } else if request.contains_key(key) {
            response.insert(key.to_owned(), json!([]));
        }
    }
    Json(Value::Object(response)).into_response()
}

fn setting(value: bool) -> Value {
    json!({
        "id": "woocommerce_manage_stock",
        "label": "Enable stock management",
        "type": "checkbox",
        "default": "yes",
        "value": if value { "yes" } else { "no" },
    })
}

async fn get_setting(
    State(sandbox): State<Arc<Sandbox>>,
    Extension(store): Extension<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = admit(&sandbox, &headers, &query).await {
        return refused;
    }
    let value = lock(&store).manage_stock;
    Json(setting(value)).into_response()
}

async fn put_setting(
    State(sandbox): State<Arc<Sandbox>>,
    Extension(store): Extension<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Some(refused) = admit(&sandbox, &headers, &query).await {
        return refused;
    }
    let value = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("value").and_then(Value::as_str).map(str::to_owned));
    let on = match value.as_deref() {
        Some("yes") => true,
        Some("no") => false,
        _ => {
            return wc_error(
                StatusCode::BAD_REQUEST,
                "rest_setting_value_invalid",
                "An invalid setting value was passed.",
            );
        }
    };
    lock(&store).manage_stock = on;
    Json(setting(on)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_basic_credentials() {
        assert_eq!(
            base64_decode("Y2tfYTpjc19i").as_deref(),
            Some(&b"ck_a:cs_b"[..])
        );
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("not base64!"), None);
    }
}
