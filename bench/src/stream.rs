//! JetStream observation: a stream's message count and last sequence, and waiting (with a
//! deadline) until the stream has reached a sequence, to count the events the outbox relay
//! delivered.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream::{self, Context};
use serde::Serialize;

/// How often the stream is polled while waiting.
const POLL: Duration = Duration::from_millis(25);

/// A stream's counters at one moment.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StreamState {
    pub messages: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// One JetStream stream, watched.
#[derive(Debug, Clone)]
pub struct Watched {
    js: Context,
    name: String,
}

impl Watched {
    pub async fn connect(nats_url: &str, name: &str) -> anyhow::Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .name("onhand-bench")
            .connect(nats_url)
            .await
            .with_context(|| format!("connecting to NATS at {nats_url}"))?;
        let watched = Self {
            js: jetstream::new(client),
            name: name.to_owned(),
        };
        watched.state().await?;
        Ok(watched)
    }

    pub async fn state(&self) -> anyhow::Result<StreamState> {
        let stream = self
            .js
            .get_stream(&self.name)
            .await
            .with_context(|| format!("reading the info of stream {}", self.name))?;
        let state = &stream.cached_info().state;
        Ok(StreamState {
            messages: state.messages,
            first_seq: state.first_sequence,
            last_seq: state.last_sequence,
        })
    }

    /// Wait until the stream's last sequence is at least `target`; returns the state then
    /// and how long it took. Fails when `timeout` passes first.
    pub async fn wait_for_seq(
        &self,
        target: u64,
        timeout: Duration,
    ) -> anyhow::Result<(StreamState, Duration)> {
        let started = Instant::now();
        loop {
            let state = self.state().await?;
            if state.last_seq >= target {
                return Ok((state, started.elapsed()));
            }
            if started.elapsed() >= timeout {
                bail!(
                    "stream {} reached sequence {} but {target} was expected within {timeout:?}: events are missing or the relay is stuck",
                    self.name,
                    state.last_seq
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
