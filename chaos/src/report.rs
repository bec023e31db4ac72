//! The run's report as Markdown: printed by every run, written to docs/CHAOS.md by the
//! full one.

use std::fmt::Write as _;

use crate::scenarios::Profile;
use crate::verdict::Outcome;

/// Where and how the run happened.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub command: String,
    pub date: String,
    pub machine: String,
    pub nats_version: String,
    pub postgres_version: String,
    pub duration_secs: f64,
}

/// CPU model, cores, memory and kernel, from /proc.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {cores} cores, {mem_gib:.0} GiB RAM, Linux {}",
        kernel.trim()
    )
}

fn secs(s: f64) -> String {
    format!("{s:.1} s")
}

pub fn render(
    profile: &Profile,
    info: &RunInfo,
    outcome: &Outcome,
) -> Result<String, std::fmt::Error> {
    let mut o = String::new();
    let passed = outcome.checks.iter().all(|c| c.ok);
    writeln!(o, "# Fault suite (`scripts/chaos`)\n")?;
    writeln!(
        o,
        "Run on {} by `{}` ({} profile), {:.1} minutes; {}.\n",
        info.date,
        info.command,
        profile.name,
        info.duration_secs / 60.0,
        if passed {
            "**every check passed**"
        } else {
            "**some checks FAILED**"
        }
    )?;
    writeln!(o, "- Machine: {}", info.machine)?;
    writeln!(
        o,
        "- NATS: three nodes of `{}` on loopback (cluster routes, JetStream, a store each); every stream and KV bucket at R3 (`onhand streams apply --dir` with the definitions' `num_replicas` set to 3)",
        info.nats_version
    )?;
    writeln!(
        o,
        "- Postgres: `{}`, an instance of the run's own (initdb in a directory of its own, a free port; not the machine's shared server)",
        info.postgres_version
    )?;
    writeln!(
        o,
        "- Services, each a child process given all three NATS URLs: `onhand ledger` (API, outbox relay, sweeper), `onhand sandbox`, `onhand projector` for shopify (80 %, buffer 1), woocommerce and bigcommerce (buffer 2); `onhand reconcile --all` after every recovery and at the end"
    )?;
    writeln!(
        o,
        "- Load: {} ledger requests/s (open loop) on {} SKUs in 2 warehouses: receipts 30 %, cart reservations with 2-6 s TTLs left to expire 25 %, marketplace orders 25 %, adjustments 10 %, order cancellations 10 %; it runs from before the first fault until after the last\n",
        profile.rate, profile.skus
    )?;

    writeln!(o, "## Infrastructure faults and recovery\n")?;
    writeln!(
        o,
        "Recovered = a receipt written after the fault went through the ledger, Postgres, the relay and NATS and was acknowledged by every projector (an end-to-end probe, retried until the ledger takes it); then every NATS node healthy, the ledger and every projector ready, the outbox backlog and every consumer's pending under 100 messages, the oldest unacknowledged event of every consumer at most 2 s old and every projector's `onhand_projector_event_lag_seconds` at most 2 s. *Served while down*: the same, with the killed node still down. No step is manual: the harness only kills and starts the faulty part.\n\n\
         When the node that dies leads the stream, a projector's consumer or the watermarks bucket, or when the whole cluster goes down, the acks, naks and watermark writes a projector sends meanwhile go into the void; the stream hands those messages out again after the consumer's ack wait (30 s by default, `ONHAND_PROJECTOR__ACK_WAIT_SECS`), which bounds those recoveries (the lags of about 30 s below). While Postgres is down the ledger refuses writes (5xx) and `onhand reconcile` exits non-zero; the relay and the sweeper reconnect by themselves.\n"
    )?;
    writeln!(
        o,
        "| fault | down | served while down | recovered after restart | fault to recovered | max lag shopify / woocommerce / bigcommerce | ledger requests ok / failed or skipped (5xx, timeouts, every slot busy) | events produced | relay errors | reconcile after |"
    )?;
    writeln!(o, "|---|---|---|---|---|---|---|---|---|---|")?;
    for f in &outcome.faults {
        let lags = ["shopify", "woocommerce", "bigcommerce"]
            .iter()
            .map(|c| {
                f.max_lag
                    .get(*c)
                    .map_or("-".to_owned(), |l| format!("{l:.1}"))
            })
            .collect::<Vec<_>>()
            .join(" / ");
        writeln!(
            o,
            "| {}: {} | {} | {} | {} | {} | {} s | {} / {} | {} | {:.0} | {}exit {}, drift {} |",
            f.name,
            f.fault,
            secs(f.down_secs),
            f.served_while_down_secs.map_or("-".to_owned(), secs),
            secs(f.after_restore_secs),
            secs(f.recovery_secs),
            lags,
            f.load.ok + f.load.refused,
            f.load.failed + f.load.skipped,
            f.events,
            f.relay_errors,
            f.reconcile_while_down
                .map_or(String::new(), |(code, secs)| format!(
                    "while down: exit {} in {secs:.1} s; after: ",
                    code.map_or("none (killed)".to_owned(), |c| c.to_string())
                )),
            f.reconcile.exit_code,
            f.reconcile
                .channels
                .iter()
                .map(|c| c.counts.drift)
                .sum::<u64>(),
        )?;
    }

    if let Some(out) = &outcome.outage {
        writeln!(o, "\n## Channel faults and the lag alert\n")?;
        writeln!(
            o,
            "Sandbox faults on every channel: {}. Meanwhile {} answered every call with a 5xx for {}. A failed push is nak'd with a delay that doubles per delivery up to 30 s (`ONHAND_PROJECTOR__RETRY_MAX_MS`), so the first retry after a long outage comes up to 30 s after the channel is back, and under the 30 % faults still on a retry may fail again: the alert clears within one or two of those delays.\n",
            out.faults,
            out.channel,
            secs(out.outage_secs)
        )?;
        writeln!(o, "| | |\n|---|---|")?;
        writeln!(
            o,
            "| {} lag crossed 60 s (alert fires) | {} |",
            out.channel,
            out.crossed_after_secs
                .map_or("never".to_owned(), |s| format!("{s:.1} s into the outage"))
        )?;
        writeln!(o, "| {} peak lag | {} |", out.channel, secs(out.max_lag))?;
        writeln!(
            o,
            "| {} lag back under 60 s (alert clears) | {} after the channel came back |",
            out.channel,
            secs(out.cleared_after_secs)
        )?;
        writeln!(
            o,
            "| every channel caught up once the faults were lifted | {} |",
            secs(out.caught_up_after_secs)
        )?;
        for (c, l) in &out.max_lag_others {
            writeln!(o, "| {c} peak lag under 30 % faults | {} |", secs(*l))?;
        }
        for (c, n) in &out.retried {
            writeln!(o, "| {c} events retried (nak with backoff) | {n:.0} |")?;
        }
    }

    let t = &outcome.totals;
    writeln!(o, "\n## Events\n")?;
    writeln!(o, "| | |\n|---|---|")?;
    writeln!(o, "| produced (ledger outbox rows) | {} |", t.produced)?;
    writeln!(
        o,
        "| in the INVENTORY stream | {} (last sequence {}) |",
        t.stream.messages, t.stream.last_seq
    )?;
    writeln!(
        o,
        "| relay PubAcks (`onhand_outbox_published_total`) | {:.0} |",
        t.relay_published
    )?;
    writeln!(
        o,
        "| deduplicated by the stream (`Nats-Msg-Id` republished after a lost PubAck or mark: PubAcks − messages) | {:.0} |",
        (t.relay_published - t.stream.messages as f64).max(0.0)
    )?;
    writeln!(
        o,
        "| relay errors (`onhand_outbox_relay_errors_total`) | {:.0} |",
        t.relay_errors
    )?;
    writeln!(
        o,
        "| ledger requests: sent / ok / refused (409, 404) / failed / skipped (all slots busy) | {} / {} / {} / {} / {} |",
        t.load.sent, t.load.ok, t.load.refused, t.load.failed, t.load.skipped
    )?;
    writeln!(
        o,
        "\n| channel | deliveries | redelivered | applied | unchanged | coalesced | stale (duplicate dropped by the version guard) | retried | dead letters |"
    )?;
    writeln!(o, "|---|---|---|---|---|---|---|---|---|")?;
    for (c, ct) in &t.channels {
        let n = |k: &str| ct.outcomes.get(k).copied().unwrap_or(0.0);
        writeln!(
            o,
            "| {c} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
            ct.deliveries,
            ct.redelivered,
            n("applied"),
            n("unchanged"),
            n("coalesced"),
            n("stale"),
            n("retried"),
            ct.dead_letters
        )?;
    }
    writeln!(
        o,
        "\nDeliveries and redelivered are the durable consumers' own counts (consumer sequence, and consumer sequence − stream sequence); the outcome counts are each projector's `onhand_projector_events_total`.\n"
    )?;

    writeln!(o, "## Checks\n")?;
    writeln!(o, "| check | result | detail |\n|---|---|---|")?;
    for c in &outcome.checks {
        writeln!(
            o,
            "| {} | {} | {} |",
            c.name,
            if c.ok { "ok" } else { "FAILED" },
            c.detail.replace('|', "\\|").replace('\n', " ")
        )?;
    }
    Ok(o)
}
