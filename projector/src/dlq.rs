//! Dead letters: what a projector could not apply, on `inventory.dlq.<channel>` in
//! `INVENTORY_DLQ`, with the reason, to inspect and re-drive after a fix.

use async_nats::HeaderMap;
use async_nats::jetstream::Context;
use bytes::Bytes;
use onhand_common::event::{
    DLQ_MAX_PAYLOAD, DLQ_SUBJECT_PREFIX, HEADER_DLQ_CODE, HEADER_DLQ_REASON, HEADER_DLQ_SEQUENCE,
    HEADER_DLQ_SUBJECT, HEADER_DLQ_TRUNCATED, HEADER_MSG_ID,
};
use serde::Serialize;
use time::OffsetDateTime;

/// The DLQ subject of a channel.
pub fn subject(channel: &str) -> String {
    format!("{DLQ_SUBJECT_PREFIX}{channel}")
}

/// A message to dead-letter.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    pub channel: &'a str,
    /// Why, for a person: names the problem.
    pub reason: String,
    /// The channel's error code when the channel refused it.
    pub code: Option<String>,
    pub original_subject: &'a str,
    pub original_sequence: u64,
    pub payload: &'a Bytes,
}

/// Publish and wait for the stream's acknowledgement. Deduplicated per channel and
/// original sequence, so a redelivered message is recorded once.
pub async fn publish(js: &Context, letter: &DeadLetter<'_>) -> Result<(), async_nats::Error> {
    let mut headers = HeaderMap::new();
    headers.insert(HEADER_DLQ_REASON, one_line(&letter.reason).as_str());
    headers.insert(HEADER_DLQ_SUBJECT, letter.original_subject);
    headers.insert(
        HEADER_DLQ_SEQUENCE,
        letter.original_sequence.to_string().as_str(),
    );
    if let Some(code) = &letter.code {
        headers.insert(HEADER_DLQ_CODE, one_line(code).as_str());
    }
    headers.insert(
        HEADER_MSG_ID,
        format!("dlq:{}:{}", letter.channel, letter.original_sequence).as_str(),
    );
    let payload = if letter.payload.len() > DLQ_MAX_PAYLOAD {
        headers.insert(
            HEADER_DLQ_TRUNCATED,
            letter.payload.len().to_string().as_str(),
        );
        letter.payload.slice(..DLQ_MAX_PAYLOAD)
    } else {
        letter.payload.clone()
    };
    js.publish_with_headers(subject(letter.channel), headers, payload)
        .await?
        .await?;
    Ok(())
}

/// Header values are one line; keep reasons readable and bounded.
fn one_line(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(1_000)
        .collect();
    out.truncate(out.trim_end().len());
    out
}

/// One dead letter as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Its sequence in `INVENTORY_DLQ` (what `dlq replay` deletes once applied).
    pub dlq_sequence: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    pub reason: String,
    pub code: Option<String>,
    pub original_subject: Option<String>,
    pub original_sequence: Option<u64>,
    /// Set when the payload kept is a prefix: the original length.
    pub truncated_from: Option<usize>,
    #[serde(skip)]
    pub payload: Bytes,
}

/// Every dead letter of `channel`, oldest first.
pub async fn list(js: &Context, channel: &str) -> Result<Vec<Record>, async_nats::Error> {
    let stream = js.get_stream(onhand_streams::names::DLQ_STREAM).await?;
    let subject = subject(channel);
    let mut out = Vec::new();
    let mut next = 1u64;
    loop {
        let message = match stream
            .direct_get_next_for_subject(subject.as_str(), Some(next))
            .await
        {
            Ok(m) => m,
            Err(e) if e.kind() == async_nats::jetstream::stream::DirectGetErrorKind::NotFound => {
                break;
            }
            Err(e) => return Err(e.into()),
        };
        next = message.sequence + 1;
        let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
        out.push(Record {
            dlq_sequence: message.sequence,
            recorded_at: message.time,
            reason: header(HEADER_DLQ_REASON).unwrap_or_default(),
            code: header(HEADER_DLQ_CODE),
            original_subject: header(HEADER_DLQ_SUBJECT),
            original_sequence: header(HEADER_DLQ_SEQUENCE).and_then(|s| s.parse().ok()),
            truncated_from: header(HEADER_DLQ_TRUNCATED).and_then(|s| s.parse().ok()),
            payload: message.payload,
        });
    }
    Ok(out)
}

/// Remove one dead letter (after it was re-driven).
pub async fn remove(js: &Context, dlq_sequence: u64) -> Result<(), async_nats::Error> {
    let stream = js.get_stream(onhand_streams::names::DLQ_STREAM).await?;
    stream.delete_message(dlq_sequence).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_one_bounded_line() {
        assert_eq!(one_line("a\nb\tc  "), "a b c");
        assert_eq!(one_line(&"x".repeat(5_000)).len(), 1_000);
    }
}
