//! The HTTP side of the load generator: one shared keep-alive client, the loopback-only
//! guard, and the two calls the benchmark makes (`POST /v1/receipts` to seed stock,
//! `POST /v1/reservations` under load), each reduced to an [`Outcome`].

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::{Client, Url};
use serde_json::json;
use uuid::Uuid;

/// Per-request timeout: a request that takes longer counts as a `timeout` error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What one request came back with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered with this status.
    Status(u16),
    /// No answer within [`REQUEST_TIMEOUT`].
    Timeout,
    /// Connection refused, reset, or any other transport failure.
    Transport,
}

impl Outcome {
    /// The label under which a failed outcome is counted.
    pub fn label(self) -> String {
        match self {
            Self::Status(code) => code.to_string(),
            Self::Timeout => "timeout".to_owned(),
            Self::Transport => "transport".to_owned(),
        }
    }
}

/// The ledger API as the benchmark sees it.
#[derive(Debug, Clone)]
pub struct Ledger {
    http: Client,
    receipts: Url,
    reservations: Url,
}

impl Ledger {
    /// A client for the ledger at `base`, which must be a loopback address: the benchmark
    /// never sends load anywhere else.
    pub fn new(base: &str, max_connections: usize) -> anyhow::Result<Self> {
        let base = Url::parse(base).with_context(|| format!("--url {base:?} is not a URL"))?;
        ensure_loopback(&base)?;
        let http = Client::builder()
            .no_proxy()
            .http1_only()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(max_connections)
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            receipts: base.join("/v1/receipts").context("joining /v1/receipts")?,
            reservations: base
                .join("/v1/reservations")
                .context("joining /v1/reservations")?,
            http,
        })
    }

    /// `POST /v1/receipts`: `qty` arrives for `sku` in `warehouse`.
    pub async fn receive(&self, token: &str, sku: &str, warehouse: &str, qty: i64) -> Outcome {
        let body =
            json!({ "sku": sku, "warehouse": warehouse, "qty": qty, "reference": "bench-seed" });
        self.post(&self.receipts, token, &body).await
    }

    /// `POST /v1/reservations`: a one-unit cart reservation with a fresh order id and key.
    pub async fn reserve(&self, token: &str, sku: &str) -> Outcome {
        let body = json!({
            "sku": sku,
            "qty": 1,
            "order_id": format!("bench-{}", Uuid::new_v4()),
            "kind": "cart",
        });
        self.post(&self.reservations, token, &body).await
    }

    async fn post(&self, url: &Url, token: &str, body: &serde_json::Value) -> Outcome {
        let sent = self
            .http
            .post(url.clone())
            .bearer_auth(token)
            .header("Idempotency-Key", Uuid::new_v4().to_string())
            .json(body)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                // Read the body so the connection goes back to the pool; its content is
                // not needed, and a failure here means the exchange did not complete.
                match response.bytes().await {
                    Ok(_) => Outcome::Status(status),
                    Err(err) if err.is_timeout() => Outcome::Timeout,
                    Err(_) => Outcome::Transport,
                }
            }
            Err(err) if err.is_timeout() => Outcome::Timeout,
            Err(_) => Outcome::Transport,
        }
    }
}

fn ensure_loopback(url: &Url) -> anyhow::Result<()> {
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("--url {url} is not a loopback address; the benchmark only loads a local ledger");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_accepted() {
        let check = |url: &str| ensure_loopback(&Url::parse(url).expect("test URL parses"));
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://localhost:1",
            "http://[::1]:9",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:8080",
            "http://example.com",
            "http://[::2]:9",
            "unix:/tmp/sock",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
