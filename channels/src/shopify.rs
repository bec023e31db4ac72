//! The Shopify Admin GraphQL mapping (CHANNELS.md §1), for API versions ≥ 2026-01
//! (`changeFromQuantity` does not exist before; 2026-04 makes it and `@idempotent`
//! mandatory). `X-Shopify-Access-Token` is the transport's `Auth::Header`.
//!
//! - Resolve: `inventoryItems(first: n, query: "sku:\"A\" OR sku:\"B\"")` with each item's
//!   `available` quantity at the configured location, which becomes the next write's
//!   `changeFromQuantity`. SKUs are matched exactly (Shopify's search may match more).
//! - Write: `inventorySetQuantities` with `name: "available"`, ≤ 250 quantities, every one
//!   with `changeFromQuantity` (the value last resolved or written; an explicit `null`,
//!   which skips the check, only when unknown), `@idempotent(key:)` with a fresh UUID per
//!   request, and `referenceDocumentUri` = `gid://onhand/InventoryEvent/<event id>` of the
//!   newest event in the batch (the input carries one reference per request).
//!
//!   Why a fresh key per request rather than one stable across retries: a retry here is
//!   always a new request built from fresh state (after a throttle, an outage, a lost
//!   compare-and-set or a timeout the projector redelivers), and its variables usually
//!   differ (a new `changeFromQuantity`, a newer event), where reusing a key would earn
//!   `IDEMPOTENCY_KEY_PARAMETER_MISMATCH`; a key derived from the variables would replay
//!   a stored failure when a value changes and changes back. Replays are safe without it:
//!   quantities are absolute, and `changeFromQuantity` turns a replay of an applied write
//!   into a stale answer, which re-reads and finds the value already set.
//! - The mutation is all or nothing: items named by a `userErrors` `field` path get that
//!   error (stale → re-read and retry; idempotency conflicts → transient; the rest →
//!   permanent), the others are re-sent without them.
//! - Rate: a cost bucket, Standard plan (2000 points, 100 points/s restored; Advanced 200,
//!   Plus 1000, Enterprise 2000 — the limiter learns the real numbers from every
//!   response's `extensions.cost.throttleStatus`). The mutation costs 10; queries cost
//!   Shopify's calculated cost (2 + first × 3 here).
//! - Throttled: HTTP 429 or HTTP 200 with `errors[].extensions.code == "THROTTLED"`, the
//!   wait derived from the throttle status.
//! - Read-back: `location(id) { inventoryLevels(first: 250, after:) }` pages by cursor.
//!
//! Quantities are clamped into `0..=i32::MAX` (GraphQL `Int`; Shopify refuses negative
//! sets, and above 10⁹ answers `INVALID_QUANTITY_TOO_HIGH` for that item alone).

mod response;

use std::collections::HashMap;

use onhand_common::Sku;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::{
    ApiRequest, ApiResponse, ChannelApi, ChannelRef, ItemResult, MappingError, PageToken,
    RateReport, ReadPage, Target,
};
use crate::classify::Class;
use crate::limiter::RateLimit;
use crate::push::{ChannelKind, Listed};

/// Items per `inventorySetQuantities` (every GraphQL input array is capped at 250).
pub const MAX_BATCH: usize = 250;
/// Nodes per read-back page and per SKU lookup (Shopify's connection cap).
pub const PAGE_SIZE: usize = 250;
/// A mutation's cost in points.
pub const MUTATION_COST: f64 = 10.0;
/// Standard plan: a 2000-point bucket restoring 100 points per second.
pub const STANDARD_LIMIT: RateLimit = RateLimit {
    capacity: 2000.0,
    refill_per_sec: 100.0,
};
pub const DEFAULT_API_VERSION: &str = "2026-04";

const SET_QUANTITIES: &str = "mutation SetQuantities($input: InventorySetQuantitiesInput!) { \
inventorySetQuantities(input: $input) @idempotent(key: KEY) { \
inventoryAdjustmentGroup { id } userErrors { code field message } } }";

const RESOLVE: &str = "query ResolveSkus($query: String!, $first: Int!, $locationId: ID!) { \
inventoryItems(first: $first, query: $query) { nodes { id sku \
inventoryLevel(locationId: $locationId) { quantities(names: [\"available\"]) { name quantity } } } \
pageInfo { hasNextPage } } }";

const READ: &str = "query ReadLevels($locationId: ID!, $after: String) { \
location(id: $locationId) { inventoryLevels(first: 250, after: $after) { \
nodes { item { id sku } quantities(names: [\"available\"]) { name quantity } } \
pageInfo { hasNextPage endCursor } } } }";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopifyConfig {
    /// `YYYY-MM`, at least 2026-01.
    pub api_version: String,
    /// The location whose `available` quantity onhand sets, e.g. `gid://shopify/Location/1`.
    pub location_id: String,
    /// One of Shopify's fixed reasons.
    pub reason: String,
}

impl ShopifyConfig {
    pub fn new(location_id: impl Into<String>) -> Self {
        Self {
            api_version: DEFAULT_API_VERSION.to_owned(),
            location_id: location_id.into(),
            reason: "correction".to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Shopify {
    config: ShopifyConfig,
    path: String,
}

impl Shopify {
    pub fn new(config: ShopifyConfig) -> Self {
        let path = format!("/admin/api/{}/graphql.json", config.api_version);
        Self { config, path }
    }

    pub fn config(&self) -> &ShopifyConfig {
        &self.config
    }

    fn request(&self, body: Value, cost: f64) -> ApiRequest {
        ApiRequest::new(Method::POST, self.path.clone())
            .json(body)
            .cost(cost)
    }

    /// The write request with a given idempotency key ([`ChannelApi::write_request`] draws
    /// a fresh one).
    pub fn write_request_with_key(
        &self,
        batch: &[Target],
        key: &str,
    ) -> Result<ApiRequest, MappingError> {
        let quantities = batch
            .iter()
            .map(|t| {
                let reference = t.reference.as_ref().ok_or_else(|| MappingError::Sku {
                    sku: t.push.sku.to_string(),
                    reason: "no Shopify inventory item resolved".to_owned(),
                })?;
                Ok(json!({
                    "inventoryItemId": reference.id,
                    "locationId": self.config.location_id,
                    "quantity": quantity(t.push.quantity),
                    "changeFromQuantity": reference.current,
                }))
            })
            .collect::<Result<Vec<_>, MappingError>>()?;
        let newest = batch.iter().map(|t| t.push.event_id).max();
        let mut input = json!({
            "name": "available",
            "reason": self.config.reason,
            "quantities": quantities,
        });
        if let Some(event) = newest {
            input["referenceDocumentUri"] = json!(reference_uri(event));
        }
        // A JSON string literal is a valid GraphQL string literal.
        let key = serde_json::to_string(key).map_err(|e| MappingError::Sku {
            sku: String::new(),
            reason: format!("idempotency key: {e}"),
        })?;
        let query = SET_QUANTITIES.replacen("KEY", &key, 1);
        Ok(self.request(
            json!({"query": query, "variables": {"input": input}}),
            MUTATION_COST,
        ))
    }
}

/// Where an adjustment came from: `gid://onhand/InventoryEvent/<event id>`.
pub fn reference_uri(event_id: Uuid) -> String {
    format!("gid://onhand/InventoryEvent/{event_id}")
}

fn quantity(q: i64) -> i64 {
    q.clamp(0, i64::from(i32::MAX))
}

/// A search term matching exactly one SKU: `sku:"…"` with `"` and `\` escaped.
fn sku_term(sku: &Sku) -> String {
    let mut term = String::from("sku:\"");
    for c in sku.as_str().chars() {
        if matches!(c, '"' | '\\') {
            term.push('\\');
        }
        term.push(c);
    }
    term.push('"');
    term
}

/// Shopify's calculated cost of a connection of `n` nodes costing 3 each.
fn connection_cost(n: usize) -> f64 {
    2.0 + 3.0 * n as f64
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResolveData {
    inventory_items: Connection<ItemNode>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Connection<N> {
    nodes: Vec<N>,
    page_info: Option<PageInfo>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemNode {
    id: String,
    sku: Option<String>,
    inventory_level: Option<Level>,
}

#[derive(Debug, Deserialize)]
struct Level {
    #[serde(default)]
    quantities: Vec<Quantity>,
}

#[derive(Debug, Deserialize)]
struct Quantity {
    name: String,
    quantity: i64,
}

fn available(quantities: &[Quantity]) -> Option<i64> {
    quantities
        .iter()
        .find(|q| q.name == "available")
        .map(|q| q.quantity)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadData {
    location: Option<LocationNode>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LocationNode {
    inventory_levels: Connection<LevelNode>,
}

#[derive(Debug, Deserialize)]
struct LevelNode {
    item: Option<LevelItem>,
    #[serde(default)]
    quantities: Vec<Quantity>,
}

#[derive(Debug, Deserialize)]
struct LevelItem {
    sku: Option<String>,
}

/// `data` of a query response, or why there is none.
fn data<D: serde::de::DeserializeOwned>(resp: &ApiResponse) -> Result<D, MappingError> {
    let body: response::Envelope<D> = resp.json()?;
    body.data.ok_or_else(|| MappingError::Response {
        status: resp.status,
        reason: body.errors.map_or_else(
            || "no data".to_owned(),
            |e| format!("GraphQL errors: {}", e.message()),
        ),
    })
}

impl ChannelApi for Shopify {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Shopify
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn default_rate_limit(&self) -> Option<RateLimit> {
        Some(STANDARD_LIMIT)
    }

    fn resolve_request(&self, skus: &[Sku]) -> Option<Result<ApiRequest, MappingError>> {
        let query = skus.iter().map(sku_term).collect::<Vec<_>>().join(" OR ");
        Some(Ok(self.request(
            json!({"query": RESOLVE, "variables": {
                "query": query, "first": skus.len(), "locationId": self.config.location_id}}),
            connection_cost(skus.len()),
        )))
    }

    fn max_resolve_batch(&self) -> usize {
        PAGE_SIZE
    }

    fn resolve_response(
        &self,
        skus: &[Sku],
        resp: &ApiResponse,
    ) -> Result<HashMap<Sku, ChannelRef>, MappingError> {
        let data: ResolveData = data(resp)?;
        let mut found = HashMap::new();
        for node in data.inventory_items.nodes {
            let Some(sku) = skus
                .iter()
                .find(|s| node.sku.as_deref() == Some(s.as_str()))
            else {
                continue;
            };
            let current = node
                .inventory_level
                .as_ref()
                .and_then(|l| available(&l.quantities));
            found.insert(
                sku.clone(),
                ChannelRef {
                    id: node.id,
                    parent: None,
                    current,
                },
            );
        }
        let truncated = data
            .inventory_items
            .page_info
            .is_some_and(|p| p.has_next_page);
        if truncated && found.len() < skus.len() {
            // Loose search matches crowded some SKUs out: absent would mean "no such SKU".
            return Err(MappingError::Response {
                status: resp.status,
                reason: "the SKU search returned more items than asked for".to_owned(),
            });
        }
        Ok(found)
    }

    fn write_request(&self, batch: &[Target]) -> Result<ApiRequest, MappingError> {
        self.write_request_with_key(batch, &Uuid::new_v4().to_string())
    }

    fn write_outcomes(&self, batch: &[Target], resp: &ApiResponse) -> Vec<ItemResult> {
        response::write_outcomes(batch, resp)
    }

    fn read_request(&self, page: &PageToken) -> Result<ApiRequest, MappingError> {
        Ok(self.request(
            json!({"query": READ, "variables": {
                "locationId": self.config.location_id, "after": page.0}}),
            1.0 + connection_cost(PAGE_SIZE),
        ))
    }

    fn read_page(&self, resp: &ApiResponse) -> Result<ReadPage, MappingError> {
        let data: ReadData = data(resp)?;
        let levels = data
            .location
            .ok_or_else(|| MappingError::Response {
                status: resp.status,
                reason: format!("no location {}", self.config.location_id),
            })?
            .inventory_levels;
        let items = levels
            .nodes
            .into_iter()
            .filter_map(|n| {
                let sku = Sku::parse(n.item?.sku?).ok()?;
                let quantity = available(&n.quantities)?;
                Some(Listed { sku, quantity })
            })
            .collect();
        let next = levels
            .page_info
            .filter(|p| p.has_next_page)
            .and_then(|p| p.end_cursor)
            .map(PageToken::next);
        Ok(ReadPage { items, next })
    }

    fn rate_report(&self, resp: &ApiResponse) -> Option<RateReport> {
        response::rate_report(resp)
    }

    fn classify(&self, resp: &ApiResponse) -> Class {
        response::classify(resp)
    }
}

#[cfg(test)]
mod tests;
