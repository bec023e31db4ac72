//! Deliveries put off for later (nakked with a delay after a transient failure, or deferred
//! by the channel's revision budget), one per SKU.
//!
//! A SKU the channel will not take for a while (a listing waiting for its revision budget,
//! a listing eBay blocked for the day, an item the channel keeps failing) gets a new event
//! with every sale, and each would be nakked with a delay and stay unacked until it comes
//! back: hundreds of messages per SKU for a wait of minutes, and with enough such SKUs the
//! consumer reaches `max_ack_pending` and stops delivering anything, sell-outs of every
//! other SKU included. So only the newest put-off delivery of a SKU stays with the server:
//! when a newer one is put off, the older one is acked (the newer one, still unacked, comes
//! back and carries the SKU's newest value), and when the SKU is applied, the put-off one it
//! covers is acked too. A crash loses nothing: what is acked here is covered by a delivery
//! that is not.
//!
//! The lag gauge is the age of the oldest unacked message, and acking the older put-off
//! deliveries would hide how long the channel has really been behind (a channel down for a
//! minute, with sales coming in, would show the age of the last sale). So each entry keeps
//! when the oldest event it stands for happened, and [`Deferred::oldest`] feeds the lag.

use std::sync::{Arc, Mutex, PoisonError};

use async_nats::jetstream::AckKind;
use async_nats::{Client, Subject};
use foldhash::{HashMap, HashMapExt};
use onhand_common::Sku;
use time::OffsetDateTime;

use crate::batch::ack;

/// The put-off delivery of a SKU.
#[derive(Debug)]
struct Entry {
    version: i64,
    /// The stream sequence: the same message comes back with a new reply subject.
    sequence: u64,
    reply: Option<Subject>,
    /// When the oldest event this delivery stands for happened (it and those it superseded).
    since: OffsetDateTime,
}

/// When the oldest event a put-off delivery stands for happened, for the lag gauge.
pub(crate) type Oldest = Arc<Mutex<Option<OffsetDateTime>>>;

pub(crate) fn read_oldest(oldest: &Oldest) -> Option<OffsetDateTime> {
    *oldest.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The newest put-off delivery of each SKU that has one.
#[derive(Debug)]
pub(crate) struct Deferred {
    client: Client,
    by_sku: HashMap<Sku, Entry>,
    /// When the oldest event of any entry happened, as of the last [`Deferred::publish`]:
    /// shared with the lag sampler.
    oldest: Oldest,
}

impl Deferred {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            by_sku: HashMap::new(),
            oldest: Oldest::default(),
        }
    }

    /// Where the oldest put-off event's time is published (see [`Deferred::publish`]).
    pub fn oldest_handle(&self) -> Oldest {
        self.oldest.clone()
    }

    /// Publish when the oldest event a put-off delivery stands for happened (none: nothing
    /// put off), for the lag sampler. One pass over the entries: run once per batch.
    pub fn publish(&self) {
        let oldest = self.by_sku.values().map(|e| e.since).min();
        *self.oldest.lock().unwrap_or_else(PoisonError::into_inner) = oldest;
    }

    /// The delivery (`version`, `sequence`, `reply`, of an event that happened at
    /// `occurred_at`) of `sku` is to be put off. Returns whether to nak it with the delay
    /// (`true`), or to ack it (`false`): a newer delivery of the SKU is put off already and
    /// covers it. A put-off delivery it supersedes is acked.
    pub async fn put_off(
        &mut self,
        sku: &Sku,
        version: i64,
        sequence: u64,
        reply: &Option<Subject>,
        occurred_at: OffsetDateTime,
    ) -> bool {
        let mut entry = Entry {
            version,
            sequence,
            reply: reply.clone(),
            since: occurred_at,
        };
        match self.by_sku.get_mut(sku) {
            None => {
                self.by_sku.insert(sku.clone(), entry);
                true
            }
            // The same message again (redelivered): keep its new reply subject.
            Some(held) if held.sequence == sequence => {
                entry.since = entry.since.min(held.since);
                *held = entry;
                true
            }
            Some(held) if (held.version, held.sequence) < (version, sequence) => {
                entry.since = entry.since.min(held.since);
                let older = std::mem::replace(held, entry);
                ack(&self.client, &older.reply, AckKind::Ack).await;
                true
            }
            // Older than the one put off: that one carries the SKU further.
            Some(held) => {
                held.since = held.since.min(occurred_at);
                false
            }
        }
    }

    /// The delivery `sequence` of `sku` is settled with the SKU's channel value at
    /// `covered` (applied, or already there): a put-off delivery at or below that version
    /// is acked and forgotten; the entry of this very message is forgotten.
    pub async fn settled(&mut self, sku: &Sku, sequence: u64, covered: Option<i64>) {
        let Some(held) = self.by_sku.get(sku) else {
            return;
        };
        if held.sequence == sequence {
            self.by_sku.remove(sku);
            return;
        }
        if covered.is_some_and(|v| held.version <= v)
            && let Some(held) = self.by_sku.remove(sku)
        {
            ack(&self.client, &held.reply, AckKind::Ack).await;
        }
    }

    /// Forget every entry (their reply subjects belong to a consumer that is gone, or about
    /// to be reattached): at worst, some put-off deliveries stay until they come back.
    pub fn clear(&mut self) {
        self.by_sku.clear();
        self.publish();
    }
}
