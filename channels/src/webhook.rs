//! The webhook adapter: a generic, signed JSON PUT of quantity batches to any URL, for
//! systems without a dedicated adapter.
//!
//! **Write.** `PUT <base_url><path>` with body
//! `{"items":[{"sku","quantity","version","event_id"}]}` (at most `max_batch` items).
//! The receiver answers 2xx `{"results":[{"sku","status":"applied"|"rejected","error"?}]}`,
//! one result per item; a rejected item is a permanent failure for that SKU only. Any other
//! status is the whole request's fate, classified once for every channel (408/429/5xx
//! transient with `Retry-After` honoured; 401/403 — a bad signature is 401 — held as a
//! credentials problem, transient with an alert; other 4xx permanent).
//!
//! **Read-back.** `GET <base_url><path>?page=N` (N from 1) answers
//! `{"items":[{"sku","quantity"}],"next_page":N|null}`.
//!
//! **Signature.** Every request carries
//! - `Onhand-Timestamp: <unix seconds>` — when the request was signed, and
//! - `Onhand-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body bytes>")>` — over the
//!   exact bytes sent (an empty body for a GET).
//!
//! A receiver recomputes the HMAC over the raw body it received, compares in constant time,
//! and **rejects timestamps more than [`REPLAY_WINDOW_SECS`] (5 minutes) away from its own
//! clock**: a captured request cannot be replayed after that. Within the window a replay
//! sets the same absolute quantities again (`version` lets a receiver drop anything not
//! newer than what it holds), so it changes nothing. Receivers answer **401** both for a
//! missing or wrong signature and for a timestamp outside the window (an expired
//! signature), and 400 only for a malformed request.
//!
//! Why an old timestamp is 401 and not 400: the request is signed when it is built, and the
//! shared transport may then hold it in the channel's rate limiter (a 429's `Retry-After`
//! pauses every request to the channel, up to an hour) before it goes out; a skewed clock
//! has the same effect. Neither is the items' fault, and a 400 would dead-letter the whole
//! batch. A 401 is classified as a credentials problem (`classify`): the batch is held,
//! an operator is alerted, and the retry is signed afresh.

use std::borrow::Cow;

use hmac::{Hmac, Mac};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::api::{
    ApiRequest, ApiResponse, ChannelApi, ItemResult, MappingError, PageToken, ReadPage, Target,
};
use crate::classify;
use crate::limiter::RateLimit;
use crate::push::{ChannelKind, Listed, PushOutcome};

/// The header with the signing time, in unix seconds.
pub const HEADER_TIMESTAMP: &str = "Onhand-Timestamp";
/// The header with `v1=<hex HMAC-SHA256>`.
pub const HEADER_SIGNATURE: &str = "Onhand-Signature";
/// Receivers reject requests signed longer ago (or further ahead) than this.
pub const REPLAY_WINDOW_SECS: i64 = 5 * 60;
/// The signature scheme's version prefix.
const SCHEME: &str = "v1=";

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Appended to the channel's base URL; `/` (the default) means the base URL itself,
    /// with no slash added.
    pub path: String,
    /// The shared HMAC key. Never logged.
    pub secret: SecretString,
    /// Most items per PUT; [`Self::DEFAULT_MAX_BATCH`] by default.
    pub max_batch: usize,
}

impl WebhookConfig {
    /// 500 items are about 55 KB of JSON: a fifth of the requests (and signatures) of 100
    /// per request for the same items, well under the body limits receivers commonly set
    /// (1 MB and up). A receiver that takes fewer sets `MAX_BATCH`.
    pub const DEFAULT_MAX_BATCH: usize = 500;

    pub fn new(secret: SecretString) -> Self {
        Self {
            path: "/".to_owned(),
            secret,
            max_batch: Self::DEFAULT_MAX_BATCH,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Webhook {
    config: WebhookConfig,
}

impl Webhook {
    pub fn new(config: WebhookConfig) -> Self {
        Self { config }
    }

    /// The write request for `batch`, signed at `timestamp` (unix seconds).
    pub fn write_request_at(
        &self,
        batch: &[Target],
        timestamp: i64,
    ) -> Result<ApiRequest, MappingError> {
        let body = WriteBody {
            items: batch
                .iter()
                .map(|t| WriteItem {
                    sku: t.push.sku.as_str(),
                    quantity: t.push.quantity,
                    version: t.push.version,
                    event_id: t.push.event_id,
                })
                .collect(),
        };
        // Serialized once: the bytes signed are the bytes sent.
        let bytes = serde_json::to_vec(&body).map_err(|e| MappingError::Sku {
            sku: batch
                .first()
                .map(|t| t.push.sku.to_string())
                .unwrap_or_default(),
            reason: format!("cannot serialise the batch: {e}"),
        })?;
        let signed = self.sign(ApiRequest::new(Method::PUT, self.path()), timestamp, &bytes);
        Ok(signed.json_bytes(bytes))
    }

    fn sign(&self, request: ApiRequest, timestamp: i64, body: &[u8]) -> ApiRequest {
        let signature = signature(&self.config.secret, timestamp, body);
        request
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
    }

    fn path(&self) -> &str {
        match self.config.path.as_str() {
            "/" => "",
            path => path,
        }
    }

    fn read_path(&self, page: u64) -> String {
        let sep = if self.path().contains('?') { '&' } else { '?' };
        format!("{}{sep}page={page}", self.path())
    }
}

/// `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &SecretString, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("invariant: HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("{SCHEME}{}", hex::encode(mac.finalize().into_bytes()))
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The write request's body.
#[derive(Debug, Serialize)]
struct WriteBody<'a> {
    items: Vec<WriteItem<'a>>,
}

#[derive(Debug, Serialize)]
struct WriteItem<'a> {
    sku: &'a str,
    quantity: i64,
    version: i64,
    event_id: uuid::Uuid,
}

/// Borrowed from the response body where it holds no escapes (one result per item sent).
#[derive(Debug, Deserialize)]
struct WriteResponse<'a> {
    #[serde(borrow)]
    results: Vec<ItemStatus<'a>>,
}

#[derive(Debug, Deserialize)]
struct ItemStatus<'a> {
    #[serde(borrow)]
    sku: Cow<'a, str>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ReadResponse {
    items: Vec<ReadItem>,
    next_page: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ReadItem {
    sku: String,
    quantity: i64,
}

impl ChannelApi for Webhook {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Webhook
    }

    fn max_batch(&self) -> usize {
        self.config.max_batch.max(1)
    }

    /// A generic receiver documents no limit; configure one per deployment if it has one.
    fn default_rate_limit(&self) -> Option<RateLimit> {
        None
    }

    fn write_request(&self, batch: &[Target]) -> Result<ApiRequest, MappingError> {
        self.write_request_at(batch, now_unix())
    }

    fn write_outcomes(&self, batch: &[Target], resp: &ApiResponse) -> Vec<ItemResult> {
        if let Some(outcome) = classify::outcome(&self.classify(resp), resp) {
            return crate::api::all(batch, outcome);
        }
        let parsed: WriteResponse = match serde_json::from_slice(&resp.body) {
            Ok(parsed) => parsed,
            // The receiver took the request but said nothing we understand: try again.
            Err(e) => {
                return crate::api::all(
                    batch,
                    PushOutcome::transient(format!("undecodable body: {e}")),
                );
            }
        };
        // One result per item, in order; matched by SKU when the receiver reordered.
        let in_order = parsed.results.len() == batch.len()
            && parsed
                .results
                .iter()
                .zip(batch)
                .all(|(r, t)| r.sku == t.push.sku.as_str());
        batch
            .iter()
            .enumerate()
            .map(|(i, target)| {
                let result = if in_order {
                    parsed.results.get(i)
                } else {
                    parsed
                        .results
                        .iter()
                        .find(|r| r.sku == target.push.sku.as_str())
                };
                ItemResult::Done(match result {
                    None => PushOutcome::transient("the receiver returned no result for this sku"),
                    Some(r) if r.status == "applied" => PushOutcome::Applied,
                    Some(r) if r.status == "rejected" => PushOutcome::permanent(
                        "rejected",
                        r.error
                            .clone()
                            .unwrap_or_else(|| "rejected by the receiver".to_owned()),
                    ),
                    Some(r) => PushOutcome::transient(format!(
                        "unknown item status {:?} from the receiver",
                        r.status
                    )),
                })
            })
            .collect()
    }

    fn read_request(&self, page: &PageToken) -> Result<ApiRequest, MappingError> {
        let number = match &page.0 {
            None => 1,
            Some(token) => token
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| MappingError::PageToken {
                    token: token.clone(),
                })?,
        };
        let request = ApiRequest::get(self.read_path(number));
        Ok(self.sign(request, now_unix(), b""))
    }

    fn read_page(&self, resp: &ApiResponse) -> Result<ReadPage, MappingError> {
        let parsed: ReadResponse = resp.json()?;
        let items = parsed
            .items
            .into_iter()
            .map(|item| {
                let sku = onhand_common::Sku::parse(item.sku.clone()).map_err(|e| {
                    MappingError::Response {
                        status: resp.status,
                        reason: format!("invalid sku {:?} in read-back: {e}", item.sku),
                    }
                })?;
                Ok(Listed {
                    sku,
                    quantity: item.quantity,
                })
            })
            .collect::<Result<Vec<_>, MappingError>>()?;
        Ok(ReadPage {
            items,
            next: parsed.next_page.map(|n| PageToken::next(n.to_string())),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn webhook() -> Webhook {
        Webhook::new(WebhookConfig {
            path: "/hooks/stock".to_owned(),
            ..WebhookConfig::new(SecretString::from("s3cret"))
        })
    }

    fn target(sku: &str, quantity: i64) -> Target {
        crate::test_support::target(sku, quantity, 7, None)
    }

    fn resp(status: u16, body: &str) -> ApiResponse {
        crate::test_support::response(status, &[], body.to_owned())
    }

    #[test]
    fn the_write_request_is_signed_over_the_bytes_sent() {
        let request = webhook()
            .write_request_at(&[target("A-1", 3), target("B 2", 0)], 1_700_000_000)
            .expect("request");
        assert_eq!(request.method, Method::PUT);
        assert_eq!(request.path, "/hooks/stock");
        let body = request.json_body().expect("body");
        assert_eq!(
            body,
            json!({"items": [
                {"sku": "A-1", "quantity": 3, "version": 7, "event_id": uuid::Uuid::nil()},
                {"sku": "B 2", "quantity": 0, "version": 7, "event_id": uuid::Uuid::nil()},
            ]})
        );
        let header = |name| {
            request
                .headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header(HEADER_TIMESTAMP).as_deref(), Some("1700000000"));
        // Signed over the very bytes sent.
        let sent = request.body.as_ref().expect("body");
        let expected = signature(&SecretString::from("s3cret"), 1_700_000_000, sent);
        assert_eq!(header(HEADER_SIGNATURE), Some(expected.clone()));
        assert!(
            expected.starts_with("v1=") && expected.len() == 3 + 64,
            "{expected}"
        );
        assert_ne!(
            expected,
            signature(&SecretString::from("other"), 1_700_000_000, sent)
        );
    }

    #[test]
    fn the_signature_matches_an_independent_computation() {
        // Python: hmac.new(b"s3cret", b'1700000000.{"items":[]}', hashlib.sha256).hexdigest()
        assert_eq!(
            signature(
                &SecretString::from("s3cret"),
                1_700_000_000,
                br#"{"items":[]}"#
            ),
            "v1=b93eed468bc267f44ba79b50d8fc2739146d4b5eb051b06beb891a019552852b"
        );
    }

    #[test]
    fn results_fan_out_per_item_and_failures_cover_the_batch() {
        let api = webhook();
        let batch = [target("A-1", 1), target("B-2", 2), target("C-3", 3)];
        let out = api.write_outcomes(
            &batch,
            &resp(
                200,
                r#"{"results":[{"sku":"B-2","status":"rejected","error":"unknown sku"},
                               {"sku":"A-1","status":"applied"}]}"#,
            ),
        );
        assert_eq!(out[0], ItemResult::Done(PushOutcome::Applied));
        assert_eq!(
            out[1],
            ItemResult::Done(PushOutcome::permanent("rejected", "unknown sku"))
        );
        assert!(matches!(
            out[2],
            ItemResult::Done(PushOutcome::Transient { .. })
        ));
        let unauthorized = api.write_outcomes(&batch, &resp(401, r#"{"error":{}}"#));
        assert!(unauthorized.iter().all(|r| matches!(
            r,
            ItemResult::Done(PushOutcome::Transient { reason, .. }) if reason.contains("credentials")
        )));
        let unavailable = api.write_outcomes(&batch, &resp(503, ""));
        assert!(
            unavailable
                .iter()
                .all(|r| matches!(r, ItemResult::Done(PushOutcome::Transient { .. })))
        );
    }

    #[test]
    fn read_back_pages_by_number() {
        let api = webhook();
        let first = api.read_request(&PageToken::first()).expect("first");
        assert_eq!(first.path, "/hooks/stock?page=1");
        assert!(first.headers.iter().any(|(n, _)| *n == HEADER_SIGNATURE));
        let page = api
            .read_page(&resp(
                200,
                r#"{"items":[{"sku":"A-1","quantity":4}],"next_page":2}"#,
            ))
            .expect("page");
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.next, Some(PageToken::next("2")));
        assert_eq!(
            api.read_request(&PageToken::next("2"))
                .expect("second")
                .path,
            "/hooks/stock?page=2"
        );
        assert!(api.read_request(&PageToken::next("zero")).is_err());
        let root = Webhook::new(WebhookConfig::new(SecretString::from("k")));
        assert_eq!(
            root.read_request(&PageToken::first()).expect("root").path,
            "?page=1",
            "the default path is the base URL itself"
        );
        let last = api
            .read_page(&resp(200, r#"{"items":[],"next_page":null}"#))
            .expect("last");
        assert_eq!(last.next, None);
    }
}
