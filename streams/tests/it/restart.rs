//! Definitions and data survive a NATS restart (also exercises testkit's restart).

use onhand_streams::{Definitions, ensure};
use onhand_testkit::{NatsServer, eventually};
use std::time::Duration;

#[tokio::test]
async fn objects_and_messages_survive_a_server_restart() {
    let mut nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    ensure(&js, &Definitions::embedded()).await.expect("apply");
    js.publish("inventory.sku.MUG", "e1".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    let port = nats.port();

    nats.stop();
    nats.start_again().await;

    assert_eq!(nats.port(), port);
    let js = nats.jetstream().await;
    let report = ensure(&js, &Definitions::embedded())
        .await
        .expect("apply after restart");
    assert!(!report.has_changes(), "{report}");
    let messages = eventually(
        Duration::from_secs(10),
        "INVENTORY to hold 1 message",
        || {
            let js = js.clone();
            async move {
                let mut stream = js.get_stream("INVENTORY").await.ok()?;
                let n = stream.info().await.ok()?.state.messages;
                (n == 1).then_some(n)
            }
        },
    )
    .await;
    assert_eq!(messages, 1);
}
