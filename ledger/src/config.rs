//! Ledger configuration, from the environment only (prefix `ONHAND_LEDGER__`, standard names
//! for standard things), validated at startup with the variable's name in every error.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use onhand_common::ChannelPolicy;
use onhand_common::config::{ConfigError, env_or, env_required, env_secret};
use secrecy::SecretString;

use crate::auth::Tokens;
use crate::ingest::IngestConfig;
use crate::relay::RelayConfig;
use crate::sweeper::SweeperConfig;

#[derive(Debug, Clone)]
pub struct LedgerConfig {
    pub database_url: SecretString,
    pub nats_url: String,
    pub listen_addr: SocketAddr,
    pub tokens: Tokens,
    pub warehouses: BTreeSet<String>,
    pub cart_ttl_secs: i64,
    pub checkout_ttl_secs: i64,
    pub max_ttl_secs: i64,
    pub db_max_connections: u32,
    pub request_timeout: Duration,
    pub relay: Option<RelayConfig>,
    pub sweeper: Option<SweeperConfig>,
    pub ingest: Option<IngestConfig>,
    pub policies: BTreeMap<String, ChannelPolicy>,
}

const P: &str = "ONHAND_LEDGER__";

fn var(name: &str) -> String {
    format!("{P}{name}")
}

impl LedgerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let database_url = env_secret("DATABASE_URL")?.ok_or_else(|| ConfigError::Missing {
            name: "DATABASE_URL".to_owned(),
        })?;
        let tokens_var = var("TOKENS");
        let tokens = Tokens::parse(
            &tokens_var,
            &env_secret(&tokens_var)?.ok_or(ConfigError::Missing {
                name: tokens_var.clone(),
            })?,
        )?;
        let warehouses_var = var("WAREHOUSES");
        let mut warehouses = BTreeSet::new();
        for w in env_required(&warehouses_var)?.split(',').map(str::trim) {
            onhand_common::validate_warehouse(w).map_err(|e| ConfigError::Invalid {
                name: warehouses_var.clone(),
                reason: format!("warehouse {w:?}: {e}"),
            })?;
            warehouses.insert(w.to_owned());
        }
        let cart_ttl_secs = positive(&var("CART_TTL_SECS"), 300)?;
        let checkout_ttl_secs = positive(&var("CHECKOUT_TTL_SECS"), 1800)?;
        let max_ttl_secs = positive(&var("MAX_TTL_SECS"), 86_400)?;
        if cart_ttl_secs > max_ttl_secs || checkout_ttl_secs > max_ttl_secs {
            return Err(ConfigError::Invalid {
                name: var("MAX_TTL_SECS"),
                reason: "must be at least the cart and checkout TTLs".to_owned(),
            });
        }
        let relay = env_or(&var("RELAY_ENABLED"), true)?.then(|| -> Result<_, ConfigError> {
            let defaults = RelayConfig::default();
            Ok(RelayConfig {
                batch: positive(&var("RELAY_BATCH"), defaults.batch)?,
                poll_interval: Duration::from_millis(positive(&var("RELAY_POLL_MS"), 10)? as u64),
                ack_timeout: Duration::from_millis(
                    positive(&var("RELAY_ACK_TIMEOUT_MS"), 5000)? as u64
                ),
                retention: Duration::from_secs(
                    positive(&var("OUTBOX_RETENTION_HOURS"), 168)? as u64 * 3600,
                ),
                idempotency_retention: Duration::from_secs(
                    positive(&var("IDEMPOTENCY_RETENTION_HOURS"), 48)? as u64 * 3600,
                ),
                standby_interval: defaults.standby_interval,
            })
        });
        let sweeper = env_or(&var("SWEEPER_ENABLED"), true)?.then(|| -> Result<_, ConfigError> {
            Ok(SweeperConfig {
                interval: Duration::from_millis(positive(&var("SWEEP_INTERVAL_MS"), 1000)? as u64),
                batch: positive(&var("SWEEP_BATCH"), 500)?,
            })
        });
        let ingest = env_or(&var("INGEST_ENABLED"), true)?.then(|| -> Result<_, ConfigError> {
            let defaults = IngestConfig::default();
            Ok(IngestConfig {
                stream: env_or(&var("INGEST_STREAM"), defaults.stream)?,
                consumer: env_or(&var("INGEST_CONSUMER"), defaults.consumer)?,
                retry_delay: defaults.retry_delay,
            })
        });
        Ok(Self {
            database_url,
            nats_url: {
                let url = env_or("NATS_URL", "nats://127.0.0.1:4222".to_owned())?;
                onhand_common::NatsUrl::parse("NATS_URL", &url)?;
                url
            },
            listen_addr: env_or(&var("LISTEN_ADDR"), SocketAddr::from(([0, 0, 0, 0], 8080)))?,
            tokens,
            warehouses,
            cart_ttl_secs,
            checkout_ttl_secs,
            max_ttl_secs,
            db_max_connections: positive(&var("DB_MAX_CONNECTIONS"), 16)? as u32,
            request_timeout: Duration::from_millis(
                positive(&var("REQUEST_TIMEOUT_MS"), 10_000)? as u64
            ),
            relay: relay.transpose()?,
            sweeper: sweeper.transpose()?,
            ingest: ingest.transpose()?,
            policies: onhand_common::policy::policies_from_env(std::env::vars())?,
        })
    }
}

fn positive(name: &str, default: i64) -> Result<i64, ConfigError> {
    let value = env_or(name, default)?;
    if value > 0 {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            name: name.to_owned(),
            reason: "must be a positive integer".to_owned(),
        })
    }
}
