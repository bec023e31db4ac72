//! The webhook adapter against the sandbox's receiver, over HTTP: the receiver verifies
//! every signature, so a passing write proves the adapter signs the bytes it sends.

use std::time::Duration;

use onhand_channels::webhook::{Webhook, WebhookConfig};
use onhand_channels::{
    ApiRequest, Auth, ChannelApi, ChannelKind, HttpChannel, PushOutcome, RateLimit, RateLimiter,
    Target, Transport,
};
use onhand_sandbox::state::{Faults, RateKnob};
use onhand_sandbox::{Channel, Knobs};
use secrecy::SecretString;

use crate::support::{TestSandbox, push};

fn channel(
    sb: &TestSandbox,
    path: &str,
    secret: &str,
    limit: Option<RateLimit>,
    max_batch: usize,
) -> HttpChannel<Webhook> {
    let api = Webhook::new(WebhookConfig {
        path: path.to_owned(),
        max_batch,
        ..WebhookConfig::new(SecretString::from(secret.to_owned()))
    });
    let transport = Transport::new(
        ChannelKind::Webhook,
        sb.url(Channel::Webhook),
        Auth::None,
        Duration::from_secs(5),
        RateLimiter::new(limit),
    )
    .expect("transport");
    HttpChannel::new(api, transport)
}

fn sandbox_channel(sb: &TestSandbox) -> HttpChannel<Webhook> {
    channel(sb, "/inventory", onhand_sandbox::webhook::SECRET, None, 100)
}

fn targets(pushes: &[onhand_channels::Push]) -> Vec<Target> {
    pushes
        .iter()
        .map(|p| Target {
            push: p.clone(),
            reference: None,
        })
        .collect()
}

#[tokio::test]
async fn signed_batches_are_split_at_the_cap_applied_and_logged() {
    let sb = TestSandbox::start().await;
    let skus: Vec<String> = (0..250).map(|i| format!("SKU-{i:04}")).collect();
    let seed: Vec<(&str, i64)> = skus.iter().map(|s| (s.as_str(), 0)).collect();
    sb.seed(Channel::Webhook, &seed).await;
    let ch = sandbox_channel(&sb);
    let pushes: Vec<_> = skus
        .iter()
        .enumerate()
        .map(|(i, s)| push(s, i as i64 + 1, 3))
        .collect();

    let outcomes = ch.push(&pushes).await;

    assert!(
        outcomes.iter().all(|o| *o == PushOutcome::Applied),
        "{outcomes:?}"
    );
    assert_eq!(sb.latest(Channel::Webhook, "SKU-0000"), Some(1));
    assert_eq!(sb.latest(Channel::Webhook, "SKU-0249"), Some(250));
    let writes = sb.writes(Channel::Webhook);
    assert_eq!(writes.len(), 250);
    assert_eq!(writes[100].sku, "SKU-0100", "batches arrive in order");
}

#[tokio::test]
async fn a_wrong_secret_or_a_tampered_body_is_refused_401_and_held() {
    let sb = TestSandbox::start().await;
    sb.seed(Channel::Webhook, &[("A-1", 5)]).await;

    // A wrong secret is a configuration problem, not the SKU's: held for retry.
    let wrong = channel(&sb, "/inventory", "not-the-secret", None, 100);
    let outcomes = wrong.push(&[push("A-1", 9, 2)]).await;
    assert!(
        matches!(&outcomes[0], PushOutcome::Transient { reason, .. } if reason.contains("HTTP 401")),
        "{outcomes:?}"
    );

    let ch = sandbox_channel(&sb);
    let mut request = ch
        .api()
        .write_request_at(&targets(&[push("A-1", 9, 2)]), now())
        .expect("request");
    request.body = Some(
        serde_json::json!({"items": [
            {"sku": "A-1", "quantity": 9000, "version": 2, "event_id": uuid::Uuid::nil()}
        ]})
        .to_string()
        .into(),
    );
    let resp = ch.transport().send(&request).await.expect("send");
    assert_eq!(resp.status, 401);

    let unsigned = ApiRequest::get("/inventory?page=1");
    let resp = ch.transport().send(&unsigned).await.expect("send");
    assert_eq!(resp.status, 401, "reads are signed too");

    assert_eq!(sb.latest(Channel::Webhook, "A-1"), Some(5));
    assert!(sb.writes(Channel::Webhook).is_empty());
}

#[tokio::test]
async fn a_correctly_signed_but_old_request_is_refused_401_and_held() {
    let sb = TestSandbox::start().await;
    sb.seed(Channel::Webhook, &[("A-1", 5)]).await;
    let ch = sandbox_channel(&sb);
    let batch = targets(&[push("A-1", 9, 2)]);

    // Signed 301 s ago: a replay, or a request that sat in the rate limiter that long.
    let replayed = ch
        .api()
        .write_request_at(&batch, now() - 301)
        .expect("request");
    let resp = ch.transport().send(&replayed).await.expect("send");
    assert_eq!(resp.status, 401, "{:?}", resp.body);
    assert!(
        String::from_utf8_lossy(&resp.body).contains("timestamp_out_of_window"),
        "the signature passed; the window refused it"
    );
    // Not the item's fault: held for a retry, which is signed afresh, not dead-lettered.
    assert!(
        matches!(
            &ch.api().write_outcomes(&batch, &resp)[0],
            onhand_channels::ItemResult::Done(PushOutcome::Transient { .. })
        ),
        "an expired signature must not dead-letter the batch"
    );
    assert_eq!(sb.latest(Channel::Webhook, "A-1"), Some(5));

    let fresh = ch
        .api()
        .write_request_at(&batch, now() - 240)
        .expect("request");
    let resp = ch.transport().send(&fresh).await.expect("send");
    assert_eq!(resp.status, 200, "inside the window");
    assert_eq!(sb.latest(Channel::Webhook, "A-1"), Some(9));
}

#[tokio::test]
async fn rejected_items_fan_out_to_their_skus() {
    let sb = TestSandbox::start().await;
    sb.seed(Channel::Webhook, &[("A-1", 1), ("C-3", 1)]).await;
    let ch = sandbox_channel(&sb);

    let outcomes = ch
        .push(&[push("A-1", 4, 2), push("B-2", 4, 2), push("C-3", 4, 2)])
        .await;

    assert_eq!(outcomes[0], PushOutcome::Applied);
    assert_eq!(
        outcomes[1],
        PushOutcome::permanent("rejected", "unknown_sku")
    );
    assert_eq!(outcomes[2], PushOutcome::Applied);
    assert_eq!(sb.latest(Channel::Webhook, "C-3"), Some(4));

    sb.knobs(
        Channel::Webhook,
        Knobs {
            faults: Faults {
                item_error: 1.0,
                ..Faults::default()
            },
            ..Knobs::default()
        },
    );
    let outcomes = ch.push(&[push("A-1", 7, 3), push("C-3", 7, 3)]).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, PushOutcome::Permanent { message, .. } if message == "injected item error")),
        "{outcomes:?}"
    );
    assert_eq!(sb.latest(Channel::Webhook, "A-1"), Some(4));
    // A negative quantity is refused before any injected error, and changes nothing.
    let outcomes = ch.push(&[push("A-1", -1, 4)]).await;
    assert_eq!(
        outcomes[0],
        PushOutcome::permanent("rejected", "invalid_quantity")
    );
    assert_eq!(sb.latest(Channel::Webhook, "A-1"), Some(4));
    let writes = sb.writes(Channel::Webhook);
    assert_eq!(
        writes
            .iter()
            .map(|w| (w.sku.as_str(), w.quantity))
            .collect::<Vec<_>>(),
        [("A-1", 4), ("C-3", 4)],
        "only the applied items are in the write log"
    );
}

#[tokio::test]
async fn server_errors_are_transient() {
    let sb = TestSandbox::start().await;
    sb.seed(Channel::Webhook, &[("A-1", 1)]).await;
    sb.knobs(
        Channel::Webhook,
        Knobs {
            faults: Faults {
                http_5xx: 1.0,
                ..Faults::default()
            },
            ..Knobs::default()
        },
    );
    let outcomes = sandbox_channel(&sb).push(&[push("A-1", 4, 2)]).await;
    assert!(
        matches!(&outcomes[0], PushOutcome::Transient { .. }),
        "{outcomes:?}"
    );
    assert_eq!(sb.latest(Channel::Webhook, "A-1"), Some(1));
}

#[tokio::test]
async fn a_429_is_transient_with_its_retry_after_and_the_next_send_waits() {
    let sb = TestSandbox::start().await;
    sb.seed(Channel::Webhook, &[("A-1", 0), ("B-2", 0), ("C-3", 0)])
        .await;
    sb.knobs(
        Channel::Webhook,
        Knobs {
            rate: Some(RateKnob {
                capacity: 1.0,
                refill_per_sec: 1.0,
            }),
            ..Knobs::default()
        },
    );
    // The client's own limit is generous: only the 429 makes it wait.
    let ch = channel(
        &sb,
        "/inventory",
        onhand_sandbox::webhook::SECRET,
        Some(RateLimit {
            capacity: 100.0,
            refill_per_sec: 100.0,
        }),
        1,
    );

    let first = ch.push(&[push("A-1", 1, 1), push("B-2", 1, 1)]).await;
    assert_eq!(first[0], PushOutcome::Applied);
    match &first[1] {
        PushOutcome::Transient { retry_after, .. } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(1)));
        }
        other => panic!("expected a throttled transient outcome, got {other:?}"),
    }

    let started = std::time::Instant::now();
    let second = ch.push(&[push("C-3", 1, 1)]).await;
    assert_eq!(second[0], PushOutcome::Applied);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the limiter held the next request for Retry-After ({:?})",
        started.elapsed()
    );
    assert_eq!(sb.writes(Channel::Webhook).len(), 2);
}

#[tokio::test]
async fn read_back_pages_over_ten_thousand_skus() {
    let sb = TestSandbox::start().await;
    let skus: Vec<String> = (0..10_001).map(|i| format!("P-{i:05}")).collect();
    let seed: Vec<(&str, i64)> = skus
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), (i % 97) as i64))
        .collect();
    sb.seed(Channel::Webhook, &seed).await;

    // The default path, "/": the receiver's root.
    let ch = channel(&sb, "/", onhand_sandbox::webhook::SECRET, None, 100);
    let listed = ch.read_all().await.expect("read-back");

    assert_eq!(listed.len(), 10_001);
    for (i, item) in listed.iter().enumerate() {
        assert_eq!(item.sku.as_str(), skus[i]);
        assert_eq!(item.quantity, (i % 97) as i64, "{}", item.sku);
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}
