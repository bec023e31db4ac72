//! Reading uncached watermarks: a thousand keys per request where the server allows it,
//! one request per key where it does not, with the same result either way.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use async_nats::jetstream::Context;
use onhand_common::Sku;
use onhand_projector::watermark::{Stored, Watermark, Watermarks};
use onhand_streams::names::WATERMARKS_BUCKET;
use time::macros::datetime;

use crate::support::Harness;

const CHANNEL: &str = "webhook";

fn sku(i: usize) -> Sku {
    Sku::parse(format!("rd-{i:05}")).expect("valid sku")
}

fn mark(i: usize) -> Watermark {
    Watermark {
        version: i as i64 + 1,
        qty: (i % 17) as i64,
        pushed_at: datetime!(2026-11-27 10:00 UTC),
    }
}

/// 2,600 SKUs: most with a watermark (some intents), one deleted, one purged, one holding
/// garbage, a few never written, and one whose key exists only for another channel.
/// Returns the SKUs and what each should read as.
async fn fill(js: &Context) -> (Vec<Sku>, HashMap<Sku, Option<Stored>>) {
    let kv = js
        .get_key_value(WATERMARKS_BUCKET)
        .await
        .expect("watermarks bucket");
    let skus: Vec<Sku> = (0..2_600).map(sku).collect();
    let mut expected = HashMap::new();
    let writer = Watermarks::new(CHANNEL, js.clone(), kv.clone()).writer();
    let (confirmed, intents): (Vec<usize>, Vec<usize>) = (0..2_500).partition(|i| i % 10 != 0);
    for (list, pending) in [(confirmed, false), (intents, true)] {
        let marks = list.iter().map(|&i| (sku(i), mark(i))).collect();
        for (_, result) in writer.write(marks, pending).await.settle().await {
            result.expect("watermark written");
        }
        for i in list {
            expected.insert(
                sku(i),
                Some(Stored {
                    mark: mark(i),
                    pending,
                }),
            );
        }
    }
    let key = |i: usize| Watermarks::key(CHANNEL, &sku(i));
    kv.delete(key(1)).await.expect("delete");
    expected.insert(sku(1), None);
    kv.purge(key(2)).await.expect("purge");
    expected.insert(sku(2), None);
    kv.put(key(3), "not json".into())
        .await
        .expect("put garbage");
    expected.insert(sku(3), None);
    // SKU 2,599 has a watermark only on another channel.
    let other = Watermarks::key("shopify", &sku(2_599));
    kv.put(other, serde_json::to_vec(&mark(7)).expect("json").into())
        .await
        .expect("put");
    for i in 2_500..2_600 {
        expected.insert(sku(i), None);
    }
    (skus, expected)
}

/// Load every SKU through a fresh client of `js`'s server; returns what each read as and
/// how many messages the client sent.
async fn load(js: Context, skus: &[Sku], batched: bool) -> (HashMap<Sku, Option<Stored>>, u64) {
    let kv = js
        .get_key_value(WATERMARKS_BUCKET)
        .await
        .expect("watermarks bucket");
    let stats = js.client().statistics();
    let mut marks = Watermarks::new(CHANNEL, js.clone(), kv).with_batched_reads(batched);
    let before = stats.out_messages.load(Ordering::Relaxed);
    let refs: Vec<&Sku> = skus.iter().collect();
    let stored = marks.load_stored(&refs).await.expect("watermarks load");
    let sent = stats.out_messages.load(Ordering::Relaxed) - before;
    // What the load returned is what the cache now holds, in order; a second load reads
    // the cache only.
    for (s, found) in skus.iter().zip(&stored) {
        assert_eq!(*found, marks.stored(s), "{s}");
    }
    let again = marks.load_stored(&refs).await.expect("cached load");
    assert_eq!(again, stored);
    assert_eq!(
        stats.out_messages.load(Ordering::Relaxed) - before,
        sent,
        "a load of cached watermarks sends nothing"
    );
    (
        skus.iter().map(|s| (s.clone(), marks.stored(s))).collect(),
        sent,
    )
}

#[tokio::test]
async fn uncached_watermarks_are_read_a_thousand_per_request_and_match_reading_one_by_one() {
    let h = Harness::start().await;
    let (skus, expected) = fill(&h.js).await;

    let (batched, batched_sent) = load(h.nats.jetstream().await, &skus, true).await;
    let (one_by_one, one_by_one_sent) = load(h.nats.jetstream().await, &skus, false).await;

    for s in &skus {
        assert_eq!(batched.get(s), expected.get(s), "batched read of {s}");
        assert_eq!(one_by_one.get(s), expected.get(s), "one-by-one read of {s}");
    }
    // 2,600 keys: three requests of up to 1,000 (plus the client's own traffic).
    assert!(
        batched_sent <= 10,
        "the batched read sent {batched_sent} messages"
    );
    assert!(
        one_by_one_sent >= 2_600,
        "the one-by-one read sent {one_by_one_sent} messages"
    );
}

/// A projector user whose permissions predate batched reads (only the subject-appended
/// form for its own keys): the batched request goes unanswered, and the read falls back
/// to one request per key, with the same result.
#[tokio::test]
async fn a_user_not_allowed_batched_reads_falls_back_to_one_request_per_key() {
    let config = r#"
accounts {
  APP {
    jetstream: enabled
    users = [
      { user: admin, password: admin }
      { user: narrow, password: narrow, permissions: {
          publish: { allow: [
            "$JS.API.STREAM.INFO.KV_onhand_watermarks",
            "$JS.API.DIRECT.GET.KV_onhand_watermarks.$KV.onhand_watermarks.webhook.>"
          ] }
          subscribe: { allow: ["_INBOX.>"] }
      } }
    ]
  }
}
no_auth_user: admin
"#;
    let h = Harness::start_with_nats_config(config).await;
    let (skus, expected) = fill(&h.js).await;
    let client =
        async_nats::ConnectOptions::with_user_and_password("narrow".into(), "narrow".into())
            .connect(h.nats.url())
            .await
            .expect("narrow user connects");
    let (read, sent) = load(async_nats::jetstream::new(client), &skus, true).await;
    for s in &skus {
        assert_eq!(read.get(s), expected.get(s), "read of {s}");
    }
    assert!(
        sent >= 2_600,
        "{sent} messages sent: the batched request was not refused, the test proves nothing"
    );
}
