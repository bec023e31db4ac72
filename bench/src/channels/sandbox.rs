//! The sandbox, in this process but on a thread and runtime of its own (so the adapter and
//! the emulators each get a core, as two processes would), and what the benchmark reads
//! from its state directly: accepted writes, throttled answers, the rate bucket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use onhand_sandbox::state::RateKnob;
use onhand_sandbox::{Channel, Knobs, Sandbox};
use tokio_util::sync::CancellationToken;

use super::cpu;

/// A running sandbox.
#[derive(Debug)]
pub struct SandboxThread {
    base: String,
    sandbox: Arc<Sandbox>,
    /// The sandbox thread's id, for its CPU time.
    pub tid: Option<u32>,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

type Started = std::io::Result<(u16, Arc<Sandbox>, Option<u32>)>;

impl SandboxThread {
    /// Bind on a free loopback port and serve until [`SandboxThread::stop`].
    pub fn start(seed: u64) -> anyhow::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<Started>();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name("sandbox".to_owned())
            .spawn(move || -> anyhow::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting the sandbox's runtime")?;
                runtime.block_on(async move {
                    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
                    let app = match onhand_sandbox::build(addr, seed).await {
                        Ok(app) => app,
                        Err(e) => {
                            // The receiver reports the error; nothing to serve.
                            return tx.send(Err(e)).map_err(|_| anyhow!("bench gone"));
                        }
                    };
                    tx.send(Ok((app.port(), app.sandbox(), cpu::current_tid())))
                        .map_err(|_| anyhow!("bench gone"))?;
                    app.run(token).await.context("serving the sandbox")
                })
            })
            .context("spawning the sandbox thread")?;
        let (port, sandbox, tid) = rx
            .recv_timeout(Duration::from_secs(10))
            .context("the sandbox did not start")?
            .context("binding the sandbox")?;
        Ok(Self {
            base: format!("http://127.0.0.1:{port}"),
            sandbox,
            tid,
            shutdown,
            thread: Some(thread),
        })
    }

    /// One emulated API's base URL.
    pub fn url(&self, channel: Channel) -> String {
        format!("{}/{}", self.base, channel.as_str())
    }

    /// Empty the channel's catalogue and write log, set its knobs, and seed `skus` with
    /// `quantity`.
    pub fn reset(&self, channel: Channel, knobs: Knobs, skus: &[String], quantity: i64) {
        let mut state = self.sandbox.channel(channel);
        state.items.clear();
        state.writes.clear();
        state.set_knobs(knobs);
        for sku in skus {
            state.seed_item(sku, quantity, None);
        }
    }

    /// The channel's counters now.
    pub fn status(&self, channel: Channel) -> Status {
        let mut state = self.sandbox.channel(channel);
        Status {
            writes: state.writes.len() as u64,
            throttled: state.throttled,
            available: state.bucket_status().map(|(available, _, _)| available),
        }
    }

    /// Stop serving and wait for the thread.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| anyhow!("the sandbox thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for SandboxThread {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Knobs with nothing limiting: no bucket, and eBay's per-listing daily revision cap lifted.
pub fn unlimited() -> Knobs {
    Knobs {
        rate: None,
        revisions_per_day: u32::MAX,
        ..Knobs::default()
    }
}

/// Knobs with the given bucket; everything else as the sandbox's defaults (which are the
/// documented behaviour, eBay's 250 revisions per listing per day included).
pub fn limited(capacity: f64, refill_per_sec: f64) -> Knobs {
    Knobs {
        rate: Some(RateKnob {
            capacity,
            refill_per_sec,
        }),
        ..Knobs::default()
    }
}

/// What the sandbox counted for one channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Status {
    /// Accepted SKU writes (one per SKU, not per request).
    pub writes: u64,
    /// Requests answered as throttled.
    pub throttled: u64,
    /// Units left in the rate bucket, when there is one.
    pub available: Option<f64>,
}
