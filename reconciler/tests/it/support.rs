//! A nats-server with the streams applied, a fresh database with the ledger's migrations,
//! the sandbox, and on demand the ledger itself (HTTP API + relay) and projectors, all in
//! this process; plus the reconciler against them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::Context;
use onhand_channels::ChannelSettings;
use onhand_projector::{Projector, ProjectorConfig, ops};
use onhand_reconciler::{ReconcileConfig, Reconciler, Report, Verdict};
use onhand_sandbox::{Channel as Sandboxed, Sandbox};
use onhand_testkit::{NatsServer, TestDb, eventually};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const WMS: &str = "reconcile-wms-token-0123456789";
pub const WAREHOUSES: [&str; 2] = ["ams-1", "nyc-1"];

pub struct Harness {
    pub nats: NatsServer,
    pub js: Context,
    pub db: TestDb,
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
    shutdown: CancellationToken,
    task: JoinHandle<()>,
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
        let _ = rustls::crypto::ring::default_provider().install_default();
        let nats = NatsServer::start().await;
        let js = nats.jetstream().await;
        onhand_streams::ensure(&js, &onhand_streams::Definitions::embedded())
            .await
            .expect("streams applied");
        let db = TestDb::create().await;
        onhand_ledger::app::MIGRATOR
            .run(db.pool())
            .await
            .expect("ledger migrations");
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
            db,
            sandbox,
            sandbox_base,
            http: reqwest::Client::new(),
            shutdown,
        }
    }

    /// The ledger (HTTP API and outbox relay) on this harness's database and NATS.
    pub async fn ledger(&self) -> Api {
        let tokens = json!([{"name": "wms", "scopes": ["stock:write", "read"], "token": WMS}]);
        let config = onhand_ledger::LedgerConfig {
            database_url: SecretString::from(self.db.url().to_owned()),
            nats_url: self.nats.url(),
            listen_addr: "127.0.0.1:0".parse().expect("addr"),
            tokens: onhand_ledger::auth::Tokens::parse(
                "T",
                &SecretString::from(tokens.to_string()),
            )
            .expect("tokens"),
            warehouses: WAREHOUSES.into_iter().map(str::to_owned).collect(),
            cart_ttl_secs: 300,
            checkout_ttl_secs: 1800,
            max_ttl_secs: 86_400,
            db_max_connections: 5,
            request_timeout: Duration::from_secs(10),
            relay: Some(onhand_ledger::relay::RelayConfig::default()),
            sweeper: None,
            ingest: None,
            policies: BTreeMap::new(),
        };
        let app = onhand_ledger::build(config, self.shutdown.clone())
            .await
            .expect("ledger");
        let api = Api {
            base: format!("http://127.0.0.1:{}", app.port()),
            http: self.http.clone(),
            n: AtomicU64::new(0),
        };
        tokio::spawn(app.run());
        api
    }

    /// The settings a deployment would give channel `kind`, pointing at `base` (the
    /// sandbox when `None`), plus `extra` settings.
    pub fn settings_at(
        &self,
        kind: Sandboxed,
        base: Option<&str>,
        extra: &[(&str, &str)],
    ) -> ChannelSettings {
        let name = kind.as_str();
        let base = format!("{}/{}", base.unwrap_or(&self.sandbox_base), name);
        let mut pairs: Vec<(&str, String)> = vec![("BASE_URL", base), ("RATE_LIMIT", "off".into())];
        pairs.extend(onhand_sandbox::credentials::adapter_settings(kind));
        for (k, v) in extra {
            pairs.retain(|(key, _)| key != k);
            pairs.push((k, (*v).to_owned()));
        }
        settings_from(name, &pairs)
    }

    pub fn settings(&self, kind: Sandboxed) -> ChannelSettings {
        self.settings_at(kind, None, &[])
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

    /// The reconciler on this harness, with `settle_secs` for every channel.
    pub async fn reconciler(&self, settle_secs: u64) -> Reconciler {
        self.reconciler_with(|c| c.settle = Some(Duration::from_secs(settle_secs)))
            .await
    }

    pub async fn reconciler_with(&self, tune: impl FnOnce(&mut ReconcileConfig)) -> Reconciler {
        let mut config = ReconcileConfig::new(
            SecretString::from(self.db.url().to_owned()),
            self.nats.url(),
        );
        tune(&mut config);
        Reconciler::new(self.db.pool().clone(), self.js.clone(), config)
            .await
            .expect("reconciler")
    }

    /// Seed a sandbox catalogue: (sku, quantity).
    pub async fn seed(&self, channel: Sandboxed, items: &[(String, i64)]) {
        let mut state = self.sandbox.channel(channel);
        for (sku, quantity) in items {
            state.seed_item(sku, *quantity, None);
        }
    }

    /// Change a quantity behind the adapter's back, through the sandbox's admin API.
    pub async fn drift(&self, channel: Sandboxed, sku: &str, quantity: i64) {
        let status = self
            .http
            .put(format!(
                "{}/admin/{}/items/{sku}",
                self.sandbox_base,
                channel.as_str()
            ))
            .json(&json!({"quantity": quantity}))
            .send()
            .await
            .expect("admin call")
            .status();
        assert!(status.is_success(), "drift {channel:?} {sku}: {status}");
    }

    /// What the channel will show for `sku`, delays ignored.
    pub fn latest(&self, channel: Sandboxed, sku: &str) -> Option<i64> {
        self.sandbox
            .channel(channel)
            .items
            .get(sku)
            .map(onhand_sandbox::state::Item::latest)
    }

    /// Set a sandbox channel's knobs through the admin API.
    pub async fn knobs(&self, channel: Sandboxed, knobs: Value) {
        let status = self
            .http
            .put(format!(
                "{}/admin/{}/knobs",
                self.sandbox_base,
                channel.as_str()
            ))
            .json(&knobs)
            .send()
            .await
            .expect("admin call")
            .status();
        assert!(status.is_success(), "knobs {channel:?}: {status}");
    }

    /// Stock written straight into the ledger's tables (for tests that need no traffic):
    /// `on_hand` units of each SKU in the first warehouse, at version 1.
    pub async fn seed_ledger(&self, skus: &[(String, i64)]) {
        let pool = self.db.pool();
        for w in WAREHOUSES {
            sqlx::query("INSERT INTO warehouses (id) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(w)
                .execute(pool)
                .await
                .expect("warehouse");
        }
        let names: Vec<&str> = skus.iter().map(|(s, _)| s.as_str()).collect();
        let on_hand: Vec<i64> = skus.iter().map(|(_, q)| *q).collect();
        sqlx::query(
            "INSERT INTO sku_versions (sku, version, warehouses) SELECT s, 1, 1 FROM UNNEST($1::text[]) s",
        )
        .bind(&names)
        .execute(pool)
        .await
        .expect("sku_versions");
        sqlx::query(
            "INSERT INTO stock (sku, warehouse, on_hand) SELECT s, $3, q FROM UNNEST($1::text[], $2::bigint[]) AS t(s, q)",
        )
        .bind(&names)
        .bind(&on_hand)
        .bind(WAREHOUSES[0])
        .execute(pool)
        .await
        .expect("stock");
    }
}

pub fn settings_from(name: &str, pairs: &[(&str, String)]) -> ChannelSettings {
    ChannelSettings::from_settings(name, pairs.iter().cloned()).expect("valid settings")
}

/// A quick projector: small batches, short linger and ack wait.
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

pub fn skus(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
}

/// The ledger's HTTP API.
pub struct Api {
    pub base: String,
    http: reqwest::Client,
    n: AtomicU64,
}

impl Api {
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let n = self.n.fetch_add(1, Ordering::Relaxed);
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(WMS)
            .header("Idempotency-Key", format!("reconcile-{n}"))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// Receive `qty` units of `sku` into the first warehouse; the SKU's new version.
    pub async fn receive(&self, sku: &str, qty: i64) -> i64 {
        let body = self
            .post(
                "/v1/receipts",
                json!({"sku": sku, "warehouse": WAREHOUSES[0], "qty": qty}),
            )
            .await;
        body["stock"]["version"].as_i64().expect("version")
    }
}

/// The SKUs the report lists with `verdict` (the report keeps every row in these tests).
pub fn with_verdict(report: &Report, verdict: Verdict) -> Vec<String> {
    let mut skus: Vec<String> = report
        .rows
        .iter()
        .filter(|r| r.verdict == verdict)
        .map(|r| r.sku.clone())
        .collect();
    skus.sort();
    skus
}
