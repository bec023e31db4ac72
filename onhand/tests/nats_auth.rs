//! `NATS_URL` credentials: `nats://user:password@host:port` logs in as that user (async-nats
//! alone ignores them), and errors show the URL with the password masked.

use std::process::{Command, Output};

use onhand_testkit::NatsServer;

/// One account with JetStream. Clients without credentials are `anon`, who may not create
/// streams; `ops` may. So `streams apply` succeeds only when it really logs in as `ops`.
const CONFIG: &str = r#"
accounts {
  APP {
    jetstream: enabled
    users = [
      { user: anon, password: "anon-unused", permissions: { publish: { deny: ["$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>"] } } }
      { user: ops, password: "s3cr@t:pw" }
    ]
  }
}
no_auth_user: anon
"#;

fn streams_apply(nats_url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_onhand"))
        .args(["streams", "apply"])
        .env("NATS_URL", nats_url)
        .env("RUST_LOG", "warn")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .expect("run onhand streams apply")
}

#[tokio::test]
async fn credentials_in_nats_url_are_used_and_never_printed() {
    let server = NatsServer::start_with_config(CONFIG).await;
    let port = server.port();

    let anonymous = streams_apply(&format!("nats://127.0.0.1:{port}"));
    assert!(
        !anonymous.status.success(),
        "without credentials the streams cannot be created: the test proves nothing\n{}",
        String::from_utf8_lossy(&anonymous.stderr)
    );

    // The password percent-encoded, as a URL needs for '@' and ':'.
    let ops = streams_apply(&format!("nats://ops:s3cr%40t%3Apw@127.0.0.1:{port}"));
    assert!(
        ops.status.success(),
        "as ops: {}\n{}",
        String::from_utf8_lossy(&ops.stderr),
        server.log()
    );
    let stream = server
        .jetstream()
        .await
        .get_stream("INVENTORY")
        .await
        .map(|_| ());
    assert!(stream.is_ok(), "INVENTORY was not created: {stream:?}");

    let wrong = streams_apply(&format!(
        "nats://ops:not-the-password@127.0.0.1:{port},nats://ops:not-the-password@127.0.0.1:{port}"
    ));
    assert!(!wrong.status.success(), "a wrong password must be refused");
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains(&format!("nats://ops:***@127.0.0.1:{port}")),
        "the error names the server and user: {stderr}"
    );
    assert!(
        !stderr.contains("not-the-password"),
        "the password leaked: {stderr}"
    );
}
