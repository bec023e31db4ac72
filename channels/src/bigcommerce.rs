//! BigCommerce Inventory v3, the mapping only (CHANNELS.md §5).
//!
//! - Write: `PUT /stores/{hash}/v3/inventory/adjustments/absolute`, up to 2000 items per
//!   request, each `{location_id, sku, quantity}` at the configured location. A 200 is
//!   accepted, the read-back decides: the API is asynchronous ("there may be a short
//!   delay"), so a read straight after may show the old level.
//! - A 422 refuses the whole request. Items the problem names (its `title` lists
//!   `Item with sku X ...`; a schema 422 keys `errors` by `items.N...`) are permanent;
//!   every other item is [`ItemResult::Resend`]: the transport sends the innocent ones
//!   again without the culprits, and bisects when the 422 names nobody, until each
//!   culprit is alone (and permanent with the 422's title).
//! - Quota: 150 requests per 30 s per store (Standard/Plus) by default, shared by every
//!   app. `X-Rate-Limit-Requests-Left/-Quota/-Time-Window-Ms` retune the limiter (quota
//!   per window becomes capacity and refill rate); when nothing is left the limiter waits
//!   `X-Rate-Limit-Time-Reset-Ms`, which a 429 also uses as its retry hint.
//! - Read-back: `GET /inventory/items?location_id:in=&page=&limit=1000`, the level being
//!   `total_inventory_onhand` at our location (what an absolute adjustment sets;
//!   `available_to_sell` subtracts safety stock).

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::api::{
    self, ApiRequest, ApiResponse, ChannelApi, ItemResult, MappingError, PageToken, RateReport,
    ReadPage, Target,
};
use crate::classify::{self, Class};
use crate::limiter::RateLimit;
use crate::push::{ChannelKind, Listed, PushOutcome};

pub const MAX_ITEMS: usize = 2000;
/// Most items per read page ("Limit of 1000 items for payload length").
const PAGE_LIMIT: usize = 1000;
const REASON: &str = "onhand absolute sync";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigCommerceConfig {
    pub store_hash: String,
    /// The location whose levels onhand sets (1 is a store's default location).
    pub location_id: i64,
}

#[derive(Debug, Clone)]
pub struct BigCommerceApi {
    config: BigCommerceConfig,
}

impl BigCommerceApi {
    pub fn new(config: BigCommerceConfig) -> Self {
        Self { config }
    }

    fn path(&self, rest: &str) -> String {
        format!("/stores/{}/v3{rest}", self.config.store_hash)
    }
}

#[derive(Debug, Deserialize)]
struct Problem {
    #[serde(default)]
    title: String,
    #[serde(default)]
    errors: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct ItemsPage {
    data: Vec<InventoryItem>,
    meta: Meta,
}

#[derive(Debug, Deserialize)]
struct InventoryItem {
    identity: Identity,
    #[serde(default)]
    locations: Vec<Location>,
}

#[derive(Debug, Deserialize)]
struct Identity {
    sku: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Location {
    location_id: i64,
    total_inventory_onhand: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct Meta {
    pagination: Pagination,
}

#[derive(Debug, Deserialize)]
struct Pagination {
    current_page: u64,
    total_pages: u64,
}

/// Which items of the batch a 422 names: `sku X` in the title (the longest batch SKU at
/// each mention, so `A` is not blamed for `A B`), or `items.N` keys in `errors`.
fn named(batch: &[Target], problem: &Problem) -> Vec<bool> {
    let mut guilty = vec![false; batch.len()];
    let title = problem.title.as_str();
    for (at, _) in title.match_indices("sku ") {
        let rest = &title[at + 4..];
        let culprit = batch
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                let sku = t.push.sku.as_str();
                rest.starts_with(sku)
                    && rest[sku.len()..]
                        .chars()
                        .next()
                        .is_none_or(|c| matches!(c, ' ' | ',' | ']' | ';' | ':' | ')'))
            })
            .max_by_key(|(_, t)| t.push.sku.as_str().len())
            .map(|(i, t)| (i, t.push.sku.as_str()));
        if let Some((_, sku)) = culprit {
            for (i, t) in batch.iter().enumerate() {
                if t.push.sku.as_str() == sku {
                    guilty[i] = true;
                }
            }
        }
    }
    for key in problem.errors.keys() {
        let index = key
            .strip_prefix("items.")
            .and_then(|k| k.split('.').next())
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(flag) = index.and_then(|n| guilty.get_mut(n)) {
            *flag = true;
        }
    }
    guilty
}

fn header_f64(resp: &ApiResponse, name: &str) -> Option<f64> {
    resp.header(name)?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

fn reset_after(resp: &ApiResponse) -> Option<Duration> {
    header_f64(resp, "x-rate-limit-time-reset-ms")
        .map(|ms| Duration::from_secs_f64(ms.min(3_600_000.0) / 1000.0))
}

impl ChannelApi for BigCommerceApi {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Bigcommerce
    }

    fn max_batch(&self) -> usize {
        MAX_ITEMS
    }

    fn default_rate_limit(&self) -> Option<RateLimit> {
        // Standard and Plus plans: 150 requests per 30 s window.
        Some(RateLimit {
            capacity: 150.0,
            refill_per_sec: 5.0,
        })
    }

    fn write_request(&self, batch: &[Target]) -> Result<ApiRequest, MappingError> {
        let items: Vec<_> = batch
            .iter()
            .map(|t| {
                json!({"location_id": self.config.location_id,
                       "sku": t.push.sku.as_str(),
                       "quantity": t.push.quantity})
            })
            .collect();
        Ok(
            ApiRequest::new(Method::PUT, self.path("/inventory/adjustments/absolute"))
                .header("accept", "application/json")
                .json(json!({"reason": REASON, "items": items})),
        )
    }

    fn write_outcomes(&self, batch: &[Target], resp: &ApiResponse) -> Vec<ItemResult> {
        if resp.status == 422 {
            let problem: Problem = resp.json().unwrap_or(Problem {
                title: String::from_utf8_lossy(&resp.body[..resp.body.len().min(512)]).into_owned(),
                errors: serde_json::Map::new(),
            });
            let message = if problem.title.is_empty() {
                "the whole request was refused (422)".to_owned()
            } else {
                problem.title.clone()
            };
            return named(batch, &problem)
                .into_iter()
                .map(|guilty| {
                    let outcome = PushOutcome::permanent("unprocessable", message.clone());
                    if guilty {
                        ItemResult::Done(outcome)
                    } else {
                        ItemResult::Resend(outcome)
                    }
                })
                .collect();
        }
        // 200: accepted, the read-back decides.
        let outcome = classify::outcome(&self.classify(resp), resp).unwrap_or(PushOutcome::Applied);
        api::all(batch, outcome)
    }

    fn read_request(&self, page: &PageToken) -> Result<ApiRequest, MappingError> {
        let number = match &page.0 {
            None => 1,
            Some(t) => t
                .parse::<u64>()
                .map_err(|_| MappingError::PageToken { token: t.clone() })?,
        };
        Ok(ApiRequest::get(format!(
            "{}?location_id:in={}&page={number}&limit={PAGE_LIMIT}",
            self.path("/inventory/items"),
            self.config.location_id
        ))
        .header("accept", "application/json"))
    }

    fn read_page(&self, resp: &ApiResponse) -> Result<ReadPage, MappingError> {
        let page: ItemsPage = resp.json()?;
        let mut items = Vec::with_capacity(page.data.len());
        for item in page.data {
            // Product-level items without a SKU, and items not stocked at our location,
            // are not ours to compare.
            let Some(sku) = item.identity.sku.filter(|s| !s.is_empty()) else {
                continue;
            };
            let Some(quantity) = item
                .locations
                .iter()
                .find(|l| l.location_id == self.config.location_id)
                .and_then(|l| l.total_inventory_onhand)
            else {
                continue;
            };
            // A SKU onhand cannot hold (DESIGN.md §3) was never pushed by onhand; skipping
            // it keeps the read-back of every other item.
            match onhand_common::Sku::parse(sku.clone()) {
                Ok(sku) => items.push(Listed { sku, quantity }),
                Err(e) => {
                    tracing::warn!(channel = "bigcommerce", ?sku, error = %e, "read-back skipped an item whose SKU onhand cannot hold");
                }
            }
        }
        let p = page.meta.pagination;
        let next = (p.current_page < p.total_pages)
            .then(|| PageToken::next((p.current_page + 1).to_string()));
        Ok(ReadPage { items, next })
    }

    fn rate_report(&self, resp: &ApiResponse) -> Option<RateReport> {
        let left = header_f64(resp, "x-rate-limit-requests-left")?;
        let quota = header_f64(resp, "x-rate-limit-requests-quota").filter(|q| *q > 0.0);
        let window = header_f64(resp, "x-rate-limit-time-window-ms").filter(|w| *w > 0.0);
        Some(RateReport {
            available: left,
            capacity: quota,
            refill_per_sec: quota.zip(window).map(|(q, w)| q / (w / 1000.0)),
            reset_after: if left < 1.0 { reset_after(resp) } else { None },
        })
    }

    fn classify(&self, resp: &ApiResponse) -> Class {
        match classify::http(resp) {
            Class::Throttled { retry_after: None } => Class::Throttled {
                retry_after: reset_after(resp),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> BigCommerceApi {
        BigCommerceApi::new(BigCommerceConfig {
            store_hash: "abc123".to_owned(),
            location_id: 1,
        })
    }

    fn target(sku: &str, quantity: i64) -> Target {
        crate::test_support::target(sku, quantity, 1, None)
    }

    fn resp(status: u16, headers: &[(&'static str, &'static str)], body: &str) -> ApiResponse {
        crate::test_support::response(status, headers, body.to_owned())
    }

    #[test]
    fn outbound_adjustment_snapshot() {
        let request = api()
            .write_request(&[target("RE-130", 5), target("A B", 0)])
            .expect("request");
        assert_eq!(request.method, Method::PUT);
        assert_eq!(
            request.path,
            "/stores/abc123/v3/inventory/adjustments/absolute"
        );
        assert_eq!(
            request.json_body().expect("body").to_string(),
            r#"{"items":[{"location_id":1,"quantity":5,"sku":"RE-130"},{"location_id":1,"quantity":0,"sku":"A B"}],"reason":"onhand absolute sync"}"#
        );
        let read = api().read_request(&PageToken::next("3")).expect("read");
        assert_eq!(
            read.path,
            "/stores/abc123/v3/inventory/items?location_id:in=1&page=3&limit=1000"
        );
        assert!(api().read_request(&PageToken::next("x")).is_err());
    }

    #[test]
    fn a_422_blames_the_named_items_and_resends_the_rest() {
        let batch = [
            target("A", 1),
            target("A B", 2),
            target("C", 3),
            target("D", -1),
        ];
        let out = api().write_outcomes(
            &batch,
            &resp(
                422,
                &[("content-type", "application/problem+json")],
                r#"{"status":422,"title":"[Item with sku A B does not exist, Item with sku D has quantity -1 outside 0..2147483647]","type":"https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes","errors":{}}"#,
            ),
        );
        assert!(matches!(out[0], ItemResult::Resend(_)), "{out:?}");
        assert!(matches!(
            out[1],
            ItemResult::Done(PushOutcome::Permanent { .. })
        ));
        assert!(matches!(out[2], ItemResult::Resend(_)));
        assert!(matches!(
            out[3],
            ItemResult::Done(PushOutcome::Permanent { .. })
        ));
        let schema = api().write_outcomes(
            &batch,
            &resp(
                422,
                &[],
                r#"{"status":422,"title":"Payload contains invalid fields","type":"x","errors":{"items.2.quantity":"must be an integer"}}"#,
            ),
        );
        assert!(matches!(
            schema[2],
            ItemResult::Done(PushOutcome::Permanent { .. })
        ));
        assert!(matches!(schema[0], ItemResult::Resend(_)));
        let anonymous = api().write_outcomes(
            &batch,
            &resp(
                422,
                &[],
                r#"{"status":422,"title":"[Item with variant_id 106 is tracked by product, please update stock by product id]","type":"x","errors":{}}"#,
            ),
        );
        assert!(anonymous.iter().all(|r| matches!(r, ItemResult::Resend(_))));
    }

    #[test]
    fn classifies_recorded_responses() {
        let batch = [target("A", 1), target("B", 2)];
        let ok = api().write_outcomes(
            &batch,
            &resp(
                200,
                &[],
                r#"{"transaction_id":"3fa85f64-5717-4562-b3fc-2c963f66afa6"}"#,
            ),
        );
        assert_eq!(ok, vec![ItemResult::Done(PushOutcome::Applied); 2]);
        let throttled = resp(
            429,
            &[
                ("X-Rate-Limit-Requests-Left", "0"),
                ("X-Rate-Limit-Requests-Quota", "150"),
                ("X-Rate-Limit-Time-Reset-Ms", "1500"),
                ("X-Rate-Limit-Time-Window-Ms", "30000"),
            ],
            r#"{"status":429,"title":"Too many requests","type":"x","errors":{}}"#,
        );
        assert_eq!(
            api().classify(&throttled),
            Class::Throttled {
                retry_after: Some(Duration::from_millis(1500))
            }
        );
        assert!(matches!(
            api().write_outcomes(&batch, &throttled)[1],
            ItemResult::Done(PushOutcome::Transient { retry_after: Some(d), .. }) if d == Duration::from_millis(1500)
        ));
        let load = resp(429, &[], "");
        assert_eq!(
            api().classify(&load),
            Class::Throttled { retry_after: None }
        );
        assert!(matches!(
            api().write_outcomes(&batch, &resp(502, &[], ""))[0],
            ItemResult::Done(PushOutcome::Transient { .. })
        ));
        assert!(matches!(
            api().write_outcomes(&batch, &resp(401, &[], r#"{"status":401}"#))[0],
            ItemResult::Done(PushOutcome::Transient { ref reason, .. }) if reason.contains("credentials")
        ));
    }

    #[test]
    fn rate_report_from_quota_headers() {
        let report = api()
            .rate_report(&resp(
                200,
                &[
                    ("X-Rate-Limit-Requests-Left", "0"),
                    ("X-Rate-Limit-Requests-Quota", "150"),
                    ("X-Rate-Limit-Time-Reset-Ms", "2500"),
                    ("X-Rate-Limit-Time-Window-Ms", "30000"),
                ],
                "{}",
            ))
            .expect("report");
        assert_eq!(report.available, 0.0);
        assert_eq!(report.capacity, Some(150.0));
        assert_eq!(report.refill_per_sec, Some(5.0));
        assert_eq!(report.reset_after, Some(Duration::from_millis(2500)));
        let plenty = api()
            .rate_report(&resp(
                200,
                &[
                    ("X-Rate-Limit-Requests-Left", "37"),
                    ("X-Rate-Limit-Time-Reset-Ms", "2500"),
                ],
                "{}",
            ))
            .expect("report");
        assert_eq!(plenty.reset_after, None);
        assert_eq!(plenty.refill_per_sec, None);
        assert!(api().rate_report(&resp(200, &[], "{}")).is_none());
    }

    #[test]
    fn read_page_takes_our_location_and_follows_pages() {
        // The last item's SKU (with a tab) is one onhand cannot hold: skipped, not a failed
        // read-back.
        let body = r#"{"data":[
            {"identity":{"sku":"RE-130","variant_id":78,"product_id":130,"sku_id":null},
             "locations":[{"location_id":2,"available_to_sell":1,"total_inventory_onhand":1},
                          {"location_id":1,"available_to_sell":8,"total_inventory_onhand":10}]},
            {"identity":{"sku":null,"product_id":120},"locations":[{"location_id":1,"total_inventory_onhand":3}]},
            {"identity":{"sku":"ELSEWHERE"},"locations":[]},
            {"identity":{"sku":"TAB\tINSIDE"},"locations":[{"location_id":1,"total_inventory_onhand":2}]}],
            "meta":{"pagination":{"total":3,"count":3,"per_page":1000,"current_page":1,"total_pages":2}}}"#;
        let page = api().read_page(&resp(200, &[], body)).expect("page");
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].sku.as_str(), "RE-130");
        assert_eq!(page.items[0].quantity, 10);
        assert_eq!(page.next, Some(PageToken::next("2")));
        let last = body.replace(r#""current_page":1"#, r#""current_page":2"#);
        assert_eq!(
            api().read_page(&resp(200, &[], &last)).expect("page").next,
            None
        );
    }
}
