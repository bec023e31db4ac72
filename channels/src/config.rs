//! One channel's configuration: which API it speaks, where, with which credentials and
//! rate limit, and its allocation policy. Read from `ONHAND_CHANNEL__<NAME>__<SETTING>`
//! variables, optionally from a mounted file first (a Kubernetes ConfigMap), the
//! environment winning; secrets also from files (`*_FILE`, a mounted Secret).
//!
//! | Setting | Channels | Default |
//! |---|---|---|
//! | `KIND` | all | the channel's name when it is a kind (`shopify`, `amazon`, `ebay`, `woocommerce`, `bigcommerce`, `webhook`, `storefront_kv`) |
//! | `BASE_URL` | HTTP channels | required |
//! | `TIMEOUT_MS` | HTTP channels | 10000 |
//! | `RATE_LIMIT` | HTTP channels | `documented`; `off` sends unthrottled |
//! | `RATE_PER_SEC`, `RATE_BURST` | HTTP channels | the documented limit (override per store plan) |
//! | `TOKEN` / `TOKEN_FILE` | shopify, amazon, ebay, bigcommerce | required |
//! | `API_VERSION`, `REASON` | shopify | `2026-04`, `correction` |
//! | `LOCATION_ID` | shopify (required, a gid), bigcommerce (default 1) | |
//! | `SELLER_ID`, `MARKETPLACE_ID` | amazon | required |
//! | `STORE_HASH` | bigcommerce | required |
//! | `CONSUMER_KEY`, `CONSUMER_SECRET` / `CONSUMER_SECRET_FILE` | woocommerce | required |
//! | `SECRET` / `SECRET_FILE`, `PATH` | webhook | required, `/` |
//! | `MAX_BATCH` | woocommerce (≤ 100), webhook (≤ 10000) | woocommerce 100, webhook 500 |
//! | `REVISIONS_PER_DAY` | ebay | 250 (the documented cap per listing; `off`: no budget) |
//!
//! Policy settings (`ALLOCATION_PCT`, `BUFFER`, `MAX_LISTED`, `ZERO_BELOW`, `WAREHOUSES`)
//! are read by [`onhand_common::policy::policies_from_env`]. A setting that does not apply
//! to the channel's kind is an error, so a typo never goes unnoticed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use onhand_common::ConfigError;
use onhand_common::policy::{
    CHANNEL_ENV_PREFIX, CONNECTION_SETTINGS, ChannelPolicy, policies_from_env,
    validate_channel_name,
};
use secrecy::SecretString;

use crate::amazon::AmazonConfig;
use crate::bigcommerce::BigCommerceConfig;
use crate::ebay::EbayConfig;
use crate::limiter::RateLimit;
use crate::push::ChannelKind;
use crate::shopify::ShopifyConfig;
use crate::webhook::WebhookConfig;
use crate::woocommerce::WooConfig;

/// Most items in one WooCommerce batch (the platform's cap).
const WOO_MAX_BATCH: usize = 100;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How fast the adapter may call the channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateSetting {
    /// The API's documented default (`ChannelApi::default_rate_limit`), adapted at run time
    /// to what the API reports.
    Documented,
    /// No client-side limit (the channel's own throttling still applies).
    Off,
    /// A store plan's limit.
    Custom(RateLimit),
}

/// Where and how to reach one channel's API.
#[derive(Debug, Clone)]
pub enum Connection {
    Shopify {
        base_url: String,
        token: SecretString,
        config: ShopifyConfig,
    },
    Amazon {
        base_url: String,
        token: SecretString,
        config: AmazonConfig,
    },
    Ebay {
        base_url: String,
        token: SecretString,
        config: EbayConfig,
    },
    Woocommerce {
        base_url: String,
        consumer_key: String,
        consumer_secret: SecretString,
        config: WooConfig,
    },
    Bigcommerce {
        base_url: String,
        token: SecretString,
        config: BigCommerceConfig,
    },
    Webhook {
        base_url: String,
        config: WebhookConfig,
    },
    /// The NATS KV bucket `onhand_availability`, on the process's NATS connection.
    StorefrontKv,
}

impl Connection {
    pub fn kind(&self) -> ChannelKind {
        match self {
            Self::Shopify { .. } => ChannelKind::Shopify,
            Self::Amazon { .. } => ChannelKind::Amazon,
            Self::Ebay { .. } => ChannelKind::Ebay,
            Self::Woocommerce { .. } => ChannelKind::Woocommerce,
            Self::Bigcommerce { .. } => ChannelKind::Bigcommerce,
            Self::Webhook { .. } => ChannelKind::Webhook,
            Self::StorefrontKv => ChannelKind::StorefrontKv,
        }
    }
}

/// Everything a projector or the reconciler needs to know about one channel.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    /// The channel's name: `projector-<name>`, `inventory.dlq.<name>`, watermark keys.
    pub name: String,
    pub connection: Connection,
    pub policy: ChannelPolicy,
    pub rate: RateSetting,
    /// The share of the rate limit this process takes (1.0: all of it). A second process on
    /// the same account (the reconciler next to the projector) takes a part, so together
    /// they stay inside the channel's quota.
    pub rate_share: f64,
    pub timeout: Duration,
}

impl ChannelSettings {
    pub fn kind(&self) -> ChannelKind {
        self.connection.kind()
    }

    /// Reads channel `name` from the process environment, after `file` when given.
    pub fn load(name: &str, file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut vars = match file {
            Some(path) => read_env_file(path)?,
            None => BTreeMap::new(),
        };
        for (key, value) in std::env::vars_os() {
            let (Some(key), Some(value)) = (key.to_str(), value.to_str()) else {
                if key.to_string_lossy().starts_with(CHANNEL_ENV_PREFIX) {
                    return Err(ConfigError::invalid(
                        key.to_string_lossy(),
                        "not valid UTF-8",
                    ));
                }
                continue;
            };
            if key.starts_with(CHANNEL_ENV_PREFIX) {
                vars.insert(key.to_owned(), value.to_owned());
            }
        }
        Self::from_vars(name, vars)
    }

    /// Channel `name` from its settings without the variable prefix (`("BASE_URL", …)`),
    /// as code that builds a channel itself (tests, benchmarks) has them.
    pub fn from_settings<K: AsRef<str>>(
        name: &str,
        settings: impl IntoIterator<Item = (K, String)>,
    ) -> Result<Self, ConfigError> {
        let prefix = format!("{CHANNEL_ENV_PREFIX}{}__", name.to_ascii_uppercase());
        Self::from_vars(
            name,
            settings
                .into_iter()
                .map(|(k, v)| (format!("{prefix}{}", k.as_ref()), v)),
        )
    }

    /// Reads channel `name` from `vars` (other channels' and other variables are ignored,
    /// but every `ONHAND_CHANNEL__` variable is validated).
    pub fn from_vars(
        name: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        validate_channel_name(name).map_err(|reason| {
            ConfigError::invalid(format!("{CHANNEL_ENV_PREFIX}{name}"), reason)
        })?;
        let policy = policies_from_env(vars.iter().cloned())?
            .remove(name)
            .unwrap_or_default();
        let prefix = format!("{CHANNEL_ENV_PREFIX}{}__", name.to_ascii_uppercase());
        let mut own = Settings {
            prefix: prefix.clone(),
            values: BTreeMap::new(),
        };
        for (var, value) in vars {
            // policies_from_env has checked the shape; match the channel case-insensitively.
            if var.len() > prefix.len()
                && var.is_char_boundary(prefix.len())
                && var[..prefix.len()].eq_ignore_ascii_case(&prefix)
            {
                let key = var[prefix.len()..].to_ascii_uppercase();
                if CONNECTION_SETTINGS.contains(&key.as_str()) {
                    let value = value.trim().to_owned();
                    if !value.is_empty() {
                        own.values.insert(key, (var, value));
                    }
                }
            }
        }
        let kind = match own.take("KIND") {
            Some((var, value)) => value
                .parse::<ChannelKind>()
                .map_err(|e| ConfigError::invalid(var, e))?,
            None => name
                .parse::<ChannelKind>()
                .map_err(|_| ConfigError::Missing {
                    name: own.var("KIND"),
                })?,
        };
        let settings = own.build(name, kind, policy)?;
        if let Some((var, _)) = own.values.values().next() {
            return Err(ConfigError::invalid(
                var.clone(),
                format!("not a setting of {kind} channels"),
            ));
        }
        Ok(settings)
    }
}

/// One channel's connection variables, consumed as they are read.
struct Settings {
    prefix: String,
    /// KEY → (the variable's full name, its trimmed value).
    values: BTreeMap<String, (String, String)>,
}

impl Settings {
    fn var(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn take(&mut self, key: &str) -> Option<(String, String)> {
        self.values.remove(key)
    }

    fn required(&mut self, key: &str) -> Result<String, ConfigError> {
        self.take(key)
            .map(|(_, v)| v)
            .ok_or_else(|| ConfigError::Missing {
                name: self.var(key),
            })
    }

    fn parsed<T: std::str::FromStr>(
        &mut self,
        key: &str,
        what: &str,
    ) -> Result<Option<T>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some((var, value)) => value
                .parse()
                .map(Some)
                .map_err(|_| ConfigError::invalid(var, format!("must be {what}"))),
        }
    }

    /// `KEY` or `KEY_FILE` (a mounted secret; surrounding whitespace trimmed), not both.
    fn secret(&mut self, key: &str) -> Result<SecretString, ConfigError> {
        let file_key = format!("{key}_FILE");
        match (self.take(key), self.take(&file_key)) {
            (Some((var, _)), Some(_)) => Err(ConfigError::invalid(
                var,
                format!("set either {key} or {file_key}, not both"),
            )),
            (Some((_, value)), None) => Ok(SecretString::from(value)),
            (None, Some((var, path))) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError::invalid(&var, format!("cannot read the file it names: {e}"))
                })?;
                let text = text.trim();
                if text.is_empty() {
                    return Err(ConfigError::invalid(var, "the file it names is empty"));
                }
                Ok(SecretString::from(text.to_owned()))
            }
            (None, None) => Err(ConfigError::Missing {
                name: self.var(key),
            }),
        }
    }

    fn base_url(&mut self) -> Result<String, ConfigError> {
        let var = self.var("BASE_URL");
        let url = self.required("BASE_URL")?;
        let parsed = reqwest::Url::parse(&url)
            .map_err(|e| ConfigError::invalid(&var, format!("not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ConfigError::invalid(
                var,
                "must be an http:// or https:// URL with a host",
            ));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(ConfigError::invalid(
                var,
                "must not carry a query or fragment",
            ));
        }
        Ok(url.trim_end_matches('/').to_owned())
    }

    fn max_batch(&mut self, cap: usize) -> Result<Option<usize>, ConfigError> {
        let var = self.var("MAX_BATCH");
        match self.parsed::<usize>("MAX_BATCH", "a whole number")? {
            Some(n) if n == 0 || n > cap => Err(ConfigError::invalid(
                var,
                format!("must be from 1 to {cap}"),
            )),
            other => Ok(other),
        }
    }

    /// eBay's revision budget: the documented cap, another (an account's own), or `off`.
    fn revisions_per_day(&mut self) -> Result<Option<u32>, ConfigError> {
        let Some((var, value)) = self.take("REVISIONS_PER_DAY") else {
            return Ok(Some(crate::ebay::REVISIONS_PER_DAY));
        };
        if value.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        match value.trim().parse::<u32>() {
            Ok(n) if (25..=1_000_000).contains(&n) => Ok(Some(n)),
            _ => Err(ConfigError::invalid(
                var,
                "must be a whole number of revisions from 25 to 1000000, or off",
            )),
        }
    }

    fn rate(&mut self) -> Result<RateSetting, ConfigError> {
        let limit = self.take("RATE_LIMIT");
        let per_sec = self.parsed::<f64>("RATE_PER_SEC", "a positive number")?;
        let burst = self.parsed::<f64>("RATE_BURST", "a positive number")?;
        for (key, v) in [("RATE_PER_SEC", per_sec), ("RATE_BURST", burst)] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                return Err(ConfigError::invalid(
                    self.var(key),
                    "must be a positive number",
                ));
            }
        }
        match limit.as_ref().map(|(var, v)| (var, v.to_ascii_lowercase())) {
            Some((var, v)) if v == "off" => {
                if per_sec.is_some() || burst.is_some() {
                    return Err(ConfigError::invalid(
                        var,
                        "is off; RATE_PER_SEC and RATE_BURST would be ignored",
                    ));
                }
                Ok(RateSetting::Off)
            }
            Some((var, v)) if v != "documented" => Err(ConfigError::invalid(
                var,
                "must be documented or off (set RATE_PER_SEC / RATE_BURST for a store plan)",
            )),
            _ => Ok(match (per_sec, burst) {
                (None, None) => RateSetting::Documented,
                (Some(refill_per_sec), burst) => RateSetting::Custom(RateLimit {
                    capacity: burst.unwrap_or(refill_per_sec.max(1.0)),
                    refill_per_sec,
                }),
                (None, Some(_)) => {
                    return Err(ConfigError::Missing {
                        name: self.var("RATE_PER_SEC"),
                    });
                }
            }),
        }
    }

    fn build(
        &mut self,
        name: &str,
        kind: ChannelKind,
        policy: ChannelPolicy,
    ) -> Result<ChannelSettings, ConfigError> {
        let (rate, timeout) = if kind == ChannelKind::StorefrontKv {
            (RateSetting::Off, DEFAULT_TIMEOUT)
        } else {
            let rate = self.rate()?;
            let timeout_var = self.var("TIMEOUT_MS");
            let timeout =
                match self.parsed::<u64>("TIMEOUT_MS", "a whole number of milliseconds")? {
                    None => DEFAULT_TIMEOUT,
                    Some(ms) if (1..=600_000).contains(&ms) => Duration::from_millis(ms),
                    Some(_) => {
                        return Err(ConfigError::invalid(
                            timeout_var,
                            "must be from 1 to 600000 milliseconds",
                        ));
                    }
                };
            (rate, timeout)
        };
        let connection = match kind {
            ChannelKind::Shopify => {
                let base_url = self.base_url()?;
                let token = self.secret("TOKEN")?;
                let mut config = ShopifyConfig::new(self.required("LOCATION_ID")?);
                if !config.location_id.starts_with("gid://shopify/Location/") {
                    return Err(ConfigError::invalid(
                        self.var("LOCATION_ID"),
                        "must be a location gid (gid://shopify/Location/<id>)",
                    ));
                }
                if let Some((var, version)) = self.take("API_VERSION") {
                    if !valid_api_version(&version) {
                        return Err(ConfigError::invalid(
                            var,
                            "must be a Shopify API version YYYY-MM, 2026-01 or later",
                        ));
                    }
                    config.api_version = version;
                }
                if let Some((_, reason)) = self.take("REASON") {
                    config.reason = reason;
                }
                Connection::Shopify {
                    base_url,
                    token,
                    config,
                }
            }
            ChannelKind::Amazon => Connection::Amazon {
                base_url: self.base_url()?,
                token: self.secret("TOKEN")?,
                config: AmazonConfig {
                    seller_id: self.required("SELLER_ID")?,
                    marketplace_id: self.required("MARKETPLACE_ID")?,
                },
            },
            ChannelKind::Ebay => Connection::Ebay {
                base_url: self.base_url()?,
                token: self.secret("TOKEN")?,
                config: EbayConfig {
                    revisions_per_day: self.revisions_per_day()?,
                },
            },
            ChannelKind::Woocommerce => {
                let base_url = self.base_url()?;
                let consumer_key = self.required("CONSUMER_KEY")?;
                let consumer_secret = self.secret("CONSUMER_SECRET")?;
                let mut config = WooConfig::default();
                if let Some(n) = self.max_batch(WOO_MAX_BATCH)? {
                    config.batch_limit = n;
                }
                Connection::Woocommerce {
                    base_url,
                    consumer_key,
                    consumer_secret,
                    config,
                }
            }
            ChannelKind::Bigcommerce => {
                let base_url = self.base_url()?;
                let token = self.secret("TOKEN")?;
                let store_hash = self.required("STORE_HASH")?;
                if !store_hash.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(ConfigError::invalid(
                        self.var("STORE_HASH"),
                        "must be letters and digits",
                    ));
                }
                let location_var = self.var("LOCATION_ID");
                let location_id = match self.parsed::<i64>("LOCATION_ID", "a whole number")? {
                    None => 1,
                    Some(id) if id > 0 => id,
                    Some(_) => return Err(ConfigError::invalid(location_var, "must be ≥ 1")),
                };
                Connection::Bigcommerce {
                    base_url,
                    token,
                    config: BigCommerceConfig {
                        store_hash,
                        location_id,
                    },
                }
            }
            ChannelKind::Webhook => {
                let base_url = self.base_url()?;
                let mut config = WebhookConfig::new(self.secret("SECRET")?);
                if let Some((var, path)) = self.take("PATH") {
                    if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
                        return Err(ConfigError::invalid(
                            var,
                            "must be a path starting with '/', without query or spaces",
                        ));
                    }
                    config.path = path;
                }
                if let Some(n) = self.max_batch(10_000)? {
                    config.max_batch = n;
                }
                Connection::Webhook { base_url, config }
            }
            ChannelKind::StorefrontKv => Connection::StorefrontKv,
        };
        Ok(ChannelSettings {
            name: name.to_owned(),
            connection,
            policy,
            rate,
            rate_share: 1.0,
            timeout,
        })
    }
}

fn valid_api_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
        && v >= "2026-01"
        && matches!(&v[5..], "01" | "04" | "07" | "10")
}

/// `KEY=value` lines (a ConfigMap rendered as an env file): blank lines and `#` comments
/// skipped, an optional `export `, values optionally in matching quotes. Only
/// `ONHAND_CHANNEL__` settings belong here; anything else is an error naming the line.
pub fn read_env_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let file_name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::invalid(&file_name, format!("cannot read: {e}")))?;
    let mut vars = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("{file_name}:{}", n + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(ConfigError::invalid(at, "expected KEY=value"));
        };
        let key = key.trim();
        if !key.starts_with(CHANNEL_ENV_PREFIX) {
            return Err(ConfigError::invalid(
                at,
                format!(
                    "only {CHANNEL_ENV_PREFIX}<NAME>__<SETTING> settings belong in a channel file"
                ),
            ));
        }
        let value = value.trim();
        let value = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        if vars.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(ConfigError::invalid(at, format!("{key} is set twice")));
        }
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn load(name: &str, pairs: &[(&str, &str)]) -> Result<ChannelSettings, ConfigError> {
        ChannelSettings::from_vars(name, vars(pairs))
    }

    #[test]
    fn shopify_with_plan_rate_and_policy() {
        let s = load(
            "shopify",
            &[
                (
                    "ONHAND_CHANNEL__SHOPIFY__BASE_URL",
                    "https://acme.myshopify.com/",
                ),
                ("ONHAND_CHANNEL__SHOPIFY__TOKEN", "shpat_secret"),
                (
                    "ONHAND_CHANNEL__SHOPIFY__LOCATION_ID",
                    "gid://shopify/Location/7",
                ),
                ("ONHAND_CHANNEL__SHOPIFY__RATE_PER_SEC", "200"),
                ("ONHAND_CHANNEL__SHOPIFY__RATE_BURST", "2000"),
                ("ONHAND_CHANNEL__SHOPIFY__ALLOCATION_PCT", "80"),
                ("ONHAND_CHANNEL__EBAY__BUFFER", "1"),
                ("PATH", "/usr/bin"),
            ],
        )
        .expect("valid");
        assert_eq!(s.kind(), ChannelKind::Shopify);
        assert_eq!(s.policy.allocation_pct, 80);
        assert_eq!(
            s.rate,
            RateSetting::Custom(RateLimit {
                capacity: 2000.0,
                refill_per_sec: 200.0
            })
        );
        let Connection::Shopify {
            base_url,
            token,
            config,
        } = &s.connection
        else {
            panic!("shopify connection");
        };
        assert_eq!(base_url, "https://acme.myshopify.com");
        assert_eq!(token.expose_secret(), "shpat_secret");
        assert_eq!(config.location_id, "gid://shopify/Location/7");
        assert!(
            !format!("{s:?}").contains("shpat_secret"),
            "secrets never print"
        );
    }

    #[test]
    fn kind_names_another_channel() {
        let s = load(
            "shop-eu",
            &[
                ("ONHAND_CHANNEL__SHOP-EU__KIND", "woocommerce"),
                (
                    "ONHAND_CHANNEL__SHOP-EU__BASE_URL",
                    "http://127.0.0.1:8070/woocommerce",
                ),
                ("ONHAND_CHANNEL__SHOP-EU__CONSUMER_KEY", "ck"),
                ("ONHAND_CHANNEL__SHOP-EU__CONSUMER_SECRET", "cs"),
                ("ONHAND_CHANNEL__SHOP-EU__MAX_BATCH", "50"),
                ("ONHAND_CHANNEL__SHOP-EU__RATE_LIMIT", "off"),
            ],
        )
        .expect("valid");
        assert_eq!(s.kind(), ChannelKind::Woocommerce);
        assert_eq!(s.rate, RateSetting::Off);
        let Connection::Woocommerce { config, .. } = &s.connection else {
            panic!("woo");
        };
        assert_eq!(config.batch_limit, 50);
    }

    #[test]
    fn storefront_needs_nothing() {
        let s = load("storefront_kv", &[]).expect("valid");
        assert!(matches!(s.connection, Connection::StorefrontKv));
    }

    #[test]
    fn secrets_come_from_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "shpat_from_file\n").expect("write");
        let s = load(
            "bigcommerce",
            &[
                (
                    "ONHAND_CHANNEL__BIGCOMMERCE__BASE_URL",
                    "https://api.bigcommerce.com",
                ),
                (
                    "ONHAND_CHANNEL__BIGCOMMERCE__TOKEN_FILE",
                    path.to_str().expect("utf-8"),
                ),
                ("ONHAND_CHANNEL__BIGCOMMERCE__STORE_HASH", "abc123"),
            ],
        )
        .expect("valid");
        let Connection::Bigcommerce { token, config, .. } = &s.connection else {
            panic!("bigcommerce");
        };
        assert_eq!(token.expose_secret(), "shpat_from_file");
        assert_eq!(config.location_id, 1);
    }

    #[test]
    fn errors_name_the_variable_and_never_the_value() {
        let base = [
            (
                "ONHAND_CHANNEL__AMAZON__BASE_URL",
                "https://sellingpartnerapi-na.amazon.com",
            ),
            ("ONHAND_CHANNEL__AMAZON__TOKEN", "Atza|s3cr3t"),
            ("ONHAND_CHANNEL__AMAZON__SELLER_ID", "A1"),
            ("ONHAND_CHANNEL__AMAZON__MARKETPLACE_ID", "ATVPDKIKX0DER"),
        ];
        load("amazon", &base).expect("the base case is valid");
        let cases: &[(&str, Option<&str>, &str)] = &[
            // (variable, value or None to remove it, the variable the error must name)
            (
                "ONHAND_CHANNEL__AMAZON__BASE_URL",
                None,
                "ONHAND_CHANNEL__AMAZON__BASE_URL",
            ),
            (
                "ONHAND_CHANNEL__AMAZON__BASE_URL",
                Some("ftp://x"),
                "ONHAND_CHANNEL__AMAZON__BASE_URL",
            ),
            (
                "ONHAND_CHANNEL__AMAZON__BASE_URL",
                Some("not a url"),
                "ONHAND_CHANNEL__AMAZON__BASE_URL",
            ),
            (
                "ONHAND_CHANNEL__AMAZON__TOKEN",
                None,
                "ONHAND_CHANNEL__AMAZON__TOKEN",
            ),
            (
                "ONHAND_CHANNEL__AMAZON__TOKEN_FILE",
                Some("/nonexistent/x"),
                "ONHAND_CHANNEL__AMAZON__TOKEN",
            ),
            (
                "ONHAND_CHANNEL__AMAZON__SELLER_ID",
                None,
                "ONHAND_CHANNEL__AMAZON__SELLER_ID",
            ),
            (
                "ONHAND_CHANNEL__AMAZON__STORE_HASH",
                Some("x"),
                "ONHAND_CHANNEL__AMAZON__STORE_HASH",
            ),
            (
                "ONHAND_CHANNEL__AMAZON__RATE_LIMIT",
                Some("fast"),
                "ONHAND_CHANNEL__AMAZON__RATE_LIMIT",
            ),
            (
                "ONHAND_CHANNEL__AMAZON__RATE_PER_SEC",
                Some("-1"),
                "ONHAND_CHANNEL__AMAZON__RATE_PER_SEC",
            ),
            (
                "ONHAND_CHANNEL__AMAZON__RATE_BURST",
                Some("5"),
                "ONHAND_CHANNEL__AMAZON__RATE_PER_SEC",
            ),
            (
                "ONHAND_CHANNEL__AMAZON__TIMEOUT_MS",
                Some("0"),
                "ONHAND_CHANNEL__AMAZON__TIMEOUT_MS",
            ),
            (
                "ONHAND_CHANNEL__AMAZON__KIND",
                Some("etsy"),
                "ONHAND_CHANNEL__AMAZON__KIND",
            ),
            (
                "ONHAND_CHANNEL__AMAZON__TOKENS",
                Some("x"),
                "ONHAND_CHANNEL__AMAZON__TOKENS",
            ),
            (
                "ONHAND_CHANNEL__AMAZON__BUFFER",
                Some("-2"),
                "ONHAND_CHANNEL__AMAZON__BUFFER",
            ),
        ];
        for (var, value, named) in cases {
            let mut pairs: Vec<(&str, &str)> =
                base.iter().filter(|(k, _)| k != var).copied().collect();
            if let Some(value) = value {
                pairs.push((var, value));
            }
            let err = load("amazon", &pairs).expect_err(&format!("{var}={value:?} is rejected"));
            assert_eq!(err.name(), *named, "{var}={value:?}: {err}");
            assert!(!err.to_string().contains("s3cr3t"), "{err}");
        }
        let err = load("etsy", &[]).expect_err("no kind");
        assert_eq!(err.name(), "ONHAND_CHANNEL__ETSY__KIND");
        let err = load("Shop", &[]).expect_err("uppercase name");
        assert!(err.to_string().contains("lowercase"), "{err}");
    }

    #[test]
    fn ebays_revision_budget_is_the_documented_cap_another_or_off() {
        let ebay = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = vec![
                ("ONHAND_CHANNEL__EBAY__BASE_URL", "https://api.ebay.com"),
                ("ONHAND_CHANNEL__EBAY__TOKEN", "Bearer x"),
            ];
            pairs.extend_from_slice(extra);
            load("ebay", &pairs).map(|s| match s.connection {
                Connection::Ebay { config, .. } => config.revisions_per_day,
                other => panic!("not ebay: {other:?}"),
            })
        };
        assert_eq!(ebay(&[]).expect("default"), Some(250));
        assert_eq!(
            ebay(&[("ONHAND_CHANNEL__EBAY__REVISIONS_PER_DAY", "1000")]).expect("raised"),
            Some(1000)
        );
        assert_eq!(
            ebay(&[("ONHAND_CHANNEL__EBAY__REVISIONS_PER_DAY", "OFF")]).expect("off"),
            None
        );
        for bad in ["10", "ten", "-250", "2.5"] {
            let err = ebay(&[("ONHAND_CHANNEL__EBAY__REVISIONS_PER_DAY", bad)]).expect_err(bad);
            assert_eq!(
                err.name(),
                "ONHAND_CHANNEL__EBAY__REVISIONS_PER_DAY",
                "{bad}: {err}"
            );
            assert!(
                err.to_string().contains("from 25 to 1000000, or off"),
                "{err}"
            );
        }
        // Only eBay has one.
        let err = load(
            "shopify",
            &[
                (
                    "ONHAND_CHANNEL__SHOPIFY__BASE_URL",
                    "https://acme.myshopify.com",
                ),
                ("ONHAND_CHANNEL__SHOPIFY__TOKEN", "shpat_x"),
                (
                    "ONHAND_CHANNEL__SHOPIFY__LOCATION_ID",
                    "gid://shopify/Location/7",
                ),
                ("ONHAND_CHANNEL__SHOPIFY__REVISIONS_PER_DAY", "250"),
            ],
        )
        .expect_err("not a shopify setting");
        assert_eq!(
            err.name(),
            "ONHAND_CHANNEL__SHOPIFY__REVISIONS_PER_DAY",
            "{err}"
        );
    }

    #[test]
    fn token_and_token_file_together_are_ambiguous() {
        let err = load(
            "ebay",
            &[
                ("ONHAND_CHANNEL__EBAY__BASE_URL", "https://api.ebay.com"),
                ("ONHAND_CHANNEL__EBAY__TOKEN", "Bearer x"),
                ("ONHAND_CHANNEL__EBAY__TOKEN_FILE", "/run/secrets/ebay"),
            ],
        )
        .expect_err("ambiguous");
        assert_eq!(err.name(), "ONHAND_CHANNEL__EBAY__TOKEN");
    }

    #[test]
    fn env_file_is_parsed_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("channel.env");
        std::fs::write(
            &path,
            "# webhook\nexport ONHAND_CHANNEL__WEBHOOK__BASE_URL=\"http://127.0.0.1:9/hook\"\n\n\
             ONHAND_CHANNEL__WEBHOOK__SECRET='k'\nONHAND_CHANNEL__WEBHOOK__PATH=/v1/stock\n",
        )
        .expect("write");
        let vars = read_env_file(&path).expect("valid file");
        let s = ChannelSettings::from_vars("webhook", vars).expect("valid");
        let Connection::Webhook { base_url, config } = &s.connection else {
            panic!("webhook");
        };
        assert_eq!(base_url, "http://127.0.0.1:9/hook");
        assert_eq!(config.path, "/v1/stock");
        assert_eq!(config.secret.expose_secret(), "k");

        std::fs::write(&path, "NATS_URL=nats://x\n").expect("write");
        let err = read_env_file(&path).expect_err("foreign key");
        assert!(err.name().ends_with(":1"), "{err}");
        std::fs::write(
            &path,
            "ONHAND_CHANNEL__X__BUFFER=1\nONHAND_CHANNEL__X__BUFFER=2\n",
        )
        .expect("write");
        let err = read_env_file(&path).expect_err("twice");
        assert!(err.name().ends_with(":2"), "{err}");
        std::fs::write(&path, "just words\n").expect("write");
        assert!(read_env_file(&path).is_err());
    }
}
