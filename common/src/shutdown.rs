//! Shutdown signalling: SIGTERM or ctrl-c cancels one [`CancellationToken`] that is
//! passed into every `run`.

use tokio_util::sync::CancellationToken;

/// Returns a token cancelled on the first SIGTERM or ctrl-c (SIGINT).
///
/// The signal handlers are registered before this returns, so a signal arriving
/// right after the call is not lost. Must be called inside a Tokio runtime.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    let signal = wait_for_signal();
    tokio::spawn(async move {
        let name = signal.await;
        tracing::info!(signal = name, "shutdown requested");
        cancel.cancel();
    });
    token
}

/// Registers the handlers now; the returned future resolves with the signal's name.
#[cfg(unix)]
fn wait_for_signal() -> impl Future<Output = &'static str> + Send + 'static {
    use tokio::signal::unix::{Signal, SignalKind, signal};

    fn register(kind: SignalKind, name: &'static str) -> Option<Signal> {
        match signal(kind) {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!(%error, signal = name, "cannot listen for signal");
                None
            }
        }
    }
    async fn recv(signal: Option<Signal>) {
        match signal {
            Some(mut signal) => {
                signal.recv().await;
            }
            None => std::future::pending().await,
        }
    }

    let term = register(SignalKind::terminate(), "SIGTERM");
    let int = register(SignalKind::interrupt(), "SIGINT");
    async move {
        tokio::select! {
            () = recv(term) => "SIGTERM",
            () = recv(int) => "SIGINT",
        }
    }
}

#[cfg(not(unix))]
fn wait_for_signal() -> impl Future<Output = &'static str> + Send + 'static {
    async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "ctrl-c",
            Err(error) => {
                tracing::warn!(%error, "cannot listen for ctrl-c");
                std::future::pending().await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn token_stays_live_without_a_signal() {
        let token = on_signal();
        tokio::task::yield_now().await;
        assert!(!token.is_cancelled());
    }
}
