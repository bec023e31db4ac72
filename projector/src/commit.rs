//! Watermark commits: the watermarks of what the channel confirmed are written to the bucket
//! together, at most every `commit_interval` while a backlog is worked through, and each
//! pushed message is acked once its watermark (or a newer one) is written: channel first,
//! watermark second, ack last, for every message. At the end of a backlog (the batch
//! received last left nothing pending), the held watermarks that batch does not supersede
//! are written while it is pushed, so only its own SKUs are left for after the push.
//!
//! While a SKU waits, only its newest pushed delivery is held unacked. It is acked as soon
//! as a newer delivery of its SKU is received, before that one is pushed: the newer one
//! stays unacked until it is settled in its turn, and if the process dies first it is
//! redelivered and pushed (a redelivered SKU is brought up to the stream's newest), so the
//! channel still ends at a value at least as new, and nothing older can reach it after. The
//! held watermark stays, to be written with the commit. A hot SKU thus costs one watermark
//! write per commit rather than one per batch, the server never holds more than one unacked
//! delivery per waiting SKU, and a batch's acks reach the server before its push, so the
//! server delivers the next batch while this one is pushed.

use foldhash::{HashMap, HashMapExt};
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::{Client, Subject};
use onhand_common::Sku;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::batch::ack;
use crate::metrics::{self, Outcome};
use crate::watermark::{MarkWriter, Watermark, WatermarkError};

/// A SKU whose watermark is not written yet, and the delivery it acks (none once a newer
/// delivery of the SKU released it).
#[derive(Debug)]
struct Held {
    mark: Watermark,
    reply: Option<Subject>,
}

/// The watermarks waiting to be written, and the commit in flight.
#[derive(Debug)]
pub(crate) struct Commits {
    channel: String,
    client: Client,
    writer: MarkWriter,
    held: HashMap<Sku, Held>,
    /// When the oldest held watermark was pushed.
    since: Option<Instant>,
    interval: Duration,
    /// Held SKUs beyond which a commit starts at once (the consumer delivers no more than
    /// its max_ack_pending, and the next batch must fit beside them).
    limit: usize,
    /// Naks of watermarks that could not be written use this delay.
    retry: Duration,
    /// The commit being written: it returns the SKUs it could not write.
    in_flight: Option<JoinHandle<Vec<Sku>>>,
}

impl Commits {
    pub fn new(
        channel: String,
        client: Client,
        writer: MarkWriter,
        interval: Duration,
        limit: usize,
        retry: Duration,
    ) -> Self {
        Self {
            channel,
            client,
            writer,
            held: HashMap::new(),
            since: None,
            interval,
            limit,
            retry,
            in_flight: None,
        }
    }

    /// Hold `reply` until `mark` is written; the delivery this replaces for the SKU (an
    /// older one, now superseded) is acked at once.
    pub async fn hold(&mut self, sku: &Sku, mark: Watermark, reply: Option<Subject>) {
        if let Some(held) = self.held.get_mut(sku) {
            let older = std::mem::replace(held, Held { mark, reply });
            if older.reply.is_some() {
                ack(&self.client, &older.reply, AckKind::Ack).await;
            }
            return;
        }
        self.held.insert(sku.clone(), Held { mark, reply });
        self.since.get_or_insert_with(Instant::now);
    }

    /// Whether any watermark waits to be written.
    pub fn holds_any(&self) -> bool {
        !self.held.is_empty()
    }

    /// Ack the held delivery of this SKU now, if any: a newer delivery of it is in hand,
    /// unacked until it is settled. Its watermark stays held.
    pub async fn release(&mut self, sku: &Sku) {
        if let Some(reply) = self.held.get_mut(sku).and_then(|h| h.reply.take()) {
            ack(&self.client, &Some(reply), AckKind::Ack).await;
        }
    }

    /// When the held watermarks must be written even if nothing else happens.
    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|since| since + self.interval)
    }

    /// Whether to commit now: the consumer is caught up (nothing left in the stream), the
    /// oldest held watermark is due, or too many SKUs are held.
    pub fn due(&self, caught_up: bool) -> bool {
        !self.held.is_empty()
            && (caught_up
                || self.held.len() > self.limit
                || self.deadline().is_some_and(|d| d <= Instant::now()))
    }

    /// The replies held, for in-progress acks during a long push.
    pub fn replies(&self) -> impl Iterator<Item = &Option<Subject>> + Clone {
        self.held.values().map(|h| &h.reply).filter(|r| r.is_some())
    }

    /// Start writing every held watermark (after the previous commit is done); their
    /// deliveries are acked when written, nakked when not. Returns the SKUs the previous
    /// commit could not write, to forget from the cache.
    pub async fn commit(&mut self) -> Vec<Sku> {
        let failed = self.finish_in_flight().await;
        if self.held.is_empty() {
            return failed;
        }
        self.since = None;
        let held = std::mem::take(&mut self.held);
        self.in_flight = Some(self.spawn_write(held));
        failed
    }

    /// Start writing the held watermarks whose delivery is still held (after the previous
    /// commit is done); those released for a newer delivery stay held, to be written with
    /// the next commit. Returns the SKUs the previous commit could not write.
    pub async fn commit_unreleased(&mut self) -> Vec<Sku> {
        let failed = self.finish_in_flight().await;
        let (unreleased, released): (HashMap<Sku, Held>, HashMap<Sku, Held>) =
            std::mem::take(&mut self.held)
                .into_iter()
                .partition(|(_, held)| held.reply.is_some());
        self.held = released;
        if self.held.is_empty() {
            self.since = None;
        }
        if !unreleased.is_empty() {
            self.in_flight = Some(self.spawn_write(unreleased));
        }
        failed
    }

    fn spawn_write(&self, held: HashMap<Sku, Held>) -> JoinHandle<Vec<Sku>> {
        tokio::spawn(write(
            self.writer.clone(),
            self.client.clone(),
            self.channel.clone(),
            self.retry,
            held,
        ))
    }

    /// Commit everything held and wait for it: the SKUs that could not be written.
    pub async fn flush(&mut self) -> Vec<Sku> {
        let mut failed = self.commit().await;
        failed.extend(self.finish_in_flight().await);
        failed
    }

    /// Drop the held watermarks unwritten and their deliveries unacked (the server
    /// redelivers them after the ack wait); wait for the commit in flight. Returns every
    /// SKU whose cached watermark the bucket may not hold.
    pub async fn abandon(&mut self) -> Vec<Sku> {
        let mut failed = self.finish_in_flight().await;
        self.since = None;
        failed.extend(std::mem::take(&mut self.held).into_keys());
        failed
    }

    async fn finish_in_flight(&mut self) -> Vec<Sku> {
        match self.in_flight.take() {
            None => Vec::new(),
            Some(handle) => handle.await.unwrap_or_else(|err| {
                // Its deliveries are redelivered after ack_wait and pushed again.
                tracing::error!(error = %err, channel = %self.channel, "a watermark commit failed");
                Vec::new()
            }),
        }
    }
}

/// Watermarks written per step of a commit: a step's deliveries are acked while the next
/// step's writes are on their way, so the server works through acks and watermark writes
/// together (a backlog's last commit is otherwise a tail of writes, then a tail of acks).
const STEP: usize = 500;

/// Write the watermarks, then ack each delivery whose watermark was written and nak the
/// others (they are pushed again on redelivery).
async fn write(
    writer: MarkWriter,
    client: Client,
    channel: String,
    retry: Duration,
    held: HashMap<Sku, Held>,
) -> Vec<Sku> {
    let mut failed = Vec::new();
    let mut held = held.into_iter().peekable();
    // One run of writes for the whole commit; each step is settled once the next one is
    // published.
    let mut writes = writer.start(false).await;
    // The replies of the step published before this one.
    let mut previous: Option<Vec<Option<Subject>>> = None;
    while held.peek().is_some() {
        let (replies, marks): (Vec<Option<Subject>>, Vec<(Sku, Watermark)>) = held
            .by_ref()
            .take(STEP)
            .map(|(sku, h)| (h.reply, (sku, h.mark)))
            .unzip();
        writes.write(marks).await;
        if let Some(replies) = previous.replace(replies) {
            let written = writes.settle_next(replies.len()).await;
            settle(written, replies, &client, &channel, retry, &mut failed).await;
        }
    }
    if let Some(replies) = previous {
        let written = writes.settle().await;
        settle(written, replies, &client, &channel, retry, &mut failed).await;
    }
    if !failed.is_empty() {
        metrics::events(&channel, Outcome::Retried, failed.len() as u64);
    }
    failed
}

/// Wait for a step's writes; ack each delivery whose watermark was written, nak the others.
async fn settle(
    written: Vec<(Sku, Result<(), WatermarkError>)>,
    replies: Vec<Option<Subject>>,
    client: &Client,
    channel: &str,
    retry: Duration,
    failed: &mut Vec<Sku>,
) {
    // Results come in the order written.
    for ((sku, result), reply) in written.into_iter().zip(replies) {
        match result {
            Ok(()) if reply.is_some() => ack(client, &reply, AckKind::Ack).await,
            // Released: a newer delivery of the SKU was received (and is settled in its turn).
            Ok(()) => {}
            Err(err) if reply.is_some() => {
                tracing::warn!(error = %err, channel = %channel, sku = %sku, "watermark not written; the event will be redelivered");
                ack(client, &reply, AckKind::Nak(Some(retry))).await;
                failed.push(sku);
            }
            Err(err) => {
                tracing::warn!(error = %err, channel = %channel, sku = %sku, "watermark not written; a newer event of the sku follows");
                failed.push(sku);
            }
        }
    }
}
