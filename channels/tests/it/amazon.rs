//! The Amazon adapter against the sandbox's Listings Items emulator.

pub mod schema;

use std::time::{Duration, Instant};

use onhand_channels::amazon::{AmazonApi, AmazonConfig};
use onhand_channels::{
    Auth, ChannelApi, ChannelKind, HttpChannel, PushOutcome, RateLimit, RateLimiter, Transport,
};
use onhand_sandbox::Channel;
use onhand_sandbox::state::{Faults, Knobs, RateKnob};
use onhand_testkit::eventually;
use serde_json::{Value, json};

use crate::support::{TestSandbox, push};

const SELLER: &str = "A3SELLER";
const MARKETPLACE: &str = "ATVPDKIKX0DER";

fn api() -> AmazonApi {
    AmazonApi::new(AmazonConfig {
        seller_id: SELLER.to_owned(),
        marketplace_id: MARKETPLACE.to_owned(),
    })
}

/// The adapter as a projector builds it; `limit` overrides the documented default.
fn channel(sb: &TestSandbox, limit: Option<Option<RateLimit>>) -> HttpChannel<AmazonApi> {
    let api = api();
    let limiter = RateLimiter::new(limit.unwrap_or(api.default_rate_limit()));
    let transport = Transport::new(
        ChannelKind::Amazon,
        sb.url(Channel::Amazon),
        Auth::Header {
            name: reqwest::header::HeaderName::from_static("x-amz-access-token"),
            value: "Atza|sandbox-token".to_owned().into(),
        },
        Duration::from_secs(5),
        limiter,
    )
    .expect("transport");
    HttpChannel::new(api, transport)
}

/// A sandbox bucket that only counts requests (it never runs dry in a test).
fn counting() -> Knobs {
    Knobs {
        rate: Some(RateKnob {
            capacity: 100_000.0,
            refill_per_sec: 0.000_001,
        }),
        ..Knobs::default()
    }
}

fn requests(sb: &TestSandbox, channel: Channel) -> u64 {
    let (available, capacity, _) = sb
        .sandbox
        .channel(channel)
        .bucket_status()
        .expect("a counting bucket");
    (capacity - available).round() as u64
}

/// Every query parameter of `path` is one the spec declares for the operation, and no
/// comma-delimited list is longer than its `maxItems`.
fn assert_query_declared(spec: &Value, template: &str, method: &str, path: &str) {
    let params = spec["paths"][template][method]["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("spec has no {method} {template}"));
    let url = reqwest::Url::parse(&format!("http://spec.invalid{path}")).expect("url");
    for (name, value) in url.query_pairs() {
        let declared = params
            .iter()
            .find(|p| p["in"] == "query" && p["name"] == name.as_ref())
            .unwrap_or_else(|| panic!("{name} is not a query parameter of {method} {template}"));
        if let Some(max) = declared["maxItems"].as_u64() {
            assert!(
                value.split(',').count() as u64 <= max,
                "{name} holds more than {max}"
            );
        }
        if let Some(options) = declared["enum"].as_array() {
            assert!(
                options.iter().any(|o| o == value.as_ref()),
                "{name}={value} is not one of {options:?}"
            );
        }
    }
}

/// No window of the write log holds more than `burst + rate * span` writes (plus one for
/// the clocks of the two buckets not starting at the same instant).
pub fn assert_within_rate(sb: &TestSandbox, channel: Channel, burst: f64, rate: f64) {
    let times: Vec<_> = sb.writes(channel).iter().map(|w| w.received_at).collect();
    for i in 0..times.len() {
        for j in i + 1..times.len() {
            let span = (times[j] - times[i]).as_seconds_f64();
            let count = (j - i + 1) as f64;
            assert!(
                count <= burst + rate * span + 1.0,
                "{count} writes within {span:.3}s exceed {burst} + {rate}/s"
            );
        }
    }
}

#[tokio::test]
async fn amazon_one_sku_per_call_with_outcomes_per_sku() {
    let sb = TestSandbox::start().await;
    sb.seed(Channel::Amazon, &[("A-1", 0), ("B-2", 4)]).await;
    sb.knobs(Channel::Amazon, counting());
    let ch = channel(&sb, None);
    let out = ch
        .push(&[push("A-1", 5, 1), push("NOPE", 3, 1), push("B-2", -1, 1)])
        .await;
    assert_eq!(out[0], PushOutcome::Applied);
    assert!(
        matches!(&out[1], PushOutcome::Permanent { message, .. } if message.contains("No listing")),
        "{out:?}"
    );
    assert!(
        matches!(&out[2], PushOutcome::Permanent { code, .. } if code == "90000900"),
        "{out:?}"
    );
    assert_eq!(
        requests(&sb, Channel::Amazon),
        3,
        "one call per sku, no retries"
    );
    let writes = sb.writes(Channel::Amazon);
    assert_eq!(writes.len(), 1);
    assert_eq!((writes[0].sku.as_str(), writes[0].quantity), ("A-1", 5));
    assert_eq!(sb.latest(Channel::Amazon, "A-1"), Some(5));
    assert_eq!(sb.latest(Channel::Amazon, "B-2"), Some(4));
}

#[tokio::test]
async fn amazon_burst_stays_within_5_per_second() {
    let sb = TestSandbox::start().await;
    let skus: Vec<String> = (0..20).map(|i| format!("RATE-{i:02}")).collect();
    let seed: Vec<(&str, i64)> = skus.iter().map(|s| (s.as_str(), 0)).collect();
    sb.seed(Channel::Amazon, &seed).await;
    sb.knobs(
        Channel::Amazon,
        Knobs {
            rate: Some(RateKnob {
                capacity: 5.0,
                refill_per_sec: 5.0,
            }),
            ..Knobs::default()
        },
    );
    let ch = channel(&sb, None);
    let pushes: Vec<_> = skus.iter().map(|s| push(s, 7, 1)).collect();
    // Four concurrent streams share the one limiter.
    let results = futures::future::join_all(pushes.chunks(5).map(|c| ch.push(c))).await;
    // The limiter keeps one request of headroom below Amazon's burst for jitter between
    // leaving here and arriving there; a loaded test machine may still cost one 429.
    let throttled = results
        .iter()
        .flatten()
        .filter(|o| **o != PushOutcome::Applied)
        .count();
    assert!(throttled <= 1, "{throttled} throttled: {results:?}");
    assert_eq!(sb.writes(Channel::Amazon).len(), 20 - throttled);
    assert_within_rate(&sb, Channel::Amazon, 5.0, 5.0);
}

/// Requests leave the client at the limiter's pace but reach Amazon up to 150 ms late, by
/// varying amounts, the first ones latest (as when they open the connections the later
/// ones reuse). Amazon's bucket (the documented 5/s, burst 5) must admit all of them.
async fn refused_by_amazon_under_jitter(client: Option<RateLimit>) -> usize {
    let limiter = RateLimiter::new(client);
    let mut arrivals = Vec::new();
    for k in 0..200u64 {
        limiter.acquire(1.0).await;
        let jitter = Duration::from_millis(150 - k * 7919 % 151);
        arrivals.push(tokio::time::Instant::now() + jitter);
    }
    arrivals.sort();
    let mut amazon = onhand_sandbox::bucket::Bucket::new(5.0, 5.0);
    arrivals
        .into_iter()
        .filter(|at| amazon.take(1.0, *at).is_err())
        .count()
}

#[tokio::test(start_paused = true)]
async fn amazon_limiter_leaves_headroom_for_network_jitter() {
    // At Amazon's own burst the smallest jitter costs 429s; one request of headroom
    // absorbs up to one request interval (200 ms) of it, at the full 5/s.
    let at_the_limit = RateLimit {
        capacity: 5.0,
        refill_per_sec: 5.0,
    };
    assert!(refused_by_amazon_under_jitter(Some(at_the_limit)).await > 0);
    let default = api().default_rate_limit();
    assert_eq!(default.map(|l| l.refill_per_sec), Some(5.0));
    assert_eq!(refused_by_amazon_under_jitter(default).await, 0);
}

#[tokio::test]
async fn amazon_5xx_and_429_are_transient_invalid_is_not_retried() {
    let sb = TestSandbox::start().await;
    sb.seed(Channel::Amazon, &[("A-1", 0)]).await;
    let ch = channel(&sb, Some(None));
    for faults in [
        Faults {
            http_5xx: 1.0,
            ..Faults::default()
        },
        Faults {
            http_429: 1.0,
            ..Faults::default()
        },
    ] {
        sb.knobs(
            Channel::Amazon,
            Knobs {
                faults,
                ..Knobs::default()
            },
        );
        let out = ch.push(&[push("A-1", 2, 1)]).await;
        assert!(matches!(out[0], PushOutcome::Transient { .. }), "{out:?}");
    }
    sb.knobs(
        Channel::Amazon,
        Knobs {
            faults: Faults {
                item_error: 1.0,
                ..Faults::default()
            },
            ..counting()
        },
    );
    let out = ch.push(&[push("A-1", 2, 1)]).await;
    assert!(matches!(out[0], PushOutcome::Permanent { .. }), "{out:?}");
    assert_eq!(
        requests(&sb, Channel::Amazon),
        1,
        "a permanent refusal is not retried"
    );
    assert!(sb.writes(Channel::Amazon).is_empty());
}

/// The adapter with a token the sandbox refuses (it has none).
fn without_token(sb: &TestSandbox) -> HttpChannel<AmazonApi> {
    let transport = Transport::new(
        ChannelKind::Amazon,
        sb.url(Channel::Amazon),
        Auth::None,
        Duration::from_secs(5),
        RateLimiter::unlimited(),
    )
    .expect("transport");
    HttpChannel::new(api(), transport)
}

#[tokio::test]
async fn amazon_a_refused_token_holds_pushes_and_fails_the_read_back_at_once() {
    let sb = TestSandbox::start().await;
    sb.seed(Channel::Amazon, &[("A-1", 0), ("B-2", 0)]).await;
    let refused = without_token(&sb);
    // 403 Unauthorized (an expired LWA token looks the same): not the SKUs' fault, so
    // neither is dead-lettered; each is tried again after the hint.
    let out = refused.push(&[push("A-1", 5, 1), push("B-2", 6, 1)]).await;
    for outcome in &out {
        assert!(
            matches!(outcome, PushOutcome::Transient { retry_after: Some(_), reason }
                if reason.contains("HTTP 403") && reason.contains("Unauthorized")),
            "{out:?}"
        );
    }
    let started = Instant::now();
    let err = refused.read_all().await.expect_err("refused");
    assert!(err.to_string().contains("403"), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "a refused read-back fails at once instead of sitting out outage retries"
    );
    assert!(sb.writes(Channel::Amazon).is_empty());
    // Once the token is fixed, the same pushes go through.
    let out = channel(&sb, Some(None))
        .push(&[push("A-1", 5, 1), push("B-2", 6, 1)])
        .await;
    assert_eq!(out, vec![PushOutcome::Applied; 2]);
}

#[tokio::test]
async fn amazon_read_back_pages_1000_listings_and_refuses_more() {
    let sb = TestSandbox::start().await;
    // searchListingsItems can page through at most 1000 listings (the spec), 20 a page.
    let skus: Vec<String> = (0..1000).map(|i| format!("LIST-{i:04}")).collect();
    let seed: Vec<(&str, i64)> = skus
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i as i64))
        .collect();
    sb.seed(Channel::Amazon, &seed).await;
    sb.knobs(Channel::Amazon, counting());
    let ch = channel(&sb, Some(None));
    let listed = ch.read_all().await.expect("read-back");
    assert_eq!(listed.len(), 1000);
    for (i, l) in listed.iter().enumerate() {
        assert_eq!((l.sku.as_str(), l.quantity), (skus[i].as_str(), i as i64));
    }
    assert_eq!(requests(&sb, Channel::Amazon), 50);
    sb.seed(Channel::Amazon, &[("LIST-1000", 1)]).await;
    let err = ch
        .read_all()
        .await
        .expect_err("1001 listings cannot be paged");
    assert!(err.to_string().contains("at most 1000"), "{err}");
}

#[tokio::test]
async fn amazon_read_back_of_known_skus_has_no_1000_cap() {
    let sb = TestSandbox::start().await;
    let mut skus: Vec<String> = (0..2500).map(|i| format!("MANY-{i:05}")).collect();
    skus.push("WITH,COMMA".to_owned());
    let seed: Vec<(&str, i64)> = skus
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i as i64))
        .collect();
    sb.seed(Channel::Amazon, &seed).await;
    sb.knobs(Channel::Amazon, counting());
    let ch = channel(&sb, Some(None));
    assert!(
        ch.read_all().await.is_err(),
        "the whole-account search cannot page past 1000"
    );
    let before = requests(&sb, Channel::Amazon);
    let mut asked: Vec<onhand_common::Sku> = skus
        .iter()
        .map(|s| onhand_common::Sku::parse(s.clone()).expect("sku"))
        .collect();
    asked.push(onhand_common::Sku::parse("UNLISTED").expect("sku"));
    asked.push(onhand_common::Sku::parse("UNLISTED,TOO").expect("sku"));

    let mut listed = ch.read_skus(&asked).await.expect("read-back by sku");

    listed.sort_by(|a, b| a.sku.as_str().cmp(b.sku.as_str()));
    let mut expected: Vec<(String, i64)> = skus
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), i as i64))
        .collect();
    expected.sort();
    let got: Vec<(String, i64)> = listed
        .iter()
        .map(|l| (l.sku.as_str().to_owned(), l.quantity))
        .collect();
    assert_eq!(got, expected, "every listed SKU, unlisted ones absent");
    // 2501 searchable SKUs at 20 a request, and one getListingsItem per comma SKU.
    assert_eq!(requests(&sb, Channel::Amazon) - before, 126 + 2);
}

#[tokio::test]
async fn amazon_accepted_shows_on_read_back_only_after_the_apply_delay() {
    let sb = TestSandbox::start().await;
    sb.seed(Channel::Amazon, &[("SLOW-1", 1)]).await;
    sb.knobs(
        Channel::Amazon,
        Knobs {
            apply_delay_ms: 1500,
            ..Knobs::default()
        },
    );
    let ch = channel(&sb, Some(None));
    let pushed = Instant::now();
    assert_eq!(
        ch.push(&[push("SLOW-1", 9, 1)]).await,
        vec![PushOutcome::Applied]
    );
    let now = ch.read_all().await.expect("read");
    assert_eq!(now[0].quantity, 1, "accepted is not applied yet");
    assert_eq!(sb.latest(Channel::Amazon, "SLOW-1"), Some(9));
    eventually(
        Duration::from_secs(10),
        "the accepted quantity to show",
        || async {
            let listed = ch.read_all().await.ok()?;
            (listed[0].quantity == 9).then_some(())
        },
    )
    .await;
    assert!(pushed.elapsed() >= Duration::from_millis(1500));
}

#[tokio::test]
async fn amazon_sandbox_traffic_conforms_to_the_spec() {
    let text = std::fs::read_to_string(schema::spec_path("amazon-listings-items-2021-08-01.json"))
        .expect("spec");
    let spec: Value = serde_json::from_str(&text).expect("spec json");
    let def = |name: &str| format!("/definitions/{name}");
    let sb = TestSandbox::start().await;
    sb.seed(Channel::Amazon, &[("GM-ZDPI-9B4E", 3)]).await;
    sb.knobs(
        Channel::Amazon,
        Knobs {
            rate: Some(RateKnob {
                capacity: 50.0,
                refill_per_sec: 5.0,
            }),
            ..Knobs::default()
        },
    );
    let target = onhand_channels::Target {
        push: push("GM-ZDPI-9B4E", 11, 1),
        reference: None,
    };
    let request = api().write_request(&[target]).expect("request");
    let body = request.json_body().expect("body");
    schema::assert_conforms(&spec, &def("ListingsItemPatchRequest"), &body);

    let base = sb.url(Channel::Amazon);
    let send = |method: reqwest::Method, path: String, body: Option<Value>, token: bool| {
        let mut r = sb.http.request(method, format!("{base}{path}"));
        if token {
            r = r.header("x-amz-access-token", "Atza|t");
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move {
            let resp = r.send().await.expect("send");
            let status = resp.status().as_u16();
            let limit = resp
                .headers()
                .get("x-amzn-RateLimit-Limit")
                .map(|v| v.to_str().expect("ascii").to_owned());
            (
                status,
                limit,
                resp.json::<Value>().await.expect("json body"),
            )
        }
    };

    let (status, limit, accepted) = send(
        request.method.clone(),
        request.path.clone(),
        Some(body.clone()),
        true,
    )
    .await;
    assert_eq!((status, limit.as_deref()), (200, Some("5.0")));
    assert_eq!(accepted["status"], "ACCEPTED");
    schema::assert_conforms(&spec, &def("ListingsItemSubmissionResponse"), &accepted);

    let unknown = request.path.replace("GM-ZDPI-9B4E", "NO-SUCH");
    let (status, _, invalid) =
        send(request.method.clone(), unknown, Some(body.clone()), true).await;
    assert_eq!((status, invalid["status"].as_str()), (200, Some("INVALID")));
    schema::assert_conforms(&spec, &def("ListingsItemSubmissionResponse"), &invalid);

    let mut replace_other = body.clone();
    replace_other["patches"][0]["path"] = json!("/attributes/item_name");
    let (status, _, bad) = send(
        request.method.clone(),
        request.path.clone(),
        Some(replace_other),
        true,
    )
    .await;
    assert_eq!(status, 400);
    schema::assert_conforms(&spec, &def("ErrorList"), &bad);
    let (status, _, bad) = send(
        request.method.clone(),
        request.path.clone(),
        Some(json!({"patches": []})),
        true,
    )
    .await;
    assert_eq!(status, 400);
    schema::assert_conforms(&spec, &def("ErrorList"), &bad);

    let (status, _, denied) = send(
        request.method.clone(),
        request.path.clone(),
        Some(body.clone()),
        false,
    )
    .await;
    assert_eq!(status, 403);
    schema::assert_conforms(&spec, &def("ErrorList"), &denied);

    let item_path = format!(
        "/listings/2021-08-01/items/{SELLER}/GM-ZDPI-9B4E?marketplaceIds={MARKETPLACE}&includedData=summaries,fulfillmentAvailability"
    );
    let (status, _, item) = send(reqwest::Method::GET, item_path, None, true).await;
    assert_eq!(status, 200);
    schema::assert_conforms(&spec, &def("Item"), &item);
    assert_eq!(
        item["fulfillmentAvailability"][0]["fulfillmentChannelCode"],
        "DEFAULT"
    );

    let search = api()
        .read_request(&onhand_channels::PageToken::first())
        .expect("search");
    let (status, _, page) = send(reqwest::Method::GET, search.path, None, true).await;
    assert_eq!(status, 200);
    schema::assert_conforms(&spec, &def("ItemSearchResults"), &page);

    let known = [onhand_common::Sku::parse("GM-ZDPI-9B4E").expect("sku")];
    let by_sku = api()
        .search_skus_request(&known, &onhand_channels::PageToken::first())
        .expect("search by sku");
    assert_query_declared(
        &spec,
        "/listings/2021-08-01/items/{sellerId}",
        "get",
        &by_sku.path,
    );
    let (status, _, page) = send(reqwest::Method::GET, by_sku.path, None, true).await;
    assert_eq!(status, 200);
    schema::assert_conforms(&spec, &def("ItemSearchResults"), &page);
    assert_eq!(page["numberOfResults"], 1);
    assert_eq!(page["items"][0]["sku"], "GM-ZDPI-9B4E");
    let get = api().get_item_request(&known[0]);
    assert_query_declared(
        &spec,
        "/listings/2021-08-01/items/{sellerId}/{sku}",
        "get",
        &get.path,
    );

    sb.knobs(
        Channel::Amazon,
        Knobs {
            faults: Faults {
                http_429: 1.0,
                ..Faults::default()
            },
            ..Knobs::default()
        },
    );
    let (status, _, throttled) = send(
        request.method.clone(),
        request.path.clone(),
        Some(body),
        true,
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(throttled["errors"][0]["code"], "QuotaExceeded");
    schema::assert_conforms(&spec, &def("ErrorList"), &throttled);
}
