//! The live loop: fetch a batch, decode (poison → DLQ, term), keep the newest event per
//! SKU, apply it (guard, policy, push), then settle every message of the batch: the pushed
//! ones are acked once their watermark is committed (see the `commit` module), the rest at once.
//!
//! Two tasks share the work: a receiver fetches and decodes the next batch while the
//! current one is pushed, and hands it over when the pushing side is free (or `linger`
//! after its first message, whichever is later), so a batch grows while the channel is
//! slow and the two halves use both cores during a backlog. On shutdown the batch in hand
//! is finished and one received but not begun is nakked, so stopping waits for one push.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::pull::MessagesErrorKind;
use async_nats::jetstream::{AckKind, Context};
use async_nats::{Client, Subject};
use futures::StreamExt;
use onhand_common::backoff::Backoff;
use onhand_common::telemetry::TraceContext;
use onhand_common::{InventoryEvent, Sku, decode_event};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::apply::{Applier, Pushed, SkuOutcome};
use crate::batch::{Batch, Group, Poison, Received, ack};
use crate::commit::Commits;
use crate::config::ProjectorConfig;
use crate::consumer;
use crate::deferred::Deferred;
use crate::dlq::{self, DeadLetter};
use crate::metrics::{self, Outcome, Tally};

/// A projector for one channel.
#[derive(Debug)]
pub struct Projector {
    pub(crate) js: Context,
    pub(crate) applier: Applier,
    pub(crate) config: ProjectorConfig,
    pub(crate) ready: Arc<AtomicBool>,
    /// Acks go straight to each delivery's reply subject.
    client: Client,
    /// The last batch's groups vector, emptied, for the next batch.
    spare: Spare,
    /// Watermarks of pushed SKUs waiting to be written, and the messages they ack.
    commits: Commits,
    /// The newest delivery of each SKU nakked for later (the older ones are acked).
    deferred: Deferred,
}

impl Projector {
    pub fn new(js: Context, applier: Applier, config: ProjectorConfig) -> Self {
        let client = js.client();
        let commits = Commits::new(
            applier.channel_name.clone(),
            client.clone(),
            applier.watermarks.writer(),
            config.commit_interval,
            config.commit_limit(),
            config.retry_base,
        );
        Self {
            deferred: Deferred::new(client.clone()),
            client,
            js,
            applier,
            config,
            ready: Arc::new(AtomicBool::new(false)),
            spare: Spare::default(),
            commits,
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
            self.deferred.oldest_handle(),
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
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.config.max_batch)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await?;
        // The consumer may be new (a rebuild by another process resets the watermarks).
        self.applier.watermarks.clear_cache();
        self.deferred.clear();
        self.ready.store(true, Ordering::Relaxed);
        tracing::info!(channel = %self.applier.channel_name, consumer = %consumer::name(&self.applier.channel_name), "projector attached");
        // The next batch is received and decoded while this one is pushed.
        let (tx, mut rx) = mpsc::channel(1);
        let idle = Idle::default();
        let stop = CancellationToken::new();
        let receiver = tokio::spawn(
            Receiver {
                messages,
                batch: Batch::new(self.config.max_batch),
                tx,
                spare: self.spare.clone(),
                channel: self.applier.channel_name.clone(),
                max_batch: self.config.max_batch,
                linger: self.config.linger,
                idle: idle.clone(),
            }
            .run(stop.clone()),
        );
        let result = self.consume_batches(&mut rx, &idle, &stop, shutdown).await;
        stop.cancel();
        receiver.abort();
        // Its batch in hand, if any, is dropped unacked: the server redelivers it.
        let _ = receiver.await;
        let failed = match &result {
            // Stopping: what was pushed is committed and acked before leaving.
            Ok(()) => self.commits.flush().await,
            // The consumer failed (or was recreated by a rebuild, which purged the
            // watermarks: writing the held ones now would make the rebuild skip their SKUs).
            // Their messages are redelivered and pushed again.
            Err(_) => self.commits.abandon().await,
        };
        self.applier.watermarks.forget(&failed);
        result
    }

    async fn consume_batches(
        &mut self,
        rx: &mut mpsc::Receiver<Incoming>,
        idle: &Idle,
        stop: &CancellationToken,
        shutdown: &CancellationToken,
    ) -> Result<(), async_nats::Error> {
        loop {
            let commit_at = self.commits.deadline();
            let incoming = tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    // The batch in hand is finished (this runs between batches). One
                    // received but not begun goes back to the server at once, for this
                    // projector's successor: stopping never waits for a second push.
                    stop.cancel();
                    while let Some(incoming) = idle.wait(rx).await {
                        if let Incoming::Batch { received, .. } = incoming {
                            self.hand_back(received).await;
                        }
                    }
                    return Ok(());
                }
                () = sleep_until(commit_at) => {
                    let failed = self.commits.commit().await;
                    self.applier.watermarks.forget(&failed);
                    continue;
                }
                incoming = idle.wait(rx) => incoming,
            };
            match incoming {
                None => return Err("the projector's receiving task ended".into()),
                Some(Incoming::Ended(err)) => return Err(err),
                // A fatal error (the consumer was deleted, say by a rebuild that purged the
                // watermarks) means the held watermarks must not be written: the batch is
                // pushed, and its messages and the held ones are left to the new consumer.
                Some(Incoming::Batch {
                    received,
                    span,
                    fatal,
                }) => {
                    self.process(received, span, fatal.is_none()).await;
                    if let Some(err) = fatal {
                        return Err(err);
                    }
                }
            }
        }
    }

    /// Nak every message of a batch that will not be processed (redelivered at once).
    async fn hand_back(&self, batch: Received) {
        let back = AckKind::Nak(None);
        for group in &batch.groups {
            for reply in group.replies() {
                ack(&self.client, reply, back).await;
            }
        }
        for poison in &batch.poison {
            ack(&self.client, &poison.message.reply, back).await;
        }
        tracing::info!(channel = %self.applier.channel_name, messages = batch.size, "stopping: a received batch was handed back unprocessed");
    }

    /// Handle one received batch: dead-letter its poison, push the newest event of each
    /// SKU, then settle every message: the pushed ones wait for their watermark's commit,
    /// the others are acked, nakked or termed at once. Every message ends settled.
    async fn process(&mut self, batch: Received, span: tracing::Span, may_commit: bool) {
        let channel = self.applier.channel_name.clone();
        let Received {
            mut groups,
            poison,
            size,
            pending,
            consumer_restarted,
            carried,
        } = batch;
        let caught_up = pending == 0;
        if consumer_restarted {
            // A rebuild recreated the consumer and purged the watermarks: what this process
            // holds or remembers was pushed before, perhaps to a channel since wiped, and
            // must not outlive the purge.
            tracing::info!(channel = %channel, "the consumer was recreated; dropping held watermarks and the cache");
            self.commits.abandon().await;
            self.applier.watermarks.clear_cache();
            self.deferred.clear();
        }
        for poison in poison {
            self.poison(poison).await;
        }
        // A held delivery whose SKU has a newer one in this batch is acked before the push,
        // so the server can deliver the next batch meanwhile.
        if self.commits.holds_any() {
            for group in &groups {
                self.commits.release(&group.top.event.sku).await;
            }
            // The end of a backlog: the stream has nothing more for this consumer, so the
            // held watermarks this batch does not supersede are final. Writing them now,
            // while this batch is pushed, leaves only this batch's SKUs for after it.
            if caught_up && may_commit {
                let failed = self.commits.commit_unreleased().await;
                self.applier.watermarks.forget(&failed);
            }
        }
        let applied = if groups.is_empty() {
            0
        } else {
            span.record("messages", size);
            self.push_groups(&mut groups, &carried, span).await
        };
        metrics::batch(&channel, size, applied);
        groups.clear();
        self.spare.put(groups);
        if may_commit && self.commits.due(caught_up) {
            let failed = self.commits.commit().await;
            self.applier.watermarks.forget(&failed);
        }
    }

    async fn push_groups(
        &mut self,
        groups: &mut Vec<Group>,
        carried: &[TraceContext],
        span: tracing::Span,
    ) -> usize {
        let channel = self.applier.channel_name.clone();
        // A redelivered SKU is brought up to the stream's newest, so an old value
        // redelivered after a crash never overwrites a newer one pushed before it. If that
        // lookup fails, the SKU waits (nak) rather than risk it.
        let redelivered: Vec<Sku> = groups
            .iter()
            .filter(|g| g.redelivered)
            .map(|g| g.top.event.sku.clone())
            .collect();
        let mut newest_in_stream = self.stream_latest(redelivered).await;
        // The event pushed for each group when it is not the group's own newest.
        let mut ahead: Vec<Option<InventoryEvent>> = Vec::new();
        if !newest_in_stream.is_empty() {
            let mut kept = Vec::with_capacity(groups.len());
            for group in groups.drain(..) {
                match newest_in_stream.remove(&group.top.event.sku) {
                    None | Some(Ok(None)) => ahead.push(None),
                    Some(Ok(Some(newer))) => ahead.push(
                        (newer.stock.version > group.top.event.stock.version).then_some(newer),
                    ),
                    Some(Err(reason)) => {
                        tracing::warn!(channel = %channel, sku = %group.top.event.sku, %reason, "cannot read the sku's newest event; redelivering later");
                        let later = AckKind::Nak(Some(self.config.retry_base));
                        ack(&self.client, &group.top.reply, later).await;
                        for reply in &group.superseded {
                            ack(&self.client, reply, AckKind::Ack).await;
                        }
                        metrics::events(&channel, Outcome::Retried, 1);
                        continue;
                    }
                }
                kept.push(group);
            }
            *groups = kept;
            if groups.is_empty() {
                return 0;
            }
        }
        span.record("skus", groups.len());
        let (traces, sku_spans) = if carried.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            trace_batch(&span, &channel, groups, carried)
        };
        let latest: Vec<&InventoryEvent> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                ahead
                    .get(i)
                    .and_then(Option::as_ref)
                    .unwrap_or(&g.top.event)
            })
            .collect();
        // Empty when no group jumped (the applier reads a missing entry as false).
        let jumped: Vec<bool> = ahead.iter().map(Option::is_some).collect();
        let every = self.config.ack_wait / 3;
        let replies = groups
            .iter()
            .flat_map(Group::replies)
            .chain(self.commits.replies());
        let pushed = with_progress(
            &self.client,
            replies,
            every,
            self.applier
                .push(&latest, &jumped, &traces)
                .instrument(span.clone()),
        )
        .await;
        drop(latest);
        drop(sku_spans);
        self.settle(groups, &ahead, pushed, &span).await
    }

    /// Ack, nak or term each group's messages by its outcome; a pushed SKU's newest message
    /// is held until its watermark is committed.
    async fn settle(
        &mut self,
        groups: &[Group],
        ahead: &[Option<InventoryEvent>],
        pushed: Pushed,
        span: &tracing::Span,
    ) -> usize {
        let channel = self.applier.channel_name.clone();
        let mut applied = 0;
        let mut tally = Tally::default();
        let now = OffsetDateTime::now_utc();
        let Pushed { outcomes, marks } = pushed;
        for (i, ((group, outcome), mark)) in groups.iter().zip(outcomes).zip(marks).enumerate() {
            let d = &group.top;
            let event = ahead.get(i).and_then(Option::as_ref).unwrap_or(&d.event);
            let sku = &event.sku;
            let others = group.superseded.len() as u64;
            // The newest message's fate (None: held for its watermark); the superseded ones
            // are acked unless it stays.
            let (fate, others_fate) = match &outcome {
                SkuOutcome::Applied { qty } => {
                    applied += 1;
                    tally.add(Outcome::Applied, 1);
                    tally.add(Outcome::Coalesced, others);
                    tally.latency((now - event.occurred_at).as_seconds_f64());
                    tracing::debug!(parent: span, sku = %sku, version = event.stock.version, qty, "applied");
                    (None, AckKind::Ack)
                }
                SkuOutcome::Unchanged { .. } => {
                    tally.add(Outcome::Unchanged, 1);
                    tally.add(Outcome::Coalesced, others);
                    (None, AckKind::Ack)
                }
                SkuOutcome::Stale { .. } => {
                    tally.add(Outcome::Stale, others + 1);
                    (Some(AckKind::Ack), AckKind::Ack)
                }
                SkuOutcome::Transient {
                    retry_after,
                    reason,
                } => {
                    let delay = self.config.retry_delay(d.delivered, *retry_after);
                    tally.add(Outcome::Retried, 1);
                    tally.add(Outcome::Coalesced, others);
                    tracing::info!(parent: span, sku = %sku, version = event.stock.version, delivered = d.delivered, ?delay, %reason, "transient failure; redelivering later");
                    (Some(AckKind::Nak(Some(delay))), AckKind::Ack)
                }
                SkuOutcome::Deferred { wait, reason } => {
                    let delay = self.config.retry_delay(d.delivered, Some(*wait));
                    tally.add(Outcome::Deferred, 1);
                    tally.add(Outcome::Coalesced, others);
                    tracing::debug!(parent: span, sku = %sku, version = event.stock.version, ?delay, %reason, "not sent yet; redelivering when the channel allows");
                    (Some(AckKind::Nak(Some(delay))), AckKind::Ack)
                }
                SkuOutcome::Permanent { code, message } => {
                    let letter = DeadLetter {
                        channel: &channel,
                        reason: format!("the channel refused the quantity: {code}: {message}"),
                        code: Some(code.clone()),
                        original_subject: d.subject.as_str(),
                        original_sequence: d.sequence,
                        payload: &d.payload,
                    };
                    match dlq::publish(&self.js, &letter).await {
                        Ok(()) => {
                            tally.add(Outcome::DeadLettered, 1);
                            tally.add(Outcome::Coalesced, others);
                            tracing::warn!(parent: span, sku = %sku, version = event.stock.version, %code, %message, "channel refused the push; dead-lettered");
                            (Some(AckKind::Term), AckKind::Ack)
                        }
                        Err(err) => {
                            tracing::error!(parent: span, error = %err, sku = %sku, "could not record a dead letter; redelivering");
                            let later = AckKind::Nak(Some(self.config.retry_base));
                            (Some(later), later)
                        }
                    }
                }
            };
            // One put-off delivery per SKU: the older one is acked when a newer one is put
            // off (or this one is, when a newer one already is), and the SKU's put-off one
            // when a value at least as new reaches the channel.
            let fate = if let SkuOutcome::Transient { .. } | SkuOutcome::Deferred { .. } = &outcome
            {
                let (version, at) = (d.event.stock.version, d.event.occurred_at);
                let put_off = self
                    .deferred
                    .put_off(sku, version, d.sequence, &d.reply, at)
                    .await;
                if put_off { fate } else { Some(AckKind::Ack) }
            } else {
                // The version the channel now has for the SKU, if this outcome says.
                let covered = match &outcome {
                    SkuOutcome::Applied { .. } | SkuOutcome::Unchanged { .. } => {
                        Some(event.stock.version)
                    }
                    SkuOutcome::Stale { watermark } => Some(*watermark),
                    _ => None,
                };
                self.deferred.settled(sku, d.sequence, covered).await;
                fate
            };
            // Superseded first: the newest (held or settled here) covers them.
            for reply in &group.superseded {
                ack(&self.client, reply, others_fate).await;
            }
            match (fate, mark) {
                (Some(fate), _) => ack(&self.client, &d.reply, fate).await,
                (None, Some(mark)) => self.commits.hold(sku, mark, d.reply.clone()).await,
                (None, None) => {
                    // Applied or unchanged always carries its watermark; redeliver if not.
                    tracing::error!(parent: span, sku = %sku, "an applied sku has no watermark; redelivering");
                    let later = AckKind::Nak(Some(self.config.retry_base));
                    ack(&self.client, &d.reply, later).await;
                }
            }
        }
        tally.record(&channel);
        self.deferred.publish();
        applied
    }
}

impl Projector {
    /// Dead-letter an undecodable message, then term it; nak it if the DLQ is unreachable.
    async fn poison(&self, poison: Poison) {
        let Poison {
            message,
            sequence,
            reason,
        } = poison;
        let channel = &self.applier.channel_name;
        let letter = DeadLetter {
            channel,
            reason: reason.clone(),
            code: None,
            original_subject: message.subject.as_str(),
            original_sequence: sequence,
            payload: &message.payload,
        };
        let kind = match dlq::publish(&self.js, &letter).await {
            Ok(()) => {
                metrics::events(channel, Outcome::Poison, 1);
                tracing::warn!(channel = %channel, subject = %message.subject, sequence, %reason, "undecodable message dead-lettered");
                AckKind::Term
            }
            Err(err) => {
                tracing::error!(error = %err, sequence, "could not record a dead letter; redelivering");
                AckKind::Nak(Some(self.config.retry_base))
            }
        };
        ack(&self.client, &message.reply, kind).await;
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
/// of its own, linked to every trace its messages carry (`carried`; the SDK keeps 128 links a
/// span); each SKU whose newest message carries a trace gets a `project_sku` span in that
/// trace, linked back to the batch. Its channel call continues that span (one call sets many
/// SKUs: see `HttpChannel::push_traced` for whose trace the call carries). Returns the
/// `project_sku` contexts in group order and the spans, which end when dropped (after the
/// push).
fn trace_batch(
    batch: &tracing::Span,
    channel: &str,
    groups: &[Group],
    carried: &[TraceContext],
) -> (Vec<Option<TraceContext>>, Vec<tracing::Span>) {
    onhand_common::telemetry::link_traces(batch, None, carried);
    let batch = TraceContext::of(batch);
    let mut traces = Vec::with_capacity(groups.len());
    let mut spans = Vec::new();
    for group in groups {
        let top = &group.top;
        let Some(parent) = &top.trace else {
            traces.push(None);
            continue;
        };
        let span = tracing::info_span!(parent: None, "project_sku", channel = %channel, sku = %top.event.sku, version = top.event.stock.version, coalesced = group.superseded.len());
        parent.parent(&span);
        if let Some(batch) = &batch {
            batch.link(&span);
        }
        traces.push(TraceContext::of(&span));
        spans.push(span);
    }
    (traces, spans)
}

/// Wait until `at`; forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What the receiving task hands over.
enum Incoming {
    /// A batch, and the fatal consumer error that cut it short, if any (the last batch).
    Batch {
        received: Received,
        span: tracing::Span,
        fatal: Option<async_nats::Error>,
    },
    /// The consumer's message stream failed for good or ended.
    Ended(async_nats::Error),
}

/// A groups vector handed back from the processing task to the receiving one, to be
/// reused for its capacity.
#[derive(Debug, Default, Clone)]
struct Spare(Arc<std::sync::Mutex<Vec<Group>>>);

impl Spare {
    fn put(&self, groups: Vec<Group>) {
        debug_assert!(groups.is_empty());
        if let Ok(mut spare) = self.0.lock() {
            *spare = groups;
        }
    }

    fn take(&self) -> Vec<Group> {
        self.0
            .lock()
            .map(|mut spare| std::mem::take(&mut *spare))
            .unwrap_or_default()
    }
}

/// Whether the processing side waits for a batch, and a wake-up when it starts to.
#[derive(Debug, Default, Clone)]
struct Idle(Arc<(AtomicBool, tokio::sync::Notify)>);

impl Idle {
    /// Receive the next batch, idle meanwhile.
    async fn wait(&self, rx: &mut mpsc::Receiver<Incoming>) -> Option<Incoming> {
        /// Busy again however the wait ends (received, or dropped by a `select!`).
        struct Busy<'a>(&'a AtomicBool);
        impl Drop for Busy<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        self.0.0.store(true, Ordering::Release);
        let _busy = Busy(&self.0.0);
        self.0.1.notify_one();
        rx.recv().await
    }

    fn is_idle(&self) -> bool {
        self.0.0.load(Ordering::Acquire)
    }

    /// Resolves once the processing side is idle (perhaps already).
    async fn became_idle(&self) {
        loop {
            let notified = self.0.1.notified();
            if self.is_idle() {
                return;
            }
            notified.await;
        }
    }
}

/// Receives and decodes batches from the consumer's message stream, one ahead of the
/// batch being processed: a batch ends at `max_batch` messages or `linger` after its first.
struct Receiver {
    messages: async_nats::jetstream::consumer::pull::Stream,
    batch: Batch,
    tx: mpsc::Sender<Incoming>,
    spare: Spare,
    channel: String,
    max_batch: usize,
    linger: Duration,
    idle: Idle,
}

impl Receiver {
    /// Until `stop`, the stream fails for good, or the processing side is gone. A batch
    /// being received when `stop` fires is still handed over (it ends within `linger`).
    async fn run(mut self, stop: CancellationToken) {
        loop {
            let first = tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = self.tx.closed() => return,
                next = self.messages.next() => next,
            };
            let first = match first {
                None => {
                    let _ = self
                        .tx
                        .send(Incoming::Ended(
                            "the consumer's message stream ended".into(),
                        ))
                        .await;
                    return;
                }
                Some(Ok(m)) => m,
                Some(Err(err)) if is_fatal(err.kind()) => {
                    let _ = self.tx.send(Incoming::Ended(err.into())).await;
                    return;
                }
                Some(Err(err)) => {
                    tracing::debug!(error = %err, "transient consumer stream error");
                    continue;
                }
            };
            let span = tracing::info_span!(
                "project_batch",
                channel = %self.channel,
                messages = tracing::field::Empty,
                skus = tracing::field::Empty
            );
            // Per-message tracing work only when the batch is traced (an OpenTelemetry layer).
            let traced = onhand_common::telemetry::new_root(&span);
            self.batch.start(self.spare.take(), traced);
            self.batch.add(first);
            let mut fatal = None;
            // The batch ends `linger` after its first message, or later, as soon as the
            // processing side is free: while it pushes the previous batch, this one grows.
            // One timer and one idle wait per batch, not one of each per message (dropped
            // before the wait below: a waiter left registered would take its wake-up).
            {
                let linger = tokio::time::sleep(self.linger);
                let became_idle = self.idle.became_idle();
                tokio::pin!(linger, became_idle);
                let mut lingered = false;
                while self.batch.size < self.max_batch {
                    tokio::select! {
                        next = self.messages.next() => match next {
                            Some(Ok(m)) => self.batch.add(m),
                            Some(Err(err)) if is_fatal(err.kind()) => {
                                fatal = Some(err.into());
                                break;
                            }
                            Some(Err(_)) | None => break,
                        },
                        () = &mut linger, if !lingered => {
                            lingered = true;
                            if self.idle.is_idle() {
                                break;
                            }
                        }
                        () = &mut became_idle, if lingered => break,
                    }
                }
            }
            // A batch full before the processing side is free waits for it too: two
            // batches in hand at most, as the consumer's max_ack_pending expects.
            self.idle.became_idle().await;
            let last = fatal.is_some();
            let incoming = Incoming::Batch {
                received: self.batch.finish(),
                span,
                fatal,
            };
            if self.tx.send(incoming).await.is_err() || last {
                return;
            }
        }
    }
}

fn is_fatal(kind: MessagesErrorKind) -> bool {
    matches!(
        kind,
        MessagesErrorKind::ConsumerDeleted
            | MessagesErrorKind::PushBasedConsumer
            | MessagesErrorKind::RequestLimitExceeded
    )
}

/// Run `work`, telling the server every `every` that these messages are still in hand.
async fn with_progress<'a, F: Future>(
    client: &Client,
    replies: impl Iterator<Item = &'a Option<Subject>> + Clone,
    every: Duration,
    work: F,
) -> F::Output {
    tokio::pin!(work);
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => {
                for reply in replies.clone() {
                    ack(client, reply, AckKind::Progress).await;
                }
            }
        }
    }
}
