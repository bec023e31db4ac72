//! One batch as it arrives: each message decoded on receipt and folded into its SKU's
//! group (the newest delivery, and the replies of those it supersedes), so a batch holds a
//! few bytes per superseded message rather than the whole message. The message itself
//! (its headers map and its copy of the JetStream context) is dropped at once.

use foldhash::HashMap;

use async_nats::jetstream::{AckKind, Message};
use async_nats::{Client, Subject};
use bytes::Bytes;
use onhand_common::event::{HEADER_TRACEPARENT, MAX_EVENT_BYTES};
use onhand_common::telemetry::TraceContext;
use onhand_common::{InventoryEvent, Sku, decode_event};

/// One delivered message, decoded: what its batch still needs of it.
#[derive(Debug)]
pub(crate) struct Delivered {
    pub subject: Subject,
    /// Where acks go (every JetStream delivery has one).
    pub reply: Option<Subject>,
    /// The bytes as delivered, for a dead letter.
    pub payload: Bytes,
    pub sequence: u64,
    pub delivered: i64,
    pub event: InventoryEvent,
    /// The trace the message carried (read only when the batch is traced).
    pub trace: Option<TraceContext>,
}

/// A SKU's deliveries in one batch.
#[derive(Debug)]
pub(crate) struct Group {
    /// The newest: highest version, then latest in the stream.
    pub top: Delivered,
    /// The reply subjects of the deliveries `top` supersedes.
    pub superseded: Vec<Option<Subject>>,
    /// Whether any of them was delivered before.
    pub redelivered: bool,
}

/// A message that could not be decoded, kept whole for its dead letter.
#[derive(Debug)]
pub(crate) struct Poison {
    pub message: Message,
    pub sequence: u64,
    pub reason: String,
}

/// The batch being received.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Where each SKU's group is in `groups` (kept between batches for its capacity).
    index: HashMap<Sku, usize>,
    /// One per SKU, in order of first delivery.
    pub groups: Vec<Group>,
    pub poison: Vec<Poison>,
    /// Messages received.
    pub size: usize,
    /// Messages left in the stream for the consumer after the last one received (from its
    /// delivery info): 0 when the consumer is caught up.
    pub pending: u64,
    /// The highest consumer (delivery) sequence received, carried over from batch to batch.
    pub delivered_up_to: u64,
    /// A message came with a consumer sequence at or below one already received: the
    /// durable was recreated under this projector (a rebuild from another process).
    pub consumer_restarted: bool,
    /// Every trace the batch's messages carried, when traced.
    pub carried: Vec<TraceContext>,
    traced: bool,
    /// Most messages a batch takes (the groups vector is sized from it and the backlog).
    max_batch: usize,
}

impl Batch {
    pub fn new(max_batch: usize) -> Self {
        Self {
            max_batch,
            ..Self::default()
        }
    }

    /// Start a batch into `groups` (an empty vector, reused for its capacity); `traced`:
    /// read each message's trace.
    pub fn start(&mut self, groups: Vec<Group>, traced: bool) {
        debug_assert!(groups.is_empty());
        self.index.clear();
        self.groups = groups;
        self.poison.clear();
        self.size = 0;
        self.pending = 0;
        self.consumer_restarted = false;
        self.carried.clear();
        self.traced = traced;
    }

    /// Decode `message` and fold it into its SKU's group, or keep it as poison.
    pub fn add(&mut self, message: Message) {
        self.size += 1;
        let (sequence, delivered, pending, consumer_sequence) = message
            .info()
            .map(|i| {
                (
                    i.stream_sequence,
                    i.delivered,
                    i.pending,
                    i.consumer_sequence,
                )
            })
            .unwrap_or((0, 1, 0, 0));
        self.pending = pending;
        if self.size == 1 {
            // A backlog fills the batch: room for it now rather than grown by doubling,
            // each step copying every group so far (a group is a few hundred bytes).
            let expected = usize::try_from(pending)
                .unwrap_or(usize::MAX)
                .saturating_add(1)
                .min(self.max_batch);
            self.groups.reserve(expected);
        }
        if consumer_sequence <= self.delivered_up_to {
            self.consumer_restarted = true;
        }
        self.delivered_up_to = consumer_sequence;
        let event = match decode(&message) {
            Ok(event) => event,
            Err(reason) => {
                self.poison.push(Poison {
                    message,
                    sequence,
                    reason,
                });
                return;
            }
        };
        let Message { message, .. } = message;
        let trace = if self.traced {
            let trace = message
                .headers
                .as_ref()
                .and_then(|h| h.get(HEADER_TRACEPARENT))
                .and_then(|v| TraceContext::from_traceparent(v.as_str()));
            self.carried.extend(trace.clone());
            trace
        } else {
            None
        };
        let d = Delivered {
            subject: message.subject,
            reply: message.reply,
            payload: message.payload,
            sequence,
            delivered,
            event,
            trace,
        };
        match self.index.get(&d.event.sku) {
            Some(&i) => {
                let group = &mut self.groups[i];
                group.redelivered |= d.delivered > 1;
                let key = |d: &Delivered| (d.event.stock.version, d.sequence);
                if key(&d) > key(&group.top) {
                    let older = std::mem::replace(&mut group.top, d);
                    group.superseded.push(older.reply);
                } else {
                    group.superseded.push(d.reply);
                }
            }
            None => {
                self.index.insert(d.event.sku.clone(), self.groups.len());
                self.groups.push(Group {
                    redelivered: d.delivered > 1,
                    top: d,
                    superseded: Vec::new(),
                });
            }
        }
    }

    /// The batch received, for processing (this is then empty until the next
    /// [`start`](Self::start); the index keeps its capacity).
    pub fn finish(&mut self) -> Received {
        self.index.clear();
        Received {
            groups: std::mem::take(&mut self.groups),
            poison: std::mem::take(&mut self.poison),
            size: self.size,
            pending: self.pending,
            consumer_restarted: self.consumer_restarted,
            carried: std::mem::take(&mut self.carried),
        }
    }
}

/// A batch as received, handed from the receiving task to the processing one.
#[derive(Debug)]
pub(crate) struct Received {
    /// One per SKU, in order of first delivery.
    pub groups: Vec<Group>,
    pub poison: Vec<Poison>,
    /// Messages received.
    pub size: usize,
    /// Messages left in the stream for the consumer after the last one received.
    pub pending: u64,
    /// The durable was recreated under this projector (see [`Batch`]).
    pub consumer_restarted: bool,
    /// Every trace the batch's messages carried, when traced.
    pub carried: Vec<TraceContext>,
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
    if !event.sku.is_subject(message.subject.as_str()) {
        return Err(format!(
            "event for sku {:?} arrived on subject {} (expected {})",
            event.sku.as_str(),
            message.subject,
            event.sku.subject()
        ));
    }
    Ok(event)
}

/// Ack, nak or term the delivery that `reply` answers.
pub(crate) async fn ack(client: &Client, reply: &Option<Subject>, kind: AckKind) {
    let Some(reply) = reply else {
        tracing::debug!("a delivery without a reply subject cannot be acked");
        return;
    };
    if let Err(err) = client.publish(reply.clone(), kind.into()).await {
        // The server redelivers after ack_wait; the version guard makes that harmless.
        tracing::debug!(error = %err, "ack not sent");
    }
}

impl Group {
    /// Every delivery's reply subject, the newest first.
    pub fn replies(&self) -> impl Iterator<Item = &Option<Subject>> + Clone {
        std::iter::once(&self.top.reply).chain(&self.superseded)
    }
}
