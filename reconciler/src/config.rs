//! The reconciler's own settings (`ONHAND_RECONCILE__*`, `DATABASE_URL`, `NATS_URL`,
//! `ONHAND_PUSHGATEWAY_URL`); each channel's come from
//! [`onhand_channels::ChannelSettings`], as for its projector.

use std::time::Duration;

use onhand_channels::ChannelKind;
use onhand_common::ConfigError;
use onhand_common::config::{env_or, env_secret};
use secrecy::SecretString;

/// Default share of a channel's rate limit the reconciler takes.
pub const DEFAULT_RATE_SHARE: f64 = 0.25;

/// Default drift-rate threshold: above it the run exits 3 (DESIGN.md §7: 0.1 %).
pub const DEFAULT_THRESHOLD: f64 = 0.001;

#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// The ledger's database (`DATABASE_URL`).
    pub database_url: SecretString,
    /// NATS, for the watermarks and the storefront KV channel (`NATS_URL`).
    pub nats_url: String,
    /// Drift rate above which the run exits 3.
    pub threshold: f64,
    /// Pushes confirmed this long before the read may not show yet; `None`: per kind
    /// ([`default_settle`]).
    pub settle: Option<Duration>,
    /// Ledger SKUs compared per round trip.
    pub page_size: usize,
    /// Rows (and repairs) kept in the report, worst first.
    pub report_rows: usize,
    /// Pushgateway base URL (`ONHAND_PUSHGATEWAY_URL`); no push when unset.
    pub pushgateway_url: Option<String>,
    /// The share of each channel's rate limit the read-back may use, so a run over a large
    /// catalogue leaves the projector the rest (`ONHAND_RECONCILE__RATE_SHARE`, 0 < x ≤ 1).
    pub rate_share: f64,
}

impl ReconcileConfig {
    /// Defaults for everything but the URLs.
    pub fn new(database_url: SecretString, nats_url: impl Into<String>) -> Self {
        Self {
            database_url,
            nats_url: nats_url.into(),
            threshold: DEFAULT_THRESHOLD,
            settle: None,
            page_size: 2_000,
            report_rows: 1_000,
            pushgateway_url: None,
            rate_share: DEFAULT_RATE_SHARE,
        }
    }

    /// `DATABASE_URL` (required), `NATS_URL` (`nats://127.0.0.1:4222`),
    /// `ONHAND_RECONCILE__{DRIFT_THRESHOLD,SETTLE_SECS,PAGE_SIZE,REPORT_ROWS}`,
    /// `ONHAND_PUSHGATEWAY_URL`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let database_url = env_secret("DATABASE_URL")?.ok_or_else(|| ConfigError::Missing {
            name: "DATABASE_URL".to_owned(),
        })?;
        let nats_url: String = env_or("NATS_URL", "nats://127.0.0.1:4222".to_owned())?;
        onhand_common::NatsUrl::parse("NATS_URL", &nats_url)?;
        let d = Self::new(database_url, nats_url);
        let var = |k: &str| format!("ONHAND_RECONCILE__{k}");
        let settle: Option<u64> =
            match std::env::var(var("SETTLE_SECS")) {
                Ok(v) if !v.trim().is_empty() => Some(v.trim().parse().map_err(|_| {
                    ConfigError::invalid(var("SETTLE_SECS"), "must be seconds (≥ 0)")
                })?),
                _ => None,
            };
        let config = Self {
            threshold: env_or(&var("DRIFT_THRESHOLD"), d.threshold)?,
            settle: settle.map(Duration::from_secs),
            page_size: env_or(&var("PAGE_SIZE"), d.page_size)?,
            report_rows: env_or(&var("REPORT_ROWS"), d.report_rows)?,
            rate_share: env_or(&var("RATE_SHARE"), d.rate_share)?,
            pushgateway_url: std::env::var("ONHAND_PUSHGATEWAY_URL")
                .ok()
                .map(|u| u.trim().trim_end_matches('/').to_owned())
                .filter(|u| !u.is_empty()),
            ..d
        };
        config.validate()?;
        Ok(config)
    }

    /// Ranges, naming the variable at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.rate_share > 0.0 && self.rate_share <= 1.0) {
            return Err(ConfigError::invalid(
                "ONHAND_RECONCILE__RATE_SHARE",
                "must be above 0 and at most 1 (0.25: a quarter of the channel's rate limit)",
            ));
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(ConfigError::invalid(
                "ONHAND_RECONCILE__DRIFT_THRESHOLD",
                "must be a rate between 0 and 1 (0.001 = 0.1 %)",
            ));
        }
        if !(1..=50_000).contains(&self.page_size) {
            return Err(ConfigError::invalid(
                "ONHAND_RECONCILE__PAGE_SIZE",
                "must be between 1 and 50000",
            ));
        }
        if let Some(url) = &self.pushgateway_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::invalid(
                "ONHAND_PUSHGATEWAY_URL",
                "must be an http:// or https:// URL",
            ));
        }
        Ok(())
    }

    /// The settle window for a channel of `kind`.
    pub fn settle_for(&self, kind: ChannelKind) -> Duration {
        self.settle.unwrap_or_else(|| default_settle(kind))
    }
}

/// How long after a confirmed push a channel may still show the old value: Amazon applies
/// an `ACCEPTED` listings patch within minutes, BigCommerce "after a short delay"
/// (CHANNELS.md); the others apply before they answer, give or take a read cache.
pub fn default_settle(kind: ChannelKind) -> Duration {
    Duration::from_secs(match kind {
        ChannelKind::Amazon => 300,
        ChannelKind::Bigcommerce => 60,
        ChannelKind::Shopify
        | ChannelKind::Ebay
        | ChannelKind::Woocommerce
        | ChannelKind::Webhook
        | ChannelKind::StorefrontKv => 15,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_name_the_variable() {
        let mut c = ReconcileConfig::new(SecretString::from("postgres://x"), "nats://x");
        assert!(c.validate().is_ok());
        c.threshold = 1.5;
        let err = c.validate().expect_err("threshold out of range");
        assert_eq!(err.name(), "ONHAND_RECONCILE__DRIFT_THRESHOLD");
        c.threshold = 0.001;
        c.page_size = 0;
        assert_eq!(
            c.validate().expect_err("page size").name(),
            "ONHAND_RECONCILE__PAGE_SIZE"
        );
        c.page_size = 10;
        c.pushgateway_url = Some("gateway:9091".to_owned());
        assert_eq!(
            c.validate().expect_err("url").name(),
            "ONHAND_PUSHGATEWAY_URL"
        );
    }

    #[test]
    fn settle_defaults_per_kind() {
        let mut c = ReconcileConfig::new(SecretString::from("postgres://x"), "nats://x");
        assert_eq!(c.settle_for(ChannelKind::Amazon), Duration::from_secs(300));
        assert_eq!(c.settle_for(ChannelKind::Shopify), Duration::from_secs(15));
        c.settle = Some(Duration::ZERO);
        assert_eq!(c.settle_for(ChannelKind::Amazon), Duration::ZERO);
    }
}
