//! Environment configuration helpers: typed reads with the variable's name in every
//! error, and secrets wrapped in [`SecretString`] so they never print.
//!
//! Services read the environment only at startup and fail fast on the first error.
//! Errors never contain a variable's value. An empty value counts as unset.

use std::env::{self, VarError};
use std::fmt::Display;
use std::str::FromStr;

use secrecy::SecretString;
use thiserror::Error;

/// A configuration variable is missing or unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("environment variable {name} is required but not set")]
    Missing {
        /// The variable's name.
        name: String,
    },
    /// A variable is set to something unusable.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable's name.
        name: String,
        /// What is wrong (never the value itself).
        reason: String,
    },
}

impl ConfigError {
    /// The name of the offending variable.
    pub fn name(&self) -> &str {
        match self {
            ConfigError::Missing { name } | ConfigError::Invalid { name, .. } => name,
        }
    }

    /// A variable set to something unusable; `reason` must not contain the value.
    pub fn invalid(name: impl Into<String>, reason: impl Display) -> ConfigError {
        ConfigError::Invalid {
            name: name.into(),
            reason: reason.to_string(),
        }
    }
}

/// Reads `name` and parses it, or returns `default` when it is unset or empty.
///
/// The error carries `T::Err`'s message; do not use this for secrets.
pub fn env_or<T: FromStr>(name: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: Display,
{
    parse_or(name, lookup(name)?, default)
}

/// Reads `name`, which must be set and non-empty.
pub fn env_required(name: &str) -> Result<String, ConfigError> {
    lookup(name)?.ok_or_else(|| ConfigError::Missing {
        name: name.to_owned(),
    })
}

/// Reads the secret `name`; `None` when unset or empty.
pub fn env_secret(name: &str) -> Result<Option<SecretString>, ConfigError> {
    Ok(lookup(name)?.map(SecretString::from))
}

/// `Some(value)` when set and non-empty, `None` when unset or empty.
fn lookup(name: &str) -> Result<Option<String>, ConfigError> {
    match env::var(name) {
        Ok(value) if value.is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(VarError::NotPresent) => Ok(None),
        Err(VarError::NotUnicode(_)) => Err(ConfigError::invalid(name, "not valid UTF-8")),
    }
}

fn parse_or<T: FromStr>(name: &str, value: Option<String>, default: T) -> Result<T, ConfigError>
where
    T::Err: Display,
{
    match value {
        None => Ok(default),
        Some(value) => value
            .trim()
            .parse()
            .map_err(|e| ConfigError::invalid(name, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    const UNSET: &str = "ONHAND_TEST_SURELY_UNSET_7f3a9c";

    #[test]
    fn unset_uses_default_or_reports_missing() {
        assert_eq!(env_or(UNSET, 30u64), Ok(30));
        assert_eq!(
            env_required(UNSET),
            Err(ConfigError::Missing {
                name: UNSET.to_owned()
            })
        );
        assert!(env_secret(UNSET).expect("no error").is_none());
    }

    #[test]
    fn set_variables_are_read() {
        // PATH is set in every test environment.
        assert!(!env_required("PATH").expect("PATH is set").is_empty());
        let secret = env_secret("PATH").expect("no error").expect("set");
        assert!(!secret.expose_secret().is_empty());
        assert!(!format!("{secret:?}").contains('/'), "secrets never print");
    }

    #[test]
    fn parse_errors_name_the_variable_not_the_value() {
        let err = parse_or("ONHAND_ACK_WAIT_SECS", Some("ten".to_owned()), 30u64)
            .expect_err("not a number");
        assert_eq!(err.name(), "ONHAND_ACK_WAIT_SECS");
        let msg = err.to_string();
        assert!(msg.starts_with("environment variable ONHAND_ACK_WAIT_SECS is invalid"));
        assert!(!msg.contains("ten"), "{msg}");
        assert_eq!(parse_or("X", Some(" 42 ".to_owned()), 0u16), Ok(42));
        assert_eq!(parse_or("X", None, 7u16), Ok(7));
    }
}
