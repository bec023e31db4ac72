//! The eBay Sell Inventory emulator (`/sell/inventory/v1`, CHANNELS.md §3 and
//! channel-specs/ebay-sell-inventory-v1.json).
//!
//! - `POST /bulk_update_price_quantity`: ≤ 25 requests `{sku, shipToLocationAvailability:
//!   {quantity}, offers:[{offerId, availableQuantity}]}`; 200 when every entry succeeded,
//!   207 otherwise, with one `responses[]` entry per SKU and one per offer. Per-item errors:
//!   unknown SKU → 404 / 25002, an offer not of that SKU → 400 / 25709, injected
//!   `faults.item_error` → 500 / 25025 "Concurrent access", the daily revision cap
//!   (`knobs.revisions_per_day`, 250) → 400 / 25002 naming the revision limit (eBay
//!   documents the cap but no error id for it: UNVERIFIED).
//! - `GET /offer?sku=`: the SKU's one offer (offer id = item id); unknown → 404 / 25713.
//! - `GET /inventory_item?limit=&offset=`: pages (limit ≤ 100, 100 when not given, as the
//!   spec says) with `total`, `next`. `offset` counts records here; the spec's text calls
//!   it a page number, so clients should follow `next` rather than compute it.
//! - `POST /bulk_get_inventory_item`: ≤ 25 SKUs, 200/207 with per-SKU entries.
//!
//! Every call needs `Authorization: Bearer <token>` (any token; missing → 401 errorId 1001)
//! and passes the gate: throttled → 429 errorId 2001, injected 5xx → 500 errorId 25001.
//! The listing shows the minimum of the item's and the offer's quantity, so a write stores
//! the smallest quantity that succeeded.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::gate::{self, Gate};
use crate::state::{Channel, ChannelState, Sandbox};

/// Requests per `bulk_update_price_quantity` / `bulk_get_inventory_item` call.
pub const MAX_REQUESTS: usize = 25;
/// Page size cap of `GET /inventory_item`.
pub const MAX_LIMIT: usize = 100;

const BASE: &str = "/sell/inventory/v1";

pub fn router() -> Router<Arc<Sandbox>> {
    Router::new()
        .route(
            &format!("{BASE}/bulk_update_price_quantity"),
            post(bulk_update_price_quantity),
        )
        .route(&format!("{BASE}/offer"), get(get_offers))
        .route(&format!("{BASE}/inventory_item"), get(get_inventory_items))
        .route(
            &format!("{BASE}/bulk_get_inventory_item"),
            post(bulk_get_inventory_item),
        )
}

/// One entry of eBay's `errors` array.
fn error(error_id: u32, category: &str, message: impl Into<String>) -> Value {
    let message = message.into();
    json!({
        "errorId": error_id,
        "domain": "API_INVENTORY",
        "category": category,
        "message": message,
        "longMessage": message,
    })
}

fn error_with(error_id: u32, category: &str, message: String, name: &str, value: &str) -> Value {
    let mut e = error(error_id, category, message);
    e["parameters"] = json!([{"name": name, "value": value}]);
    e
}

fn errors(status: StatusCode, errors: Vec<Value>) -> Response {
    (status, Json(json!({ "errors": errors }))).into_response()
}

fn bad_request(field: &str, detail: &str) -> Response {
    errors(
        StatusCode::BAD_REQUEST,
        vec![error_with(
            25709,
            "REQUEST",
            format!("Invalid value for {field}. {detail}"),
            "fieldName",
            field,
        )],
    )
}

/// Auth and the gate, in eBay's shapes; `None` means go ahead.
async fn admit(sandbox: &Sandbox, headers: &HeaderMap) -> Option<Response> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| !token.trim().is_empty());
    if !bearer {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"errors": [{
                    "errorId": 1001,
                    "domain": "OAuth",
                    "category": "REQUEST",
                    "message": "Invalid access token",
                    "longMessage": "Invalid access token. Check the value of the Authorization HTTP request header.",
                }]})),
            )
                .into_response(),
        );
    }
    match gate::admit(sandbox, Channel::Ebay, 1.0) {
        Gate::Proceed => None,
        Gate::Hang(duration) => Some(gate::hang(duration).await),
        Gate::ServerError => Some(errors(
            StatusCode::INTERNAL_SERVER_ERROR,
            vec![error(25001, "APPLICATION", "A system error has occurred.")],
        )),
        Gate::Throttled { .. } => Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"errors": [{
                    "errorId": 2001,
                    "domain": "ACCESS",
                    "category": "REQUEST",
                    "message": "Too many requests.",
                    "longMessage": "The request limit has been reached for the resource.",
                }]})),
            )
                .into_response(),
        ),
    }
}

#[derive(Debug, Deserialize)]
struct BulkPriceQuantity {
    requests: Option<Vec<PriceQuantity>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PriceQuantity {
    sku: Option<String>,
    ship_to_location_availability: Option<ShipToLocationAvailability>,
    #[serde(default)]
    offers: Vec<OfferPriceQuantity>,
}

#[derive(Debug, Deserialize)]
struct ShipToLocationAvailability {
    quantity: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OfferPriceQuantity {
    offer_id: Option<String>,
    available_quantity: Option<i64>,
    price: Option<Value>,
}

/// One `responses[]` entry.
fn entry(status: u16, sku: &str, offer_id: Option<&str>, errors: Vec<Value>) -> Value {
    let mut e = json!({"statusCode": status, "sku": sku, "errors": errors, "warnings": []});
    if let Some(offer_id) = offer_id {
        e["offerId"] = json!(offer_id);
    }
    e
}

fn valid_quantity(q: i64) -> bool {
    (0..=i64::from(i32::MAX)).contains(&q)
}

async fn bulk_update_price_quantity(
    State(sandbox): State<Arc<Sandbox>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = admit(&sandbox, &headers).await {
        return refused;
    }
    let requests = match serde_json::from_slice::<BulkPriceQuantity>(&body) {
        Ok(BulkPriceQuantity {
            requests: Some(requests),
        }) => requests,
        Ok(_) => return bad_request("requests", "requests is required."),
        Err(e) => return bad_request("request", &format!("Could not read the request: {e}")),
    };
    if requests.is_empty() || requests.len() > MAX_REQUESTS {
        return bad_request(
            "requests",
            &format!("Between 1 and {MAX_REQUESTS} requests are allowed per call."),
        );
    }
    let mut seen = HashSet::new();
    for r in &requests {
        match &r.sku {
            None => return bad_request("sku", "Every request needs a sku."),
            Some(sku) if !seen.insert(sku.as_str()) => {
                return bad_request("sku", "SKU should be unique in the request.");
            }
            Some(_) => {}
        }
    }
    let traceparent = gate::traceparent(&headers);
    let mut state = sandbox.channel(Channel::Ebay);
    let mut responses = Vec::new();
    for request in &requests {
        update_one(&mut state, request, traceparent.as_deref(), &mut responses);
    }
    let all_ok = responses
        .iter()
        .all(|r| r["statusCode"].as_u64() == Some(200));
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    (status, Json(json!({ "responses": responses }))).into_response()
}

/// Apply one SKU's request; push its entries (the SKU's, then one per offer).
fn update_one(
    state: &mut ChannelState,
    request: &PriceQuantity,
    traceparent: Option<&str>,
    out: &mut Vec<Value>,
) {
    let sku = request.sku.as_deref().unwrap_or_default();
    let offer_ids: Vec<&str> = request
        .offers
        .iter()
        .map(|o| o.offer_id.as_deref().unwrap_or_default())
        .collect();
    // Every entry of this SKU fails the same way.
    let fail_all = |out: &mut Vec<Value>, status: u16, err: Value| {
        out.push(entry(status, sku, None, vec![err.clone()]));
        for id in &offer_ids {
            out.push(entry(status, sku, Some(id), vec![err.clone()]));
        }
    };
    let Some(item_id) = state.items.get(sku).map(|i| i.id) else {
        let err = error_with(
            25002,
            "REQUEST",
            format!("Any User error. SKU {sku} is not available in the system."),
            "sku",
            sku,
        );
        return fail_all(out, 404, err);
    };
    let faults = state.knobs.faults.clone();
    if state.roll(faults.item_error) {
        let err = error(
            25025,
            "APPLICATION",
            "Concurrent access of Inventory or InventoryItemGroup. Please try again later",
        );
        return fail_all(out, 500, err);
    }
    if !state.revise(sku) {
        let cap = state.knobs.revisions_per_day;
        let err = error_with(
            25002,
            "REQUEST",
            format!(
                "Any User error. The listing has reached the limit of {cap} revisions per calendar day; it can be revised again on the next calendar day."
            ),
            "sku",
            sku,
        );
        return fail_all(out, 400, err);
    }
    let mut applied: Option<i64> = None;
    let mut take = |q: i64| applied = Some(applied.map_or(q, |a| a.min(q)));
    match request
        .ship_to_location_availability
        .as_ref()
        .map(|s| s.quantity)
    {
        Some(Some(q)) if !valid_quantity(q) => out.push(entry(
            400,
            sku,
            None,
            vec![error_with(
                25709,
                "REQUEST",
                "Invalid value for shipToLocationAvailability.quantity.".to_owned(),
                "fieldName",
                "shipToLocationAvailability.quantity",
            )],
        )),
        Some(Some(q)) => {
            take(q);
            out.push(entry(200, sku, None, Vec::new()));
        }
        _ => out.push(entry(200, sku, None, Vec::new())),
    }
    for offer in &request.offers {
        let id = offer.offer_id.as_deref().unwrap_or_default();
        let invalid = |field: &str, detail: String| {
            entry(
                400,
                sku,
                Some(id),
                vec![error_with(25709, "REQUEST", detail, "fieldName", field)],
            )
        };
        if id.parse::<u64>().ok() != Some(item_id) {
            out.push(invalid(
                "offerId",
                format!("Invalid value for offerId. Offer {id} is not an offer of SKU {sku}."),
            ));
            continue;
        }
        match (offer.available_quantity, &offer.price) {
            (None, None) => out.push(invalid(
                "availableQuantity",
                "Invalid value for availableQuantity. An offer needs availableQuantity or price."
                    .to_owned(),
            )),
            (Some(q), _) if !valid_quantity(q) => out.push(invalid(
                "availableQuantity",
                "Invalid value for availableQuantity.".to_owned(),
            )),
            (q, _) => {
                if let Some(q) = q {
                    take(q);
                }
                out.push(entry(200, sku, Some(id), Vec::new()));
            }
        }
    }
    if let Some(q) = applied {
        state.apply_write(sku, q, traceparent);
    }
}

fn offer_json(sku: &str, id: u64, quantity: i64) -> Value {
    json!({
        "offerId": id.to_string(),
        "sku": sku,
        "marketplaceId": "EBAY_US",
        "format": "FIXED_PRICE",
        "availableQuantity": quantity,
        "status": "PUBLISHED",
    })
}

async fn get_offers(
    State(sandbox): State<Arc<Sandbox>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = admit(&sandbox, &headers).await {
        return refused;
    }
    let Some(sku) = query.get("sku").filter(|s| !s.is_empty()) else {
        return bad_request("sku", "sku is required.");
    };
    let mut state = sandbox.channel(Channel::Ebay);
    let now = Instant::now();
    match state.items.get_mut(sku.as_str()) {
        Some(item) => {
            let quantity = item.visible(now);
            let offer = offer_json(&item.sku, item.id, quantity);
            Json(json!({
                "href": format!("{BASE}/offer?sku={sku}"),
                "limit": 25,
                "offers": [offer],
                "size": 1,
                "total": 1,
            }))
            .into_response()
        }
        None => errors(
            StatusCode::NOT_FOUND,
            vec![error(
                25713,
                "REQUEST",
                format!("This Offer is not available : {sku}."),
            )],
        ),
    }
}

fn inventory_item(sku: &str, quantity: i64) -> Value {
    json!({
        "sku": sku,
        "locale": "en_US",
        "condition": "NEW",
        "availability": {"shipToLocationAvailability": {"quantity": quantity}},
    })
}

async fn get_inventory_items(
    State(sandbox): State<Arc<Sandbox>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = admit(&sandbox, &headers).await {
        return refused;
    }
    let number = |name: &str, default: usize| match query.get(name) {
        None => Ok(default),
        Some(v) => v.parse::<usize>().map_err(|_| name.to_owned()),
    };
    // Without `limit`, "up to 100 records will be returned on each page" (the spec).
    let (limit, offset) = match (number("limit", MAX_LIMIT), number("offset", 0)) {
        (Ok(limit), Ok(offset)) if (1..=MAX_LIMIT).contains(&limit) => (limit, offset),
        _ => {
            return errors(
                StatusCode::BAD_REQUEST,
                vec![error(
                    25706,
                    "REQUEST",
                    format!(
                        "You have provided invalid pagination values. limit must be 1 to {MAX_LIMIT}, offset 0 or more."
                    ),
                )],
            );
        }
    };
    let mut state = sandbox.channel(Channel::Ebay);
    let now = Instant::now();
    let total = state.items.len();
    let items: Vec<Value> = state
        .items
        .values_mut()
        .skip(offset)
        .take(limit)
        .map(|i| {
            let quantity = i.visible(now);
            inventory_item(&i.sku, quantity)
        })
        .collect();
    let mut page = json!({
        "href": format!("{BASE}/inventory_item?limit={limit}&offset={offset}"),
        "inventoryItems": items,
        "limit": limit,
        "size": items.len(),
        "total": total,
    });
    if offset + limit < total {
        page["next"] = json!(format!(
            "{BASE}/inventory_item?limit={limit}&offset={}",
            offset + limit
        ));
    }
    if offset > 0 {
        page["prev"] = json!(format!(
            "{BASE}/inventory_item?limit={limit}&offset={}",
            offset.saturating_sub(limit)
        ));
    }
    Json(page).into_response()
}

#[derive(Debug, Deserialize)]
struct BulkGetInventoryItem {
    requests: Option<Vec<GetInventoryItem>>,
}

#[derive(Debug, Deserialize)]
struct GetInventoryItem {
    sku: Option<String>,
}

async fn bulk_get_inventory_item(
    State(sandbox): State<Arc<Sandbox>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = admit(&sandbox, &headers).await {
        return refused;
    }
    let requests = match serde_json::from_slice::<BulkGetInventoryItem>(&body) {
        Ok(BulkGetInventoryItem {
            requests: Some(requests),
        }) => requests,
        Ok(_) => return bad_request("requests", "requests is required."),
        Err(e) => return bad_request("request", &format!("Could not read the request: {e}")),
    };
    if requests.len() > MAX_REQUESTS {
        return errors(
            StatusCode::BAD_REQUEST,
            vec![error(
                25727,
                "REQUEST",
                format!(
                    "The number of InventoryItems in the request cannot exceed {MAX_REQUESTS}."
                ),
            )],
        );
    }
    let mut skus = HashSet::new();
    for r in &requests {
        match r.sku.as_deref() {
            None | Some("") => {
                return errors(
                    StatusCode::BAD_REQUEST,
                    vec![error(25708, "REQUEST", "Invalid SKU.")],
                );
            }
            Some(sku) if !skus.insert(sku) => {
                return errors(
                    StatusCode::BAD_REQUEST,
                    vec![error(
                        25734,
                        "REQUEST",
                        "SKU should be unique in the request.",
                    )],
                );
            }
            Some(_) => {}
        }
    }
    let mut state = sandbox.channel(Channel::Ebay);
    let now = Instant::now();
    let responses: Vec<Value> = requests
        .iter()
        .map(|r| {
            let sku = r.sku.as_deref().unwrap_or_default();
            match state.items.get_mut(sku) {
                Some(item) => json!({
                    "statusCode": 200,
                    "sku": sku,
                    "inventoryItem": inventory_item(sku, item.visible(now)),
                    "errors": [],
                    "warnings": [],
                }),
                None => json!({
                    "statusCode": 404,
                    "sku": sku,
                    "errors": [error(25702, "REQUEST", format!("SKU {sku} is not available in the system"))],
                    "warnings": [],
                }),
            }
        })
        .collect();
    let status = if responses
        .iter()
        .all(|r| r["statusCode"].as_u64() == Some(200))
    {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    (status, Json(json!({ "responses": responses }))).into_response()
}
