//! `onhand ingest publish`: publish one WMS/ERP command to JetStream the way a publishing
//! system would (`ingest.<source>.<command>`, JSON body, `Nats-Msg-Id` as the idempotency
//! key) and wait for the stream's PubAck. For demos and operators; no `nats` CLI needed.

use anyhow::{Context as _, bail};
use onhand_common::event::HEADER_MSG_ID;

/// Subjects the ledger's ingest consumer reads.
const INGEST_PREFIX: &str = "ingest.";
/// The ledger accepts `Nats-Msg-Id` values of 1 to 255 characters.
const MAX_MSG_ID_LEN: usize = 255;

/// One command to publish.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// `ingest.<source>.<command>`, e.g. `ingest.wms.receipt`.
    pub subject: String,
    /// The `Nats-Msg-Id` header: the dedupe and idempotency key.
    pub msg_id: String,
    /// The JSON body (the same shape as the HTTP API's).
    pub data: String,
}

/// What the stream said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub stream: String,
    pub sequence: u64,
    /// The stream had already seen this `Nats-Msg-Id` inside its dedupe window.
    pub duplicate: bool,
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "published to {} seq {}", self.stream, self.sequence)?;
        if self.duplicate {
            f.write_str(
                " (duplicate: the stream already had this Nats-Msg-Id; not applied again)",
            )?;
        }
        Ok(())
    }
}

/// Checks the command locally (subject shape, msg id, JSON body), then publishes it and
/// awaits the PubAck.
pub async fn publish(
    js: &async_nats::jetstream::Context,
    options: &PublishOptions,
) -> anyhow::Result<Published> {
    validate(options)?;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(HEADER_MSG_ID, options.msg_id.as_str());
    let ack = js
        .publish_with_headers(
            options.subject.clone(),
            headers,
            options.data.clone().into_bytes().into(),
        )
        .await
        .with_context(|| format!("publishing to {}", options.subject))?
        .await
        .with_context(|| {
            format!(
                "waiting for JetStream to acknowledge {} (is the INGEST stream applied?)",
                options.subject
            )
        })?;
    Ok(Published {
        stream: ack.stream,
        sequence: ack.sequence,
        duplicate: ack.duplicate,
    })
}

fn validate(options: &PublishOptions) -> anyhow::Result<()> {
    let rest = options.subject.strip_prefix(INGEST_PREFIX).unwrap_or("");
    let tokens: Vec<&str> = rest.split('.').collect();
    if tokens.len() != 2
        || tokens
            .iter()
            .any(|t| t.is_empty() || t.contains(['*', '>']))
    {
        bail!(
            "--subject {:?} must be ingest.<source>.<command>, e.g. ingest.wms.receipt",
            options.subject
        );
    }
    if options.msg_id.is_empty() || options.msg_id.len() > MAX_MSG_ID_LEN {
        bail!("--msg-id must be 1 to {MAX_MSG_ID_LEN} characters");
    }
    serde_json::from_str::<serde_json::Value>(&options.data)
        .context("--data must be a JSON document")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(subject: &str, msg_id: &str, data: &str) -> PublishOptions {
        PublishOptions {
            subject: subject.to_owned(),
            msg_id: msg_id.to_owned(),
            data: data.to_owned(),
        }
    }

    #[test]
    fn accepts_a_well_formed_command() {
        assert!(validate(&opts("ingest.wms.receipt", "wms-1", r#"{"sku":"A"}"#)).is_ok());
    }

    #[test]
    fn rejects_what_the_ledger_would_dead_letter() {
        for subject in [
            "inventory.sku.A",
            "ingest.wms",
            "ingest.wms.receipt.x",
            "ingest..receipt",
            "ingest.*.receipt",
        ] {
            let err = validate(&opts(subject, "id", "{}")).expect_err(subject);
            assert!(err.to_string().contains("--subject"), "{err}");
        }
        let err = validate(&opts("ingest.wms.receipt", "", "{}")).expect_err("empty id");
        assert!(err.to_string().contains("--msg-id"), "{err}");
        let err = validate(&opts("ingest.wms.receipt", "id", "{sku")).expect_err("bad json");
        assert!(err.to_string().contains("--data"), "{err}");
    }
}
