//! The end of a run: once the load stops, wait for the system to drain, then check
//! what a user would notice: every channel at the ledger's quantity, every event in the
//! stream once and acknowledged by every consumer, no dead letters, `onhand reconcile`
//! clean, no service gone; and gather the totals for the report.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::Context;

use crate::load::Counts;
use crate::observe::{self, ReconcileRun, StreamStats};
use crate::scenarios::{
    FaultResult, LAG_ALERT_SECS, OutageResult, RECOVERY_TIMEOUT, channel_names, relay_counter,
    wait_caught_up,
};
use crate::world::{CHANNELS, World};

#[derive(Debug, Clone, Default)]
pub struct ChannelTotals {
    pub deliveries: u64,
    pub redelivered: u64,
    pub outcomes: BTreeMap<String, f64>,
    pub dead_letters: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub produced: i64,
    pub unpublished: i64,
    pub stream: StreamStats,
    pub relay_published: f64,
    pub relay_errors: f64,
    pub load: Counts,
    pub channels: BTreeMap<String, ChannelTotals>,
    pub final_reconcile: Option<ReconcileRun>,
    pub compared: usize,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub faults: Vec<FaultResult>,
    pub outage: Option<OutageResult>,
    pub totals: Totals,
    pub checks: Vec<Check>,
}

impl Outcome {
    pub fn check(&mut self, name: &str, ok: bool, detail: String) {
        if !ok {
            say!("CHECK FAILED: {name}: {detail}");
        }
        self.checks.push(Check {
            name: name.to_owned(),
            ok,
            detail,
        });
    }
}

/// Drains, compares and checks; the results go into `outcome`.
pub async fn final_checks(
    world: &mut World,
    js: &Context,
    outcome: &mut Outcome,
    load_counts: Counts,
) -> anyhow::Result<()> {
    say!("load stopped: {load_counts:?}; waiting for the system to drain");
    let drained = Instant::now();
    // Nothing moves any more once the carts reserved last have expired (the sweeper
    // releases them: events) and the outbox is published.
    crate::procs::poll(
        RECOVERY_TIMEOUT,
        "every cart to expire and the outbox to drain",
        || async {
            let active = observe::active_reservations(&world.pg.url()).await.ok()?;
            let (_, unpublished) = observe::outbox(&world.pg.url()).await.ok()?;
            (active == 0 && unpublished == 0).then_some(())
        },
    )
    .await?;
    wait_caught_up(world, js, None, RECOVERY_TIMEOUT, "drain").await?;
    // Carts reserved just before the load stopped expire (their events follow); compare
    // until every channel equals the ledger, or fail with the differences.
    let mut last = String::new();
    let mut compared = None;
    while drained.elapsed() < RECOVERY_TIMEOUT {
        match observe::compare_channels(world).await {
            Ok(n) => {
                compared = Some(n);
                break;
            }
            Err(err) => last = format!("{err:#}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    outcome.check(
        "every channel lists the ledger's quantity",
        compared.is_some(),
        match compared {
            Some(n) => format!("{n} (channel, SKU) pairs equal to GET /v1/stock/{{sku}}/explain, read through the sandbox admin API"),
            None => last,
        },
    );
    outcome.totals = totals(world, js, load_counts).await?;
    outcome.totals.compared = compared.unwrap_or(0);
    let t = &outcome.totals;
    let lost_or_doubled = t.stream.messages as i64 != t.produced;
    let (produced, messages, unpublished) = (t.produced, t.stream.messages, t.unpublished);
    outcome.check(
        "every event produced is in the stream exactly once",
        !lost_or_doubled && unpublished == 0,
        format!(
            "{produced} outbox rows ({unpublished} unpublished), {messages} INVENTORY messages"
        ),
    );
    let delivered_all = outcome
        .totals
        .channels
        .iter()
        .map(|(c, ct)| {
            (
                c.clone(),
                ct.deliveries,
                outcome
                    .totals
                    .stream
                    .consumers
                    .get(c)
                    .map_or(0, |s| s.ack_floor_stream_seq),
            )
        })
        .collect::<Vec<_>>();
    let last_seq = outcome.totals.stream.last_seq;
    outcome.check(
        "every consumer acknowledged the whole stream",
        delivered_all.iter().all(|(_, _, floor)| *floor == last_seq),
        format!(
            "last sequence {last_seq}; ack floors {:?}",
            delivered_all
                .iter()
                .map(|(c, _, f)| (c, f))
                .collect::<Vec<_>>()
        ),
    );
    let letters: Vec<(String, usize)> = outcome
        .totals
        .channels
        .iter()
        .map(|(c, ct)| (c.clone(), ct.dead_letters))
        .collect();
    outcome.check(
        "no dead letters",
        letters.iter().all(|(_, n)| *n == 0),
        format!("onhand dlq list: {letters:?} (no fault injected here is permanent)"),
    );
    if let Some(r) = &outcome.totals.final_reconcile {
        let clean = r.exit_code == 0
            && r.channels.len() == CHANNELS.len()
            && r.channels.iter().all(|c| {
                c.counts.drift == 0
                    && c.counts.missing == 0
                    && c.counts.in_flight == 0
                    && c.counts.compared == world.skus.len() as u64
            });
        outcome.check(
            "onhand reconcile --all finds every SKU matching",
            clean,
            format!(
                "exit {}; {}",
                r.exit_code,
                r.channels
                    .iter()
                    .map(|c| format!(
                        "{}: {} compared, {} match, {} drift, {} in flight, {} missing",
                        c.channel,
                        c.counts.compared,
                        c.counts.matched,
                        c.counts.drift,
                        c.counts.in_flight,
                        c.counts.missing
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        );
    }
    let during: Vec<(String, Option<i32>, f64)> = outcome
        .faults
        .iter()
        .filter_map(|f| {
            f.reconcile_while_down
                .map(|(code, secs)| (f.name.clone(), code, secs))
        })
        .collect();
    for (name, code, secs) in during {
        outcome.check(
            &format!("{name}: onhand reconcile during the fault fails cleanly"),
            matches!(code, Some(c) if c != 0),
            format!("exit {code:?} after {secs:.1} s (a non-zero exit, not a hang and not a pass)"),
        );
    }
    for f in &outcome.faults {
        outcome.checks.push(Check {
            name: format!("{}: onhand reconcile after recovery", f.name),
            ok: f.reconcile.exit_code == 0,
            detail: match f.drift_first {
                None => format!(
                    "exit {} (0: drift rate within the threshold, 3: above it)",
                    f.reconcile.exit_code
                ),
                Some((first, cleared)) => format!(
                    "first run exit {first} (drift); {} (0: drift rate within the threshold, 3: above it)",
                    match cleared {
                        Some(secs) => format!("cleared by itself: exit 0 {secs:.1} s later"),
                        None => format!("still exit {} after the deadline", f.reconcile.exit_code),
                    }
                ),
            },
        });
    }
    if let Some(o) = outcome.outage.clone() {
        outcome.check(
            "outage: lag alert fired",
            o.crossed_after_secs.is_some(),
            format!(
                "{} lag peaked at {:.1} s (threshold {LAG_ALERT_SECS} s)",
                o.channel, o.max_lag
            ),
        );
        outcome.check(
            "outage: lag alert cleared by itself",
            o.cleared_after_secs < RECOVERY_TIMEOUT.as_secs_f64(),
            format!(
                "under {LAG_ALERT_SECS} s {:.1} s after the channel came back",
                o.cleared_after_secs
            ),
        );
    }
    outcome.check(
        "the load saw only expected answers",
        t_unexpected(&outcome.totals) == 0,
        format!("{:?}", outcome.totals.load),
    );
    let all_running = world.ensure_running();
    outcome.check(
        "no service exited",
        all_running.is_ok(),
        all_running.err().map_or(
            "ledger, sandbox and projectors ran throughout".to_owned(),
            |e| format!("{e:#}"),
        ),
    );
    Ok(())
}

fn t_unexpected(t: &Totals) -> u64 {
    t.load.unexpected
}

async fn totals(world: &World, js: &Context, load: Counts) -> anyhow::Result<Totals> {
    let (produced, unpublished) = observe::outbox(&world.pg.url()).await?;
    let stream = observe::stream_stats(js, &channel_names()).await?;
    let mut channels = BTreeMap::new();
    for p in &world.projectors {
        let channel = p.channel.as_str();
        let text = observe::scrape(&world.http, &p.url).await?;
        let outcomes = [
            "applied",
            "unchanged",
            "coalesced",
            "stale",
            "retried",
            "dead_lettered",
            "poison",
        ]
        .into_iter()
        .map(|o| {
            (
                o.to_owned(),
                observe::metric(&text, "onhand_projector_events_total", Some(("outcome", o)))
                    .unwrap_or(0.0),
            )
        })
        .collect();
        let c = stream.consumers.get(channel).cloned().unwrap_or_default();
        channels.insert(
            channel.to_owned(),
            ChannelTotals {
                deliveries: c.deliveries,
                redelivered: c.deliveries.saturating_sub(c.delivered_stream_seq),
                outcomes,
                dead_letters: observe::dead_letters(world, channel).await?,
            },
        );
    }
    let final_reconcile = Some(observe::reconcile(world, Some(0), "final").await?);
    Ok(Totals {
        produced,
        unpublished,
        stream,
        relay_published: relay_counter(world, "onhand_outbox_published_total").await,
        relay_errors: relay_counter(world, "onhand_outbox_relay_errors_total").await,
        load,
        channels,
        final_reconcile,
        compared: 0,
    })
}
