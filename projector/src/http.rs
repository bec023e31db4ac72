//! `/healthz` (the process runs), `/readyz` (connected to NATS and bound to the consumer),
//! `/metrics` (Prometheus text).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

#[derive(Debug, Clone)]
pub struct Health {
    pub client: async_nats::Client,
    pub ready: Arc<AtomicBool>,
}

pub fn router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render))
        .with_state(health)
}

async fn readyz(State(health): State<Health>) -> Response {
    if health.client.connection_state() != async_nats::connection::State::Connected {
        return (StatusCode::SERVICE_UNAVAILABLE, "not connected to NATS").into_response();
    }
    if !health.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "consumer not bound").into_response();
    }
    (StatusCode::OK, "ready").into_response()
}

async fn render() -> Response {
    use onhand_common::prometheus;
    (
        [(axum::http::header::CONTENT_TYPE, prometheus::CONTENT_TYPE)],
        prometheus::render(),
    )
        .into_response()
}
