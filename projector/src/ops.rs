//! Operating a projector: build one from its channel's settings, rebuild a channel, show
//! what a rebuild would change, re-drive dead letters, explain one SKU.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use futures::StreamExt;
use onhand_channels::{Channel, ChannelSettings};
use onhand_common::event::INVENTORY_SUBJECT_PREFIX;
use onhand_common::policy::{PolicySteps, channel_quantity, explain as explain_policy};
use onhand_common::{InventoryEvent, Sku, decode_event};
use onhand_streams::names::{INVENTORY_STREAM, WATERMARKS_BUCKET};
use serde::Serialize;

use crate::apply::{Applier, SkuOutcome};
use crate::config::ProjectorConfig;
use crate::watermark::{self, Watermark, Watermarks};
use crate::{Projector, consumer, dlq};

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("connecting the channel {channel}")]
    Channel {
        channel: String,
        #[source]
        source: onhand_channels::ConnectError,
    },
    #[error("opening the KV bucket {WATERMARKS_BUCKET} (create it with `onhand streams apply`)")]
    Watermarks(#[source] async_nats::jetstream::context::KeyValueError),
    #[error(transparent)]
    Watermark(#[from] watermark::WatermarkError),
    #[error("reading the channel {channel}")]
    ReadBack {
        channel: String,
        #[source]
        source: onhand_channels::ReadBackError,
    },
    #[error("JetStream")]
    Nats(#[from] async_nats::Error),
}

impl<K> From<async_nats::error::Error<K>> for OpsError
where
    K: Clone + std::fmt::Debug + std::fmt::Display + PartialEq + Send + Sync + 'static,
    async_nats::error::Error<K>: std::error::Error,
{
    fn from(err: async_nats::error::Error<K>) -> Self {
        OpsError::Nats(Box::new(err))
    }
}

/// The applier for a configured channel.
pub async fn applier(js: &Context, settings: &ChannelSettings) -> Result<Applier, OpsError> {
    let channel = Channel::connect(settings, Some(js))
        .await
        .map_err(|source| OpsError::Channel {
            channel: settings.name.clone(),
            source,
        })?;
    let kv = js
        .get_key_value(WATERMARKS_BUCKET)
        .await
        .map_err(OpsError::Watermarks)?;
    Ok(Applier {
        channel_name: settings.name.clone(),
        channel: Arc::new(channel),
        policy: settings.policy.clone(),
        watermarks: Watermarks::new(settings.name.clone(), js.clone(), kv),
    })
}

/// A projector for a configured channel, not yet running.
pub async fn projector(
    js: &Context,
    settings: &ChannelSettings,
    config: ProjectorConfig,
) -> Result<Projector, OpsError> {
    Ok(Projector::new(
        js.clone(),
        applier(js, settings).await?,
        config,
    ))
}

/// Where a rebuild starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildFrom {
    /// The newest event of every SKU (the channel's whole state).
    LastPerSubject,
    Sequence(u64),
    Time(time::OffsetDateTime),
}

/// Forget the channel's watermarks, then recreate its durable consumer at `from`. A
/// projector attached to the old consumer reattaches to the new one and starts from a
/// clean watermark cache.
pub async fn rebuild(
    js: &Context,
    channel: &str,
    config: &ProjectorConfig,
    from: RebuildFrom,
) -> Result<u64, OpsError> {
    let purged = watermark::reset(js, channel).await?;
    let deliver = match from {
        RebuildFrom::LastPerSubject => DeliverPolicy::LastPerSubject,
        RebuildFrom::Sequence(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
        RebuildFrom::Time(start_time) => DeliverPolicy::ByStartTime { start_time },
    };
    consumer::ensure(js, channel, config, Some(deliver)).await?;
    Ok(purged)
}

/// The newest valid event of every SKU in the stream (an ordered consumer, nothing acked).
/// Undecodable messages are counted, not returned.
pub async fn latest_events(js: &Context) -> Result<(Vec<InventoryEvent>, u64), OpsError> {
    let stream = js.get_stream(INVENTORY_STREAM).await?;
    let mut info = stream.clone();
    let last = info.info().await?.state.last_sequence;
    let mut events: BTreeMap<Sku, InventoryEvent> = BTreeMap::new();
    let mut undecodable = 0;
    if last == 0 {
        return Ok((Vec::new(), 0));
    }
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::LastPerSubject,
            filter_subject: format!("{INVENTORY_SUBJECT_PREFIX}>"),
            ..OrderedConfig::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        let info = message.info()?;
        let (sequence, pending) = (info.stream_sequence, info.pending);
        match decode_event(&message.payload) {
            Ok(event) if message.subject.as_str() == event.sku.subject() => {
                events.insert(event.sku.clone(), event);
            }
            _ => undecodable += 1,
        }
        if pending == 0 || sequence >= last {
            break;
        }
    }
    Ok((events.into_values().collect(), undecodable))
}

/// One SKU where the channel differs from what a rebuild would set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffRow {
    pub sku: String,
    pub version: i64,
    /// What the channel shows now (`None`: not listed / not readable).
    pub channel: Option<i64>,
    pub expected: i64,
}

/// What a rebuild would change: every SKU whose channel quantity differs from the policy
/// quantity of its newest event. Writes nothing.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    pub channel: String,
    pub skus_in_ledger: usize,
    pub listed_on_channel: usize,
    pub would_change: Vec<DiffRow>,
    /// Listed on the channel, never seen in the stream (left alone by a rebuild).
    pub unknown_to_ledger: usize,
    pub undecodable_in_stream: u64,
}

pub async fn dry_run(js: &Context, settings: &ChannelSettings) -> Result<DryRun, OpsError> {
    let applier = applier(js, settings).await?;
    let (events, undecodable) = latest_events(js).await?;
    let listed = applier
        .channel
        .read_all()
        .await
        .map_err(|source| OpsError::ReadBack {
            channel: settings.name.clone(),
            source,
        })?;
    let shown: HashMap<&Sku, i64> = listed.iter().map(|l| (&l.sku, l.quantity)).collect();
    let known: std::collections::HashSet<&Sku> = events.iter().map(|e| &e.sku).collect();
    let would_change = events
        .iter()
        .filter_map(|e| {
            let expected = channel_quantity(&e.stock, &settings.policy);
            let channel = shown.get(&e.sku).copied();
            (channel != Some(expected)).then(|| DiffRow {
                sku: e.sku.as_str().to_owned(),
                version: e.stock.version,
                channel,
                expected,
            })
        })
        .collect();
    Ok(DryRun {
        channel: settings.name.clone(),
        skus_in_ledger: events.len(),
        listed_on_channel: listed.len(),
        would_change,
        unknown_to_ledger: listed.iter().filter(|l| !known.contains(&l.sku)).count(),
        undecodable_in_stream: undecodable,
    })
}

/// What `dlq replay` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    pub records: usize,
    /// Re-driven and removed from the DLQ (applied, or already superseded on the channel).
    pub resolved: usize,
    /// Still failing; kept, with the latest reason.
    pub still_failing: Vec<StillFailing>,
    /// Not an event (poison): kept for a person to look at.
    pub undecodable: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct StillFailing {
    pub sku: String,
    pub reason: String,
}

/// Re-drive the channel's dead letters through its adapter: the newest event per SKU, under
/// the same version guard as the projector. Resolved records are deleted; failing ones stay.
pub async fn replay_dlq(
    js: &Context,
    settings: &ChannelSettings,
) -> Result<ReplayReport, OpsError> {
    let mut applier = applier(js, settings).await?;
    let records = dlq::list(js, &settings.name).await?;
    let mut report = ReplayReport {
        records: records.len(),
        ..ReplayReport::default()
    };
    let mut by_sku: BTreeMap<Sku, (InventoryEvent, Vec<u64>)> = BTreeMap::new();
    for record in &records {
        match decode_event(&record.payload) {
            Ok(event) if record.truncated_from.is_none() => {
                let entry = by_sku
                    .entry(event.sku.clone())
                    .or_insert_with(|| (event.clone(), Vec::new()));
                if event.stock.version > entry.0.stock.version {
                    entry.0 = event;
                }
                entry.1.push(record.dlq_sequence);
            }
            _ => report.undecodable += 1,
        }
    }
    let events: Vec<&InventoryEvent> = by_sku.values().map(|(e, _)| e).collect();
    let outcomes = applier.apply(&events).await;
    for ((sku, (_, sequences)), outcome) in by_sku.iter().zip(outcomes) {
        match outcome {
            SkuOutcome::Applied { .. }
            | SkuOutcome::Unchanged { .. }
            | SkuOutcome::Stale { .. } => {
                for seq in sequences {
                    dlq::remove(js, *seq).await?;
                }
                report.resolved += sequences.len();
            }
            SkuOutcome::Transient { reason, .. } => report.still_failing.push(StillFailing {
                sku: sku.as_str().to_owned(),
                reason: format!("transient: {reason}"),
            }),
            SkuOutcome::Deferred { reason, .. } => report.still_failing.push(StillFailing {
                sku: sku.as_str().to_owned(),
                reason: format!("deferred: {reason}"),
            }),
            SkuOutcome::Permanent { code, message } => report.still_failing.push(StillFailing {
                sku: sku.as_str().to_owned(),
                reason: format!("{code}: {message}"),
            }),
        }
    }
    Ok(report)
}

/// Everything about one SKU on one channel.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub sku: String,
    pub channel: String,
    /// The newest event in the stream (the ledger's state as the projector sees it).
    pub event_id: Option<uuid::Uuid>,
    pub version: Option<i64>,
    pub warehouses: BTreeMap<String, onhand_common::WarehouseStock>,
    pub steps: Option<PolicySteps>,
    pub expected: Option<i64>,
    pub watermark: Option<Watermark>,
    /// What the channel shows (`None`: not listed).
    pub channel_shows: Option<i64>,
    pub verdict: &'static str,
}

pub async fn explain(
    js: &Context,
    settings: &ChannelSettings,
    sku: &Sku,
) -> Result<Explanation, OpsError> {
    let mut applier = applier(js, settings).await?;
    let stream = js.get_stream(INVENTORY_STREAM).await?;
    let event = match stream.direct_get_last_for_subject(sku.subject()).await {
        Ok(message) => decode_event(&message.payload).ok(),
        Err(e) if e.kind() == async_nats::jetstream::stream::DirectGetErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    applier.watermarks.load(&[sku]).await?;
    let watermark = applier.watermarks.get(sku);
    let listed = applier
        .channel
        .read_all()
        .await
        .map_err(|source| OpsError::ReadBack {
            channel: settings.name.clone(),
            source,
        })?;
    let channel_shows = listed.iter().find(|l| l.sku == *sku).map(|l| l.quantity);
    let steps = event
        .as_ref()
        .map(|e| explain_policy(&e.stock, &settings.policy));
    let expected = steps.as_ref().map(|s| s.quantity);
    let verdict = match (expected, channel_shows, watermark, event.as_ref()) {
        (None, _, _, _) => "unknown: no event for this sku in the stream",
        (Some(_), None, _, _) => "missing: the channel does not list this sku",
        (Some(x), Some(c), _, _) if x == c => "match",
        (Some(_), Some(_), Some(w), Some(e)) if w.version < e.stock.version => {
            "in flight: the projector has not applied the newest version yet"
        }
        (Some(_), Some(_), None, _) => "in flight: never pushed by this projector",
        _ => "drift: applied, yet the channel shows another quantity",
    };
    Ok(Explanation {
        sku: sku.as_str().to_owned(),
        channel: settings.name.clone(),
        event_id: event.as_ref().map(|e| e.event_id),
        version: event.as_ref().map(|e| e.stock.version),
        warehouses: event
            .as_ref()
            .map(|e| e.stock.warehouses.clone())
            .unwrap_or_default(),
        steps,
        expected,
        watermark,
        channel_shows,
        verdict,
    })
}
