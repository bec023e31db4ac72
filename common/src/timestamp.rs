//! Event timestamps: UTC, microsecond precision, RFC 3339 with exactly six fractional
//! digits on the wire (`2026-11-26T10:00:00.123456Z`).
//!
//! Reading accepts any RFC 3339 timestamp (any offset, any precision) whose UTC time falls
//! in the years 0000 to 9999, and normalises it to UTC truncated to microseconds, so a
//! decoded value re-encodes unchanged.

use thiserror::Error;
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// Why a timestamp was not read.
#[derive(Debug, Error)]
pub enum TimestampError {
    /// Not RFC 3339.
    #[error(transparent)]
    Parse(#[from] time::error::Parse),
    /// RFC 3339, but in UTC before year 0000 or after 9999 (e.g. `9999-12-31T23:00:00-02:00`),
    /// which the wire format cannot write.
    #[error("in UTC it falls outside the years 0000 to 9999")]
    OutOfRange,
}

const WIRE_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// The current time in UTC, truncated to microseconds.
pub fn now_micros() -> OffsetDateTime {
    truncate_micros(OffsetDateTime::now_utc())
}

/// Converts to UTC and drops sub-microsecond precision.
pub fn truncate_micros(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    let nanos = t.nanosecond() - t.nanosecond() % 1_000;
    t.replace_nanosecond(nanos)
        .expect("invariant: a truncated nanosecond is still below 1e9")
}

/// Formats `t` in the wire format (converted to UTC, truncated to microseconds).
pub fn format_micros(t: OffsetDateTime) -> Result<String, time::error::Format> {
    truncate_micros(t).format(WIRE_FORMAT)
}

/// Parses an RFC 3339 timestamp into UTC truncated to microseconds; its UTC year must be
/// 0000 to 9999, as the wire format can write no other.
pub fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, TimestampError> {
    let t = OffsetDateTime::parse(s, &Rfc3339)?;
    let utc = t
        .checked_to_offset(UtcOffset::UTC)
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or(TimestampError::OutOfRange)?;
    Ok(truncate_micros(utc))
}

/// `#[serde(with = "crate::timestamp::rfc3339_micros")]` for `OffsetDateTime` fields.
pub mod rfc3339_micros {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    /// Serializes in the wire format.
    pub fn serialize<S: Serializer>(t: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
        let s = super::format_micros(*t).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&s)
    }

    /// Deserializes any RFC 3339 timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<OffsetDateTime, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        super::parse_rfc3339(&s).map_err(|e| {
            serde::de::Error::custom(format_args!(
                "occurred_at is not an RFC 3339 timestamp: {e}"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_six_digits_in_utc() {
        let t = datetime!(2026-11-26 11:00:00.123456789 +01:00);
        assert_eq!(
            format_micros(t).expect("formats"),
            "2026-11-26T10:00:00.123456Z"
        );
        assert_eq!(
            format_micros(datetime!(2026-11-26 10:00:00 UTC)).expect("formats"),
            "2026-11-26T10:00:00.000000Z"
        );
    }

    #[test]
    fn parses_any_rfc3339_into_utc_micros() {
        let t = parse_rfc3339("2026-11-26T11:00:00.1234567+01:00").expect("parses");
        assert_eq!(t, datetime!(2026-11-26 10:00:00.123456 UTC));
        assert_eq!(t.offset(), UtcOffset::UTC);
        assert!(parse_rfc3339("2026-11-26 10:00:00").is_err());
        assert!(parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn rejects_what_is_out_of_range_in_utc() {
        // Found by the event fuzz test: the first panicked converting to UTC, the second
        // decoded to year -1, which the wire format writes as text it cannot read back.
        for s in ["9999-12-31T23:59:59-01:00", "0000-01-01T00:30:00+01:00"] {
            assert!(
                matches!(parse_rfc3339(s), Err(TimestampError::OutOfRange)),
                "{s}"
            );
        }
        let t = parse_rfc3339("9999-12-31T23:59:59+01:00").expect("in range in UTC");
        assert_eq!(
            format_micros(t).expect("formats"),
            "9999-12-31T22:59:59.000000Z"
        );
    }

    #[test]
    fn now_is_utc_and_truncated() {
        let t = now_micros();
        assert_eq!(t.offset(), UtcOffset::UTC);
        assert_eq!(t.nanosecond() % 1_000, 0);
        assert_eq!(
            parse_rfc3339(&format_micros(t).expect("formats")).expect("parses"),
            t
        );
    }
}
