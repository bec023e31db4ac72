//! A configured channel, whatever its kind: what projectors and the reconciler hold.

use reqwest::header::HeaderName;

use crate::amazon::AmazonApi;
use crate::api::ChannelApi;
use crate::bigcommerce::BigCommerceApi;
use crate::config::{ChannelSettings, Connection, RateSetting};
use crate::ebay::{Ebay, EbayConfig};
use crate::http_channel::{HttpChannel, ReadError};
use crate::limiter::RateLimiter;
use crate::push::{ChannelKind, Listed, Push, PushOutcome};
use crate::shopify::Shopify;
use crate::storefront_kv::{BUCKET, StorefrontError, StorefrontKv};
use crate::transport::{Auth, Transport, TransportError};
use crate::webhook::Webhook;
use crate::woocommerce::Woo;

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
            Connection::Ebay { base_url, token } => {
                let bearer = secrecy::SecretString::from(bearer(token));
                Channel::Ebay(http(
                    settings,
                    Ebay::new(EbayConfig::default()),
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
        each_http!(self, ch => ch.push(pushes).await, kv => kv.push(pushes).await)
    }

    /// Every SKU's quantity as the channel shows it.
    pub async fn read_all(&self) -> Result<Vec<Listed>, ReadBackError> {
        Ok(each_http!(self, ch => ch.read_all().await?, kv => kv.read_all().await?))
    }
}

fn http<A: ChannelApi>(
    settings: &ChannelSettings,
    api: A,
    base_url: &str,
    auth: Auth,
) -> Result<HttpChannel<A>, TransportError> {
    let limiter = match settings.rate {
        RateSetting::Documented => RateLimiter::new(api.default_rate_limit()),
        RateSetting::Off => RateLimiter::unlimited(),
        RateSetting::Custom(limit) => RateLimiter::new(Some(limit)),
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
