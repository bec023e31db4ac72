//! Retry classification of whole HTTP responses, kept apart from sending: 408, 429 and
//! 5xx are transient (except 501), other 4xx are permanent. `Retry-After` (seconds or an
//! HTTP date) is honoured.

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
    /// The request itself is wrong (auth, shape): retrying the same will not help.
    Rejected,
}

pub fn http(resp: &ApiResponse) -> Class {
    let retry_after = retry_after(resp);
    match resp.status {
        200..=299 => Class::Success,
        429 => Class::Throttled { retry_after },
        408 | 500 | 502..=599 => Class::Unavailable { retry_after },
        _ => Class::Rejected,
    }
}

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
        Class::Rejected => Some(PushOutcome::permanent(
            format!("http_{}", resp.status),
            String::from_utf8_lossy(&resp.body[..resp.body.len().min(512)]).into_owned(),
        )),
    }
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
        assert_eq!(http(&resp(401, None)), Class::Rejected);
        assert_eq!(http(&resp(422, None)), Class::Rejected);
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
