//! The shared `HttpChannel` core, driven by minimal channel mappings against a local HTTP
//! server: a failed id lookup fails only the SKUs it was for; a read-back rides out a page
//! that times out.

use std::collections::HashMap;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use onhand_channels::api::{self, ItemResult};
use onhand_channels::{
    ApiRequest, ApiResponse, Auth, ChannelApi, ChannelKind, ChannelRef, HttpChannel, MappingError,
    PageToken, PushOutcome, RateLimit, RateLimiter, ReadPage, Target, Transport,
};
use onhand_common::Sku;

use crate::support::push;

/// Looks SKUs up one at a time at `/resolve/{sku}` (503 for `BAD`, an empty body for an
/// unknown one), writes at `/write`.
#[derive(Debug)]
struct Lookup;

impl ChannelApi for Lookup {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Webhook
    }
    fn max_batch(&self) -> usize {
        10
    }
    fn default_rate_limit(&self) -> Option<RateLimit> {
        None
    }
    fn resolve_request(&self, skus: &[Sku]) -> Option<Result<ApiRequest, MappingError>> {
        Some(Ok(ApiRequest::get(format!("/resolve/{}", skus[0]))))
    }
    fn max_resolve_batch(&self) -> usize {
        1
    }
    fn resolve_response(
        &self,
        skus: &[Sku],
        resp: &ApiResponse,
    ) -> Result<HashMap<Sku, ChannelRef>, MappingError> {
        let id = String::from_utf8_lossy(&resp.body).into_owned();
        Ok(if id.is_empty() {
            HashMap::new()
        } else {
            HashMap::from([(
                skus[0].clone(),
                ChannelRef {
                    id,
                    ..ChannelRef::default()
                },
            )])
        })
    }
    fn write_request(&self, batch: &[Target]) -> Result<ApiRequest, MappingError> {
        let ids: Vec<_> = batch
            .iter()
            .filter_map(|t| t.reference.as_ref().map(|r| r.id.clone()))
            .collect();
        Ok(ApiRequest::new(reqwest::Method::POST, "/write").json(serde_json::json!(ids)))
    }
    fn write_outcomes(&self, batch: &[Target], resp: &ApiResponse) -> Vec<ItemResult> {
        match onhand_channels::classify::outcome(&self.classify(resp), resp) {
            Some(outcome) => api::all(batch, outcome),
            None => api::all(batch, PushOutcome::Applied),
        }
    }
    fn read_request(&self, page: &PageToken) -> Result<ApiRequest, MappingError> {
        Err(MappingError::PageToken {
            token: format!("{page:?}"),
        })
    }
    fn read_page(&self, _resp: &ApiResponse) -> Result<ReadPage, MappingError> {
        Ok(ReadPage {
            items: Vec::new(),
            next: None,
        })
    }
}

#[tokio::test]
async fn a_failed_lookup_fails_only_its_own_skus() {
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let app = Router::new()
        .route(
            "/resolve/{sku}",
            get(|Path(sku): Path<String>| async move {
                match sku.as_str() {
                    "BAD" => (StatusCode::SERVICE_UNAVAILABLE, String::new()),
                    "GONE" => (StatusCode::OK, String::new()),
                    other => (StatusCode::OK, format!("id-{other}")),
                }
            }),
        )
        .route("/write", post(|| async { StatusCode::OK }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let transport = Transport::new(
        ChannelKind::Webhook,
        base,
        Auth::None,
        std::time::Duration::from_secs(5),
        RateLimiter::unlimited(),
    )
    .expect("transport");
    let channel = HttpChannel::new(Lookup, transport);
    let outcomes = channel
        .push(&[
            push("A", 1, 1),
            push("BAD", 2, 1),
            push("C", 3, 1),
            push("GONE", 4, 1),
        ])
        .await;
    assert_eq!(outcomes[0], PushOutcome::Applied);
    assert!(
        matches!(outcomes[1], PushOutcome::Transient { .. }),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(outcomes[2], PushOutcome::Applied);
    assert!(
        matches!(&outcomes[3], PushOutcome::Permanent { code, .. } if code == "unknown_sku"),
        "{:?}",
        outcomes[3]
    );
}

/// Reads `/page/{n}`: `{"items":[{"sku","quantity"}],"next":n|null}`.
#[derive(Debug)]
struct Pages;

#[derive(Debug, serde::Deserialize)]
struct PageBody {
    items: Vec<(String, i64)>,
    next: Option<u32>,
}

impl ChannelApi for Pages {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Webhook
    }
    fn max_batch(&self) -> usize {
        10
    }
    fn default_rate_limit(&self) -> Option<RateLimit> {
        None
    }
    fn write_request(&self, _batch: &[Target]) -> Result<ApiRequest, MappingError> {
        Ok(ApiRequest::new(reqwest::Method::POST, "/write"))
    }
    fn write_outcomes(&self, batch: &[Target], _resp: &ApiResponse) -> Vec<ItemResult> {
        api::all(batch, PushOutcome::Applied)
    }
    fn read_request(&self, page: &PageToken) -> Result<ApiRequest, MappingError> {
        Ok(ApiRequest::get(format!(
            "/page/{}",
            page.0.as_deref().unwrap_or("1")
        )))
    }
    fn read_page(&self, resp: &ApiResponse) -> Result<ReadPage, MappingError> {
        let body: PageBody = resp.json()?;
        Ok(ReadPage {
            items: body
                .items
                .into_iter()
                .map(|(sku, quantity)| onhand_channels::Listed {
                    sku: Sku::parse(sku).expect("sku"),
                    quantity,
                })
                .collect(),
            next: body.next.map(|n| PageToken::next(n.to_string())),
        })
    }
}

#[tokio::test]
async fn a_read_back_rides_out_a_page_that_times_out() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    // Page 2 hangs past the client's timeout the first two times it is asked for.
    let app = Router::new().route(
        "/page/{n}",
        get(move |Path(n): Path<u32>| {
            let counter = Arc::clone(&counter);
            async move {
                if n == 2 && counter.fetch_add(1, Ordering::SeqCst) < 2 {
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                }
                let next = (n < 3).then_some(n + 1);
                axum::Json(serde_json::json!({"items": [[format!("P{n}"), n]], "next": next}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let transport = Transport::new(
        ChannelKind::Webhook,
        base,
        Auth::None,
        std::time::Duration::from_millis(300),
        RateLimiter::unlimited(),
    )
    .expect("transport");
    let listed = HttpChannel::new(Pages, transport)
        .read_all()
        .await
        .expect("the read-back survives two timeouts");
    let got: Vec<_> = listed
        .iter()
        .map(|l| (l.sku.as_str().to_owned(), l.quantity))
        .collect();
    assert_eq!(
        got,
        vec![
            ("P1".to_owned(), 1),
            ("P2".to_owned(), 2),
            ("P3".to_owned(), 3)
        ]
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "page 2 asked for three times"
    );
}
