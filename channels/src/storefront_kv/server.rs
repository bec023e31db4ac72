//! The storefront's read-only HTTP endpoint over the `onhand_availability` bucket, served
//! by `onhand storefront`.
//!
//! - `GET /v1/availability/{sku}` → 200 the stored value
//!   `{"sku","quantity","version","event_id","updated_at"}`; 404 `unknown_sku`; 422
//!   `invalid_sku` (the SKU rules of DESIGN.md §3; percent-encode `/` and the like).
//! - `GET /v1/availability?limit=&after=` → 200 `{"items":[value...],"next":KEY|null}`, in
//!   key (SKU token) order; `limit` 1..=1000 (100 by default); pass `next` as `after` for
//!   the following page. 422 for a bad `limit` or `after`.
//! - `GET /healthz` (alive), `GET /readyz` (NATS answers, not shutting down).
//! - `GET /metrics` (Prometheus text): `onhand_storefront_requests_total{route,status}` and
//!   `onhand_storefront_request_duration_seconds{route}`, `route` being the route's
//!   template (`/v1/availability/{sku}`), never a SKU; `unmatched` for unknown paths.
//!
//! Errors are `{"error":{"code","message","field"?}}`; a NATS failure is 503 and the cause
//! goes to the log, not to the client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics::{counter, histogram};
use onhand_common::Sku;
use onhand_common::config::{ConfigError, env_or};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{StorefrontError, StorefrontKv};

/// Listing page size when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest listing page.
pub const MAX_LIMIT: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorefrontConfig {
    pub listen_addr: SocketAddr,
    pub request_timeout: Duration,
}

impl StorefrontConfig {
    pub const LISTEN_ADDR: &str = "ONHAND_STOREFRONT__LISTEN_ADDR";
    pub const REQUEST_TIMEOUT_MS: &str = "ONHAND_STOREFRONT__REQUEST_TIMEOUT_MS";

    /// `ONHAND_STOREFRONT__LISTEN_ADDR` (default `0.0.0.0:8090`),
    /// `ONHAND_STOREFRONT__REQUEST_TIMEOUT_MS` (default 5000).
    pub fn from_env() -> Result<Self, ConfigError> {
        let timeout_ms: u64 = env_or(Self::REQUEST_TIMEOUT_MS, 5000)?;
        if timeout_ms == 0 {
            return Err(ConfigError::Invalid {
                name: Self::REQUEST_TIMEOUT_MS.to_owned(),
                reason: "must be positive".to_owned(),
            });
        }
        Ok(Self {
            listen_addr: env_or(Self::LISTEN_ADDR, SocketAddr::from(([0, 0, 0, 0], 8090)))?,
            request_timeout: Duration::from_millis(timeout_ms),
        })
    }
}

#[derive(Debug, Clone)]
struct AppState {
    kv: Arc<StorefrontKv>,
    /// Cancelled when shutting down: readiness turns false first.
    shutdown: CancellationToken,
}

/// The routes, testable without a socket (readiness never turns false by shutdown here).
pub fn router(kv: StorefrontKv) -> Router {
    routes(
        AppState {
            kv: Arc::new(kv),
            shutdown: CancellationToken::new(),
        },
        Duration::from_secs(5),
    )
}

fn routes(state: AppState, request_timeout: Duration) -> Router {
    onhand_common::prometheus::install();
    Router::new()
        .route("/v1/availability", get(list))
        .route("/v1/availability/{sku}", get(one))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such route") })
        .layer(middleware::from_fn_with_state(request_timeout, deadline))
        .layer(middleware::from_fn(record))
        .with_state(state)
}

async fn render_metrics() -> Response {
    use onhand_common::prometheus;
    (
        [(axum::http::header::CONTENT_TYPE, prometheus::CONTENT_TYPE)],
        prometheus::render(),
    )
        .into_response()
}

/// Count each request and time it, by route template and status.
async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    counter!("onhand_storefront_requests_total", "route" => route.clone(), "status" => status)
        .increment(1);
    histogram!("onhand_storefront_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// An answer to a request that cannot be served.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    fn invalid(field: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
        }
    }
}

impl From<StorefrontError> for ApiError {
    fn from(err: StorefrontError) -> Self {
        tracing::warn!(error = %err, source = ?std::error::Error::source(&err), "storefront read failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "availability is unavailable right now; retry",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(field) = self.field {
            error["field"] = json!(field);
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {} ms", limit.as_millis()),
        )
        .into_response(),
    }
}

async fn one(
    State(state): State<AppState>,
    sku: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Ok(Path(sku)) = sku else {
        return Err(ApiError::invalid(
            "sku",
            "invalid_sku",
            "the SKU is not valid UTF-8",
        ));
    };
    let sku =
        Sku::parse(sku).map_err(|e| ApiError::invalid("sku", "invalid_sku", e.to_string()))?;
    match state.kv.get(&sku).await? {
        Some(value) => Ok(Json(value).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_sku",
            format!("no availability for SKU {:?}", sku.as_str()),
        )),
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<String>,
    after: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Ok(Query(query)) = query else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "expected ?limit=&after=",
        ));
    };
    let limit = match query.limit.as_deref() {
        None | Some("") => DEFAULT_LIMIT,
        Some(limit) => limit
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    "invalid_limit",
                    format!("limit must be a number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let after = query.after.filter(|a| !a.is_empty());
    if let Some(after) = &after {
        Sku::from_token(after).map_err(|_| {
            ApiError::invalid(
                "after",
                "invalid_after",
                "after must be a `next` from a previous page",
            )
        })?;
    }
    let page = state.kv.list(after.as_deref(), limit).await?;
    Ok(Json(json!({"items": page.items, "next": page.next})).into_response())
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    // A round trip to the server: a direct get of a key nobody writes.
    match state.kv.store().get("_readyz").await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "not ready: NATS unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "NATS unreachable").into_response()
        }
    }
}

/// The bound listener and the bucket, ready to serve.
#[derive(Debug)]
pub struct StorefrontApp {
    listener: TcpListener,
    kv: StorefrontKv,
    request_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

pub async fn build(
    config: &StorefrontConfig,
    kv: StorefrontKv,
) -> Result<StorefrontApp, StartupError> {
    tracing::info!(
        listen_addr = %config.listen_addr,
        request_timeout_ms = config.request_timeout.as_millis() as u64,
        bucket = super::BUCKET,
        "storefront configuration"
    );
    let listener = TcpListener::bind(config.listen_addr)
        .await
        .map_err(|source| StartupError::Bind {
            addr: config.listen_addr,
            source,
        })?;
    Ok(StorefrontApp {
        listener,
        kv,
        request_timeout: config.request_timeout,
    })
}

impl StorefrontApp {
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// Serve until `shutdown` is cancelled: readiness turns false, in-flight requests finish.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        tracing::info!(port = self.port(), "storefront listening");
        let state = AppState {
            kv: Arc::new(self.kv),
            shutdown: shutdown.clone(),
        };
        axum::serve(self.listener, routes(state, self.request_timeout))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    }
}
