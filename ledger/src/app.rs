//! The ledger service: `build` connects and binds, `run` serves the API and runs the relay,
//! the expiry sweeper and the ingest consumer until the shutdown token is cancelled.

use std::net::SocketAddr;
use std::sync::Arc;

use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::commands::{Ledger, Settings};
use crate::config::LedgerConfig;
use crate::http::{AppState, router};
use crate::metrics::LedgerMetrics;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid DATABASE_URL")]
    DatabaseUrl(#[source] sqlx::Error),
    #[error("cannot reach Postgres")]
    Database(#[source] sqlx::Error),
    #[error("cannot apply the ledger's database migrations")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    NatsUrl(#[from] onhand_common::ConfigError),
    #[error("invalid NATS_URL or NATS options")]
    Nats(#[source] async_nats::ConnectError),
}

/// A built ledger, bound to its port, ready to run.
#[derive(Debug)]
pub struct LedgerApp {
    listener: TcpListener,
    state: AppState,
    config: LedgerConfig,
    nats: async_nats::Client,
}

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connect to Postgres (with a bounded wait), apply migrations.
pub async fn connect_database(url: &str, max_connections: u32) -> Result<PgPool, StartupError> {
    let options: PgConnectOptions = url.parse().map_err(StartupError::DatabaseUrl)?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(StartupError::Database)?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// `onhand ledger migrate`.
pub async fn migrate(url: &str) -> Result<(), StartupError> {
    connect_database(url, 2).await.map(drop)
}

pub async fn build(
    config: LedgerConfig,
    shutdown: CancellationToken,
) -> Result<LedgerApp, StartupError> {
    crate::metrics::install();
    let nats_url = onhand_common::NatsUrl::parse("NATS_URL", &config.nats_url)?;
    tracing::info!(
        listen_addr = %config.listen_addr,
        nats_url = %nats_url,
        warehouses = ?config.warehouses,
        tokens = ?config.tokens.names(),
        channels = ?config.policies.keys().collect::<Vec<_>>(),
        cart_ttl_secs = config.cart_ttl_secs,
        checkout_ttl_secs = config.checkout_ttl_secs,
        relay = config.relay.is_some(),
        sweeper = config.sweeper.is_some(),
        ingest = config.ingest.is_some(),
        "ledger configuration"
    );
    let pool = connect_database(
        config.database_url.expose_secret(),
        config.db_max_connections,
    )
    .await?;
    // Configured warehouses are registered; the table is the truth (others may add more).
    sqlx::query("INSERT INTO warehouses (id) SELECT UNNEST($1::text[]) ON CONFLICT DO NOTHING")
        .bind(config.warehouses.iter().cloned().collect::<Vec<_>>())
        .execute(&pool)
        .await
        .map_err(StartupError::Database)?;
    let warehouses = sqlx::query_scalar("SELECT id FROM warehouses")
        .fetch_all(&pool)
        .await
        .map_err(StartupError::Database)?
        .into_iter()
        .collect();
    // NATS may be down: the ledger still takes writes, the outbox holds them for the relay.
    let nats = nats_url
        .options("onhand-ledger")
        .retry_on_initial_connect()
        .connect(nats_url.servers())
        .await
        .map_err(StartupError::Nats)?;
    let listener = TcpListener::bind(config.listen_addr)
        .await
        .map_err(|source| StartupError::Bind {
            addr: config.listen_addr,
            source,
        })?;
    let ledger = Ledger {
        pool,
        settings: Arc::new(Settings {
            warehouses,
            cart_ttl_secs: config.cart_ttl_secs,
            checkout_ttl_secs: config.checkout_ttl_secs,
            max_ttl_secs: config.max_ttl_secs,
        }),
        metrics: LedgerMetrics,
    };
    let state = AppState {
        ledger,
        tokens: Arc::new(config.tokens.clone()),
        policies: Arc::new(config.policies.clone()),
        shutdown,
    };
    Ok(LedgerApp {
        listener,
        state,
        config,
        nats,
    })
}

impl LedgerApp {
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    pub fn ledger(&self) -> &Ledger {
        &self.state.ledger
    }

    /// Serve until the token given to `build` is cancelled, then drain: readiness turns
    /// false, in-flight requests finish, background loops stop.
    pub async fn run(self) -> std::io::Result<()> {
        let shutdown = self.state.shutdown.clone();
        let tasks = TaskTracker::new();
        let js = async_nats::jetstream::new(self.nats.clone());
        if let Some(config) = self.config.relay.clone() {
            tasks.spawn(crate::relay::run(
                self.state.ledger.pool.clone(),
                js.clone(),
                config,
                shutdown.clone(),
            ));
        }
        if let Some(config) = self.config.sweeper.clone() {
            tasks.spawn(crate::sweeper::run(
                self.state.ledger.clone(),
                config,
                shutdown.clone(),
            ));
        }
        if let Some(config) = self.config.ingest.clone() {
            tasks.spawn(crate::ingest::run(
                self.state.ledger.clone(),
                js,
                config,
                shutdown.clone(),
            ));
        }
        tasks.close();
        tracing::info!(
            port = self.port(),
            warehouses = self.state.ledger.settings.warehouses.len(),
            "ledger listening"
        );
        let app = router(self.state.clone(), self.config.request_timeout);
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await;
        shutdown.cancel();
        tasks.wait().await;
        self.state.ledger.pool.close().await;
        served
    }
}
