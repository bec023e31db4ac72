//! Polling with a deadline: the replacement for `sleep` in tests.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long [`eventually`] waits between attempts.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Calls `f` every [`POLL_INTERVAL`] until it returns `Some`, and returns that value.
/// Panics with `what` in the message when `timeout` (wall-clock time, so it also holds
/// under `tokio::time::pause()`) passes first.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn returns_the_first_some() {
        let calls = AtomicU32::new(0);
        let got = eventually(Duration::from_secs(5), "third call", || {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move { (n == 3).then_some(n) }
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for the impossible")]
    async fn panics_naming_what_it_waited_for() {
        eventually(Duration::from_millis(60), "the impossible", || async {
            None::<()>
        })
        .await;
    }
}
