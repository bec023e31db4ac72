//! Retry classification of whole HTTP responses, kept apart from sending: 408, 429 and
//! 5xx are transient (except 501); 401 and 403 are the account's credentials failing
//! (transient, with an alert); other 4xx are permanent. `Retry-After` (seconds or an HTTP
//! date) is honoured.
//!
//! Why an auth failure is not a permanent, per-SKU failure: a 401 or 403 says nothing about
//! the SKUs in the request. Every channel answers it for the whole account (an expired or
//! revoked token, a missing scope, a wrong key or secret; CHANNELS.md: Amazon's 403
//! `Unauthorized`, eBay's 401 errorId 1001, WooCommerce's 401, BigCommerce's and Shopify's
//! token headers), and it goes away when an operator fixes the credentials. Dead-lettering
//! would send every SKU of every batch to the DLQ until then, and each would need replaying
//! by hand. So the push stays transient (the projector naks and redelivers with backoff,
//! nothing is acked before the channel confirms), the retry hint is [`AUTH_RETRY`], and the
//! shared transport logs at ERROR and counts `onhand_channel_auth_failures_total` so the
//! operator hears of it at once rather than from the lag alert.

use std::time::Duration;

use crate::api::ApiResponse;
use crate::push::PushOutcome;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// 2xx: look at the items.
    Success,
    /// Throttled: slow down and retry after the hint.
    Throttled { retry_after: Option<Duration> },
    /// The channel is having trouble: retry later.
    Unavailable { retry_after: Option<Duration> },
    /// The channel refused our credentials (401, 403): nothing is wrong with the items; an
    /// operator must fix the token, key or scope. Retry later, and alert.
    Unauthorized,
    /// The request itself is wrong (auth, shape): retrying the same will not help.
    Rejected,
}

pub fn http(resp: &ApiResponse) -> Class {
    let retry_after = retry_after(resp);
    match resp.status {
        200..=299 => Class::Success,
        429 => Class::Throttled { retry_after },
        408 | 500 | 502..=599 => Class::Unavailable { retry_after },
        401 | 403 => Class::Unauthorized,
        _ => Class::Rejected,
    }
}

/// How long a push refused for credentials waits before it is tried again.
pub const AUTH_RETRY: Duration = Duration::from_secs(60);

/// `Retry-After` in seconds (fractions allowed) or as an HTTP date.
pub fn retry_after(resp: &ApiResponse) -> Option<Duration> {
    let value = resp.header("retry-after")?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(3600.0)));
    }
    let when =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = when - time::OffsetDateTime::now_utc();
    Some(Duration::from_secs_f64(
        wait.as_seconds_f64().clamp(0.0, 3600.0),
    ))
}

/// The outcome every item of a non-success response gets, from its class.
pub fn outcome(class: &Class, resp: &ApiResponse) -> Option<PushOutcome> {
    match class {
        Class::Success => None,
        Class::Throttled { retry_after } => Some(PushOutcome::Transient {
            retry_after: *retry_after,
            reason: format!("throttled (HTTP {})", resp.status),
        }),
        Class::Unavailable { retry_after } => Some(PushOutcome::Transient {
            retry_after: *retry_after,
            reason: format!("channel unavailable (HTTP {})", resp.status),
        }),
        Class::Unauthorized => Some(PushOutcome::Transient {
            retry_after: Some(AUTH_RETRY),
            reason: format!(
                "the channel refused our credentials (HTTP {}); held until they are fixed: {}",
                resp.status,
                snippet(resp, 256)
            ),
        }),
        Class::Rejected => Some(PushOutcome::permanent(
            format!("http_{}", resp.status),
            snippet(resp, 512),
        )),
    }
}

/// The start of the response body, for a message.
fn snippet(resp: &ApiResponse, max: usize) -> String {
    String::from_utf8_lossy(&resp.body[..resp.body.len().min(max)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn resp(status: u16, retry: Option<&'static str>) -> ApiResponse {
        let mut headers = HeaderMap::new();
        if let Some(r) = retry {
            headers.insert("retry-after", HeaderValue::from_static(r));
        }
        ApiResponse {
            status,
            headers,
            body: Bytes::new(),
        }
    }

    #[test]
    fn statuses() {
        assert_eq!(http(&resp(200, None)), Class::Success);
        assert_eq!(http(&resp(207, None)), Class::Success);
        assert_eq!(
            http(&resp(429, Some("2"))),
            Class::Throttled {
                retry_after: Some(Duration::from_secs(2))
            }
        );
        assert_eq!(
            http(&resp(503, None)),
            Class::Unavailable { retry_after: None }
        );
        assert_eq!(
            http(&resp(408, None)),
            Class::Unavailable { retry_after: None }
        );
        assert_eq!(http(&resp(501, None)), Class::Rejected);
        assert_eq!(http(&resp(401, None)), Class::Unauthorized);
        assert_eq!(http(&resp(403, None)), Class::Unauthorized);
        assert_eq!(http(&resp(400, None)), Class::Rejected);
        assert_eq!(http(&resp(404, None)), Class::Rejected);
        assert_eq!(http(&resp(422, None)), Class::Rejected);
    }

    #[test]
    fn credentials_refused_hold_the_push_instead_of_dead_lettering_it() {
        // Amazon's answer to an expired LWA token (CHANNELS.md §2: 403 with the ErrorList).
        let mut expired = resp(403, None);
        expired.body = Bytes::from_static(
            br#"{"errors":[{"code":"Unauthorized","message":"Access to requested resource is denied.","details":"The access token you provided has expired."}]}"#,
        );
        match outcome(&http(&expired), &expired) {
            Some(PushOutcome::Transient {
                retry_after,
                reason,
            }) => {
                assert_eq!(retry_after, Some(AUTH_RETRY));
                assert!(
                    reason.contains("HTTP 403") && reason.contains("expired"),
                    "{reason}"
                );
            }
            other => panic!("expected transient, got {other:?}"),
        }
        let bad_request = resp(400, None);
        assert!(matches!(
            outcome(&http(&bad_request), &bad_request),
            Some(PushOutcome::Permanent { code, .. }) if code == "http_400"
        ));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            retry_after(&resp(429, Some("0.5"))),
            Some(Duration::from_millis(500))
        );
        assert_eq!(retry_after(&resp(429, Some("-1"))), None);
        assert_eq!(retry_after(&resp(429, Some("soon"))), None);
        assert_eq!(
            retry_after(&resp(429, Some("Wed, 21 Oct 2015 07:28:00 GMT"))),
            Some(Duration::ZERO)
        );
    }
}
