//! Spawning a ledger for a test: its own database, its own nats-server, port 0.

use std::collections::BTreeMap;
use std::time::Duration;

use onhand_common::{ChannelPolicy, InventoryEvent};
use onhand_ledger::ingest::IngestConfig;
use onhand_ledger::relay::RelayConfig;
use onhand_ledger::sweeper::SweeperConfig;
use onhand_ledger::{Ledger, LedgerConfig};
use onhand_testkit::{NatsServer, TestDb, eventually};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const WMS_TOKEN: &str = "wms-test-token-0123456789";
pub const SHOP_TOKEN: &str = "shop-test-token-0123456789";
pub const READER_TOKEN: &str = "reader-test-token-0123456789";

pub struct Options {
    pub relay: bool,
    pub sweeper: bool,
    pub ingest: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            relay: true,
            sweeper: false,
            ingest: false,
        }
    }
}

pub struct TestLedger {
    pub db: TestDb,
    pub nats: NatsServer,
    pub base: String,
    pub http: reqwest::Client,
    pub ledger: Ledger,
    pub shutdown: CancellationToken,
    task: Option<JoinHandle<std::io::Result<()>>>,
    seq: std::sync::atomic::AtomicU64,
}

pub fn config(db: &TestDb, nats: &NatsServer, options: &Options) -> LedgerConfig {
    let tokens = json!([
        {"name": "wms", "scopes": ["stock:write", "read"], "token": WMS_TOKEN},
        {"name": "shop", "scopes": ["orders:write", "read"], "token": SHOP_TOKEN},
        {"name": "reader", "scopes": ["read"], "token": READER_TOKEN},
    ]);
    let mut policies = BTreeMap::new();
    policies.insert(
        "shopify".to_owned(),
        ChannelPolicy {
            allocation_pct: 50,
            buffer: 1,
            ..ChannelPolicy::default()
        },
    );
    LedgerConfig {
        database_url: SecretString::from(db.url().to_owned()),
        nats_url: nats.url(),
        listen_addr: "127.0.0.1:0".parse().expect("addr"),
        tokens: onhand_ledger::auth::Tokens::parse(
            "TEST_TOKENS",
            &SecretString::from(tokens.to_string()),
        )
        .expect("tokens"),
        warehouses: ["ams-1", "nyc-1"].into_iter().map(str::to_owned).collect(),
        cart_ttl_secs: 300,
        checkout_ttl_secs: 1800,
        max_ttl_secs: 86_400,
        db_max_connections: 20,
        request_timeout: Duration::from_secs(10),
        relay: options.relay.then(|| RelayConfig {
            poll_interval: Duration::from_millis(100),
            ack_timeout: Duration::from_secs(2),
            ..RelayConfig::default()
        }),
        sweeper: options.sweeper.then(|| SweeperConfig {
            interval: Duration::from_millis(100),
            batch: 100,
        }),
        ingest: options.ingest.then(IngestConfig::default),
        policies,
    }
}

impl TestLedger {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let db = TestDb::create().await;
        let nats = NatsServer::start().await;
        let js = nats.jetstream().await;
        onhand_streams::ensure(&js, &onhand_streams::Definitions::embedded())
            .await
            .expect("streams applied");
        let shutdown = CancellationToken::new();
        let app = onhand_ledger::build(config(&db, &nats, &options), shutdown.clone())
            .await
            .expect("ledger builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let ledger = app.ledger().clone();
        let task = tokio::spawn(app.run());
        Self {
            db,
            nats,
            base,
            http: reqwest::Client::new(),
            ledger,
            shutdown,
            task: Some(task),
            seq: Default::default(),
        }
    }

    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("ledger task").expect("ledger served");
        }
    }

    fn next_key(&self) -> String {
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("key-{n}-{}", uuid::Uuid::new_v4())
    }

    /// POST with a fresh Idempotency-Key; returns status and JSON body.
    pub async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.post_raw(token, path, &self.next_key(), body.to_string())
            .await
    }

    pub async fn post_raw(&self, token: &str, path: &str, key: &str, body: String) -> (u16, Value) {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Idempotency-Key", key)
            .header("Content-Type", "application/json")
            .body(body);
        Self::send(request, token).await
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        Self::send(self.http.get(format!("{}{path}", self.base)), token).await
    }

    pub async fn delete(&self, token: &str, path: &str) -> (u16, Value) {
        Self::send(self.http.delete(format!("{}{path}", self.base)), token).await
    }

    /// Send with the bearer token; the status and the JSON body (null when there is none).
    async fn send(request: reqwest::RequestBuilder, token: &str) -> (u16, Value) {
        let response = request
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn receive(&self, sku: &str, warehouse: &str, qty: i64) -> Value {
        let (status, body) = self
            .post(
                WMS_TOKEN,
                "/v1/receipts",
                json!({"sku": sku, "warehouse": warehouse, "qty": qty}),
            )
            .await;
        assert_eq!(status, 200, "receipt failed: {body}");
        body
    }

    pub async fn reserve(&self, sku: &str, qty: i64, order_id: &str) -> (u16, Value) {
        self.post(
            SHOP_TOKEN,
            "/v1/reservations",
            json!({"sku": sku, "qty": qty, "order_id": order_id, "kind": "cart"}),
        )
        .await
    }

    pub async fn stock(&self, sku: &str) -> Value {
        let (status, body) = self.get(READER_TOKEN, &format!("/v1/stock/{sku}")).await;
        assert_eq!(status, 200, "stock read failed: {body}");
        body
    }

    /// Every database table's row count: to prove a rejected request changed nothing.
    pub async fn fingerprint(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for table in [
            "sku_versions",
            "stock",
            "reservations",
            "orders",
            "order_lines",
            "outbox",
            "idempotency",
            "oversells",
        ] {
            let n: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                    .fetch_one(self.db.pool())
                    .await
                    .expect("count");
            out.push((table.to_owned(), n));
        }
        let stock: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT sku, warehouse, on_hand, reserved, pending FROM stock ORDER BY sku, warehouse",
        )
        .fetch_all(self.db.pool())
        .await
        .expect("stock");
        out.push((format!("{stock:?}"), 0));
        out
    }

    /// The ledger's `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("text")
    }

    /// Wait until every outbox row is marked published.
    pub async fn drained(&self) {
        let pool = self.db.pool().clone();
        eventually(Duration::from_secs(30), "outbox drained", || {
            let pool = pool.clone();
            async move {
                let n: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                        .fetch_one(&pool)
                        .await
                        .ok()?;
                (n == 0).then_some(())
            }
        })
        .await
    }
}

/// Read every message of the INVENTORY stream, in stream order.
pub async fn stream_events(nats: &NatsServer) -> Vec<(u64, InventoryEvent, async_nats::HeaderMap)> {
    use futures::StreamExt;
    let js = nats.jetstream().await;
    let stream = js.get_stream("INVENTORY").await.expect("stream");
    let total = stream.get_info().await.expect("info").state.messages;
    if total == 0 {
        return Vec::new();
    }
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut out = Vec::new();
    while (out.len() as u64) < total {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("stream read in time")
            .expect("message")
            .expect("message ok");
        let seq = message.info().expect("info").stream_sequence;
        let event = onhand_common::decode_event(&message.payload).expect("valid event");
        out.push((seq, event, message.headers.clone().unwrap_or_default()));
    }
    out
}
