//! The verdict on one SKU of one channel (DESIGN.md §6): `match`, `in_flight`, `drift`,
//! `missing` or `unknown`, and why. A pure function of what was seen, so the rules are
//! tested here, not through a channel.
//!
//! The rules, and why they never call a SKU `drift` that is only late:
//! - the channel shows the expected quantity: `match`, whatever the watermark says;
//! - it shows another one and the projector has not confirmed this ledger version
//!   (no watermark, an intent — a push written down before it went out, not confirmed —
//!   or a watermark of another version: behind, or the ledger moved on while the run read
//!   it): `in_flight`;
//! - the projector confirmed this version, but inside the settle window before the read
//!   (asynchronous channels apply writes later: Amazon, BigCommerce): `in_flight`;
//! - the projector confirmed this version before that window, and the ledger still had
//!   this version *after* the channel was read, so no newer push can explain the value
//!   (the caller re-reads the version of every `drift` candidate after the read): `drift`;
//! - the channel does not list a SKU the ledger has: `missing` (`in_flight` when it was
//!   pushed inside the settle window: an asynchronous channel may not show it yet);
//! - the channel lists a SKU the ledger does not know: `unknown`.

use onhand_projector::watermark::Watermark;
use serde::Serialize;
use time::OffsetDateTime;

/// Ordered from the most to the least serious (the report lists SKUs in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Drift,
    Missing,
    Unknown,
    InFlight,
    Match,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Drift => "drift",
            Self::Missing => "missing",
            Self::Unknown => "unknown",
            Self::InFlight => "in_flight",
            Self::Match => "match",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a SKU got its verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The channel shows the expected quantity.
    Equal,
    /// No watermark: the projector never confirmed a push of this SKU.
    NeverPushed,
    /// The watermark is an intent: the push of this version is not confirmed yet.
    Pending { version: i64 },
    /// The projector's newest confirmed push is of an older version.
    Behind { watermark: i64 },
    /// The ledger moved past the version compared while the run read it.
    LedgerMoved { now: i64 },
    /// Confirmed inside the settle window before the read.
    Settling { pushed_at: OffsetDateTime },
    /// Confirmed before the settle window, yet the channel shows another quantity.
    Applied { pushed_at: OffsetDateTime },
    /// The channel does not list the SKU.
    NotListed,
    /// The ledger does not know the SKU.
    NotInLedger,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ago = |at: &OffsetDateTime| {
            let secs = (OffsetDateTime::now_utc() - *at).whole_seconds().max(0);
            match secs {
                0..120 => format!("{secs} s ago"),
                120..7200 => format!("{} min ago", secs / 60),
                _ => format!("{} h ago", secs / 3600),
            }
        };
        match self {
            Self::Equal => f.write_str("shows the expected quantity"),
            Self::NeverPushed => f.write_str("no watermark: never pushed by the projector"),
            Self::Pending { version } => {
                write!(f, "the projector's push of v{version} is not confirmed yet")
            }
            Self::Behind { watermark } => {
                write!(
                    f,
                    "projector at v{watermark}, not yet at the ledger's version"
                )
            }
            Self::LedgerMoved { now } => write!(f, "the ledger moved to v{now} during the run"),
            Self::Settling { pushed_at } => {
                write!(f, "pushed {} (inside the settle window)", ago(pushed_at))
            }
            Self::Applied { pushed_at } => write!(
                f,
                "pushed and confirmed {}; the channel changed since",
                ago(pushed_at)
            ),
            Self::NotListed => f.write_str("the channel does not list it"),
            Self::NotInLedger => f.write_str("the ledger does not know it"),
        }
    }
}

/// What was seen of one SKU the ledger knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen<'a> {
    /// The ledger's version when it was read.
    pub version: i64,
    /// The policy's quantity for that version.
    pub expected: i64,
    /// What the channel shows (`None`: not listed).
    pub channel: Option<i64>,
    /// The projector's watermark, read after the channel.
    pub watermark: Option<&'a Watermark>,
    /// The watermark is an intent (written before a push, not confirmed).
    pub pending: bool,
}

/// The verdict on a SKU the ledger knows. `settled_before`: a push confirmed before this
/// instant must show in the read (the start of the channel's read minus the settle window).
/// A `Drift` is final only once the caller has seen the ledger still at `seen.version`
/// after the channel was read ([`recheck`]).
pub fn classify(seen: &Seen<'_>, settled_before: OffsetDateTime) -> (Verdict, Why) {
    let settling = |w: &Watermark| w.pushed_at >= settled_before;
    match (seen.channel, seen.watermark) {
        (Some(shown), _) if shown == seen.expected => (Verdict::Match, Why::Equal),
        (Some(_), None) => (Verdict::InFlight, Why::NeverPushed),
        (Some(_), Some(w)) if seen.pending => {
            (Verdict::InFlight, Why::Pending { version: w.version })
        }
        (Some(_), Some(w)) if w.version < seen.version => (
            Verdict::InFlight,
            Why::Behind {
                watermark: w.version,
            },
        ),
        (Some(_), Some(w)) if w.version > seen.version => {
            (Verdict::InFlight, Why::LedgerMoved { now: w.version })
        }
        (Some(_), Some(w)) if settling(w) => (
            Verdict::InFlight,
            Why::Settling {
                pushed_at: w.pushed_at,
            },
        ),
        (Some(_), Some(w)) => (
            Verdict::Drift,
            Why::Applied {
                pushed_at: w.pushed_at,
            },
        ),
        (None, Some(w)) if settling(w) => (
            Verdict::InFlight,
            Why::Settling {
                pushed_at: w.pushed_at,
            },
        ),
        (None, _) => (Verdict::Missing, Why::NotListed),
    }
}

/// A `Drift` candidate after the ledger's version was read again, once the channel had
/// been read: a different version means a newer push may explain what the channel shows.
pub fn recheck(verdict: (Verdict, Why), compared: i64, now: Option<i64>) -> (Verdict, Why) {
    match (verdict.0, now) {
        (Verdict::Drift, Some(now)) if now != compared => {
            (Verdict::InFlight, Why::LedgerMoved { now })
        }
        _ => verdict,
    }
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;

    fn mark(version: i64, qty: i64, pushed_at: OffsetDateTime) -> Watermark {
        Watermark {
            version,
            qty,
            pushed_at,
        }
    }

    fn seen(channel: Option<i64>, watermark: Option<&Watermark>) -> Seen<'_> {
        Seen {
            version: 7,
            expected: 10,
            channel,
            watermark,
            pending: false,
        }
    }

    #[test]
    fn every_rule() {
        let read = OffsetDateTime::now_utc();
        let settled_before = read - Duration::seconds(60);
        let old = read - Duration::minutes(10);
        let fresh = read - Duration::seconds(5);
        let verdict = |s: Seen<'_>| classify(&s, settled_before).0;

        // The expected quantity matches whatever the watermark says.
        assert_eq!(verdict(seen(Some(10), None)), Verdict::Match);
        assert_eq!(
            verdict(seen(Some(10), Some(&mark(3, 1, old)))),
            Verdict::Match
        );
        // Another quantity: in flight unless this version was confirmed before the window.
        assert_eq!(verdict(seen(Some(9), None)), Verdict::InFlight);
        assert_eq!(
            verdict(seen(Some(9), Some(&mark(6, 9, old)))),
            Verdict::InFlight
        );
        assert_eq!(
            verdict(seen(Some(9), Some(&mark(8, 9, old)))),
            Verdict::InFlight
        );
        assert_eq!(
            verdict(seen(Some(9), Some(&mark(7, 10, fresh)))),
            Verdict::InFlight
        );
        assert_eq!(
            verdict(seen(Some(9), Some(&mark(7, 10, old)))),
            Verdict::Drift
        );
        // An intent is not a confirmation, however old.
        let intent = mark(7, 10, old);
        assert_eq!(
            verdict(Seen {
                pending: true,
                ..seen(Some(9), Some(&intent))
            }),
            Verdict::InFlight
        );
        // Not listed: missing, unless a push is still settling.
        assert_eq!(verdict(seen(None, None)), Verdict::Missing);
        assert_eq!(
            verdict(seen(None, Some(&mark(7, 10, old)))),
            Verdict::Missing
        );
        assert_eq!(
            verdict(seen(None, Some(&mark(7, 10, fresh)))),
            Verdict::InFlight
        );
    }

    #[test]
    fn the_settle_window_is_measured_from_the_read() {
        let read = OffsetDateTime::now_utc();
        let w = mark(7, 10, read - Duration::seconds(30));
        let s = seen(Some(9), Some(&w));
        assert_eq!(
            classify(&s, read - Duration::seconds(60)).0,
            Verdict::InFlight
        );
        assert_eq!(classify(&s, read - Duration::seconds(10)).0, Verdict::Drift);
    }

    #[test]
    fn a_drift_whose_ledger_moved_during_the_read_is_in_flight() {
        let at = OffsetDateTime::now_utc() - Duration::hours(1);
        let drift = (Verdict::Drift, Why::Applied { pushed_at: at });
        assert_eq!(recheck(drift, 7, Some(7)).0, Verdict::Drift);
        assert_eq!(
            recheck(drift, 7, Some(8)),
            (Verdict::InFlight, Why::LedgerMoved { now: 8 })
        );
        // Other verdicts are left alone.
        let missing = (Verdict::Missing, Why::NotListed);
        assert_eq!(recheck(missing, 7, Some(8)), missing);
    }
}
