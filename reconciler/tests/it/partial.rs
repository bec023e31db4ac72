//! A channel that errors mid-read gives a partial report that says so and exits 4, never
//! a report claiming zero drift; the run is in the history as `partial` and its metrics
//! say `complete 0`. And a complete run's metrics reach the Pushgateway.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use onhand_reconciler::report::Status;
use onhand_reconciler::{EXIT_OK, EXIT_PARTIAL};
use onhand_sandbox::Channel as Sandboxed;
use tokio::sync::Mutex;

use crate::support::{Harness, skus};

/// Forwards to the sandbox; every GET after the first `good_reads` gets a 503 (with
/// `Retry-After: 0`, so the adapter's retries are quick), as a channel failing mid-read.
struct FailingProxy {
    target: String,
    good_reads: usize,
    reads: AtomicUsize,
    http: reqwest::Client,
}

async fn forward(
    State(proxy): State<Arc<FailingProxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method == Method::GET && proxy.reads.fetch_add(1, Ordering::SeqCst) >= proxy.good_reads {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "0")],
            "down",
        )
            .into_response();
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = proxy
        .http
        .request(method, format!("{}{path}", proxy.target))
        .body(body);
    for (name, value) in &headers {
        if name != "host" {
            request = request.header(name, value);
        }
    }
    let response = request.send().await.expect("sandbox answers");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body");
    let mut out = (status, body).into_response();
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" {
            out.headers_mut().insert(name, value.clone());
        }
    }
    out
}

async fn failing_proxy(target: &str, good_reads: usize) -> String {
    let proxy = Arc::new(FailingProxy {
        target: target.to_owned(),
        good_reads,
        reads: AtomicUsize::new(0),
        http: reqwest::Client::new(),
    });
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// What a Pushgateway received: (path, body) per request.
type Pushed = Arc<Mutex<Vec<(String, String)>>>;

async fn pushgateway() -> (String, Pushed) {
    let pushed: Pushed = Arc::default();
    let app = axum::Router::new()
        .fallback(
            |State(pushed): State<Pushed>, method: Method, uri: Uri, body: String| async move {
                assert_eq!(method, Method::PUT);
                pushed.lock().await.push((uri.path().to_owned(), body));
                StatusCode::OK
            },
        )
        .with_state(pushed.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, pushed)
}

#[tokio::test]
async fn a_channel_failing_mid_read_gives_a_partial_report_and_exit_4() {
    let h = Harness::start().await;
    // 1,500 SKUs, the same on both sides: three webhook pages of 500.
    let catalogue: Vec<(String, i64)> = skus("PART", 1_500).into_iter().map(|s| (s, 9)).collect();
    h.seed_ledger(&catalogue).await;
    h.seed(Sandboxed::Webhook, &catalogue).await;
    h.seed(Sandboxed::Amazon, &catalogue).await;
    let (gateway, pushed) = pushgateway().await;
    let reconciler = h
        .reconciler_with(|c| {
            c.settle = Some(std::time::Duration::ZERO);
            c.page_size = 500;
            c.pushgateway_url = Some(gateway.clone());
        })
        .await;

    // Whole, the channel matches the ledger.
    let settings = h.settings(Sandboxed::Webhook);
    let whole = reconciler.run(&settings, false).await;
    assert_eq!(whole.status, Status::Complete);
    assert_eq!((whole.counts.matched, whole.exit_code), (1_500, EXIT_OK));

    // The first page reads, then the channel fails.
    let proxy = failing_proxy(&h.sandbox_base, 1).await;
    let settings = h.settings_at(Sandboxed::Webhook, Some(&proxy), &[]);
    let report = reconciler.run(&settings, true).await;
    let c = &report.counts;
    assert_eq!(report.status, Status::Partial);
    assert_eq!(report.exit_code, EXIT_PARTIAL);
    assert_eq!((c.matched, c.not_read, c.missing), (500, 1_000, 0));
    assert_eq!(c.drift, 0);
    let error = report.error.as_deref().expect("error");
    assert!(error.contains("read-back failed after 1 pages"), "{error}");
    assert!(error.contains("503"), "{error}");
    let table = report.table(10);
    assert!(table.contains("PARTIAL"), "{table}");
    assert!(
        table.contains("1,000 ledger SKUs were not compared")
            && table.contains("does not show that the channel is in sync"),
        "{table}"
    );
    assert_eq!(report.repairs.attempted, 0, "nothing unread is repaired");

    // Read by SKU (Amazon, 20 a request): the 40th request fails, in the second page.
    let proxy = failing_proxy(&h.sandbox_base, 39).await;
    let settings = h.settings_at(Sandboxed::Amazon, Some(&proxy), &[]);
    let report = reconciler.run(&settings, false).await;
    let c = &report.counts;
    assert_eq!(
        (report.status, report.exit_code),
        (Status::Partial, EXIT_PARTIAL)
    );
    assert_eq!((c.matched, c.not_read, c.ledger_skus), (500, 1_000, 1_500));

    // The history says so, and so do the metrics.
    let statuses: Vec<(String, String, Option<i64>)> =
        sqlx::query_as("SELECT channel, status, not_read FROM reconcile_runs ORDER BY started_at")
            .fetch_all(h.db.pool())
            .await
            .expect("history");
    assert_eq!(
        statuses,
        [
            ("webhook".to_owned(), "complete".to_owned(), Some(0)),
            ("webhook".to_owned(), "partial".to_owned(), Some(1_000)),
            ("amazon".to_owned(), "partial".to_owned(), Some(1_000)),
        ]
    );
    let pushed = pushed.lock().await;
    assert_eq!(pushed.len(), 3);
    let (path, body) = &pushed[0];
    assert_eq!(path, "/metrics/job/onhand_reconciler/channel/webhook");
    for line in [
        "onhand_reconcile_drift_rate{channel=\"webhook\"} 0",
        "onhand_reconcile_skus{channel=\"webhook\",verdict=\"match\"} 1500",
        "onhand_reconcile_complete{channel=\"webhook\"} 1",
    ] {
        assert!(body.lines().any(|l| l == line), "{line} in\n{body}");
    }
    let (_, body) = &pushed[1];
    assert!(
        body.lines()
            .any(|l| l == "onhand_reconcile_complete{channel=\"webhook\"} 0"),
        "{body}"
    );
    assert!(
        body.lines()
            .any(|l| l == "onhand_reconcile_skus{channel=\"webhook\",verdict=\"not_read\"} 1000"),
        "{body}"
    );
}
