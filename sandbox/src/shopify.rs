//! The Shopify Admin GraphQL emulator (CHANNELS.md §1): `POST
//! /admin/api/{version}/graphql.json` with `X-Shopify-Access-Token`.
//!
//! - Auth: a missing or empty token → 401 `{"errors":"[API] Invalid API key or access token
//!   (unrecognized login or wrong password)"}`. An unparseable version → 404.
//! - The body is `{query, variables?, operationName?}` (else 400); the document is parsed
//!   ([`graphql`]) and anything not understood is a GraphQL error (HTTP 200, `errors`, no
//!   `data`), never a panic.
//! - Cost ([`cost`]): a mutation costs 10, queries Shopify's calculated cost (≤ 1000). The
//!   bucket is `knobs.rate` in cost points (`None`: unlimited, and then no `throttleStatus`
//!   is reported since there is no bucket). The requested cost is charged; Shopify's refund
//!   of the difference to the actual cost is not emulated, so `actualQueryCost` equals the
//!   requested cost. Every answered request carries `extensions.cost`.
//! - Throttled (bucket empty or `faults.http_429`) → `errors:[{message:"Throttled",
//!   extensions:{code:"THROTTLED",documentation}}]`, `actualQueryCost: null`, no `data`,
//!   with HTTP `knobs.throttle_status` (200 or 429: both are seen in the wild). Injected 5xx
//!   → 500 with `INTERNAL_SERVER_ERROR`.
//! - Operations: [`mutation`] (`inventorySetQuantities`) and [`query`] (`inventoryItems`
//!   by SKU, `location { inventoryLevels }` pages). One location, [`LOCATION_ID`], stocks
//!   every catalogue item; item ids are `gid://shopify/InventoryItem/<id>`.

mod cost;
pub mod graphql;
pub mod mutation;
pub mod query;

use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::gate::{self, Gate};
use crate::state::{Channel, Sandbox};
use graphql::{GqlError, Operation, OperationKind};

/// The one location of the emulated shop.
pub const LOCATION_ID: &str = "gid://shopify/Location/1";
const ITEM_GID: &str = "gid://shopify/InventoryItem/";
const RATE_LIMIT_DOCS: &str = "https://shopify.dev/api/usage/rate-limits";

pub fn item_gid(id: u64) -> String {
    format!("{ITEM_GID}{id}")
}

pub fn item_id(gid: &str) -> Option<u64> {
    gid.strip_prefix(ITEM_GID)?.parse().ok()
}

/// An API version, `YYYY-MM` (`unstable` is newer than all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(u16, u8);

impl Version {
    pub const V2026_01: Version = Version(2026, 1);
    pub const V2026_04: Version = Version(2026, 4);

    pub fn parse(s: &str) -> Option<Self> {
        if s == "unstable" {
            return Some(Self(u16::MAX, 12));
        }
        let (y, m) = s.split_once('-')?;
        let (y, m) = (y.parse().ok()?, m.parse().ok()?);
        (y >= 2017 && (1..=12).contains(&m) && s.len() == 7).then_some(Self(y, m))
    }
}

pub fn router() -> Router<Arc<Sandbox>> {
    Router::new()
        .route("/admin/api/{version}/graphql.json", post(graphql_endpoint))
        .layer(Extension(Arc::new(Mutex::new(mutation::Store::default()))))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphqlRequest {
    query: String,
    #[serde(default)]
    variables: Option<Map<String, Value>>,
    #[serde(default)]
    operation_name: Option<String>,
}

fn errors(status: StatusCode, errors: Vec<Value>, cost: Option<Value>) -> Response {
    let mut body = json!({ "errors": errors });
    if let Some(cost) = cost {
        body["extensions"] = json!({ "cost": cost });
    }
    (status, Json(body)).into_response()
}

/// `extensions.cost`, with the bucket as it is after this request.
fn cost_extension(sandbox: &Sandbox, requested: u64, actual: Option<u64>) -> Value {
    let mut cost = json!({"requestedQueryCost": requested, "actualQueryCost": actual});
    if let Some((available, capacity, refill)) = sandbox.channel(Channel::Shopify).bucket_status() {
        cost["throttleStatus"] = json!({
            "maximumAvailable": capacity,
            "currentlyAvailable": available.floor(),
            "restoreRate": refill,
        });
    }
    cost
}

fn select<'a>(ops: &'a [Operation], name: Option<&str>) -> Result<&'a Operation, GqlError> {
    match (ops, name) {
        ([op], None) => Ok(op),
        (_, Some(name)) => ops
            .iter()
            .find(|o| o.name.as_deref() == Some(name))
            .ok_or_else(|| GqlError::new(format!("No operation named \"{name}\""))),
        _ => Err(GqlError::new(
            "An operation name is required when the document has several operations",
        )),
    }
}

async fn graphql_endpoint(
    State(sandbox): State<Arc<Sandbox>>,
    Extension(store): Extension<Arc<Mutex<mutation::Store>>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorised = headers
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| !t.trim().is_empty());
    if !authorised {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"})),
        )
            .into_response();
    }
    let Some(version) = Version::parse(&version) else {
        return (StatusCode::NOT_FOUND, Json(json!({"errors": "Not Found"}))).into_response();
    };
    let Ok(request) = serde_json::from_slice::<GraphqlRequest>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"errors": {"query": "Required parameter missing or invalid"}})),
        )
            .into_response();
    };
    let prepared = graphql::parse(&request.query).and_then(|ops| {
        let op = select(&ops, request.operation_name.as_deref())?.clone();
        let vars = graphql::variables(&op, &request.variables.unwrap_or_default())?;
        let cost = cost::requested(&op, &vars)?;
        Ok((op, vars, cost))
    });
    let (op, vars, cost) = match prepared {
        Ok(p) => p,
        Err(e) => return errors(StatusCode::OK, vec![e.to_json()], None),
    };
    match gate::admit(&sandbox, Channel::Shopify, cost as f64) {
        Gate::Proceed => {}
        Gate::Hang(duration) => return gate::hang(duration).await,
        Gate::ServerError => {
            return errors(
                StatusCode::INTERNAL_SERVER_ERROR,
                vec![json!({
                    "message": "Internal error. Looks like something went wrong on our end.",
                    "extensions": {"code": "INTERNAL_SERVER_ERROR"},
                })],
                None,
            );
        }
        Gate::Throttled { .. } => {
            let status = sandbox.channel(Channel::Shopify).knobs.throttle_status;
            let status = StatusCode::from_u16(status)
                .ok()
                .filter(|s| *s == StatusCode::OK || *s == StatusCode::TOO_MANY_REQUESTS)
                .unwrap_or(StatusCode::TOO_MANY_REQUESTS);
            return errors(
                status,
                vec![json!({
                    "message": "Throttled",
                    "extensions": {"code": "THROTTLED", "documentation": RATE_LIMIT_DOCS},
                })],
                Some(cost_extension(&sandbox, cost, None)),
            );
        }
    }
    let traceparent = gate::traceparent(&headers);
    let result = run(
        &sandbox,
        &store,
        version,
        &op,
        &vars,
        traceparent.as_deref(),
    );
    let extension = cost_extension(&sandbox, cost, Some(cost));
    match result {
        Ok(data) => Json(json!({"data": data, "extensions": {"cost": extension}})).into_response(),
        Err(e) => errors(StatusCode::OK, vec![e.to_json()], Some(extension)),
    }
}

/// Execute under the locks (store first, then the channel: always in that order).
fn run(
    sandbox: &Sandbox,
    store: &Mutex<mutation::Store>,
    version: Version,
    op: &Operation,
    vars: &Map<String, Value>,
    traceparent: Option<&str>,
) -> Result<Value, GqlError> {
    let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
    let mut state = sandbox.channel(Channel::Shopify);
    match op.kind {
        OperationKind::Query => query::execute(&mut state, op, vars),
        OperationKind::Mutation => {
            mutation::execute(&mut state, &mut store, version, op, vars, traceparent)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_ids() {
        assert!(Version::parse("2026-04") == Some(Version::V2026_04));
        assert!(Version::parse("2025-10") < Some(Version::V2026_01));
        assert!(Version::parse("unstable") > Some(Version::V2026_04));
        for bad in ["2026-4", "2026-13", "latest", "", "1999-01"] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
        assert_eq!(item_id(&item_gid(42)), Some(42));
        assert_eq!(item_id("gid://shopify/Product/42"), None);
    }
}
