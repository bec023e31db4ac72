//! Each adapter built as a projector would build it, pointed at the sandbox's emulator with
//! the credentials the emulator accepts (as in channels/tests/it), and each channel's
//! documented default limit (CHANNELS.md) with what one write costs.

use std::time::Duration;

use anyhow::Context as _;
use onhand_channels::amazon::{AmazonApi, AmazonConfig};
use onhand_channels::bigcommerce::{BigCommerceApi, BigCommerceConfig};
use onhand_channels::ebay::{CALLS_PER_DAY, Ebay, EbayConfig};
use onhand_channels::shopify::{MUTATION_COST, Shopify, ShopifyConfig};
use onhand_channels::storefront_kv::StorefrontKv;
use onhand_channels::webhook::{Webhook, WebhookConfig};
use onhand_channels::woocommerce::{Woo, WooConfig};
use onhand_channels::{
    Auth, ChannelApi, ChannelKind, HttpChannel, Push, PushOutcome, RateLimit, RateLimiter,
    Transport,
};
use reqwest::header::{AUTHORIZATION, HeaderName};
use secrecy::SecretString;

/// The adapters' request timeout, as configured in the integration tests.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Anything that takes a batch of pushes and answers one outcome per push.
pub trait Pusher {
    /// Most pushes per write request.
    fn batch(&self) -> usize;
    async fn push(&self, pushes: &[Push]) -> Vec<PushOutcome>;
}

impl<A: ChannelApi> Pusher for HttpChannel<A> {
    fn batch(&self) -> usize {
        self.api().max_batch()
    }

    async fn push(&self, pushes: &[Push]) -> Vec<PushOutcome> {
        HttpChannel::push(self, pushes).await
    }
}

impl Pusher for StorefrontKv {
    /// Not a request size (every key is its own compare-and-set); how many pushes the
    /// benchmark hands over at once, matching the adapter's 64 keys in flight.
    fn batch(&self) -> usize {
        64
    }

    async fn push(&self, pushes: &[Push]) -> Vec<PushOutcome> {
        StorefrontKv::push(self, pushes).await
    }
}

/// A channel's documented default limit (CHANNELS.md), which the sandbox's bucket is set
/// to. The adapter's limiter comes from its own `default_rate_limit()`, which may choose
/// differently within it (Amazon's limiter bursts 4 of the documented 5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub documented: RateLimit,
    /// What the bucket counts.
    pub unit: &'static str,
    /// Units one write request spends.
    pub write_cost: f64,
}

/// The documented default limit of a channel, if it has one.
pub fn documented_limit(kind: ChannelKind) -> Option<Limit> {
    let requests = |capacity: f64, refill_per_sec: f64| Limit {
        documented: RateLimit {
            capacity,
            refill_per_sec,
        },
        unit: "requests",
        write_cost: 1.0,
    };
    match kind {
        // Standard plan: 100 points/s restored; the bucket seen in a 2025 response is 2000
        // (older docs said 1000). A mutation costs 10 points.
        ChannelKind::Shopify => Some(Limit {
            documented: RateLimit {
                capacity: 2000.0,
                refill_per_sec: 100.0,
            },
            unit: "points",
            write_cost: MUTATION_COST,
        }),
        // patchListingsItem: 5 requests/s, burst 5.
        ChannelKind::Amazon => Some(requests(5.0, 5.0)),
        // 2,000,000 calls a day, spread evenly; the docs name no burst, so the adapter's
        // 100 stands in for one.
        ChannelKind::Ebay => Some(requests(100.0, CALLS_PER_DAY / 86_400.0)),
        // Standard and Plus: 150 requests per 30 s window.
        ChannelKind::Bigcommerce => Some(requests(150.0, 5.0)),
        // No limit in WooCommerce core (any is the host's); the webhook is our own
        // receiver's contract; storefront KV is a NATS bucket.
        ChannelKind::Woocommerce | ChannelKind::Webhook | ChannelKind::StorefrontKv => None,
    }
}

fn http<A: ChannelApi>(
    api: A,
    url: &str,
    auth: Auth,
    limiter: RateLimiter,
) -> anyhow::Result<HttpChannel<A>> {
    let transport = Transport::new(api.kind(), url, auth, TIMEOUT, limiter)
        .with_context(|| format!("building the {} transport", api.kind()))?;
    Ok(HttpChannel::new(api, transport))
}

fn header(name: &'static str, value: &str) -> Auth {
    Auth::Header {
        name: HeaderName::from_static(name),
        value: SecretString::from(value.to_owned()),
    }
}

pub fn shopify_api() -> Shopify {
    Shopify::new(ShopifyConfig::new(onhand_sandbox::shopify::LOCATION_ID))
}

pub fn shopify(url: &str, limiter: RateLimiter) -> anyhow::Result<HttpChannel<Shopify>> {
    let auth = header("x-shopify-access-token", "shpat_bench_token");
    http(shopify_api(), url, auth, limiter)
}

pub fn amazon_api() -> AmazonApi {
    AmazonApi::new(AmazonConfig {
        seller_id: "A3SELLER".to_owned(),
        marketplace_id: "ATVPDKIKX0DER".to_owned(),
    })
}

pub fn amazon(url: &str, limiter: RateLimiter) -> anyhow::Result<HttpChannel<AmazonApi>> {
    let auth = header("x-amz-access-token", "Atza|bench-token");
    http(amazon_api(), url, auth, limiter)
}

pub fn ebay_api() -> Ebay {
    // No revision budget: both runs revise each listing far more often than 250 times a
    // day (the limits-off run lifts the sandbox's cap too); they measure throughput and the
    // rate limiter, and the budget has tests of its own.
    Ebay::new(EbayConfig {
        revisions_per_day: None,
    })
}

pub fn ebay(url: &str, limiter: RateLimiter) -> anyhow::Result<HttpChannel<Ebay>> {
    let auth = Auth::Header {
        name: AUTHORIZATION,
        value: SecretString::from("Bearer v^1.1#i^1#bench-token".to_owned()),
    };
    http(ebay_api(), url, auth, limiter)
}

pub fn woocommerce_api() -> Woo {
    Woo::new(WooConfig::default())
}

pub fn woocommerce(url: &str, limiter: RateLimiter) -> anyhow::Result<HttpChannel<Woo>> {
    let auth = Auth::Basic {
        user: onhand_sandbox::woocommerce::CONSUMER_KEY.to_owned(),
        password: SecretString::from(onhand_sandbox::woocommerce::CONSUMER_SECRET.to_owned()),
    };
    http(woocommerce_api(), url, auth, limiter)
}

pub fn bigcommerce_api() -> BigCommerceApi {
    BigCommerceApi::new(BigCommerceConfig {
        store_hash: "bench1".to_owned(),
        location_id: 1,
    })
}

pub fn bigcommerce(url: &str, limiter: RateLimiter) -> anyhow::Result<HttpChannel<BigCommerceApi>> {
    http(
        bigcommerce_api(),
        url,
        header("x-auth-token", "bench-token"),
        limiter,
    )
}

pub fn webhook_api() -> Webhook {
    Webhook::new(WebhookConfig {
        path: "/inventory".to_owned(),
        ..WebhookConfig::new(SecretString::from(
            onhand_sandbox::webhook::SECRET.to_owned(),
        ))
    })
}

pub fn webhook(url: &str, limiter: RateLimiter) -> anyhow::Result<HttpChannel<Webhook>> {
    http(webhook_api(), url, Auth::None, limiter)
}

/// The storefront KV channel on a NATS server, with the embedded definitions applied
/// (which create the `onhand_availability` bucket).
pub async fn storefront_kv(nats_url: &str) -> anyhow::Result<StorefrontKv> {
    let client = async_nats::ConnectOptions::new()
        .name("onhand-bench")
        .connect(nats_url)
        .await
        .with_context(|| format!("connecting to NATS at {nats_url}"))?;
    let js = async_nats::jetstream::new(client);
    onhand_streams::ensure(&js, &onhand_streams::Definitions::embedded())
        .await
        .context("applying the stream and bucket definitions")?;
    let kv = js
        .get_key_value(onhand_channels::storefront_kv::BUCKET)
        .await
        .context("opening the availability bucket")?;
    Ok(StorefrontKv::new(kv))
}
