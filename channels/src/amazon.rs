//! Amazon SP-API Listings Items (2021-08-01), the mapping only (CHANNELS.md §2).
//!
//! - Write: `patchListingsItem`, one SKU per call, `productType: "PRODUCT"` and the `merge`
//!   op on `/attributes/fulfillment_availability` with the `DEFAULT` (merchant-fulfilled)
//!   channel code, so sibling fields such as `lead_time_to_ship_max_days` survive (a
//!   `replace` would wipe them).
//! - `ACCEPTED` maps to [`PushOutcome::Applied`]: it means "accepted, the read-back
//!   decides". Amazon only validated the submission synchronously and applies it minutes
//!   later (or raises issues later); the reconciler's read-back after its settle window is
//!   what confirms it. `INVALID` is permanent, carrying the issues.
//! - Throttling: 5 requests/s by default (Amazon's burst is 5; ours is 4, leaving one
//!   request of headroom for network jitter); a 429 `QuotaExceeded` is transient and
//!   pauses the limiter; `x-amzn-RateLimit-Limit` (the plan's rate) retunes the limiter's
//!   refill rate. The header says nothing about what is left, so the report leaves the
//!   limiter's own estimate of the available units alone.
//! - Read-back of the whole account ([`HttpChannel::read_all`]): `searchListingsItems` with
//!   `includedData=fulfillmentAvailability`, 20 per page. The spec caps what search can
//!   page through at 1000 listings ("The maximum number of items (SKUs) that can be
//!   returned and paged through is 1000", `ItemSearchResults.numberOfResults`), so a
//!   catalogue larger than that fails this read-back loudly instead of returning a partial
//!   listing.
//! - Read-back of known SKUs ([`HttpChannel::<AmazonApi>::read_skus`], what the reconciler
//!   has from the ledger): `searchListingsItems` with `identifiers` (at most 20, the spec's
//!   `maxItems`) and `identifiersType=SKU`, so no cap: 20 SKUs a request, 10,000 SKUs in
//!   500 requests (100 s at the default 5 requests/s). Cheaper than `getListingsItem` per
//!   SKU (one request each, 5/s as well). `identifiers` is comma-delimited, so a SKU with a
//!   comma in it is read alone with `getListingsItem`; a 404 there means no listing.

use onhand_common::Sku;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::api::{
    self, ApiRequest, ApiResponse, ChannelApi, ItemResult, MappingError, PageToken, RateReport,
    ReadPage, Target,
};
use crate::classify;
use crate::http_channel::{HttpChannel, ReadError};
use crate::limiter::RateLimit;
use crate::push::{ChannelKind, Listed, PushOutcome};

const API: &str = "/listings/2021-08-01/items";
const PRODUCT_TYPE: &str = "PRODUCT";
const FULFILLMENT_AVAILABILITY: &str = "/attributes/fulfillment_availability";
/// The merchant-fulfilled channel; FBA quantities are Amazon's to set.
const CHANNEL_CODE: &str = "DEFAULT";
/// `searchListingsItems`: largest page, and most listings it can page through.
const PAGE_SIZE: usize = 20;
const SEARCH_CAP: u64 = 1000;
/// `searchListingsItems`: most `identifiers` in one request (the spec's `maxItems`).
pub const MAX_IDENTIFIERS: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmazonConfig {
    /// The selling partner id (`A...`).
    pub seller_id: String,
    /// One marketplace per adapter (e.g. `ATVPDKIKX0DER`, amazon.com).
    pub marketplace_id: String,
}

#[derive(Debug, Clone)]
pub struct AmazonApi {
    config: AmazonConfig,
}

impl AmazonApi {
    pub fn new(config: AmazonConfig) -> Self {
        Self { config }
    }

    fn base(&self) -> String {
        format!("{API}/{}", encode(&self.config.seller_id))
    }

    fn marketplace(&self) -> String {
        format!("marketplaceIds={}", encode(&self.config.marketplace_id))
    }

    /// `searchListingsItems` for these SKUs (≤ [`MAX_IDENTIFIERS`], none with a comma).
    pub fn search_skus_request(
        &self,
        skus: &[Sku],
        page: &PageToken,
    ) -> Result<ApiRequest, MappingError> {
        if skus.len() > MAX_IDENTIFIERS {
            return Err(MappingError::Sku {
                sku: skus.iter().map(Sku::as_str).collect::<Vec<_>>().join(" "),
                reason: format!("searchListingsItems takes at most {MAX_IDENTIFIERS} identifiers"),
            });
        }
        if let Some(sku) = skus.iter().find(|s| s.as_str().contains(',')) {
            return Err(MappingError::Sku {
                sku: sku.to_string(),
                reason: "identifiers are comma-delimited; read this SKU with getListingsItem"
                    .to_owned(),
            });
        }
        let identifiers = skus
            .iter()
            .map(|s| encode(s.as_str()))
            .collect::<Vec<_>>()
            .join(",");
        let mut path = format!(
            "{}?{}&identifiers={identifiers}&identifiersType=SKU&includedData=fulfillmentAvailability&pageSize={PAGE_SIZE}",
            self.base(),
            self.marketplace()
        );
        if let Some(token) = &page.0 {
            path.push_str("&pageToken=");
            path.push_str(&encode(token));
        }
        Ok(ApiRequest::get(path))
    }

    /// `getListingsItem` for one SKU, with its fulfillment availability.
    pub fn get_item_request(&self, sku: &Sku) -> ApiRequest {
        ApiRequest::get(format!(
            "{}/{}?{}&includedData=fulfillmentAvailability",
            self.base(),
            encode(sku.as_str()),
            self.marketplace()
        ))
    }
}

/// A `searchListingsItems` page by identifiers (no cap to check: ≤ 20 results).
fn search_skus_page(resp: &ApiResponse) -> Result<ReadPage, MappingError> {
    search_page(resp.json()?)
}

/// A `getListingsItem` answer as a one-item page.
fn item_page(resp: &ApiResponse) -> Result<ReadPage, MappingError> {
    let item: SearchItem = resp.json()?;
    Ok(ReadPage {
        items: listed(vec![item]),
        next: None,
    })
}

impl HttpChannel<AmazonApi> {
    /// These SKUs' merchant-fulfilled quantities as Amazon shows them, however many the
    /// seller has (see the module docs); SKUs without a listing, or without a `DEFAULT`
    /// quantity, are absent from the result.
    pub async fn read_skus(&self, skus: &[Sku]) -> Result<Vec<Listed>, ReadError> {
        let api = self.api();
        let (alone, searchable): (Vec<&Sku>, Vec<&Sku>) =
            skus.iter().partition(|s| s.as_str().contains(','));
        let searchable: Vec<Sku> = searchable.into_iter().cloned().collect();
        let mut all = Vec::with_capacity(skus.len());
        for chunk in searchable.chunks(MAX_IDENTIFIERS) {
            all.extend(
                self.read_pages(
                    |token| api.search_skus_request(chunk, token),
                    |_, resp| search_skus_page(resp),
                )
                .await?,
            );
        }
        for sku in alone {
            match self
                .read_pages(|_| Ok(api.get_item_request(sku)), |_, resp| item_page(resp))
                .await
            {
                Ok(items) => all.extend(items),
                // getListingsItem's 404: the seller has no listing for this SKU.
                Err(ReadError::Status { status: 404, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(all)
    }
}

/// Merchant-fulfilled quantities of search or get results; a listing without one (FBA
/// only), or whose SKU onhand cannot hold (DESIGN.md §3; the ledger refuses such SKUs, so
/// onhand never pushed it), is not ours to compare, and must not fail the read-back of
/// every other listing.
fn listed(items: Vec<SearchItem>) -> Vec<Listed> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let quantity = item
            .fulfillment_availability
            .iter()
            .find(|a| a.fulfillment_channel_code == CHANNEL_CODE)
            .and_then(|a| a.quantity);
        let Some(quantity) = quantity else { continue };
        match Sku::parse(item.sku.clone()) {
            Ok(sku) => out.push(Listed { sku, quantity }),
            Err(e) => {
                tracing::warn!(channel = "amazon", sku = ?item.sku, error = %e, "read-back skipped a listing whose SKU onhand cannot hold");
            }
        }
    }
    out
}

/// A search page's items and the token of the next one.
fn search_page(page: SearchResults) -> Result<ReadPage, MappingError> {
    let next = page
        .pagination
        .and_then(|p| p.next_token)
        .filter(|t| !t.is_empty())
        .map(PageToken::next);
    Ok(ReadPage {
        items: listed(page.items),
        next,
    })
}

/// Percent-encode a path segment or query value (RFC 3986 unreserved characters stay).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Debug, Deserialize)]
struct Submission {
    status: String,
    #[serde(default)]
    issues: Vec<Issue>,
}

#[derive(Debug, Deserialize)]
struct Issue {
    code: String,
    message: String,
    #[serde(default)]
    severity: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchResults {
    number_of_results: u64,
    #[serde(default)]
    pagination: Option<Pagination>,
    items: Vec<SearchItem>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pagination {
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchItem {
    sku: String,
    #[serde(default)]
    fulfillment_availability: Vec<Availability>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Availability {
    fulfillment_channel_code: String,
    quantity: Option<i64>,
}

/// What a 200 submission response means for the one SKU it is about.
fn submission_outcome(resp: &ApiResponse) -> PushOutcome {
    let submission: Submission = match resp.json() {
        Ok(s) => s,
        Err(e) => return PushOutcome::transient(e.to_string()),
    };
    match submission.status.as_str() {
        // Accepted, the read-back decides.
        "ACCEPTED" => PushOutcome::Applied,
        "INVALID" => {
            let errors: Vec<&Issue> = submission
                .issues
                .iter()
                .filter(|i| i.severity == "ERROR")
                .collect();
            let shown = if errors.is_empty() {
                submission.issues.iter().collect()
            } else {
                errors
            };
            let code = shown
                .first()
                .map_or_else(|| "INVALID".to_owned(), |i| i.code.clone());
            let message = shown
                .iter()
                .map(|i| format!("{}: {}", i.code, i.message))
                .collect::<Vec<_>>()
                .join("; ");
            PushOutcome::permanent(code, message)
        }
        other => PushOutcome::transient(format!("unexpected submission status {other:?}")),
    }
}

impl ChannelApi for AmazonApi {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Amazon
    }

    fn max_batch(&self) -> usize {
        1
    }

    /// The documented rate, 5 requests/s, with a burst one below Amazon's 5: our bucket
    /// starts counting when a request leaves, Amazon's when it arrives, and the first
    /// requests (opening connections) arrive later than the ones after them. At equal
    /// bursts any such jitter is a 429; one request of headroom absorbs up to 200 ms of it,
    /// and the sustained rate stays the full 5/s.
    fn default_rate_limit(&self) -> Option<RateLimit> {
        Some(RateLimit {
            capacity: 4.0,
            refill_per_sec: 5.0,
        })
    }

    fn write_request(&self, batch: &[Target]) -> Result<ApiRequest, MappingError> {
        let [target] = batch else {
            return Err(MappingError::Response {
                status: 0,
                reason: format!("patchListingsItem takes one sku, not {}", batch.len()),
            });
        };
        let push = &target.push;
        let path = format!(
            "{}/{}?{}&issueLocale=en_US",
            self.base(),
            encode(push.sku.as_str()),
            self.marketplace()
        );
        Ok(ApiRequest::new(Method::PATCH, path).json(json!({
            "productType": PRODUCT_TYPE,
            "patches": [{
                "op": "merge",
                "path": FULFILLMENT_AVAILABILITY,
                "value": [{"fulfillment_channel_code": CHANNEL_CODE, "quantity": push.quantity}],
            }],
        })))
    }

    fn write_outcomes(&self, batch: &[Target], resp: &ApiResponse) -> Vec<ItemResult> {
        let outcome = classify::outcome(&self.classify(resp), resp)
            .unwrap_or_else(|| submission_outcome(resp));
        api::all(batch, outcome)
    }

    fn read_request(&self, page: &PageToken) -> Result<ApiRequest, MappingError> {
        let mut path = format!(
            "{}?{}&includedData=fulfillmentAvailability&pageSize={PAGE_SIZE}",
            self.base(),
            self.marketplace()
        );
        if let Some(token) = &page.0 {
            path.push_str("&pageToken=");
            path.push_str(&encode(token));
        }
        Ok(ApiRequest::get(path))
    }

    fn read_page(&self, resp: &ApiResponse) -> Result<ReadPage, MappingError> {
        let page: SearchResults = resp.json()?;
        if page.number_of_results > SEARCH_CAP {
            return Err(MappingError::Response {
                status: resp.status,
                reason: format!(
                    "searchListingsItems pages through at most {SEARCH_CAP} of the seller's {} listings; the read-back would be incomplete (read known SKUs with read_skus)",
                    page.number_of_results
                ),
            });
        }
        search_page(page)
    }

    fn rate_report(&self, resp: &ApiResponse) -> Option<RateReport> {
        let rate: f64 = resp.header("x-amzn-ratelimit-limit")?.trim().parse().ok()?;
        (rate.is_finite() && rate > 0.0).then_some(RateReport {
            // The header carries the plan's rate only; nothing about what is left.
            available: f64::INFINITY,
            capacity: None,
            refill_per_sec: Some(rate),
            reset_after: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> AmazonApi {
        AmazonApi::new(AmazonConfig {
            seller_id: "A3SELLER".to_owned(),
            marketplace_id: "ATVPDKIKX0DER".to_owned(),
        })
    }

    fn target(sku: &str, quantity: i64) -> Target {
        crate::test_support::target(sku, quantity, 1, None)
    }

    fn resp(status: u16, headers: &[(&'static str, &'static str)], body: &str) -> ApiResponse {
        crate::test_support::response(status, headers, body.to_owned())
    }

    #[test]
    fn outbound_patch_snapshot() {
        let request = api()
            .write_request(&[target("GM-ZDPI/9B 4E", 11)])
            .expect("request");
        assert_eq!(request.method, Method::PATCH);
        assert_eq!(
            request.path,
            "/listings/2021-08-01/items/A3SELLER/GM-ZDPI%2F9B%204E?marketplaceIds=ATVPDKIKX0DER&issueLocale=en_US"
        );
        assert_eq!(
            request.json_body().expect("body").to_string(),
            r#"{"patches":[{"op":"merge","path":"/attributes/fulfillment_availability","value":[{"fulfillment_channel_code":"DEFAULT","quantity":11}]}],"productType":"PRODUCT"}"#
        );
        assert!(
            api()
                .write_request(&[target("A", 1), target("B", 2)])
                .is_err()
        );
    }

    #[test]
    fn outbound_search_snapshot() {
        let first = api().read_request(&PageToken::first()).expect("request");
        assert_eq!(
            first.path,
            "/listings/2021-08-01/items/A3SELLER?marketplaceIds=ATVPDKIKX0DER&includedData=fulfillmentAvailability&pageSize=20"
        );
        let next = api()
            .read_request(&PageToken::next("ab+c/="))
            .expect("request");
        assert!(next.path.ends_with("&pageSize=20&pageToken=ab%2Bc%2F%3D"));
    }

    #[test]
    fn outbound_reads_by_sku_snapshot() {
        let skus: Vec<Sku> = ["A-1", "B 2/x"]
            .iter()
            .map(|s| Sku::parse(*s).expect("sku"))
            .collect();
        let search = api()
            .search_skus_request(&skus, &PageToken::first())
            .expect("request");
        assert_eq!(
            search.path,
            "/listings/2021-08-01/items/A3SELLER?marketplaceIds=ATVPDKIKX0DER&identifiers=A-1,B%202%2Fx&identifiersType=SKU&includedData=fulfillmentAvailability&pageSize=20"
        );
        let many: Vec<Sku> = (0..21)
            .map(|i| Sku::parse(format!("S{i}")).expect("sku"))
            .collect();
        assert!(
            api()
                .search_skus_request(&many, &PageToken::first())
                .is_err()
        );
        let comma = Sku::parse("C,1").expect("sku");
        assert!(
            api()
                .search_skus_request(std::slice::from_ref(&comma), &PageToken::first())
                .is_err()
        );
        assert_eq!(
            api().get_item_request(&comma).path,
            "/listings/2021-08-01/items/A3SELLER/C%2C1?marketplaceIds=ATVPDKIKX0DER&includedData=fulfillmentAvailability"
        );
        let page = item_page(&resp(
            200,
            &[],
            r#"{"sku":"C,1","summaries":[],"fulfillmentAvailability":[{"fulfillmentChannelCode":"DEFAULT","quantity":7}]}"#,
        ))
        .expect("page");
        assert_eq!(page.items.len(), 1);
        assert_eq!(
            (page.items[0].sku.as_str(), page.items[0].quantity),
            ("C,1", 7)
        );
        assert_eq!(page.next, None);
    }

    #[test]
    fn classifies_recorded_responses() {
        let a = api();
        let batch = [target("GM-ZDPI-9B4E", 3)];
        let accepted = resp(
            200,
            &[("x-amzn-RateLimit-Limit", "5.0")],
            r#"{"sku":"GM-ZDPI-9B4E","status":"ACCEPTED","submissionId":"f1dc2914-75dd-11ea-bc55-0242ac130003","issues":[]}"#,
        );
        assert_eq!(
            a.write_outcomes(&batch, &accepted),
            vec![ItemResult::Done(PushOutcome::Applied)]
        );
        let invalid = resp(
            200,
            &[],
            r#"{"sku":"GM-ZDPI-9B4E","status":"INVALID","submissionId":"a1c5","issues":[{"code":"90000900","message":"The attributes are invalid.","severity":"ERROR","attributeNames":["fake_attribute"],"categories":["INVALID_ATTRIBUTE"]},{"code":"18027","message":"Just so you know.","severity":"INFO"}]}"#,
        );
        assert_eq!(
            a.write_outcomes(&batch, &invalid),
            vec![ItemResult::Done(PushOutcome::permanent(
                "90000900",
                "90000900: The attributes are invalid."
            ))]
        );
        let throttled = resp(
            429,
            &[],
            r#"{"errors":[{"code":"QuotaExceeded","message":"You exceeded your quota for the requested resource.","details":""}]}"#,
        );
        assert!(matches!(
            a.write_outcomes(&batch, &throttled)[0],
            ItemResult::Done(PushOutcome::Transient { ref reason, .. }) if reason.contains("throttled")
        ));
        let down = resp(
            503,
            &[],
            r#"{"errors":[{"code":"ServiceUnavailable","message":"x","details":""}]}"#,
        );
        assert!(matches!(
            a.write_outcomes(&batch, &down)[0],
            ItemResult::Done(PushOutcome::Transient { .. })
        ));
        let bad = resp(
            400,
            &[],
            r#"{"errors":[{"code":"InvalidInput","message":"productType is required","details":""}]}"#,
        );
        assert!(matches!(
            a.write_outcomes(&batch, &bad)[0],
            ItemResult::Done(PushOutcome::Permanent { ref code, .. }) if code == "http_400"
        ));
        let garbled = resp(200, &[], "<html>");
        assert!(matches!(
            a.write_outcomes(&batch, &garbled)[0],
            ItemResult::Done(PushOutcome::Transient { .. })
        ));
    }

    #[test]
    fn rate_report_from_the_limit_header() {
        let a = api();
        let report = a
            .rate_report(&resp(200, &[("x-amzn-RateLimit-Limit", "2.5")], "{}"))
            .expect("report");
        assert_eq!(report.refill_per_sec, Some(2.5));
        assert_eq!(report.capacity, None);
        assert!(report.available.is_infinite());
        assert!(a.rate_report(&resp(200, &[], "{}")).is_none());
        assert!(
            a.rate_report(&resp(200, &[("x-amzn-RateLimit-Limit", "none")], "{}"))
                .is_none()
        );
    }

    #[test]
    fn read_page_maps_default_quantities_and_refuses_truncation() {
        // "NEW\nLINE" is a SKU onhand cannot hold: skipped, not a failed read-back.
        let a = api();
        let page = a
            .read_page(&resp(
                200,
                &[],
                r#"{"numberOfResults":3,"pagination":{"nextToken":"t2"},"items":[
                {"sku":"A","fulfillmentAvailability":[{"fulfillmentChannelCode":"DEFAULT","quantity":4}]},
                {"sku":"FBA-ONLY","fulfillmentAvailability":[{"fulfillmentChannelCode":"AMAZON_NA"}]},
                {"sku":"NEW\nLINE","fulfillmentAvailability":[{"fulfillmentChannelCode":"DEFAULT","quantity":1}]},
                {"sku":"B","fulfillmentAvailability":[{"fulfillmentChannelCode":"AMAZON_NA","quantity":9},{"fulfillmentChannelCode":"DEFAULT","quantity":0}]}]}"#,
            ))
            .expect("page");
        let got: Vec<_> = page
            .items
            .iter()
            .map(|l| (l.sku.as_str().to_owned(), l.quantity))
            .collect();
        assert_eq!(got, vec![("A".to_owned(), 4), ("B".to_owned(), 0)]);
        assert_eq!(page.next, Some(PageToken::next("t2")));
        let last = a
            .read_page(&resp(200, &[], r#"{"numberOfResults":0,"items":[]}"#))
            .expect("page");
        assert_eq!(last.next, None);
        assert!(
            a.read_page(&resp(200, &[], r#"{"numberOfResults":1001,"items":[]}"#))
                .is_err()
        );
    }
}
