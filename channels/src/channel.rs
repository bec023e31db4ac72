//! A configured channel, whatever its kind: what projectors and the reconciler hold.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use onhand_common::Sku;
use onhand_common::telemetry::TraceContext;
use reqwest::header::HeaderName;

use crate::amazon::AmazonApi;
use crate::api::ChannelApi;
use crate::bigcommerce::BigCommerceApi;
use crate::config::{ChannelSettings, Connection, RateSetting};
use crate::ebay::Ebay;
use crate::http_channel::{HttpChannel, ReadError};
use crate::limiter::{RateLimit, RateLimiter};
use crate::push::{ChannelKind, Listed, Push, PushOutcome};
use crate::shopify::Shopify;
use crate::storefront_kv::{BUCKET, StorefrontError, StorefrontKv};
use crate::transport::{Auth, Transport, TransportError};
use crate::webhook::Webhook;
use crate::woocommerce::Woo;

/// `storefront_kv`'s read-back is handed to [`Channel::read_listing`]'s sink in pages of this.
const STOREFRONT_PAGE: usize = 1_000;

/// One channel, ready to push to and read back from. Built once per process, so the
/// variants' sizes do not matter.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Channel {
    Shopify(HttpChannel<Shopify>),
    Amazon(HttpChannel<AmazonApi>),
    Ebay(HttpChannel<Ebay>),
    Woocommerce(HttpChannel<Woo>),
    Bigcommerce(HttpChannel<BigCommerceApi>),
    Webhook(HttpChannel<Webhook>),
    StorefrontKv(StorefrontKv),
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("opening the KV bucket {bucket} (create it with `onhand streams apply`)")]
    Bucket {
        bucket: &'static str,
        #[source]
        source: async_nats::jetstream::context::KeyValueError,
    },
    #[error("storefront_kv needs a NATS connection")]
    NoNats,
}

/// A read-back failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadBackError {
    #[error(transparent)]
    Http(#[from] ReadError),
    #[error(transparent)]
    Storefront(#[from] StorefrontError),
}

/// Applies `f` to the adapter whatever its kind (the HTTP ones share one type).
macro_rules! each_http {
    ($self:expr, $ch:ident => $http:expr, $kv:ident => $other:expr) => {
        match $self {
            Channel::Shopify($ch) => $http,
            Channel::Amazon($ch) => $http,
            Channel::Ebay($ch) => $http,
            Channel::Woocommerce($ch) => $http,
            Channel::Bigcommerce($ch) => $http,
            Channel::Webhook($ch) => $http,
            Channel::StorefrontKv($kv) => $other,
        }
    };
}

impl Channel {
    /// Builds the adapter `settings` describe. `jetstream` is needed by `storefront_kv` only
    /// (the bucket must exist: `onhand streams apply`).
    pub async fn connect(
        settings: &ChannelSettings,
        jetstream: Option<&async_nats::jetstream::Context>,
    ) -> Result<Self, ConnectError> {
        let kind = settings.kind();
        let header = |name: &'static str, value: &secrecy::SecretString| Auth::Header {
            name: HeaderName::from_static(name),
            value: value.clone(),
        };
        Ok(match &settings.connection {
            Connection::Shopify {
                base_url,
                token,
                config,
            } => Channel::Shopify(http(
                settings,
                Shopify::new(config.clone()),
                base_url,
                header("x-shopify-access-token", token),
            )?),
            Connection::Amazon {
                base_url,
                token,
                config,
            } => Channel::Amazon(http(
                settings,
                AmazonApi::new(config.clone()),
                base_url,
                header("x-amz-access-token", token),
            )?),
            Connection::Ebay {
                base_url,
                token,
                config,
            } => {
                let bearer = secrecy::SecretString::from(bearer(token));
                Channel::Ebay(http(
                    settings,
                    Ebay::new(config.clone()),
                    base_url,
                    header("authorization", &bearer),
                )?)
            }
            Connection::Woocommerce {
                base_url,
                consumer_key,
                consumer_secret,
                config,
            } => Channel::Woocommerce(http(
                settings,
                Woo::new(config.clone()),
                base_url,
                Auth::Basic {
                    user: consumer_key.clone(),
                    password: consumer_secret.clone(),
                },
            )?),
            Connection::Bigcommerce {
                base_url,
                token,
                config,
            } => Channel::Bigcommerce(http(
                settings,
                BigCommerceApi::new(config.clone()),
                base_url,
                header("x-auth-token", token),
            )?),
            Connection::Webhook { base_url, config } => Channel::Webhook(http(
                settings,
                Webhook::new(config.clone()),
                base_url,
                Auth::None,
            )?),
            Connection::StorefrontKv => {
                debug_assert_eq!(kind, ChannelKind::StorefrontKv);
                let js = jetstream.ok_or(ConnectError::NoNats)?;
                let kv = js
                    .get_key_value(BUCKET)
                    .await
                    .map_err(|source| ConnectError::Bucket {
                        bucket: BUCKET,
                        source,
                    })?;
                Channel::StorefrontKv(StorefrontKv::new(kv))
            }
        })
    }

    pub fn kind(&self) -> ChannelKind {
        each_http!(self, ch => ch.api().kind(), kv => kv.kind())
    }

    /// Most pushes worth handing over at once (the adapter splits further as it must).
    pub fn max_batch(&self) -> usize {
        each_http!(self, ch => ch.api().max_batch(), _kv => 1_000)
    }

    /// Push every quantity; one outcome per push, in order.
    pub async fn push(&self, pushes: &[Push]) -> Vec<PushOutcome> {
        self.push_traced(pushes, &[]).await
    }

    /// [`Channel::push`], each push continuing the trace in `traces` at its index (none
    /// past the end): an HTTP channel's requests for a group of pushes continue the first
    /// traced push's trace and link to the others' ([`HttpChannel::push_traced`]).
    pub async fn push_traced(
        &self,
        pushes: &[Push],
        traces: &[Option<TraceContext>],
    ) -> Vec<PushOutcome> {
        each_http!(self, ch => ch.push_traced(pushes, traces).await, kv => kv.push(pushes).await)
    }

    /// Every SKU's quantity as the channel shows it.
    pub async fn read_all(&self) -> Result<Vec<Listed>, ReadBackError> {
        Ok(each_http!(self, ch => ch.read_all().await?, kv => kv.read_all().await?))
    }

    /// Whether a whole read-back of this channel needs the SKUs to read: Amazon's listing
    /// search (`read_all`) stops at 1,000 items, reading by SKU ([`Channel::read_back`])
    /// has no cap. Every other channel pages through its whole listing
    /// ([`Channel::read_listing`]).
    pub fn reads_by_sku(&self) -> bool {
        matches!(self, Channel::Amazon(_))
    }

    /// The channel's whole listing, handed to `sink` one page at a time as the pages arrive
    /// (paged, inside the channel's rate limit, retried like [`Channel::read_all`]), so a
    /// read-back of a million SKUs never holds more than one page of [`Listed`]. Returns
    /// the number of pages. `storefront_kv` reads its bucket whole and hands it over in
    /// pages of 1,000.
    pub async fn read_listing(
        &self,
        sink: impl FnMut(Vec<Listed>) + Send,
    ) -> Result<u64, ReadBackError> {
        let pages = Counted::new(sink);
        each_http!(self, ch => {
            let api = ch.api();
            ch.read_pages(
                |token| api.read_request(token),
                |token, resp| {
                    let mut page = api.read_page_at(token, resp)?;
                    pages.take(std::mem::take(&mut page.items));
                    Ok(page)
                },
            )
            .await?;
        }, kv => {
            let mut all = kv.read_all().await?;
            while !all.is_empty() {
                let rest = all.split_off(all.len().min(STOREFRONT_PAGE));
                pages.take(std::mem::replace(&mut all, rest));
            }
        });
        Ok(pages.count())
    }

    /// What the channel shows for `known` SKUs (SKUs it does not list are absent). Amazon
    /// reads them by SKU, 20 a request ([`HttpChannel::<AmazonApi>::read_skus`]); the
    /// other channels page through their listing and keep `known`, so for them call it once
    /// with many SKUs, or use [`Channel::read_listing`].
    pub async fn read_back(&self, known: &[Sku]) -> Result<Vec<Listed>, ReadBackError> {
        if let Channel::Amazon(ch) = self {
            return Ok(ch.read_skus(known).await?);
        }
        let wanted: HashSet<&Sku> = known.iter().collect();
        let mut found = Vec::new();
        self.read_listing(|page| {
            found.extend(page.into_iter().filter(|l| wanted.contains(&l.sku)));
        })
        .await?;
        Ok(found)
    }
}

/// Pages handed to `sink` by [`Channel::read_listing`]. The adapter's page callback is a
/// `Fn` shared across the read's awaits, so the sink sits behind a mutex (never contended).
struct Counted<F> {
    sink: Mutex<(F, u64)>,
}

impl<F: FnMut(Vec<Listed>)> Counted<F> {
    fn new(sink: F) -> Self {
        Self {
            sink: Mutex::new((sink, 0)),
        }
    }

    fn take(&self, items: Vec<Listed>) {
        let mut guard = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        guard.1 += 1;
        (guard.0)(items);
    }

    fn count(self) -> u64 {
        self.sink
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .1
    }
}

fn http<A: ChannelApi>(
    settings: &ChannelSettings,
    api: A,
    base_url: &str,
    auth: Auth,
) -> Result<HttpChannel<A>, TransportError> {
    let share = settings.rate_share.clamp(0.01, 1.0);
    let scaled = |limit: RateLimit| RateLimit {
        capacity: (limit.capacity * share).max(1.0),
        refill_per_sec: limit.refill_per_sec * share,
    };
    let limiter = match settings.rate {
        RateSetting::Documented => RateLimiter::new(api.default_rate_limit().map(scaled)),
        RateSetting::Off => RateLimiter::unlimited(),
        RateSetting::Custom(limit) => RateLimiter::new(Some(scaled(limit))),
    };
    let transport = Transport::new(api.kind(), base_url, auth, settings.timeout, limiter)?;
    Ok(HttpChannel::new(api, transport))
}

/// eBay's header is `Authorization: Bearer <token>`; accept the token with or without it.
fn bearer(token: &secrecy::SecretString) -> String {
    use secrecy::ExposeSecret as _;
    let token = token.expose_secret();
    if token.starts_with("Bearer ") {
        token.to_owned()
    } else {
        format!("Bearer {token}")
    }
}
