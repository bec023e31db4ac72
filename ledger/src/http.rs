//! The ledger's HTTP API (DESIGN.md §4): routes, authentication, idempotency keys, and the
//! mapping of request bodies to commands. `router()` is testable without a socket.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use onhand_common::ChannelPolicy;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::auth::{SCOPE_ORDERS_WRITE, SCOPE_READ, SCOPE_STOCK_WRITE, Tokens};
use crate::commands::{
    Adjust, CancelOrder, Checkout, Command, IdempotencyKey, Ledger, Outcome, PlaceOrder, Receive,
    Release, Reserve, Settings, Ship,
};
use crate::error::LedgerError;
use crate::queries;

/// Largest request body accepted.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;
const IDEMPOTENCY_HEADER: &str = "idempotency-key";

#[derive(Debug, Clone)]
pub struct AppState {
    pub ledger: Ledger,
    pub tokens: Arc<Tokens>,
    pub policies: Arc<BTreeMap<String, ChannelPolicy>>,
    /// Cancelled when the service begins to shut down: readiness turns false first.
    pub shutdown: CancellationToken,
}

pub fn router(state: AppState, request_timeout: Duration) -> Router {
    Router::new()
        .route("/v1/receipts", post(receipts))
        .route("/v1/adjustments", post(adjustments))
        .route("/v1/reservations", post(reservations))
        .route("/v1/reservations/{id}/checkout", post(checkout))
        .route("/v1/reservations/{id}", delete(release))
        .route("/v1/orders", post(orders))
        .route("/v1/orders/{id}/cancel", post(cancel_order))
        .route("/v1/shipments", post(shipments))
        .route("/v1/stock/{sku}", get(stock))
        .route("/v1/stock/{sku}/explain", get(explain))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        // After every route: it applies to the routes already added.
        .method_not_allowed_fallback(|req: Request| async move {
            LedgerError::MethodNotAllowed {
                method: req.method().to_string(),
                path: req.uri().path().to_owned(),
            }
        })
        .fallback(|req: Request| async move {
            LedgerError::NoRoute {
                path: req.uri().path().to_owned(),
            }
        })
        .layer(middleware::from_fn(record_request))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(middleware::from_fn_with_state(request_timeout, deadline))
        .with_state(state)
}

/// One span per request, continuing the caller's trace when it sent a `traceparent`: the
/// outbox rows written under it carry the trace on to JetStream and the projectors.
fn request_span(req: &Request) -> tracing::Span {
    let span = tracing::info_span!(
        "http_request",
        method = %req.method(),
        path = %req.uri().path(),
    );
    if let Some(tp) = req
        .headers()
        .get(onhand_common::event::HEADER_TRACEPARENT)
        .and_then(|v| v.to_str().ok())
    {
        onhand_common::telemetry::set_parent_from_traceparent(&span, tp);
    }
    span
}

/// Abandons a request that runs past the deadline (its transaction rolls back) and tells
/// the caller in the usual JSON error shape.
async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => LedgerError::Timeout {
            limit_ms: limit.as_millis(),
        }
        .into_response(),
    }
}

/// Counts every request by route template and status (bounded labels only).
async fn record_request(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().clone();
    let response = next.run(req).await;
    crate::metrics::http_request(&method, route, response.status());
    response
}

type Parse = fn(&[u8], &Settings) -> Result<Command, LedgerError>;

impl AppState {
    /// The shared path of every POST: authenticate, check the scope, require an
    /// Idempotency-Key, parse and validate the body, apply.
    async fn post(
        &self,
        headers: &HeaderMap,
        path: &str,
        scope: &'static str,
        body: Result<Bytes, BytesRejection>,
        parse: impl FnOnce(&[u8], &Settings) -> Result<Command, LedgerError>,
    ) -> Result<Outcome, LedgerError> {
        let principal = self.tokens.authenticate(headers)?;
        principal.require(scope)?;
        let body = body.map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(_) => LedgerError::PayloadTooLarge {
                limit: BODY_LIMIT_BYTES,
            },
            other => LedgerError::Malformed {
                field: None,
                message: other.body_text(),
            },
        })?;
        let key = idempotency_key(headers)?;
        let command = parse(&body, &self.ledger.settings)?;
        debug_assert_eq!(
            command.scope(),
            scope,
            "route and command disagree on the scope"
        );
        let key = IdempotencyKey::new(
            &principal.name,
            key,
            &[Method::POST.as_str().as_bytes(), path.as_bytes(), &body],
        );
        self.ledger.execute(command, Some(&key)).await
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<&str, LedgerError> {
    let value = headers
        .get(IDEMPOTENCY_HEADER)
        .ok_or(LedgerError::MissingIdempotencyKey)?;
    let key = value.to_str().map_err(|_| LedgerError::Malformed {
        field: Some("Idempotency-Key".to_owned()),
        message: "Idempotency-Key must be printable ASCII".to_owned(),
    })?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(LedgerError::Malformed {
            field: Some("Idempotency-Key".to_owned()),
            message: "Idempotency-Key must be 1 to 255 printable ASCII characters".to_owned(),
        });
    }
    Ok(key)
}

impl IntoResponse for Outcome {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        (status, Json(self.body)).into_response()
    }
}

macro_rules! post_route {
    ($name:ident, $path:literal, $scope:expr, $parse:expr) => {
        async fn $name(
            State(state): State<AppState>,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Result<Outcome, LedgerError> {
            let parse: Parse = $parse;
            state.post(&headers, $path, $scope, body, parse).await
        }
    };
}

post_route!(receipts, "/v1/receipts", SCOPE_STOCK_WRITE, |b, s| Ok(
    Command::Receive(Receive::parse(b, s)?)
));
post_route!(
    adjustments,
    "/v1/adjustments",
    SCOPE_STOCK_WRITE,
    |b, s| Ok(Command::Adjust(Adjust::parse(b, s)?))
);
post_route!(
    reservations,
    "/v1/reservations",
    SCOPE_ORDERS_WRITE,
    |b, s| Ok(Command::Reserve(Reserve::parse(b, s)?))
);
post_route!(orders, "/v1/orders", SCOPE_ORDERS_WRITE, |b, s| Ok(
    Command::PlaceOrder(PlaceOrder::parse(b, s)?)
));
post_route!(shipments, "/v1/shipments", SCOPE_STOCK_WRITE, |b, s| Ok(
    Command::Ship(Ship::parse(b, s)?)
));

async fn checkout(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Outcome, LedgerError> {
    let id = path_param("reservation_id", id)?;
    let path = format!("/v1/reservations/{id}/checkout");
    state
        .post(&headers, &path, SCOPE_ORDERS_WRITE, body, |b, _| {
            Ok(Command::Checkout(Checkout::parse_http(&id, b)?))
        })
        .await
}

async fn cancel_order(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Outcome, LedgerError> {
    let id = path_param("order_id", id)?;
    let path = format!("/v1/orders/{id}/cancel");
    state
        .post(&headers, &path, SCOPE_ORDERS_WRITE, body, |b, _| {
            Ok(Command::CancelOrder(CancelOrder::parse_http(&id, b)?))
        })
        .await
}

async fn release(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Outcome, LedgerError> {
    let principal = state.tokens.authenticate(&headers)?;
    principal.require(SCOPE_ORDERS_WRITE)?;
    let id = path_param("reservation_id", id)?;
    // Optional here (DELETE is not a POST): with a key, a retry gets the first response
    // instead of 409 reservation_not_active.
    let key = match headers.get(IDEMPOTENCY_HEADER) {
        Some(_) => {
            let key = idempotency_key(&headers)?;
            let path = format!("/v1/reservations/{id}");
            Some(IdempotencyKey::new(
                &principal.name,
                key,
                &[Method::DELETE.as_str().as_bytes(), path.as_bytes()],
            ))
        }
        None => None,
    };
    let command = Command::Release(Release::parse_http(&id)?);
    state.ledger.execute(command, key.as_ref()).await
}

async fn stock(
    State(state): State<AppState>,
    sku: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, LedgerError> {
    state.tokens.authenticate(&headers)?.require(SCOPE_READ)?;
    let sku = crate::commands::fields::sku("sku", &path_param("sku", sku)?)?;
    let view = queries::stock(&state.ledger.pool, &sku).await?;
    Ok(Json(view).into_response())
}

#[derive(Debug, Deserialize)]
struct ExplainQuery {
    channel: Option<String>,
}

async fn explain(
    State(state): State<AppState>,
    sku: Result<Path<String>, PathRejection>,
    query: Result<Query<ExplainQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, LedgerError> {
    state.tokens.authenticate(&headers)?.require(SCOPE_READ)?;
    let sku = crate::commands::fields::sku("sku", &path_param("sku", sku)?)?;
    let Query(query) = query.map_err(|rejection| LedgerError::Malformed {
        field: Some("channel".to_owned()),
        message: format!(
            "the query string is not ?channel=<name>: {}",
            rejection.body_text()
        ),
    })?;
    let channel = query
        .channel
        .ok_or_else(|| LedgerError::invalid("channel", "give ?channel=<name> to explain"))?;
    let policy = state
        .policies
        .get(&channel)
        .ok_or_else(|| LedgerError::UnknownChannel {
            channel: channel.clone(),
        })?;
    let view = queries::explain(&state.ledger.pool, &sku, &channel, policy).await?;
    Ok(Json(view).into_response())
}

/// A path parameter, or a 400 naming it: axum's own rejection (e.g. `%FF`, which does not
/// decode to UTF-8) is plain text, not the API's JSON error.
fn path_param(
    field: &str,
    param: Result<Path<String>, PathRejection>,
) -> Result<String, LedgerError> {
    param
        .map(|Path(value)| value)
        .map_err(|rejection| LedgerError::Malformed {
            field: Some(field.to_owned()),
            message: format!(
                "the {field} in the path is not valid: {}",
                rejection.body_text()
            ),
        })
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    match sqlx::query("SELECT 1").execute(&state.ledger.pool).await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "not ready: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    match crate::metrics::render(&state.ledger.pool).await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                onhand_common::prometheus::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(err) => err.into_response(),
    }
}
