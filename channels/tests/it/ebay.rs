//! The eBay adapter against the sandbox's Sell Inventory emulator, over HTTP, and the
//! emulator's shapes checked against eBay's own OpenAPI spec
//! (../shared/channel-specs/ebay-sell-inventory-v1.json).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use onhand_channels::ebay::{Ebay, EbayConfig};
use onhand_channels::{
    Auth, ChannelApi, ChannelKind, ChannelRef, HttpChannel, PushOutcome, RateLimiter, Target,
    Transport,
};
use onhand_sandbox::state::Faults;
use onhand_sandbox::{Channel, Knobs};
use onhand_testkit::eventually;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::{TestSandbox, push};

const TOKEN: &str = "Bearer v^1.1#i^1#sandbox-token";

fn ebay_with(sb: &TestSandbox, auth: Auth) -> HttpChannel<Ebay> {
    let api = Ebay::new(EbayConfig::default());
    let limiter = RateLimiter::new(api.default_rate_limit());
    let transport = Transport::new(
        ChannelKind::Ebay,
        sb.url(Channel::Ebay),
        auth,
        Duration::from_secs(5),
        limiter,
    )
    .expect("transport");
    HttpChannel::new(api, transport)
}

fn bearer() -> Auth {
    Auth::Header {
        name: reqwest::header::AUTHORIZATION,
        value: SecretString::from(TOKEN.to_owned()),
    }
}

fn ebay(sb: &TestSandbox) -> HttpChannel<Ebay> {
    ebay_with(sb, bearer())
}

fn skus(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:05}")).collect()
}

async fn seed(sb: &TestSandbox, skus: &[String], quantity: i64) -> Vec<u64> {
    let items: Vec<(&str, i64)> = skus.iter().map(|s| (s.as_str(), quantity)).collect();
    sb.seed(Channel::Ebay, &items).await
}

fn faults(item_error: f64) -> Knobs {
    Knobs {
        faults: Faults {
            item_error,
            ..Faults::default()
        },
        ..Knobs::default()
    }
}

async fn raw_post(sb: &TestSandbox, path: &str, body: &Value) -> (u16, Value) {
    let resp = sb
        .http
        .post(format!("{}/sell/inventory/v1{path}", sb.url(Channel::Ebay)))
        .header("authorization", TOKEN)
        .json(body)
        .send()
        .await
        .expect("post");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json body"))
}

async fn raw_get(sb: &TestSandbox, path_and_query: &str) -> (u16, Value) {
    let resp = sb
        .http
        .get(format!(
            "{}/sell/inventory/v1{path_and_query}",
            sb.url(Channel::Ebay)
        ))
        .header("authorization", TOKEN)
        .send()
        .await
        .expect("get");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json body"))
}

#[tokio::test]
async fn ebay_batches_split_at_25_and_set_item_and_offer() {
    let sb = TestSandbox::start().await;
    let skus = skus("EB", 60);
    seed(&sb, &skus, 0).await;
    let ch = ebay(&sb);
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
    for (i, s) in skus.iter().enumerate() {
        assert_eq!(sb.latest(Channel::Ebay, s), Some(i as i64 + 1), "{s}");
    }
    assert_eq!(sb.writes(Channel::Ebay).len(), 60);
    // The cap is real: one request more than 25 is refused whole.
    let requests: Vec<Value> = skus[..26]
        .iter()
        .map(|s| json!({"sku": s, "shipToLocationAvailability": {"quantity": 1}}))
        .collect();
    let (status, body) = raw_post(
        &sb,
        "/bulk_update_price_quantity",
        &json!({ "requests": requests }),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["errorId"], 25709);
}

#[tokio::test]
async fn ebay_per_item_failures_fan_out_to_their_skus() {
    let sb = TestSandbox::start().await;
    let known = skus("FAN", 30);
    seed(&sb, &known, 100).await;
    sb.knobs(Channel::Ebay, faults(0.3));
    let ch = ebay(&sb);
    let mut pushes: Vec<_> = known
        .iter()
        .enumerate()
        .map(|(i, s)| push(s, i as i64, 1))
        .collect();
    pushes.insert(7, push("FAN-MISSING-1", 5, 1));
    pushes.insert(20, push("FAN-MISSING-2", 5, 1));

    let outcomes = ch.push(&pushes).await;

    let (mut applied, mut busy) = (0, 0);
    for (p, o) in pushes.iter().zip(&outcomes) {
        let sku = p.sku.as_str();
        let latest = sb.latest(Channel::Ebay, sku);
        match o {
            PushOutcome::Deferred { reason, .. } => {
                panic!("nothing here is over a budget: {reason}")
            }
            PushOutcome::Applied => {
                applied += 1;
                assert_eq!(latest, Some(p.quantity), "{sku} applied");
            }
            PushOutcome::Transient { reason, .. } => {
                busy += 1;
                assert!(reason.contains("25025"), "{sku}: {reason}");
                assert_eq!(latest, Some(100), "{sku} was not changed");
            }
            PushOutcome::Permanent { code, .. } => {
                assert!(sku.starts_with("FAN-MISSING"), "{sku}: {code}");
                assert_eq!(code, "unknown_sku");
                assert_eq!(latest, None);
            }
        }
    }
    assert!(applied > 0 && busy > 0, "applied {applied}, busy {busy}");
    assert_eq!(sb.writes(Channel::Ebay).len(), applied);
}

#[tokio::test]
async fn ebay_concurrent_access_is_retried_until_applied() {
    let sb = TestSandbox::start().await;
    let skus = skus("RETRY", 40);
    seed(&sb, &skus, 0).await;
    sb.knobs(Channel::Ebay, faults(0.5));
    let ch = ebay(&sb);
    // (still to send, transient results seen)
    let state =
        std::cell::RefCell::new((skus.iter().map(|s| push(s, 9, 2)).collect::<Vec<_>>(), 0));

    // The projector's loop in miniature: send again what is not applied yet.
    eventually(Duration::from_secs(20), "every 25025 retried away", || {
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
                        panic!("25025 must not be permanent: {code} {message}")
                    }
                }
            }
            state.0.is_empty().then_some(())
        }
    })
    .await;

    let transient = state.borrow().1;
    assert!(transient > 0, "the fault was injected");
    for s in &skus {
        assert_eq!(sb.latest(Channel::Ebay, s), Some(9), "{s}");
    }
}

#[tokio::test]
async fn ebay_a_relisted_offer_is_looked_up_again_and_permanent_errors_are_not_retried() {
    let sb = TestSandbox::start().await;
    sb.seed(Channel::Ebay, &[("STALE", 1), ("FINE", 1)]).await;
    let ch = ebay(&sb);
    assert_eq!(
        ch.push(&[push("STALE", 2, 1), push("FINE", 2, 1)]).await,
        vec![PushOutcome::Applied; 2]
    );
    // The listing is recreated behind our back: the cached offer id is no longer its.
    sb.sandbox.channel(Channel::Ebay).items.remove("STALE");
    sb.seed(Channel::Ebay, &[("STALE", 1)]).await;
    let before = sb.writes(Channel::Ebay).len();

    let outcomes = ch
        .push(&[
            push("STALE", 3, 2),
            push("FINE", 3, 2),
            push("NEVER-LISTED", 3, 2),
        ])
        .await;

    // eBay refused the cached offer id (25709); the adapter looked the SKU up again and
    // the new offer took the quantity, instead of a dead letter for every push of it.
    assert_eq!(outcomes[0], PushOutcome::Applied, "{outcomes:?}");
    assert_eq!(sb.latest(Channel::Ebay, "STALE"), Some(3));
    assert_eq!(outcomes[1], PushOutcome::Applied);
    assert!(
        matches!(&outcomes[2], PushOutcome::Permanent { code, .. } if code == "unknown_sku"),
        "{:?}",
        outcomes[2]
    );
    // STALE's item part and FINE, then STALE once more with its fresh offer id; FINE
    // is not sent twice and NEVER-LISTED never.
    let after: Vec<_> = sb.writes(Channel::Ebay)[before..]
        .iter()
        .map(|w| w.sku.clone())
        .collect();
    assert_eq!(after, vec!["STALE", "FINE", "STALE"]);
}

#[tokio::test]
async fn ebay_revision_cap_waits_for_the_next_day() {
    let sb = TestSandbox::start().await;
    sb.seed(Channel::Ebay, &[("BUSY-LISTING", 0)]).await;
    sb.knobs(
        Channel::Ebay,
        Knobs {
            revisions_per_day: 2,
            ..Knobs::default()
        },
    );
    let ch = ebay(&sb);
    assert_eq!(
        ch.push(&[push("BUSY-LISTING", 1, 1)]).await,
        vec![PushOutcome::Applied]
    );
    assert_eq!(
        ch.push(&[push("BUSY-LISTING", 2, 2)]).await,
        vec![PushOutcome::Applied]
    );

    let third = ch.push(&[push("BUSY-LISTING", 3, 3)]).await;

    match &third[0] {
        PushOutcome::Transient {
            retry_after: Some(wait),
            reason,
        } => {
            assert!(*wait <= Duration::from_secs(3600), "{wait:?}");
            assert!(reason.contains("revisions per calendar day"), "{reason}");
        }
        other => panic!("a capped listing waits and retries: {other:?}"),
    }
    assert_eq!(sb.latest(Channel::Ebay, "BUSY-LISTING"), Some(2));
}

#[tokio::test]
async fn ebay_a_hot_listing_spends_a_revision_budget_and_a_sell_out_still_goes_through() {
    let sb = TestSandbox::start().await;
    sb.seed(Channel::Ebay, &[("HOT-LISTING", 0), ("CALM-LISTING", 0)])
        .await;
    let ch = ebay(&sb);
    let budget = onhand_channels::RevisionBudget::new(onhand_channels::ebay::REVISIONS_PER_DAY);
    let free = budget.burst();
    assert_eq!(free, 30);
    // A listing changing with every sale: the first 30 revisions go out at once.
    for n in 1..=i64::from(free) {
        assert_eq!(
            ch.push(&[push("HOT-LISTING", 100 - n, n)]).await,
            vec![PushOutcome::Applied],
            "revision {n}"
        );
    }

    // The next one is held back, not sent, and says when it can go; the other SKU of the
    // same push is not held back with it.
    let before = sb.writes(Channel::Ebay).len();
    let outcomes = ch
        .push(&[push("HOT-LISTING", 60, 31), push("CALM-LISTING", 5, 1)])
        .await;
    match &outcomes[0] {
        PushOutcome::Deferred { wait, reason } => {
            assert!(
                wait.abs_diff(budget.every()) < Duration::from_secs(2),
                "{wait:?} against one revision every {:?}",
                budget.every()
            );
            assert!(
                reason.contains("250 revisions of a listing a day"),
                "{reason}"
            );
        }
        other => panic!("a listing past its budget waits: {other:?}"),
    }
    assert_eq!(outcomes[1], PushOutcome::Applied);
    let sent: Vec<String> = sb.writes(Channel::Ebay)[before..]
        .iter()
        .map(|w| w.sku.clone())
        .collect();
    assert_eq!(sent, vec!["CALM-LISTING"]);
    assert_eq!(
        sb.latest(Channel::Ebay, "HOT-LISTING"),
        Some(100 - i64::from(free))
    );

    // Sold out: the reserve pays for it, so the listing stops selling at once.
    assert_eq!(
        ch.push(&[push("HOT-LISTING", 0, 32)]).await,
        vec![PushOutcome::Applied]
    );
    assert_eq!(sb.latest(Channel::Ebay, "HOT-LISTING"), Some(0));
}

#[tokio::test]
async fn ebay_a_refused_token_holds_the_push_until_it_is_fixed() {
    let sb = TestSandbox::start().await;
    sb.seed(Channel::Ebay, &[("AUTH-1", 0)]).await;
    let ch = ebay_with(&sb, Auth::None);

    let outcomes = ch.push(&[push("AUTH-1", 4, 1)]).await;

    // 401 errorId 1001 (the token) is not the SKU's fault: transient, not a dead letter.
    assert!(
        matches!(&outcomes[0], PushOutcome::Transient { retry_after: Some(_), reason }
            if reason.contains("HTTP 401") && reason.contains("1001")),
        "{outcomes:?}"
    );
    assert_eq!(sb.latest(Channel::Ebay, "AUTH-1"), Some(0));
    // The operator fixes the token; the redelivered push goes through.
    assert_eq!(
        ebay(&sb).push(&[push("AUTH-1", 4, 1)]).await,
        vec![PushOutcome::Applied]
    );
    assert_eq!(sb.latest(Channel::Ebay, "AUTH-1"), Some(4));
}

#[tokio::test]
async fn ebay_read_back_pages_over_10k_skus() {
    let sb = TestSandbox::start().await;
    let skus = skus("READ", 10_050);
    let items: Vec<(&str, i64)> = skus
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), (i % 97) as i64))
        .collect();
    for chunk in items.chunks(2_500) {
        sb.seed(Channel::Ebay, chunk).await;
    }
    let ch = ebay(&sb);

    let listed = ch.read_all().await.expect("read-back");

    assert_eq!(listed.len(), skus.len());
    let got: HashMap<&str, i64> = listed
        .iter()
        .map(|l| (l.sku.as_str(), l.quantity))
        .collect();
    for (sku, quantity) in &items {
        assert_eq!(got.get(sku), Some(quantity), "{sku}");
    }
}

/// eBay's OpenAPI document, with just enough of a validator for its schemas: `$ref`,
/// object properties (every property we see must be declared, declared types must match,
/// `required` ones must be present), arrays, strings, int32 integers, booleans.
struct Spec(Value);

impl Spec {
    fn load() -> Self {
        // `$ONHAND_CHANNEL_SPECS` overrides the directory, as for the other specs.
        let path = crate::amazon::schema::spec_path("ebay-sell-inventory-v1.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        Self(serde_json::from_str(&text).expect("the spec is JSON"))
    }

    fn operation(&self, path: &str, method: &str) -> &Value {
        let op = &self.0["paths"][path][method];
        assert!(op.is_object(), "spec has {method} {path}");
        op
    }

    fn request_schema(&self, path: &str, method: &str) -> &Value {
        &self.operation(path, method)["requestBody"]["content"]["application/json"]["schema"]
    }

    fn response_schema(&self, path: &str, method: &str, status: &str) -> &Value {
        &self.operation(path, method)["responses"][status]["content"]["application/json"]["schema"]
    }

    fn named(&self, name: &str) -> Value {
        json!({"$ref": format!("#/components/schemas/{name}")})
    }

    fn errors(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(schema, value, "$", &mut errors);
        errors
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference.trim_start_matches("#/components/schemas/");
            let target = &self.0["components"]["schemas"][name];
            assert!(target.is_object(), "unresolved $ref {reference}");
            return self.check(target, value, at, errors);
        }
        let kind = schema.get("type").and_then(Value::as_str);
        match kind {
            Some("object") | None if schema.get("properties").is_some() => {
                let Some(object) = value.as_object() else {
                    return errors.push(format!("{at}: expected an object, got {value}"));
                };
                let properties = &schema["properties"];
                for required in schema["required"].as_array().into_iter().flatten() {
                    let name = required.as_str().unwrap_or_default();
                    if !object.contains_key(name) {
                        errors.push(format!("{at}.{name}: required"));
                    }
                }
                for (name, v) in object {
                    match properties.get(name) {
                        Some(s) => self.check(s, v, &format!("{at}.{name}"), errors),
                        None => errors.push(format!("{at}.{name}: not in the spec")),
                    }
                }
            }
            Some("array") => match value.as_array() {
                Some(items) => {
                    for (i, v) in items.iter().enumerate() {
                        self.check(&schema["items"], v, &format!("{at}[{i}]"), errors);
                    }
                }
                None => errors.push(format!("{at}: expected an array, got {value}")),
            },
            Some("string") if !value.is_string() => {
                errors.push(format!("{at}: expected a string, got {value}"))
            }
            Some("integer") => {
                let int32 = schema["format"] == "int32";
                match value.as_i64() {
                    Some(n) if int32 && i32::try_from(n).is_err() => {
                        errors.push(format!("{at}: {n} is out of int32 range"))
                    }
                    Some(_) => {}
                    None => errors.push(format!("{at}: expected an integer, got {value}")),
                }
            }
            Some("boolean") if !value.is_boolean() => {
                errors.push(format!("{at}: expected a boolean, got {value}"))
            }
            _ => {}
        }
    }
}

#[track_caller]
fn assert_valid(spec: &Spec, schema: &Value, value: &Value, what: &str) {
    let errors = spec.errors(schema, value);
    assert!(
        errors.is_empty(),
        "{what} breaks the spec: {errors:#?}\n{value:#}"
    );
}

#[tokio::test]
async fn ebay_emulator_and_adapter_follow_the_spec() {
    let spec = Spec::load();
    let bulk = "/bulk_update_price_quantity";
    let request_schema = spec.request_schema(bulk, "post").clone();
    let response_schema = spec.response_schema(bulk, "post", "200").clone();
    assert_eq!(
        request_schema["$ref"], "#/components/schemas/BulkPriceQuantity",
        "the operation's request schema"
    );
    assert_eq!(
        response_schema["$ref"],
        "#/components/schemas/BulkPriceQuantityResponse"
    );
    // The validator catches what it should, so a pass means something.
    assert!(
        !spec
            .errors(
                &request_schema,
                &json!({"requests": [{"sku": 1, "offers": [{"availableQuantity": "7"}]}]})
            )
            .is_empty()
    );
    assert!(
        !spec
            .errors(
                &request_schema,
                &json!({"requests": [{"sku": "A", "quantity": 7}]})
            )
            .is_empty()
    );

    let sb = TestSandbox::start().await;
    let ids = sb
        .seed(Channel::Ebay, &[("SPEC-1", 1), ("SPEC-2", 2)])
        .await;
    let api = Ebay::new(EbayConfig::default());
    let target = |sku: &str, offer: String, quantity: i64| Target {
        push: push(sku, quantity, 1),
        reference: Some(ChannelRef {
            id: offer,
            parent: None,
            current: None,
        }),
    };

    // 200: the adapter's own request, every entry a success.
    let ok = api
        .write_request(&[
            target("SPEC-1", ids[0].to_string(), 5),
            target("SPEC-2", ids[1].to_string(), 6),
        ])
        .expect("maps");
    let body = ok.json_body().expect("a body");
    assert_valid(&spec, &request_schema, &body, "the adapter's request");
    let (status, response) = raw_post(&sb, bulk, &body).await;
    assert_eq!(status, 200, "{response}");
    assert_valid(&spec, &response_schema, &response, "a 200 response");
    assert_eq!(response["responses"].as_array().map(Vec::len), Some(4));

    // 207: an unknown SKU and an offer of another SKU, with eBay's error entries.
    let mixed = api
        .write_request(&[
            target("SPEC-1", ids[1].to_string(), 7),
            target("SPEC-404", "1".to_owned(), 7),
            target("SPEC-2", ids[1].to_string(), 8),
        ])
        .expect("maps")
        .json_body()
        .expect("a body");
    assert_valid(&spec, &request_schema, &mixed, "the adapter's request");
    let (status, response) = raw_post(&sb, bulk, &mixed).await;
    assert_eq!(status, 207, "{response}");
    // The spec gives 207 no schema; its body is the 200 one with per-entry failures.
    assert_valid(&spec, &response_schema, &response, "a 207 response");
    let failed: HashSet<(String, i64)> = response["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .filter(|r| r["statusCode"] != 200)
        .map(|r| {
            (
                r["sku"].as_str().unwrap_or_default().to_owned(),
                r["errors"][0]["errorId"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        HashSet::from([("SPEC-1".to_owned(), 25709), ("SPEC-404".to_owned(), 25002)])
    );

    // Whole-request errors use eBay's error shape.
    let error_body = json!({"$ref": "#/components/schemas/Error"});
    let (status, response) = raw_post(&sb, bulk, &json!({"requests": []})).await;
    assert_eq!(status, 400);
    for e in response["errors"].as_array().expect("errors") {
        assert_valid(&spec, &error_body, e, "an error");
    }

    // getOffers, getInventoryItems and bulkGetInventoryItem answer in their schemas.
    let (status, offers) = raw_get(&sb, "/offer?sku=SPEC-2").await;
    assert_eq!(status, 200);
    assert_valid(
        &spec,
        spec.response_schema("/offer", "get", "200"),
        &offers,
        "getOffers",
    );
    assert_eq!(offers["offers"][0]["offerId"], ids[1].to_string());
    let (status, missing) = raw_get(&sb, "/offer?sku=SPEC-404").await;
    assert_eq!(status, 404);
    assert_eq!(missing["errors"][0]["errorId"], 25713);
    let (status, page) = raw_get(&sb, "/inventory_item?limit=1&offset=0").await;
    assert_eq!(status, 200);
    assert_valid(
        &spec,
        spec.response_schema("/inventory_item", "get", "200"),
        &page,
        "getInventoryItems",
    );
    assert_eq!(page["total"], 2);
    let (status, page) = raw_get(&sb, "/inventory_item").await;
    assert_eq!(status, 200);
    assert_eq!(page["limit"], 100, "the documented default page size");
    let get_request = json!({"requests": [{"sku": "SPEC-1"}, {"sku": "SPEC-404"}]});
    assert_valid(
        &spec,
        spec.request_schema("/bulk_get_inventory_item", "post"),
        &get_request,
        "bulkGetInventoryItem request",
    );
    let (status, got) = raw_post(&sb, "/bulk_get_inventory_item", &get_request).await;
    assert_eq!(status, 207);
    assert_valid(
        &spec,
        &spec.named("BulkGetInventoryItemResponse"),
        &got,
        "bulkGetInventoryItem",
    );
    assert_eq!(
        got["responses"][0]["inventoryItem"]["availability"]["shipToLocationAvailability"]["quantity"],
        7
    );
    assert_eq!(got["responses"][1]["errors"][0]["errorId"], 25702);
}
