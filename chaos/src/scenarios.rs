//! The fault suite, in order: one NATS node SIGKILLed and brought back, the whole cluster
//! restarted, Postgres restarted, then sandbox faults at 30% with latency spikes and one
//! channel down past the lag alert. Load runs throughout; every recovery is waited for
//! with a deadline and timed; the final checks compare every channel with the ledger.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream::Context;
use serde_json::json;

use crate::load::{self, Counts, Load};
use crate::observe::{self, LAG_METRIC, Monitor, ReconcileRun};
use crate::verdict::{self, Outcome, Totals};
use crate::world::{CHANNELS, World};

/// "Lag near zero": every projector's lag at most this.
const LAG_NEAR_ZERO_SECS: f64 = 2.0;
/// Outbox rows and consumer messages not yet handled that still count as caught up under
/// load (a second or two of events).
const BACKLOG_NEAR_ZERO: f64 = 100.0;
/// The alert threshold (DESIGN.md §7).
pub const LAG_ALERT_SECS: f64 = 60.0;
/// Longest wait for a recovery before the run fails.
pub const RECOVERY_TIMEOUT: Duration = Duration::from_secs(180);
/// The channel taken down in scenario 4.
pub const OUTAGE_CHANNEL: &str = "woocommerce";
/// Units of each SKU per warehouse before the load starts.
const SEED_UNITS: i64 = 40;

#[derive(Debug, Clone)]
pub struct Profile {
    pub name: &'static str,
    pub skus: usize,
    /// Ledger requests per second.
    pub rate: f64,
    pub warmup: Duration,
    pub node_down: Duration,
    pub cluster_down: Duration,
    pub pg_down: Duration,
    /// Sandbox faults at 30% after the outage channel is back.
    pub faulty_after: Duration,
    pub outage: Duration,
}

impl Profile {
    pub fn short() -> Profile {
        Profile {
            name: "short",
            skus: 100,
            rate: 25.0,
            warmup: Duration::from_secs(5),
            node_down: Duration::from_secs(10),
            cluster_down: Duration::from_secs(5),
            pg_down: Duration::from_secs(5),
            faulty_after: Duration::from_secs(5),
            outage: Duration::from_secs(75),
        }
    }

    pub fn full() -> Profile {
        Profile {
            name: "full",
            skus: 300,
            rate: 40.0,
            warmup: Duration::from_secs(30),
            node_down: Duration::from_secs(30),
            cluster_down: Duration::from_secs(15),
            pg_down: Duration::from_secs(15),
            faulty_after: Duration::from_secs(30),
            outage: Duration::from_secs(120),
        }
    }
}

/// One infrastructure fault and how the system came back from it.
#[derive(Debug, Clone)]
pub struct FaultResult {
    pub name: String,
    pub fault: String,
    /// How long the faulty part was down.
    pub down_secs: f64,
    /// With the part down: from the fault until events flowed again with lag near zero
    /// (only when the system can do without the part, e.g. one NATS node of three).
    pub served_while_down_secs: Option<f64>,
    /// From bringing the part back until everything was ready and caught up.
    pub after_restore_secs: f64,
    /// From the fault until everything was ready and caught up.
    pub recovery_secs: f64,
    pub max_lag: BTreeMap<String, f64>,
    pub load: Counts,
    pub events: i64,
    pub relay_errors: f64,
    pub reconcile: ReconcileRun,
    /// When the first run after recovery found drift: its exit code, and how long it took
    /// until a run found none (`None`: it never cleared within the deadline).
    pub drift_first: Option<(i32, Option<f64>)>,
    /// `onhand reconcile` run while the part was down: exit code (`None`: still running
    /// after a minute) and seconds.
    pub reconcile_while_down: Option<(Option<i32>, f64)>,
}

#[derive(Debug, Clone)]
pub struct OutageResult {
    pub channel: String,
    pub faults: String,
    pub outage_secs: f64,
    /// Seconds after the outage began when the lag first exceeded the threshold.
    pub crossed_after_secs: Option<f64>,
    pub max_lag: f64,
    /// Seconds after the channel came back until its lag was under the threshold.
    pub cleared_after_secs: f64,
    /// Seconds after every fault was lifted until every channel caught up.
    pub caught_up_after_secs: f64,
    pub max_lag_others: BTreeMap<String, f64>,
    pub retried: BTreeMap<String, f64>,
}

pub fn channel_names() -> Vec<&'static str> {
    CHANNELS.iter().map(|c| c.as_str()).collect()
}

/// Why the system is not caught up yet, or `None` when it is: the NATS nodes (but
/// `skip_node`) healthy, every service ready, the outbox and every consumer nearly
/// drained, every projector's lag near zero.
async fn not_caught_up(
    world: &mut World,
    js: &Context,
    skip_node: Option<usize>,
) -> Option<String> {
    if let Err(err) = world.ensure_running() {
        return Some(format!("{err:#}"));
    }
    for i in 0..world.cluster.nodes.len() {
        if Some(i) != skip_node && !world.cluster.node_healthy(i).await {
            return Some(format!(
                "NATS node {} not healthy",
                world.cluster.nodes[i].name
            ));
        }
    }
    if !world.services_ready().await {
        return Some("a service is not ready".to_owned());
    }
    let backlog = observe::scrape(&world.http, &world.ledger_url)
        .await
        .ok()
        .and_then(|t| observe::metric(&t, "onhand_outbox_backlog", None));
    match backlog {
        Some(b) if b <= BACKLOG_NEAR_ZERO => {}
        other => return Some(format!("outbox backlog {other:?}")),
    }
    let stats = match tokio::time::timeout(
        Duration::from_secs(5),
        observe::stream_stats(js, &channel_names()),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(err)) => return Some(format!("{err:#}")),
        Err(_) => return Some("JetStream info timed out".to_owned()),
    };
    for (channel, c) in &stats.consumers {
        let pending = c.pending + c.ack_pending as u64;
        if pending as f64 > BACKLOG_NEAR_ZERO {
            return Some(format!("{channel}: {pending} messages pending"));
        }
        if c.oldest_unacked_secs > LAG_NEAR_ZERO_SECS {
            return Some(format!(
                "{channel}: its oldest unacknowledged event is {:.1} s old",
                c.oldest_unacked_secs
            ));
        }
    }
    for p in &world.projectors {
        let channel = p.channel.as_str();
        let lag = observe::scrape(&world.http, &p.url)
            .await
            .ok()
            .and_then(|t| observe::metric(&t, LAG_METRIC, Some(("channel", channel))));
        match lag {
            Some(l) if l <= LAG_NEAR_ZERO_SECS => {}
            other => return Some(format!("{channel} lag {other:?}")),
        }
    }
    None
}

/// Polls [`not_caught_up`] until it clears; the time it took.
pub async fn wait_caught_up(
    world: &mut World,
    js: &Context,
    skip_node: Option<usize>,
    timeout: Duration,
    what: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < timeout {
        match not_caught_up(world, js, skip_node).await {
            None => return Ok(started.elapsed()),
            Some(why) => last = why,
        }
        tokio::time::sleep(crate::procs::POLL_INTERVAL).await;
    }
    bail!(
        "{what}: not recovered after {}s (last: {last}); logs in {}",
        timeout.as_secs(),
        world.dir.display()
    )
}

/// An end-to-end probe: a receipt written after the fault must go through the ledger,
/// Postgres, the relay and NATS, and be acknowledged by every projector (pushed to its
/// channel or found unchanged). Retries the write until the ledger takes it.
async fn probe(world: &mut World, js: &Context, deadline: Instant) -> anyhow::Result<()> {
    let sku = world.skus[0].clone();
    let subject = format!("inventory.sku.{sku}");
    let body = json!({"sku": sku, "warehouse": crate::world::WAREHOUSES[0], "qty": 1, "reference": "chaos-probe"});
    let mut last = String::new();
    let row = loop {
        anyhow::ensure!(
            Instant::now() < deadline,
            "probe: the ledger took no write ({last})"
        );
        world.ensure_running()?;
        match load::post(
            &world.http,
            &world.ledger_url,
            "/v1/receipts",
            crate::world::WMS_TOKEN,
            &body,
        )
        .await
        {
            Ok(r) if r.status().is_success() => {
                match observe::newest_row(&world.pg.url(), &subject).await {
                    Ok(Some(id)) => break id,
                    Ok(None) => bail!("probe: no outbox row for {subject} after a receipt"),
                    Err(err) => last = format!("{err:#}"),
                }
            }
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(err) => last = format!("{err}"),
        }
        tokio::time::sleep(crate::procs::POLL_INTERVAL).await;
    };
    let seq = loop {
        anyhow::ensure!(
            Instant::now() < deadline,
            "probe: outbox row {row} not published ({last})"
        );
        match observe::published_seq(&world.pg.url(), row).await {
            Ok(Some(seq)) => break seq as u64,
            Ok(None) => last = "not yet".to_owned(),
            Err(err) => last = format!("{err:#}"),
        }
        tokio::time::sleep(crate::procs::POLL_INTERVAL).await;
    };
    loop {
        anyhow::ensure!(
            Instant::now() < deadline,
            "probe: stream sequence {seq} not acknowledged by every projector ({last})"
        );
        match observe::stream_stats(js, &channel_names()).await {
            Ok(stats)
                if stats
                    .consumers
                    .values()
                    .all(|c| c.ack_floor_stream_seq >= seq) =>
            {
                return Ok(());
            }
            Ok(stats) => {
                last = format!(
                    "ack floors {:?}",
                    stats
                        .consumers
                        .iter()
                        .map(|(k, c)| (k.clone(), c.ack_floor_stream_seq))
                        .collect::<Vec<_>>()
                )
            }
            Err(err) => last = format!("{err:#}"),
        }
        tokio::time::sleep(crate::procs::POLL_INTERVAL).await;
    }
}

/// Recovered: a write made now reaches every channel ([`probe`]), and then the system is
/// caught up ([`not_caught_up`]). The time it took.
async fn recover(
    world: &mut World,
    js: &Context,
    skip_node: Option<usize>,
    timeout: Duration,
    what: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    probe(world, js, started + timeout)
        .await
        .with_context(|| format!("{what}: not recovered; logs in {}", world.dir.display()))?;
    let rest = timeout.saturating_sub(started.elapsed());
    wait_caught_up(world, js, skip_node, rest, what).await?;
    Ok(started.elapsed())
}

pub async fn relay_counter(world: &World, name: &str) -> f64 {
    observe::scrape(&world.http, &world.ledger_url)
        .await
        .ok()
        .and_then(|t| observe::metric(&t, name, None))
        .unwrap_or(0.0)
}

async fn produced(world: &World) -> i64 {
    observe::outbox(&world.pg.url())
        .await
        .map_or(0, |(rows, _)| rows)
}

/// Everything a fault scenario records besides its own timings.
struct Before {
    at: Instant,
    load: Counts,
    events: i64,
    relay_errors: f64,
}

async fn before(world: &World, load: &Load) -> Before {
    Before {
        at: Instant::now(),
        load: load.stats.counts(),
        events: produced(world).await,
        relay_errors: relay_counter(world, "onhand_outbox_relay_errors_total").await,
    }
}

#[allow(clippy::too_many_arguments)]
async fn finish_fault(
    world: &mut World,
    js: &Context,
    monitor: &Monitor,
    load: &Load,
    b: Before,
    name: &str,
    fault: String,
    down: Duration,
    served_while_down: Option<Duration>,
) -> anyhow::Result<FaultResult> {
    let after_restore = recover(world, js, None, RECOVERY_TIMEOUT, name).await?;
    let recovery = b.at.elapsed();
    say!(
        "  recovered {:.1}s after the part came back ({:.1}s after the fault)",
        after_restore.as_secs_f64(),
        recovery.as_secs_f64()
    );
    let samples = monitor.samples.lock().await;
    let max_lag = channel_names()
        .into_iter()
        .map(|c| (c.to_owned(), samples.max_lag_since(c, b.at)))
        .collect();
    drop(samples);
    // The reconciler's own settle windows (the CronJob's configuration), under load.
    let label: String = name
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join("-");
    let mut reconcile = observe::reconcile(world, None, &label).await?;
    // Drift right after recovery must go away by itself: a SKU whose push is still in
    // a retry's backoff can read as drift. Run again until a run is clean or the deadline
    // passes; the report keeps the first run's verdict and how long it took to clear.
    let mut drift_first = None;
    if reconcile.exit_code == 3 {
        let first = reconcile.exit_code;
        let started = Instant::now();
        let mut cleared = None;
        while started.elapsed() < DRIFT_CLEARS_WITHIN {
            say!("  onhand reconcile found drift; running it again");
            reconcile = observe::reconcile(world, None, &format!("{label}-again")).await?;
            if reconcile.exit_code == 0 {
                cleared = Some(started.elapsed().as_secs_f64());
                break;
            }
        }
        drift_first = Some((first, cleared));
    }
    say!(
        "  onhand reconcile --all: exit {} in {:.1}s ({})",
        reconcile.exit_code,
        reconcile.seconds,
        reconcile
            .channels
            .iter()
            .map(|c| format!(
                "{} drift {} in_flight {}",
                c.channel, c.counts.drift, c.counts.in_flight
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(FaultResult {
        name: name.to_owned(),
        fault,
        down_secs: down.as_secs_f64(),
        served_while_down_secs: served_while_down.map(|d| d.as_secs_f64()),
        after_restore_secs: after_restore.as_secs_f64(),
        recovery_secs: recovery.as_secs_f64(),
        max_lag,
        load: load.stats.counts() - b.load,
        events: produced(world).await - b.events,
        relay_errors: relay_counter(world, "onhand_outbox_relay_errors_total").await
            - b.relay_errors,
        reconcile,
        drift_first,
        reconcile_while_down: None,
    })
}

/// Sleeps until `until` (the load keeps running meanwhile: this is a duration of the run,
/// not a wait for a state).
async fn hold_until(until: Instant) {
    tokio::time::sleep_until(until.into()).await;
}

/// Scenario 1: SIGKILL the node that leads the INVENTORY stream, keep it down, restart it.
async fn kill_one_node(
    world: &mut World,
    js: &Context,
    monitor: &Monitor,
    load: &Load,
    profile: &Profile,
) -> anyhow::Result<FaultResult> {
    let stats = observe::stream_stats(js, &channel_names()).await?;
    let leader = stats
        .leader
        .clone()
        .context("the INVENTORY stream has no leader")?;
    let i = world
        .cluster
        .index_of(&leader)
        .with_context(|| format!("unknown stream leader {leader}"))?;
    say!(
        "scenario 1: SIGKILL NATS node {leader} (the INVENTORY stream's leader) for {}s",
        profile.node_down.as_secs()
    );
    let b = before(world, load).await;
    world.cluster.kill(i).await?;
    let served = recover(
        world,
        js,
        Some(i),
        profile.node_down.max(Duration::from_secs(60)),
        "one node down",
    )
    .await?;
    say!(
        "  with {leader} down: caught up again after {:.1}s",
        served.as_secs_f64()
    );
    hold_until(b.at + profile.node_down).await;
    let down = b.at.elapsed();
    world.cluster.restart(i).await?;
    finish_fault(
        world,
        js,
        monitor,
        load,
        b,
        "one NATS node killed",
        format!("SIGKILL of {leader}, the INVENTORY stream leader; restarted on the same store"),
        down,
        Some(served),
    )
    .await
}

/// How long drift found right after a recovery may take to clear by itself.
const DRIFT_CLEARS_WITHIN: Duration = Duration::from_secs(90);

/// Scenario 2: stop all three nodes at once (SIGTERM), keep them down, start them.
async fn restart_cluster(
    world: &mut World,
    js: &Context,
    monitor: &Monitor,
    load: &Load,
    profile: &Profile,
) -> anyhow::Result<FaultResult> {
    say!(
        "scenario 2: restart the whole NATS cluster ({}s down)",
        profile.cluster_down.as_secs()
    );
    let b = before(world, load).await;
    world.cluster.stop_all().await?;
    hold_until(b.at + profile.cluster_down).await;
    let down = b.at.elapsed();
    world.cluster.start_stopped().await?;
    finish_fault(
        world,
        js,
        monitor,
        load,
        b,
        "NATS cluster restarted",
        "SIGTERM to all three nodes at once; started again on the same stores".to_owned(),
        down,
        None,
    )
    .await
}

/// Scenario 3: Postgres fast shutdown, down for a while, started again.
async fn restart_postgres(
    world: &mut World,
    js: &Context,
    monitor: &Monitor,
    load: &Load,
    profile: &Profile,
) -> anyhow::Result<FaultResult> {
    say!(
        "scenario 3: restart Postgres ({}s down)",
        profile.pg_down.as_secs()
    );
    let b = before(world, load).await;
    world.pg.stop().await?;
    // A reconcile run (a CronJob firing now) must fail cleanly, not hang or pass.
    let (code, secs, last) = observe::reconcile_while_down(world, Duration::from_secs(60)).await?;
    say!("  onhand reconcile --all with Postgres down: exit {code:?} after {secs:.1}s ({last})");
    hold_until(b.at + profile.pg_down).await;
    let down = b.at.elapsed();
    world.pg.start_again().await?;
    let mut result = finish_fault(
        world,
        js,
        monitor,
        load,
        b,
        "Postgres restarted",
        "fast shutdown (SIGINT to the postmaster: every connection dropped); started again"
            .to_owned(),
        down,
        None,
    )
    .await?;
    result.reconcile_while_down = Some((code, secs));
    Ok(result)
}

async fn set_knobs(world: &World, channel: &str, knobs: serde_json::Value) -> anyhow::Result<()> {
    let response = world
        .http
        .put(format!("{}/admin/{channel}/knobs", world.sandbox_url))
        .json(&knobs)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("setting {channel}'s knobs: {}", response.status());
    }
    Ok(())
}

async fn projector_lag(world: &World, channel: &str) -> Option<f64> {
    let p = world
        .projectors
        .iter()
        .find(|p| p.channel.as_str() == channel)?;
    let text = observe::scrape(&world.http, &p.url).await.ok()?;
    observe::metric(&text, LAG_METRIC, Some(("channel", channel)))
}

async fn retried(world: &World) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for p in &world.projectors {
        let channel = p.channel.as_str();
        let n = observe::scrape(&world.http, &p.url)
            .await
            .ok()
            .and_then(|t| {
                observe::metric(
                    &t,
                    "onhand_projector_events_total",
                    Some(("outcome", "retried")),
                )
            })
            .unwrap_or(0.0);
        out.insert(channel.to_owned(), n);
    }
    out
}

/// Scenario 4: every channel fails 30% of its calls (5xx, 429, held 3 s then dropped),
/// and one channel fails every call for `profile.outage`; its lag must cross the alert
/// threshold and come back under it by itself.
async fn channel_outage(
    world: &mut World,
    js: &Context,
    monitor: &Monitor,
    profile: &Profile,
) -> anyhow::Result<OutageResult> {
    let faulty = json!({"faults": {"http_5xx": 0.15, "http_429": 0.10, "timeout": 0.05, "timeout_ms": 3000}});
    let down = json!({"faults": {"http_5xx": 1.0}});
    say!(
        "scenario 4: sandbox faults at 30% (15% 5xx, 10% 429, 5% held 3 s and dropped) on every channel; {OUTAGE_CHANNEL} down (100% 5xx) for {}s",
        profile.outage.as_secs()
    );
    let retried_before = retried(world).await;
    for c in channel_names() {
        set_knobs(
            world,
            c,
            if c == OUTAGE_CHANNEL {
                down.clone()
            } else {
                faulty.clone()
            },
        )
        .await?;
    }
    let started = Instant::now();
    hold_until(started + profile.outage).await;
    set_knobs(world, OUTAGE_CHANNEL, faulty.clone()).await?;
    let restored = Instant::now();
    let outage_secs = (restored - started).as_secs_f64();
    let (crossed, lag_at_restore) = {
        let samples = monitor.samples.lock().await;
        let crossed = samples
            .timeline
            .iter()
            .find(|s| s.channel == OUTAGE_CHANNEL && s.at >= started && s.lag > LAG_ALERT_SECS)
            .map(|s| (s.at - started).as_secs_f64());
        (crossed, samples.max_lag_since(OUTAGE_CHANNEL, started))
    };
    say!(
        "  {OUTAGE_CHANNEL} back after {outage_secs:.0}s; its lag reached {lag_at_restore:.1}s{}",
        crossed.map_or(" and never crossed 60 s".to_owned(), |c| format!(
            ", over 60 s from {c:.1}s into the outage"
        ))
    );
    let mut cleared = None;
    while restored.elapsed() < RECOVERY_TIMEOUT {
        world.ensure_running()?;
        if let Some(lag) = projector_lag(world, OUTAGE_CHANNEL).await
            && lag < LAG_ALERT_SECS
        {
            cleared = Some(restored.elapsed());
            break;
        }
        tokio::time::sleep(crate::procs::POLL_INTERVAL).await;
    }
    let cleared = cleared.with_context(|| {
        format!(
            "{OUTAGE_CHANNEL}'s lag stayed above {LAG_ALERT_SECS} s for {}s after it came back",
            RECOVERY_TIMEOUT.as_secs()
        )
    })?;
    let max_lag = monitor
        .samples
        .lock()
        .await
        .max_lag_since(OUTAGE_CHANNEL, started);
    say!(
        "  {OUTAGE_CHANNEL}'s lag peaked at {max_lag:.1}s and was under 60 s {:.1}s after the channel came back",
        cleared.as_secs_f64()
    );
    hold_until(restored + profile.faulty_after).await;
    for c in channel_names() {
        set_knobs(world, c, json!({})).await?;
    }
    let caught_up =
        wait_caught_up(world, js, None, RECOVERY_TIMEOUT, "sandbox faults lifted").await?;
    say!(
        "  faults lifted; every channel caught up after {:.1}s",
        caught_up.as_secs_f64()
    );
    let samples = monitor.samples.lock().await;
    let max_lag_others = channel_names()
        .into_iter()
        .filter(|c| *c != OUTAGE_CHANNEL)
        .map(|c| (c.to_owned(), samples.max_lag_since(c, started)))
        .collect();
    drop(samples);
    let after = retried(world).await;
    let retried = after
        .into_iter()
        .map(|(c, n)| {
            let b = retried_before.get(&c).copied().unwrap_or(0.0);
            (c, n - b)
        })
        .collect();
    Ok(OutageResult {
        channel: OUTAGE_CHANNEL.to_owned(),
        faults:
            "15% 5xx, 10% 429, 5% held 3 s then dropped (the client times out), on every channel"
                .to_owned(),
        outage_secs,
        crossed_after_secs: crossed,
        max_lag,
        cleared_after_secs: cleared.as_secs_f64(),
        caught_up_after_secs: caught_up.as_secs_f64(),
        max_lag_others,
        retried,
    })
}

/// The whole run: load, the four scenarios, the final checks. Errors are failed
/// recoveries; failed final checks are in `Outcome::checks`.
pub async fn run(world: &mut World, profile: &Profile) -> anyhow::Result<Outcome> {
    let js = observe::jetstream(&world.cluster.urls()).await?;
    let stats = observe::stream_stats(&js, &channel_names()).await?;
    let mut outcome = Outcome {
        faults: Vec::new(),
        outage: None,
        totals: Totals::default(),
        checks: Vec::new(),
    };
    outcome.check(
        "streams at R3",
        stats.replicas == 3 && stats.consumers.values().all(|c| c.replicas == 3),
        format!(
            "INVENTORY on {} nodes (leader and followers), its consumers on {:?}",
            stats.replicas,
            stats
                .consumers
                .iter()
                .map(|(k, c)| (k.clone(), c.replicas))
                .collect::<Vec<_>>()
        ),
    );
    say!(
        "seeding {} SKUs × {SEED_UNITS} units in each warehouse",
        world.skus.len()
    );
    load::seed(&world.http, &world.ledger_url, &world.skus, SEED_UNITS).await?;
    let monitor = Monitor::start(world);
    let load = Load::start(
        world.http.clone(),
        world.ledger_url.clone(),
        world.skus.clone(),
        profile.rate,
    );
    say!(
        "load: {} ledger requests/s on {} SKUs",
        profile.rate,
        world.skus.len()
    );
    let warm = wait_caught_up(world, &js, None, RECOVERY_TIMEOUT, "warm-up").await?;
    say!(
        "every channel caught up with the seed after {:.1}s; steady load for {}s",
        warm.as_secs_f64(),
        profile.warmup.as_secs()
    );
    hold_until(Instant::now() + profile.warmup).await;

    outcome
        .faults
        .push(kill_one_node(world, &js, &monitor, &load, profile).await?);
    outcome
        .faults
        .push(restart_cluster(world, &js, &monitor, &load, profile).await?);
    outcome
        .faults
        .push(restart_postgres(world, &js, &monitor, &load, profile).await?);
    outcome.outage = Some(channel_outage(world, &js, &monitor, profile).await?);

    let load_counts = load.stop().await;
    monitor.write_timeline(&world.dir.join("lag.csv")).await?;
    monitor.stop().await;
    verdict::final_checks(world, &js, &mut outcome, load_counts).await?;
    Ok(outcome)
}
