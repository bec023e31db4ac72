//! Builders shared by the adapters' unit tests: a target to map, a recorded response.

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::api::{ApiResponse, ChannelRef, Target};
use crate::push::Push;

/// A push of `quantity` for `sku` at `version`, with an optional resolved reference.
pub fn target(sku: &str, quantity: i64, version: i64, reference: Option<ChannelRef>) -> Target {
    Target {
        push: Push {
            sku: onhand_common::Sku::parse(sku).expect("sku"),
            quantity,
            version,
            event_id: uuid::Uuid::nil(),
        },
        reference,
    }
}

/// A response as the channel would send it.
pub fn response(
    status: u16,
    headers: &[(&'static str, &str)],
    body: impl Into<Bytes>,
) -> ApiResponse {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    ApiResponse {
        status,
        headers: map,
        body: body.into(),
    }
}
