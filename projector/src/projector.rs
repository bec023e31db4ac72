//! The live loop: fetch a batch, decode (poison → DLQ, term), keep the newest event per
//! SKU, apply it (guard, policy, push, watermark), then ack every message of the batch.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::pull::MessagesErrorKind;
use async_nats::jetstream::{AckKind, Context, Message};
use futures::StreamExt;
use onhand_common::backoff::Backoff;
use onhand_common::event::{HEADER_TRACEPARENT, MAX_EVENT_BYTES};
use onhand_common::telemetry::TraceContext;
use onhand_common::{InventoryEvent, Sku, decode_event};
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::apply::{Applier, Pushed, SkuOutcome};
use crate::config::ProjectorConfig;
use crate::consumer;
use crate::dlq::{self, DeadLetter};
use crate::metrics::{self, Outcome, Tally};

/// A projector for one channel.
#[derive(Debug)]
pub struct Projector {
    pub(crate) js: Context,
    pub(crate) applier: Applier,
    pub(crate) config: ProjectorConfig,
    pub(crate) ready: Arc<AtomicBool>,
}

/// One delivered message, decoded.
#[derive(Debug)]
struct Delivered {
    message: Message,
    sequence: u64,
    delivered: i64,
    event: InventoryEvent,
}

impl Projector {
    pub fn new(js: Context, applier: Applier, config: ProjectorConfig) -> Self {
        Self {
            js,
            applier,
            config,
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Set once the durable consumer is bound; cleared while reattaching.
    pub fn ready_flag(&self) -> Arc<AtomicBool> {
        self.ready.clone()
    }

    /// Consume until `shutdown`; reattach after any stream or server error. The batch in
    /// hand when `shutdown` fires is finished first.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let lag = tokio::spawn(consumer::watch_lag(
            self.js.clone(),
            self.applier.channel_name.clone(),
            self.config.lag_interval,
            shutdown.clone(),
        ));
        while !shutdown.is_cancelled() {
            match self.consume(&shutdown).await {
                Ok(()) => backoff.reset(),
                Err(err) => {
                    self.ready.store(false, Ordering::Relaxed);
                    tracing::warn!(error = %err, channel = %self.applier.channel_name, failures = backoff.failures() + 1, "projector consumer unavailable; reattaching");
                    if !backoff.wait(&shutdown).await {
                        break;
                    }
                }
            }
        }
        self.ready.store(false, Ordering::Relaxed);
        lag.abort();
        tracing::info!(channel = %self.applier.channel_name, "projector stopped");
    }

    async fn consume(&mut self, shutdown: &CancellationToken) -> Result<(), async_nats::Error> {
        let consumer =
            consumer::ensure(&self.js, &self.applier.channel_name, &self.config, None).await?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(self.config.max_batch)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await?;
        // The consumer may be new (a rebuild by another process resets the watermarks).
        self.applier.watermarks.clear_cache();
        self.ready.store(true, Ordering::Relaxed);
        tracing::info!(channel = %self.applier.channel_name, consumer = %consumer::name(&self.applier.channel_name), "projector attached");
        // The previous batch's watermark acknowledgements and message acks, finishing while
        // this batch is fetched and pushed.
        let mut tail: Option<JoinHandle<Vec<Sku>>> = None;
        let result = self
            .consume_batches(&mut messages, &mut tail, shutdown)
            .await;
        self.finish_tail(&mut tail).await;
        result
    }

    async fn consume_batches(
        &mut self,
        messages: &mut async_nats::jetstream::consumer::pull::Stream,
        tail: &mut Option<JoinHandle<Vec<Sku>>>,
        shutdown: &CancellationToken,
    ) -> Result<(), async_nats::Error> {
        loop {
            let first = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                next = messages.next() => next,
            };
            let first = match first {
                None => return Err("the consumer's message stream ended".into()),
                Some(Ok(m)) => m,
                Some(Err(err)) if is_fatal(err.kind()) => return Err(err.into()),
                Some(Err(err)) => {
                    tracing::debug!(error = %err, "transient consumer stream error");
                    continue;
                }
            };
            let mut batch = vec![first];
            let mut fatal = None;
            let deadline = Instant::now() + self.config.linger;
            while batch.len() < self.config.max_batch {
                match tokio::time::timeout_at(deadline, messages.next()).await {
                    Ok(Some(Ok(m))) => batch.push(m),
                    Ok(Some(Err(err))) if is_fatal(err.kind()) => {
                        fatal = Some(err);
                        break;
                    }
                    Ok(Some(Err(_))) | Ok(None) | Err(_) => break,
                }
            }
            self.process(batch, tail).await;
            if let Some(err) = fatal {
                return Err(err.into());
            }
        }
    }

    /// Wait for the batch in the tail; forget the watermarks it could not write.
    async fn finish_tail(&mut self, tail: &mut Option<JoinHandle<Vec<Sku>>>) {
        if let Some(handle) = tail.take() {
            match handle.await {
                Ok(failed) => self.applier.watermarks.forget(&failed),
                Err(err) => {
                    // Its messages are redelivered after ack_wait; start from the bucket.
                    tracing::error!(error = %err, "a batch's tail failed");
                    self.applier.watermarks.clear_cache();
                }
            }
        }
    }

    /// Handle one batch: decode, coalesce, push, publish its watermarks; then (after the
    /// previous batch's tail is done) leave the rest to a new tail: wait for the watermark
    /// acknowledgements, then ack, nak or term every message. Every message ends settled.
    async fn process(&mut self, batch: Vec<Message>, tail: &mut Option<JoinHandle<Vec<Sku>>>) {
        let channel = self.applier.channel_name.clone();
        let size = batch.len();
        let mut groups: HashMap<Sku, Vec<Delivered>> = HashMap::new();
        let mut order: Vec<Sku> = Vec::new();
        for message in batch {
            let (sequence, delivered) = message
                .info()
                .map(|i| (i.stream_sequence, i.delivered))
                .unwrap_or((0, 1));
            match decode(&message) {
                Ok(event) => {
                    let group = groups.entry(event.sku.clone()).or_insert_with(|| {
                        order.push(event.sku.clone());
                        Vec::new()
                    });
                    group.push(Delivered {
                        message,
                        sequence,
                        delivered,
                        event,
                    });
                }
                Err(reason) => self.poison(message, sequence, reason).await,
            }
        }
        if order.is_empty() {
            return;
        }
        // The newest event per SKU; a redelivered SKU is brought up to the stream's newest,
        // so an old value redelivered after a crash never overwrites a newer one pushed
        // before it. If that lookup fails, the SKU waits (nak) rather than risk it.
        let redelivered: Vec<Sku> = order
            .iter()
            .filter(|sku| groups[*sku].iter().any(|d| d.delivered > 1))
            .cloned()
            .collect();
        let newest_in_stream = self.stream_latest(redelivered).await;
        let mut latest: Vec<InventoryEvent> = Vec::with_capacity(order.len());
        let mut ahead: Vec<bool> = Vec::with_capacity(order.len());
        let mut kept = Vec::with_capacity(order.len());
        for sku in order {
            let group = &groups[&sku];
            let top = newest(group);
            let mut event = group[top].event.clone();
            let mut jumped = false;
            match newest_in_stream.get(&sku) {
                None => {}
                Some(Ok(Some(newer))) if newer.stock.version > event.stock.version => {
                    event = newer.clone();
                    jumped = true;
                }
                Some(Ok(_)) => {}
                Some(Err(reason)) => {
                    tracing::warn!(channel = %channel, sku = %sku, %reason, "cannot read the sku's newest event; redelivering later");
                    let later = AckKind::Nak(Some(self.config.retry_base));
                    for (i, d) in group.iter().enumerate() {
                        ack(&d.message, if i == top { later } else { AckKind::Ack }).await;
                    }
                    metrics::events(&channel, Outcome::Retried, 1);
                    groups.remove(&sku);
                    continue;
                }
            }
            latest.push(event);
            ahead.push(jumped);
            kept.push(sku);
        }
        let order = kept;
        if order.is_empty() {
            return;
        }
        let span = tracing::info_span!("project_batch", channel = %channel, messages = size, skus = order.len());
        // Per-event tracing work only when the batch is traced (an OpenTelemetry layer).
        let (traces, sku_spans) = if onhand_common::telemetry::new_root(&span) {
            trace_batch(&span, &channel, &order, &groups)
        } else {
            (Vec::new(), Vec::new())
        };
        let every = self.config.ack_wait / 3;
        let all: Vec<&Message> = groups.values().flatten().map(|d| &d.message).collect();
        let refs: Vec<&InventoryEvent> = latest.iter().collect();
        let pushed = with_progress(
            &all,
            every,
            self.applier
                .push_and_publish(&refs, &ahead, &traces)
                .instrument(span.clone()),
        )
        .await;
        drop(all);
        drop(refs);
        drop(sku_spans);
        self.finish_tail(tail).await;
        let settle = Settle {
            js: self.js.clone(),
            config: self.config.clone(),
            channel,
            size,
            groups,
            order,
            latest,
            span,
        };
        *tail = Some(tokio::spawn(settle.run(pushed)));
    }
}

/// A batch after its push: what is left to do once its watermarks are acknowledged.
#[derive(Debug)]
struct Settle {
    js: Context,
    config: ProjectorConfig,
    channel: String,
    size: usize,
    groups: HashMap<Sku, Vec<Delivered>>,
    order: Vec<Sku>,
    latest: Vec<InventoryEvent>,
    span: tracing::Span,
}

impl Settle {
    /// Returns the SKUs whose watermark write failed.
    async fn run(self, pushed: Pushed) -> Vec<Sku> {
        let (outcomes, failed) = pushed.settle().await;
        let Settle {
            js,
            config,
            channel,
            size,
            groups,
            order,
            latest,
            span,
        } = self;
        let mut pushed = 0;
        let mut tally = Tally::default();
        let mut acks: Vec<(&Message, AckKind)> = Vec::with_capacity(size);
        let now = OffsetDateTime::now_utc();
        for ((sku, event), outcome) in order.iter().zip(&latest).zip(outcomes) {
            let group = &groups[sku];
            let top = newest(group);
            let d = &group[top];
            let others = (group.len() - 1) as u64;
            // The newest message's fate; the superseded ones are acked unless it stays.
            let (fate, others_fate) = match &outcome {
                SkuOutcome::Applied { qty } => {
                    pushed += 1;
                    tally.add(Outcome::Applied, 1);
                    tally.add(Outcome::Coalesced, others);
                    tally.latency((now - event.occurred_at).as_seconds_f64());
                    tracing::debug!(parent: &span, sku = %sku, version = event.stock.version, qty, "applied");
                    (AckKind::Ack, AckKind::Ack)
                }
                SkuOutcome::Unchanged { .. } => {
                    tally.add(Outcome::Unchanged, 1);
                    tally.add(Outcome::Coalesced, others);
                    (AckKind::Ack, AckKind::Ack)
                }
                SkuOutcome::Stale { .. } => {
                    tally.add(Outcome::Stale, others + 1);
                    (AckKind::Ack, AckKind::Ack)
                }
                SkuOutcome::Transient {
                    retry_after,
                    reason,
                } => {
                    let delay = config.retry_delay(d.delivered, *retry_after);
                    tally.add(Outcome::Retried, 1);
                    tally.add(Outcome::Coalesced, others);
                    tracing::info!(parent: &span, sku = %sku, version = event.stock.version, delivered = d.delivered, ?delay, %reason, "transient failure; redelivering later");
                    (AckKind::Nak(Some(delay)), AckKind::Ack)
                }
                SkuOutcome::Permanent { code, message } => {
                    let letter = DeadLetter {
                        channel: &channel,
                        reason: format!("the channel refused the quantity: {code}: {message}"),
                        code: Some(code.clone()),
                        original_subject: d.message.subject.as_str(),
                        original_sequence: d.sequence,
                        payload: &d.message.payload,
                    };
                    match dlq::publish(&js, &letter).await {
                        Ok(()) => {
                            tally.add(Outcome::DeadLettered, 1);
                            tally.add(Outcome::Coalesced, others);
                            tracing::warn!(parent: &span, sku = %sku, version = event.stock.version, %code, %message, "channel refused the push; dead-lettered");
                            (AckKind::Term, AckKind::Ack)
                        }
                        Err(err) => {
                            tracing::error!(parent: &span, error = %err, sku = %sku, "could not record a dead letter; redelivering");
                            let later = AckKind::Nak(Some(config.retry_base));
                            (later, later)
                        }
                    }
                }
            };
            for (i, m) in group.iter().enumerate() {
                acks.push((&m.message, if i == top { fate } else { others_fate }));
            }
        }
        futures::future::join_all(acks.into_iter().map(|(m, kind)| ack(m, kind))).await;
        tally.record(&channel);
        metrics::batch(&channel, size, pushed);
        failed
    }
}

impl Projector {
    /// Dead-letter an undecodable message, then term it; nak it if the DLQ is unreachable.
    async fn poison(&self, message: Message, sequence: u64, reason: String) {
        let channel = &self.applier.channel_name;
        let letter = DeadLetter {
            channel,
            reason: reason.clone(),
            code: None,
            original_subject: message.subject.as_str(),
            original_sequence: sequence,
            payload: &message.payload,
        };
        match dlq::publish(&self.js, &letter).await {
            Ok(()) => {
                metrics::events(channel, Outcome::Poison, 1);
                tracing::warn!(channel = %channel, subject = %message.subject, sequence, %reason, "undecodable message dead-lettered");
                ack(&message, AckKind::Term).await;
            }
            Err(err) => {
                tracing::error!(error = %err, sequence, "could not record a dead letter; redelivering");
                ack(&message, AckKind::Nak(Some(self.config.retry_base))).await;
            }
        }
    }

    /// The newest valid event in the stream for each SKU (`None`: none there), looked up
    /// concurrently; an error says the lookup failed.
    async fn stream_latest(
        &self,
        skus: Vec<Sku>,
    ) -> HashMap<Sku, Result<Option<InventoryEvent>, String>> {
        if skus.is_empty() {
            return HashMap::new();
        }
        let stream = match self
            .js
            .get_stream(onhand_streams::names::INVENTORY_STREAM)
            .await
        {
            Ok(stream) => stream,
            Err(err) => {
                let reason = format!("stream info: {err}");
                return skus.into_iter().map(|s| (s, Err(reason.clone()))).collect();
            }
        };
        futures::stream::iter(skus)
            .map(|sku| {
                let stream = stream.clone();
                async move {
                    let found = match stream.direct_get_last_for_subject(sku.subject()).await {
                        Ok(message) => {
                            Ok(decode_event(&message.payload).ok().filter(|e| e.sku == sku))
                        }
                        Err(e)
                            if e.kind()
                                == async_nats::jetstream::stream::DirectGetErrorKind::NotFound =>
                        {
                            Ok(None)
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    (sku, found)
                }
            })
            .buffer_unordered(32)
            .collect()
            .await
    }
}

/// The tracing of a batch that coalesces many traces: `project_batch` is the root of a trace
/// of its own, linked to every trace its messages carry (the SDK keeps 128 links a span);
/// each SKU whose newest message carries a trace gets a `project_sku` span in that trace,
/// linked back to the batch. Its channel call continues that span (one call sets many
/// SKUs: see `HttpChannel::push_traced` for whose trace the call carries). Returns the
/// `project_sku` contexts in `order` and the spans, which end when dropped (after the push).
fn trace_batch(
    batch: &tracing::Span,
    channel: &str,
    order: &[Sku],
    groups: &HashMap<Sku, Vec<Delivered>>,
) -> (Vec<Option<TraceContext>>, Vec<tracing::Span>) {
    let carried = |d: &Delivered| {
        d.message
            .headers
            .as_ref()
            .and_then(|h| h.get(HEADER_TRACEPARENT))
            .and_then(|v| TraceContext::from_traceparent(v.as_str()))
    };
    let all: Vec<TraceContext> = order
        .iter()
        .flat_map(|sku| groups[sku].iter().filter_map(carried))
        .collect();
    onhand_common::telemetry::link_traces(batch, None, &all);
    let batch = TraceContext::of(batch);
    let mut traces = Vec::with_capacity(order.len());
    let mut spans = Vec::new();
    for sku in order {
        let group = &groups[sku];
        let top = &group[newest(group)];
        let Some(parent) = carried(top) else {
            traces.push(None);
            continue;
        };
        let span = tracing::info_span!(parent: None, "project_sku", channel = %channel, sku = %sku, version = top.event.stock.version, coalesced = group.len() - 1);
        parent.parent(&span);
        if let Some(batch) = &batch {
            batch.link(&span);
        }
        traces.push(TraceContext::of(&span));
        spans.push(span);
    }
    (traces, spans)
}

fn is_fatal(kind: MessagesErrorKind) -> bool {
    matches!(
        kind,
        MessagesErrorKind::ConsumerDeleted
            | MessagesErrorKind::PushBasedConsumer
            | MessagesErrorKind::RequestLimitExceeded
    )
}

/// The index of the newest event (highest version, then latest in the stream).
fn newest(group: &[Delivered]) -> usize {
    group
        .iter()
        .enumerate()
        .max_by_key(|(_, d)| (d.event.stock.version, d.sequence))
        .map_or(0, |(i, _)| i)
}

/// A v1 event, on the subject of its SKU, of a sane size.
pub fn decode(message: &Message) -> Result<InventoryEvent, String> {
    if message.payload.len() > MAX_EVENT_BYTES {
        return Err(format!(
            "payload of {} bytes is larger than an event may be ({MAX_EVENT_BYTES} bytes)",
            message.payload.len()
        ));
    }
    let event = decode_event(&message.payload).map_err(|e| e.to_string())?;
    let expected = event.sku.subject();
    if message.subject.as_str() != expected {
        return Err(format!(
            "event for sku {:?} arrived on subject {} (expected {expected})",
            event.sku.as_str(),
            message.subject
        ));
    }
    Ok(event)
}

async fn ack(message: &Message, kind: AckKind) {
    if let Err(err) = message.ack_with(kind).await {
        // The server redelivers after ack_wait; the version guard makes that harmless.
        tracing::debug!(error = %err, "ack not sent");
    }
}

/// Run `work`, telling the server every `every` that these messages are still in hand.
async fn with_progress<F: Future>(messages: &[&Message], every: Duration, work: F) -> F::Output {
    tokio::pin!(work);
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => {
                for m in messages {
                    ack(m, AckKind::Progress).await;
                }
            }
        }
    }
}
