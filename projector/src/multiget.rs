//! Batched reads of a stream's last message per subject: JetStream's direct get with
//! `multi_last` (nats-server 2.11 and newer, ADR-31). One request names up to
//! [`MAX_SUBJECTS`] subjects and the server answers with the last message of each one that
//! holds any, then an end-of-batch marker; a projector starting cold reads its watermarks a
//! thousand per round trip instead of one.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::{Client, HeaderMap, Message};
use futures::StreamExt;

/// Most subjects one request may name: the server refuses more than 1024 (status 413).
pub const MAX_SUBJECTS: usize = 1_000;
/// Requests for one batch of subjects, at most, when the server ends its answers early
/// (a batch bigger than its byte limit); each asks for what the previous did not bring.
const MAX_ROUNDS: usize = 16;

const HEADER_SUBJECT: &str = "Nats-Subject";
const HEADER_NUM_PENDING: &str = "Nats-Num-Pending";
const HEADER_UP_TO: &str = "Nats-UpTo-Sequence";

#[derive(Debug, thiserror::Error)]
pub enum MultiGetError {
    /// The server cannot answer such requests: older than 2.11 (it takes the request for
    /// an empty one, 408), direct gets not allowed on the stream (no responders), or no
    /// answer at all (a user not permitted to publish the request). Read one by one.
    #[error("batched direct get on {subject} not available: {reason}")]
    Unsupported { subject: String, reason: String },
    /// The request failed; nothing is known about the subjects.
    #[error("batched direct get on {subject}: {reason}")]
    Failed { subject: String, reason: String },
}

/// The last message of each of `subjects` (at most [`MAX_SUBJECTS`]) in `stream`, keyed by
/// its subject; a subject with no message is absent. `timeout`: the longest
/// wait for each answer.
pub async fn last_for_subjects(
    client: &Client,
    api_prefix: &str,
    stream: &str,
    subjects: &[String],
    timeout: Duration,
) -> Result<HashMap<String, Message>, MultiGetError> {
    assert!(
        subjects.len() <= MAX_SUBJECTS,
        "at most {MAX_SUBJECTS} subjects per request"
    );
    let request_subject = format!("{api_prefix}.DIRECT.GET.{stream}");
    let failed = |reason: String| MultiGetError::Failed {
        subject: request_subject.clone(),
        reason,
    };
    let unsupported = |reason: String| MultiGetError::Unsupported {
        subject: request_subject.clone(),
        reason,
    };
    let mut found: HashMap<String, Message> = HashMap::with_capacity(subjects.len());
    let mut up_to: Option<u64> = None;
    for _ in 0..MAX_ROUNDS {
        let wanted: Vec<&String> = subjects
            .iter()
            .filter(|s| !found.contains_key(*s))
            .collect();
        if wanted.is_empty() {
            return Ok(found);
        }
        let mut request = serde_json::json!({ "multi_last": wanted });
        if let Some(seq) = up_to {
            // Later rounds read as of the first one's point in the stream.
            request["up_to_seq"] = seq.into();
        }
        let inbox = client.new_inbox();
        let mut answers = client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| failed(format!("subscribing to the reply inbox: {e}")))?;
        client
            .publish_with_reply(
                request_subject.clone(),
                inbox,
                serde_json::to_vec(&request)
                    .expect("invariant: a list of strings serializes")
                    .into(),
            )
            .await
            .map_err(|e| failed(format!("sending the request: {e}")))?;
        let mut first = true;
        let pending = loop {
            let answer = match tokio::time::timeout(timeout, answers.next()).await {
                Ok(Some(answer)) => answer,
                Ok(None) => return Err(failed("the connection closed the reply inbox".into())),
                Err(_) if first => {
                    return Err(unsupported(format!(
                        "no answer within {timeout:?} (is the user allowed to publish to it?)"
                    )));
                }
                Err(_) => return Err(failed(format!("no answer within {timeout:?}"))),
            };
            match answer.status.map(|s| s.as_u16()) {
                None | Some(200) => {
                    let headers = answer.headers.as_ref();
                    // An old server answers a batch request with one plain message.
                    if first && header(headers, HEADER_NUM_PENDING).is_none() {
                        return Err(unsupported(
                            "the server's answer carries no Nats-Num-Pending (older than 2.11)"
                                .into(),
                        ));
                    }
                    first = false;
                    let Some(subject) = header(headers, HEADER_SUBJECT) else {
                        return Err(failed("an answer without Nats-Subject".into()));
                    };
                    found.insert(subject.to_owned(), answer);
                }
                // End of the batch: how many matching messages it left out.
                Some(204) => {
                    let headers = answer.headers.as_ref();
                    if up_to.is_none() {
                        up_to = header(headers, HEADER_UP_TO).and_then(|v| v.parse().ok());
                    }
                    break header(headers, HEADER_NUM_PENDING)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0);
                }
                // None of the subjects holds a message.
                Some(404) => break 0,
                Some(503) => {
                    return Err(unsupported(
                        "no responders (direct gets not allowed)".into(),
                    ));
                }
                Some(408) => {
                    return Err(unsupported(format!(
                        "the server refused the request as invalid ({})",
                        describe(&answer)
                    )));
                }
                Some(status) => {
                    return Err(failed(format!("status {status} ({})", describe(&answer))));
                }
            }
        };
        if pending == 0 {
            return Ok(found);
        }
    }
    Err(failed(format!(
        "still incomplete after {MAX_ROUNDS} requests"
    )))
}

fn header<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers?.get(name).map(|v| v.as_str())
}

fn describe(answer: &Message) -> String {
    answer
        .description
        .clone()
        .unwrap_or_else(|| "no description".to_owned())
}
