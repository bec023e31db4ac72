//! Writing watermarks: every write gets its own answer from the stream, in the order
//! written, across several steps of one run; a write the stream refuses, or one no stream
//! takes, comes back as an error naming why, and what the bucket held is left as it was.

use async_nats::jetstream::kv::Store;
use onhand_common::Sku;
use onhand_projector::watermark::{Stored, Watermark, Watermarks};
use onhand_streams::names::WATERMARKS_BUCKET;
use time::macros::datetime;

use crate::support::Harness;

const CHANNEL: &str = "webhook";

fn sku(i: usize) -> Sku {
    Sku::parse(format!("wr-{i:05}")).expect("valid sku")
}

fn mark(i: usize) -> Watermark {
    Watermark {
        version: i as i64 + 1,
        qty: (i % 13) as i64,
        pushed_at: datetime!(2026-11-27 12:00 UTC),
    }
}

async fn bucket(h: &Harness) -> Store {
    h.js.get_key_value(WATERMARKS_BUCKET)
        .await
        .expect("watermarks bucket")
}

async fn read(kv: &Store, i: usize) -> Option<Stored> {
    kv.get(Watermarks::key(CHANNEL, &sku(i)))
        .await
        .expect("get")
        .map(|bytes| serde_json::from_slice(&bytes).expect("a stored watermark"))
}

#[tokio::test]
async fn a_run_of_writes_settles_step_by_step_in_the_order_written() {
    let h = Harness::start().await;
    let kv = bucket(&h).await;
    let writer = Watermarks::new(CHANNEL, h.js.clone(), kv.clone()).writer();
    // More than the 2,000 a run keeps unanswered, in three steps.
    let mut pending = writer
        .write((0..2_500).map(|i| (sku(i), mark(i))).collect(), false)
        .await;
    pending
        .write((2_500..4_000).map(|i| (sku(i), mark(i))).collect())
        .await;
    let first = pending.settle_next(1_000).await;
    pending
        .write((4_000..4_500).map(|i| (sku(i), mark(i))).collect())
        .await;
    let rest = pending.settle().await;
    let all: Vec<_> = first.into_iter().chain(rest).collect();
    assert_eq!(all.len(), 4_500);
    for (i, (s, result)) in all.into_iter().enumerate() {
        assert_eq!(s, sku(i), "results come in the order written");
        result.unwrap_or_else(|e| panic!("write {i}: {e}"));
    }
    for i in [0, 1_999, 2_000, 3_999, 4_499] {
        assert_eq!(
            read(&kv, i).await,
            Some(Stored {
                mark: mark(i),
                pending: false
            }),
            "watermark {i}"
        );
    }
}

#[tokio::test]
async fn a_write_the_stream_refuses_names_the_reason_and_keeps_the_stored_value() {
    let h = Harness::start().await;
    let kv = bucket(&h).await;
    let writer = Watermarks::new(CHANNEL, h.js.clone(), kv.clone()).writer();
    for (_, result) in writer
        .write(vec![(sku(1), mark(1))], false)
        .await
        .settle()
        .await
    {
        result.expect("first write");
    }
    // The bucket now takes nothing as large as a watermark.
    let mut stream =
        h.js.get_stream(format!("KV_{WATERMARKS_BUCKET}"))
            .await
            .expect("bucket stream");
    let mut config = stream.info().await.expect("info").config.clone();
    config.max_message_size = 16;
    h.js.update_stream(&config).await.expect("update stream");

    let results = writer
        .write(vec![(sku(1), mark(50)), (sku(2), mark(2))], false)
        .await
        .settle()
        .await;
    assert_eq!(results.len(), 2);
    for (s, result) in results {
        let err = result.expect_err("refused").to_string();
        assert!(
            err.contains(&Watermarks::key(CHANNEL, &s)) && err.contains("maximum"),
            "the error names the key and the server's reason: {err}"
        );
    }
    assert_eq!(
        read(&kv, 1).await,
        Some(Stored {
            mark: mark(1),
            pending: false
        }),
        "the stored watermark is untouched"
    );
    assert_eq!(read(&kv, 2).await, None);
}

#[tokio::test]
async fn a_write_no_stream_takes_fails_at_once_rather_than_waiting() {
    let h = Harness::start().await;
    let kv = bucket(&h).await;
    let writer = Watermarks::new(CHANNEL, h.js.clone(), kv).writer();
    h.js.delete_stream(format!("KV_{WATERMARKS_BUCKET}"))
        .await
        .expect("delete the bucket");
    let results = writer
        .write((0..3).map(|i| (sku(i), mark(i))).collect(), false)
        .await
        .settle()
        .await;
    for (_, result) in results {
        // Answered by the server (no responders), not given up on after a timeout.
        let err = result.expect_err("no bucket").to_string();
        assert!(err.contains("no responders"), "{err}");
        assert!(!err.contains("no acknowledgement"), "{err}");
    }
}
