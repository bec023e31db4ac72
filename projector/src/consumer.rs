//! The durable consumer `projector-<channel>` on `INVENTORY`, and the lag it reports.

use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, Consumer, DeliverPolicy};
use onhand_common::event::INVENTORY_SUBJECT_PREFIX;
use onhand_streams::names::INVENTORY_STREAM;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::config::ProjectorConfig;
use crate::metrics;

/// `projector-<channel>`.
pub fn name(channel: &str) -> String {
    format!("projector-{channel}")
}

fn config(channel: &str, settings: &ProjectorConfig, deliver: DeliverPolicy) -> PullConfig {
    PullConfig {
        durable_name: Some(name(channel)),
        description: Some(format!("onhand projector for channel {channel}")),
        deliver_policy: deliver,
        ack_policy: AckPolicy::Explicit,
        ack_wait: settings.ack_wait,
        // Transient failures are retried until they succeed; permanent ones are
        // dead-lettered by the projector itself.
        max_deliver: -1,
        max_ack_pending: settings.max_ack_pending,
        filter_subject: format!("{INVENTORY_SUBJECT_PREFIX}>"),
        ..PullConfig::default()
    }
}

/// The channel's durable consumer: bound if it exists (its mutable settings brought to
/// `settings`), created otherwise. A new consumer, or `fresh` given, starts at `deliver`
/// (default: the last event of every SKU, which is the channel's whole state).
pub async fn ensure(
    js: &Context,
    channel: &str,
    settings: &ProjectorConfig,
    fresh: Option<DeliverPolicy>,
) -> Result<Consumer<PullConfig>, async_nats::Error> {
    let stream = js.get_stream(INVENTORY_STREAM).await?;
    let durable = name(channel);
    if let Some(deliver) = fresh {
        match stream.delete_consumer(&durable).await {
            Ok(_) => {}
            Err(err)
                if matches!(
                    err.kind(),
                    async_nats::jetstream::stream::ConsumerErrorKind::JetStream(e)
                        if e.error_code() == async_nats::jetstream::ErrorCode::CONSUMER_NOT_FOUND
                ) => {}
            Err(err) => return Err(err.into()),
        }
        return Ok(stream
            .create_consumer(config(channel, settings, deliver))
            .await?);
    }
    match stream.get_consumer::<PullConfig>(&durable).await {
        Ok(consumer) => {
            let existing = &consumer.cached_info().config;
            if existing.ack_wait != settings.ack_wait
                || existing.max_ack_pending != settings.max_ack_pending
            {
                let wanted = config(channel, settings, existing.deliver_policy);
                stream.update_consumer(wanted).await?;
                return stream.get_consumer(&durable).await;
            }
            Ok(consumer)
        }
        Err(_) => Ok(stream
            .create_consumer(config(channel, settings, DeliverPolicy::LastPerSubject))
            .await?),
    }
}

/// Every `interval`: pending (not yet delivered + delivered, not acked) and lag (the age
/// of the oldest event not yet acked, or older for a SKU whose delivery is put off, from
/// `deferred`; 0 when caught up).
pub async fn watch_lag(
    js: Context,
    channel: String,
    deferred: crate::deferred::Oldest,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match sample(&js, &channel).await {
            Ok((pending, lag)) => {
                // A put-off delivery stands for older events of its SKU, acked as it
                // superseded them: the channel has been behind since the oldest of those.
                let put_off = crate::deferred::read_oldest(&deferred).map_or(0.0, |since| {
                    (OffsetDateTime::now_utc() - since).as_seconds_f64()
                });
                metrics::pending(&channel, pending);
                metrics::lag(&channel, lag.max(put_off));
            }
            Err(err) => tracing::debug!(error = %err, "lag not sampled"),
        }
        match dlq_depth(&js, &channel).await {
            Ok(depth) => metrics::dlq_depth(&channel, depth),
            Err(err) => tracing::debug!(error = %err, "dead-letter depth not sampled"),
        }
    }
}

/// Dead letters of `channel` in `INVENTORY_DLQ` now (its subject's message count).
pub async fn dlq_depth(js: &Context, channel: &str) -> Result<u64, async_nats::Error> {
    use futures::TryStreamExt as _;
    let subject = crate::dlq::subject(channel);
    let stream = js.get_stream(onhand_streams::names::DLQ_STREAM).await?;
    let mut counts = stream.info_with_subjects(&subject).await?;
    let mut depth = 0;
    while let Some((name, count)) = counts.try_next().await? {
        if name == subject {
            depth += count as u64;
        }
    }
    Ok(depth)
}

/// (pending, lag seconds) now.
pub async fn sample(js: &Context, channel: &str) -> Result<(u64, f64), async_nats::Error> {
    let stream = js.get_stream(INVENTORY_STREAM).await?;
    let info = stream.consumer_info(name(channel)).await?;
    let pending = info.num_pending + info.num_ack_pending as u64;
    if pending == 0 {
        return Ok((0, 0.0));
    }
    let oldest = stream
        .direct_get_next_for_subject(
            format!("{INVENTORY_SUBJECT_PREFIX}>"),
            Some(info.ack_floor.stream_sequence + 1),
        )
        .await?;
    let age = (OffsetDateTime::now_utc() - oldest.time).as_seconds_f64();
    Ok((pending, age.max(0.0)))
}
