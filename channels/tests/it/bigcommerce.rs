//! The BigCommerce adapter against the sandbox's Inventory v3 emulator.

use std::time::{Duration, Instant};

use onhand_channels::bigcommerce::{BigCommerceApi, BigCommerceConfig};
use onhand_channels::{
    ApiRequest, ApiResponse, Auth, ChannelApi, ChannelKind, HttpChannel, ItemResult, MappingError,
    PageToken, PushOutcome, RateLimit, RateLimiter, ReadPage, Target, Transport,
};
use onhand_sandbox::Channel;
use onhand_sandbox::state::{Faults, Knobs, RateKnob};
use onhand_testkit::eventually;
use serde_json::{Value, json};

use crate::amazon::{assert_within_rate, schema};
use crate::support::{TestSandbox, push};

const STORE: &str = "abc123";

fn api() -> BigCommerceApi {
    BigCommerceApi::new(BigCommerceConfig {
        store_hash: STORE.to_owned(),
        location_id: 1,
    })
}

fn transport(sb: &TestSandbox, auth: bool, limit: Option<RateLimit>) -> Transport {
    let auth = if auth {
        Auth::Header {
            name: reqwest::header::HeaderName::from_static("x-auth-token"),
            value: "sandbox-token".to_owned().into(),
        }
    } else {
        Auth::None
    };
    Transport::new(
        ChannelKind::Bigcommerce,
        sb.url(Channel::Bigcommerce),
        auth,
        Duration::from_secs(10),
        RateLimiter::new(limit),
    )
    .expect("transport")
}

/// The adapter as a projector builds it, with the documented default limit.
fn channel(sb: &TestSandbox) -> HttpChannel<BigCommerceApi> {
    HttpChannel::new(api(), transport(sb, true, api().default_rate_limit()))
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

fn requests(sb: &TestSandbox) -> u64 {
    let (available, capacity, _) = sb
        .sandbox
        .channel(Channel::Bigcommerce)
        .bucket_status()
        .expect("a counting bucket");
    (capacity - available).round() as u64
}

async fn seed_many(sb: &TestSandbox, prefix: &str, n: usize) -> Vec<String> {
    let skus: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:05}")).collect();
    let seed: Vec<(&str, i64)> = skus.iter().map(|s| (s.as_str(), 1)).collect();
    sb.seed(Channel::Bigcommerce, &seed).await;
    skus
}

#[tokio::test]
async fn bigcommerce_4500_skus_go_in_three_requests() {
    let sb = TestSandbox::start().await;
    let skus = seed_many(&sb, "CAP", 4500).await;
    sb.knobs(Channel::Bigcommerce, counting());
    let pushes: Vec<_> = skus
        .iter()
        .enumerate()
        .map(|(i, s)| push(s, i as i64, 1))
        .collect();
    let out = channel(&sb).push(&pushes).await;
    assert!(out.iter().all(|o| *o == PushOutcome::Applied));
    assert_eq!(requests(&sb), 3, "2000 + 2000 + 500");
    assert_eq!(sb.writes(Channel::Bigcommerce).len(), 4500);
    assert_eq!(sb.latest(Channel::Bigcommerce, "CAP-04499"), Some(4499));
}

#[tokio::test]
async fn bigcommerce_a_422_fails_only_the_bad_skus() {
    let sb = TestSandbox::start().await;
    let mut good = seed_many(&sb, "OK", 11).await;
    let too_high = good.pop().expect("eleven");
    sb.knobs(Channel::Bigcommerce, counting());
    let mut pushes: Vec<_> = good.iter().map(|s| push(s, 5, 1)).collect();
    pushes.insert(3, push("NOPE 1", 5, 1));
    pushes.push(push(&too_high, 2_147_483_648, 1));
    let out = channel(&sb).push(&pushes).await;
    for (p, o) in pushes.iter().zip(&out) {
        let bad = p.sku.as_str() == "NOPE 1" || p.quantity > i64::from(i32::MAX);
        if bad {
            assert!(
                matches!(o, PushOutcome::Permanent { .. }),
                "{} {o:?}",
                p.sku
            );
        } else {
            assert_eq!(*o, PushOutcome::Applied, "{}", p.sku);
        }
    }
    assert_eq!(
        requests(&sb),
        2,
        "the refused request, then the innocent items again"
    );
    assert_eq!(sb.writes(Channel::Bigcommerce).len(), 10);
    assert_eq!(sb.latest(Channel::Bigcommerce, "OK-00009"), Some(5));
}

/// BigCommerce, but blind to which items a 422 names (a title in an unknown wording).
#[derive(Debug)]
struct Anonymous(BigCommerceApi);

impl ChannelApi for Anonymous {
    fn kind(&self) -> ChannelKind {
        self.0.kind()
    }
    fn max_batch(&self) -> usize {
        self.0.max_batch()
    }
    fn default_rate_limit(&self) -> Option<RateLimit> {
        None
    }
    fn write_request(&self, batch: &[Target]) -> Result<ApiRequest, MappingError> {
        self.0.write_request(batch)
    }
    fn write_outcomes(&self, batch: &[Target], resp: &ApiResponse) -> Vec<ItemResult> {
        let results = self.0.write_outcomes(batch, resp);
        if resp.status != 422 {
            return results;
        }
        results
            .into_iter()
            .map(|r| match r {
                ItemResult::Done(o) | ItemResult::Resend(o) => ItemResult::Resend(o),
                other => other,
            })
            .collect()
    }
    fn read_request(&self, page: &PageToken) -> Result<ApiRequest, MappingError> {
        self.0.read_request(page)
    }
    fn read_page(&self, resp: &ApiResponse) -> Result<ReadPage, MappingError> {
        self.0.read_page(resp)
    }
}

#[tokio::test]
async fn bigcommerce_an_anonymous_422_is_bisected() {
    let sb = TestSandbox::start().await;
    let good = seed_many(&sb, "BI", 7).await;
    sb.knobs(Channel::Bigcommerce, counting());
    let mut pushes: Vec<_> = good.iter().map(|s| push(s, 3, 1)).collect();
    pushes.insert(5, push("GHOST", 3, 1));
    let ch = HttpChannel::new(Anonymous(api()), transport(&sb, true, None));
    let out = ch.push(&pushes).await;
    assert!(matches!(&out[5], PushOutcome::Permanent { message, .. } if message.contains("GHOST")));
    assert_eq!(
        out.iter().filter(|o| **o == PushOutcome::Applied).count(),
        7
    );
    // 8 refused; 4 ok + 4 refused; 2 ok + 2 refused; 1 ok + 1 refused alone.
    assert_eq!(requests(&sb), 7);
    assert_eq!(sb.writes(Channel::Bigcommerce).len(), 7);
}

#[tokio::test]
async fn bigcommerce_quota_headers_keep_a_burst_within_150_per_30s() {
    let sb = TestSandbox::start().await;
    let skus = seed_many(&sb, "Q", 170).await;
    // The documented Standard plan: 150 requests per 30 s window.
    sb.knobs(
        Channel::Bigcommerce,
        Knobs {
            rate: Some(RateKnob {
                capacity: 150.0,
                refill_per_sec: 5.0,
            }),
            ..Knobs::default()
        },
    );
    let ch = channel(&sb);
    // Ten streams of single-SKU pushes (one request each) share the limiter.
    let streams = skus.chunks(17).map(|chunk| {
        let ch = &ch;
        async move {
            let mut out = Vec::new();
            for s in chunk {
                out.extend(ch.push(&[push(s, 4, 1)]).await);
            }
            out
        }
    });
    let out: Vec<_> = futures::future::join_all(streams)
        .await
        .into_iter()
        .flatten()
        .collect();
    let refused = out.iter().filter(|o| **o != PushOutcome::Applied).count();
    assert!(refused <= 1, "{refused} pushes throttled: {out:?}");
    assert_eq!(sb.writes(Channel::Bigcommerce).len(), 170 - refused);
    assert_within_rate(&sb, Channel::Bigcommerce, 150.0, 5.0);
}

#[tokio::test]
async fn bigcommerce_a_smaller_plan_is_learned_from_the_quota_headers() {
    let sb = TestSandbox::start().await;
    let skus = seed_many(&sb, "W", 12).await;
    // A smaller plan than the adapter's default: the headers teach it.
    sb.knobs(
        Channel::Bigcommerce,
        Knobs {
            rate: Some(RateKnob {
                capacity: 4.0,
                refill_per_sec: 4.0,
            }),
            ..Knobs::default()
        },
    );
    let ch = channel(&sb);
    let mut refused = 0;
    for s in &skus {
        if ch.push(&[push(s, 1, 2)]).await != vec![PushOutcome::Applied] {
            refused += 1;
        }
    }
    assert!(refused <= 1, "{refused} pushes throttled");
    assert_within_rate(&sb, Channel::Bigcommerce, 4.0, 4.0);
}

#[tokio::test]
async fn bigcommerce_5xx_and_401_are_transient_a_refused_item_is_not_retried() {
    let sb = TestSandbox::start().await;
    seed_many(&sb, "E", 3).await;
    let pushes = [push("E-00000", 1, 1), push("E-00001", 1, 1)];
    sb.knobs(
        Channel::Bigcommerce,
        Knobs {
            faults: Faults {
                http_5xx: 1.0,
                ..Faults::default()
            },
            ..Knobs::default()
        },
    );
    let out = channel(&sb).push(&pushes).await;
    assert!(
        out.iter()
            .all(|o| matches!(o, PushOutcome::Transient { .. })),
        "{out:?}"
    );
    sb.knobs(Channel::Bigcommerce, counting());
    let unauthenticated = HttpChannel::new(api(), transport(&sb, false, None));
    let out = unauthenticated.push(&pushes).await;
    // A missing or expired token says nothing about the SKUs: held for retry, not
    // dead-lettered.
    assert!(
        out.iter().all(
            |o| matches!(o, PushOutcome::Transient { reason, .. } if reason.contains("HTTP 401"))
        ),
        "{out:?}"
    );
    // A refused item alone is final at once (401s are refused before the quota counts).
    let out = channel(&sb).push(&[push("NOPE", 1, 1)]).await;
    assert!(matches!(&out[0], PushOutcome::Permanent { code, .. } if code == "unprocessable"));
    assert_eq!(requests(&sb), 1);
    assert!(sb.writes(Channel::Bigcommerce).is_empty());
}

#[tokio::test]
async fn bigcommerce_read_back_pages_10k_skus() {
    let sb = TestSandbox::start().await;
    let skus: Vec<String> = (0..10_000).map(|i| format!("R-{i:05}")).collect();
    let seed: Vec<(&str, i64)> = skus
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i as i64))
        .collect();
    sb.seed(Channel::Bigcommerce, &seed).await;
    sb.knobs(Channel::Bigcommerce, counting());
    let listed = channel(&sb).read_all().await.expect("read-back");
    assert_eq!(listed.len(), 10_000);
    for (i, l) in listed.iter().enumerate() {
        assert_eq!((l.sku.as_str(), l.quantity), (skus[i].as_str(), i as i64));
    }
    assert_eq!(requests(&sb), 10, "1000 a page");
}

#[tokio::test]
async fn bigcommerce_accepted_shows_on_read_back_only_after_the_apply_delay() {
    let sb = TestSandbox::start().await;
    sb.seed(Channel::Bigcommerce, &[("SLOW-1", 1)]).await;
    sb.knobs(
        Channel::Bigcommerce,
        Knobs {
            apply_delay_ms: 1500,
            ..Knobs::default()
        },
    );
    let ch = channel(&sb);
    let pushed = Instant::now();
    assert_eq!(
        ch.push(&[push("SLOW-1", 9, 1)]).await,
        vec![PushOutcome::Applied]
    );
    assert_eq!(ch.read_all().await.expect("read")[0].quantity, 1);
    eventually(
        Duration::from_secs(10),
        "the adjusted level to show",
        || async {
            let listed = ch.read_all().await.ok()?;
            (listed[0].quantity == 9).then_some(())
        },
    )
    .await;
    assert!(pushed.elapsed() >= Duration::from_millis(1500));
}

#[tokio::test]
async fn bigcommerce_sandbox_traffic_conforms_to_the_spec() {
    let text =
        std::fs::read_to_string(schema::spec_path("bigcommerce-inventory-v3.yml")).expect("spec");
    let spec = schema::yaml(&text);
    let sb = TestSandbox::start().await;
    sb.seed(Channel::Bigcommerce, &[("RE-130", 3)]).await;
    sb.knobs(
        Channel::Bigcommerce,
        Knobs {
            rate: Some(RateKnob {
                capacity: 150.0,
                refill_per_sec: 5.0,
            }),
            ..Knobs::default()
        },
    );
    let target = |sku: &str, q: i64| Target {
        push: push(sku, q, 1),
        reference: None,
    };
    let request = api()
        .write_request(&[target("RE-130", 5)])
        .expect("request");
    let body = request.json_body().expect("body");
    schema::assert_conforms(
        &spec,
        "/components/schemas/AdjustmentsAbsoluteRequest",
        &body,
    );

    let base = sb.url(Channel::Bigcommerce);
    let send = |method: reqwest::Method, path: String, body: Option<Value>, token: bool| {
        let mut r = sb.http.request(method, format!("{base}{path}"));
        if token {
            r = r.header("X-Auth-Token", "t");
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move {
            let resp = r.send().await.expect("send");
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            (
                status,
                headers,
                resp.json::<Value>().await.expect("json body"),
            )
        }
    };
    let content_type = |h: &reqwest::header::HeaderMap| {
        h.get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };

    let (status, headers, ok) =
        send(reqwest::Method::PUT, request.path.clone(), Some(body), true).await;
    assert_eq!(status, 200);
    schema::assert_conforms(&spec, "/components/schemas/SimpleTransactionResponse", &ok);
    assert!(ok["transaction_id"].is_string());
    for name in [
        "X-Rate-Limit-Requests-Left",
        "X-Rate-Limit-Requests-Quota",
        "X-Rate-Limit-Time-Reset-Ms",
        "X-Rate-Limit-Time-Window-Ms",
    ] {
        assert!(headers.contains_key(name), "{name} missing");
    }
    assert_eq!(headers["X-Rate-Limit-Requests-Quota"], "150");
    assert_eq!(headers["X-Rate-Limit-Time-Window-Ms"], "30000");

    let problem = "/paths/~1inventory~1adjustments~1absolute/put/responses/422/content/application~1problem+json/schema";
    let bad = api()
        .write_request(&[target("RE-130", 1), target("NOPE", 1)])
        .expect("request");
    let (status, headers, refused) = send(
        reqwest::Method::PUT,
        bad.path.clone(),
        bad.json_body(),
        true,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(content_type(&headers), "application/problem+json");
    schema::assert_conforms(&spec, problem, &refused);
    assert!(
        refused["title"]
            .as_str()
            .is_some_and(|t| t.contains("sku NOPE")),
        "{refused}"
    );

    let too_many: Vec<Value> = (0..2001)
        .map(|_| json!({"location_id": 1, "sku": "RE-130", "quantity": 1}))
        .collect();
    let (status, _, refused) = send(
        reqwest::Method::PUT,
        request.path.clone(),
        Some(json!({"items": too_many})),
        true,
    )
    .await;
    assert_eq!(status, 422);
    schema::assert_conforms(&spec, problem, &refused);

    let (status, _, refused) = send(
        reqwest::Method::PUT,
        request.path.clone(),
        Some(json!({"items": [{"location_id": 1, "quantity": 1}]})),
        true,
    )
    .await;
    assert_eq!(status, 422);
    schema::assert_conforms(&spec, problem, &refused);

    let (status, _, _) = send(
        reqwest::Method::PUT,
        request.path.clone(),
        Some(json!({"items": []})),
        false,
    )
    .await;
    assert_eq!(status, 401);

    let read = api().read_request(&PageToken::first()).expect("read");
    let (status, _, page) = send(reqwest::Method::GET, read.path, None, true).await;
    assert_eq!(status, 200);
    schema::assert_conforms(
        &spec,
        "/paths/~1inventory~1items/get/responses/200/content/application~1json/schema",
        &page,
    );
    assert_eq!(page["data"][0]["locations"][0]["location_id"], 1);
    assert_eq!(page["meta"]["pagination"]["total"], 1);
}
