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
        // The reply subject is read here rather than through `Message::info`, which also
        // parses the timestamp and boxes an error for what it cannot read.
        let DeliveryInfo {
            stream_sequence: sequence,
            consumer_sequence,
            delivered,
            pending,
        } = message
            .reply
            .as_deref()
            .and_then(DeliveryInfo::parse)
            .unwrap_or(DeliveryInfo {
                stream_sequence: 0,
                consumer_sequence: 0,
                delivered: 1,
                pending: 0,
            });
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

/// What a JetStream delivery's reply subject tells about it (the part of ADR-15's
/// `$JS.ACK.` subject a batch uses; the rest is not parsed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeliveryInfo {
    pub stream_sequence: u64,
    pub consumer_sequence: u64,
    /// How many times the message was delivered, this time included.
    pub delivered: i64,
    /// Messages left in the stream for the consumer after this one.
    pub pending: u64,
}

impl DeliveryInfo {
    /// Read `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` or the
    /// form with `<domain>.<account hash>.` before the stream (and, perhaps, tokens after
    /// `<pending>`); `None` for anything else.
    pub fn parse(reply: &str) -> Option<Self> {
        let rest = reply.strip_prefix("$JS.ACK.")?;
        let mut tokens = [""; 9];
        let mut n = 0;
        for token in rest.split('.') {
            if n < tokens.len() {
                tokens[n] = token;
            }
            n += 1;
        }
        // Where <delivered> is: after the stream and consumer, and the domain and account
        // hash when present.
        let at = match n {
            7 => 2,
            9.. => 4,
            _ => return None,
        };
        let number = |i: usize| -> Option<u64> {
            let token = tokens[at + i];
            // u64's parser takes a leading '+', which the server never writes.
            if token.starts_with('+') {
                return None;
            }
            token.parse().ok()
        };
        // <ts> (at + 3) is not needed.
        Some(Self {
            delivered: i64::try_from(number(0)?).ok()?,
            stream_sequence: number(1)?,
            consumer_sequence: number(2)?,
            pending: number(4)?,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::DeliveryInfo;

    fn info(
        stream_sequence: u64,
        consumer_sequence: u64,
        delivered: i64,
        pending: u64,
    ) -> DeliveryInfo {
        DeliveryInfo {
            stream_sequence,
            consumer_sequence,
            delivered,
            pending,
        }
    }

    #[test]
    fn both_reply_subject_forms_are_read() {
        // nats-server 2.9 and older: 7 tokens after the prefix.
        assert_eq!(
            DeliveryInfo::parse(
                "$JS.ACK.INVENTORY.projector-webhook.2.1234.77.1764230400000000000.9"
            ),
            Some(info(1234, 77, 2, 9))
        );
        // 2.10 and newer: the domain ('_' for none) and account hash first, and a random
        // token after the pending count.
        assert_eq!(
            DeliveryInfo::parse(
                "$JS.ACK._.ABCDEFGHIJ.INVENTORY.projector-webhook.1.18446744073709551615.5.1764230400000000000.0.Xy9"
            ),
            Some(info(u64::MAX, 5, 1, 0))
        );
        assert_eq!(
            DeliveryInfo::parse("$JS.ACK.hub.ACC.INVENTORY.c.3.10.4.1.100"),
            Some(info(10, 4, 3, 100))
        );
        // More tokens than the client knows: the known ones still count.
        assert_eq!(
            DeliveryInfo::parse("$JS.ACK.hub.ACC.INVENTORY.c.3.10.4.1.100.tok.more.still"),
            Some(info(10, 4, 3, 100))
        );
    }

    #[test]
    fn anything_else_is_not_read() {
        for reply in [
            "",
            "$JS.ACK.",
            "_INBOX.abc.def",
            "$JS.ACK.S.C.1.2.3.4",
            "$JS.ACK.S.C.1.2.3.4.5.6",
            "$JS.ACK.S.C.x.2.3.4.5",
            "$JS.ACK.S.C.1.-2.3.4.5",
            "$JS.ACK.S.C.1.2.3.4.+5",
            "$JS.ACK.S.C.1.2.3.4.",
            "$JS.ACK.S.C.18446744073709551615.2.3.4.5",
            "$JS.ACK._.H.S.C.1.2.3.4.99999999999999999999",
            "$JS.NAK.S.C.1.2.3.4.5",
        ] {
            assert_eq!(DeliveryInfo::parse(reply), None, "{reply:?}");
        }
    }
}
