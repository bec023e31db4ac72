//! The eBay Sell Inventory mapping (`/sell/inventory/v1`, CHANNELS.md §3).
//!
//! - Resolve: `GET /offer?sku=` gives the SKU's offer ids (one SKU per call); a 404 with
//!   errorId 25713 means eBay has no offer for it (the spec documents getOffers' 404 but
//!   no error id; any other 404 is a permanent failure of that SKU's lookup, the same
//!   end for the SKU).
//! - Write: `POST /bulk_update_price_quantity`, ≤ 25 SKUs, each setting both
//!   `shipToLocationAvailability.quantity` and every offer's `availableQuantity` (the listing
//!   shows the minimum of the two). The 200/207 `responses[]` hold one entry per SKU and one
//!   per offer; a SKU is applied only when all its entries succeeded.
//! - Per-item errors: 25025 (concurrent access), 25001 and any 5xx entry are transient;
//!   the daily revision cap (250 per listing per calendar day, CHANNELS.md §3) has no
//!   documented error id — neither CHANNELS.md nor channel-specs/ebay-sell-inventory-v1.json
//!   (bulkUpdatePriceQuantity lists 25001, 25002, 25709, 25759) names one — so it is
//!   recognised as a 25002 whose message speaks of revisions per calendar day
//!   (UNVERIFIED: a different wording would make it a permanent 25002, a dead letter an
//!   operator can replay). It is transient with a retry hint of at most an
//!   hour — the quantity is still wanted and becomes deliverable on the next calendar day,
//!   a dead letter would leave the listing stale until an operator replays it, and an
//!   hourly retry of one blocked listing costs nothing against a 2M calls/day quota while
//!   not depending on which time zone eBay's "calendar day" uses; anything else (unknown
//!   SKU, an offer not of this SKU, an invalid value) is permanent.
//! - Revisions: the cap is kept clear of in the first place. Each SKU spends a
//!   [`RevisionBudget`](crate::RevisionBudget) of [`REVISIONS_PER_DAY`] (the channel's
//!   `REVISIONS_PER_DAY` setting; `off` for none): 30 revisions at once, then one every
//!   7.6 minutes, and 10 more kept for a sell-out, so a listing is never blocked for the
//!   rest of the day showing stock it no longer has. A push the budget cannot pay for is
//!   not sent; it comes back deferred (`PushOutcome::Deferred`), with the wait.
//! - Read-back: `GET /inventory_item?limit=100&offset=` pages, following each page's
//!   `next` href (its `offset` is the token): the spec's text calls `offset` a page number
//!   while eBay's hrefs count records, and following `next` is right either way.
//!
//! Quantities are clamped into eBay's int32 range, negative ones to 0 (nothing to sell).

use std::collections::HashMap;
use std::time::Duration;

use onhand_common::Sku;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::api::{
    ApiRequest, ApiResponse, ChannelApi, ChannelRef, ItemResult, MappingError, PageToken, ReadPage,
    Target,
};
use crate::classify::{self, Class};
use crate::limiter::RateLimit;
use crate::push::{ChannelKind, Listed, PushOutcome};

const BASE: &str = "/sell/inventory/v1";
/// SKUs per `bulk_update_price_quantity` call.
pub const MAX_BATCH: usize = 25;
/// Page size of the read-back (the documented maximum).
pub const READ_LIMIT: usize = 100;
/// The Inventory API's default daily call quota.
pub const CALLS_PER_DAY: f64 = 2_000_000.0;
/// Revisions of one listing eBay allows per calendar day; the adapter keeps under it with a
/// [`RevisionBudget`](crate::RevisionBudget) per SKU.
pub const REVISIONS_PER_DAY: u32 = 250;
/// The longest wait suggested for a listing blocked by the daily revision cap.
const REVISION_RETRY: Duration = Duration::from_secs(3600);

/// The bearer token goes to the transport's `Auth`, and `bulk_update_price_quantity` needs
/// no marketplace header; what is left is the revision budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EbayConfig {
    /// The daily revision cap per listing the adapter keeps under (`None`: no budget, for
    /// an account whose cap was lifted, or a test of something else).
    pub revisions_per_day: Option<u32>,
}

impl Default for EbayConfig {
    fn default() -> Self {
        Self {
            revisions_per_day: Some(REVISIONS_PER_DAY),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Ebay {
    config: EbayConfig,
}

impl Ebay {
    pub fn new(config: EbayConfig) -> Self {
        Self { config }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Offers {
    #[serde(default)]
    offers: Vec<Offer>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Offer {
    offer_id: String,
    sku: Option<String>,
    available_quantity: Option<i64>,
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Responses {
    #[serde(default)]
    responses: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    status_code: u16,
    sku: Option<String>,
    offer_id: Option<String>,
    #[serde(default)]
    errors: Vec<EbayError>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EbayError {
    error_id: Option<i64>,
    message: Option<String>,
    long_message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<EbayError>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InventoryItems {
    #[serde(default)]
    inventory_items: Vec<InventoryItem>,
    /// The next page's href (its `offset` is the next token).
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InventoryItem {
    sku: String,
    availability: Option<Availability>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Availability {
    ship_to_location_availability: Option<ShipTo>,
}

#[derive(Debug, Deserialize)]
struct ShipTo {
    quantity: Option<i64>,
}

/// A query string with `key=value` form-encoded.
fn query(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://query.invalid/").expect("invariant: a valid URL");
    url.query_pairs_mut().extend_pairs(pairs);
    format!("{path}?{}", url.query().unwrap_or_default())
}

/// The `offset` query parameter of a (possibly relative) href.
fn offset_of(href: &str) -> Option<String> {
    let base = reqwest::Url::parse("http://base.invalid/").expect("invariant: a valid URL");
    let url = base.join(href).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "offset")
        .map(|(_, v)| v.into_owned())
        .filter(|v| v.parse::<usize>().is_ok())
}

fn quantity(q: i64) -> i64 {
    q.clamp(0, i64::from(i32::MAX))
}

/// getOffers' "no offer for this SKU" (404, errorId 25713).
fn no_offer(resp: &ApiResponse) -> bool {
    resp.status == 404
        && resp
            .json::<ErrorBody>()
            .is_ok_and(|b| b.errors.iter().any(|e| e.error_id == Some(25713)))
}

/// Until the next UTC calendar day, at most [`REVISION_RETRY`].
fn revision_retry() -> Duration {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let left = 86_400 - now.rem_euclid(86_400);
    Duration::from_secs(u64::try_from(left).unwrap_or(0)).min(REVISION_RETRY)
}

impl EbayError {
    fn text(&self) -> String {
        self.long_message
            .as_deref()
            .or(self.message.as_deref())
            .unwrap_or("no message")
            .to_owned()
    }

    fn is_revision_cap(&self) -> bool {
        self.error_id == Some(25002)
            && self
                .text()
                .to_ascii_lowercase()
                .contains("revisions per calendar day")
    }
}

/// One SKU's outcome from its failed entries: permanent beats transient (retrying will
/// not fix the permanent part).
fn failure(entries: &[&Entry]) -> PushOutcome {
    let mut transient: Option<PushOutcome> = None;
    for entry in entries {
        if entry.errors.is_empty() {
            if entry.status_code >= 500 {
                transient.get_or_insert(PushOutcome::transient(format!(
                    "eBay answered {} for this SKU",
                    entry.status_code
                )));
                continue;
            }
            return PushOutcome::permanent(
                format!("ebay_http_{}", entry.status_code),
                "eBay refused this SKU without an error",
            );
        }
        for error in &entry.errors {
            let id = error.error_id.unwrap_or_default();
            if error.is_revision_cap() {
                transient = Some(PushOutcome::Transient {
                    retry_after: Some(revision_retry()),
                    reason: format!("eBay {id}: {}", error.text()),
                });
            } else if id == 25025 || id == 25001 || entry.status_code >= 500 {
                transient.get_or_insert(PushOutcome::transient(format!(
                    "eBay {id}: {}",
                    error.text()
                )));
            } else {
                return PushOutcome::permanent(format!("ebay_{id}"), error.text());
            }
        }
    }
    transient.unwrap_or_else(|| PushOutcome::transient("eBay reported no error for this SKU"))
}

impl ChannelApi for Ebay {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Ebay
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    /// 2,000,000 calls a day, spread evenly, with a small burst.
    fn default_rate_limit(&self) -> Option<RateLimit> {
        Some(RateLimit {
            capacity: 100.0,
            refill_per_sec: CALLS_PER_DAY / 86_400.0,
        })
    }

    /// 250 revisions per listing per calendar day (CHANNELS.md §3), unless configured.
    fn revisions_per_day(&self) -> Option<u32> {
        self.config.revisions_per_day
    }

    fn resolve_request(&self, skus: &[Sku]) -> Option<Result<ApiRequest, MappingError>> {
        Some(match skus {
            [sku] => Ok(ApiRequest::get(query(
                &format!("{BASE}/offer"),
                &[("sku", sku.as_str())],
            ))),
            _ => Err(MappingError::Sku {
                sku: skus.iter().map(Sku::as_str).collect::<Vec<_>>().join(","),
                reason: "getOffers takes one SKU per call".to_owned(),
            }),
        })
    }

    fn max_resolve_batch(&self) -> usize {
        1
    }

    /// The SKU's published offers; the ref id is their ids joined by `,`.
    fn resolve_response(
        &self,
        skus: &[Sku],
        resp: &ApiResponse,
    ) -> Result<HashMap<Sku, ChannelRef>, MappingError> {
        let mut found = HashMap::new();
        if no_offer(resp) {
            return Ok(found);
        }
        if resp.status != 200 {
            return Err(MappingError::Response {
                status: resp.status,
                reason: "getOffers failed".to_owned(),
            });
        }
        let offers: Offers = resp.json()?;
        for sku in skus {
            let mine: Vec<&Offer> = offers
                .offers
                .iter()
                .filter(|o| o.sku.as_deref().is_none_or(|s| s == sku.as_str()))
                .filter(|o| o.status.as_deref().is_none_or(|s| s == "PUBLISHED"))
                .collect();
            if let Some(first) = mine.first() {
                found.insert(
                    sku.clone(),
                    ChannelRef {
                        id: mine
                            .iter()
                            .map(|o| o.offer_id.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                        parent: None,
                        current: first.available_quantity,
                    },
                );
            }
        }
        Ok(found)
    }

    fn write_request(&self, batch: &[Target]) -> Result<ApiRequest, MappingError> {
        let requests = batch
            .iter()
            .map(|t| {
                let reference = t.reference.as_ref().ok_or_else(|| MappingError::Sku {
                    sku: t.push.sku.as_str().to_owned(),
                    reason: "no offer id resolved".to_owned(),
                })?;
                let q = quantity(t.push.quantity);
                let offers: Vec<_> = reference
                    .id
                    .split(',')
                    .map(|id| json!({"offerId": id, "availableQuantity": q}))
                    .collect();
                Ok(json!({
                    "sku": t.push.sku.as_str(),
                    "shipToLocationAvailability": {"quantity": q},
                    "offers": offers,
                }))
            })
            .collect::<Result<Vec<_>, MappingError>>()?;
        Ok(
            ApiRequest::new(Method::POST, format!("{BASE}/bulk_update_price_quantity"))
                .json(json!({ "requests": requests })),
        )
    }

    fn write_outcomes(&self, batch: &[Target], resp: &ApiResponse) -> Vec<ItemResult> {
        if !matches!(resp.status, 200 | 207) {
            let outcome = classify::outcome(&classify::http(resp), resp).unwrap_or_else(|| {
                PushOutcome::transient(format!("unexpected HTTP {} from eBay", resp.status))
            });
            return crate::api::all(batch, outcome);
        }
        let body: Responses = match resp.json() {
            Ok(body) => body,
            Err(e) => return crate::api::all(batch, PushOutcome::transient(e.to_string())),
        };
        let mut by_sku: HashMap<&str, Vec<&Entry>> = HashMap::new();
        for entry in &body.responses {
            if let Some(sku) = entry.sku.as_deref() {
                by_sku.entry(sku).or_default().push(entry);
            }
        }
        batch
            .iter()
            .map(|t| {
                let entries = by_sku
                    .get(t.push.sku.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let offers: Vec<&str> = t
                    .reference
                    .as_ref()
                    .map(|r| r.id.split(',').collect())
                    .unwrap_or_default();
                let item_seen = entries.iter().any(|e| e.offer_id.is_none());
                let offers_seen = offers
                    .iter()
                    .all(|id| entries.iter().any(|e| e.offer_id.as_deref() == Some(id)));
                let failed: Vec<&Entry> = entries
                    .iter()
                    .copied()
                    .filter(|e| !(200..300).contains(&e.status_code))
                    .collect();
                ItemResult::Done(if !failed.is_empty() {
                    failure(&failed)
                } else if item_seen && offers_seen {
                    PushOutcome::Applied
                } else {
                    PushOutcome::transient("eBay's response lacks an entry for this SKU or offer")
                })
            })
            .collect()
    }

    fn read_request(&self, page: &PageToken) -> Result<ApiRequest, MappingError> {
        let offset = match &page.0 {
            None => 0,
            Some(t) => t
                .parse::<usize>()
                .map_err(|_| MappingError::PageToken { token: t.clone() })?,
        };
        Ok(ApiRequest::get(query(
            &format!("{BASE}/inventory_item"),
            &[
                ("limit", &READ_LIMIT.to_string()),
                ("offset", &offset.to_string()),
            ],
        )))
    }

    fn read_page(&self, resp: &ApiResponse) -> Result<ReadPage, MappingError> {
        let page: InventoryItems = resp.json()?;
        let next = match &page.next {
            None => None,
            Some(href) => Some(PageToken::next(offset_of(href).ok_or_else(|| {
                MappingError::Response {
                    status: resp.status,
                    reason: format!("next page href without an offset: {href:?}"),
                }
            })?)),
        };
        let items = page
            .inventory_items
            .into_iter()
            .filter_map(|i| {
                let quantity = i
                    .availability
                    .and_then(|a| a.ship_to_location_availability)
                    .and_then(|s| s.quantity)
                    .unwrap_or(0);
                Sku::parse(i.sku).ok().map(|sku| Listed { sku, quantity })
            })
            .collect();
        Ok(ReadPage { items, next })
    }

    /// getOffers' 404 "no offer" is an answer (the SKU is not on eBay), not a failure.
    fn classify(&self, resp: &ApiResponse) -> Class {
        if no_offer(resp) {
            return Class::Success;
        }
        classify::http(resp)
    }
}

#[cfg(test)]
mod tests;
