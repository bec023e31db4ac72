//! The projector benchmark (issue 4):
//!
//! - `throughput`: N events over S SKUs already in the stream; the time until a durable
//!   consumer has acked them all, (a) pulled and acked by async-nats alone, (b) applied by
//!   one in-process projector to an unthrottled in-process sandbox. Same server, same
//!   stream, same run; the report gives both rates and their ratio.
//! - `burst`: B events for K SKUs published within one second against Shopify's documented
//!   default limit (the sandbox's bucket and the adapter's both at the Standard plan):
//!   channel calls per event, time until every SKU shows its last value, throttled answers.
//! - `propagation`: the whole system (a running ledger, `onhand sandbox`, an `onhand
//!   projector` process): open-loop reservations at a fixed rate; for every event, the time
//!   from its `occurred_at` (taken in the ledger's committing transaction) to the first
//!   sandbox write that carries it or a newer version; and the projector's resident memory
//!   sampled from /proc during the run.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use async_nats::jetstream::{self, Context};
use futures::StreamExt;
use onhand_common::event::HEADER_MSG_ID;
use onhand_common::{EventType, InventoryEvent, Sku, StockState, WarehouseStock, decode_event};
use onhand_projector::ops::{self, RebuildFrom};
use onhand_projector::{ProjectorConfig, consumer};
use onhand_sandbox::Channel as Sandboxed;
use onhand_sandbox::state::{Knobs, RateKnob};
use onhand_streams::names::INVENTORY_STREAM;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::procfs::{cpu_secs, status_kib};
use crate::stats::{Latency, round3};

const WAREHOUSE: &str = "wh1";

fn event(sku: &str, version: i64, on_hand: i64) -> InventoryEvent {
    InventoryEvent {
        schema: 1,
        event_id: uuid::Uuid::now_v7(),
        event_type: EventType::Received,
        occurred_at: time::OffsetDateTime::now_utc(),
        sku: Sku::parse(sku).expect("bench skus are valid"),
        warehouse: WAREHOUSE.to_owned(),
        qty: 1,
        order_id: None,
        reservation_id: None,
        reason: None,
        stock: StockState {
            version,
            warehouses: BTreeMap::from([(
                WAREHOUSE.to_owned(),
                WarehouseStock {
                    on_hand,
                    reserved: 0,
                    pending: 0,
                },
            )]),
        },
    }
}

async fn publish_all(js: &Context, events: &[InventoryEvent]) -> anyhow::Result<()> {
    for chunk in events.chunks(2_000) {
        let mut acks = Vec::with_capacity(chunk.len());
        for e in chunk {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(HEADER_MSG_ID, e.event_id.to_string().as_str());
            acks.push(
                js.publish_with_headers(e.subject(), headers, e.to_json().into())
                    .await
                    .context("publishing an event")?,
            );
        }
        for ack in acks {
            ack.await.context("PubAck")?;
        }
    }
    Ok(())
}

/// An in-process sandbox.
struct Sandbox {
    base: String,
    state: Arc<onhand_sandbox::Sandbox>,
    shutdown: CancellationToken,
}

impl Sandbox {
    async fn start() -> anyhow::Result<Self> {
        let app = onhand_sandbox::build("127.0.0.1:0".parse().expect("addr"), 1)
            .await
            .context("starting the sandbox")?;
        let base = format!("http://127.0.0.1:{}", app.port());
        let state = app.sandbox();
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run(shutdown.clone()));
        Ok(Self {
            base,
            state,
            shutdown,
        })
    }

    fn seed(&self, channel: Sandboxed, skus: &[String]) {
        let mut state = self.state.channel(channel);
        for sku in skus {
            state.seed_item(sku, 0, None);
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Channel settings pointing at the sandbox.
fn settings(
    kind: Sandboxed,
    base: &str,
    limits: bool,
) -> anyhow::Result<onhand_channels::ChannelSettings> {
    let name = kind.as_str();
    let mut pairs: Vec<(&str, String)> = vec![("BASE_URL", format!("{base}/{name}"))];
    if !limits {
        pairs.push(("RATE_LIMIT", "off".into()));
    }
    pairs.extend(onhand_sandbox::credentials::adapter_settings(kind));
    Ok(onhand_channels::ChannelSettings::from_settings(
        name, pairs,
    )?)
}

/// Poll until the consumer has nothing pending and nothing unacked.
async fn wait_drained(js: &Context, durable: &str, deadline: Duration) -> anyhow::Result<Instant> {
    let stream = js.get_stream(INVENTORY_STREAM).await?;
    let until = Instant::now() + deadline;
    loop {
        let info = stream.consumer_info(durable).await?;
        if info.num_pending == 0 && info.num_ack_pending == 0 && info.delivered.stream_sequence > 0
        {
            return Ok(Instant::now());
        }
        if Instant::now() > until {
            bail!(
                "{durable} still has {} pending and {} unacked after {deadline:?}",
                info.num_pending,
                info.num_ack_pending
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Debug, Serialize)]
pub struct ThroughputReport {
    pub events: usize,
    pub skus: usize,
    pub spread: Spread,
    /// SKUs with at least one event.
    pub distinct_skus: usize,
    pub channel: String,
    /// The mean of the raw phase before the projector and the one after it.
    pub raw_secs: f64,
    pub raw_events_per_sec: f64,
    pub raw_before_events_per_sec: f64,
    pub raw_after_events_per_sec: f64,
    pub projector_secs: f64,
    pub projector_events_per_sec: f64,
    pub ratio: f64,
    /// CPU seconds each phase took: this process (the client, or the projector and the
    /// in-process sandbox) and nats-server (when its pid is known). Steadier than wall time
    /// on a shared machine.
    pub raw_cpu: PhaseCpu,
    pub projector_cpu: PhaseCpu,
    /// Raw CPU ÷ projector CPU (both processes): the ratio's CPU-bound ceiling.
    pub cpu_ratio: Option<f64>,
    /// Channel requests the sandbox answered, and SKU values written.
    pub channel_requests: u64,
    pub sku_writes: usize,
    /// Watermark writes the projector made (the bucket's stream sequence grew by this).
    pub watermark_writes: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct PhaseCpu {
    pub bench_secs: f64,
    pub nats_secs: Option<f64>,
}

impl PhaseCpu {
    fn total(&self) -> Option<f64> {
        self.nats_secs.map(|n| n + self.bench_secs)
    }

    fn mean(a: Self, b: Self) -> Self {
        Self {
            bench_secs: round3((a.bench_secs + b.bench_secs) / 2.0),
            nats_secs: a
                .nats_secs
                .zip(b.nats_secs)
                .map(|(a, b)| round3((a + b) / 2.0)),
        }
    }
}

/// async-nats alone on the whole stream: a durable from the first event, pulled in requests
/// of the projector's batch size and acked one by one, nothing else. The seconds until the
/// consumer reports nothing pending or unacked, and the CPU that took.
async fn raw_phase(
    js: &Context,
    durable: &str,
    config: &ProjectorConfig,
    events: usize,
    nats_pid: Option<u32>,
) -> anyhow::Result<(f64, PhaseCpu)> {
    let stream = js.get_stream(INVENTORY_STREAM).await?;
    let raw = stream
        .create_consumer(PullConfig {
            durable_name: Some(durable.to_owned()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            max_ack_pending: config.max_ack_pending,
            filter_subject: "inventory.sku.>".to_owned(),
            ..PullConfig::default()
        })
        .await?;
    let cpu = CpuMeter::start(nats_pid);
    let started = Instant::now();
    let mut messages = raw
        .stream()
        .max_messages_per_batch(config.max_batch)
        .messages()
        .await?;
    let mut seen = 0;
    while seen < events {
        let message = messages
            .next()
            .await
            .context("raw consumer ended")?
            .map_err(|e| anyhow::anyhow!("raw consumer: {e}"))?;
        message
            .ack()
            .await
            .map_err(|e| anyhow::anyhow!("ack: {e}"))?;
        seen += 1;
    }
    drop(messages);
    let done = wait_drained(js, durable, Duration::from_secs(120)).await?;
    let secs = (done - started).as_secs_f64();
    Ok((secs, cpu.stop()))
}

/// CPU of this process and of nats-server from here on.
#[derive(Debug)]
struct CpuMeter {
    nats_pid: Option<String>,
    bench: f64,
    nats: Option<f64>,
}

impl CpuMeter {
    fn start(nats_pid: Option<u32>) -> Self {
        let nats_pid = nats_pid.map(|p| p.to_string());
        Self {
            bench: cpu_secs("self").unwrap_or(0.0),
            nats: nats_pid.as_deref().and_then(cpu_secs),
            nats_pid,
        }
    }

    fn stop(&self) -> PhaseCpu {
        PhaseCpu {
            bench_secs: round3(cpu_secs("self").unwrap_or(0.0) - self.bench),
            nats_secs: self
                .nats
                .zip(self.nats_pid.as_deref().and_then(cpu_secs))
                .map(|(before, after)| round3(after - before)),
        }
    }
}

/// How events spread over SKUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Spread {
    /// Round-robin: every SKU once before any twice (no SKU repeats within a batch: the
    /// projector can coalesce nothing, every event costs a channel item and a watermark).
    RoundRobin,
    /// Zipf (s = 1) over the SKUs: a few best sellers take most events, as in a shop.
    Zipf,
}

/// Which SKU each event is for.
fn spread(events: usize, skus: usize, spread: Spread) -> Vec<usize> {
    match spread {
        Spread::RoundRobin => (0..events).map(|i| i % skus).collect(),
        Spread::Zipf => {
            use rand::{Rng as _, SeedableRng as _};
            let mut cumulative = Vec::with_capacity(skus);
            let mut total = 0.0;
            for k in 1..=skus {
                total += 1.0 / k as f64;
                cumulative.push(total);
            }
            let mut rng = rand::rngs::StdRng::seed_from_u64(42);
            (0..events)
                .map(|_| {
                    let x = rng.random::<f64>() * total;
                    cumulative.partition_point(|c| *c < x).min(skus - 1)
                })
                .collect()
        }
    }
}

pub async fn throughput(
    js: &Context,
    events: usize,
    skus: usize,
    how: Spread,
    channel: Sandboxed,
    nats_pid: Option<u32>,
) -> anyhow::Result<ThroughputReport> {
    let names: Vec<String> = (0..skus).map(|i| format!("tp-{i:06}")).collect();
    let mut versions = vec![0i64; skus];
    let all: Vec<InventoryEvent> = spread(events, skus, how)
        .into_iter()
        .map(|i| {
            versions[i] += 1;
            event(&names[i], versions[i], versions[i] * 2)
        })
        .collect();
    let distinct = versions.iter().filter(|v| **v > 0).count();
    // The settings a deployed projector takes from ONHAND_PROJECTOR__* (defaults unless set).
    let config = ProjectorConfig {
        listen_addr: "127.0.0.1:0".parse().expect("addr"),
        ..ProjectorConfig::from_env()?
    };
    publish_all(js, &all).await?;

    // (a) async-nats alone, before the projector and again after it: the host's speed
    // drifts by tens of percent within seconds here, and the mean of a phase on each side
    // cancels a steady drift that a single phase before would charge to the projector.
    let before = raw_phase(js, "bench-raw", &config, events, nats_pid).await?;
    // (b) one projector, the same events, an unthrottled sandbox.
    let sandbox = Sandbox::start().await?;
    sandbox.seed(channel, &names);
    let settings = settings(channel, &sandbox.base, false)?;
    // Every event, not only each SKU's newest: the consumer starts at the stream's first.
    ops::rebuild(js, &settings.name, &config, RebuildFrom::Sequence(1)).await?;
    let projector = ops::projector(js, &settings, config.clone()).await?;
    let marks_before = watermark_sequence(js).await?;
    let shutdown = CancellationToken::new();
    let cpu = CpuMeter::start(nats_pid);
    let started = Instant::now();
    let task = tokio::spawn(projector.run(shutdown.clone()));
    let done = wait_drained(
        js,
        &consumer::name(&settings.name),
        Duration::from_secs(300),
    )
    .await?;
    let projector_secs = (done - started).as_secs_f64();
    let projector_cpu = cpu.stop();
    shutdown.cancel();
    task.await.context("projector task")?;
    let after = raw_phase(js, "bench-raw-after", &config, events, nats_pid).await?;
    let raw_secs = (before.0 + after.0) / 2.0;
    let raw_cpu = PhaseCpu::mean(before.1, after.1);
    let watermark_writes = watermark_sequence(js).await? - marks_before;
    let (channel_requests, sku_writes) = {
        let state = sandbox.state.channel(channel);
        let wrong = names
            .iter()
            .zip(&versions)
            .filter(|(s, v)| {
                **v > 0
                    && state.items.get(*s).map(onhand_sandbox::state::Item::latest) != Some(**v * 2)
            })
            .count();
        if wrong > 0 {
            bail!("{wrong} skus did not reach their last value");
        }
        (state.requests, state.writes.len())
    };
    Ok(ThroughputReport {
        events,
        skus,
        spread: how,
        distinct_skus: distinct,
        channel: channel.as_str().to_owned(),
        raw_secs: round3(raw_secs),
        raw_events_per_sec: round3(events as f64 / raw_secs),
        raw_before_events_per_sec: round3(events as f64 / before.0),
        raw_after_events_per_sec: round3(events as f64 / after.0),
        projector_secs: round3(projector_secs),
        projector_events_per_sec: round3(events as f64 / projector_secs),
        ratio: round3(raw_secs / projector_secs),
        raw_cpu,
        projector_cpu,
        cpu_ratio: raw_cpu
            .total()
            .zip(projector_cpu.total())
            .map(|(raw, projector)| round3(raw / projector)),
        channel_requests,
        sku_writes,
        watermark_writes,
    })
}

/// The watermark bucket's last stream sequence: one per write.
async fn watermark_sequence(js: &Context) -> anyhow::Result<u64> {
    let mut stream = js
        .get_stream(format!("KV_{}", onhand_streams::names::WATERMARKS_BUCKET))
        .await?;
    Ok(stream.info().await?.state.last_sequence)
}

#[derive(Debug, Serialize)]
pub struct BurstReport {
    pub events: usize,
    pub skus: usize,
    pub publish_secs: f64,
    /// From the first publish until every SKU showed its last value.
    pub converge_secs: f64,
    pub channel_calls: u64,
    pub calls_per_event: f64,
    pub sku_writes: usize,
    pub throttled: u64,
}

pub async fn burst(js: &Context, events: usize, skus: usize) -> anyhow::Result<BurstReport> {
    let names: Vec<String> = (0..skus).map(|i| format!("burst-{i:05}")).collect();
    let sandbox = Sandbox::start().await?;
    sandbox.seed(Sandboxed::Shopify, &names);
    let documented = onhand_channels::shopify::STANDARD_LIMIT;
    sandbox.state.channel(Sandboxed::Shopify).set_knobs(Knobs {
        rate: Some(RateKnob {
            capacity: documented.capacity,
            refill_per_sec: documented.refill_per_sec,
        }),
        ..Knobs::default()
    });
    let settings = settings(Sandboxed::Shopify, &sandbox.base, true)?;
    let config = ProjectorConfig {
        listen_addr: "127.0.0.1:0".parse().expect("addr"),
        ..ProjectorConfig::default()
    };
    let projector = ops::projector(js, &settings, config.clone()).await?;
    let ready = projector.ready_flag();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(projector.run(shutdown.clone()));
    let until = Instant::now() + Duration::from_secs(10);
    while !ready.load(std::sync::atomic::Ordering::Relaxed) {
        if Instant::now() > until {
            bail!("the projector did not bind its consumer");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let requests_before = shopify_requests(&sandbox);
    let versions = events.div_ceil(skus) as i64;
    // Published in 20 slices over one second.
    let started = Instant::now();
    let slice = (versions as usize).div_ceil(20).max(1);
    let mut version = 1;
    for n in 0.. {
        let mut batch = Vec::new();
        for _ in 0..slice {
            if version > versions {
                break;
            }
            for sku in &names {
                batch.push(event(sku, version, version));
            }
            version += 1;
        }
        if batch.is_empty() {
            break;
        }
        publish_all(js, &batch).await?;
        let next = started + Duration::from_millis(50 * (n + 1));
        tokio::time::sleep_until(next.into()).await;
    }
    let publish_secs = started.elapsed().as_secs_f64();
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let done = {
            let state = sandbox.state.channel(Sandboxed::Shopify);
            names.iter().all(|s| {
                state.items.get(s).map(onhand_sandbox::state::Item::latest) == Some(versions)
            })
        };
        if done {
            break;
        }
        if Instant::now() > until {
            bail!("the burst did not converge in 120 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let converge_secs = started.elapsed().as_secs_f64();
    shutdown.cancel();
    task.await.context("projector task")?;
    let channel_calls = shopify_requests(&sandbox) - requests_before;
    let state = sandbox.state.channel(Sandboxed::Shopify);
    Ok(BurstReport {
        events: names.len() * versions as usize,
        skus,
        publish_secs: round3(publish_secs),
        converge_secs: round3(converge_secs),
        channel_calls,
        calls_per_event: round3(channel_calls as f64 / (names.len() * versions as usize) as f64),
        sku_writes: state.writes.len(),
        throttled: state.throttled,
    })
}

/// Requests the sandbox's Shopify bucket has charged (reads and writes).
fn shopify_requests(sandbox: &Sandbox) -> u64 {
    sandbox.state.channel(Sandboxed::Shopify).requests
}

#[derive(Debug, Serialize)]
pub struct PropagationReport {
    pub rate: f64,
    pub duration_secs: f64,
    pub events: usize,
    pub writes: usize,
    /// Event `occurred_at` → first sandbox write carrying it or a newer version, ms.
    pub latency_ms: Latency,
    /// Events whose value never reached the channel (must be 0).
    pub unapplied: usize,
    pub projector_rss_mib: Option<RssReport>,
}

#[derive(Debug, Serialize)]
pub struct RssReport {
    pub samples: usize,
    pub median: f64,
    pub max: f64,
}

/// Resident memory of `pid` in MiB, from /proc.
fn rss_mib(pid: u32) -> Option<f64> {
    status_kib(pid, "VmRSS").map(|kib| kib as f64 / 1024.0)
}

#[derive(Debug, Clone)]
pub struct PropagationArgs {
    pub ledger_url: String,
    pub sandbox_url: String,
    pub token: String,
    pub wms_token: String,
    pub rate: f64,
    pub duration: Duration,
    pub skus: usize,
    pub projector_pid: Option<u32>,
    /// Where to write every latency sample (the oversell simulator's delay distribution).
    pub samples_out: Option<std::path::PathBuf>,
}

pub async fn propagation(
    js: &Context,
    args: &PropagationArgs,
) -> anyhow::Result<PropagationReport> {
    let ledger = crate::client::Ledger::new(&args.ledger_url, 64)?;
    let http = reqwest::Client::new();
    let names: Vec<String> = (0..args.skus).map(|i| format!("prop-{i:05}")).collect();
    let body: Vec<serde_json::Value> = names
        .iter()
        .map(|s| serde_json::json!({"sku": s, "quantity": 0}))
        .collect();
    let status = http
        .post(format!("{}/admin/webhook/items", args.sandbox_url))
        .json(&body)
        .send()
        .await?
        .status();
    if !status.is_success() {
        bail!("seeding the sandbox: {status}");
    }
    let stock = 1_000_000;
    for sku in &names {
        let outcome = ledger.receive(&args.wms_token, sku, WAREHOUSE, stock).await;
        if outcome != crate::client::Outcome::Status(200) {
            bail!("seeding stock for {sku}: {}", outcome.label());
        }
    }
    // Wait until the projector has applied the seed: every SKU listed at full stock.
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let items: serde_json::Value = http
            .get(format!("{}/admin/webhook/items", args.sandbox_url))
            .send()
            .await?
            .json()
            .await?;
        let ready = items["items"].as_array().is_some_and(|items| {
            items
                .iter()
                .filter(|i| i["quantity"].as_i64() == Some(stock))
                .count()
                >= names.len()
        });
        if ready {
            break;
        }
        if Instant::now() > until {
            bail!("the projector did not apply the seed stock within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_seq = js
        .get_stream(INVENTORY_STREAM)
        .await?
        .info()
        .await?
        .state
        .last_sequence
        + 1;
    let writes_before = sandbox_writes(&http, &args.sandbox_url, 0).await?.len();

    // Open loop: one reservation due every 1/rate s.
    let mut rss = Vec::new();
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let mut next = started;
    let mut n = 0usize;
    let mut tasks = tokio::task::JoinSet::new();
    let mut last_rss = Instant::now();
    while started.elapsed() < args.duration {
        tokio::time::sleep_until(next.into()).await;
        next += interval;
        let sku = names[n % names.len()].clone();
        n += 1;
        let ledger = ledger.clone();
        let token = args.token.clone();
        tasks.spawn(async move { ledger.reserve(&token, &sku).await });
        if last_rss.elapsed() >= Duration::from_secs(1) {
            last_rss = Instant::now();
            if let Some(mib) = args.projector_pid.and_then(rss_mib) {
                rss.push(mib);
            }
        }
        while let Some(done) = tasks.try_join_next() {
            done.context("reservation task")?;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.context("reservation task")?;
    }
    let duration_secs = started.elapsed().as_secs_f64();

    // Every event of the run, from the stream, once the ledger's relay has published them
    // all (the stream's last sequence holds still for a second).
    let mut stream = js.get_stream(INVENTORY_STREAM).await?;
    let mut last_seq = stream.info().await?.state.last_sequence;
    let mut still_since = Instant::now();
    while still_since.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = stream.info().await?.state.last_sequence;
        if now != last_seq {
            last_seq = now;
            still_since = Instant::now();
        }
    }
    let events = read_events(js, first_seq, last_seq).await?;
    // Wait until the channel holds every SKU's newest value.
    let newest: HashMap<&str, i64> = events
        .iter()
        .map(|e| (e.sku.as_str(), available(e)))
        .collect();
    let until = Instant::now() + Duration::from_secs(60);
    let writes = loop {
        let writes = sandbox_writes(&http, &args.sandbox_url, 0).await?;
        let mut shown: HashMap<&str, i64> = HashMap::new();
        for w in &writes {
            shown.insert(&w.sku, w.quantity);
        }
        if newest.iter().all(|(s, q)| shown.get(s) == Some(q)) {
            break writes;
        }
        if Instant::now() > until {
            bail!("the channel did not catch up within 60 s of the run's end");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let writes = &writes[writes_before..];
    // Per SKU: the write times of each value; available only goes down in this run, so a
    // write of value q carries every event whose available is >= q.
    let mut by_sku: HashMap<&str, Vec<(i64, time::OffsetDateTime)>> = HashMap::new();
    for w in writes {
        by_sku
            .entry(&w.sku)
            .or_default()
            .push((w.quantity, w.received_at));
    }
    let mut latencies = Vec::with_capacity(events.len());
    let mut unapplied = 0;
    for e in &events {
        let q = available(e);
        let first = by_sku
            .get(e.sku.as_str())
            .and_then(|ws| ws.iter().find(|(wq, _)| *wq <= q).map(|(_, at)| *at));
        match first {
            Some(at) => {
                latencies.push(Duration::try_from(at - e.occurred_at).unwrap_or(Duration::ZERO))
            }
            None => unapplied += 1,
        }
    }
    rss.sort_by(f64::total_cmp);
    if let Some(path) = &args.samples_out {
        write_samples(path, args.rate, duration_secs, &latencies)?;
    }
    Ok(PropagationReport {
        rate: args.rate,
        duration_secs: round3(duration_secs),
        events: events.len(),
        writes: writes.len(),
        latency_ms: Latency::of(latencies),
        unapplied,
        projector_rss_mib: (!rss.is_empty()).then(|| RssReport {
            samples: rss.len(),
            median: round3(rss[rss.len() / 2]),
            max: round3(rss[rss.len() - 1]),
        }),
    })
}

/// The propagation samples as `{"rate_per_s", "duration_secs", "events", "samples_ms"}`,
/// sorted, in ms: the file `onhand simulate oversell` loads as its event-driven delays.
fn write_samples(
    path: &std::path::Path,
    rate: f64,
    duration_secs: f64,
    latencies: &[Duration],
) -> anyhow::Result<()> {
    let mut samples: Vec<f64> = latencies
        .iter()
        .map(|d| round3(d.as_secs_f64() * 1000.0))
        .collect();
    samples.sort_by(f64::total_cmp);
    let doc = serde_json::json!({
        "what": "projector propagation: ledger commit (event occurred_at) to the first sandbox write of its value, per event",
        "command": "scripts/bench projector",
        "rate_per_s": rate,
        "duration_secs": round3(duration_secs),
        "events": samples.len(),
        "samples_ms": samples,
    });
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_vec(&doc)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn available(e: &InventoryEvent) -> i64 {
    e.stock.available_total()
}

#[derive(Debug, serde::Deserialize)]
struct Write {
    sku: String,
    quantity: i64,
    #[serde(with = "time::serde::rfc3339")]
    received_at: time::OffsetDateTime,
}

async fn sandbox_writes(
    http: &reqwest::Client,
    base: &str,
    after: u64,
) -> anyhow::Result<Vec<Write>> {
    #[derive(serde::Deserialize)]
    struct Writes {
        writes: Vec<Write>,
    }
    let writes: Writes = http
        .get(format!("{base}/admin/webhook/writes?after={after}"))
        .send()
        .await?
        .json()
        .await
        .context("the sandbox's write log")?;
    Ok(writes.writes)
}

/// Events with stream sequence in `first..=last`, in order.
async fn read_events(js: &Context, first: u64, last: u64) -> anyhow::Result<Vec<InventoryEvent>> {
    if last < first {
        return Ok(Vec::new());
    }
    let stream = js.get_stream(INVENTORY_STREAM).await?;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: first,
            },
            filter_subject: "inventory.sku.>".to_owned(),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut out = Vec::new();
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| anyhow::anyhow!("reading events: {e}"))?;
        let seq = message
            .info()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .stream_sequence;
        out.push(decode_event(&message.payload).context("an event in the stream")?);
        if seq >= last {
            break;
        }
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
pub struct DecodeReport {
    pub events: usize,
    /// Mean payload size.
    pub payload_bytes: usize,
    pub rounds: usize,
    /// Per event, the median over the rounds: `decode_event` as the projector calls it
    /// (the one-pass reader, serde_json behind it), and serde_json alone plus the same
    /// validation (what `decode_event` did before the reader).
    pub decode_event_ns: f64,
    pub serde_json_ns: f64,
    /// serde_json ÷ decode_event.
    pub speedup: f64,
}

/// Decode the throughput run's payloads (a different SKU each, as in round-robin) with
/// `decode_event` and with serde_json alone, in alternating rounds in this process; both
/// must agree on every event.
pub fn decode(events: usize) -> anyhow::Result<DecodeReport> {
    const ROUNDS: usize = 7;
    anyhow::ensure!(events > 0, "--events must be at least 1");
    let payloads: Vec<Vec<u8>> = (0..events)
        .map(|i| {
            let version = i as i64 + 1;
            event(&format!("tp-{:06}", i % 10_000), version, version * 2).to_json()
        })
        .collect();
    for p in &payloads {
        let fast = decode_event(p).context("decode_event refused a payload")?;
        let slow: InventoryEvent = serde_json::from_slice(p).context("serde_json refused")?;
        slow.validate().context("a payload does not validate")?;
        anyhow::ensure!(fast == slow, "the decoders disagree on {p:?}");
    }
    let per_event = |f: &dyn Fn(&[u8]) -> i64| {
        let started = Instant::now();
        let mut sum = 0i64;
        for p in &payloads {
            sum = sum.wrapping_add(f(std::hint::black_box(p)));
        }
        std::hint::black_box(sum);
        started.elapsed().as_nanos() as f64 / events as f64
    };
    let (mut fast, mut slow) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        fast.push(per_event(&|p| {
            decode_event(p).map_or(0, |e| e.stock.version)
        }));
        slow.push(per_event(&|p| {
            serde_json::from_slice::<InventoryEvent>(p)
                .ok()
                .filter(|e| e.validate().is_ok())
                .map_or(0, |e| e.stock.version)
        }));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (fast, slow) = (median(&mut fast), median(&mut slow));
    Ok(DecodeReport {
        events,
        payload_bytes: payloads.iter().map(Vec::len).sum::<usize>() / events,
        rounds: ROUNDS,
        decode_event_ns: round3(fast),
        serde_json_ns: round3(slow),
        speedup: round3(slow / fast),
    })
}
