//! An HTTP channel: one adapter's mapping driven by the shared transport. Splits pushes
//! into the channel's batch size, resolves channel ids through a cache (an id the channel
//! refuses is looked up again once), fans per-item results back to SKUs, retries a lost
//! compare-and-set with a fresh value, re-sends the innocent items of a request refused as
//! a whole (bisecting when no culprit is named), follows the API's rate reports, spends a
//! revision budget per listing where the channel caps revisions (eBay), and pages the
//! read-back.

use std::collections::HashMap;

use futures::StreamExt as _;
use std::sync::Mutex;

use metrics::counter;
use onhand_common::Sku;
use onhand_common::telemetry::TraceContext;
use tracing::Instrument as _;

use crate::api::{
    ApiRequest, ApiResponse, ChannelApi, ChannelRef, ItemResult, MappingError, PageToken, ReadPage,
    Target,
};
use crate::classify::{self, Class};
use crate::push::{ChannelKind, Listed, Push, PushOutcome};
use crate::revisions::RevisionBudget;
use crate::transport::{Transport, TransportError};

/// How many times a lost compare-and-set is retried with a fresh value before the push is
/// left transient (and the most rounds a push takes, a fresh lookup of a refused cached id
/// included).
const STALE_RETRIES: usize = 2;
/// Write requests of one push in flight at once.
const CHUNK_CONCURRENCY: usize = 4;
/// Consecutive outages, timeouts or dropped connections a read-back sits out before giving
/// up.
const READ_RETRIES: u32 = 5;
/// Read-back stops after this many pages (a guard against a channel that pages forever).
const MAX_PAGES: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Mapping(#[from] crate::api::MappingError),
    #[error("{channel}: read-back failed with HTTP {status}")]
    Status { channel: ChannelKind, status: u16 },
    #[error("{channel}: read-back did not end after {pages} pages")]
    Endless { channel: ChannelKind, pages: usize },
}

/// What resolving one SKU's channel id came to.
#[derive(Debug, Clone)]
enum Resolution {
    /// `cached`: from the cache, not looked up for this push (it may be out of date).
    Found { reference: ChannelRef, cached: bool },
    /// The channel has no item for the SKU.
    Missing,
    /// The lookup itself failed; the push gets this outcome.
    Failed(PushOutcome),
}

#[derive(Debug)]
pub struct HttpChannel<A: ChannelApi> {
    api: A,
    transport: Transport,
    refs: Mutex<HashMap<Sku, ChannelRef>>,
    /// Revisions each listing may still make, when the channel caps them.
    revisions: Option<Mutex<RevisionBudget>>,
}

impl<A: ChannelApi> HttpChannel<A> {
    pub fn new(api: A, transport: Transport) -> Self {
        let revisions = api
            .revisions_per_day()
            .map(|per_day| Mutex::new(RevisionBudget::new(per_day)));
        Self {
            api,
            transport,
            refs: Mutex::new(HashMap::new()),
            revisions,
        }
    }

    pub fn api(&self) -> &A {
        &self.api
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    fn refs(&self) -> std::sync::MutexGuard<'_, HashMap<Sku, ChannelRef>> {
        self.refs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Push every quantity; one outcome per push, in order.
    /// Requests of one push run [`CHUNK_CONCURRENCY`] at a time (each SKU is in one of
    /// them; the rate limiter still paces them).
    pub async fn push(&self, pushes: &[Push]) -> Vec<PushOutcome> {
        self.push_traced(pushes, &[]).await
    }

    /// [`HttpChannel::push`], with the trace each push continues (`traces[i]` for
    /// `pushes[i]`; none past the end).
    ///
    /// One request carries one `traceparent`, and one request sets many SKUs (up to
    /// [`ChannelApi::max_batch`]). So the pushes are sent in chunks of that size, and every
    /// request of a chunk (id lookups, the write, re-sends) runs in one `push_batch` span
    /// that continues the trace of the chunk's *first* traced push and links to the trace
    /// of each other one: the channel receives the first SKU's `traceparent`, and each
    /// other SKU's trace reaches this call through its link. A chunk with no trace runs in
    /// the caller's span.
    pub async fn push_traced(
        &self,
        pushes: &[Push],
        traces: &[Option<TraceContext>],
    ) -> Vec<PushOutcome> {
        let size = self.api.max_batch().max(1);
        // Owned chunks keep the future Send for any caller's lifetime.
        let chunks: Vec<(Vec<Push>, tracing::Span)> = pushes
            .chunks(size)
            .enumerate()
            .map(|(n, chunk)| {
                let start = (n * size).min(traces.len());
                let end = (start + chunk.len()).min(traces.len());
                (chunk.to_vec(), self.chunk_span(chunk, &traces[start..end]))
            })
            .collect();
        futures::stream::iter(chunks)
            .map(|(chunk, span)| async move { self.push_batch(&chunk).instrument(span).await })
            .buffered(CHUNK_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// The span of a chunk's requests (see [`HttpChannel::push_traced`]); a disabled one
    /// when no push of the chunk is traced.
    fn chunk_span(&self, chunk: &[Push], traces: &[Option<TraceContext>]) -> tracing::Span {
        let Some(first) = traces.iter().position(Option::is_some) else {
            return tracing::Span::none();
        };
        let span = tracing::info_span!("push_batch", channel = %self.api.kind(), skus = chunk.len(), sku = %chunk[first].sku);
        onhand_common::telemetry::continue_first(&span, traces.iter().flatten());
        span
    }

    async fn push_batch(&self, pushes: &[Push]) -> Vec<PushOutcome> {
        let mut results: Vec<Option<PushOutcome>> = vec![None; pushes.len()];
        let mut pending: Vec<usize> = (0..pushes.len()).collect();
        if let Some(budget) = &self.revisions {
            let budget = budget
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = std::time::Instant::now();
            pending.retain(|&i| {
                let push = &pushes[i];
                let Some(wait) = budget.check(&push.sku, push.quantity, now) else {
                    return true;
                };
                counter!("onhand_channel_revision_waits_total", "channel" => self.api.kind().as_str()).increment(1);
                results[i] = Some(PushOutcome::Deferred {
                    wait,
                    reason: format!(
                        "{} allows {} revisions of a listing a day; this one has spent its budget for now, next revision in {} s",
                        self.api.kind(),
                        budget.per_day(),
                        wait.as_secs()
                    ),
                });
                false
            });
        }
        for attempt in 0..=STALE_RETRIES {
            if pending.is_empty() {
                break;
            }
            // Resolve what the cache lacks (all of it again after a lost compare-and-set).
            let refs = self.resolve(pending.iter().map(|&i| &pushes[i].sku)).await;
            let mut targets = Vec::with_capacity(pending.len());
            let mut indices = Vec::with_capacity(pending.len());
            let mut from_cache = Vec::with_capacity(pending.len());
            for &i in &pending {
                let push = &pushes[i];
                match refs.get(&push.sku) {
                    Some(Resolution::Failed(outcome)) => {
                        results[i] = Some(outcome.clone());
                    }
                    Some(Resolution::Found { reference, cached }) => {
                        targets.push(Target {
                            push: push.clone(),
                            reference: Some(reference.clone()),
                        });
                        indices.push(i);
                        from_cache.push(*cached);
                    }
                    Some(Resolution::Missing) => {
                        results[i] = Some(PushOutcome::permanent(
                            "unknown_sku",
                            format!("{} has no item for this sku", self.api.kind()),
                        ));
                    }
                    None => {
                        targets.push(Target {
                            push: push.clone(),
                            reference: None,
                        });
                        indices.push(i);
                        from_cache.push(false);
                    }
                }
            }
            pending.clear();
            if targets.is_empty() {
                break;
            }
            let items = self.write(&targets).await;
            for (((i, target), item), cached) in
                indices.into_iter().zip(&targets).zip(items).zip(from_cache)
            {
                match item {
                    ItemResult::Done(PushOutcome::Applied) => {
                        if let Some(r) = self.refs().get_mut(&target.push.sku) {
                            r.current = Some(target.push.quantity);
                        }
                        results[i] = Some(PushOutcome::Applied);
                    }
                    // Refused for good with an id from the cache: the item may have been
                    // deleted and recreated under a new id (a WooCommerce product, an eBay
                    // offer relisted, a Shopify variant). Forget the id and try once more
                    // with a fresh lookup; a refusal then is final. Without this, the stale
                    // id would dead-letter every push of the SKU, replays included, until
                    // the process restarts.
                    ItemResult::Done(outcome @ PushOutcome::Permanent { .. })
                    | ItemResult::Resend(outcome @ PushOutcome::Permanent { .. })
                        if cached && attempt < STALE_RETRIES =>
                    {
                        tracing::info!(channel = %self.api.kind(), sku = %target.push.sku, ?outcome, "the channel refused a cached id; looking it up again");
                        self.refs().remove(&target.push.sku);
                        results[i] = Some(outcome);
                        pending.push(i);
                    }
                    // `write` settles every resend itself; one left over is final.
                    ItemResult::Done(other) | ItemResult::Resend(other) => results[i] = Some(other),
                    ItemResult::Stale { current } => {
                        counter!("onhand_channel_concurrent_changes_total", "channel" => self.api.kind().as_str()).increment(1);
                        tracing::info!(channel = %self.api.kind(), sku = %target.push.sku, ?current, attempt, "channel value changed behind us; retrying with the fresh value");
                        let mut refs = self.refs();
                        match current {
                            Some(current) => {
                                if let Some(r) = refs.get_mut(&target.push.sku) {
                                    r.current = Some(current);
                                }
                            }
                            None => {
                                refs.remove(&target.push.sku);
                            }
                        }
                        drop(refs);
                        results[i] = Some(PushOutcome::transient(
                            "the channel's value kept changing under compare-and-set",
                        ));
                        pending.push(i);
                    }
                }
            }
        }
        if let Some(budget) = &self.revisions {
            let mut budget = budget
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = std::time::Instant::now();
            for (push, result) in pushes.iter().zip(&results) {
                if matches!(result, Some(PushOutcome::Applied)) {
                    budget.spend(&push.sku, push.quantity, now);
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| PushOutcome::transient("no result from the channel")))
            .collect()
    }

    /// Cached or freshly resolved refs, per SKU; a SKU absent from the map needs no
    /// resolution on this channel. A lookup that fails fails only the SKUs it was for.
    async fn resolve<'a>(&self, skus: impl Iterator<Item = &'a Sku>) -> HashMap<Sku, Resolution> {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let refs = self.refs();
            for sku in skus {
                match refs.get(sku) {
                    Some(r) => {
                        out.insert(
                            sku.clone(),
                            Resolution::Found {
                                reference: r.clone(),
                                cached: true,
                            },
                        );
                    }
                    None => missing.push(sku.clone()),
                }
            }
        }
        for chunk in missing.chunks(self.api.max_resolve_batch().max(1)) {
            let Some(request) = self.api.resolve_request(chunk) else {
                return out;
            };
            match self.resolve_chunk(chunk, request).await {
                Ok(found) => {
                    let mut refs = self.refs();
                    for sku in chunk {
                        let resolution = match found.get(sku) {
                            Some(r) => {
                                refs.insert(sku.clone(), r.clone());
                                Resolution::Found {
                                    reference: r.clone(),
                                    cached: false,
                                }
                            }
                            None => Resolution::Missing,
                        };
                        out.insert(sku.clone(), resolution);
                    }
                }
                Err(outcome) => {
                    for sku in chunk {
                        out.insert(sku.clone(), Resolution::Failed(outcome.clone()));
                    }
                }
            }
        }
        out
    }

    async fn resolve_chunk(
        &self,
        chunk: &[Sku],
        request: Result<crate::api::ApiRequest, crate::api::MappingError>,
    ) -> Result<HashMap<Sku, ChannelRef>, PushOutcome> {
        let request = request.map_err(|e| PushOutcome::permanent("mapping", e.to_string()))?;
        let resp = self
            .send(&request)
            .await
            .map_err(|e| PushOutcome::transient(e.to_string()))?;
        if let Some(outcome) = classify::outcome(&self.api.classify(&resp), &resp) {
            return Err(outcome);
        }
        self.api
            .resolve_response(chunk, &resp)
            .map_err(|e| PushOutcome::transient(e.to_string()))
    }

    /// Write the targets, one request per [`ChannelApi::group_key`]; results in order.
    async fn write(&self, targets: &[Target]) -> Vec<ItemResult> {
        let mut groups: Vec<(Option<String>, Vec<usize>)> = Vec::new();
        for (i, target) in targets.iter().enumerate() {
            let key = self.api.group_key(target);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(i),
                None => groups.push((key, vec![i])),
            }
        }
        if groups.len() <= 1 {
            return self.write_group(targets).await;
        }
        let mut results: Vec<Option<ItemResult>> = vec![None; targets.len()];
        for (_, members) in groups {
            let group: Vec<Target> = members.iter().map(|&i| targets[i].clone()).collect();
            for (i, item) in members.into_iter().zip(self.write_group(&group).await) {
                results[i] = Some(item);
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    ItemResult::Done(PushOutcome::transient("no result from the channel"))
                })
            })
            .collect()
    }

    async fn write_group(&self, targets: &[Target]) -> Vec<ItemResult> {
        let request = match self.api.write_request(targets) {
            Ok(request) => request,
            Err(e) => {
                return crate::api::all(targets, PushOutcome::permanent("mapping", e.to_string()));
            }
        };
        let mut results = match self.send(&request).await {
            Ok(resp) => self.api.write_outcomes(targets, &resp),
            Err(e) => return crate::api::all(targets, PushOutcome::transient(e.to_string())),
        };
        // A request refused as a whole: send the innocent items again without the guilty
        // ones, or, when the channel named no culprit, bisect. Every round sends strictly
        // fewer items, so this ends.
        let resend: Vec<usize> = (0..results.len())
            .filter(|&i| matches!(results[i], ItemResult::Resend(_)))
            .collect();
        if resend.is_empty() {
            return results;
        }
        let groups: Vec<Vec<usize>> = if resend.len() < targets.len() {
            vec![resend]
        } else if resend.len() == 1 {
            vec![]
        } else {
            let half = resend.len() / 2;
            vec![resend[..half].to_vec(), resend[half..].to_vec()]
        };
        for members in groups {
            let group: Vec<Target> = members.iter().map(|&i| targets[i].clone()).collect();
            let again = Box::pin(self.write_group(&group)).await;
            for (i, item) in members.into_iter().zip(again) {
                results[i] = item;
            }
        }
        results
    }

    /// Send through the transport and learn from the response's rate information.
    async fn send(&self, request: &crate::api::ApiRequest) -> Result<ApiResponse, TransportError> {
        let resp = self.transport.send(request).await?;
        if let Some(report) = self.api.rate_report(&resp) {
            self.transport.limiter.observe_available(
                report.available,
                report.capacity,
                report.refill_per_sec,
            );
            if let Some(reset) = report.reset_after {
                self.transport.limiter.pause_for(reset);
            }
        }
        match self.api.classify(&resp) {
            Class::Throttled { retry_after } => {
                counter!("onhand_channel_throttled_total", "channel" => self.api.kind().as_str())
                    .increment(1);
                self.transport
                    .limiter
                    .pause_for(retry_after.unwrap_or(std::time::Duration::from_secs(1)));
            }
            Class::Unauthorized => {
                // Held, not dead-lettered (see `classify`): somebody has to fix the
                // credentials, so say so loudly, once per refused request.
                counter!("onhand_channel_auth_failures_total", "channel" => self.api.kind().as_str())
                    .increment(1);
                tracing::error!(
                    channel = %self.api.kind(),
                    status = resp.status,
                    path = %request.path,
                    "the channel refused our credentials; pushes are held until the token, key or scope is fixed"
                );
            }
            Class::Success | Class::Unavailable { .. } | Class::Rejected => {}
        }
        Ok(resp)
    }

    /// Every SKU's quantity as the channel shows it, page by page.
    pub async fn read_all(&self) -> Result<Vec<Listed>, ReadError> {
        self.read_pages(
            |token| self.api.read_request(token),
            |token, resp| self.api.read_page_at(token, resp),
        )
        .await
    }

    /// Page through a listing: `request` builds the request for a position, `page` reads a
    /// successful response. Written once for [`HttpChannel::read_all`] and for
    /// channel-specific reads (Amazon's by SKU): throttling waits for the limiter, an
    /// outage, a timeout or a dropped connection is retried up to [`READ_RETRIES`] times in a
    /// row with a growing pause, anything else fails the read.
    pub(crate) async fn read_pages(
        &self,
        request: impl Fn(&PageToken) -> Result<ApiRequest, MappingError>,
        page: impl Fn(&PageToken, &ApiResponse) -> Result<ReadPage, MappingError>,
    ) -> Result<Vec<Listed>, ReadError> {
        let mut token = PageToken::first();
        let mut all = Vec::new();
        let mut failures = 0;
        let backoff = |failures: u32| std::time::Duration::from_millis(200 << failures);
        for _ in 0..MAX_PAGES {
            let request = request(&token)?;
            let resp = match self.send(&request).await {
                Ok(resp) => resp,
                // One slow or dropped page must not fail a read-back of thousands.
                Err(e @ (TransportError::Timeout { .. } | TransportError::Request { .. }))
                    if failures < READ_RETRIES =>
                {
                    failures += 1;
                    tracing::warn!(channel = %self.api.kind(), error = %e, failures, "read-back page failed; retrying");
                    tokio::time::sleep(backoff(failures)).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match self.api.classify(&resp) {
                Class::Success => failures = 0,
                // Throttling already paused the limiter; an outage waits here.
                Class::Throttled { .. } => continue,
                Class::Unavailable { retry_after } if failures < READ_RETRIES => {
                    failures += 1;
                    tokio::time::sleep(retry_after.unwrap_or(backoff(failures))).await;
                    continue;
                }
                Class::Unavailable { .. } | Class::Unauthorized | Class::Rejected => {
                    return Err(ReadError::Status {
                        channel: self.api.kind(),
                        status: resp.status,
                    });
                }
            }
            let page = page(&token, &resp)?;
            all.extend(page.items);
            match page.next {
                Some(next) => token = next,
                None => return Ok(all),
            }
        }
        Err(ReadError::Endless {
            channel: self.api.kind(),
            pages: MAX_PAGES,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::SecretString;

    use super::*;
    use crate::limiter::RateLimiter;
    use crate::transport::Auth;

    fn channel<A: ChannelApi>(api: A, auth: Auth) -> HttpChannel<A> {
        rustls::crypto::ring::default_provider()
            .install_default()
            .ok();
        let transport = Transport::new(
            api.kind(),
            "https://example.invalid",
            auth,
            Duration::from_secs(1),
            RateLimiter::unlimited(),
        )
        .expect("transport");
        HttpChannel::new(api, transport)
    }

    /// Whatever a log line or a panic may print of a configured channel holds no secret.
    #[test]
    fn debug_output_never_shows_a_secret() {
        let token = "shpat_0123456789abcdef-secret";
        let shopify = channel(
            crate::shopify::Shopify::new(crate::shopify::ShopifyConfig::new(
                "gid://shopify/Location/1",
            )),
            Auth::Header {
                name: reqwest::header::HeaderName::from_static("x-shopify-access-token"),
                value: SecretString::from(token.to_owned()),
            },
        );
        let printed = format!("{shopify:?} {:?}", shopify.transport());
        assert!(!printed.contains(token), "{printed}");

        let consumer_secret = "cs_0123456789abcdef-secret";
        let woo = channel(
            crate::woocommerce::Woo::default(),
            Auth::Basic {
                user: "ck_key".to_owned(),
                password: SecretString::from(consumer_secret.to_owned()),
            },
        );
        let printed = format!("{woo:?}");
        assert!(!printed.contains(consumer_secret), "{printed}");

        let hmac_key = "whsec_0123456789abcdef-secret";
        let webhook = channel(
            crate::webhook::Webhook::new(crate::webhook::WebhookConfig::new(SecretString::from(
                hmac_key.to_owned(),
            ))),
            Auth::None,
        );
        let printed = format!("{webhook:?}");
        assert!(!printed.contains(hmac_key), "{printed}");
        // Nor does a signed request (its signature is of the body, not the key).
        let request = webhook
            .api()
            .write_request_at(&[crate::test_support::target("A", 1, 1, None)], 1)
            .expect("request");
        assert!(!format!("{request:?}").contains(hmac_key));
    }
}
