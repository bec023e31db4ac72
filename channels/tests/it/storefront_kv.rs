//! The storefront KV channel against a real nats-server with the embedded definitions
//! applied, read back through its HTTP server on port 0.

use std::time::Duration;

use onhand_channels::PushOutcome;
use onhand_channels::storefront_kv::server::{StorefrontConfig, build};
use onhand_channels::storefront_kv::{Availability, BUCKET, StorefrontKv};
use onhand_common::Sku;
use onhand_testkit::{NatsServer, eventually};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::support::push;

struct Storefront {
    nats: NatsServer,
    kv: StorefrontKv,
    base: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Storefront {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Storefront {
    async fn start() -> Self {
        Self::start_with_nats_timeout(Duration::from_secs(5)).await
    }

    /// `nats_timeout`: how long the storefront's JetStream requests wait for an answer.
    async fn start_with_nats_timeout(nats_timeout: Duration) -> Self {
        rustls::crypto::ring::default_provider()
            .install_default()
            .ok();
        let nats = NatsServer::start().await;
        let mut js = nats.jetstream().await;
        js.set_timeout(nats_timeout);
        onhand_streams::ensure(&js, &onhand_streams::Definitions::embedded())
            .await
            .expect("apply definitions");
        let kv = StorefrontKv::new(js.get_key_value(BUCKET).await.expect("bucket"));
        let config = StorefrontConfig {
            listen_addr: "127.0.0.1:0".parse().expect("addr"),
            request_timeout: Duration::from_secs(5),
        };
        let app = build(&config, kv.clone()).await.expect("bind");
        let base = format!("http://127.0.0.1:{}", app.port());
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run(shutdown.clone()));
        Self {
            nats,
            kv,
            base,
            http: reqwest::Client::new(),
            shutdown,
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let body = resp.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&body)
                .unwrap_or(Value::String(String::from_utf8_lossy(&body).into_owned())),
        )
    }
}

#[tokio::test]
async fn pushed_availability_is_served_over_http_and_listed_in_pages() {
    let sf = Storefront::start().await;
    let odd = "Red Shirt/M é"; // not a plain token: stored under "=<base64url>"
    let pushes = [
        push("A-1", 4, 10),
        push("B-2", 0, 3),
        push("C-3", 12, 1),
        push(odd, 7, 2),
    ];

    let outcomes = sf.kv.push(&pushes).await;

    assert!(
        outcomes.iter().all(|o| *o == PushOutcome::Applied),
        "{outcomes:?}"
    );
    let (status, body) = sf.get("/v1/availability/A-1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sku"], "A-1");
    assert_eq!(body["quantity"], 4);
    assert_eq!(body["version"], 10);
    assert_eq!(body["event_id"], pushes[0].event_id.to_string());
    assert!(
        body["updated_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let (status, body) = sf.get("/v1/availability/Red%20Shirt%2FM%20%C3%A9").await;
    assert_eq!(
        (status, &body["sku"], &body["quantity"]),
        (200, &Value::from(odd), &Value::from(7))
    );
    let token = Sku::parse(odd).expect("sku").token();
    let raw = sf.kv.store().get(token.as_str()).await.expect("kv get");
    let stored: Availability =
        serde_json::from_slice(&raw.expect("stored under the token")).expect("value");
    assert_eq!(stored.quantity, 7);

    let mut seen = Vec::new();
    let mut path = "/v1/availability?limit=3".to_owned();
    loop {
        let (status, body) = sf.get(&path).await;
        assert_eq!(status, 200, "{body}");
        let items = body["items"].as_array().expect("items");
        assert!(items.len() <= 3);
        seen.extend(
            items
                .iter()
                .map(|i| i["sku"].as_str().expect("sku").to_owned()),
        );
        match body["next"].as_str() {
            Some(next) => path = format!("/v1/availability?limit=3&after={next}"),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["A-1", "B-2", "C-3", odd]);

    let mut listed = sf.kv.read_all().await.expect("read_all");
    listed.sort_by(|a, b| a.sku.cmp(&b.sku));
    let quantities: Vec<_> = listed
        .iter()
        .map(|l| (l.sku.as_str(), l.quantity))
        .collect();
    assert_eq!(quantities, [("A-1", 4), ("B-2", 0), ("C-3", 12), (odd, 7)]);
}

#[tokio::test]
async fn an_older_version_never_overwrites_a_newer_one() {
    let sf = Storefront::start().await;
    assert_eq!(
        sf.kv.push(&[push("A-1", 5, 5)]).await,
        [PushOutcome::Applied]
    );

    // Late and out of order: acknowledged (nothing to do) and not written.
    assert_eq!(
        sf.kv.push(&[push("A-1", 99, 3)]).await,
        [PushOutcome::Applied]
    );
    let (_, body) = sf.get("/v1/availability/A-1").await;
    assert_eq!(
        (&body["version"], &body["quantity"]),
        (&Value::from(5), &Value::from(5))
    );

    // The same version with another quantity (a rebuild after a policy change) is written.
    sf.kv.push(&[push("A-1", 6, 5)]).await;
    let (_, body) = sf.get("/v1/availability/A-1").await;
    assert_eq!(body["quantity"], 6);

    // Two writers racing over versions 6..=40 in scrambled order: the newest wins.
    let other = StorefrontKv::new(
        sf.nats
            .jetstream()
            .await
            .get_key_value(BUCKET)
            .await
            .expect("bucket"),
    );
    let mut versions: Vec<i64> = (6..=40).collect();
    versions.sort_by_key(|v| (v * 7919) % 31);
    let (left, right): (Vec<i64>, Vec<i64>) = versions.into_iter().partition(|v| v % 2 == 0);
    let racers = |versions: Vec<i64>, kv: StorefrontKv| async move {
        let mut outcomes = Vec::new();
        for v in versions {
            outcomes.extend(kv.push(&[push("A-1", v * 10, v)]).await);
        }
        outcomes
    };
    let (a, b) = tokio::join!(racers(left, sf.kv.clone()), racers(right, other));
    assert!(
        a.iter().chain(&b).all(|o| *o == PushOutcome::Applied),
        "{a:?} {b:?}"
    );
    let stored = sf
        .kv
        .get(&Sku::parse("A-1").expect("sku"))
        .await
        .expect("get")
        .expect("stored");
    assert_eq!((stored.version, stored.quantity), (40, 400));
}

#[tokio::test]
async fn invalid_and_unknown_skus_and_bad_paging_are_refused() {
    let sf = Storefront::start().await;
    sf.kv.push(&[push("A-1", 1, 1)]).await;

    let (status, body) = sf.get("/v1/availability/NOPE-9").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "unknown_sku");

    let (status, body) = sf.get("/v1/availability/bad%01sku").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_sku");
    assert_eq!(body["error"]["field"], "sku");
    let (status, _) = sf
        .get(&format!("/v1/availability/{}", "x".repeat(256)))
        .await;
    assert_eq!(status, 422, "longer than 255 bytes");

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("after=%3D%21%21", "after"),
    ] {
        let (status, body) = sf.get(&format!("/v1/availability?{query}")).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}");
    }

    assert_eq!(sf.get("/healthz").await.0, 200);
    assert_eq!(sf.get("/readyz").await.0, 200);
}

#[tokio::test]
async fn a_lost_nats_server_makes_pushes_transient_and_the_endpoint_unready() {
    let mut sf = Storefront::start_with_nats_timeout(Duration::from_millis(500)).await;
    sf.kv.push(&[push("A-1", 1, 1)]).await;

    sf.nats.stop();

    let outcomes = sf.kv.push(&[push("A-1", 2, 2)]).await;
    assert!(
        matches!(&outcomes[0], PushOutcome::Transient { .. }),
        "{outcomes:?}"
    );
    let status = eventually(Duration::from_secs(15), "/readyz to turn 503", || async {
        let (status, _) = sf.get("/readyz").await;
        (status == 503).then_some(status)
    })
    .await;
    assert_eq!(status, 503);
    let (status, body) = sf.get("/v1/availability/A-1").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
}

/// The value of one `onhand_storefront_requests_total` series (0 when absent).
fn requests_total(metrics: &str, route: &str, status: u16) -> u64 {
    let series =
        format!("onhand_storefront_requests_total{{route=\"{route}\",status=\"{status}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().expect("a counter value"))
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_status_never_by_sku() {
    let sf = Storefront::start().await;
    sf.kv.push(&[push("SECRET-SKU-1", 3, 1)]).await;
    let before = sf.get("/metrics").await.1;
    let before = before.as_str().unwrap_or_default().to_owned();

    assert_eq!(sf.get("/v1/availability/SECRET-SKU-1").await.0, 200);
    assert_eq!(sf.get("/v1/availability/SECRET-SKU-1").await.0, 200);
    assert_eq!(sf.get("/v1/availability/UNKNOWN-SKU-2").await.0, 404);
    assert_eq!(sf.get("/v1/availability?limit=0").await.0, 422);
    assert_eq!(sf.get("/no/such/route").await.0, 404);

    let (status, after) = sf.get("/metrics").await;
    assert_eq!(status, 200);
    let after = after.as_str().expect("Prometheus text").to_owned();
    let delta = |route: &str, status: u16| {
        requests_total(&after, route, status) - requests_total(&before, route, status)
    };
    assert_eq!(delta("/v1/availability/{sku}", 200), 2, "{after}");
    assert_eq!(delta("/v1/availability/{sku}", 404), 1, "{after}");
    assert_eq!(delta("/v1/availability", 422), 1, "{after}");
    assert_eq!(delta("unmatched", 404), 1, "{after}");
    assert!(
        after.contains(
            "onhand_storefront_request_duration_seconds_bucket{route=\"/v1/availability/{sku}\""
        ),
        "{after}"
    );
    assert!(
        !after.contains("SECRET-SKU") && !after.contains("UNKNOWN-SKU"),
        "no SKU in a label: {after}"
    );
}
