//! End to end: calls to the ledger's API reach every channel in the sandbox as the
//! channel's policy quantity, the same number the ledger's explain endpoint computes.

use std::collections::BTreeMap;
use std::time::Duration;

use onhand_common::ChannelPolicy;
use onhand_sandbox::Channel as Sandboxed;
use onhand_testkit::{TestDb, eventually};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{Harness, fast_config};

const WMS: &str = "e2e-wms-token-0123456789";
const SHOP: &str = "e2e-shop-token-0123456789";

/// (channel, policy settings) as both the ledger and the projectors are configured.
const POLICIES: &[(Sandboxed, &[(&str, &str)])] = &[
    (
        Sandboxed::Shopify,
        &[("ALLOCATION_PCT", "80"), ("BUFFER", "1")],
    ),
    (Sandboxed::Amazon, &[("WAREHOUSES", "ams-1")]),
    (Sandboxed::Ebay, &[("MAX_LISTED", "5"), ("ZERO_BELOW", "2")]),
    (Sandboxed::Woocommerce, &[]),
    (Sandboxed::Bigcommerce, &[("BUFFER", "3")]),
    (Sandboxed::Webhook, &[("ALLOCATION_PCT", "50")]),
];

struct Api {
    base: String,
    http: reqwest::Client,
    n: std::sync::atomic::AtomicU64,
}

impl Api {
    async fn post(&self, token: &str, path: &str, body: Value) -> Value {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("Idempotency-Key", format!("e2e-{n}"))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(SHOP)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json")
    }
}

#[tokio::test]
async fn ledger_calls_reach_every_channel_as_its_policy_quantity() {
    let h = Harness::start().await;
    let db = TestDb::create().await;
    let js = h.nats.jetstream().await;
    let mut policies = BTreeMap::new();
    for (kind, pairs) in POLICIES {
        policies.insert(kind.as_str().to_owned(), h.settings(*kind, pairs).policy);
    }
    policies.insert("storefront_kv".to_owned(), ChannelPolicy::default());
    let tokens = json!([
        {"name": "wms", "scopes": ["stock:write", "read"], "token": WMS},
        {"name": "shop", "scopes": ["orders:write", "read"], "token": SHOP},
    ]);
    let shutdown = CancellationToken::new();
    let config = onhand_ledger::LedgerConfig {
        database_url: SecretString::from(db.url().to_owned()),
        nats_url: h.nats.url(),
        listen_addr: "127.0.0.1:0".parse().expect("addr"),
        tokens: onhand_ledger::auth::Tokens::parse("T", &SecretString::from(tokens.to_string()))
            .expect("tokens"),
        warehouses: ["ams-1", "nyc-1"].into_iter().map(str::to_owned).collect(),
        cart_ttl_secs: 300,
        checkout_ttl_secs: 1800,
        max_ttl_secs: 86_400,
        db_max_connections: 5,
        request_timeout: Duration::from_secs(10),
        relay: Some(onhand_ledger::relay::RelayConfig::default()),
        sweeper: None,
        ingest: None,
        policies,
    };
    let app = onhand_ledger::build(config, shutdown.clone())
        .await
        .expect("ledger");
    let api = Api {
        base: format!("http://127.0.0.1:{}", app.port()),
        http: reqwest::Client::new(),
        n: Default::default(),
    };
    let ledger = tokio::spawn(app.run());
    drop(js);

    let skus = ["E2E-TEE-S", "E2E-TEE-M", "E2E-MUG"];
    let mut running = Vec::new();
    for (kind, pairs) in POLICIES {
        let catalog: Vec<(String, i64)> = skus.iter().map(|s| ((*s).to_owned(), 0)).collect();
        h.seed(*kind, &catalog).await;
        running.push(h.projector(&h.settings(*kind, pairs), fast_config()).await);
    }
    running.push(h.projector(&h.storefront_settings(), fast_config()).await);

    // A morning of trading.
    for (sku, ams, nyc) in [
        ("E2E-TEE-S", 10, 4),
        ("E2E-TEE-M", 3, 9),
        ("E2E-MUG", 20, 0),
    ] {
        api.post(
            WMS,
            "/v1/receipts",
            json!({"sku": sku, "warehouse": "ams-1", "qty": ams}),
        )
        .await;
        if nyc > 0 {
            api.post(
                WMS,
                "/v1/receipts",
                json!({"sku": sku, "warehouse": "nyc-1", "qty": nyc}),
            )
            .await;
        }
    }
    let cart = api
        .post(
            SHOP,
            "/v1/reservations",
            json!({"sku": "E2E-TEE-S", "qty": 2, "order_id": "web-1", "kind": "cart"}),
        )
        .await;
    let rid = cart["reservation_id"]
        .as_str()
        .expect("reservation id")
        .to_owned();
    api.post(
        SHOP,
        "/v1/orders",
        json!({"order_id": "web-1", "channel": "storefront",
               "lines": [{"sku": "E2E-TEE-S", "qty": 2, "reservation_id": rid}]}),
    )
    .await;
    api.post(
        SHOP,
        "/v1/orders",
        json!({"order_id": "amz-1", "channel": "amazon", "lines": [{"sku": "E2E-TEE-M", "qty": 4}]}),
    )
    .await;
    api.post(
        WMS,
        "/v1/shipments",
        json!({"order_id": "web-1", "lines": [{"sku": "E2E-TEE-S", "warehouse": "ams-1", "qty": 2}]}),
    )
    .await;
    api.post(
        SHOP,
        "/v1/reservations",
        json!({"sku": "E2E-MUG", "qty": 17, "order_id": "web-2", "kind": "checkout"}),
    )
    .await;

    for (kind, _) in POLICIES {
        for sku in skus {
            let explained = api
                .get(&format!(
                    "/v1/stock/{sku}/explain?channel={}",
                    kind.as_str()
                ))
                .await;
            let expected = explained["quantity"]
                .as_i64()
                .or_else(|| explained["steps"]["quantity"].as_i64())
                .unwrap_or_else(|| panic!("explain {sku} {kind:?}: {explained}"));
            eventually(
                Duration::from_secs(20),
                &format!("{kind:?} shows {expected} for {sku}"),
                || async { (h.latest(*kind, sku) == Some(expected)).then_some(()) },
            )
            .await;
        }
    }
    let kv = onhand_channels::storefront_kv::StorefrontKv::new(
        h.js.get_key_value(onhand_channels::storefront_kv::BUCKET)
            .await
            .expect("bucket"),
    );
    for sku in skus {
        let stock = api.get(&format!("/v1/stock/{sku}")).await;
        let available = stock["available"].as_i64().expect("available");
        let sku = onhand_common::Sku::parse(sku).expect("sku");
        eventually(
            Duration::from_secs(20),
            "the storefront shows the available units",
            || async {
                kv.get(&sku)
                    .await
                    .ok()
                    .flatten()
                    .filter(|a| a.quantity == available)
                    .map(drop)
            },
        )
        .await;
    }
    for r in running {
        r.stop().await;
    }
    shutdown.cancel();
    ledger
        .await
        .expect("ledger task")
        .expect("ledger stopped cleanly");
}
