//! A real SIGTERM cancels the token returned by `on_signal`.

use std::time::Duration;

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cancels_the_token() {
    let token = onhand_common::shutdown::on_signal();
    assert!(!token.is_cancelled());
    let status = tokio::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .await
        .expect("kill runs");
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(10), token.cancelled())
        .await
        .expect("token cancelled after SIGTERM");
}
