//! The Shopify adapter against the sandbox's Admin GraphQL emulator, over HTTP. The
//! emulator enforces the 2026-04 contract (`@idempotent` on every mutation,
//! `changeFromQuantity` on every item, ≤ 250 items), so a write it accepts proves the
//! adapter sent them. Request and retry counts come from the metrics the shared transport
//! records, captured by a recorder local to the test's thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use onhand_channels::shopify::{Shopify, ShopifyConfig};
use onhand_channels::{
    Auth, ChannelApi, ChannelKind, ChannelRef, HttpChannel, ItemResult, PushOutcome, RateLimiter,
    Target, Transport,
};
use onhand_sandbox::shopify::LOCATION_ID;
use onhand_sandbox::state::RateKnob;
use onhand_sandbox::{Channel, Knobs};
use reqwest::header::HeaderName;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::{TestSandbox, push};

const TOKEN: &str = "shpat_sandbox_token";
const REQUESTS: &str = "onhand_channel_requests_total";
const CONCURRENT: &str = "onhand_channel_concurrent_changes_total";

/// Counters by name (labels summed), for the thread it is installed on.
#[derive(Debug, Default)]
struct Counts(Mutex<HashMap<String, Arc<AtomicU64>>>);

impl Counts {
    fn get(&self, name: &str) -> u64 {
        self.0
            .lock()
            .expect("counts")
            .get(name)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

impl Recorder for Counts {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counts = self.0.lock().expect("counts");
        Counter::from_arc(Arc::clone(counts.entry(key.name().to_owned()).or_default()))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

fn channel_with(sb: &TestSandbox, limiter: RateLimiter) -> HttpChannel<Shopify> {
    let api = Shopify::new(ShopifyConfig::new(LOCATION_ID));
    let transport = Transport::new(
        ChannelKind::Shopify,
        sb.url(Channel::Shopify),
        Auth::Header {
            name: HeaderName::from_static("x-shopify-access-token"),
            value: SecretString::from(TOKEN.to_owned()),
        },
        Duration::from_secs(10),
        limiter,
    )
    .expect("transport");
    HttpChannel::new(api, transport)
}

/// With the documented default limit (Standard plan).
fn channel(sb: &TestSandbox) -> HttpChannel<Shopify> {
    let limit = Shopify::new(ShopifyConfig::new(LOCATION_ID)).default_rate_limit();
    channel_with(sb, RateLimiter::new(limit))
}

fn skus(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("SKU-{i:05}")).collect()
}

async fn seed(sb: &TestSandbox, skus: &[String], quantity: i64) -> Vec<u64> {
    let items: Vec<(&str, i64)> = skus.iter().map(|s| (s.as_str(), quantity)).collect();
    sb.seed(Channel::Shopify, &items).await
}

fn knobs(sb: &TestSandbox, f: impl FnOnce(&mut Knobs)) {
    let mut k = sb.sandbox.channel(Channel::Shopify).knobs.clone();
    f(&mut k);
    sb.knobs(Channel::Shopify, k);
}

/// A raw GraphQL call: status and body.
async fn graphql(
    sb: &TestSandbox,
    version: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut request = sb
        .http
        .post(format!(
            "{}/admin/api/{version}/graphql.json",
            sb.url(Channel::Shopify)
        ))
        .json(&body);
    if let Some(token) = token {
        request = request.header("X-Shopify-Access-Token", token);
    }
    let resp = request.send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json body"))
}

const SET: &str = "mutation Set($input: InventorySetQuantitiesInput!) { \
inventorySetQuantities(input: $input) @idempotent(key: \"KEY\") { \
inventoryAdjustmentGroup { id changes(quantityNames: [\"available\"]) { name delta quantityAfterChange } } \
userErrors { code field message } } }";

fn set_body(key: Option<&str>, quantities: Value) -> Value {
    let query = match key {
        Some(key) => SET.replace("KEY", key),
        None => SET.replace(" @idempotent(key: \"KEY\")", ""),
    };
    json!({"query": query, "variables": {"input": {
        "name": "available", "reason": "correction",
        "referenceDocumentUri": "gid://onhand/InventoryEvent/1",
        "quantities": quantities}}})
}

fn quantity(id: u64, q: i64, from: Value) -> Value {
    json!({"inventoryItemId": format!("gid://shopify/InventoryItem/{id}"),
           "locationId": LOCATION_ID, "quantity": q, "changeFromQuantity": from})
}

fn user_error_codes(body: &Value) -> Vec<(String, Value)> {
    body["data"]["inventorySetQuantities"]["userErrors"]
        .as_array()
        .expect("userErrors")
        .iter()
        .map(|e| {
            (
                e["code"].as_str().unwrap_or_default().to_owned(),
                e["field"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn six_hundred_skus_go_in_three_mutations_each_with_a_key_and_change_from() {
    let counts = Counts::default();
    let _recorder = metrics::set_default_local_recorder(&counts);
    let sb = TestSandbox::start().await;
    let names = skus(600);
    seed(&sb, &names, 5).await;
    let ch = channel(&sb);
    let pushes: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, s)| push(s, i as i64 + 1, 2))
        .collect();

    let outcomes = ch.push(&pushes).await;

    assert!(
        outcomes.iter().all(|o| *o == PushOutcome::Applied),
        "{outcomes:?}"
    );
    assert_eq!(
        counts.get(REQUESTS),
        6,
        "3 SKU lookups (250, 250, 100) and 3 mutations"
    );
    assert_eq!(sb.writes(Channel::Shopify).len(), 600);
    for (i, s) in names.iter().enumerate() {
        assert_eq!(sb.latest(Channel::Shopify, s), Some(i as i64 + 1));
    }

    // The next round compares against what we wrote: no lookup, no stale answer.
    let again: Vec<_> = names.iter().map(|s| push(s, 7, 3)).collect();
    let outcomes = ch.push(&again).await;
    assert!(
        outcomes.iter().all(|o| *o == PushOutcome::Applied),
        "{outcomes:?}"
    );
    assert_eq!(counts.get(REQUESTS), 9, "3 more mutations only");
    assert_eq!(counts.get(CONCURRENT), 0);
    assert_eq!(sb.latest(Channel::Shopify, "SKU-00599"), Some(7));
}

#[tokio::test]
async fn a_value_changed_behind_our_back_is_reread_retried_and_counted() {
    let counts = Counts::default();
    let _recorder = metrics::set_default_local_recorder(&counts);
    let sb = TestSandbox::start().await;
    sb.seed(Channel::Shopify, &[("A-1", 5), ("B-2", 5)]).await;
    let ch = channel(&sb);
    let first = ch.push(&[push("A-1", 7, 1), push("B-2", 8, 1)]).await;
    assert_eq!(first, vec![PushOutcome::Applied; 2]);

    // Someone sells three behind the adapter's back.
    let resp = sb
        .http
        .put(format!("{}/admin/shopify/items/A-1", sb.base))
        .json(&json!({"quantity": 4}))
        .send()
        .await
        .expect("admin put");
    assert_eq!(resp.status(), 204);

    let outcomes = ch.push(&[push("A-1", 9, 2), push("B-2", 10, 2)]).await;

    assert_eq!(outcomes, vec![PushOutcome::Applied; 2]);
    assert_eq!(sb.latest(Channel::Shopify, "A-1"), Some(9));
    assert_eq!(sb.latest(Channel::Shopify, "B-2"), Some(10));
    assert_eq!(counts.get(CONCURRENT), 1, "one lost compare-and-set");
    let writes: Vec<_> = sb
        .writes(Channel::Shopify)
        .into_iter()
        .map(|w| (w.sku, w.quantity))
        .collect();
    assert_eq!(
        writes,
        vec![
            ("A-1".to_owned(), 7),
            ("B-2".to_owned(), 8),
            ("B-2".to_owned(), 10),
            ("A-1".to_owned(), 9),
        ],
        "the refused mutation applied nothing; B-2 went again alone, A-1 after a re-read"
    );
}

#[tokio::test]
async fn injected_stale_values_end_transient_after_the_retries() {
    let counts = Counts::default();
    let _recorder = metrics::set_default_local_recorder(&counts);
    let sb = TestSandbox::start().await;
    sb.seed(Channel::Shopify, &[("A-1", 5)]).await;
    knobs(&sb, |k| k.faults.item_error = 1.0);
    let ch = channel(&sb);

    let outcomes = ch.push(&[push("A-1", 9, 2)]).await;

    assert!(
        matches!(&outcomes[0], PushOutcome::Transient { .. }),
        "{outcomes:?}"
    );
    assert_eq!(counts.get(CONCURRENT), 3, "the first try and two retries");
    assert_eq!(sb.latest(Channel::Shopify, "A-1"), Some(5));
    assert!(sb.writes(Channel::Shopify).is_empty());
}

#[tokio::test]
async fn unknown_items_are_permanent_without_holding_back_the_others() {
    let sb = TestSandbox::start().await;
    let ids = sb.seed(Channel::Shopify, &[("A-1", 1), ("C-3", 1)]).await;
    let ch = channel(&sb);

    let outcomes = ch
        .push(&[push("A-1", 4, 2), push("B-2", 4, 2), push("C-3", 4, 2)])
        .await;

    assert_eq!(outcomes[0], PushOutcome::Applied);
    assert!(
        matches!(&outcomes[1], PushOutcome::Permanent { code, .. } if code == "unknown_sku"),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[2], PushOutcome::Applied);

    // An id the shop no longer knows: the mutation names it, nothing is applied, and the
    // other item is to go again on its own.
    let targets = [
        Target {
            push: push("A-1", 6, 3),
            reference: Some(ChannelRef {
                id: format!("gid://shopify/InventoryItem/{}", ids[0]),
                parent: None,
                current: Some(4),
            }),
        },
        Target {
            push: push("Z-9", 6, 3),
            reference: Some(ChannelRef {
                id: "gid://shopify/InventoryItem/999999".to_owned(),
                parent: None,
                current: Some(0),
            }),
        },
    ];
    let request = ch.api().write_request(&targets).expect("request");
    let resp = ch.transport().send(&request).await.expect("send");
    let results = ch.api().write_outcomes(&targets, &resp);
    assert!(matches!(&results[0], ItemResult::Resend(_)), "{results:?}");
    assert!(
        matches!(&results[1], ItemResult::Done(PushOutcome::Permanent { code, .. }) if code == "INVALID_INVENTORY_ITEM"),
        "{results:?}"
    );
    assert_eq!(sb.latest(Channel::Shopify, "A-1"), Some(4));
}

#[tokio::test]
async fn throttling_is_honoured_whether_shopify_answers_200_or_429() {
    for status in [200, 429] {
        let sb = TestSandbox::start().await;
        let names = skus(20);
        seed(&sb, &names, 0).await;
        knobs(&sb, |k| {
            k.rate = Some(RateKnob {
                capacity: 100.0,
                refill_per_sec: 400.0,
            });
            k.throttle_status = status;
        });
        // The adapter starts from the Standard plan's 2000 points and learns this shop's
        // smaller bucket from the responses.
        let ch = channel(&sb);
        let drained_rounds = 4;
        let mut after_drains = 0;
        for round in 0..drained_rounds + 20 {
            if round < drained_rounds {
                // Another app of the same shop spends the whole bucket.
                let mut state = sb.sandbox.channel(Channel::Shopify);
                let (available, _, _) = state.bucket_status().expect("a bucket");
                state.take(available).expect("drained");
            } else if round == drained_rounds {
                after_drains = sb.sandbox.channel(Channel::Shopify).throttled;
            }
            let pushes: Vec<_> = names
                .iter()
                .map(|s| push(s, round + 1, round + 1))
                .collect();
            let mut attempts = 0;
            loop {
                attempts += 1;
                let outcomes = ch.push(&pushes).await;
                if outcomes.iter().all(|o| *o == PushOutcome::Applied) {
                    break;
                }
                assert!(
                    outcomes.iter().all(|o| matches!(o, PushOutcome::Transient { reason, .. } if reason.contains("throttled"))),
                    "HTTP {status}: {outcomes:?}"
                );
                assert!(attempts < 2, "HTTP {status}: throttled twice in a row");
            }
        }
        // The first drained bucket surprises an adapter that believes in 2000 points; after
        // that it follows the reported throttle status, and 20 back-to-back rounds (twice
        // the bucket) are paced without a single refusal.
        assert!(
            (1..=drained_rounds as u64).contains(&after_drains),
            "HTTP {status}: {after_drains} throttled"
        );
        assert_eq!(
            sb.sandbox.channel(Channel::Shopify).throttled,
            after_drains,
            "HTTP {status}: throttled in steady state"
        );
        for s in &names {
            assert_eq!(sb.latest(Channel::Shopify, s), Some(drained_rounds + 20));
        }
    }
}

#[tokio::test]
async fn injected_server_errors_are_transient_then_apply() {
    let sb = TestSandbox::start().await;
    sb.seed(Channel::Shopify, &[("A-1", 1)]).await;
    let ch = channel(&sb);
    assert_eq!(
        ch.push(&[push("A-1", 2, 1)]).await,
        vec![PushOutcome::Applied]
    );

    knobs(&sb, |k| k.faults.http_5xx = 1.0);
    let outcomes = ch.push(&[push("A-1", 3, 2)]).await;
    assert!(
        matches!(&outcomes[0], PushOutcome::Transient { reason, .. } if reason.contains("500")),
        "{outcomes:?}"
    );
    assert_eq!(sb.latest(Channel::Shopify, "A-1"), Some(2));

    knobs(&sb, |k| k.faults.http_5xx = 0.0);
    assert_eq!(
        ch.push(&[push("A-1", 3, 2)]).await,
        vec![PushOutcome::Applied]
    );
    assert_eq!(sb.latest(Channel::Shopify, "A-1"), Some(3));
}

#[tokio::test]
async fn read_back_pages_over_ten_thousand_skus() {
    let counts = Counts::default();
    let _recorder = metrics::set_default_local_recorder(&counts);
    let sb = TestSandbox::start().await;
    let names = skus(10_000);
    let items: Vec<(&str, i64)> = names
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), (i * 7 % 1000) as i64))
        .collect();
    sb.seed(Channel::Shopify, &items).await;
    // 40 pages of 753 points would take five minutes on a Standard plan; this test is
    // about paging, so neither side limits.
    let ch = channel_with(&sb, RateLimiter::unlimited());

    let listed = ch.read_all().await.expect("read-back");

    assert_eq!(listed.len(), 10_000);
    assert_eq!(counts.get(REQUESTS), 40, "pages of 250");
    let by_sku: HashMap<&str, i64> = listed
        .iter()
        .map(|l| (l.sku.as_str(), l.quantity))
        .collect();
    assert_eq!(by_sku.len(), 10_000, "no SKU twice");
    for (sku, quantity) in items {
        assert_eq!(by_sku.get(sku), Some(&quantity), "{sku}");
    }
}

#[tokio::test]
async fn the_emulator_enforces_the_2026_04_contract() {
    let sb = TestSandbox::start().await;
    let ids = sb.seed(Channel::Shopify, &[("A-1", 5), ("B-2", 5)]).await;
    let (a, b) = (ids[0], ids[1]);
    let v = "2026-04";

    let (status, body) = graphql(&sb, v, None, set_body(Some("k0"), json!([]))).await;
    assert_eq!(status, 401);
    assert!(
        body["errors"]
            .as_str()
            .is_some_and(|e| e.contains("Invalid API key"))
    );

    let (status, body) = graphql(
        &sb,
        v,
        Some(TOKEN),
        set_body(None, json!([quantity(a, 6, json!(5))])),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.get("data").is_none(), "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("@idempotent"))
    );

    let mut no_change_from = quantity(a, 6, json!(5));
    no_change_from
        .as_object_mut()
        .expect("object")
        .remove("changeFromQuantity");
    let (_, body) = graphql(
        &sb,
        v,
        Some(TOKEN),
        set_body(Some("k1"), json!([no_change_from])),
    )
    .await;
    assert_eq!(
        user_error_codes(&body),
        vec![(
            "CHANGE_FROM_QUANTITY_REQUIRED".to_owned(),
            json!(["input", "quantities", "0", "changeFromQuantity"])
        )]
    );

    let many: Vec<Value> = (0..251).map(|_| quantity(a, 1, Value::Null)).collect();
    let (_, body) = graphql(&sb, v, Some(TOKEN), set_body(Some("k2"), json!(many))).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "MAX_INPUT_SIZE_EXCEEDED"
    );

    let (_, body) = graphql(
        &sb,
        v,
        Some(TOKEN),
        set_body(
            Some("k3"),
            json!([
                quantity(a, -1, json!(5)),
                quantity(b, 2_000_000_000, json!(5)),
                quantity(424242, 1, json!(0)),
                quantity(b, 1, json!(4))
            ]),
        ),
    )
    .await;
    let codes: Vec<String> = user_error_codes(&body)
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(
        codes,
        [
            "INVALID_QUANTITY_NEGATIVE",
            "INVALID_QUANTITY_TOO_HIGH",
            "INVALID_INVENTORY_ITEM",
            "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR"
        ]
    );
    assert!(body["data"]["inventorySetQuantities"]["inventoryAdjustmentGroup"].is_null());

    let (_, body) = graphql(
        &sb,
        v,
        Some(TOKEN),
        set_body(Some("k4"), json!([quantity(a, 6, json!(4))])),
    )
    .await;
    assert_eq!(
        user_error_codes(&body),
        vec![(
            "CHANGE_FROM_QUANTITY_STALE".to_owned(),
            json!(["input", "quantities", "0", "changeFromQuantity"])
        )]
    );
    assert!(
        sb.writes(Channel::Shopify).is_empty(),
        "nothing refused was applied"
    );

    // The same key and input: the original result, applied once.
    let set = set_body(Some("k5"), json!([quantity(a, 6, json!(5))]));
    let (_, first) = graphql(&sb, v, Some(TOKEN), set.clone()).await;
    let (_, again) = graphql(&sb, v, Some(TOKEN), set).await;
    let group = &first["data"]["inventorySetQuantities"]["inventoryAdjustmentGroup"];
    assert_eq!(
        group["changes"],
        json!([{"name": "available", "delta": 1, "quantityAfterChange": 6}])
    );
    assert_eq!(again["data"], first["data"]);
    assert_eq!(first["extensions"]["cost"]["requestedQueryCost"], 10);
    assert_eq!(sb.writes(Channel::Shopify).len(), 1);

    // The same key, another input.
    let (_, body) = graphql(
        &sb,
        v,
        Some(TOKEN),
        set_body(Some("k5"), json!([quantity(a, 7, json!(6))])),
    )
    .await;
    assert_eq!(
        user_error_codes(&body)[0].0,
        "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"
    );
    assert_eq!(sb.latest(Channel::Shopify, "A-1"), Some(6));

    // Before 2026-04 the directive is optional; an explicit null skips the check.
    let (_, body) = graphql(
        &sb,
        "2026-01",
        Some(TOKEN),
        set_body(None, json!([quantity(b, 1, Value::Null)])),
    )
    .await;
    assert_eq!(user_error_codes(&body), vec![]);
    assert_eq!(sb.latest(Channel::Shopify, "B-2"), Some(1));

    // What the emulator does not understand is a GraphQL error, not a crash.
    for query in [
        "{",
        "{ shop { name } }",
        "query { ...F }",
        "mutation { inventorySetQuantities }",
    ] {
        let (status, body) = graphql(&sb, v, Some(TOKEN), json!({"query": query})).await;
        assert_eq!(status, 200, "{query}");
        assert!(body["errors"][0]["message"].is_string(), "{query}: {body}");
    }
}
