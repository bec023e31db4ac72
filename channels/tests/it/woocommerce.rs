//! The WooCommerce adapter against the sandbox's REST v3 emulator, over HTTP.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use onhand_channels::woocommerce::{Woo, WooConfig};
use onhand_channels::{
    Auth, ChannelApi, ChannelKind, HttpChannel, PushOutcome, RateLimiter, Transport,
};
use onhand_sandbox::state::Faults;
use onhand_sandbox::woocommerce::{CONSUMER_KEY, CONSUMER_SECRET};
use onhand_sandbox::{Channel, Knobs};
use onhand_testkit::eventually;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::{TestSandbox, push};

fn woo_with(sb: &TestSandbox, secret: &str) -> HttpChannel<Woo> {
    let api = Woo::new(WooConfig::default());
    let limiter = RateLimiter::new(api.default_rate_limit());
    let transport = Transport::new(
        ChannelKind::Woocommerce,
        sb.url(Channel::Woocommerce),
        Auth::Basic {
            user: CONSUMER_KEY.to_owned(),
            password: SecretString::from(secret.to_owned()),
        },
        Duration::from_secs(5),
        limiter,
    )
    .expect("transport");
    HttpChannel::new(api, transport)
}

fn woo(sb: &TestSandbox) -> HttpChannel<Woo> {
    woo_with(sb, CONSUMER_SECRET)
}

fn skus(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:05}")).collect()
}

/// Seed `(sku, quantity, parent sku)`; returns each SKU's id.
async fn seed(sb: &TestSandbox, items: &[(&str, i64, Option<&str>)]) -> HashMap<String, u64> {
    let mut ids: HashMap<String, u64> = HashMap::new();
    // Parents first, so variations can name their ids.
    for pass in [false, true] {
        let body: Vec<Value> = items
            .iter()
            .filter(|(_, _, parent)| parent.is_some() == pass)
            .map(|(sku, q, parent)| {
                json!({"sku": sku, "quantity": q, "parent_id": parent.map(|p| ids[p])})
            })
            .collect();
        for chunk in body.chunks(2_500) {
            let resp: Value = sb
                .http
                .post(format!("{}/admin/woocommerce/items", sb.base))
                .json(chunk)
                .send()
                .await
                .expect("seed")
                .json()
                .await
                .expect("seed json");
            for item in resp["items"].as_array().expect("items") {
                ids.insert(
                    item["sku"].as_str().expect("sku").to_owned(),
                    item["id"].as_u64().expect("id"),
                );
            }
        }
    }
    ids
}

async fn raw(sb: &TestSandbox, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
    let resp = sb
        .http
        .request(
            method,
            format!("{}/wp-json/wc/v3{path}", sb.url(Channel::Woocommerce)),
        )
        .basic_auth(CONSUMER_KEY, Some(CONSUMER_SECRET))
        .json(body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json body"))
}

fn faults(faults: Faults) -> Knobs {
    Knobs {
        faults,
        ..Knobs::default()
    }
}

#[tokio::test]
async fn woo_batches_split_at_100() {
    let sb = TestSandbox::start().await;
    let skus = skus("WB", 250);
    let items: Vec<_> = skus.iter().map(|s| (s.as_str(), 0, None)).collect();
    let ids = seed(&sb, &items).await;
    let ch = woo(&sb);
    let pushes: Vec<_> = skus
        .iter()
        .enumerate()
        .map(|(i, s)| push(s, i as i64 + 1, 1))
        .collect();

    let outcomes = ch.push(&pushes).await;

    assert!(
        outcomes.iter().all(|o| *o == PushOutcome::Applied),
        "{outcomes:?}"
    );
    assert_eq!(sb.latest(Channel::Woocommerce, "WB-00249"), Some(250));
    assert_eq!(sb.writes(Channel::Woocommerce).len(), 250);
    // The cap is real: 101 items are refused whole.
    let update: Vec<Value> = skus[..101]
        .iter()
        .map(|s| json!({"id": ids[s], "manage_stock": true, "stock_quantity": 1}))
        .collect();
    let (status, body) = raw(
        &sb,
        reqwest::Method::POST,
        "/products/batch",
        &json!({ "update": update }),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(body["code"], "woocommerce_rest_request_entity_too_large");
}

#[tokio::test]
async fn woo_a_store_limit_below_ours_is_found_by_halving_not_dead_lettered() {
    let sb = TestSandbox::start().await;
    let skus = skus("WL", 150);
    let items: Vec<_> = skus.iter().map(|s| (s.as_str(), 0, None)).collect();
    seed(&sb, &items).await;
    // Configured for 150 a batch; the store takes 100 (the sandbox's limit), answering 413.
    let api = Woo::new(WooConfig { batch_limit: 150 });
    let transport = Transport::new(
        ChannelKind::Woocommerce,
        sb.url(Channel::Woocommerce),
        Auth::Basic {
            user: CONSUMER_KEY.to_owned(),
            password: SecretString::from(CONSUMER_SECRET.to_owned()),
        },
        Duration::from_secs(5),
        RateLimiter::unlimited(),
    )
    .expect("transport");
    let ch = HttpChannel::new(api, transport);
    let pushes: Vec<_> = skus
        .iter()
        .enumerate()
        .map(|(i, s)| push(s, i as i64 + 1, 1))
        .collect();

    let outcomes = ch.push(&pushes).await;

    assert!(
        outcomes.iter().all(|o| *o == PushOutcome::Applied),
        "{outcomes:?}"
    );
    assert_eq!(sb.latest(Channel::Woocommerce, "WL-00149"), Some(150));
    assert_eq!(sb.writes(Channel::Woocommerce).len(), 150);
}

#[tokio::test]
async fn woo_a_product_recreated_under_a_new_id_is_looked_up_again() {
    let sb = TestSandbox::start().await;
    let first = seed(&sb, &[("REMADE", 0, None)]).await["REMADE"];
    let ch = woo(&sb);
    assert_eq!(
        ch.push(&[push("REMADE", 3, 1)]).await,
        vec![PushOutcome::Applied]
    );
    // The merchant deletes the product and creates it again: same SKU, new id. The
    // adapter still has the old id cached.
    sb.http
        .delete(format!("{}/admin/woocommerce/items", sb.base))
        .send()
        .await
        .expect("wipe");
    let second = seed(&sb, &[("REMADE", 0, None)]).await["REMADE"];
    assert_ne!(first, second);

    let outcomes = ch.push(&[push("REMADE", 5, 2)]).await;

    assert_eq!(
        outcomes,
        vec![PushOutcome::Applied],
        "an id the store refuses is looked up again, not dead-lettered"
    );
    assert_eq!(sb.latest(Channel::Woocommerce, "REMADE"), Some(5));

    // Refused again with the id just looked up: final, after exactly one more lookup.
    sb.knobs(
        Channel::Woocommerce,
        Knobs {
            rate: Some(onhand_sandbox::state::RateKnob {
                capacity: 1_000.0,
                refill_per_sec: 0.000_001,
            }),
            ..faults(Faults {
                item_error: 1.0,
                ..Faults::default()
            })
        },
    );
    let outcomes = ch.push(&[push("REMADE", 6, 3)]).await;
    assert!(
        matches!(&outcomes[0], PushOutcome::Permanent { code, .. }
            if code == "woocommerce_rest_product_invalid_id"),
        "{outcomes:?}"
    );
    let (left, capacity, _) = sb
        .sandbox
        .channel(Channel::Woocommerce)
        .bucket_status()
        .expect("bucket");
    assert_eq!(
        (capacity - left).round(),
        3.0,
        "write, lookup, write: no loop"
    );
}

#[tokio::test]
async fn woo_variations_are_written_through_their_parents_endpoint() {
    let sb = TestSandbox::start().await;
    let ids = seed(
        &sb,
        &[
            ("TEE", 0, None),
            ("MUG", 0, None),
            ("SIMPLE", 0, None),
            ("TEE-S", 0, Some("TEE")),
            ("TEE-M", 0, Some("TEE")),
            ("MUG-RED", 0, Some("MUG")),
        ],
    )
    .await;
    let ch = woo(&sb);
    // One batch mixing products and two parents' variations.
    let pushes = [
        push("TEE-S", 1, 1),
        push("SIMPLE", 2, 1),
        push("MUG-RED", 3, 1),
        push("TEE-M", 4, 1),
        push("TEE", 5, 1),
    ];

    let outcomes = ch.push(&pushes).await;

    assert_eq!(outcomes, vec![PushOutcome::Applied; 5]);
    for p in &pushes {
        assert_eq!(
            sb.latest(Channel::Woocommerce, p.sku.as_str()),
            Some(p.quantity)
        );
    }
    // Three requests (products, TEE's variations, MUG's variations), in first-seen order.
    let order: Vec<String> = sb
        .writes(Channel::Woocommerce)
        .into_iter()
        .map(|w| w.sku)
        .collect();
    assert_eq!(order, vec!["TEE-S", "TEE-M", "SIMPLE", "TEE", "MUG-RED"]);
    // The products endpoint does refuse a variation, so the split is what made it work.
    let (status, body) = raw(
        &sb,
        reqwest::Method::POST,
        "/products/batch",
        &json!({"update": [{"id": ids["TEE-S"], "manage_stock": true, "stock_quantity": 9}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["update"][0]["error"]["code"],
        "woocommerce_rest_product_invalid_id"
    );
}

#[tokio::test]
async fn woo_per_item_errors_fan_out_and_are_not_retried() {
    let sb = TestSandbox::start().await;
    let known = skus("WF", 60);
    let items: Vec<_> = known.iter().map(|s| (s.as_str(), 100, None)).collect();
    seed(&sb, &items).await;
    sb.knobs(
        Channel::Woocommerce,
        faults(Faults {
            item_error: 0.3,
            ..Faults::default()
        }),
    );
    let ch = woo(&sb);
    let mut pushes: Vec<_> = known
        .iter()
        .enumerate()
        .map(|(i, s)| push(s, i as i64, 1))
        .collect();
    pushes.insert(3, push("WF-MISSING", 1, 1));

    let outcomes = ch.push(&pushes).await;

    let (mut applied, mut refused) = (0, 0);
    for (p, o) in pushes.iter().zip(&outcomes) {
        let sku = p.sku.as_str();
        let latest = sb.latest(Channel::Woocommerce, sku);
        match o {
            PushOutcome::Deferred { reason, .. } => {
                panic!("nothing here is over a budget: {reason}")
            }
            PushOutcome::Applied => {
                applied += 1;
                assert_eq!(latest, Some(p.quantity), "{sku}");
            }
            PushOutcome::Permanent { code, .. } if sku == "WF-MISSING" => {
                assert_eq!(code, "unknown_sku");
            }
            PushOutcome::Permanent { code, .. } => {
                refused += 1;
                assert_eq!(code, "woocommerce_rest_product_invalid_id", "{sku}");
                assert_eq!(latest, Some(100), "{sku} unchanged");
            }
            PushOutcome::Transient { reason, .. } => panic!("{sku}: {reason}"),
        }
    }
    assert!(
        applied > 0 && refused > 0,
        "applied {applied}, refused {refused}"
    );
    // Every write the sandbox took is an applied SKU's, sent once.
    assert_eq!(sb.writes(Channel::Woocommerce).len(), applied);
}

#[tokio::test]
async fn woo_host_throttling_and_outages_are_retried_until_applied() {
    let sb = TestSandbox::start().await;
    let skus = skus("WR", 150);
    let items: Vec<_> = skus.iter().map(|s| (s.as_str(), 0, None)).collect();
    seed(&sb, &items).await;
    sb.knobs(
        Channel::Woocommerce,
        faults(Faults {
            http_429: 0.3,
            http_5xx: 0.3,
            ..Faults::default()
        }),
    );
    let ch = woo(&sb);
    let state = RefCell::new((skus.iter().map(|s| push(s, 7, 1)).collect::<Vec<_>>(), 0));

    eventually(Duration::from_secs(20), "every SKU applied", || {
        let (ch, state) = (&ch, &state);
        async move {
            let batch = std::mem::take(&mut state.borrow_mut().0);
            let outcomes = ch.push(&batch).await;
            let mut state = state.borrow_mut();
            for (p, o) in batch.into_iter().zip(outcomes) {
                match o {
                    PushOutcome::Deferred { reason, .. } => {
                        panic!("nothing here is over a budget: {reason}")
                    }
                    PushOutcome::Applied => {}
                    PushOutcome::Transient { .. } => {
                        state.1 += 1;
                        state.0.push(p);
                    }
                    PushOutcome::Permanent { code, message } => {
                        panic!("429/503 must not be permanent: {code} {message}")
                    }
                }
            }
            state.0.is_empty().then_some(())
        }
    })
    .await;

    assert!(state.borrow().1 > 0, "faults were injected");
    for s in &skus {
        assert_eq!(sb.latest(Channel::Woocommerce, s), Some(7), "{s}");
    }
}

#[tokio::test]
async fn woo_store_without_stock_management_is_permanent() {
    let sb = TestSandbox::start().await;
    seed(&sb, &[("NOSTOCK", 4, None)]).await;
    let ch = woo(&sb);
    let (status, _) = raw(
        &sb,
        reqwest::Method::PUT,
        "/settings/products/woocommerce_manage_stock",
        &json!({"value": "no"}),
    )
    .await;
    assert_eq!(status, 200);

    let outcomes = ch.push(&[push("NOSTOCK", 9, 1)]).await;

    assert!(
        matches!(&outcomes[0], PushOutcome::Permanent { code, .. } if code == "stock_management_disabled"),
        "{outcomes:?}"
    );
    assert_eq!(sb.latest(Channel::Woocommerce, "NOSTOCK"), Some(4));
    assert!(sb.writes(Channel::Woocommerce).is_empty());
    raw(
        &sb,
        reqwest::Method::PUT,
        "/settings/products/woocommerce_manage_stock",
        &json!({"value": "yes"}),
    )
    .await;
    assert_eq!(
        ch.push(&[push("NOSTOCK", 9, 2)]).await,
        vec![PushOutcome::Applied]
    );
}

#[tokio::test]
async fn woo_emulator_applies_stock_only_when_managed() {
    let sb = TestSandbox::start().await;
    let ids = seed(&sb, &[("MANAGED", 1, None)]).await;
    let id = ids["MANAGED"];
    let update = |body: Value| {
        let sb = &sb;
        async move {
            let (status, resp) = raw(
                sb,
                reqwest::Method::POST,
                "/products/batch",
                &json!({ "update": [body] }),
            )
            .await;
            assert_eq!(status, 200);
            resp["update"][0].clone()
        }
    };

    let off = update(json!({"id": id, "manage_stock": false, "stock_quantity": 5})).await;
    assert_eq!(off["stock_quantity"], Value::Null, "reset to ''");
    let still_off = update(json!({"id": id, "stock_quantity": 6})).await;
    assert_eq!(still_off["stock_quantity"], Value::Null);
    assert!(sb.writes(Channel::Woocommerce).is_empty());
    let on = update(json!({"id": id, "manage_stock": true, "stock_quantity": 7})).await;
    assert_eq!(on["stock_quantity"], 7);
    let stays_on = update(json!({"id": id, "stock_quantity": 8})).await;
    assert_eq!(stays_on["stock_quantity"], 8);
    assert_eq!(sb.writes(Channel::Woocommerce).len(), 2);
}

#[tokio::test]
async fn woo_basic_auth_is_required() {
    let sb = TestSandbox::start().await;
    seed(&sb, &[("LOCKED", 0, None)]).await;
    let ch = woo_with(&sb, "cs_wrong");

    let outcomes = ch.push(&[push("LOCKED", 3, 1)]).await;

    // A wrong consumer secret is the store connection's problem, not the SKU's: held.
    assert!(
        matches!(&outcomes[0], PushOutcome::Transient { reason, .. }
            if reason.contains("HTTP 401") && reason.contains("woocommerce_rest_authentication_error")),
        "{outcomes:?}"
    );
    let resp = sb
        .http
        .get(format!(
            "{}/wp-json/wc/v3/products",
            sb.url(Channel::Woocommerce)
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["code"], "woocommerce_rest_cannot_view");
}

#[tokio::test]
async fn woo_read_back_pages_over_10k_skus_with_variations() {
    let sb = TestSandbox::start().await;
    let simple = skus("RS", 10_000);
    let big = skus("RV-BIG", 150);
    let small = skus("RV-SMALL", 3);
    let mut items: Vec<(&str, i64, Option<&str>)> = simple
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), (i % 89) as i64, None))
        .collect();
    items.push(("RV-BIG", 1000, None));
    items.push(("RV-SMALL", 2000, None));
    items.extend(big.iter().map(|s| (s.as_str(), 5, Some("RV-BIG"))));
    items.extend(small.iter().map(|s| (s.as_str(), 6, Some("RV-SMALL"))));
    seed(&sb, &items).await;
    let ch = woo(&sb);

    let listed = ch.read_all().await.expect("read-back");

    let got: HashMap<&str, i64> = listed
        .iter()
        .map(|l| (l.sku.as_str(), l.quantity))
        .collect();
    assert_eq!(listed.len(), items.len(), "every SKU once");
    for (sku, quantity, _) in &items {
        assert_eq!(got.get(sku), Some(quantity), "{sku}");
    }
}
