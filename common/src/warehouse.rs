//! Warehouse identifiers: `[A-Za-z0-9_-]{1,64}`.
//!
//! Warehouse ids appear as JSON map keys in every event and in logs, so they are kept
//! to a small, unambiguous alphabet and validated at the edge.

use thiserror::Error;

/// Longest accepted warehouse id, in characters (all ASCII, so also bytes).
pub const MAX_WAREHOUSE_LEN: usize = 64;

/// Why a warehouse id was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WarehouseError {
    /// The id is the empty string.
    #[error("warehouse must not be empty")]
    Empty,
    /// The id is longer than [`MAX_WAREHOUSE_LEN`].
    #[error("warehouse is {len} characters long; the maximum is 64")]
    TooLong {
        /// Length of the rejected id in characters.
        len: usize,
    },
    /// The id contains a character outside `[A-Za-z0-9_-]`.
    #[error(
        "warehouse may contain only letters A-Z and a-z, digits, '_' and '-' (found {found:?} at character {index})"
    )]
    InvalidCharacter {
        /// The offending character.
        found: char,
        /// Its position, counted in characters from 0.
        index: usize,
    },
}

/// Checks that `s` is a valid warehouse id: 1..=64 characters of `[A-Za-z0-9_-]`.
pub fn validate_warehouse(s: &str) -> Result<(), WarehouseError> {
    if s.is_empty() {
        return Err(WarehouseError::Empty);
    }
    if let Some((index, found)) = s
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(WarehouseError::InvalidCharacter { found, index });
    }
    // Only ASCII is left, so bytes == characters.
    if s.len() > MAX_WAREHOUSE_LEN {
        return Err(WarehouseError::TooLong { len: s.len() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_typical_ids() {
        for id in ["ams-1", "nyc_1", "W", "a".repeat(64).as_str()] {
            assert_eq!(validate_warehouse(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn rejects_empty_long_and_odd_characters() {
        assert_eq!(validate_warehouse(""), Err(WarehouseError::Empty));
        assert_eq!(
            validate_warehouse(&"a".repeat(65)),
            Err(WarehouseError::TooLong { len: 65 })
        );
        assert_eq!(
            validate_warehouse("ams.1"),
            Err(WarehouseError::InvalidCharacter {
                found: '.',
                index: 3
            })
        );
        assert_eq!(
            validate_warehouse("ämš"),
            Err(WarehouseError::InvalidCharacter {
                found: 'ä',
                index: 0
            })
        );
        assert!(validate_warehouse("ams 1").is_err());
        assert!(validate_warehouse("ams\n").is_err());
    }

    #[test]
    fn error_messages_are_readable() {
        assert_eq!(
            WarehouseError::Empty.to_string(),
            "warehouse must not be empty"
        );
        assert!(
            WarehouseError::TooLong { len: 70 }
                .to_string()
                .contains("maximum is 64")
        );
    }
}
