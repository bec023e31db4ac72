//! Publishes to a stream whose acknowledgements come back on one subscription.
//!
//! A JetStream publish through the context costs a reply inbox, a waiting future and a timer
//! per message, and its acknowledgement is decoded through an untagged enum. A projector
//! writes a watermark per SKU per commit (tens of thousands a second while a backlog of
//! many SKUs is worked through), so [`Acks`] publishes each with a reply subject under one
//! inbox of its own, reads the acknowledgements from that one subscription, and keeps one
//! deadline for all of them. Each publish still gets its own answer: a stored message, or
//! the reason the stream refused it.

use std::time::Duration;

use async_nats::{Client, StatusCode, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;

/// Publishes in flight (sent, not yet answered) at most; the next waits for an answer.
pub(crate) const WINDOW: usize = 2_000;

/// The stream's answer to one publish: `{"stream","seq",...}` or `{"error":{...}}`.
#[derive(Debug, Deserialize)]
struct Answer {
    seq: Option<u64>,
    error: Option<ApiError>,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    code: Option<u16>,
    err_code: Option<u64>,
    description: Option<String>,
}

/// Publishes sent under one inbox, and their answers so far.
#[derive(Debug)]
pub(crate) struct Acks {
    client: Client,
    inbox: String,
    /// `Err`: the inbox could not be subscribed, and every publish fails with this reason.
    answers: Result<Subscriber, String>,
    /// One per publish, in order: `None` until answered (and again once handed out).
    results: Vec<Option<Result<(), String>>>,
    /// Results before this one were handed out by [`settle_next`](Self::settle_next).
    settled: usize,
    /// Publishes sent and not answered.
    outstanding: usize,
    /// The longest wait for the next answer.
    timeout: Duration,
    /// An answer did not come in time: the rest are not waited for.
    gave_up: bool,
}

impl Acks {
    /// A fresh inbox for a run of publishes (one subscription for all of them: the
    /// server's subscription list changes once per run, not per publish); `timeout`: the
    /// longest wait for each answer.
    pub async fn new(client: &Client, timeout: Duration) -> Self {
        let inbox = client.new_inbox();
        let answers = client
            .subscribe(format!("{inbox}.*"))
            .await
            .map_err(|e| format!("subscribing to the acknowledgement inbox: {e}"));
        Self {
            client: client.clone(),
            inbox,
            answers,
            results: Vec::new(),
            settled: 0,
            outstanding: 0,
            timeout,
            gave_up: false,
        }
    }

    /// Publish `payload` to `subject`; its answer is read when settled (or here, when
    /// [`WINDOW`] publishes are unanswered).
    pub async fn publish(&mut self, subject: String, payload: Bytes) {
        if let Err(reason) = &self.answers {
            let reason = reason.clone();
            self.results.push(Some(Err(reason)));
            return;
        }
        while self.outstanding >= WINDOW {
            if !self.receive().await {
                break;
            }
        }
        let index = self.results.len();
        let reply = format!("{}.{index}", self.inbox);
        match self
            .client
            .publish_with_reply(subject, reply, payload)
            .await
        {
            Ok(()) => {
                self.results.push(None);
                self.outstanding += 1;
            }
            Err(e) => self.results.push(Some(Err(format!("publishing: {e}")))),
        }
    }

    /// The results of the next `n` publishes not yet settled, in publish order, once each
    /// is answered. A publish with no answer within the timeout (after the last answer)
    /// failed as far as anyone knows, and so does every later one still unanswered.
    pub async fn settle_next(&mut self, n: usize) -> Vec<Result<(), String>> {
        let end = self.settled.saturating_add(n).min(self.results.len());
        for i in self.settled..end {
            while self.results[i].is_none() {
                if !self.receive().await {
                    break;
                }
            }
        }
        let timeout = self.timeout;
        let out = self.results[self.settled..end]
            .iter_mut()
            .map(|r| {
                r.take()
                    .unwrap_or_else(|| Err(format!("no acknowledgement within {timeout:?}")))
            })
            .collect();
        self.settled = end;
        out
    }

    /// Read one answer into its publish's result; false when none will come (timeout, or
    /// the subscription ended).
    async fn receive(&mut self) -> bool {
        if self.gave_up {
            return false;
        }
        let Ok(answers) = &mut self.answers else {
            return false;
        };
        let message = match tokio::time::timeout(self.timeout, answers.next()).await {
            Ok(Some(message)) => message,
            Ok(None) | Err(_) => {
                self.gave_up = true;
                return false;
            }
        };
        let index = message
            .subject
            .as_str()
            .rsplit('.')
            .next()
            .and_then(|token| token.parse::<usize>().ok())
            .filter(|i| *i >= self.settled);
        match index.and_then(|i| self.results.get_mut(i)) {
            Some(slot @ None) => {
                *slot = Some(read_answer(message.status, &message.payload));
                self.outstanding -= 1;
            }
            // Answered already, or no publish of this run: the server sends one answer
            // per publish, so nothing to do.
            _ => {
                tracing::debug!(subject = %message.subject, "an acknowledgement matching no publish waiting for one");
            }
        }
        true
    }
}

/// What one answer says: stored, or why not.
fn read_answer(status: Option<StatusCode>, payload: &[u8]) -> Result<(), String> {
    match status {
        None | Some(StatusCode::OK) => {}
        Some(StatusCode::NO_RESPONDERS) => {
            return Err("no responders: no stream takes this subject".to_owned());
        }
        Some(status) => return Err(format!("the server answered with status {status}")),
    }
    match serde_json::from_slice::<Answer>(payload) {
        Ok(Answer {
            error: Some(error), ..
        }) => Err(format!(
            "the stream refused it: {} (code {}, err_code {})",
            error.description.as_deref().unwrap_or("no description"),
            error
                .code
                .map_or_else(|| "none".to_owned(), |c| c.to_string()),
            error
                .err_code
                .map_or_else(|| "none".to_owned(), |c| c.to_string()),
        )),
        Ok(Answer { seq: Some(_), .. }) => Ok(()),
        Ok(Answer { seq: None, .. }) | Err(_) => Err(format!(
            "an answer that is not a publish acknowledgement: {:?}",
            String::from_utf8_lossy(&payload[..payload.len().min(200)])
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acknowledgement_with_a_sequence_is_stored() {
        for ok in [
            &br#"{"stream":"KV_onhand_watermarks","seq":42}"#[..],
            br#"{"stream":"KV_onhand_watermarks","domain":"hub","seq":1,"duplicate":true}"#,
            br#"{ "seq" : 7 , "stream" : "S" , "batch":"b","count":3 }"#,
        ] {
            assert_eq!(
                read_answer(None, ok),
                Ok(()),
                "{}",
                String::from_utf8_lossy(ok)
            );
        }
        assert_eq!(read_answer(Some(StatusCode::OK), br#"{"seq":1}"#), Ok(()));
    }

    #[test]
    fn a_refusal_names_the_servers_reason() {
        let refused = read_answer(
            None,
            br#"{"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}}"#,
        )
        .expect_err("refused");
        assert_eq!(
            refused,
            "the stream refused it: message size exceeds maximum allowed (code 400, err_code 10054)"
        );
        let bare = read_answer(None, br#"{"error":{}}"#).expect_err("refused");
        assert_eq!(
            bare,
            "the stream refused it: no description (code none, err_code none)"
        );
    }

    #[test]
    fn anything_else_is_a_failure_not_a_write() {
        assert_eq!(
            read_answer(Some(StatusCode::NO_RESPONDERS), b""),
            Err("no responders: no stream takes this subject".to_owned())
        );
        let timeout = read_answer(Some(StatusCode::TIMEOUT), b"").expect_err("status");
        assert!(timeout.contains("408"), "{timeout}");
        for garbage in [
            &b""[..],
            b"+ACK",
            b"{}",
            br#"{"stream":"S"}"#,
            br#"{"seq":"7"}"#,
            br#"{"seq":-1}"#,
            b"[1,2]",
        ] {
            let err = read_answer(None, garbage).expect_err("not an acknowledgement");
            assert!(
                err.starts_with("an answer that is not a publish acknowledgement"),
                "{err}"
            );
        }
    }
}
