//! The WooCommerce REST v3 mapping (`/wp-json/wc/v3`, CHANNELS.md §4).
//!
//! - Resolve: `GET /products?sku=A,B,…&per_page=100` matches products and variations; a
//!   variation's ref carries its product as `parent`.
//! - Write: products go to `POST /products/batch`, each parent's variations to
//!   `POST /products/{parent}/variations/batch` ([`ChannelApi::group_key`] keeps them in
//!   separate requests), ≤ 100 items, always `manage_stock: true` with the absolute
//!   `stock_quantity`. Per-item errors come back inside the 200 (`{"id", "error"}`): an
//!   invalid id is permanent, a 5xx status in `error.data` transient, a 401/403 held as a
//!   credentials problem (as a whole-request 401 is, `classify`). A 413 (the store lowered
//!   `woocommerce_rest_batch_items_limit` below [`WooConfig::batch_limit`]; CHANNELS.md §4
//!   says stores can) refuses the request as a whole with no item at fault: every item is
//!   [`ItemResult::Resend`], so the transport bisects until the halves fit. An item answered with a
//!   different `stock_quantity` than we sent was not applied (the store has stock management
//!   off, or the product type ignores stock): permanent `stock_management_disabled`.
//! - Read-back: `GET /products` lists products only, as WooCommerce does, so the read-back
//!   pages through the products and, after each page, through the variations of that page's
//!   variable products (`GET /products/{id}/variations`). The page token carries the next
//!   products page and the variable products still to read (at most one page's worth).
//!   Items without a managed stock quantity have nothing to compare and are left out.
//! - WooCommerce has no rate limit of its own; 429/503 from a host are handled by the shared
//!   classification (`Retry-After` honoured).

use std::collections::HashMap;

use onhand_common::Sku;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::api::{
    ApiRequest, ApiResponse, ChannelApi, ChannelRef, ItemResult, MappingError, PageToken, ReadPage,
    Target,
};
use crate::classify;
use crate::limiter::RateLimit;
use crate::push::{ChannelKind, Listed, PushOutcome};

const BASE: &str = "/wp-json/wc/v3";
/// WooCommerce's default `woocommerce_rest_batch_items_limit`.
pub const BATCH_LIMIT: usize = 100;
/// The most `per_page` allows.
pub const PER_PAGE: usize = 100;

#[derive(Debug, Clone)]
pub struct WooConfig {
    /// Items per batch request: 100 unless the store lowered
    /// `woocommerce_rest_batch_items_limit` (a store that did answers 413 to more).
    pub batch_limit: usize,
}

impl Default for WooConfig {
    fn default() -> Self {
        Self {
            batch_limit: BATCH_LIMIT,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Woo {
    config: WooConfig,
}

impl Woo {
    pub fn new(config: WooConfig) -> Self {
        Self { config }
    }
}

/// A product or variation, with the fields we ask for.
#[derive(Debug, Deserialize)]
struct Product {
    id: u64,
    #[serde(default)]
    sku: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    parent_id: Option<u64>,
    #[serde(default)]
    stock_quantity: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct BatchResponse {
    #[serde(default)]
    update: Vec<BatchItem>,
}

#[derive(Debug, Deserialize)]
struct BatchItem {
    id: Option<u64>,
    #[serde(default)]
    stock_quantity: Option<i64>,
    #[serde(default)]
    manage_stock: Option<serde_json::Value>,
    error: Option<WooError>,
}

#[derive(Debug, Deserialize)]
struct WooError {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    data: Option<ErrorData>,
}

#[derive(Debug, Deserialize)]
struct ErrorData {
    status: Option<u16>,
}

/// Where the read-back is: the next products page (none when all are read) and the
/// variable products whose variations are still to read, the first at `variation_page`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    product_page: Option<u32>,
    parents: Vec<u64>,
    variation_page: u32,
}

impl Cursor {
    fn decode(token: &PageToken) -> Result<Self, MappingError> {
        let Some(text) = &token.0 else {
            return Ok(Self {
                product_page: Some(1),
                parents: Vec::new(),
                variation_page: 1,
            });
        };
        let bad = || MappingError::PageToken {
            token: text.clone(),
        };
        let mut parts = text.split(';');
        let (Some(p), Some(v), Some(q), None) = (
            parts.next().and_then(|s| s.strip_prefix("p=")),
            parts.next().and_then(|s| s.strip_prefix("v=")),
            parts.next().and_then(|s| s.strip_prefix("q=")),
            parts.next(),
        ) else {
            return Err(bad());
        };
        Ok(Self {
            product_page: match p {
                "-" => None,
                p => Some(p.parse().map_err(|_| bad())?),
            },
            variation_page: v.parse().map_err(|_| bad())?,
            parents: q
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().map_err(|_| bad()))
                .collect::<Result<_, _>>()?,
        })
    }

    fn encode(&self) -> PageToken {
        let parents: Vec<String> = self.parents.iter().map(u64::to_string).collect();
        PageToken::next(format!(
            "p={};v={};q={}",
            self.product_page.map_or("-".to_owned(), |p| p.to_string()),
            self.variation_page,
            parents.join(",")
        ))
    }
}

/// A path with form-encoded query parameters.
fn query(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://query.invalid/").expect("invariant: a valid URL");
    url.query_pairs_mut().extend_pairs(pairs);
    format!("{path}?{}", url.query().unwrap_or_default())
}

fn item_id(target: &Target) -> Result<u64, MappingError> {
    target
        .reference
        .as_ref()
        .and_then(|r| r.id.parse().ok())
        .ok_or_else(|| MappingError::Sku {
            sku: target.push.sku.as_str().to_owned(),
            reason: "no WooCommerce id resolved".to_owned(),
        })
}

fn parent(target: &Target) -> Option<&str> {
    target.reference.as_ref().and_then(|r| r.parent.as_deref())
}

/// Products (and variations) with a SKU and a managed stock quantity.
fn listed(products: Vec<Product>) -> Vec<Listed> {
    products
        .into_iter()
        .filter_map(|p| {
            let quantity = p.stock_quantity?;
            let sku = Sku::parse(p.sku.filter(|s| !s.is_empty())?).ok()?;
            Some(Listed { sku, quantity })
        })
        .collect()
}

/// A whole-response failure, with WooCommerce's error code where it gave one.
fn whole(resp: &ApiResponse) -> PushOutcome {
    let outcome = classify::outcome(&classify::http(resp), resp).unwrap_or_else(|| {
        PushOutcome::transient(format!("unexpected HTTP {} from WooCommerce", resp.status))
    });
    match (outcome, resp.json::<WooError>()) {
        (PushOutcome::Permanent { .. }, Ok(e)) => PushOutcome::permanent(e.code, e.message),
        (outcome, _) => outcome,
    }
}

impl BatchItem {
    fn outcome(&self, sent: i64) -> PushOutcome {
        if let Some(e) = &self.error {
            let status = e.data.as_ref().and_then(|d| d.status).unwrap_or(400);
            return if status >= 500 {
                PushOutcome::transient(format!("WooCommerce {}: {}", e.code, e.message))
            } else if matches!(status, 401 | 403) {
                // The key's user may not edit products: the account's problem, held like a
                // whole-request 401 (see `classify`).
                PushOutcome::Transient {
                    retry_after: Some(classify::AUTH_RETRY),
                    reason: format!(
                        "WooCommerce refused our credentials for this item ({} {}): {}",
                        status, e.code, e.message
                    ),
                }
            } else {
                PushOutcome::permanent(e.code.clone(), e.message.clone())
            };
        }
        if self.stock_quantity == Some(sent) {
            return PushOutcome::Applied;
        }
        PushOutcome::permanent(
            "stock_management_disabled",
            format!(
                "WooCommerce kept stock_quantity {:?} (manage_stock {:?}) instead of {sent}: stock management is off for the store or this product type",
                self.stock_quantity, self.manage_stock
            ),
        )
    }
}

impl ChannelApi for Woo {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Woocommerce
    }

    fn max_batch(&self) -> usize {
        self.config.batch_limit.max(1)
    }

    /// None in WooCommerce itself; a host's limit is configured per store.
    fn default_rate_limit(&self) -> Option<RateLimit> {
        None
    }

    fn resolve_request(&self, skus: &[Sku]) -> Option<Result<ApiRequest, MappingError>> {
        let joined = skus.iter().map(Sku::as_str).collect::<Vec<_>>().join(",");
        Some(Ok(ApiRequest::get(query(
            &format!("{BASE}/products"),
            &[
                ("sku", &joined),
                ("per_page", &PER_PAGE.to_string()),
                ("_fields", "id,sku,parent_id,stock_quantity"),
            ],
        ))))
    }

    /// One SKU matches at most one product or variation, so a page holds them all.
    fn max_resolve_batch(&self) -> usize {
        PER_PAGE
    }

    fn resolve_response(
        &self,
        skus: &[Sku],
        resp: &ApiResponse,
    ) -> Result<HashMap<Sku, ChannelRef>, MappingError> {
        if resp.status != 200 {
            return Err(MappingError::Response {
                status: resp.status,
                reason: "product lookup by SKU failed".to_owned(),
            });
        }
        let products: Vec<Product> = resp.json()?;
        let mut by_sku: HashMap<&str, &Product> = HashMap::new();
        for p in &products {
            if let Some(sku) = p.sku.as_deref() {
                by_sku.insert(sku, p);
            }
        }
        Ok(skus
            .iter()
            .filter_map(|sku| {
                let p = by_sku.get(sku.as_str())?;
                Some((
                    sku.clone(),
                    ChannelRef {
                        id: p.id.to_string(),
                        parent: p.parent_id.filter(|&id| id != 0).map(|id| id.to_string()),
                        current: p.stock_quantity,
                    },
                ))
            })
            .collect())
    }

    /// Variations of one product share a key; products have none.
    fn group_key(&self, target: &Target) -> Option<String> {
        parent(target).map(str::to_owned)
    }

    fn write_request(&self, batch: &[Target]) -> Result<ApiRequest, MappingError> {
        let parent = batch.first().and_then(parent);
        let mut update = Vec::with_capacity(batch.len());
        for t in batch {
            if crate::woocommerce::parent(t) != parent {
                return Err(MappingError::Sku {
                    sku: t.push.sku.as_str().to_owned(),
                    reason: "products and each product's variations go in separate requests"
                        .to_owned(),
                });
            }
            update.push(json!({
                "id": item_id(t)?,
                "manage_stock": true,
                "stock_quantity": t.push.quantity,
            }));
        }
        let path = match parent {
            None => format!("{BASE}/products/batch"),
            Some(parent) => {
                let parent: u64 = parent.parse().map_err(|_| MappingError::Sku {
                    sku: batch
                        .first()
                        .map(|t| t.push.sku.as_str().to_owned())
                        .unwrap_or_default(),
                    reason: format!("invalid parent product id {parent:?}"),
                })?;
                format!("{BASE}/products/{parent}/variations/batch")
            }
        };
        Ok(ApiRequest::new(Method::POST, path).json(json!({ "update": update })))
    }

    fn write_outcomes(&self, batch: &[Target], resp: &ApiResponse) -> Vec<ItemResult> {
        if resp.status == 413 {
            // The store's `woocommerce_rest_batch_items_limit` is below ours: nothing was
            // applied and no item is at fault, so the transport halves the request until
            // it fits. Only a single item refused as too large is final.
            let outcome = whole(resp);
            return batch
                .iter()
                .map(|_| ItemResult::Resend(outcome.clone()))
                .collect();
        }
        if resp.status != 200 {
            return crate::api::all(batch, whole(resp));
        }
        let body: BatchResponse = match resp.json() {
            Ok(body) => body,
            Err(e) => return crate::api::all(batch, PushOutcome::transient(e.to_string())),
        };
        let by_id: HashMap<u64, &BatchItem> = body
            .update
            .iter()
            .filter_map(|i| Some((i.id?, i)))
            .collect();
        batch
            .iter()
            .map(|t| {
                let item = item_id(t).ok().and_then(|id| by_id.get(&id));
                ItemResult::Done(match item {
                    Some(item) => item.outcome(t.push.quantity),
                    None => PushOutcome::transient("WooCommerce's response lacks this item"),
                })
            })
            .collect()
    }

    fn read_request(&self, page: &PageToken) -> Result<ApiRequest, MappingError> {
        let cursor = Cursor::decode(page)?;
        let per_page = PER_PAGE.to_string();
        if let Some(parent) = cursor.parents.first() {
            return Ok(ApiRequest::get(query(
                &format!("{BASE}/products/{parent}/variations"),
                &[
                    ("per_page", &per_page),
                    ("page", &cursor.variation_page.to_string()),
                    ("orderby", "id"),
                    ("order", "asc"),
                    ("_fields", "id,sku,stock_quantity"),
                ],
            )));
        }
        let Some(product_page) = cursor.product_page else {
            return Err(MappingError::PageToken {
                token: page.0.clone().unwrap_or_default(),
            });
        };
        Ok(ApiRequest::get(query(
            &format!("{BASE}/products"),
            &[
                ("per_page", &per_page),
                ("page", &product_page.to_string()),
                ("orderby", "id"),
                ("order", "asc"),
                ("_fields", "id,sku,type,stock_quantity"),
            ],
        )))
    }

    fn read_page(&self, resp: &ApiResponse) -> Result<ReadPage, MappingError> {
        self.read_page_at(&PageToken::first(), resp)
    }

    fn read_page_at(
        &self,
        token: &PageToken,
        resp: &ApiResponse,
    ) -> Result<ReadPage, MappingError> {
        let mut cursor = Cursor::decode(token)?;
        let products: Vec<Product> = resp.json()?;
        let page = if cursor.parents.is_empty() {
            cursor.product_page.unwrap_or(1)
        } else {
            cursor.variation_page
        };
        let more = match resp
            .header("x-wp-totalpages")
            .and_then(|v| v.parse::<u32>().ok())
        {
            Some(total) => page < total,
            // Without the header, a full page may have a successor.
            None => products.len() >= PER_PAGE,
        };
        if cursor.parents.is_empty() {
            cursor.parents = products
                .iter()
                .filter(|p| p.kind.as_deref() == Some("variable"))
                .map(|p| p.id)
                .collect();
            cursor.variation_page = 1;
            cursor.product_page = more.then_some(page + 1);
        } else if more {
            cursor.variation_page = page + 1;
        } else {
            cursor.parents.remove(0);
            cursor.variation_page = 1;
        }
        let next =
            (!cursor.parents.is_empty() || cursor.product_page.is_some()).then(|| cursor.encode());
        Ok(ReadPage {
            items: listed(products),
            next,
        })
    }
}

#[cfg(test)]
mod tests;
