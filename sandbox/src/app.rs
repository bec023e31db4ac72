//! The sandbox server: every emulated API on one port, path-prefixed by channel
//! (`/shopify`, `/amazon`, `/ebay`, `/woocommerce`, `/bigcommerce`, `/webhook`), plus the
//! admin API under `/admin`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::state::Sandbox;

pub fn router(sandbox: Arc<Sandbox>) -> Router {
    Router::new()
        .merge(crate::admin::router())
        .nest("/shopify", crate::shopify::router())
        .nest("/amazon", crate::amazon::router())
        .nest("/ebay", crate::ebay::router())
        .nest("/woocommerce", crate::woocommerce::router())
        .nest("/bigcommerce", crate::bigcommerce::router())
        .nest("/webhook", crate::webhook::router())
        .with_state(sandbox)
}

#[derive(Debug)]
pub struct SandboxApp {
    listener: TcpListener,
    sandbox: Arc<Sandbox>,
}

pub async fn build(addr: SocketAddr, seed: u64) -> std::io::Result<SandboxApp> {
    Ok(SandboxApp {
        listener: TcpListener::bind(addr).await?,
        sandbox: Arc::new(Sandbox::new(seed)),
    })
}

impl SandboxApp {
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    pub fn sandbox(&self) -> Arc<Sandbox> {
        Arc::clone(&self.sandbox)
    }

    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        tracing::info!(port = self.port(), "sandbox listening");
        axum::serve(self.listener, router(self.sandbox))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    }
}
