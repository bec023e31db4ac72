//! Watermark commits: a backlog writes each SKU's watermark once per commit, a caught-up
//! projector writes at once, and a stopping projector writes what it pushed.

use std::collections::HashMap;
use std::time::Duration;

use onhand_channels::ChannelSettings;
use onhand_common::Sku;
use onhand_projector::ProjectorConfig;
use onhand_projector::ops::{self, RebuildFrom};
use onhand_projector::watermark::Watermark;
use onhand_sandbox::Channel as Sandboxed;
use onhand_sandbox::state::{Faults, Knobs};
use onhand_streams::names::{INVENTORY_STREAM, WATERMARKS_BUCKET};
use onhand_testkit::eventually;

use crate::support::{Harness, Running, event, fast_config, skus};

/// Commits only when caught up or when stopping (the interval is the longest allowed).
fn slow_commits() -> ProjectorConfig {
    ProjectorConfig {
        max_batch: 50,
        ack_wait: Duration::from_secs(30),
        commit_interval: Duration::from_secs(10),
        ..fast_config()
    }
}

/// A webhook projector whose consumer starts at the stream's first event (a new one would
/// start at each SKU's newest), so the whole stream is its backlog.
async fn from_the_start(
    h: &Harness,
    settings: &ChannelSettings,
    config: ProjectorConfig,
) -> Running {
    ops::rebuild(&h.js, &settings.name, &config, RebuildFrom::Sequence(1))
        .await
        .expect("consumer at the first event");
    h.projector(settings, config).await
}

/// The webhook at five calls a second, ten messages a batch (fifty SKUs a second): a
/// backlog takes seconds, and nothing is committed while it lasts.
fn throttled(h: &Harness) -> (ChannelSettings, ProjectorConfig) {
    throttled_to(h, 5, 10)
}

/// The webhook at `per_sec` calls a second (no burst), `max_batch` messages a batch.
fn throttled_to(h: &Harness, per_sec: u32, max_batch: usize) -> (ChannelSettings, ProjectorConfig) {
    let per_sec = per_sec.to_string();
    let settings = h.settings(
        Sandboxed::Webhook,
        &[
            ("RATE_LIMIT", "documented"),
            ("RATE_PER_SEC", &per_sec),
            ("RATE_BURST", "1"),
        ],
    );
    let config = ProjectorConfig {
        max_batch,
        ..slow_commits()
    };
    (settings, config)
}

/// Watermark writes so far (the bucket's stream sequence).
async fn watermark_writes(h: &Harness) -> u64 {
    h.js.get_stream(format!("KV_{WATERMARKS_BUCKET}"))
        .await
        .expect("bucket stream")
        .info()
        .await
        .expect("info")
        .state
        .last_sequence
}

async fn watermark(h: &Harness, sku: &str) -> Option<Watermark> {
    let kv = h.js.get_key_value(WATERMARKS_BUCKET).await.expect("bucket");
    let key = format!("webhook.{}", Sku::parse(sku).expect("sku").token());
    let bytes = kv.get(&key).await.expect("get")?;
    Some(serde_json::from_slice(&bytes).expect("a watermark"))
}

/// (num_pending, num_ack_pending) of the webhook projector's consumer.
async fn consumer_state(h: &Harness) -> (u64, usize) {
    let info =
        h.js.get_stream(INVENTORY_STREAM)
            .await
            .expect("stream")
            .consumer_info("projector-webhook")
            .await
            .expect("consumer");
    (info.num_pending, info.num_ack_pending)
}

#[tokio::test]
async fn a_backlog_writes_each_skus_watermark_once_and_acks_every_message() {
    let h = Harness::start().await;
    let items = skus("backlog", 20);
    h.seed_at_zero(Sandboxed::Webhook, &items).await;
    // 600 events in the stream before the projector starts: 12 batches of 50, each with
    // every SKU, so a write per SKU per batch would be 240 writes.
    const VERSIONS: i64 = 30;
    for version in 1..=VERSIONS {
        for sku in &items {
            h.publish(&event(sku, version, 10 * version)).await;
        }
    }
    let before = watermark_writes(&h).await;
    let running = from_the_start(&h, &h.settings(Sandboxed::Webhook, &[]), slow_commits()).await;
    eventually(
        Duration::from_secs(30),
        "every message is acked and every sku shows its last value",
        || async {
            let settled = consumer_state(&h).await == (0, 0);
            let shown = items
                .iter()
                .all(|s| h.latest(Sandboxed::Webhook, s) == Some(10 * VERSIONS));
            (settled && shown).then_some(())
        },
    )
    .await;
    // Every message acked means every watermark was written (ack comes last).
    assert_eq!(
        watermark_writes(&h).await - before,
        items.len() as u64,
        "one watermark write per sku for the whole backlog"
    );
    for sku in &items {
        let mark = watermark(&h, sku).await.expect("a watermark");
        assert_eq!((mark.version, mark.qty), (VERSIONS, 10 * VERSIONS), "{sku}");
    }
    running.stop().await;
}

#[tokio::test]
async fn the_end_of_a_backlog_writes_the_watermarks_its_last_batch_does_not_touch_before_pushing_it()
 {
    let h = Harness::start().await;
    let items = skus("tail", 20);
    h.seed_at_zero(Sandboxed::Webhook, &items).await;
    // A backlog of two batches: every SKU at version 1 (a full batch, with one message
    // still pending after it, so nothing is committed), then the first SKU at version 2
    // alone, the last message in the stream.
    for sku in &items {
        h.publish(&event(sku, 1, 10)).await;
    }
    h.publish(&event(&items[0], 2, 20)).await;
    let settings = h.settings(Sandboxed::Webhook, &[("TIMEOUT_MS", "3000")]);
    let config = ProjectorConfig {
        max_batch: items.len(),
        // Long enough that the first batch fills up whatever the machine's pace, and the
        // second is handed over well after the first was pushed.
        linger: Duration::from_secs(2),
        ..slow_commits()
    };
    let before = watermark_writes(&h).await;
    let running = from_the_start(&h, &settings, config).await;
    eventually(
        Duration::from_secs(10),
        "the first batch reaches the channel",
        || async {
            items
                .iter()
                .all(|s| h.latest(Sandboxed::Webhook, s) == Some(10))
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        watermark_writes(&h).await,
        before,
        "nothing is committed while messages are pending"
    );
    // The channel now hangs every call, so the second batch's push cannot finish.
    h.sandbox.channel(Sandboxed::Webhook).set_knobs(Knobs {
        faults: Faults {
            timeout: 1.0,
            timeout_ms: 60_000,
            ..Faults::default()
        },
        ..Knobs::default()
    });
    // The other SKUs' watermarks are written (and their deliveries acked) while the first
    // SKU's push hangs: only its newer delivery stays unacked.
    eventually(
        Duration::from_secs(10),
        "the untouched SKUs' watermarks are written during the last push",
        || async {
            let others_written = watermark_writes(&h).await - before == items.len() as u64 - 1;
            (others_written && consumer_state(&h).await == (0, 1)).then_some(())
        },
    )
    .await;
    assert_eq!(h.latest(Sandboxed::Webhook, &items[0]), Some(10));
    assert_eq!(watermark(&h, &items[0]).await, None, "{}", items[0]);
    for sku in &items[1..] {
        let mark = watermark(&h, sku).await.expect("a watermark");
        assert_eq!((mark.version, mark.qty), (1, 10), "{sku}");
    }
    // Once the channel answers again, the first SKU's newest value and watermark follow.
    h.sandbox
        .channel(Sandboxed::Webhook)
        .set_knobs(Knobs::default());
    eventually(
        Duration::from_secs(30),
        "the first SKU reaches version 2 and everything is acked",
        || async {
            let mark = watermark(&h, &items[0]).await?;
            (mark.version == 2
                && h.latest(Sandboxed::Webhook, &items[0]) == Some(20)
                && consumer_state(&h).await == (0, 0))
                .then_some(())
        },
    )
    .await;
    running.stop().await;
}

#[tokio::test]
async fn a_caught_up_projector_writes_the_watermark_without_waiting_for_the_interval() {
    let h = Harness::start().await;
    h.seed(Sandboxed::Webhook, &[("live-1".to_owned(), 0)])
        .await;
    let running = h
        .projector(&h.settings(Sandboxed::Webhook, &[]), slow_commits())
        .await;
    h.publish(&event("live-1", 1, 7)).await;
    // Well inside the 10 s commit interval: nothing else is in the stream, so the batch
    // commits at once.
    eventually(
        Duration::from_secs(5),
        "the watermark is written and the message acked",
        || async {
            let mark = watermark(&h, "live-1").await?;
            (mark.version == 1 && consumer_state(&h).await == (0, 0)).then_some(())
        },
    )
    .await;
    running.stop().await;
}

#[tokio::test]
async fn a_stopping_projector_writes_the_watermarks_of_what_it_pushed() {
    let h = Harness::start().await;
    let items = skus("stop", 40);
    h.seed_at_zero(Sandboxed::Webhook, &items).await;
    for version in 1..=5 {
        for sku in &items {
            h.publish(&event(sku, version, 10 * version)).await;
        }
    }
    // The projector stops with pushed SKUs whose watermarks wait for a commit.
    let (settings, config) = throttled(&h);
    let running = from_the_start(&h, &settings, config).await;
    eventually(
        Duration::from_secs(30),
        "a few batches reach the channel",
        || async { (h.writes(Sandboxed::Webhook).len() >= 30).then_some(()) },
    )
    .await;
    running.stop().await;
    assert!(
        items
            .iter()
            .any(|s| h.latest(Sandboxed::Webhook, s) != Some(50)),
        "the projector stopped before the end of the backlog"
    );
    // Each SKU's last value the channel accepted, as (version, qty).
    let mut shown: HashMap<String, i64> = HashMap::new();
    for w in h.writes(Sandboxed::Webhook) {
        shown.insert(w.sku.clone(), w.quantity);
    }
    for (sku, qty) in &shown {
        let mark = watermark(&h, sku)
            .await
            .unwrap_or_else(|| panic!("{sku} reached the channel ({qty}) but has no watermark"));
        assert_eq!((mark.version * 10, mark.qty), (*qty, *qty), "{sku}");
    }
}

#[tokio::test]
async fn a_rebuild_under_a_running_projector_restores_skus_whose_watermarks_were_held() {
    let h = Harness::start().await;
    let items = skus("held", 200);
    h.seed_at_zero(Sandboxed::Webhook, &items).await;
    // One version per SKU: each SKU pushed mid-backlog is held at its newest version.
    for sku in &items {
        h.publish(&event(sku, 1, 10)).await;
    }
    let (settings, config) = throttled(&h);
    let running = from_the_start(&h, &settings, config.clone()).await;
    let some_writes = |n: usize| {
        let h = &h;
        move || async move { (h.writes(Sandboxed::Webhook).len() >= n).then_some(()) }
    };
    eventually(Duration::from_secs(30), "some skus pushed", some_writes(20)).await;
    // The channel loses its state while the projector runs (the wipe also clears its write
    // log); the SKUs pushed so far are lost there, their watermarks still held.
    h.wipe(Sandboxed::Webhook).await;
    h.seed_at_zero(Sandboxed::Webhook, &items).await;
    // Once later batches reached the wiped channel, an operator rebuilds it under the
    // running projector: the watermarks are purged and the consumer recreated.
    eventually(
        Duration::from_secs(30),
        "pushes after the wipe",
        some_writes(20),
    )
    .await;
    ops::rebuild(&h.js, "webhook", &config, RebuildFrom::LastPerSubject)
        .await
        .expect("rebuild");
    // Had the projector written the held watermarks after the purge, their SKUs would look
    // applied to the new consumer and stay at 0.
    eventually(
        Duration::from_secs(60),
        "the rebuild restores every sku",
        || async {
            items
                .iter()
                .all(|s| h.latest(Sandboxed::Webhook, s) == Some(10))
                .then_some(())
        },
    )
    .await;
    running.stop().await;
}

#[tokio::test]
async fn a_held_delivery_is_acked_when_a_newer_one_of_its_sku_arrives_not_after_its_push() {
    let h = Harness::start().await;
    h.seed(Sandboxed::Webhook, &[("hot-1".to_owned(), 0)]).await;
    for version in 1..=5 {
        h.publish(&event("hot-1", version, 10 * version)).await;
    }
    let before = watermark_writes(&h).await;
    // One message a batch, one channel call a second: version 1 is pushed at once and held
    // (a backlog, nothing committed); version 2 then waits a second for its call.
    let (settings, config) = throttled_to(&h, 1, 1);
    let running = from_the_start(&h, &settings, config).await;
    // Acked once version 2 is in hand: its call has not reached the channel yet.
    eventually(
        Duration::from_secs(30),
        "version 1 acked while version 2 waits for its call",
        || async {
            let floor =
                h.js.get_stream(INVENTORY_STREAM)
                    .await
                    .expect("stream")
                    .consumer_info("projector-webhook")
                    .await
                    .expect("consumer")
                    .ack_floor
                    .stream_sequence;
            let writes = h.writes(Sandboxed::Webhook).len();
            assert!(writes <= 5, "{writes} writes for 5 versions");
            (floor >= 1 && writes == 1).then_some(())
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "every version pushed and every message acked",
        || async {
            (h.latest(Sandboxed::Webhook, "hot-1") == Some(50)
                && consumer_state(&h).await == (0, 0))
                .then_some(())
        },
    )
    .await;
    // The held watermarks were replaced, not written, while the backlog lasted.
    assert_eq!(watermark_writes(&h).await - before, 1);
    let mark = watermark(&h, "hot-1").await.expect("a watermark");
    assert_eq!((mark.version, mark.qty), (5, 50));
    running.stop().await;
}

#[tokio::test]
async fn a_stop_finishes_the_batch_in_hand_and_hands_the_next_one_back() {
    let h = Harness::start().await;
    let items = skus("handback", 30);
    h.seed_at_zero(Sandboxed::Webhook, &items).await;
    for sku in &items {
        h.publish(&event(sku, 1, 10)).await;
    }
    // Ten messages a batch, one call a second: the first call goes at once, the next waits
    // a second, and a further batch is received meanwhile.
    let (settings, config) = throttled_to(&h, 1, 10);
    let running = from_the_start(&h, &settings, config).await;
    eventually(Duration::from_secs(30), "the first call", || async {
        (!h.writes(Sandboxed::Webhook).is_empty()).then_some(())
    })
    .await;
    running.stop().await;
    // At most the first call and the one in hand: a batch received but not begun was not
    // pushed (three calls would have written more than 20 items).
    let written = h.writes(Sandboxed::Webhook).len();
    assert!(written <= 20, "{written} items written after the stop");
    // It went back to the server: a successor pushes every SKU and acks every message.
    let running = h
        .projector(&h.settings(Sandboxed::Webhook, &[]), slow_commits())
        .await;
    eventually(
        Duration::from_secs(30),
        "every sku at its value and every message acked",
        || async {
            let shown = items
                .iter()
                .all(|s| h.latest(Sandboxed::Webhook, s) == Some(10));
            (shown && consumer_state(&h).await == (0, 0)).then_some(())
        },
    )
    .await;
    running.stop().await;
}
