//! What the harness reads from the system: Prometheus text from /metrics (sampled in the
//! background by [`Monitor`]), JetStream stream and consumer state, the outbox, each
//! channel's listing against the ledger's `explain`, the DLQ and `onhand reconcile`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::world::{READ_TOKEN, World};

pub const LAG_METRIC: &str = "onhand_projector_event_lag_seconds";

/// The sum of the samples of `name` (with `label="value"` when given) in Prometheus text;
/// `None` when there is no such sample.
pub fn metric(text: &str, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (base, labels) = match series.split_once('{') {
            Some((base, labels)) => (base, labels),
            None => (series, ""),
        };
        if base != name {
            continue;
        }
        if let Some((k, v)) = label
            && !labels.contains(&format!("{k}=\"{v}\""))
        {
            continue;
        }
        if let Ok(v) = value.parse::<f64>() {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

pub async fn scrape(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let response = http.get(format!("{base}/metrics")).send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{base}/metrics: {}",
        response.status()
    );
    Ok(response.text().await?)
}

/// One lag sample of one channel.
#[derive(Debug, Clone)]
pub struct LagSample {
    pub at: Instant,
    pub channel: String,
    pub lag: f64,
}

#[derive(Debug, Default)]
pub struct Samples {
    /// The newest lag per channel.
    pub lag: BTreeMap<String, f64>,
    /// The newest outbox backlog.
    pub backlog: Option<f64>,
    pub timeline: Vec<LagSample>,
}

impl Samples {
    /// The highest lag of `channel` sampled since `since`.
    pub fn max_lag_since(&self, channel: &str, since: Instant) -> f64 {
        self.timeline
            .iter()
            .filter(|s| s.at >= since && s.channel == channel)
            .map(|s| s.lag)
            .fold(0.0, f64::max)
    }
}

/// Scrapes every projector's lag and the ledger's outbox backlog twice a second.
#[derive(Debug)]
pub struct Monitor {
    pub samples: Arc<Mutex<Samples>>,
    origin: Instant,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Monitor {
    pub fn start(world: &World) -> Monitor {
        let samples = Arc::new(Mutex::new(Samples::default()));
        let stop = CancellationToken::new();
        let http = world.http.clone();
        let ledger = world.ledger_url.clone();
        let projectors: Vec<(String, String)> = world
            .projectors
            .iter()
            .map(|p| (p.channel.as_str().to_owned(), p.url.clone()))
            .collect();
        let task = tokio::spawn({
            let samples = samples.clone();
            let stop = stop.clone();
            async move {
                let mut tick = tokio::time::interval(Duration::from_millis(500));
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        _ = tick.tick() => {}
                    }
                    for (channel, url) in &projectors {
                        if let Ok(text) = scrape(&http, url).await
                            && let Some(lag) = metric(&text, LAG_METRIC, Some(("channel", channel)))
                        {
                            let mut s = samples.lock().await;
                            s.lag.insert(channel.clone(), lag);
                            s.timeline.push(LagSample {
                                at: Instant::now(),
                                channel: channel.clone(),
                                lag,
                            });
                        }
                    }
                    let backlog = scrape(&http, &ledger)
                        .await
                        .ok()
                        .and_then(|t| metric(&t, "onhand_outbox_backlog", None));
                    samples.lock().await.backlog = backlog;
                }
            }
        });
        Monitor {
            samples,
            origin: Instant::now(),
            stop,
            task,
        }
    }

    /// Every lag sample as CSV (`seconds,channel,lag_seconds`), for a look after the run.
    pub async fn write_timeline(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let samples = self.samples.lock().await;
        let mut csv = String::from("seconds,channel,lag_seconds\n");
        for s in &samples.timeline {
            let at = s.at.saturating_duration_since(self.origin).as_secs_f64();
            csv.push_str(&format!("{at:.1},{},{:.2}\n", s.channel, s.lag));
        }
        std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))
    }

    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(err) = self.task.await {
            say!("the monitor task failed: {err}");
        }
    }
}

/// JetStream: the INVENTORY stream and the projectors' consumers.
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    pub messages: u64,
    pub last_seq: u64,
    pub leader: Option<String>,
    pub replicas: usize,
    pub consumers: BTreeMap<String, ConsumerStats>,
}

#[derive(Debug, Clone, Default)]
pub struct ConsumerStats {
    /// Seconds since the oldest event not yet acknowledged was published; 0 when none.
    pub oldest_unacked_secs: f64,
    /// Deliveries, first ones and redeliveries (the consumer sequence).
    pub deliveries: u64,
    /// The stream sequence of the last message delivered.
    pub delivered_stream_seq: u64,
    pub ack_floor_stream_seq: u64,
    pub pending: u64,
    pub ack_pending: usize,
    pub replicas: usize,
}

pub async fn jetstream(urls: &str) -> anyhow::Result<async_nats::jetstream::Context> {
    let servers: Vec<&str> = urls.split(',').collect();
    let client = async_nats::ConnectOptions::new()
        .name("onhand-chaos")
        .connect(servers)
        .await
        .with_context(|| format!("connecting to {urls}"))?;
    Ok(async_nats::jetstream::new(client))
}

pub async fn stream_stats(
    js: &async_nats::jetstream::Context,
    channels: &[&str],
) -> anyhow::Result<StreamStats> {
    let mut stream = js
        .get_stream("INVENTORY")
        .await
        .map_err(|e| anyhow::anyhow!("INVENTORY stream: {e}"))?;
    let info = stream
        .info()
        .await
        .map_err(|e| anyhow::anyhow!("INVENTORY stream info: {e}"))?;
    let mut stats = StreamStats {
        messages: info.state.messages,
        last_seq: info.state.last_sequence,
        leader: info.cluster.as_ref().and_then(|c| c.leader.clone()),
        // The leader and its followers, as the cluster reports them.
        replicas: info.cluster.as_ref().map_or(1, |c| c.replicas.len() + 1),
        consumers: BTreeMap::new(),
    };
    for channel in channels {
        let name = format!("projector-{channel}");
        let c = stream
            .consumer_info(&name)
            .await
            .map_err(|e| anyhow::anyhow!("consumer {name}: {e}"))?;
        // The age of the oldest event not yet acknowledged, as the projector computes its
        // lag metric, read fresh here (the projector's gauge keeps its last value while
        // it cannot sample).
        let oldest_unacked_secs = if c.num_pending + c.num_ack_pending as u64 == 0 {
            0.0
        } else {
            let oldest = stream
                .direct_get_next_for_subject(
                    "inventory.sku.>",
                    Some(c.ack_floor.stream_sequence + 1),
                )
                .await
                .map_err(|e| anyhow::anyhow!("the oldest unacknowledged event of {name}: {e}"))?;
            (time::OffsetDateTime::now_utc() - oldest.time)
                .as_seconds_f64()
                .max(0.0)
        };
        stats.consumers.insert(
            (*channel).to_owned(),
            ConsumerStats {
                oldest_unacked_secs,
                deliveries: c.delivered.consumer_sequence,
                delivered_stream_seq: c.delivered.stream_sequence,
                ack_floor_stream_seq: c.ack_floor.stream_sequence,
                pending: c.num_pending,
                ack_pending: c.num_ack_pending,
                replicas: c.cluster.as_ref().map_or(1, |c| c.replicas.len() + 1),
            },
        );
    }
    Ok(stats)
}

/// How long one query of the harness's own may take (connecting included).
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

async fn connect(database_url: &str) -> anyhow::Result<sqlx::PgConnection> {
    use sqlx::Connection as _;
    match tokio::time::timeout(QUERY_TIMEOUT, sqlx::PgConnection::connect(database_url)).await {
        Ok(conn) => Ok(conn?),
        Err(_) => bail!(
            "connecting to Postgres took over {}s",
            QUERY_TIMEOUT.as_secs()
        ),
    }
}

/// (rows, rows not yet published) in the ledger's outbox: every event it produced.
pub async fn outbox(database_url: &str) -> anyhow::Result<(i64, i64)> {
    use sqlx::Connection as _;
    let mut conn = connect(database_url).await?;
    let counts: (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM outbox")
            .fetch_one(&mut conn)
            .await?;
    conn.close().await?;
    Ok(counts)
}

/// Reservations still active (carts not yet expired, released or ordered).
pub async fn active_reservations(database_url: &str) -> anyhow::Result<i64> {
    use sqlx::Connection as _;
    let mut conn = connect(database_url).await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM reservations WHERE state = 'active'")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(n)
}

/// The newest outbox row of `subject`: its id.
pub async fn newest_row(database_url: &str, subject: &str) -> anyhow::Result<Option<i64>> {
    use sqlx::Connection as _;
    let mut conn = connect(database_url).await?;
    let id: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM outbox WHERE subject = $1")
        .bind(subject)
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(id)
}

/// The stream sequence of outbox row `id`, once the relay has published it.
pub async fn published_seq(database_url: &str, id: i64) -> anyhow::Result<Option<i64>> {
    use sqlx::Connection as _;
    let mut conn = connect(database_url).await?;
    let seq: Option<i64> = sqlx::query_scalar(
        "SELECT stream_seq FROM outbox WHERE id = $1 AND published_at IS NOT NULL",
    )
    .bind(id)
    .fetch_optional(&mut conn)
    .await?
    .flatten();
    conn.close().await?;
    Ok(seq)
}

#[derive(Debug, Deserialize)]
struct Listing {
    items: Vec<ListedItem>,
}

#[derive(Debug, Deserialize)]
struct ListedItem {
    sku: String,
    latest: i64,
}

#[derive(Debug, Deserialize)]
struct Explained {
    version: i64,
    quantity: i64,
}

/// Every channel against the ledger: `Ok(n)` with the number of (channel, SKU) pairs
/// compared when each channel lists exactly what the ledger's `explain` computes for its
/// policy; `Err` naming the first differences otherwise.
pub async fn compare_channels(world: &World) -> anyhow::Result<usize> {
    let mut differences = Vec::new();
    let mut compared = 0;
    for p in &world.projectors {
        let channel = p.channel.as_str();
        let listing: Listing = world
            .http
            .get(format!("{}/admin/{channel}/items", world.sandbox_url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let listed: BTreeMap<String, i64> = listing
            .items
            .into_iter()
            .map(|i| (i.sku, i.latest))
            .collect();
        let explained: Vec<anyhow::Result<(String, Explained)>> =
            futures::stream::iter(world.skus.iter())
                .map(|sku| async move {
                    let e: Explained = world
                        .http
                        .get(format!(
                            "{}/v1/stock/{sku}/explain?channel={channel}",
                            world.ledger_url
                        ))
                        .bearer_auth(READ_TOKEN)
                        .send()
                        .await?
                        .error_for_status()?
                        .json()
                        .await?;
                    Ok((sku.clone(), e))
                })
                .buffer_unordered(8)
                .collect()
                .await;
        for result in explained {
            let (sku, e) = result?;
            compared += 1;
            match listed.get(&sku) {
                Some(&q) if q == e.quantity => {}
                got => differences.push(format!(
                    "{channel} lists {} for {sku}, the ledger's policy says {} (version {})",
                    got.map_or("nothing".to_owned(), i64::to_string),
                    e.quantity,
                    e.version
                )),
            }
        }
    }
    if differences.is_empty() {
        Ok(compared)
    } else {
        let n = differences.len();
        differences.truncate(5);
        bail!("{n} differences, e.g.\n  {}", differences.join("\n  "))
    }
}

/// Dead letters of `channel`, from `onhand dlq list --json`.
pub async fn dead_letters(world: &World, channel: &str) -> anyhow::Result<usize> {
    let mut command = world.onhand();
    command.args(["dlq", "list", "--json", "--channel", channel]);
    let out =
        crate::procs::output(command, crate::procs::COMMAND_TIMEOUT, "onhand dlq list").await?;
    if !out.status.success() {
        bail!(
            "onhand dlq list --channel {channel} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let letters: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).context("parsing onhand dlq list --json")?;
    Ok(letters.len())
}

/// One channel's result from `onhand reconcile`.
#[derive(Debug, Clone, Deserialize)]
pub struct Reconciled {
    pub channel: String,
    pub counts: ReconcileCounts,
    /// The worst SKUs, as the report lists them (verdict, why, quantities).
    pub rows: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReconcileCounts {
    pub compared: u64,
    #[serde(rename = "match")]
    pub matched: u64,
    pub in_flight: u64,
    pub drift: u64,
    pub missing: u64,
}

#[derive(Debug, Clone)]
pub struct ReconcileRun {
    pub exit_code: i32,
    pub seconds: f64,
    pub channels: Vec<Reconciled>,
}

#[derive(Debug, Deserialize)]
struct ReconcileReport {
    channels: Vec<Reconciled>,
}

/// `onhand reconcile --all` while a part it needs is down: its exit code (`None` when it
/// had not finished after `timeout`: killed), the seconds it took and its last error line.
pub async fn reconcile_while_down(
    world: &World,
    timeout: Duration,
) -> anyhow::Result<(Option<i32>, f64, String)> {
    let started = Instant::now();
    let mut command = world.onhand();
    command.args(["reconcile", "--all"]).kill_on_drop(true);
    match tokio::time::timeout(timeout, command.output()).await {
        Ok(out) => {
            let out = out.context("running onhand reconcile")?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .to_owned();
            Ok((out.status.code(), started.elapsed().as_secs_f64(), last))
        }
        Err(_) => Ok((
            None,
            started.elapsed().as_secs_f64(),
            "still running".to_owned(),
        )),
    }
}

/// `onhand reconcile --all` (with `--settle-secs` when given, else each channel kind's
/// default window): its exit code and per-channel counts. The JSON report is kept in the
/// run directory as `reconcile-<label>.json`.
pub async fn reconcile(
    world: &World,
    settle_secs: Option<u64>,
    label: &str,
) -> anyhow::Result<ReconcileRun> {
    let report = world.dir.join(format!("reconcile-{label}.json"));
    let started = Instant::now();
    let mut command = world.onhand();
    command
        .args(["reconcile", "--all", "--report"])
        .arg(&report);
    if let Some(secs) = settle_secs {
        command.args(["--settle-secs", &secs.to_string()]);
    }
    let out =
        crate::procs::output(command, crate::procs::COMMAND_TIMEOUT, "onhand reconcile").await?;
    let seconds = started.elapsed().as_secs_f64();
    let exit_code = out.status.code().unwrap_or(-1);
    let parsed: ReconcileReport =
        serde_json::from_slice(&std::fs::read(&report).with_context(|| {
            format!(
                "onhand reconcile wrote no report (exit {exit_code}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?)
        .context("parsing the reconcile report")?;
    let run = ReconcileRun {
        exit_code,
        seconds,
        channels: parsed.channels,
    };
    for c in &run.channels {
        for row in c.rows.iter().filter(|r| r["verdict"] == "drift") {
            say!(
                "  drift reported ({}): {}: {row}",
                report.display(),
                c.channel
            );
            if let Some(sku) = row["sku"].as_str() {
                save_drift_evidence(world, &c.channel, sku, label).await;
            }
        }
    }
    Ok(run)
}

/// For a SKU the reconciler calls drifted: the channel's accepted writes of it, what the
/// ledger's explain says now, and the projector's log lines about it, in
/// `drift-<label>-<channel>-<sku>.txt` (best effort: this is for a human afterwards).
async fn save_drift_evidence(world: &World, channel: &str, sku: &str, label: &str) {
    let mut text = String::new();
    let writes = world
        .http
        .get(format!("{}/admin/{channel}/writes", world.sandbox_url))
        .send()
        .await;
    if let Ok(r) = writes
        && let Ok(v) = r.json::<serde_json::Value>().await
        && let Some(all) = v["writes"].as_array()
    {
        text.push_str("sandbox writes:\n");
        for w in all.iter().filter(|w| w["sku"] == sku) {
            text.push_str(&format!("  {w}\n"));
        }
    }
    let explain = world
        .http
        .get(format!(
            "{}/v1/stock/{sku}/explain?channel={channel}",
            world.ledger_url
        ))
        .bearer_auth(READ_TOKEN)
        .send()
        .await;
    if let Ok(r) = explain
        && let Ok(body) = r.text().await
    {
        text.push_str(&format!("ledger explain now:\n  {body}\n"));
    }
    let log = world.dir.join(format!("projector-{channel}.log"));
    let quoted = format!("\"{sku}\"");
    text.push_str("projector log lines:\n");
    for line in std::fs::read_to_string(&log).unwrap_or_default().lines() {
        if line.contains(&quoted) {
            text.push_str(line);
            text.push('\n');
        }
    }
    let path = world.dir.join(format!("drift-{label}-{channel}-{sku}.txt"));
    if let Err(err) = std::fs::write(&path, text) {
        say!("  could not write {}: {err}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP onhand_projector_event_lag_seconds lag\n\
        # TYPE onhand_projector_event_lag_seconds gauge\n\
        onhand_projector_event_lag_seconds{channel=\"shopify\"} 61.5\n\
        onhand_projector_event_lag_seconds{channel=\"woocommerce\"} 0\n\
        onhand_projector_events_total{channel=\"shopify\",outcome=\"retried\"} 7\n\
        onhand_projector_events_total{channel=\"shopify\",outcome=\"applied\"} 100\n\
        onhand_outbox_backlog 3\n";

    #[test]
    fn metric_picks_the_sample_with_the_label() {
        assert_eq!(
            metric(TEXT, LAG_METRIC, Some(("channel", "shopify"))),
            Some(61.5)
        );
        assert_eq!(
            metric(TEXT, LAG_METRIC, Some(("channel", "woocommerce"))),
            Some(0.0)
        );
        assert_eq!(metric(TEXT, LAG_METRIC, Some(("channel", "ebay"))), None);
    }

    #[test]
    fn metric_sums_every_matching_series() {
        assert_eq!(
            metric(TEXT, "onhand_projector_events_total", None),
            Some(107.0)
        );
        assert_eq!(
            metric(
                TEXT,
                "onhand_projector_events_total",
                Some(("outcome", "retried"))
            ),
            Some(7.0)
        );
        assert_eq!(metric(TEXT, "onhand_outbox_backlog", None), Some(3.0));
        // A name that is a prefix of another is not that other.
        assert_eq!(metric(TEXT, "onhand_outbox", None), None);
    }
}
