//! `onhand top`: a live summary per channel, scraped from each projector's `/metrics`
//! (Prometheus text) every interval: events applied (`applied` + `unchanged`), coalesced,
//! retried, dead-lettered (`dead_lettered` + `poison`), lag, pending, channel API calls
//! (every `onhand_channel_requests_total` series of that projector) and calls/s.
//!
//! "Last error" is the newest of, with its age:
//! - the newest dead letter of the channel (`inventory.dlq.<channel>`: reason and code),
//!   read with one direct get per interval when NATS is reachable (`--nats-url`/`NATS_URL`);
//! - channel calls answered with a non-2xx status, a timeout or a connection error, seen as
//!   growth of `onhand_channel_requests_total` between two scrapes (before the first
//!   scrape only the totals are known, so they show without an age);
//! - growth of the `retried` outcome with no failed call behind it (e.g. a KV conflict);
//! - the projector's `/metrics` not answering.
//!
//! Redraws in place when stdout is a terminal (lines clipped to `COLUMNS` when it is set, so
//! none wraps), prints plain frames otherwise. `--once`
//! scrapes twice, one interval apart (for the rates), prints one frame and exits non-zero
//! when a projector did not answer.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::stream::{DirectGetErrorKind, Stream};
use onhand_common::event::{HEADER_DLQ_CODE, HEADER_DLQ_REASON};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// Longest "last error" text shown.
const ERROR_WIDTH: usize = 60;

#[derive(Debug, Clone, clap::Args)]
pub struct TopArgs {
    /// A projector to watch, as `<channel>=<base URL>` (its /metrics is scraped); repeat
    /// for each channel.
    #[arg(long = "projector", value_name = "CHANNEL=URL", required = true, value_parser = parse_endpoint)]
    pub projectors: Vec<Endpoint>,
    /// Scrape interval.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Print one snapshot (two scrapes one interval apart, for the rates) and exit.
    #[arg(long)]
    pub once: bool,
    /// NATS server, to read each channel's newest dead letter (optional).
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,
}

/// One projector's metrics endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub channel: String,
    pub metrics_url: String,
}

fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    let (channel, url) = s
        .split_once('=')
        .ok_or_else(|| format!("expected <channel>=<url>, got {s:?}"))?;
    if channel.is_empty() || !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("expected <channel>=http://host:port, got {s:?}"));
    }
    let url = url.trim_end_matches('/');
    let metrics_url = if url.ends_with("/metrics") {
        url.to_owned()
    } else {
        format!("{url}/metrics")
    };
    Ok(Endpoint {
        channel: channel.to_owned(),
        metrics_url,
    })
}

// --- Prometheus text format ------------------------------------------------------------

/// One sample line: `name{label="value",...} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the Prometheus text exposition format (comments and blank lines skipped). An
/// error names the line.
pub fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        samples.push(parse_line(line).map_err(|e| format!("line {}: {e}", i + 1))?);
    }
    Ok(samples)
}

fn parse_line(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("expected a metric name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            while chars
                .next_if(|(_, c)| c.is_whitespace() || *c == ',')
                .is_some()
            {}
            match chars.peek() {
                Some((i, '}')) => {
                    rest = &after[i + 1..];
                    break;
                }
                None => return Err("unclosed '{'".into()),
                Some(_) => {}
            }
            let mut key = String::new();
            while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=') {
                key.push(c);
            }
            let key = key.trim().to_owned();
            let equals = chars.next().is_some();
            while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
            if !equals || chars.next().map(|(_, c)| c) != Some('"') || key.is_empty() {
                return Err(format!("expected label=\"value\" after {:?}", key));
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some(c @ ('\\' | '"')) => value.push(c),
                        Some(c) => {
                            value.push('\\');
                            value.push(c);
                        }
                        None => return Err("unterminated label value".into()),
                    },
                    Some(c) => value.push(c),
                    None => return Err("unterminated label value".into()),
                }
            }
            labels.push((key, value));
        }
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("missing value")?;
    let value: f64 = value.parse().map_err(|_| format!("bad value {value:?}"))?;
    if fields.next().is_some_and(|ts| ts.parse::<i64>().is_err()) || fields.next().is_some() {
        return Err("unexpected text after the value".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

// --- what one scrape says ----------------------------------------------------------------

/// The numbers `top` shows, from one scrape of one projector.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// `onhand_projector_events_total` by outcome.
    pub events: BTreeMap<String, f64>,
    pub lag_secs: Option<f64>,
    pub pending: Option<f64>,
    /// `onhand_channel_requests_total` by status.
    pub requests: BTreeMap<String, f64>,
}

impl Snapshot {
    pub fn from_samples(samples: &[Sample]) -> Self {
        let mut s = Self::default();
        for sample in samples {
            match sample.name.as_str() {
                "onhand_projector_events_total" => {
                    let outcome = sample.label("outcome").unwrap_or("").to_owned();
                    *s.events.entry(outcome).or_default() += sample.value;
                }
                "onhand_channel_requests_total" => {
                    let status = sample.label("status").unwrap_or("").to_owned();
                    *s.requests.entry(status).or_default() += sample.value;
                }
                "onhand_projector_event_lag_seconds" => {
                    s.lag_secs = Some(s.lag_secs.unwrap_or(0.0).max(sample.value));
                }
                "onhand_projector_pending" => {
                    s.pending = Some(s.pending.unwrap_or(0.0) + sample.value);
                }
                _ => {}
            }
        }
        s
    }

    fn outcome(&self, names: &[&str]) -> f64 {
        names
            .iter()
            .map(|n| self.events.get(*n).copied().unwrap_or(0.0))
            .sum()
    }

    /// Every channel call (`None` when the projector exports none, e.g. a KV channel).
    pub fn calls(&self) -> Option<f64> {
        (!self.requests.is_empty()).then(|| self.requests.values().fold(0.0, |a, b| a + b))
    }

    /// Calls that failed, by status (non-2xx, `timeout`, `error`).
    fn failed_calls(&self) -> impl Iterator<Item = (&String, f64)> {
        self.requests
            .iter()
            .filter(|(status, n)| !status.starts_with('2') && **n > 0.0)
            .map(|(status, n)| (status, *n))
    }
}

/// A failure and when it was seen (`None`: before `top` started).
#[derive(Debug, Clone, PartialEq)]
pub struct LastError {
    pub at: Option<OffsetDateTime>,
    pub text: String,
}

/// The newest dead letter of a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub sequence: u64,
    pub at: OffsetDateTime,
    pub reason: String,
}

/// One channel's line, across scrapes.
#[derive(Debug, Clone)]
pub struct Row {
    pub endpoint: Endpoint,
    pub current: Option<Snapshot>,
    /// The last scrape that answered, and when.
    previous: Option<(OffsetDateTime, Snapshot)>,
    pub calls_per_sec: Option<f64>,
    pub down: Option<String>,
    pub last_error: Option<LastError>,
    dead_letter_seen: Option<u64>,
}

fn describe_failed(status: &str, n: f64) -> String {
    let what = if status.chars().all(|c| c.is_ascii_digit()) {
        format!("HTTP {status}")
    } else {
        status.to_owned()
    };
    format!("{what} ×{n}")
}

impl Row {
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            current: None,
            previous: None,
            calls_per_sec: None,
            down: None,
            last_error: None,
            dead_letter_seen: None,
        }
    }

    fn set_error(&mut self, at: Option<OffsetDateTime>, text: String) {
        let newer = match (&self.last_error, at) {
            (None, _) => true,
            (Some(old), Some(at)) => old.at.is_none_or(|old| at >= old),
            (Some(_), None) => false,
        };
        if newer {
            self.last_error = Some(LastError { at, text });
        }
    }

    /// Takes in one scrape made at `now`.
    pub fn observe(&mut self, scrape: Result<Snapshot, String>, now: OffsetDateTime) {
        let snap = match scrape {
            Ok(snap) => snap,
            Err(e) => {
                self.set_error(Some(now), format!("metrics: {e}"));
                self.down = Some(e);
                return;
            }
        };
        self.down = None;
        match &self.previous {
            None => {
                let failed: Vec<String> = snap
                    .failed_calls()
                    .map(|(s, n)| describe_failed(s, n))
                    .collect();
                if !failed.is_empty() {
                    self.set_error(None, format!("{} before top started", failed.join(", ")));
                }
            }
            Some((then, prev)) => {
                let secs = (now - *then).as_seconds_f64();
                if secs > 0.0 {
                    self.calls_per_sec = snap
                        .calls()
                        .map(|n| ((n - prev.calls().unwrap_or(0.0)) / secs).max(0.0));
                }
                let grown: Vec<String> = snap
                    .failed_calls()
                    .filter_map(|(status, n)| {
                        let before = prev.requests.get(status).copied().unwrap_or(0.0);
                        (n > before).then(|| describe_failed(status, n - before))
                    })
                    .collect();
                let retried = snap.outcome(&["retried"]) - prev.outcome(&["retried"]);
                if !grown.is_empty() {
                    self.set_error(Some(now), grown.join(", "));
                } else if retried > 0.0 {
                    self.set_error(Some(now), format!("{retried} events retried"));
                }
            }
        }
        self.previous = Some((now, snap.clone()));
        self.current = Some(snap);
    }

    /// Takes in the channel's newest dead letter.
    pub fn observe_dead_letter(&mut self, letter: &DeadLetter) {
        if self.dead_letter_seen == Some(letter.sequence) {
            return;
        }
        self.dead_letter_seen = Some(letter.sequence);
        self.set_error(Some(letter.at), format!("dead letter: {}", letter.reason));
    }
}

// --- drawing -----------------------------------------------------------------------------

fn age(now: OffsetDateTime, at: Option<OffsetDateTime>) -> String {
    let Some(at) = at else {
        return "earlier".into();
    };
    let secs = (now - at).whole_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s => format!("{}h ago", s / 3600),
    }
}

fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(width - 1).collect();
    out.push('…');
    out
}

fn count(n: Option<f64>) -> String {
    n.map_or_else(|| "-".into(), |n| format!("{n:.0}"))
}

/// The table, one line per channel. Given a `width` too narrow for a useful last-error
/// column, the last errors follow the table, one line per channel that has one.
pub fn render(rows: &[Row], now: OffsetDateTime, width: Option<usize>) -> Vec<String> {
    let numbers = |cells: [&str; 9]| {
        format!(
            "{:<13} {:>7} {:>9} {:>7} {:>5} {:>6} {:>7} {:>7} {:>7}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            cells[6],
            cells[7],
            cells[8]
        )
    };
    let header = numbers([
        "CHANNEL",
        "APPLIED",
        "COALESCED",
        "RETRIED",
        "DLQ",
        "LAG s",
        "PENDING",
        "CALLS",
        "CALLS/s",
    ]);
    let error_width = match width {
        None => Some(ERROR_WIDTH),
        Some(w) => Some(w.saturating_sub(header.len() + 2)).filter(|e| *e >= 24),
    };
    let mut lines = vec![match error_width {
        Some(_) => format!("{header}  LAST ERROR"),
        None => header,
    }];
    let mut errors = Vec::new();
    for row in rows {
        let snap = row.current.as_ref();
        let pick = |names: &[&str]| count(snap.map(|s| s.outcome(names)));
        let lag = snap
            .and_then(|s| s.lag_secs)
            .map_or_else(|| "-".into(), |l| format!("{l:.2}"));
        let rate = row
            .calls_per_sec
            .map_or_else(|| "-".into(), |r| format!("{r:.1}"));
        let channel = clip(&row.endpoint.channel, 13);
        let line = numbers([
            &channel,
            &pick(&["applied", "unchanged"]),
            &pick(&["coalesced"]),
            &pick(&["retried"]),
            &pick(&["dead_lettered", "poison"]),
            &lag,
            &count(snap.and_then(|s| s.pending)),
            &count(snap.and_then(Snapshot::calls)),
            &rate,
        ]);
        let error = match (&row.down, &row.last_error) {
            (Some(down), _) => Some(format!("DOWN {down}")),
            (None, Some(e)) => Some(format!("{} {}", age(now, e.at), e.text)),
            (None, None) => None,
        };
        match error_width {
            Some(w) => lines.push(format!(
                "{line}  {}",
                clip(error.as_deref().unwrap_or("-"), w)
            )),
            None => {
                lines.push(line);
                if let Some(error) = error {
                    errors.push(format!("  {}: {error}", row.endpoint.channel));
                }
            }
        }
    }
    if !errors.is_empty() {
        lines.push("last errors:".into());
        lines.extend(errors);
    }
    lines
}

// --- running -----------------------------------------------------------------------------

async fn scrape(http: &reqwest::Client, url: &str) -> Result<Snapshot, String> {
    let resp = http.get(url).send().await.map_err(|e| {
        if e.is_connect() {
            "connection refused".to_owned()
        } else if e.is_timeout() {
            "timed out".to_owned()
        } else {
            e.to_string()
        }
    })?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status().as_u16()));
    }
    let text = resp.text().await.map_err(|e| e.to_string())?;
    Ok(Snapshot::from_samples(&parse_prometheus(&text)?))
}

/// The DLQ stream, when NATS is reachable.
async fn dlq_stream(nats_url: Option<&str>) -> (Option<Stream>, Option<String>) {
    let Some(url) = nats_url else {
        return (None, Some("dead letters not read (no --nats-url)".into()));
    };
    let connect = async {
        let client = onhand_common::NatsUrl::parse("--nats-url", url)?
            .connect("onhand-top")
            .await?;
        let js = async_nats::jetstream::new(client);
        Ok::<_, async_nats::Error>(js.get_stream(onhand_streams::names::DLQ_STREAM).await?)
    };
    match tokio::time::timeout(Duration::from_secs(3), connect).await {
        Ok(Ok(stream)) => (Some(stream), None),
        Ok(Err(e)) => (None, Some(format!("dead letters not read: {e}"))),
        Err(_) => (
            None,
            Some(format!("dead letters not read: {url} did not answer")),
        ),
    }
}

async fn newest_dead_letter(stream: &Stream, channel: &str) -> Option<DeadLetter> {
    match stream
        .direct_get_last_for_subject(onhand_projector::dlq::subject(channel))
        .await
    {
        Ok(m) => {
            let header = |n: &str| m.headers.get(n).map(|v| v.as_str().to_owned());
            let mut reason = header(HEADER_DLQ_REASON).unwrap_or_default();
            if let Some(code) = header(HEADER_DLQ_CODE) {
                reason = format!("{code}: {reason}");
            }
            Some(DeadLetter {
                sequence: m.sequence,
                at: m.time,
                reason,
            })
        }
        Err(e) if e.kind() == DirectGetErrorKind::NotFound => None,
        Err(e) => {
            tracing::debug!(error = %e, channel, "reading the newest dead letter failed");
            None
        }
    }
}

async fn sample(http: &reqwest::Client, dlq: Option<&Stream>, rows: &mut [Row]) {
    let scrapes =
        futures::future::join_all(rows.iter().map(|r| scrape(http, &r.endpoint.metrics_url))).await;
    let now = OffsetDateTime::now_utc();
    for (row, result) in rows.iter_mut().zip(scrapes) {
        row.observe(result, now);
        if let Some(stream) = dlq
            && let Some(letter) = newest_dead_letter(stream, &row.endpoint.channel).await
        {
            row.observe_dead_letter(&letter);
        }
    }
}

fn frame(
    rows: &[Row],
    note: Option<&str>,
    interval: Duration,
    width: Option<usize>,
) -> Vec<String> {
    let now = OffsetDateTime::now_utc();
    let clock = format!(
        "{:02}:{:02}:{:02} UTC",
        now.hour(),
        now.minute(),
        now.second()
    );
    let mut lines = vec![format!(
        "onhand top  {clock}  {} projectors, every {} ms",
        rows.len(),
        interval.as_millis()
    )];
    lines.extend(render(rows, now, width));
    if let Some(note) = note {
        lines.push(note.to_owned());
    }
    lines
}

/// Scrapes until `shutdown` (or once with `--once`).
pub async fn run(args: TopArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let interval = Duration::from_millis(args.interval_ms.max(100));
    let http = reqwest::Client::builder()
        .timeout(interval.min(Duration::from_secs(2)))
        .build()
        .context("building the HTTP client")?;
    let (dlq, note) = dlq_stream(args.nats_url.as_deref()).await;
    let mut rows: Vec<Row> = args.projectors.into_iter().map(Row::new).collect();
    let mut out = std::io::stdout().lock();
    if args.once {
        sample(&http, dlq.as_ref(), &mut rows).await;
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return Ok(()),
        }
        sample(&http, dlq.as_ref(), &mut rows).await;
        for line in frame(&rows, note.as_deref(), interval, None) {
            writeln!(out, "{line}")?;
        }
        let down: Vec<&str> = rows
            .iter()
            .filter(|r| r.down.is_some())
            .map(|r| r.endpoint.channel.as_str())
            .collect();
        if !down.is_empty() {
            anyhow::bail!("no metrics from: {}", down.join(", "));
        }
        return Ok(());
    }
    let terminal = std::io::stdout().is_terminal();
    // A wrapped line would break the redraw, so lines are clipped to COLUMNS when set.
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|w| terminal && *w > 20);
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut drawn = 0;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => {
                sample(&http, dlq.as_ref(), &mut rows).await;
                let lines = frame(&rows, note.as_deref(), interval, width);
                if terminal && drawn > 0 {
                    // Back to the top of the last frame, and clear it.
                    write!(out, "\x1b[{drawn}A\x1b[J")?;
                }
                for line in &lines {
                    match width {
                        Some(width) => writeln!(out, "{}", clip(line, width - 1))?,
                        None => writeln!(out, "{line}")?,
                    }
                }
                if !terminal {
                    writeln!(out)?;
                }
                out.flush()?;
                drawn = lines.len();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = r#"# TYPE onhand_projector_events_total counter
onhand_projector_events_total{channel="shopify",outcome="applied"} 40
onhand_projector_events_total{channel="shopify",outcome="unchanged"} 2
onhand_projector_events_total{channel="shopify",outcome="coalesced"} 7
onhand_projector_events_total{channel="shopify",outcome="retried"} 3
onhand_projector_events_total{channel="shopify",outcome="dead_lettered"} 1
onhand_projector_events_total{channel="shopify",outcome="poison"} 1

# TYPE onhand_projector_event_lag_seconds gauge
onhand_projector_event_lag_seconds{channel="shopify"} 0.25
onhand_projector_pending{channel="shopify"} 4
onhand_channel_requests_total{channel="shopify",status="200"} 10
onhand_channel_requests_total{channel="shopify",status="429"} 2
onhand_projection_latency_seconds_bucket{channel="shopify",le="+Inf"} 42
onhand_projection_latency_seconds_sum{channel="shopify"} 1.5e0
"#;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(1_000_000 + secs)
    }

    fn endpoint() -> Endpoint {
        parse_endpoint("shopify=http://127.0.0.1:9100").expect("endpoint")
    }

    #[test]
    fn parses_names_labels_values_and_skips_comments() {
        let samples = parse_prometheus(SCRAPE).expect("parses");
        assert_eq!(samples.len(), 12);
        assert_eq!(samples[0].name, "onhand_projector_events_total");
        assert_eq!(samples[0].label("outcome"), Some("applied"));
        assert_eq!(samples[0].value, 40.0);
        assert_eq!(samples[10].label("le"), Some("+Inf"));
        assert_eq!(samples[11].value, 1.5);
    }

    #[test]
    fn parses_escapes_odd_spacing_timestamps_and_special_values() {
        let text = concat!(
            "up 1\n",
            "  x{a=\"q\\\"uote\",b=\"back\\\\slash\",c=\"new\\nline\",} +Inf 1700000000000\n",
            "y{ a = \"1,}\" } NaN\n",
            "z{} -2.5e-3\n",
        );
        let s = parse_prometheus(text).expect("parses");
        assert_eq!(
            (s[0].name.as_str(), s[0].labels.len(), s[0].value),
            ("up", 0, 1.0)
        );
        assert_eq!(
            s[1].labels,
            vec![
                ("a".into(), "q\"uote".into()),
                ("b".into(), "back\\slash".into()),
                ("c".into(), "new\nline".into())
            ]
        );
        assert!(s[1].value.is_infinite());
        assert_eq!(s[2].label("a"), Some("1,}"));
        assert!(s[2].value.is_nan());
        assert_eq!(s[3].value, -0.0025);
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        for bad in [
            "m{a=\"1\" 2",
            "m{a=1} 2",
            "m{a=\"1} 2",
            "m",
            "m abc",
            "m 1 2 3",
            "9m 1",
            "{a=\"1\"} 2",
        ] {
            let text = format!("ok 1\n{bad}\n");
            let err = parse_prometheus(&text).expect_err(bad);
            assert!(err.starts_with("line 2:"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_snapshot_sums_what_top_shows() {
        let snap = Snapshot::from_samples(&parse_prometheus(SCRAPE).expect("parses"));
        assert_eq!(snap.outcome(&["applied", "unchanged"]), 42.0);
        assert_eq!(snap.outcome(&["dead_lettered", "poison"]), 2.0);
        assert_eq!((snap.lag_secs, snap.pending), (Some(0.25), Some(4.0)));
        assert_eq!(snap.calls(), Some(12.0));
        let empty = Snapshot::from_samples(&[]);
        assert_eq!((empty.lag_secs, empty.calls()), (None, None));
    }

    #[test]
    fn endpoints_get_metrics_paths() {
        assert_eq!(endpoint().metrics_url, "http://127.0.0.1:9100/metrics");
        assert_eq!(
            parse_endpoint("ebay=http://h:1/metrics/")
                .expect("endpoint")
                .metrics_url,
            "http://h:1/metrics"
        );
        assert!(parse_endpoint("ebay").is_err());
        assert!(parse_endpoint("=http://h:1").is_err());
        assert!(parse_endpoint("ebay=h:1").is_err());
    }

    fn snap(ok: f64, throttled: f64, retried: f64) -> Snapshot {
        Snapshot {
            events: BTreeMap::from([("retried".to_owned(), retried)]),
            requests: BTreeMap::from([("200".to_owned(), ok), ("429".to_owned(), throttled)]),
            ..Snapshot::default()
        }
    }

    #[test]
    fn rates_and_last_errors_come_from_growth_between_scrapes() {
        let mut row = Row::new(endpoint());
        row.observe(Ok(snap(10.0, 2.0, 0.0)), at(0));
        assert_eq!(row.calls_per_sec, None);
        let first = row.last_error.clone().expect("totals before top started");
        assert_eq!(
            (first.at, first.text.as_str()),
            (None, "HTTP 429 ×2 before top started")
        );

        row.observe(Ok(snap(30.0, 2.0, 0.0)), at(2));
        assert_eq!(row.calls_per_sec, Some(10.0));
        assert_eq!(
            row.last_error,
            Some(first),
            "no new failure, nothing changes"
        );

        row.observe(Ok(snap(30.0, 5.0, 3.0)), at(3));
        let e = row.last_error.clone().expect("429s");
        assert_eq!((e.at, e.text.as_str()), (Some(at(3)), "HTTP 429 ×3"));

        row.observe(Ok(snap(30.0, 5.0, 4.0)), at(4));
        assert_eq!(
            row.last_error.as_ref().map(|e| e.text.as_str()),
            Some("1 events retried")
        );

        row.observe(Err("connection refused".into()), at(5));
        assert_eq!(row.down.as_deref(), Some("connection refused"));
        assert_eq!(
            row.last_error.as_ref().map(|e| e.text.as_str()),
            Some("metrics: connection refused")
        );
        row.observe(Ok(snap(40.0, 5.0, 4.0)), at(6));
        assert_eq!(row.down, None);
        assert_eq!(
            row.calls_per_sec,
            Some(5.0),
            "rate over the gap since the last answer"
        );
    }

    #[test]
    fn the_newest_dead_letter_wins_only_when_newer() {
        let mut row = Row::new(endpoint());
        row.observe(Ok(snap(1.0, 0.0, 0.0)), at(0));
        row.observe(Ok(snap(1.0, 1.0, 0.0)), at(10));
        let letter = DeadLetter {
            sequence: 7,
            at: at(5),
            reason: "unknown_sku: not on the channel".into(),
        };
        row.observe_dead_letter(&letter);
        assert_eq!(
            row.last_error.as_ref().map(|e| e.text.as_str()),
            Some("HTTP 429 ×1")
        );
        let newer = DeadLetter {
            sequence: 8,
            at: at(11),
            ..letter
        };
        row.observe_dead_letter(&newer);
        assert_eq!(
            row.last_error.as_ref().map(|e| e.text.as_str()),
            Some("dead letter: unknown_sku: not on the channel")
        );
    }

    #[test]
    fn the_table_has_a_line_per_channel_with_dashes_for_the_unknown() {
        let mut ok = Row::new(endpoint());
        ok.observe(
            Ok(Snapshot::from_samples(
                &parse_prometheus(SCRAPE).expect("parses"),
            )),
            at(0),
        );
        let mut down = Row::new(parse_endpoint("ebay=http://h:1").expect("endpoint"));
        down.observe(Err("timed out".into()), at(0));
        let lines = render(&[ok, down], at(3), None);
        assert_eq!(lines.len(), 3);
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells[..9],
            ["shopify", "42", "7", "3", "2", "0.25", "4", "12", "-"]
        );
        assert!(lines[1].ends_with("earlier HTTP 429 ×2 before top started"));
        assert!(lines[2].starts_with("ebay "));
        assert!(lines[2].ends_with("DOWN timed out"));
        assert!(lines[2].contains(" - "));
    }

    #[test]
    fn a_narrow_terminal_gets_the_last_errors_below_the_table() {
        let mut ok = Row::new(endpoint());
        ok.observe(Ok(snap(1.0, 0.0, 0.0)), at(0));
        let mut down = Row::new(parse_endpoint("ebay=http://h:1").expect("endpoint"));
        down.observe(Err("timed out".into()), at(0));
        let rows = [ok, down];
        let wide = render(&rows, at(1), Some(120));
        assert_eq!(wide.len(), 3);
        assert!(wide[0].ends_with("LAST ERROR"));
        assert!(wide.iter().all(|l| l.chars().count() <= 120));
        assert!(wide[2].ends_with("DOWN timed out"));
        let narrow = render(&rows, at(1), Some(80));
        assert!(!narrow[0].contains("LAST ERROR"));
        assert_eq!(&narrow[3..], ["last errors:", "  ebay: DOWN timed out"]);
        assert!(narrow.iter().all(|l| l.chars().count() <= 80));
    }

    #[test]
    fn ages_and_clipping() {
        assert_eq!(age(at(100), Some(at(95))), "5s ago");
        assert_eq!(age(at(1000), Some(at(100))), "15m ago");
        assert_eq!(age(at(0), None), "earlier");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }
}
