//! Validation of the fields every command shares: SKUs, warehouses, quantities, order ids.
//! Each check names the field (with its JSON path, e.g. `lines[2].qty`) in its error.

use std::collections::BTreeSet;

use onhand_common::Sku;
use serde::de::DeserializeOwned;

use crate::error::LedgerError;

/// Largest quantity accepted in any single command.
pub const MAX_QTY: i64 = 1_000_000_000;
/// Most lines in one order or shipment.
pub const MAX_LINES: usize = 500;

/// Parse a JSON body into `T`, turning serde's complaint into an error that names the field.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, LedgerError> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes
    };
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        // serde names missing and unknown fields only in its message, between backticks.
        let named = backticked(&message);
        // In well-formed JSON every error is about a field's value, even one serde files as
        // a syntax error (`"kind": ["x"]` is "expected value", `"qty": 1e400` "number out of
        // range"); in broken JSON the path only says where the parser gave up.
        let well_formed = || serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
        // The path already ends at an unknown field; a missing one is named only in the message.
        let field = match (inner.classify(), named) {
            (serde_json::error::Category::Data, Some(name))
                if message.starts_with("missing field") =>
            {
                Some(join_path(&path, name))
            }
            (serde_json::error::Category::Data, _) if path != "." => Some(path),
            (serde_json::error::Category::Syntax, _)
                if path != "." && path != "?" && well_formed() =>
            {
                Some(path)
            }
            _ => None,
        };
        LedgerError::Malformed {
            field,
            message: strip_position(&message),
        }
    })
}

fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

fn join_path(path: &str, name: &str) -> String {
    if path == "." || path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

pub fn sku(field: &str, value: &str) -> Result<Sku, LedgerError> {
    Sku::parse(value).map_err(|e| LedgerError::invalid(field, e.to_string()))
}

pub fn qty(field: &str, value: i64) -> Result<i64, LedgerError> {
    if (1..=MAX_QTY).contains(&value) {
        Ok(value)
    } else {
        Err(LedgerError::invalid(
            field,
            format!("{field} must be between 1 and {MAX_QTY}, got {value}"),
        ))
    }
}

/// A known warehouse: well-formed, then present in the ledger's warehouse set.
pub fn warehouse(
    field: &str,
    value: &str,
    known: &BTreeSet<String>,
) -> Result<String, LedgerError> {
    onhand_common::validate_warehouse(value)
        .map_err(|e| LedgerError::invalid(field, e.to_string()))?;
    if known.contains(value) {
        Ok(value.to_owned())
    } else {
        Err(LedgerError::UnknownWarehouse {
            warehouse: value.to_owned(),
            field: field.to_owned(),
        })
    }
}

/// Free text ids from other systems (order ids, references): 1..=max chars, no control chars.
pub fn text_id(field: &str, value: &str, max: usize) -> Result<String, LedgerError> {
    let len = value.chars().count();
    if len == 0 || len > max {
        return Err(LedgerError::invalid(
            field,
            format!("{field} must be 1 to {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(LedgerError::invalid(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(value.to_owned())
}

/// Short machine names (channels, reasons): `[a-z0-9_-]{1,64}`.
pub fn name(field: &str, value: &str) -> Result<String, LedgerError> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(LedgerError::invalid(
            field,
            format!("{field} must be 1 to 64 characters of a-z, 0-9, '_' or '-'"),
        ))
    }
}

pub fn lines<T>(field: &str, lines: &[T]) -> Result<(), LedgerError> {
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(LedgerError::invalid(
            field,
            format!("{field} must hold 1 to {MAX_LINES} lines"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        sku: String,
        qty: i64,
        lines: Option<Vec<Line>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Line {
        qty: i64,
    }

    fn field_of(json: &str) -> Option<String> {
        match parse_body::<Body>(json.as_bytes()) {
            Err(LedgerError::Malformed { field, .. }) => field,
            other => panic!("expected a malformed error, got {other:?}"),
        }
    }

    #[test]
    fn names_missing_unknown_and_mistyped_fields() {
        assert_eq!(field_of(r#"{"sku":"A"}"#).as_deref(), Some("qty"));
        assert_eq!(
            field_of(r#"{"sku":"A","qty":1,"colour":"red"}"#).as_deref(),
            Some("colour")
        );
        assert_eq!(field_of(r#"{"sku":"A","qty":"2"}"#).as_deref(), Some("qty"));
        assert_eq!(
            field_of(r#"{"sku":"A","qty":1,"lines":[{"qty":1},{"qty":1.5}]}"#).as_deref(),
            Some("lines[1].qty")
        );
        assert_eq!(
            field_of(r#"{"sku":"A","qty":1,"lines":[{"qty":1,"x":0}]}"#).as_deref(),
            Some("lines[0].x")
        );
        assert_eq!(field_of(r#"{"sku":"A","qty":"#), None);
        // Found by the request fuzz test: well-formed JSON that serde files as a syntax error.
        assert_eq!(
            field_of(r#"{"sku":"A","qty":1e400}"#).as_deref(),
            Some("qty")
        );
        assert_eq!(field_of(r#"{"sku":"A","qty":01}"#), None);
    }

    #[test]
    fn quantity_bounds() {
        assert!(qty("qty", 0).is_err());
        assert!(qty("qty", -3).is_err());
        assert!(qty("qty", MAX_QTY + 1).is_err());
        assert_eq!(qty("qty", MAX_QTY).ok(), Some(MAX_QTY));
    }

    #[test]
    fn text_ids_reject_control_characters_and_length() {
        assert!(text_id("order_id", "web-1", 128).is_ok());
        assert!(text_id("order_id", "", 128).is_err());
        assert!(text_id("order_id", "a\nb", 128).is_err());
        assert!(text_id("order_id", &"x".repeat(129), 128).is_err());
    }
}
