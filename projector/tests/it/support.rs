//! A nats-server with the streams applied, a sandbox, in-process projectors, and events
//! published as the ledger's relay publishes them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::Context;
use onhand_channels::ChannelSettings;
use onhand_common::event::HEADER_MSG_ID;
use onhand_common::{EventType, InventoryEvent, Sku, StockState, WarehouseStock};
use onhand_projector::{Projector, ProjectorConfig, ops};
use onhand_sandbox::{Channel as Sandboxed, Sandbox};
use onhand_testkit::{NatsServer, eventually};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const WAREHOUSE: &str = "wh1";

pub struct Harness {
    pub nats: NatsServer,
    pub js: Context,
    pub sandbox: Arc<Sandbox>,
    pub sandbox_base: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A running in-process projector.
pub struct Running {
    pub shutdown: CancellationToken,
    pub task: JoinHandle<()>,
}

impl Running {
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the projector stops within 30 s")
            .expect("the projector task does not panic");
    }
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with_nats_config("").await
    }

    pub async fn start_with_nats_config(config: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let nats = NatsServer::start_with_config(config).await;
        let js = nats.jetstream().await;
        onhand_streams::ensure(&js, &onhand_streams::Definitions::embedded())
            .await
            .expect("streams applied");
        let app = onhand_sandbox::build("127.0.0.1:0".parse().expect("addr"), 7)
            .await
            .expect("sandbox binds");
        let sandbox_base = format!("http://127.0.0.1:{}", app.port());
        let sandbox = app.sandbox();
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run(shutdown.clone()));
        Self {
            nats,
            js,
            sandbox,
            sandbox_base,
            http: reqwest::Client::new(),
            shutdown,
        }
    }

    /// The settings a deployment would give channel `name` of `kind`, pointing at the
    /// sandbox, plus `extra` (policy, rate) settings.
    pub fn settings(&self, kind: Sandboxed, extra: &[(&str, &str)]) -> ChannelSettings {
        let name = kind.as_str();
        let base = format!("{}/{}", self.sandbox_base, name);
        let mut pairs: Vec<(&str, String)> = vec![("BASE_URL", base), ("RATE_LIMIT", "off".into())];
        pairs.extend(onhand_sandbox::credentials::adapter_settings(kind));
        for (k, v) in extra {
            pairs.retain(|(key, _)| key != k);
            pairs.push((k, (*v).to_owned()));
        }
        settings_from(name, &pairs)
    }

    pub fn storefront_settings(&self) -> ChannelSettings {
        settings_from("storefront_kv", &[])
    }

    /// Start a projector in this process; returns once its consumer is bound.
    pub async fn projector(&self, settings: &ChannelSettings, config: ProjectorConfig) -> Running {
        let projector: Projector = ops::projector(&self.js, settings, config)
            .await
            .expect("projector builds");
        let ready = projector.ready_flag();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(projector.run(shutdown.clone()));
        eventually(
            Duration::from_secs(10),
            "the projector binds its consumer",
            || async { ready.load(Ordering::Relaxed).then_some(()) },
        )
        .await;
        Running { shutdown, task }
    }

    /// Seed these SKUs in the sandbox catalogue at quantity 0.
    pub async fn seed_at_zero(&self, channel: Sandboxed, skus: &[String]) {
        let items: Vec<(String, i64)> = skus.iter().map(|s| (s.clone(), 0)).collect();
        self.seed(channel, &items).await;
    }

    /// Wipe the channel's catalogue and write log in the sandbox (the channel loses its
    /// state).
    pub async fn wipe(&self, channel: Sandboxed) {
        let status = self
            .http
            .delete(format!(
                "{}/admin/{}/items",
                self.sandbox_base,
                channel.as_str()
            ))
            .send()
            .await
            .expect("wipe")
            .status();
        assert!(status.is_success(), "wiping {channel:?}: {status}");
    }

    /// Seed the sandbox catalogue: (sku, quantity).
    pub async fn seed(&self, channel: Sandboxed, items: &[(String, i64)]) {
        let body: Vec<serde_json::Value> = items
            .iter()
            .map(|(s, q)| json!({"sku": s, "quantity": q}))
            .collect();
        let status = self
            .http
            .post(format!(
                "{}/admin/{}/items",
                self.sandbox_base,
                channel.as_str()
            ))
            .json(&body)
            .send()
            .await
            .expect("seed")
            .status();
        assert!(status.is_success(), "seeding {channel:?}: {status}");
    }

    /// What the channel would converge to for `sku`.
    pub fn latest(&self, channel: Sandboxed, sku: &str) -> Option<i64> {
        self.sandbox
            .channel(channel)
            .items
            .get(sku)
            .map(onhand_sandbox::state::Item::latest)
    }

    pub fn writes(&self, channel: Sandboxed) -> Vec<onhand_sandbox::state::WriteRecord> {
        self.sandbox.channel(channel).writes.clone()
    }

    /// Publish as the ledger's relay does: subject of the SKU, Nats-Msg-Id = event id.
    pub async fn publish(&self, event: &InventoryEvent) {
        self.publish_raw(
            &event.subject(),
            Some(&event.event_id.to_string()),
            event.to_json(),
        )
        .await;
    }

    pub async fn publish_raw(&self, subject: &str, msg_id: Option<&str>, payload: Vec<u8>) {
        self.publish_with(subject, msg_id, None, payload).await;
    }

    /// Publish with a `traceparent` header, as the relay does for a traced request.
    pub async fn publish_with(
        &self,
        subject: &str,
        msg_id: Option<&str>,
        traceparent: Option<&str>,
        payload: Vec<u8>,
    ) {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(tp) = traceparent {
            headers.insert(onhand_common::event::HEADER_TRACEPARENT, tp);
        }
        if let Some(id) = msg_id {
            headers.insert(HEADER_MSG_ID, id);
        }
        self.js
            .publish_with_headers(subject.to_owned(), headers, payload.into())
            .await
            .expect("publish")
            .await
            .expect("puback");
    }
}

pub fn settings_from(name: &str, pairs: &[(&str, String)]) -> ChannelSettings {
    ChannelSettings::from_settings(name, pairs.iter().cloned()).expect("valid settings")
}

/// A quick projector for tests: small batches, short linger, short ack wait.
pub fn fast_config() -> ProjectorConfig {
    ProjectorConfig {
        max_batch: 500,
        linger: Duration::from_millis(2),
        ack_wait: Duration::from_secs(5),
        commit_interval: Duration::from_secs(1),
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_millis(500),
        lag_interval: Duration::from_millis(200),
        ..ProjectorConfig::default()
    }
}

/// A `stock.received` event leaving `on_hand` units of `sku` in [`WAREHOUSE`], at `version`.
pub fn event(sku: &str, version: i64, on_hand: i64) -> InventoryEvent {
    InventoryEvent {
        schema: 1,
        event_id: uuid::Uuid::now_v7(),
        event_type: EventType::Received,
        occurred_at: time::OffsetDateTime::now_utc(),
        sku: Sku::parse(sku).expect("sku"),
        warehouse: WAREHOUSE.to_owned(),
        qty: 1,
        order_id: None,
        reservation_id: None,
        reason: None,
        stock: StockState {
            version,
            warehouses: BTreeMap::from([(
                WAREHOUSE.to_owned(),
                WarehouseStock {
                    on_hand,
                    reserved: 0,
                    pending: 0,
                },
            )]),
        },
    }
}

pub fn skus(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:05}")).collect()
}
