//! The JetStream ingest consumer: WMS/ERP systems that publish commands instead of calling.
//!
//! Subject `ingest.<source>.<command>`, JSON body as the HTTP API's, `Nats-Msg-Id` required
//! (it is the idempotency key, scoped by source). Applied → ack. Transient failure (database
//! down) → nak with a delay, redelivered later. Rejected (bad subject, body or state) → a
//! record on `inventory.dlq.ingest` with the reason, then term: never retried, never lost.

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{Config as PullConfig, MessagesErrorKind};
use async_nats::jetstream::{AckKind, Context, Message};
use futures::StreamExt;
use onhand_common::event::HEADER_MSG_ID;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::commands::{Command, IdempotencyKey, Ledger};
use crate::error::LedgerError;
use crate::metrics;
use onhand_common::backoff::Backoff;

pub const DLQ_SUBJECT: &str = "inventory.dlq.ingest";
pub use onhand_common::event::{HEADER_DLQ_REASON, HEADER_DLQ_SUBJECT};

#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub stream: String,
    pub consumer: String,
    pub retry_delay: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            stream: onhand_streams::names::INGEST_STREAM.to_owned(),
            consumer: onhand_streams::names::LEDGER_INGEST_CONSUMER.to_owned(),
            retry_delay: Duration::from_secs(2),
        }
    }
}

/// Consume until `shutdown`; reattach to the durable consumer after any stream error.
pub async fn run(ledger: Ledger, js: Context, config: IngestConfig, shutdown: CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    while !shutdown.is_cancelled() {
        match consume(&ledger, &js, &config, &shutdown).await {
            Ok(()) => backoff.reset(),
            Err(err) => {
                tracing::warn!(error = %err, failures = backoff.failures() + 1, stream = %config.stream, consumer = %config.consumer, "ingest consumer unavailable; retrying");
                if !backoff.wait(&shutdown).await {
                    break;
                }
            }
        }
    }
}

async fn consume(
    ledger: &Ledger,
    js: &Context,
    config: &IngestConfig,
    shutdown: &CancellationToken,
) -> Result<(), async_nats::Error> {
    let stream = js.get_stream(&config.stream).await?;
    let consumer = stream.get_consumer::<PullConfig>(&config.consumer).await?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(50)
        .heartbeat(Duration::from_secs(5))
        .messages()
        .await?;
    tracing::info!(stream = %config.stream, consumer = %config.consumer, "ingest consumer attached");
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            next = messages.next() => next,
        };
        match next {
            None => return Ok(()),
            Some(Ok(message)) => handle(ledger, js, config, message).await,
            Some(Err(err)) => match err.kind() {
                MessagesErrorKind::ConsumerDeleted
                | MessagesErrorKind::PushBasedConsumer
                | MessagesErrorKind::RequestLimitExceeded => return Err(err.into()),
                MessagesErrorKind::MissingHeartbeat
                | MessagesErrorKind::Pull
                | MessagesErrorKind::NoResponders
                | MessagesErrorKind::Other => {
                    tracing::debug!(error = %err, "transient ingest stream error");
                }
            },
        }
    }
}

/// What became of one message.
enum Disposition {
    Applied,
    Retry(LedgerError),
    Reject(String),
}

async fn handle(ledger: &Ledger, js: &Context, config: &IngestConfig, message: Message) {
    let subject = message.subject.to_string();
    let msg_id = message
        .headers
        .as_ref()
        .and_then(|h| h.get(HEADER_MSG_ID))
        .map(|v| v.as_str().to_owned());
    let span = tracing::info_span!("ingest_command", subject = %subject, msg_id = msg_id.as_deref().unwrap_or(""), outcome = tracing::field::Empty);
    if let Some(tp) = message
        .headers
        .as_ref()
        .and_then(|h| h.get(onhand_common::event::HEADER_TRACEPARENT))
    {
        onhand_common::telemetry::set_parent_from_traceparent(&span, tp.as_str());
    }
    async {
        let disposition = apply(ledger, &subject, msg_id.as_deref(), &message.payload).await;
        let (outcome, ack) = match disposition {
            Disposition::Applied => ("applied", AckKind::Ack),
            Disposition::Retry(err) => {
                tracing::warn!(error = %err, "ingest command failed transiently; will be redelivered");
                ("retried", AckKind::Nak(Some(config.retry_delay)))
            }
            Disposition::Reject(reason) => {
                tracing::warn!(%reason, "ingest command rejected; recorded on the DLQ");
                if let Err(err) = dead_letter(js, &subject, msg_id.as_deref(), &reason, &message).await {
                    // Without the DLQ record, keep the message: nak so it is not lost.
                    tracing::error!(error = %err, "could not record a rejected ingest command on the DLQ");
                    ("retried", AckKind::Nak(Some(config.retry_delay)))
                } else {
                    ("rejected", AckKind::Term)
                }
            }
        };
        tracing::Span::current().record("outcome", outcome);
        metrics::ingest_message(outcome);
        if let Err(err) = message.ack_with(ack).await {
            tracing::warn!(error = %err, "could not acknowledge an ingest message; it will be redelivered");
        }
    }
    .instrument(span)
    .await;
}

async fn apply(
    ledger: &Ledger,
    subject: &str,
    msg_id: Option<&str>,
    payload: &[u8],
) -> Disposition {
    let mut parts = subject.split('.');
    let (Some("ingest"), Some(source), Some(command), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Disposition::Reject(format!(
            "subject {subject:?} is not ingest.<source>.<command>"
        ));
    };
    let Some(msg_id) = msg_id.filter(|id| !id.is_empty() && id.len() <= 255) else {
        return Disposition::Reject(
            "the Nats-Msg-Id header (1 to 255 characters) is required: it is the idempotency key"
                .to_owned(),
        );
    };
    let command = match Command::from_ingest(command, payload, &ledger.settings) {
        Ok(command) => command,
        Err(err) => return Disposition::Reject(describe(&err)),
    };
    let key = IdempotencyKey::new(
        &format!("ingest/{source}"),
        msg_id,
        &[subject.as_bytes(), payload],
    );
    match ledger.execute(command, Some(&key)).await {
        Ok(_) => Disposition::Applied,
        Err(err) if err.is_transient() => Disposition::Retry(err),
        Err(err) => Disposition::Reject(describe(&err)),
    }
}

fn describe(err: &LedgerError) -> String {
    match err.field() {
        Some(field) => format!("{}: {} (field {field})", err.code(), err),
        None => format!("{}: {}", err.code(), err),
    }
}

async fn dead_letter(
    js: &Context,
    subject: &str,
    msg_id: Option<&str>,
    reason: &str,
    message: &Message,
) -> Result<(), async_nats::Error> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(HEADER_DLQ_REASON, reason);
    headers.insert(HEADER_DLQ_SUBJECT, subject);
    if let Some(id) = msg_id {
        // Its own id space, so a redelivered rejection is recorded once.
        headers.insert(HEADER_MSG_ID, format!("dlq:{subject}:{id}").as_str());
    }
    js.publish_with_headers(DLQ_SUBJECT, headers, message.payload.clone())
        .await?
        .await?;
    Ok(())
}
