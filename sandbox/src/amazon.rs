//! The Amazon SP-API Listings Items emulator (`/listings/2021-08-01`, CHANNELS.md §2 and
//! channel-specs/amazon-listings-items-2021-08-01.json):
//!
//! - `PATCH /items/{sellerId}/{sku}?marketplaceIds=` (`patchListingsItem`): a
//!   `ListingsItemPatchRequest` whose patches `merge` or `replace`
//!   `/attributes/fulfillment_availability` with `[{fulfillment_channel_code, quantity}]`.
//!   200 `ACCEPTED` applies after `knobs.apply_delay_ms`; 200 `INVALID` with issues for a
//!   SKU without a listing, a negative quantity, a channel code other than `DEFAULT`, or an
//!   injected item error; `mode=VALIDATION_PREVIEW` answers `VALID` and applies nothing.
//! - `GET /items/{sellerId}/{sku}?marketplaceIds=&includedData=` (`getListingsItem`),
//!   `summaries` and `fulfillmentAvailability`; 404 for an unknown SKU.
//! - `GET /items/{sellerId}?marketplaceIds=&includedData=&pageSize=&pageToken=`
//!   (`searchListingsItems`): pages of at most 20 in SKU order (the emulator ignores
//!   `sortBy`), and, as the spec says, at most 1000 items can be paged through;
//!   `numberOfResults` still counts them all. With `identifiers` (comma-delimited, at most
//!   20, the spec's `maxItems`) and `identifiersType` (each required with the other, as
//!   the spec notes; the emulator supports `SKU` only), just the listings with those
//!   SKUs.
//!
//! Errors use the `ErrorList` shape `{"errors":[{code,message,details}]}`: 403 without an
//! `x-amz-access-token`, 400 for a request outside the contract (or outside the emulated
//! subset: other attributes, `add`/`delete`), 429 `QuotaExceeded` when the channel's bucket
//! is empty (one bucket for all three operations; the documented plans are 5/s burst 5 for
//! patch and search, 5/10 for get), 500 `InternalFailure` when injected. Responses the spec
//! gives it carry `x-amzn-RateLimit-Limit` (the bucket's rate) while a rate knob is set;
//! every response carries `x-amzn-RequestId`.
//!
//! An unknown SKU on PATCH is `INVALID` rather than 404: the spec lists no 404 for
//! `patchListingsItem` (a merge needs an existing listing). Its issue code is the
//! emulator's own, not a documented one.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::gate::{self, Gate};
use crate::state::{Channel, Sandbox};

pub const API: &str = "/listings/2021-08-01";
/// The value paths this emulator supports.
pub const FULFILLMENT_AVAILABILITY: &str = "/attributes/fulfillment_availability";
/// `searchListingsItems`: largest `pageSize`, and how many items can be paged through.
pub const MAX_PAGE_SIZE: usize = 20;
pub const SEARCH_CAP: usize = 1000;
/// `searchListingsItems`: most `identifiers` in one request.
pub const MAX_IDENTIFIERS: usize = 20;
const DEFAULT_PAGE_SIZE: usize = 10;
/// Dates the summaries report (the emulator keeps no history).
const LISTED_AT: &str = "2025-01-01T00:00:00Z";

pub fn router() -> Router<Arc<Sandbox>> {
    Router::new()
        .route(&format!("{API}/items/{{seller}}"), get(search))
        .route(
            &format!("{API}/items/{{seller}}/{{sku}}"),
            get(get_item).patch(patch_item),
        )
}

type Params = Query<HashMap<String, String>>;

/// An `ErrorList` response.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"errors": [{"code": code, "message": message.into(), "details": ""}]});
    (status, axum::Json(body)).into_response()
}

/// Auth, marketplace and the gate; `Ok(rate)` to proceed, with the bucket's rate for the
/// `x-amzn-RateLimit-Limit` header.
async fn admit(
    sandbox: &Sandbox,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<Option<f64>, Response> {
    let token = headers
        .get("x-amz-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if token.trim().is_empty() {
        return Err(error(
            StatusCode::FORBIDDEN,
            "Unauthorized",
            "Access to requested resource is denied.",
        ));
    }
    match gate::admit(sandbox, Channel::Amazon, 1.0) {
        Gate::Proceed => {}
        Gate::Throttled { .. } => {
            return Err(error(
                StatusCode::TOO_MANY_REQUESTS,
                "QuotaExceeded",
                "You exceeded your quota for the requested resource.",
            ));
        }
        Gate::ServerError => {
            return Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailure",
                "We encountered an internal error. Please try again.",
            ));
        }
        Gate::Hang(wait) => return Err(gate::hang(wait).await),
    }
    let rate = sandbox
        .channel(Channel::Amazon)
        .knobs
        .rate
        .map(|r| r.refill_per_sec);
    if params
        .get("marketplaceIds")
        .is_none_or(|m| m.split(',').all(|m| m.trim().is_empty()))
    {
        return Err(with_rate(
            error(
                StatusCode::BAD_REQUEST,
                "InvalidInput",
                "Missing required parameter: marketplaceIds",
            ),
            rate,
        ));
    }
    Ok(rate)
}

/// `x-amzn-RateLimit-Limit` on a response the spec gives it (200, 400, 404).
fn with_rate(mut response: Response, rate: Option<f64>) -> Response {
    if let Some(rate) = rate
        && let Ok(value) = HeaderValue::from_str(&format!("{rate:.1}"))
    {
        response
            .headers_mut()
            .insert("x-amzn-RateLimit-Limit", value);
    }
    response
}

/// Every response gets a request id.
fn finish(result: Result<Response, Response>) -> Response {
    let mut response = result.unwrap_or_else(|r| r);
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        response.headers_mut().insert("x-amzn-RequestId", id);
    }
    response
}

fn included(params: &HashMap<String, String>) -> Vec<String> {
    params.get("includedData").map_or_else(
        || vec!["summaries".to_owned()],
        |v| v.split(',').map(|s| s.trim().to_owned()).collect(),
    )
}

/// A listings item with the data sets asked for.
fn item_json(sku: &str, quantity: i64, marketplace: &str, included: &[String]) -> Value {
    let mut item = json!({"sku": sku});
    if included.iter().any(|d| d == "summaries") {
        item["summaries"] = json!([{
            "marketplaceId": marketplace,
            "productType": "PRODUCT",
            "status": ["BUYABLE"],
            "createdDate": LISTED_AT,
            "lastUpdatedDate": LISTED_AT,
        }]);
    }
    if included.iter().any(|d| d == "fulfillmentAvailability") {
        item["fulfillmentAvailability"] =
            json!([{"fulfillmentChannelCode": "DEFAULT", "quantity": quantity}]);
    }
    item
}

fn marketplace(params: &HashMap<String, String>) -> String {
    params
        .get("marketplaceIds")
        .and_then(|m| m.split(',').next())
        .unwrap_or_default()
        .to_owned()
}

async fn get_item(
    State(sandbox): State<Arc<Sandbox>>,
    Path((_seller, sku)): Path<(String, String)>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    finish(
        async {
            let rate = admit(&sandbox, &headers, &params).await?;
            let mut state = sandbox.channel(Channel::Amazon);
            let Some(item) = state.items.get_mut(&sku) else {
                return Err(with_rate(
                    error(
                        StatusCode::NOT_FOUND,
                        "NOT_FOUND",
                        format!("SKU '{sku}' not found in marketplace"),
                    ),
                    rate,
                ));
            };
            let quantity = item.visible(Instant::now());
            let body = item_json(&sku, quantity, &marketplace(&params), &included(&params));
            Ok(with_rate(axum::Json(body).into_response(), rate))
        }
        .await,
    )
}

async fn search(
    State(sandbox): State<Arc<Sandbox>>,
    Path(_seller): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    finish(
        async {
            let rate = admit(&sandbox, &headers, &params).await?;
            let bad = |message: String| {
                with_rate(
                    error(StatusCode::BAD_REQUEST, "InvalidInput", message),
                    rate,
                )
            };
            let size = match params.get("pageSize") {
                None => DEFAULT_PAGE_SIZE,
                Some(s) => match s.parse::<usize>() {
                    Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
                    _ => return Err(bad(format!("pageSize must be 1 to {MAX_PAGE_SIZE}"))),
                },
            };
            let offset = match params.get("pageToken") {
                None => 0,
                Some(t) => match decode_token(t) {
                    Some(offset) => offset,
                    None => return Err(bad("Invalid pageToken".to_owned())),
                },
            };
            let identifiers = match (params.get("identifiers"), params.get("identifiersType")) {
                (None, None) => None,
                (Some(ids), Some(kind)) if kind == "SKU" => {
                    let ids: std::collections::BTreeSet<&str> = ids.split(',').collect();
                    if ids.len() > MAX_IDENTIFIERS || ids.contains("") {
                        return Err(bad(format!(
                            "identifiers must hold 1 to {MAX_IDENTIFIERS} values"
                        )));
                    }
                    Some(ids)
                }
                (Some(_), Some(_)) => {
                    return Err(bad(
                        "the sandbox emulates identifiersType=SKU only".to_owned()
                    ));
                }
                _ => {
                    return Err(bad(
                        "identifiers and identifiersType are required together".to_owned()
                    ));
                }
            };
            let included = included(&params);
            let marketplace = marketplace(&params);
            let mut state = sandbox.channel(Channel::Amazon);
            let now = Instant::now();
            let mut matching: Vec<&mut crate::state::Item> = state
                .items
                .values_mut()
                .filter(|i| {
                    identifiers
                        .as_ref()
                        .is_none_or(|ids| ids.contains(i.sku.as_str()))
                })
                .collect();
            let total = matching.len();
            let end = (offset + size).min(total).min(SEARCH_CAP);
            let items: Vec<Value> = matching
                .iter_mut()
                .skip(offset)
                .take(end.saturating_sub(offset))
                .map(|i| {
                    let q = i.visible(now);
                    item_json(&i.sku, q, &marketplace, &included)
                })
                .collect();
            let mut pagination = serde_json::Map::new();
            if end < total.min(SEARCH_CAP) {
                pagination.insert("nextToken".to_owned(), json!(encode_token(end)));
            }
            if offset > 0 {
                pagination.insert(
                    "previousToken".to_owned(),
                    json!(encode_token(offset.saturating_sub(size))),
                );
            }
            let body = json!({"numberOfResults": total, "pagination": pagination, "items": items});
            Ok(with_rate(axum::Json(body).into_response(), rate))
        }
        .await,
    )
}

/// Page tokens are opaque to clients; here, an offset in disguise.
fn encode_token(offset: usize) -> String {
    format!("sbx{:08x}", offset)
}

fn decode_token(token: &str) -> Option<usize> {
    usize::from_str_radix(token.strip_prefix("sbx")?, 16).ok()
}

/// What a valid patch request asks for: the `DEFAULT` quantity, or an issue.
enum Patch {
    Quantity(i64),
    Invalid(Value),
}

fn issue(code: &str, message: &str, attribute: Option<&str>, category: &str) -> Value {
    json!({"code": code, "message": message, "severity": "ERROR",
           "attributeNames": attribute.map_or_else(Vec::new, |a| vec![a]),
           "categories": [category]})
}

/// Check a `ListingsItemPatchRequest` against the spec and the emulated subset.
fn parse_patch(body: &[u8]) -> Result<Patch, String> {
    let body: Value = serde_json::from_slice(body).map_err(|e| format!("Invalid JSON: {e}"))?;
    if !body.get("productType").is_some_and(Value::is_string) {
        return Err("productType is required and must be a string".to_owned());
    }
    let patches = body
        .get("patches")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
        .ok_or("patches is required and must hold at least one operation")?;
    let mut quantity = None;
    for (n, patch) in patches.iter().enumerate() {
        let op = patch.get("op").and_then(Value::as_str).unwrap_or_default();
        if !["add", "replace", "merge", "delete"].contains(&op) {
            return Err(format!(
                "patches[{n}].op must be add, replace, merge or delete"
            ));
        }
        let path = patch
            .get("path")
            .and_then(Value::as_str)
            .ok_or(format!("patches[{n}].path is required"))?;
        if path != FULFILLMENT_AVAILABILITY || !["merge", "replace"].contains(&op) {
            return Err(format!(
                "patches[{n}]: the sandbox emulates only merge or replace of {FULFILLMENT_AVAILABILITY}"
            ));
        }
        let values = patch
            .get("value")
            .and_then(Value::as_array)
            .ok_or(format!("patches[{n}].value must be an array"))?;
        for value in values {
            let code = value
                .get("fulfillment_channel_code")
                .and_then(Value::as_str);
            let qty = value.get("quantity");
            let (Some(code), Some(qty)) = (code, qty) else {
                return Err(format!(
                    "patches[{n}].value entries need fulfillment_channel_code and quantity"
                ));
            };
            let Some(qty) = qty.as_i64() else {
                return Err(format!("patches[{n}].value quantity must be an integer"));
            };
            if code != "DEFAULT" {
                return Ok(Patch::Invalid(issue(
                    "90000900",
                    "Only the DEFAULT (merchant-fulfilled) quantity can be set.",
                    Some("fulfillment_availability"),
                    "INVALID_ATTRIBUTE",
                )));
            }
            if qty < 0 {
                return Ok(Patch::Invalid(issue(
                    "90000900",
                    "The value for 'quantity' must be greater than or equal to 0.",
                    Some("fulfillment_availability"),
                    "INVALID_ATTRIBUTE",
                )));
            }
            quantity = Some(qty);
        }
    }
    quantity
        .map(Patch::Quantity)
        .ok_or_else(|| "no fulfillment_availability quantity in the patches".to_owned())
}

async fn patch_item(
    State(sandbox): State<Arc<Sandbox>>,
    Path((_seller, sku)): Path<(String, String)>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    finish(
        async {
            let rate = admit(&sandbox, &headers, &params).await?;
            let patch = parse_patch(&body).map_err(|message| {
                with_rate(
                    error(StatusCode::BAD_REQUEST, "InvalidInput", message),
                    rate,
                )
            })?;
            let preview = params
                .get("mode")
                .is_some_and(|m| m == "VALIDATION_PREVIEW");
            let mut state = sandbox.channel(Channel::Amazon);
            let item_error = state.knobs.faults.item_error;
            let outcome = if !state.items.contains_key(&sku) {
                Patch::Invalid(issue(
                    "SANDBOX_SKU_NOT_FOUND",
                    "No listing exists for this SKU in the marketplace.",
                    None,
                    "INVALID_ATTRIBUTE",
                ))
            } else if state.roll(item_error) {
                Patch::Invalid(issue(
                    "90000900",
                    "The attributes are invalid (injected).",
                    Some("fulfillment_availability"),
                    "INVALID_ATTRIBUTE",
                ))
            } else {
                patch
            };
            let (status, issues) = match outcome {
                Patch::Invalid(issue) => ("INVALID", vec![issue]),
                Patch::Quantity(_) if preview => ("VALID", vec![]),
                Patch::Quantity(quantity) => {
                    state.apply_write(&sku, quantity, gate::traceparent(&headers).as_deref());
                    ("ACCEPTED", vec![])
                }
            };
            let body = json!({"sku": sku, "status": status,
                          "submissionId": uuid::Uuid::new_v4().simple().to_string(),
                          "issues": issues});
            Ok(with_rate(axum::Json(body).into_response(), rate))
        }
        .await,
    )
}
