//! The WooCommerce REST v3 mapping (`/wp-json/wc/v3`, CHANNELS.md §4).
//!
//! - Resolve: `GET /products?sku=A,B,…&per_page=100` matches products and variations; a
//!   variation's ref carries its product as `parent`.
//! - Write: products go to `POST /products/batch`, each parent's variations to
//!   `POST /products/{parent}/variations/batch` ([`ChannelApi::group_key`] keeps them in
//!   separate requests), ≤ 100 items, always `manage_stock: true` with the absolute
//!   `stock_quantity`. Per-item errors come back inside the 200 (`{"id", "error"}`): an
//!   invalid id is permanent, a 5xx status in `error.data` transient. An item answered with a
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
mod tests {
    use super::*;
    use bytes::Bytes;
    use reqwest::header::{HeaderMap, HeaderValue};
    use uuid::Uuid;

    use crate::push::Push;

    fn target(sku: &str, quantity: i64, id: u64, parent: Option<u64>) -> Target {
        Target {
            push: Push {
                sku: Sku::parse(sku).expect("sku"),
                quantity,
                version: 1,
                event_id: Uuid::nil(),
            },
            reference: Some(ChannelRef {
                id: id.to_string(),
                parent: parent.map(|p| p.to_string()),
                current: None,
            }),
        }
    }

    fn resp(status: u16, body: serde_json::Value, total_pages: Option<u32>) -> ApiResponse {
        let mut headers = HeaderMap::new();
        if let Some(t) = total_pages {
            headers.insert(
                "x-wp-totalpages",
                HeaderValue::from_str(&t.to_string()).expect("header"),
            );
        }
        ApiResponse {
            status,
            headers,
            body: Bytes::from(body.to_string()),
        }
    }

    fn outcomes(batch: &[Target], r: &ApiResponse) -> Vec<PushOutcome> {
        Woo::default()
            .write_outcomes(batch, r)
            .into_iter()
            .map(|i| match i {
                ItemResult::Done(o) => o,
                other => panic!("WooCommerce results are final per item: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn write_body_snapshots() {
        let api = Woo::default();
        let products = api
            .write_request(&[target("A", 12, 799, None), target("B", -1, 800, None)])
            .expect("maps");
        assert_eq!(products.method, Method::POST);
        assert_eq!(products.path, "/wp-json/wc/v3/products/batch");
        assert_eq!(
            products.body,
            Some(json!({"update": [
                {"id": 799, "manage_stock": true, "stock_quantity": 12},
                {"id": 800, "manage_stock": true, "stock_quantity": -1},
            ]}))
        );
        let variations = api
            .write_request(&[target("A-RED", 3, 901, Some(900))])
            .expect("maps");
        assert_eq!(
            variations.path,
            "/wp-json/wc/v3/products/900/variations/batch"
        );
        assert_eq!(
            variations.body,
            Some(json!({"update": [{"id": 901, "manage_stock": true, "stock_quantity": 3}]}))
        );
        assert!(
            api.write_request(&[target("A", 1, 1, None), target("V", 1, 2, Some(9))])
                .is_err(),
            "a mixed batch is a transport bug, not a request"
        );
        assert_eq!(
            api.group_key(&target("V", 1, 2, Some(9))),
            Some("9".to_owned())
        );
        assert_eq!(api.group_key(&target("A", 1, 1, None)), None);
    }

    #[test]
    fn per_item_errors_inside_a_200_fan_out() {
        let batch = [
            target("OK", 5, 1, None),
            target("BAD-ID", 5, 2, None),
            target("UNMANAGED", 5, 3, None),
            target("DOWN", 5, 4, None),
            target("ABSENT", 5, 5, None),
        ];
        let r = resp(
            200,
            json!({"update": [
                {"id": 1, "sku": "OK", "manage_stock": true, "stock_quantity": 5},
                {"id": 2, "error": {"code": "woocommerce_rest_product_invalid_id", "message": "Invalid ID.", "data": {"status": 400}}},
                {"id": 3, "sku": "UNMANAGED", "manage_stock": false, "stock_quantity": null},
                {"id": 4, "error": {"code": "internal_server_error", "message": "db gone", "data": {"status": 500}}},
            ]}),
            None,
        );
        let got = outcomes(&batch, &r);
        assert_eq!(got[0], PushOutcome::Applied);
        assert_eq!(
            got[1],
            PushOutcome::permanent("woocommerce_rest_product_invalid_id", "Invalid ID.")
        );
        assert!(
            matches!(&got[2], PushOutcome::Permanent { code, .. } if code == "stock_management_disabled"),
            "{:?}",
            got[2]
        );
        assert!(
            matches!(&got[3], PushOutcome::Transient { .. }),
            "{:?}",
            got[3]
        );
        assert!(
            matches!(&got[4], PushOutcome::Transient { .. }),
            "{:?}",
            got[4]
        );
    }

    #[test]
    fn whole_request_failures() {
        let batch = [target("A", 1, 1, None), target("B", 1, 2, None)];
        let too_large = resp(
            413,
            json!({"code": "woocommerce_rest_request_entity_too_large",
                   "message": "Unable to accept more than 100 items for this request.",
                   "data": {"status": 413}}),
            None,
        );
        assert!(outcomes(&batch, &too_large).iter().all(|o| matches!(
            o,
            PushOutcome::Permanent { code, .. } if code == "woocommerce_rest_request_entity_too_large"
        )));
        let unauthorized = resp(
            401,
            json!({"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources.", "data": {"status": 401}}),
            None,
        );
        assert!(outcomes(&batch, &unauthorized).iter().all(|o| matches!(
            o,
            PushOutcome::Permanent { code, .. } if code == "woocommerce_rest_cannot_view"
        )));
        let busy = resp(503, json!({"code": "service_unavailable"}), None);
        assert!(
            outcomes(&batch, &busy)
                .iter()
                .all(|o| matches!(o, PushOutcome::Transient { .. }))
        );
    }

    #[test]
    fn resolves_products_and_variations() {
        let api = Woo::default();
        let skus = [
            Sku::parse("P").expect("sku"),
            Sku::parse("V").expect("sku"),
            Sku::parse("NONE").expect("sku"),
        ];
        let request = api.resolve_request(&skus).expect("resolves").expect("maps");
        assert_eq!(
            request.path,
            "/wp-json/wc/v3/products?sku=P%2CV%2CNONE&per_page=100&_fields=id%2Csku%2Cparent_id%2Cstock_quantity"
        );
        let found = api
            .resolve_response(
                &skus,
                &resp(
                    200,
                    json!([
                        {"id": 10, "sku": "P", "parent_id": 0, "stock_quantity": 4},
                        {"id": 12, "sku": "V", "parent_id": 11, "stock_quantity": null},
                    ]),
                    Some(1),
                ),
            )
            .expect("maps");
        assert_eq!(found.len(), 2);
        assert_eq!(found[&skus[0]].parent, None);
        assert_eq!(found[&skus[0]].current, Some(4));
        assert_eq!(found[&skus[1]].id, "12");
        assert_eq!(found[&skus[1]].parent.as_deref(), Some("11"));
    }

    #[test]
    fn read_back_walks_products_then_their_variations() {
        let api = Woo::default();
        let first = PageToken::first();
        assert!(
            api.read_request(&first)
                .expect("maps")
                .path
                .starts_with("/wp-json/wc/v3/products?per_page=100&page=1&")
        );
        // Page 1 of 2 holds a simple product and two variable ones.
        let page = api
            .read_page_at(
                &first,
                &resp(
                    200,
                    json!([
                        {"id": 1, "sku": "S", "type": "simple", "stock_quantity": 3},
                        {"id": 2, "sku": "", "type": "variable", "stock_quantity": null},
                        {"id": 3, "sku": "VAR", "type": "variable", "stock_quantity": 9},
                        {"id": 4, "sku": "OFF", "type": "simple", "stock_quantity": null},
                    ]),
                    Some(2),
                ),
            )
            .expect("maps");
        let skus: Vec<&str> = page.items.iter().map(|l| l.sku.as_str()).collect();
        assert_eq!(skus, vec!["S", "VAR"]);
        let token = page.next.expect("more");
        assert_eq!(
            api.read_request(&token).expect("maps").path,
            "/wp-json/wc/v3/products/2/variations?per_page=100&page=1&orderby=id&order=asc&_fields=id%2Csku%2Cstock_quantity"
        );
        // Product 2's variations span two pages, then product 3's, then products page 2.
        let variations = |n: u64| {
            resp(
                200,
                json!([{"id": n, "sku": format!("V{n}"), "stock_quantity": 1}]),
                Some(2),
            )
        };
        let token = api
            .read_page_at(&token, &variations(20))
            .expect("maps")
            .next
            .expect("more");
        assert!(
            api.read_request(&token)
                .expect("maps")
                .path
                .contains("/products/2/variations?per_page=100&page=2")
        );
        let token = api
            .read_page_at(&token, &variations(21))
            .expect("maps")
            .next
            .expect("more");
        assert!(
            api.read_request(&token)
                .expect("maps")
                .path
                .contains("/products/3/variations?per_page=100&page=1")
        );
        let last_variations = resp(200, json!([]), Some(0));
        let token = api
            .read_page_at(&token, &last_variations)
            .expect("maps")
            .next
            .expect("more");
        assert!(
            api.read_request(&token)
                .expect("maps")
                .path
                .contains("/products?per_page=100&page=2&")
        );
        let end = api
            .read_page_at(
                &token,
                &resp(
                    200,
                    json!([{"id": 5, "sku": "Z", "type": "simple", "stock_quantity": 0}]),
                    Some(2),
                ),
            )
            .expect("maps");
        assert_eq!(end.next, None);
        assert_eq!(end.items.len(), 1);
        assert!(matches!(
            api.read_request(&PageToken::next("nonsense")),
            Err(MappingError::PageToken { .. })
        ));
    }
}
