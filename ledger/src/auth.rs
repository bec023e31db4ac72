//! Bearer tokens with scopes: `stock:write` (WMS/ERP), `orders:write` (storefronts, OMS),
//! `read`. Tokens come from configuration; only their SHA-256 digests are kept in memory.

use std::collections::BTreeSet;

use axum::http::HeaderMap;
use onhand_common::config::ConfigError;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::LedgerError;

pub const SCOPE_STOCK_WRITE: &str = "stock:write";
pub const SCOPE_ORDERS_WRITE: &str = "orders:write";
pub const SCOPE_READ: &str = "read";
const SCOPES: [&str; 3] = [SCOPE_STOCK_WRITE, SCOPE_ORDERS_WRITE, SCOPE_READ];
const MIN_TOKEN_LEN: usize = 16;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenSpec {
    name: String,
    scopes: Vec<String>,
    token: SecretString,
}

/// A caller the ledger knows.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    scopes: BTreeSet<&'static str>,
    digest: [u8; 32],
}

impl Principal {
    pub fn require(&self, scope: &'static str) -> Result<(), LedgerError> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(LedgerError::Forbidden { scope })
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tokens {
    principals: Vec<Principal>,
}

impl Tokens {
    /// Parse `[{"name": "...", "scopes": ["stock:write", ...], "token": "..."}]` from the
    /// variable `var` (named in every error; the token values never appear in one).
    pub fn parse(var: &str, json: &SecretString) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            name: var.to_owned(),
            reason,
        };
        let specs: Vec<TokenSpec> = serde_json::from_str(json.expose_secret()).map_err(|e| {
            invalid(format!(
                "expected a JSON list of {{name, scopes, token}}: {}",
                e.to_string().split(" at line").next().unwrap_or_default()
            ))
        })?;
        if specs.is_empty() {
            return Err(invalid("define at least one token".to_owned()));
        }
        let mut principals: Vec<Principal> = Vec::with_capacity(specs.len());
        for spec in specs {
            if spec.name.is_empty() || spec.name.len() > 64 || spec.name.contains(':') {
                return Err(invalid(format!(
                    "token name {:?} must be 1 to 64 characters without ':'",
                    spec.name
                )));
            }
            if principals.iter().any(|p| p.name == spec.name) {
                return Err(invalid(format!(
                    "token name {:?} is defined twice",
                    spec.name
                )));
            }
            if spec.token.expose_secret().len() < MIN_TOKEN_LEN {
                return Err(invalid(format!(
                    "the token of {:?} is shorter than {MIN_TOKEN_LEN} characters",
                    spec.name
                )));
            }
            let mut scopes = BTreeSet::new();
            for scope in &spec.scopes {
                let known = SCOPES.iter().find(|s| *s == scope).ok_or_else(|| {
                    invalid(format!(
                        "token {:?} has unknown scope {scope:?} (known: stock:write, orders:write, read)",
                        spec.name
                    ))
                })?;
                scopes.insert(*known);
            }
            let digest = digest(spec.token.expose_secret());
            if principals.iter().any(|p| p.digest == digest) {
                return Err(invalid(format!("token of {:?} is reused", spec.name)));
            }
            principals.push(Principal {
                name: spec.name,
                scopes,
                digest,
            });
        }
        Ok(Self { principals })
    }

    /// The configured callers' names (never their tokens), for the startup log.
    pub fn names(&self) -> Vec<&str> {
        self.principals.iter().map(|p| p.name.as_str()).collect()
    }

    /// The caller named by the `Authorization: Bearer` header.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<&Principal, LedgerError> {
        let value = headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or(LedgerError::Unauthenticated)?
            .to_str()
            .map_err(|_| LedgerError::Unauthenticated)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(LedgerError::Unauthenticated)?
            .trim();
        // Compare digests of every entry: the time taken does not depend on which one matches.
        let presented = digest(token);
        let mut found = None;
        for p in &self.principals {
            if p.digest == presented {
                found = Some(p);
            }
        }
        found.ok_or(LedgerError::Unauthenticated)
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn tokens(json: &str) -> Result<Tokens, ConfigError> {
        Tokens::parse(
            "ONHAND_LEDGER__TOKENS",
            &SecretString::from(json.to_owned()),
        )
    }

    #[test]
    fn authenticates_and_checks_scopes() {
        let t = tokens(
            r#"[{"name":"wms","scopes":["stock:write","read"],"token":"wms-token-0123456789"}]"#,
        )
        .expect("valid tokens");
        let mut headers = HeaderMap::new();
        assert!(matches!(
            t.authenticate(&headers),
            Err(LedgerError::Unauthenticated)
        ));
        headers.insert(
            "authorization",
            HeaderValue::from_static("Bearer nope-nope-nope-nope"),
        );
        assert!(matches!(
            t.authenticate(&headers),
            Err(LedgerError::Unauthenticated)
        ));
        headers.insert(
            "authorization",
            HeaderValue::from_static("Bearer wms-token-0123456789"),
        );
        let p = t.authenticate(&headers).expect("known token");
        assert_eq!(p.name, "wms");
        assert!(p.require(SCOPE_STOCK_WRITE).is_ok());
        assert!(matches!(
            p.require(SCOPE_ORDERS_WRITE),
            Err(LedgerError::Forbidden { .. })
        ));
    }

    #[test]
    fn rejects_bad_configuration_without_echoing_tokens() {
        for bad in [
            "",
            "[]",
            r#"[{"name":"a","scopes":["read"],"token":"short"}]"#,
            r#"[{"name":"a","scopes":["admin"],"token":"long-enough-secret-1"}]"#,
            r#"[{"name":"a","scopes":["read"],"token":"long-enough-secret-1"},{"name":"a","scopes":["read"],"token":"long-enough-secret-2"}]"#,
        ] {
            let err = tokens(bad).expect_err(bad).to_string();
            assert!(err.contains("ONHAND_LEDGER__TOKENS"), "{err}");
            assert!(!err.contains("long-enough-secret"), "{err}");
        }
    }
}
