//! SKUs and their NATS subject tokens.
//!
//! A SKU is 1..=255 bytes of UTF-8 without control characters. Its *token* is the SKU
//! itself when it matches `^[A-Za-z0-9_-]{1,128}$`, otherwise `=` followed by
//! base64url (no padding) of its UTF-8 bytes. The mapping is reversible and
//! collision-free (a plain token never starts with `=`, and an encoded token is only
//! accepted when its SKU would not have been a plain token), and every token is valid as
//! a NATS subject token and inside a KV key (`[-/_=.A-Za-z0-9]`).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

use crate::event::INVENTORY_SUBJECT_PREFIX;

/// Longest accepted SKU, in bytes of UTF-8.
pub const MAX_SKU_BYTES: usize = 255;

/// Longest SKU that is used as its own token, in bytes.
const MAX_PLAIN_TOKEN: usize = 128;

/// Prefix marking a base64url-encoded token.
const ENCODED_PREFIX: char = '=';

/// Why a SKU or a SKU token was rejected. Messages are meant for API clients.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SkuError {
    /// The SKU is the empty string.
    #[error("sku must not be empty")]
    Empty,
    /// The SKU is longer than [`MAX_SKU_BYTES`] bytes of UTF-8.
    #[error("sku is {len} bytes long in UTF-8; the maximum is 255")]
    TooLong {
        /// Length of the rejected SKU in bytes.
        len: usize,
    },
    /// The SKU contains a control character (`char::is_control`).
    #[error("sku must not contain control characters (found one at byte {index})")]
    ControlCharacter {
        /// Byte offset of the first control character.
        index: usize,
    },
    /// A subject token (or subject) does not decode to a SKU.
    #[error("invalid sku token {token:?}: {reason}")]
    InvalidToken {
        /// The rejected token.
        token: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// A validated SKU. Construct it with [`Sku::parse`], [`Sku::from_token`] or by
/// deserializing (which validates too).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Sku(String);

impl Sku {
    /// Validates `s` as a SKU: 1..=255 bytes of UTF-8, no control characters.
    pub fn parse(s: impl Into<String>) -> Result<Sku, SkuError> {
        let s = s.into();
        if s.is_empty() {
            return Err(SkuError::Empty);
        }
        if s.len() > MAX_SKU_BYTES {
            return Err(SkuError::TooLong { len: s.len() });
        }
        if let Some((index, _)) = s.char_indices().find(|(_, c)| c.is_control()) {
            return Err(SkuError::ControlCharacter { index });
        }
        Ok(Sku(s))
    }

    /// The SKU as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SKU as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }

    /// The subject / KV-key token for this SKU (see the module docs).
    pub fn token(&self) -> String {
        if is_plain_token(&self.0) {
            self.0.clone()
        } else {
            let mut token = String::with_capacity(1 + self.0.len().div_ceil(3) * 4);
            token.push(ENCODED_PREFIX);
            URL_SAFE_NO_PAD.encode_string(self.0.as_bytes(), &mut token);
            token
        }
    }

    /// Reverses [`Sku::token`]. Rejects anything `token` would not have produced.
    pub fn from_token(token: &str) -> Result<Sku, SkuError> {
        let invalid = |reason| SkuError::InvalidToken {
            token: token.to_owned(),
            reason,
        };
        let Some(encoded) = token.strip_prefix(ENCODED_PREFIX) else {
            if is_plain_token(token) {
                return Ok(Sku(token.to_owned()));
            }
            return Err(invalid(
                "a plain token is 1 to 128 characters of A-Z, a-z, 0-9, '_' and '-'",
            ));
        };
        if encoded.len() > MAX_SKU_BYTES.div_ceil(3) * 4 {
            return Err(invalid("encoded token is too long"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| invalid("not canonical unpadded base64url after '='"))?;
        let decoded = String::from_utf8(bytes).map_err(|_| invalid("does not decode to UTF-8"))?;
        if is_plain_token(&decoded) {
            return Err(invalid(
                "non-canonical: this sku is written as a plain token",
            ));
        }
        Sku::parse(decoded).map_err(|_| invalid("does not decode to a valid sku"))
    }

    /// The JetStream subject carrying this SKU's events: `inventory.sku.<token>`.
    pub fn subject(&self) -> String {
        format!("{INVENTORY_SUBJECT_PREFIX}{}", self.token())
    }

    /// Whether `subject` is this SKU's [`Sku::subject`] (no allocation for a plain token).
    pub fn is_subject(&self, subject: &str) -> bool {
        match subject.strip_prefix(INVENTORY_SUBJECT_PREFIX) {
            None => false,
            Some(token) if is_plain_token(&self.0) => token == self.0,
            Some(token) => token == self.token(),
        }
    }

    /// Reverses [`Sku::subject`].
    pub fn from_subject(subject: &str) -> Result<Sku, SkuError> {
        let token = subject
            .strip_prefix(INVENTORY_SUBJECT_PREFIX)
            .ok_or_else(|| SkuError::InvalidToken {
                token: subject.to_owned(),
                reason: "subject does not start with inventory.sku.",
            })?;
        Sku::from_token(token)
    }
}

/// `^[A-Za-z0-9_-]{1,128}$`
fn is_plain_token(s: &str) -> bool {
    (1..=MAX_PLAIN_TOKEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Sku {
    type Err = SkuError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Sku::parse(s)
    }
}

impl TryFrom<String> for Sku {
    type Error = SkuError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Sku::parse(s)
    }
}

impl AsRef<str> for Sku {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<Sku> for String {
    fn from(sku: Sku) -> String {
        sku.0
    }
}

impl<'de> Deserialize<'de> for Sku {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Sku::parse(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sku(s: &str) -> Sku {
        Sku::parse(s).expect("test sku is valid")
    }

    #[test]
    fn parse_accepts_and_rejects() {
        assert_eq!(sku("TSHIRT-RED-M").as_str(), "TSHIRT-RED-M");
        assert_eq!(Sku::parse(""), Err(SkuError::Empty));
        assert_eq!(
            Sku::parse("x".repeat(256)),
            Err(SkuError::TooLong { len: 256 })
        );
        assert!(Sku::parse("x".repeat(255)).is_ok());
        // 'é' is two bytes: 128 of them are 256 bytes.
        assert_eq!(
            Sku::parse("é".repeat(128)),
            Err(SkuError::TooLong { len: 256 })
        );
        assert_eq!(
            Sku::parse("ab\tc"),
            Err(SkuError::ControlCharacter { index: 2 })
        );
        assert_eq!(
            Sku::parse("é\u{85}"),
            Err(SkuError::ControlCharacter { index: 2 })
        );
        assert!(Sku::parse("mug 330ml / blue").is_ok());
    }

    #[test]
    fn error_messages_are_for_clients() {
        assert_eq!(SkuError::Empty.to_string(), "sku must not be empty");
        assert_eq!(
            SkuError::TooLong { len: 300 }.to_string(),
            "sku is 300 bytes long in UTF-8; the maximum is 255"
        );
    }

    #[test]
    fn plain_and_encoded_tokens() {
        assert_eq!(sku("TSHIRT-RED-M").token(), "TSHIRT-RED-M");
        assert_eq!(sku("a_b-9").token(), "a_b-9");
        assert_eq!(sku("A.B").token(), "=QS5C");
        assert_eq!(sku("mug 330ml").token(), "=bXVnIDMzMG1s");
        assert_eq!(sku("*").token(), "=Kg");
        // 128 plain characters stay plain, 129 are encoded.
        assert_eq!(sku(&"a".repeat(128)).token(), "a".repeat(128));
        assert!(sku(&"a".repeat(129)).token().starts_with('='));
        assert_eq!(sku("A.B").subject(), "inventory.sku.=QS5C");
        assert_eq!(sku("X1").subject(), "inventory.sku.X1");
    }

    #[test]
    fn from_token_reverses_and_rejects() {
        assert_eq!(Sku::from_token("TSHIRT-RED-M"), Ok(sku("TSHIRT-RED-M")));
        assert_eq!(Sku::from_token("=QS5C"), Ok(sku("A.B")));
        let rejected = [
            ("", "empty"),
            ("=", "encodes the empty sku"),
            ("a.b", "'.' in a plain token"),
            ("a b", "space in a plain token"),
            ("ä", "non-ASCII plain token"),
            ("=YWJj", "non-canonical: \"abc\" is a plain token"),
            ("=Kg==", "padding"),
            (
                "=Kh",
                "non-zero trailing bits (a lenient decoder gives \"*\")",
            ),
            ("=a+b/", "standard, not url-safe, alphabet"),
            ("=AA", "decodes to a control character"),
            ("=_w", "decodes to invalid UTF-8"),
        ];
        for (token, why) in rejected {
            assert!(
                matches!(Sku::from_token(token), Err(SkuError::InvalidToken { .. })),
                "{token:?} should be rejected: {why}"
            );
        }
        assert!(Sku::from_token(&"a".repeat(129)).is_err());
        assert!(Sku::from_token(&format!("={}", "A".repeat(400))).is_err());
    }

    #[test]
    fn from_subject() {
        assert_eq!(Sku::from_subject("inventory.sku.=QS5C"), Ok(sku("A.B")));
        assert!(Sku::from_subject("inventory.skus.X").is_err());
        assert!(Sku::from_subject("inventory.sku.a.b").is_err());
    }

    #[test]
    fn is_subject_matches_subject_only() {
        for s in ["X-1", "A.B", "a b", &"L".repeat(200)] {
            let s = sku(s);
            assert!(s.is_subject(&s.subject()), "{s}");
            assert!(!s.is_subject(&format!("{}x", s.subject())), "{s}");
            assert!(!s.is_subject(&s.token()), "{s}");
        }
        assert!(!sku("X-1").is_subject("inventory.sku.X-2"));
        assert!(!sku("A.B").is_subject("inventory.sku.A.B"));
    }

    #[test]
    fn serde_validates() {
        let s: Sku = serde_json::from_str("\"X-1\"").expect("valid");
        assert_eq!(s, sku("X-1"));
        assert_eq!(serde_json::to_string(&s).expect("serializes"), "\"X-1\"");
        let err = serde_json::from_str::<Sku>("\"\"").expect_err("empty sku");
        assert!(err.to_string().contains("sku must not be empty"));
        assert!(serde_json::from_str::<Sku>("\"a\\u0000\"").is_err());
    }

    fn valid_sku() -> impl Strategy<Value = Sku> {
        prop_oneof![
            "[A-Za-z0-9_-]{1,140}",
            "[A-Za-z0-9_ .*>=~/-]{1,140}",
            any::<String>(),
            proptest::collection::vec(any::<char>(), 1..200)
                .prop_map(|v| v.into_iter().collect::<String>()),
        ]
        .prop_filter_map("valid sku", |s| Sku::parse(s).ok())
    }

    fn token_chars_ok(token: &str) -> bool {
        !token.is_empty()
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'=')
    }

    proptest! {
        #[test]
        fn token_round_trips(sku in valid_sku()) {
            let token = sku.token();
            prop_assert!(token_chars_ok(&token), "token {token:?}");
            prop_assert!(!token.contains(['.', '*', '>', ' ', '\t']));
            prop_assert!(token.len() <= 4 * MAX_SKU_BYTES / 3 + 2, "len {}", token.len());
            prop_assert_eq!(Sku::from_token(&token), Ok(sku.clone()));
            prop_assert_eq!(Sku::from_subject(&sku.subject()), Ok(sku));
        }

        #[test]
        fn distinct_skus_have_distinct_tokens(a in valid_sku(), b in valid_sku()) {
            prop_assert_eq!(a == b, a.token() == b.token());
        }

        #[test]
        fn from_token_never_panics(garbage in any::<String>()) {
            if let Ok(sku) = Sku::from_token(&garbage) {
                // Whatever it accepts must be canonical.
                prop_assert_eq!(sku.token(), garbage);
            }
        }

        #[test]
        fn from_token_never_panics_on_encoded_garbage(garbage in "=[A-Za-z0-9_=+/-]{0,400}") {
            if let Ok(sku) = Sku::from_token(&garbage) {
                prop_assert_eq!(sku.token(), garbage);
            }
        }
    }
}
