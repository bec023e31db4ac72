//! Channel policies from the environment:
//! `ONHAND_CHANNEL__<NAME>__{ALLOCATION_PCT,BUFFER,MAX_LISTED,ZERO_BELOW,WAREHOUSES}`.
//!
//! Channel names are lowercased (`ONHAND_CHANNEL__SHOPIFY__BUFFER` configures
//! `shopify`); a channel mentioned by any variable exists, with defaults for the rest.
//! Each value is checked on its own so the error names the variable to fix.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::ConfigError;
use crate::policy::ChannelPolicy;
use crate::warehouse::validate_warehouse;

/// Prefix of the per-channel policy variables.
pub const CHANNEL_ENV_PREFIX: &str = "ONHAND_CHANNEL__";

/// Policy settings, read here.
pub const POLICY_SETTINGS: &[&str] = &[
    "ALLOCATION_PCT",
    "BUFFER",
    "MAX_LISTED",
    "ZERO_BELOW",
    "WAREHOUSES",
];

/// How to reach the channel (kind, URL, credentials, rate limit): read by the channels
/// crate (`onhand_channels::config`), accepted and skipped here so one set of
/// `ONHAND_CHANNEL__<NAME>__*` variables configures both.
pub const CONNECTION_SETTINGS: &[&str] = &[
    "KIND",
    "BASE_URL",
    "TIMEOUT_MS",
    "RATE_LIMIT",
    "RATE_PER_SEC",
    "RATE_BURST",
    "TOKEN",
    "TOKEN_FILE",
    "API_VERSION",
    "LOCATION_ID",
    "REASON",
    "SELLER_ID",
    "MARKETPLACE_ID",
    "STORE_HASH",
    "CONSUMER_KEY",
    "CONSUMER_SECRET",
    "CONSUMER_SECRET_FILE",
    "SECRET",
    "SECRET_FILE",
    "PATH",
    "MAX_BATCH",
    "REVISIONS_PER_DAY",
];

/// Longest channel name, in characters.
const MAX_CHANNEL_NAME: usize = 64;

/// Builds every channel's policy from `vars` (e.g. `std::env::vars()`); other
/// variables are ignored. Unknown keys, bad values and bad channel names are errors
/// naming the variable.
pub fn policies_from_env(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, ChannelPolicy>, ConfigError> {
    let mut policies: BTreeMap<String, ChannelPolicy> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix(CHANNEL_ENV_PREFIX) else {
            continue;
        };
        let Some((channel, key)) = rest.split_once("__") else {
            return Err(ConfigError::invalid(
                name,
                "expected ONHAND_CHANNEL__<NAME>__<SETTING>",
            ));
        };
        let channel = channel.to_ascii_lowercase();
        validate_channel_name(&channel).map_err(|reason| ConfigError::invalid(&name, reason))?;
        let key = key.to_ascii_uppercase();
        if !seen.insert((channel.clone(), key.clone())) {
            return Err(ConfigError::invalid(
                name,
                "set more than once (channel names are case-insensitive)",
            ));
        }
        let policy = policies.entry(channel).or_default();
        let value = value.trim();
        match key.as_str() {
            "ALLOCATION_PCT" => {
                policy.allocation_pct =
                    value
                        .parse()
                        .ok()
                        .filter(|pct| *pct <= 100)
                        .ok_or_else(|| {
                            ConfigError::invalid(&name, "must be a whole number from 0 to 100")
                        })?;
            }
            "BUFFER" => policy.buffer = non_negative(&name, value)?,
            "MAX_LISTED" => policy.max_listed = non_negative(&name, value)?,
            "ZERO_BELOW" => policy.zero_below = non_negative(&name, value)?,
            "WAREHOUSES" => {
                let mut set = BTreeSet::new();
                for id in value.split(',').map(str::trim) {
                    validate_warehouse(id).map_err(|e| ConfigError::invalid(&name, e))?;
                    set.insert(id.to_owned());
                }
                policy.warehouses = Some(set);
            }
            other if CONNECTION_SETTINGS.contains(&other) => {}
            _ => {
                return Err(ConfigError::invalid(
                    name,
                    format!(
                        "unknown setting; expected one of {}, {}",
                        POLICY_SETTINGS.join(", "),
                        CONNECTION_SETTINGS.join(", ")
                    ),
                ));
            }
        }
    }
    for (channel, policy) in &policies {
        policy.validate().map_err(|e| {
            ConfigError::invalid(
                format!("{CHANNEL_ENV_PREFIX}{}", channel.to_ascii_uppercase()),
                e,
            )
        })?;
    }
    Ok(policies)
}

/// A channel name is used in subjects (`inventory.dlq.<channel>`), consumer names
/// (`projector-<channel>`) and watermark keys: 1 to 64 lowercase letters, digits, `_`, `-`.
pub fn validate_channel_name(channel: &str) -> Result<(), &'static str> {
    if channel.is_empty()
        || channel.len() > MAX_CHANNEL_NAME
        || !channel
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(
            "channel name must be 1 to 64 characters of lowercase letters, digits, '_' and '-'",
        );
    }
    Ok(())
}

fn non_negative(name: &str, value: &str) -> Result<i64, ConfigError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .ok_or_else(|| ConfigError::invalid(name, "must be a whole number ≥ 0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn err_name(pairs: &[(&str, &str)]) -> String {
        policies_from_env(vars(pairs))
            .expect_err("should be rejected")
            .name()
            .to_owned()
    }

    #[test]
    fn reads_channels_with_defaults() {
        let policies = policies_from_env(vars(&[
            ("PATH", "/usr/bin"),
            ("ONHAND_CHANNEL__SHOPIFY__ALLOCATION_PCT", "60"),
            ("ONHAND_CHANNEL__SHOPIFY__BUFFER", " 2 "),
            ("ONHAND_CHANNEL__SHOPIFY__WAREHOUSES", "ams-1, nyc-1"),
            ("ONHAND_CHANNEL__EBAY__MAX_LISTED", "5"),
            ("ONHAND_CHANNEL__EBAY__ZERO_BELOW", "1"),
        ]))
        .expect("valid");
        assert_eq!(policies.keys().collect::<Vec<_>>(), ["ebay", "shopify"]);
        assert_eq!(
            policies["shopify"],
            ChannelPolicy {
                allocation_pct: 60,
                buffer: 2,
                warehouses: Some(BTreeSet::from(["ams-1".to_owned(), "nyc-1".to_owned()])),
                ..ChannelPolicy::default()
            }
        );
        assert_eq!(
            policies["ebay"],
            ChannelPolicy {
                max_listed: 5,
                zero_below: 1,
                ..ChannelPolicy::default()
            }
        );
        assert!(policies_from_env(Vec::new()).expect("empty").is_empty());
    }

    #[test]
    fn connection_settings_are_left_to_the_channels_crate() {
        let policies = policies_from_env(vars(&[
            (
                "ONHAND_CHANNEL__SHOPIFY__BASE_URL",
                "https://x.myshopify.com",
            ),
            ("ONHAND_CHANNEL__SHOPIFY__TOKEN", "shpat_1"),
            ("ONHAND_CHANNEL__SHOPIFY__BUFFER", "3"),
        ]))
        .expect("valid");
        assert_eq!(policies["shopify"].buffer, 3);
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&str, &str)] = &[
            ("ONHAND_CHANNEL__SHOPIFY__ALLOCATION_PCT", "101"),
            ("ONHAND_CHANNEL__SHOPIFY__ALLOCATION_PCT", "-1"),
            ("ONHAND_CHANNEL__SHOPIFY__BUFFER", "-1"),
            ("ONHAND_CHANNEL__SHOPIFY__BUFFER", "two"),
            ("ONHAND_CHANNEL__SHOPIFY__MAX_LISTED", "1.5"),
            ("ONHAND_CHANNEL__SHOPIFY__ZERO_BELOW", ""),
            ("ONHAND_CHANNEL__SHOPIFY__WAREHOUSES", ""),
            ("ONHAND_CHANNEL__SHOPIFY__WAREHOUSES", "ams-1,,nyc-1"),
            ("ONHAND_CHANNEL__SHOPIFY__WAREHOUSES", "ams 1"),
            ("ONHAND_CHANNEL__SHOPIFY__BUFFERS", "1"),
            ("ONHAND_CHANNEL__SHOPIFY", "1"),
            ("ONHAND_CHANNEL____BUFFER", "1"),
            ("ONHAND_CHANNEL__SHOP.IFY__BUFFER", "1"),
            ("ONHAND_CHANNEL__MY__SHOP__BUFFER", "1"),
        ];
        for (name, value) in cases {
            assert_eq!(err_name(&[(name, value)]), *name, "{name}={value}");
        }
    }

    #[test]
    fn duplicate_settings_are_rejected() {
        let name = err_name(&[
            ("ONHAND_CHANNEL__SHOPIFY__BUFFER", "1"),
            ("ONHAND_CHANNEL__Shopify__BUFFER", "2"),
        ]);
        assert_eq!(name, "ONHAND_CHANNEL__Shopify__BUFFER");
    }

    #[test]
    fn error_does_not_echo_the_value() {
        let err = policies_from_env(vars(&[("ONHAND_CHANNEL__X__BUFFER", "s3cr3t")]))
            .expect_err("invalid");
        assert!(!err.to_string().contains("s3cr3t"));
    }
}
