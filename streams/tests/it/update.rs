//! Changed definitions on disk: field-level updates, dry runs, refused changes, bad files.

use std::time::Duration;

use onhand_streams::{
    ApplyOptions, Definitions, FieldChange, Object, Outcome, StreamsError, apply, ensure,
};
use onhand_testkit::NatsServer;
use serde_json::json;

use crate::support::{DAY_NANOS, ScratchDefinitions, stream_config};

#[tokio::test]
async fn a_changed_max_age_is_shown_by_a_dry_run_then_applied() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    ensure(&js, &Definitions::embedded())
        .await
        .expect("initial apply");
    let scratch = ScratchDefinitions::new();
    scratch.set("streams/INVENTORY.json", "max_age", json!(7 * DAY_NANOS));
    scratch.set(
        "consumers/INGEST/ledger-ingest.json",
        "max_deliver",
        json!(5),
    );
    let defs = Definitions::load_dir(scratch.path()).expect("load edited definitions");
    let expected = FieldChange {
        field: "max_age".into(),
        from: json!(14 * DAY_NANOS),
        to: json!(7 * DAY_NANOS),
    };

    let dry = apply(&js, &defs, ApplyOptions { dry_run: true })
        .await
        .expect("dry run");
    assert_eq!(
        dry.outcome(&Object::stream("INVENTORY")),
        Some(&Outcome::WouldUpdate {
            changes: vec![expected.clone()]
        })
    );
    assert_eq!(
        dry.outcome(&Object::stream("INGEST")),
        Some(&Outcome::Unchanged)
    );
    assert!(
        dry.to_string().contains(
            "stream INVENTORY: would update\n  max_age: 1209600000000000 -> 604800000000000\n"
        ),
        "{dry}"
    );
    assert_eq!(
        stream_config(&js, "INVENTORY").await.max_age,
        Duration::from_secs(14 * 86_400),
        "a dry run changed the server"
    );

    let real = ensure(&js, &defs).await.expect("apply");
    assert_eq!(
        real.outcome(&Object::stream("INVENTORY")),
        Some(&Outcome::Updated {
            changes: vec![expected]
        })
    );
    assert!(matches!(
        real.outcome(&Object::consumer("INGEST", "ledger-ingest")),
        Some(Outcome::Updated { changes }) if changes[0].field == "max_deliver"
    ));
    let config = stream_config(&js, "INVENTORY").await;
    assert_eq!(config.max_age, Duration::from_secs(7 * 86_400));
    assert_eq!(
        config.duplicate_window,
        Duration::from_secs(15 * 60),
        "other fields kept"
    );
    let consumer = js
        .get_stream("INGEST")
        .await
        .expect("INGEST")
        .consumer_info("ledger-ingest")
        .await
        .expect("consumer info");
    assert_eq!(consumer.config.max_deliver, 5);

    let again = ensure(&js, &defs).await.expect("re-apply");
    assert!(!again.has_changes(), "{again}");
}

#[tokio::test]
async fn a_change_the_server_cannot_make_fails_and_applies_nothing() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    ensure(&js, &Definitions::embedded())
        .await
        .expect("initial apply");
    let scratch = ScratchDefinitions::new();
    // an allowed change listed before the refused one: it must not be applied either
    scratch.set("streams/INGEST.json", "max_age", json!(DAY_NANOS));
    scratch.set("streams/INVENTORY.json", "storage", json!("memory"));
    let defs = Definitions::load_dir(scratch.path()).expect("load edited definitions");

    let err = ensure(&js, &defs).await.expect_err("storage cannot change");

    let StreamsError::Immutable { changes } = &err else {
        panic!("expected an Immutable error, got {err}");
    };
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].object, Object::stream("INVENTORY"));
    assert_eq!(changes[0].change.field, "storage");
    let message = err.to_string();
    assert!(
        message.contains("stream INVENTORY: field `storage`"),
        "{message}"
    );
    assert_eq!(
        stream_config(&js, "INGEST").await.max_age,
        Duration::from_secs(7 * 86_400),
        "nothing may be applied when one change is refused"
    );
}

#[tokio::test]
async fn a_bad_json_file_is_an_error_naming_the_file() {
    let scratch = ScratchDefinitions::new();
    std::fs::write(
        scratch.file("streams/INGEST.json"),
        "{ \"name\": \"INGEST\", ",
    )
    .expect("write broken file");

    let err = Definitions::load_dir(scratch.path()).expect_err("broken JSON");

    assert!(matches!(err, StreamsError::Json { .. }), "{err:?}");
    let message = err.to_string();
    let path = scratch.file("streams/INGEST.json").display().to_string();
    assert!(
        message.starts_with(&format!("{path}: invalid JSON")),
        "{message}"
    );
}
