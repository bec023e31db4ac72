//! What happens to a request before the emulated API looks at it: injected timeouts and
//! 5xx, throttling from the bucket (or injected). Each emulator answers a closed gate in
//! its channel's own documented shape.

use std::time::Duration;

use crate::state::{Channel, Sandbox};

#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    Proceed,
    /// Throttled: the bucket lacks room (or a 429 was injected); retry after `wait`.
    Throttled {
        wait: Duration,
    },
    /// An injected server error.
    ServerError,
    /// Hold the request this long, then drop it unanswered.
    Hang(Duration),
}

/// Decide a request's fate and spend `cost` from the channel's bucket when it proceeds.
pub fn admit(sandbox: &Sandbox, channel: Channel, cost: f64) -> Gate {
    let mut state = sandbox.channel(channel);
    state.requests += 1;
    let faults = state.knobs.faults.clone();
    if state.roll(faults.timeout) {
        return Gate::Hang(Duration::from_millis(faults.timeout_ms.max(1)));
    }
    if state.roll(faults.http_5xx) {
        return Gate::ServerError;
    }
    if state.roll(faults.http_429) {
        state.throttled += 1;
        return Gate::Throttled {
            wait: Duration::from_secs(1),
        };
    }
    match state.take(cost) {
        Ok(()) => Gate::Proceed,
        Err(wait) => {
            state.throttled += 1;
            Gate::Throttled { wait }
        }
    }
}

/// Hold an injected timeout: the request never gets an answer before the client gives up.
pub async fn hang(duration: Duration) -> axum::response::Response {
    tokio::time::sleep(duration).await;
    axum::response::IntoResponse::into_response((
        axum::http::StatusCode::GATEWAY_TIMEOUT,
        "injected timeout",
    ))
}

/// The `traceparent` header of a request, for the write log.
pub fn traceparent(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
