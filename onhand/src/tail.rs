//! `onhand events tail`: follow the `INVENTORY` stream with an ordered consumer and print
//! one readable line per event as it lands. A debugging and demo tool: it acks nothing,
//! leaves no durable behind, and never stops on a payload it cannot decode (it prints the
//! decode error instead).

use std::io::{self, Write};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::{OrderedConfig, OrderedErrorKind};
use futures::StreamExt as _;
use onhand_common::{EventError, EventType, InventoryEvent, decode_event};
use tokio_util::sync::CancellationToken;

/// The stream the ledger relay publishes to.
pub const STREAM: &str = "INVENTORY";
/// Default filter: every SKU.
pub const DEFAULT_SUBJECT: &str = "inventory.sku.>";
/// Pause after a consumer error before pulling again, so a broken link cannot spin.
const ERROR_BACKOFF: Duration = Duration::from_millis(250);

/// What to follow and for how long.
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// Subject filter inside the stream.
    pub subject: String,
    /// Start at the first message still in the stream instead of new ones only.
    pub since_start: bool,
    /// Stop after this many messages (decodable or not).
    pub count: Option<u64>,
}

/// Prints events to `out` until `shutdown`, `count` messages, or the end of the message
/// stream. Returns how many messages were printed. A closed `out` (e.g. `| head`) ends
/// the tail quietly.
pub async fn run(
    js: &async_nats::jetstream::Context,
    options: &TailOptions,
    shutdown: CancellationToken,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let stream = js
        .get_stream(STREAM)
        .await
        .with_context(|| format!("looking up stream {STREAM} (run `onhand streams apply`?)"))?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: options.subject.clone(),
            deliver_policy: if options.since_start {
                DeliverPolicy::All
            } else {
                DeliverPolicy::New
            },
            ..OrderedConfig::default()
        })
        .await
        .with_context(|| format!("creating an ordered consumer on {STREAM}"))?;
    let mut messages = consumer
        .messages()
        .await
        .with_context(|| format!("subscribing to {STREAM}"))?;
    tracing::info!(stream = STREAM, subject = %options.subject, since_start = options.since_start, "tailing events");

    let mut printed: u64 = 0;
    while options.count.is_none_or(|n| printed < n) {
        let next = tokio::select! {
            () = shutdown.cancelled() => break,
            next = messages.next() => next,
        };
        let message = match next {
            None => break,
            Some(Ok(message)) => message,
            Some(Err(err)) => {
                match err.kind() {
                    OrderedErrorKind::MissingHeartbeat
                    | OrderedErrorKind::ConsumerDeleted
                    | OrderedErrorKind::Pull
                    | OrderedErrorKind::PushBasedConsumer
                    | OrderedErrorKind::Recreate
                    | OrderedErrorKind::NoResponders
                    | OrderedErrorKind::RequestLimitExceeded
                    | OrderedErrorKind::Other => {
                        tracing::warn!(error = %err, "event stream error; still tailing");
                    }
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(ERROR_BACKOFF) => {}
                }
                continue;
            }
        };
        let seq = message.info().map_or(0, |info| info.stream_sequence);
        let line = match decode_event(&message.payload) {
            Ok(event) => format_event(seq, &event),
            Err(err) => format_undecodable(seq, message.subject.as_str(), &err),
        };
        match writeln!(out, "{line}").and_then(|()| out.flush()) {
            Ok(()) => printed += 1,
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => break,
            Err(err) => return Err(err).context("writing to stdout"),
        }
    }
    Ok(printed)
}

/// One event as one line: stream seq, type, sku, warehouse, qty, version, available per
/// warehouse, then order / reservation / reason when present.
pub fn format_event(seq: u64, event: &InventoryEvent) -> String {
    let available: Vec<String> = event
        .stock
        .warehouses
        .iter()
        .map(|(id, w)| format!("{id}={}", w.available()))
        .collect();
    let mut parts = vec![
        format!("#{seq:<5} {:<15}", event.event_type.as_str()),
        format!("sku={}", event.sku),
        format!("wh={}", event.warehouse),
        format!(
            "qty={}",
            signed_if(event.event_type == EventType::Adjusted, event.qty)
        ),
        format!("v={}", event.stock.version),
        format!("available[{}]", available.join(" ")),
    ];
    if let Some(order) = &event.order_id {
        parts.push(format!("order={order}"));
    }
    if let Some(reservation) = &event.reservation_id {
        parts.push(format!("reservation={reservation}"));
    }
    if let Some(reason) = &event.reason {
        parts.push(format!("reason={reason}"));
    }
    if event.stock.available_total() < 0 {
        parts.push("OVERSOLD".to_owned());
    }
    parts.join(" ")
}

/// A message whose payload is not a valid v1 event.
pub fn format_undecodable(seq: u64, subject: &str, err: &EventError) -> String {
    format!("#{seq:<5} UNDECODABLE     subject={subject} error: {err}")
}

fn signed_if(signed: bool, qty: i64) -> String {
    if signed && qty > 0 {
        format!("+{qty}")
    } else {
        qty.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> InventoryEvent {
        decode_event(json.as_bytes()).expect("valid event")
    }

    #[test]
    fn reserved_event_line_names_everything_a_reader_needs() {
        let e = event(
            r#"{"schema":1,"event_id":"0193a1b2-0000-7000-8000-000000000001",
            "type":"stock.reserved","occurred_at":"2026-11-26T10:00:00.123456Z",
            "sku":"TSHIRT-RED-M","warehouse":"ams-1","qty":2,"order_id":"web-1001",
            "reservation_id":"0193a1b2-0000-7000-8000-0000000000aa",
            "stock":{"version":42,"warehouses":{
              "ams-1":{"on_hand":10,"reserved":2,"pending":1},
              "nyc-1":{"on_hand":4,"reserved":0,"pending":0}}}}"#,
        );
        assert_eq!(
            format_event(7, &e),
            "#7     stock.reserved  sku=TSHIRT-RED-M wh=ams-1 qty=2 v=42 available[ams-1=7 nyc-1=4] \
             order=web-1001 reservation=0193a1b2-0000-7000-8000-0000000000aa"
        );
    }

    #[test]
    fn adjustments_are_signed_and_oversells_flagged() {
        let e = event(
            r#"{"schema":1,"event_id":"0193a1b2-0000-7000-8000-000000000002",
            "type":"stock.adjusted","occurred_at":"2026-11-26T10:00:00Z",
            "sku":"MUG","warehouse":"nyc-1","qty":3,"reason":"cycle_count",
            "stock":{"version":3,"warehouses":{"nyc-1":{"on_hand":3,"reserved":0,"pending":5}}}}"#,
        );
        let line = format_event(12, &e);
        assert!(line.contains("qty=+3"), "{line}");
        assert!(line.contains("available[nyc-1=-2]"), "{line}");
        assert!(line.ends_with("reason=cycle_count OVERSOLD"), "{line}");
    }

    #[test]
    fn undecodable_messages_carry_the_error() {
        let err = decode_event(b"not json").expect_err("invalid");
        let line = format_undecodable(3, "inventory.sku.X", &err);
        assert!(line.starts_with("#3     UNDECODABLE"), "{line}");
        assert!(line.contains("subject=inventory.sku.X"), "{line}");
        assert!(line.contains("not a valid v1 event"), "{line}");
    }
}
