//! Sending, written once for every HTTP channel: base URL, auth header, timeout, the
//! channel's rate limiter, W3C trace context, and one counter per request outcome.

use std::time::Duration;

use metrics::{counter, histogram};
use reqwest::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use crate::api::{ApiRequest, ApiResponse};
use crate::limiter::RateLimiter;
use crate::push::ChannelKind;

/// How the channel authenticates us. The secret never reaches a log or a Debug print (nor
/// does the WooCommerce consumer key, which is half of the credential).
#[derive(Clone)]
pub enum Auth {
    None,
    /// A static header: `X-Shopify-Access-Token`, `X-Auth-Token`, `x-amz-access-token`,
    /// `Authorization: Bearer ...` (give the full value).
    Header {
        name: HeaderName,
        value: SecretString,
    },
    /// HTTP Basic (WooCommerce consumer key and secret).
    Basic {
        user: String,
        password: SecretString,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Header { name, .. } => f
                .debug_struct("Header")
                .field("name", name)
                .field("value", &"[REDACTED]")
                .finish(),
            Self::Basic { .. } => f
                .debug_struct("Basic")
                .field("user", &"[REDACTED]")
                .field("password", &"[REDACTED]")
                .finish(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{channel}: request timed out after {timeout:?}")]
    Timeout {
        channel: ChannelKind,
        timeout: Duration,
    },
    #[error("{channel}: request failed")]
    Request {
        channel: ChannelKind,
        #[source]
        source: reqwest::Error,
    },
    #[error("{channel}: invalid header {name}")]
    Header { channel: ChannelKind, name: String },
}

#[derive(Debug)]
pub struct Transport {
    channel: ChannelKind,
    client: reqwest::Client,
    base_url: String,
    auth: Auth,
    timeout: Duration,
    pub limiter: RateLimiter,
}

impl Transport {
    pub fn new(
        channel: ChannelKind,
        base_url: impl Into<String>,
        auth: Auth,
        timeout: Duration,
        limiter: RateLimiter,
    ) -> Result<Self, TransportError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("onhand/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| TransportError::Request { channel, source })?;
        Ok(Self {
            channel,
            client,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            auth,
            timeout,
            limiter,
        })
    }

    pub fn channel(&self) -> ChannelKind {
        self.channel
    }

    /// Wait for the rate limiter, send, read the whole body. Non-2xx statuses are not
    /// errors here: classification is the adapter's.
    pub async fn send(&self, request: &ApiRequest) -> Result<ApiResponse, TransportError> {
        self.limiter.acquire(request.cost).await;
        let channel = self.channel;
        let url = format!("{}{}", self.base_url, request.path);
        let mut builder = self
            .client
            .request(request.method.clone(), &url)
            .timeout(self.timeout);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let Some(tp) = onhand_common::telemetry::current_traceparent() {
            builder = builder.header(onhand_common::event::HEADER_TRACEPARENT, tp);
        }
        builder = match &self.auth {
            Auth::None => builder,
            Auth::Header { name, value } => {
                let mut value = HeaderValue::from_str(value.expose_secret()).map_err(|_| {
                    TransportError::Header {
                        channel,
                        name: name.to_string(),
                    }
                })?;
                value.set_sensitive(true);
                builder.header(name.clone(), value)
            }
            Auth::Basic { user, password } => {
                builder.basic_auth(user, Some(password.expose_secret()))
            }
        };
        if let Some(body) = &request.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let started = std::time::Instant::now();
        let result = builder.send().await;
        let response = match result {
            Ok(response) => response,
            Err(source) => {
                let status = if source.is_timeout() {
                    "timeout"
                } else {
                    "error"
                };
                counter!("onhand_channel_requests_total", "channel" => channel.as_str(), "status" => status).increment(1);
                return Err(if source.is_timeout() {
                    TransportError::Timeout {
                        channel,
                        timeout: self.timeout,
                    }
                } else {
                    TransportError::Request { channel, source }
                });
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|source| {
            counter!("onhand_channel_requests_total", "channel" => channel.as_str(), "status" => "error").increment(1);
            if source.is_timeout() {
                TransportError::Timeout {
                    channel,
                    timeout: self.timeout,
                }
            } else {
                TransportError::Request { channel, source }
            }
        })?;
        counter!("onhand_channel_requests_total", "channel" => channel.as_str(), "status" => status.to_string()).increment(1);
        histogram!("onhand_channel_request_seconds", "channel" => channel.as_str())
            .record(started.elapsed().as_secs_f64());
        tracing::debug!(channel = %channel, method = %request.method, path = %request.path, status, "channel request");
        Ok(ApiResponse {
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod auth_tests {
    use super::*;

    #[test]
    fn debug_output_holds_no_credential() {
        let basic = Auth::Basic {
            user: "ck_live_1234".to_owned(),
            password: SecretString::from("cs_live_5678".to_owned()),
        };
        let header = Auth::Header {
            name: HeaderName::from_static("x-auth-token"),
            value: SecretString::from("tok_9999".to_owned()),
        };
        let printed = format!("{basic:?} {header:?}");
        for secret in ["ck_live_1234", "cs_live_5678", "tok_9999"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("x-auth-token"), "{printed}");
    }
}
