//! `onhand-bench reconcile`: time, peak memory and read-back calls of `onhand reconcile`
//! over N SKUs against each sandbox channel with limits off (issue 5).
//!
//! The ledger's tables are filled straight from SQL (N SKUs over two warehouses, versions
//! 1–5), the in-process sandbox's catalogues with each SKU's expected quantity (default
//! policy), except a known set: 1 SKU in 2,000 drifted (watermark at the ledger's version,
//! pushed an hour ago), 1 in 2,000 in flight (watermark one version behind), 1 in 10,000
//! missing from the channel, and 10 channel-only SKUs (unknown). Watermarks exist only for
//! the drifted and in-flight SKUs: the reconciler reads watermarks only for SKUs that do
//! not match, so the others' would cost nothing. Then `onhand reconcile --channel <kind>`
//! runs as its own process, as a CronJob would; its peak resident memory is `VmHWM`
//! polled from /proc until it exits, its read-back calls the sandbox's request counter, and
//! its report must find exactly the known set.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use onhand_channels::ChannelKind;
use onhand_common::policy::{ChannelPolicy, channel_quantity};
use onhand_common::{Sku, StockState, WarehouseStock};
use onhand_projector::watermark::{Watermark, Watermarks};
use onhand_sandbox::{Channel as Sandboxed, Knobs, Sandbox};
use onhand_streams::names::WATERMARKS_BUCKET;
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::procfs::{CLOCK_TICKS, cpu_ticks, status_kib};

const WAREHOUSES: [&str; 2] = ["wh1", "wh2"];
/// Channel-only SKUs, `unknown` on listing channels.
const UNKNOWN: usize = 10;

#[derive(Debug, Clone)]
pub struct Options {
    pub onhand_bin: PathBuf,
    pub database_url: String,
    pub nats_url: String,
    pub skus: usize,
    pub channels: Vec<ChannelKind>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub skus: usize,
    pub seed_secs: f64,
    pub channels: Vec<ChannelRun>,
}

#[derive(Debug, Serialize)]
pub struct ChannelRun {
    pub channel: ChannelKind,
    pub seconds: f64,
    pub skus_per_sec: f64,
    pub peak_rss_mib: f64,
    /// CPU time of the reconciler process (user + system).
    pub reconciler_cpu_secs: f64,
    /// CPU time of the sandbox's thread during the run: the emulators' cost, not the
    /// reconciler's (Amazon's search by SKU and WooCommerce's product listing scan the whole
    /// catalogue per call).
    pub sandbox_cpu_secs: Option<f64>,
    /// Requests the sandbox answered during the run (read-back calls, retries included).
    pub read_calls: u64,
    /// Pages the reconciler's report counts.
    pub read_pages: u64,
    pub exit_code: i32,
    pub counts: Value,
    /// The report found exactly the seeded drift, in-flight, missing and unknown sets.
    pub exact: bool,
    pub mismatch: Option<String>,
}

fn sku(i: usize) -> String {
    format!("RB-{i:07}")
}

/// Ledger state of SKU `i` (the same formula as the SQL seed).
fn state(i: usize) -> StockState {
    let i = i as i64;
    StockState {
        version: 1 + i % 5,
        warehouses: [
            (
                WAREHOUSES[0].to_owned(),
                WarehouseStock {
                    on_hand: i % 97,
                    reserved: i % 5,
                    pending: i % 3,
                },
            ),
            (
                WAREHOUSES[1].to_owned(),
                WarehouseStock {
                    on_hand: i % 13,
                    reserved: 0,
                    pending: 0,
                },
            ),
        ]
        .into(),
    }
}

fn drifted(i: usize) -> bool {
    i % 2000 == 500
}

fn in_flight(i: usize) -> bool {
    i % 2000 == 1500
}

fn missing(i: usize) -> bool {
    i % 10_000 == 9_999
}

/// What the report must count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expected {
    matched: u64,
    drift: u64,
    in_flight: u64,
    missing: u64,
}

fn expected(n: usize) -> Expected {
    let count = |f: fn(usize) -> bool| (0..n).filter(|i| f(*i)).count() as u64;
    let (drift, in_flight, missing) = (count(drifted), count(in_flight), count(missing));
    Expected {
        matched: n as u64 - drift - in_flight - missing,
        drift,
        in_flight,
        missing,
    }
}

pub async fn run(options: Options) -> anyhow::Result<Report> {
    let clock = Instant::now();
    seed_ledger(&options.database_url, options.skus).await?;
    progress(format_args!(
        "ledger: {} SKUs in {:.1} s",
        options.skus,
        clock.elapsed().as_secs_f64()
    ));
    let sandbox = SandboxThread::start()?;
    let client = async_nats::connect(&options.nats_url)
        .await
        .with_context(|| format!("connecting to {}", options.nats_url))?;
    let js = async_nats::jetstream::new(client);
    let kv = js
        .get_key_value(WATERMARKS_BUCKET)
        .await
        .context("the watermarks bucket (onhand streams apply)")?;
    let policy = ChannelPolicy::default();
    let mut runs = Vec::new();
    let mut seed_secs = clock.elapsed().as_secs_f64();
    for &kind in &options.channels {
        let channel = sandboxed(kind)?;
        let t0 = Instant::now();
        seed_channel(&sandbox.sandbox, channel, options.skus, &policy);
        seed_watermarks(&kv, kind.as_str(), options.skus, &policy).await?;
        seed_secs += t0.elapsed().as_secs_f64();
        progress(format_args!("{kind}: reconciling {} SKUs", options.skus));
        let run = reconcile(&options, &sandbox, channel, kind).await?;
        progress(format_args!(
            "{kind}: {:.2} s (reconciler CPU {:.2} s, sandbox {:.2} s), peak {:.1} MiB, {} calls, exact: {}",
            run.seconds,
            run.reconciler_cpu_secs,
            run.sandbox_cpu_secs.unwrap_or(f64::NAN),
            run.peak_rss_mib,
            run.read_calls,
            run.exact
        ));
        // Free the catalogue before the next channel's.
        sandbox.sandbox.channel(channel).items.clear();
        runs.push(run);
    }
    sandbox.stop()?;
    Ok(Report {
        skus: options.skus,
        seed_secs,
        channels: runs,
    })
}

#[allow(clippy::print_stderr)]
fn progress(what: std::fmt::Arguments<'_>) {
    eprintln!("onhand-bench reconcile: {what}");
}

fn sandboxed(kind: ChannelKind) -> anyhow::Result<Sandboxed> {
    Sandboxed::parse(kind.as_str()).ok_or_else(|| anyhow!("{kind} has no sandbox emulator"))
}

/// The ledger's tables, emptied and filled with N SKUs (formula of [`state`]).
async fn seed_ledger(url: &str, n: usize) -> anyhow::Result<()> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .with_context(|| "connecting to the benchmark database".to_owned())?;
    onhand_ledger::app::MIGRATOR
        .run(&pool)
        .await
        .context("ledger migrations")?;
    sqlx::raw_sql(
        "TRUNCATE reconcile_repairs, reconcile_runs, oversells, order_lines, orders, reservations,
                  stock, sku_versions, outbox, idempotency CASCADE",
    )
    .execute(&pool)
    .await
    .context("emptying the ledger")?;
    for w in WAREHOUSES {
        sqlx::query("INSERT INTO warehouses (id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(w)
            .execute(&pool)
            .await?;
    }
    let n = i64::try_from(n)?;
    sqlx::query(
        "INSERT INTO sku_versions (sku, version, warehouses)
         SELECT 'RB-' || lpad(i::text, 7, '0'), 1 + i % 5, 2 FROM generate_series(0, $1 - 1) i",
    )
    .bind(n)
    .execute(&pool)
    .await
    .context("seeding sku_versions")?;
    sqlx::query(
        "INSERT INTO stock (sku, warehouse, on_hand, reserved, pending)
         SELECT 'RB-' || lpad(i::text, 7, '0'), $2, i % 97, i % 5, i % 3 FROM generate_series(0, $1 - 1) i
         UNION ALL
         SELECT 'RB-' || lpad(i::text, 7, '0'), $3, i % 13, 0, 0 FROM generate_series(0, $1 - 1) i",
    )
    .bind(n)
    .bind(WAREHOUSES[0])
    .bind(WAREHOUSES[1])
    .execute(&pool)
    .await
    .context("seeding stock")?;
    for table in ["sku_versions", "stock"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
            .execute(&pool)
            .await?;
    }
    pool.close().await;
    Ok(())
}

/// The channel's catalogue: every SKU at its expected quantity but the known set.
fn seed_channel(sandbox: &Sandbox, channel: Sandboxed, n: usize, policy: &ChannelPolicy) {
    let mut st = sandbox.channel(channel);
    st.items.clear();
    st.writes.clear();
    st.set_knobs(Knobs {
        rate: None,
        revisions_per_day: u32::MAX,
        ..Knobs::default()
    });
    for i in 0..n {
        if missing(i) {
            continue;
        }
        let q = channel_quantity(&state(i), policy);
        let shown = if drifted(i) {
            q + 7
        } else if in_flight(i) {
            q + 3
        } else {
            q
        };
        st.seed_item(&sku(i), shown, None);
    }
    for u in 0..UNKNOWN {
        st.seed_item(&format!("RB-X-{u:04}"), 1, None);
    }
}

/// Watermarks of the drifted SKUs (at the ledger's version, an hour old) and the in-flight
/// ones (a version behind).
async fn seed_watermarks(
    kv: &async_nats::jetstream::kv::Store,
    channel: &str,
    n: usize,
    policy: &ChannelPolicy,
) -> anyhow::Result<()> {
    let an_hour_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    for i in (0..n).filter(|i| drifted(*i) || in_flight(*i)) {
        let s = state(i);
        let mark = Watermark {
            version: if drifted(i) { s.version } else { s.version - 1 },
            qty: channel_quantity(&s, policy),
            pushed_at: an_hour_ago,
        };
        let key = Watermarks::key(channel, &Sku::parse(sku(i))?);
        kv.put(key, serde_json::to_vec(&mark)?.into())
            .await
            .context("writing a watermark")?;
    }
    Ok(())
}

/// The sandbox's settings variables for `kind`.
fn channel_env(kind: ChannelKind, base: &str) -> Vec<(String, String)> {
    let name = kind.as_str();
    let mut pairs: Vec<(&str, String)> = vec![
        ("BASE_URL", format!("{base}/{name}")),
        ("RATE_LIMIT", "off".to_owned()),
    ];
    if let Some(sandboxed) = onhand_sandbox::Channel::parse(name) {
        pairs.extend(onhand_sandbox::credentials::adapter_settings(sandboxed));
    }
    pairs
        .into_iter()
        .map(|(k, v)| {
            (
                format!("ONHAND_CHANNEL__{}__{k}", name.to_ascii_uppercase()),
                v,
            )
        })
        .collect()
}

async fn reconcile(
    options: &Options,
    sandbox: &SandboxThread,
    channel: Sandboxed,
    kind: ChannelKind,
) -> anyhow::Result<ChannelRun> {
    let dir = tempfile_dir()?;
    let report_path = dir.join(format!("{kind}.json"));
    let requests_before = sandbox.sandbox.channel(channel).requests;
    let started = Instant::now();
    let mut child = std::process::Command::new(&options.onhand_bin)
        .args(["reconcile", "--channel", kind.as_str(), "--report"])
        .arg(&report_path)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &options.database_url)
        .env("NATS_URL", &options.nats_url)
        .env("RUST_LOG", "warn")
        .envs(channel_env(kind, &sandbox.base))
        .stdout(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", options.onhand_bin.display()))?;
    let pid = child.id();
    let sandbox_before = sandbox.cpu();
    let mut peak_kib = 0u64;
    let mut ticks_used = 0u64;
    let pid_arg = pid.to_string();
    let status = loop {
        if let Some(kib) = status_kib(pid, "VmHWM") {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(ticks) = cpu_ticks(&pid_arg) {
            ticks_used = ticks_used.max(ticks);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    let sandbox_cpu_secs = sandbox
        .cpu()
        .zip(sandbox_before)
        .map(|(after, before)| (after - before).as_secs_f64());
    let read_calls = sandbox.sandbox.channel(channel).requests - requests_before;
    let exit_code = status.code().unwrap_or(-1);
    let text = std::fs::read_to_string(&report_path).with_context(|| {
        format!("onhand reconcile (exit {exit_code}) wrote no report for {kind}")
    })?;
    std::fs::remove_dir_all(&dir).ok();
    let report: Value = serde_json::from_str(&text)?;
    let one = &report["channels"][0];
    let counts = one["counts"].clone();
    let mismatch = check(&counts, options.skus, kind, one, exit_code);
    Ok(ChannelRun {
        channel: kind,
        seconds,
        skus_per_sec: options.skus as f64 / seconds,
        peak_rss_mib: peak_kib as f64 / 1024.0,
        reconciler_cpu_secs: ticks_used as f64 / CLOCK_TICKS,
        sandbox_cpu_secs,
        read_calls,
        read_pages: one["read_pages"].as_u64().unwrap_or(0),
        exit_code,
        counts,
        exact: mismatch.is_none(),
        mismatch,
    })
}

/// Whether the report found exactly the seeded sets; what differs otherwise.
fn check(counts: &Value, n: usize, kind: ChannelKind, one: &Value, exit: i32) -> Option<String> {
    let want = expected(n);
    let got = |k: &str| counts[k].as_u64();
    let mut wrong = Vec::new();
    for (k, v) in [
        ("match", want.matched),
        ("drift", want.drift),
        ("in_flight", want.in_flight),
        ("missing", want.missing),
        ("not_read", 0),
    ] {
        if got(k) != Some(v) {
            wrong.push(format!("{k}: {:?}, expected {v}", got(k)));
        }
    }
    let unknown = if kind == ChannelKind::Amazon {
        None
    } else {
        Some(UNKNOWN as u64)
    };
    if got("unknown") != unknown {
        wrong.push(format!(
            "unknown: {:?}, expected {unknown:?}",
            got("unknown")
        ));
    }
    if one["status"] != "complete" {
        wrong.push(format!("status {}: {}", one["status"], one["error"]));
    }
    let drift_rate = want.drift as f64 / (want.matched + want.drift + want.in_flight) as f64;
    let want_exit = if drift_rate > 0.001 { 3 } else { 0 };
    if exit != want_exit {
        wrong.push(format!("exit {exit}, expected {want_exit}"));
    }
    (!wrong.is_empty()).then(|| wrong.join("; "))
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("onhand-bench-reconcile-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The sandbox on a thread and runtime of its own (so it gets a core, as its own process
/// would), its state at hand for seeding and request counts.
#[derive(Debug)]
struct SandboxThread {
    base: String,
    sandbox: Arc<Sandbox>,
    /// The sandbox thread's id, for its CPU time.
    tid: Option<u32>,
    shutdown: CancellationToken,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

type Started = std::io::Result<(u16, Arc<Sandbox>, Option<u32>)>;

impl SandboxThread {
    fn start() -> anyhow::Result<Self> {
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
                    let app = match onhand_sandbox::build(SocketAddr::from(([127, 0, 0, 1], 0)), 7)
                        .await
                    {
                        Ok(app) => app,
                        Err(e) => return tx.send(Err(e)).map_err(|_| anyhow!("bench gone")),
                    };
                    tx.send(Ok((app.port(), app.sandbox(), current_tid())))
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

    /// CPU time the sandbox's thread has used so far (`schedstat`).
    fn cpu(&self) -> Option<Duration> {
        let text =
            std::fs::read_to_string(format!("/proc/self/task/{}/schedstat", self.tid?)).ok()?;
        Some(Duration::from_nanos(
            text.split_whitespace().next()?.parse().ok()?,
        ))
    }

    fn stop(mut self) -> anyhow::Result<()> {
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

/// The calling thread's id.
fn current_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// Fails the command when a run missed the known set.
pub fn check_report(report: &Report) -> anyhow::Result<()> {
    let bad: Vec<String> = report
        .channels
        .iter()
        .filter_map(|r| r.mismatch.as_ref().map(|m| format!("{}: {m}", r.channel)))
        .collect();
    if !bad.is_empty() {
        bail!(
            "the reconciler's reports differ from the seeded drift: {}",
            bad.join(" | ")
        );
    }
    ensure!(!report.channels.is_empty(), "no channel was measured");
    Ok(())
}
