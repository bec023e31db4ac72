//! A sandbox per test, and admin helpers.

use std::sync::Arc;

use onhand_sandbox::{Channel, Knobs, Sandbox};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub struct TestSandbox {
    pub base: String,
    pub sandbox: Arc<Sandbox>,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for TestSandbox {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestSandbox {
    pub async fn start() -> Self {
        rustls::crypto::ring::default_provider()
            .install_default()
            .ok();
        let app = onhand_sandbox::build("127.0.0.1:0".parse().expect("addr"), 7)
            .await
            .expect("sandbox binds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let sandbox = app.sandbox();
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run(shutdown.clone()));
        Self {
            base,
            sandbox,
            http: reqwest::Client::new(),
            shutdown,
        }
    }

    /// The base URL of one channel's emulated API.
    pub fn url(&self, channel: Channel) -> String {
        format!("{}/{}", self.base, channel.as_str())
    }

    /// Seed items: (sku, quantity). Returns the ids the sandbox gave them.
    pub async fn seed(&self, channel: Channel, items: &[(&str, i64)]) -> Vec<u64> {
        let body: Vec<Value> = items
            .iter()
            .map(|(s, q)| json!({"sku": s, "quantity": q}))
            .collect();
        let response: Value = self
            .http
            .post(format!("{}/admin/{}/items", self.base, channel.as_str()))
            .json(&body)
            .send()
            .await
            .expect("seed")
            .json()
            .await
            .expect("seed json");
        response["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["id"].as_u64().expect("id"))
            .collect()
    }

    pub fn knobs(&self, channel: Channel, knobs: Knobs) {
        self.sandbox.channel(channel).set_knobs(knobs);
    }

    /// The quantity the sandbox would converge to for each SKU.
    pub fn latest(&self, channel: Channel, sku: &str) -> Option<i64> {
        self.sandbox
            .channel(channel)
            .items
            .get(sku)
            .map(|i| i.latest())
    }

    pub fn writes(&self, channel: Channel) -> Vec<onhand_sandbox::state::WriteRecord> {
        self.sandbox.channel(channel).writes.clone()
    }
}

pub fn push(sku: &str, quantity: i64, version: i64) -> onhand_channels::Push {
    onhand_channels::Push {
        sku: onhand_common::Sku::parse(sku).expect("sku"),
        quantity,
        version,
        event_id: uuid::Uuid::now_v7(),
    }
}
