//! The per-channel mapping contract. An adapter says how a batch of pushes becomes that
//! API's request, how the response splits back into per-SKU results, how SKUs resolve to
//! channel ids, and how a read-back pages. Sending, auth, rate limiting, retries and
//! telemetry live in the shared transport, written once.

use std::collections::HashMap;

use bytes::Bytes;
use onhand_common::Sku;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

use crate::classify::{self, Class};
use crate::limiter::RateLimit;
use crate::push::{ChannelKind, Listed, Push, PushOutcome};

/// An HTTP request as an adapter describes it; the transport adds base URL, auth, trace
/// context and timeouts.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    /// Path and query, relative to the channel's base URL (e.g. `/admin/api/2026-04/graphql.json`).
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    /// A JSON body, serialized (sent as `application/json`).
    pub body: Option<Bytes>,
    /// Rate-limit units this request spends (1 for request-counted APIs, the query cost for
    /// Shopify).
    pub cost: f64,
}

impl ApiRequest {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: None,
            cost: 1.0,
        }
    }

    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn json(self, body: serde_json::Value) -> Self {
        self.json_bytes(body.to_string().into_bytes())
    }

    /// A JSON body already serialized (for a body that is signed over its bytes, or built
    /// without a `Value` tree on a hot path).
    pub fn json_bytes(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// The body parsed back into a JSON value (none without a body or when it is not JSON).
    pub fn json_body(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(self.body.as_ref()?).ok()
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn cost(mut self, cost: f64) -> Self {
        self.cost = cost;
        self
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ApiResponse {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, MappingError> {
        serde_json::from_slice(&self.body).map_err(|e| MappingError::Response {
            status: self.status,
            reason: format!("undecodable body: {e}"),
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A request could not be built, or a response could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("cannot map sku {sku:?} for this channel: {reason}")]
    Sku { sku: String, reason: String },
    #[error("unexpected response (HTTP {status}): {reason}")]
    Response { status: u16, reason: String },
    #[error("invalid page token {token:?}")]
    PageToken { token: String },
}

/// Where a SKU lives on the channel, when the SKU itself is not the key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChannelRef {
    /// The channel's id for the item (Shopify inventory item gid, WooCommerce product or
    /// variation id, eBay offer id, ...).
    pub id: String,
    /// A parent id where the API needs one (WooCommerce variation's product).
    pub parent: Option<String>,
    /// The quantity the channel showed last time we looked or wrote (Shopify's
    /// `changeFromQuantity`).
    pub current: Option<i64>,
}

/// A push with what the adapter resolved for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub push: Push,
    pub reference: Option<ChannelRef>,
}

/// One item's result as the channel reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemResult {
    Done(PushOutcome),
    /// A compare-and-set lost (the channel's value changed behind us): resolve the
    /// current value again and retry. Counted as a concurrent change.
    Stale {
        current: Option<i64>,
    },
    /// Not applied: the channel refused the request as a whole because of other items in
    /// it (BigCommerce's whole-request 422). The transport sends this item again without
    /// the items that got a final result; when no item of the request got one (the channel
    /// did not say which item was at fault), it bisects the request to find out. The
    /// outcome is what the item gets once it is alone in a refused request.
    Resend(PushOutcome),
}

/// A page of read-back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPage {
    pub items: Vec<Listed>,
    pub next: Option<PageToken>,
}

/// Opaque position in a channel's listing; `PageToken::first()` starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageToken(pub Option<String>);

impl PageToken {
    pub fn first() -> Self {
        Self(None)
    }

    pub fn next(value: impl Into<String>) -> Self {
        Self(Some(value.into()))
    }
}

/// What a response said about the rate limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateReport {
    /// Units left now.
    pub available: f64,
    pub capacity: Option<f64>,
    pub refill_per_sec: Option<f64>,
    /// Wait this long before the next request (quota exhausted until reset).
    pub reset_after: Option<std::time::Duration>,
}

/// The mapping for one channel API.
pub trait ChannelApi: Send + Sync + std::fmt::Debug + 'static {
    fn kind(&self) -> ChannelKind;

    /// Most pushes in one write request (250 Shopify, 25 eBay, 100 WooCommerce, ...).
    fn max_batch(&self) -> usize;

    /// The documented default rate limit for this API (overridable per store plan).
    fn default_rate_limit(&self) -> Option<RateLimit>;

    /// The channel's cap on revisions of one listing per day, if it has one (eBay's 250):
    /// pushes then spend a [`RevisionBudget`](crate::RevisionBudget) per SKU.
    fn revisions_per_day(&self) -> Option<u32> {
        None
    }

    /// The request that resolves channel ids for these SKUs, when the SKU is not the key.
    fn resolve_request(&self, _skus: &[Sku]) -> Option<Result<ApiRequest, MappingError>> {
        None
    }

    /// Most SKUs in one resolve request.
    fn max_resolve_batch(&self) -> usize {
        self.max_batch()
    }

    /// Channel ids found in a resolve response; SKUs absent from the map do not exist on
    /// the channel.
    fn resolve_response(
        &self,
        _skus: &[Sku],
        resp: &ApiResponse,
    ) -> Result<HashMap<Sku, ChannelRef>, MappingError> {
        Err(MappingError::Response {
            status: resp.status,
            reason: "this channel resolves no ids".to_owned(),
        })
    }

    fn write_request(&self, batch: &[Target]) -> Result<ApiRequest, MappingError>;

    /// One result per target, in order. The whole response is here, status included: an
    /// adapter turns a whole-request failure into the same result for every item.
    fn write_outcomes(&self, batch: &[Target], resp: &ApiResponse) -> Vec<ItemResult>;

    fn read_request(&self, page: &PageToken) -> Result<ApiRequest, MappingError>;

    fn read_page(&self, resp: &ApiResponse) -> Result<ReadPage, MappingError>;

    /// A page of read-back, knowing which token asked for it (for listings whose position
    /// the response alone does not carry, e.g. WooCommerce walking each variable product's
    /// variations). Defaults to [`ChannelApi::read_page`].
    fn read_page_at(
        &self,
        _token: &PageToken,
        resp: &ApiResponse,
    ) -> Result<ReadPage, MappingError> {
        self.read_page(resp)
    }

    /// Targets that must go to different write requests get different keys (WooCommerce:
    /// products to `/products/batch`, each parent's variations to its own endpoint). The
    /// transport sends one request per key, in first-seen order. Defaults to one request.
    fn group_key(&self, _target: &Target) -> Option<String> {
        None
    }

    /// Rate information any response carries (quota headers, throttle status).
    fn rate_report(&self, _resp: &ApiResponse) -> Option<RateReport> {
        None
    }

    /// How a whole response classifies before per-item mapping (throttling, outages).
    fn classify(&self, resp: &ApiResponse) -> Class {
        classify::http(resp)
    }
}

/// The same result for every item of a batch.
pub fn all(batch: &[Target], outcome: PushOutcome) -> Vec<ItemResult> {
    batch
        .iter()
        .map(|_| ItemResult::Done(outcome.clone()))
        .collect()
}
