//! `telemetry::init` installs once and refuses a second time without panicking.

use onhand_common::telemetry::{TelemetryError, init};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_twice_is_an_error_not_a_panic() {
    let guard = init("onhand-common-test").expect("first init succeeds");
    let second = init("onhand-common-test");
    assert!(
        matches!(second, Err(TelemetryError::AlreadyInitialized(_))),
        "{second:?}"
    );
    tracing::info!(answer = 42, "logged through the installed subscriber");
    drop(guard);
}
