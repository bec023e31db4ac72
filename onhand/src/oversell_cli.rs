//! `onhand simulate oversell`: the oversell simulator (crate `onhand-simulator`) from the
//! command line. Prints, per scenario (`--preset small|large`, both when not given), the
//! cron against event-driven sync with and without reservations: oversells per week and per
//! hour with 95% confidence intervals over `--seeds` seeds, or JSON with `--json`; or, with
//! `--charts DIR`, writes `oversell-vs-interval.svg` and `oversell-vs-buffer.svg` there.
//! Every model parameter is a flag that overrides the preset's value. docs/OVERSELL.md
//! describes the model.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use onhand_simulator::experiment::{self, ModeSummary};
use onhand_simulator::figures;
use onhand_simulator::{ChannelParams, DelayDistribution, Mode, Params, Preset, Sync};
use serde::Serialize;

/// Where `scripts/bench` writes the projector's propagation delays.
pub const DEFAULT_DELAYS: &str = "docs/results/projector-propagation.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PresetArg {
    /// 2 channels, 500 SKUs, 30 sales/hour.
    Small,
    /// 5 channels, 2,000 SKUs, 200 sales/hour.
    Large,
}

#[derive(Debug, Clone, clap::Args)]
pub struct OversellArgs {
    /// The scenario DESIGN.md §1 cites; both when not given.
    #[arg(long, value_enum)]
    pub preset: Option<PresetArg>,
    /// Runs (seeds) per mode; the confidence intervals are over them.
    #[arg(long, default_value_t = 20)]
    pub seeds: u64,
    /// The first seed; runs use seeds first-seed .. first-seed + seeds.
    #[arg(long, default_value_t = 1)]
    pub first_seed: u64,
    /// Threads running seeds (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// The projector benchmark's results (`{"samples_ms": [..], ..}`): the event-driven
    /// propagation delays.
    #[arg(long, default_value = DEFAULT_DELAYS)]
    pub delays: PathBuf,
    /// The cron's sync interval in minutes (0 = refresh after every change).
    #[arg(long, default_value_t = onhand_simulator::params::CITED_CRON_MINUTES)]
    pub interval_minutes: f64,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Write the charts (oversells against the cron interval and against the buffer) to
    /// this directory instead of printing the comparison.
    #[arg(long, value_name = "DIR")]
    pub charts: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Overrides of the preset's parameters (docs/OVERSELL.md: their meaning and defaults).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ModelArgs {
    /// SKUs in the catalogue.
    #[arg(long)]
    pub skus: Option<usize>,
    /// Popularity: the SKU of rank k sells in proportion to 1/k^exponent.
    #[arg(long)]
    pub zipf_exponent: Option<f64>,
    /// Mean units a SKU holds above its reorder point after a restock (1 + geometric); also
    /// the restock batch.
    #[arg(long)]
    pub depth_mean: Option<f64>,
    /// Demand over all channels in orders per hour (daily mean).
    #[arg(long)]
    pub sales_per_hour: Option<f64>,
    /// Each channel's share of the demand, comma-separated; sets the number of channels.
    #[arg(long, value_delimiter = ',')]
    pub channel_shares: Option<Vec<f64>>,
    /// How many channels, the first ones, reserve stock at add-to-cart when reservations
    /// are on (storefronts); the others are marketplaces.
    #[arg(long)]
    pub reserving_channels: Option<usize>,
    /// Daily cycle: demand at hour h is mean × (1 + a·cos(2π(h − peak)/24)); this is a.
    #[arg(long)]
    pub peak_amplitude: Option<f64>,
    /// Hour of the day (0–24) of peak demand.
    #[arg(long)]
    pub peak_hour: Option<f64>,
    /// Hours from a restock order to the units on hand.
    #[arg(long)]
    pub lead_time_hours: Option<f64>,
    /// Reorder point in hours of the SKU's mean demand (0 = reorder when sold out).
    #[arg(long)]
    pub reorder_cover_hours: Option<f64>,
    /// Share of carts abandoned, 0–1.
    #[arg(long)]
    pub abandon_share: Option<f64>,
    /// Mean minutes from cart to order.
    #[arg(long)]
    pub checkout_minutes: Option<f64>,
    /// Minutes an abandoned cart's reservation lives.
    #[arg(long)]
    pub cart_ttl_minutes: Option<f64>,
    /// Units held back from every channel's displayed quantity.
    #[arg(long)]
    pub buffer: Option<u32>,
    /// Hours simulated before counting.
    #[arg(long)]
    pub warmup_hours: Option<f64>,
    /// Hours counted per run.
    #[arg(long)]
    pub horizon_hours: Option<f64>,
}

impl ModelArgs {
    /// The preset's parameters with the overrides given, validated.
    fn apply(&self, preset: Preset) -> anyhow::Result<Params> {
        let mut p = preset.params();
        macro_rules! set {
            ($($field:ident),*) => {$( if let Some(v) = self.$field { p.$field = v; } )*};
        }
        set!(
            skus,
            zipf_exponent,
            depth_mean,
            sales_per_hour,
            peak_amplitude,
            peak_hour,
            lead_time_hours,
            reorder_cover_hours,
            abandon_share,
            checkout_minutes,
            cart_ttl_minutes,
            buffer,
            warmup_hours,
            horizon_hours
        );
        if let Some(shares) = &self.channel_shares {
            if shares.len() != p.channels.len() {
                p.channels = (0..shares.len())
                    .map(|i| ChannelParams {
                        name: format!("channel-{}", i + 1),
                        share: 0.0,
                        reserves: i == 0,
                    })
                    .collect();
            }
            for (channel, &share) in p.channels.iter_mut().zip(shares) {
                channel.share = share;
            }
        }
        if let Some(k) = self.reserving_channels {
            anyhow::ensure!(
                k <= p.channels.len(),
                "--reserving-channels {k}: there are only {} channels",
                p.channels.len()
            );
            for (i, channel) in p.channels.iter_mut().enumerate() {
                channel.reserves = i < k;
            }
        }
        p.validate()
            .with_context(|| format!("the {} scenario's parameters", preset.name()))?;
        Ok(p)
    }
}

pub fn run(args: OversellArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    execute(&args, &mut out)
}

/// Reads and validates the propagation delays, naming the file in every error.
pub fn load_delays(path: &Path) -> anyhow::Result<DelayDistribution> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the propagation delays {}: the projector benchmark writes it \
             (scripts/bench projector); or pass --delays FILE",
            path.display()
        )
    })?;
    DelayDistribution::from_json(&text)
        .with_context(|| format!("the propagation delays {} are not usable", path.display()))
}

#[derive(Debug, Serialize)]
struct DelaysReport {
    path: String,
    samples: usize,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct ScenarioReport {
    preset: Preset,
    cited: &'static str,
    params: Params,
    seeds: Vec<u64>,
    modes: Vec<ModeSummary>,
}

fn execute(args: &OversellArgs, out: &mut impl Write) -> anyhow::Result<()> {
    anyhow::ensure!(args.seeds >= 1, "--seeds must be at least 1");
    let presets = match args.preset {
        Some(PresetArg::Small) => vec![Preset::Small],
        Some(PresetArg::Large) => vec![Preset::Large],
        None => Preset::ALL.to_vec(),
    };
    let scenarios = presets
        .into_iter()
        .map(|preset| Ok((preset, args.model.apply(preset)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cron = Mode {
        sync: Sync::Cron {
            interval_minutes: args.interval_minutes,
        },
        reservations: false,
    };
    cron.validate().context("--interval-minutes")?;
    let delays = Arc::new(load_delays(&args.delays)?);
    let delays_report = DelaysReport {
        path: args.delays.display().to_string(),
        samples: delays.len(),
        p50_ms: delays.quantile_ms(0.5),
        p99_ms: delays.quantile_ms(0.99),
    };
    let seeds = (0..args.seeds)
        .map(|i| args.first_seed.wrapping_add(i))
        .collect::<Vec<_>>();
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
    });
    match &args.charts {
        Some(dir) => charts(args, &scenarios, delays, &seeds, threads, dir, out),
        None => {
            let mut reports = Vec::new();
            for (preset, params) in scenarios {
                let modes = experiment::compared_modes(args.interval_minutes, Arc::clone(&delays));
                let rows = experiment::compare(&params, &modes, &seeds, threads)?;
                reports.push(ScenarioReport {
                    preset,
                    cited: preset.cited(),
                    params,
                    seeds: seeds.clone(),
                    modes: rows,
                });
            }
            if args.json {
                let json = serde_json::json!({ "delays": delays_report, "scenarios": reports });
                writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
            } else {
                for report in &reports {
                    write_table(out, report, &delays_report)?;
                }
            }
            Ok(())
        }
    }
}

fn ci(e: &onhand_simulator::Estimate, decimals: usize) -> String {
    format!(
        "{:.d$} [{:.d$}, {:.d$}]",
        e.mean,
        e.low.max(0.0),
        e.high,
        d = decimals
    )
}

fn write_table(
    out: &mut impl Write,
    report: &ScenarioReport,
    delays: &DelaysReport,
) -> anyhow::Result<()> {
    let p = &report.params;
    let channels = p
        .channels
        .iter()
        .map(|c| format!("{}{}", c.name, if c.reserves { "*" } else { "" }))
        .collect::<Vec<_>>()
        .join(", ");
    writeln!(
        out,
        "{}: {} channels ({channels}), {} SKUs, {} sales/hour; {} seeds × {} h counted after {} h",
        report.preset.name(),
        p.channels.len(),
        p.skus,
        p.sales_per_hour,
        report.seeds.len(),
        p.horizon_hours,
        p.warmup_hours
    )?;
    writeln!(out, "  DESIGN.md §1 cites: {}", report.cited)?;
    writeln!(
        out,
        "  event-driven delays: {} ({} samples, p50 {:.1} ms, p99 {:.1} ms); * reserves with reservations on",
        delays.path, delays.samples, delays.p50_ms, delays.p99_ms
    )?;
    writeln!(
        out,
        "  {:<30} {:>24} {:>26} {:>11} {:>7} {:>15}",
        "mode",
        "oversells/week (95% CI)",
        "oversells/hour (95% CI)",
        "sales/hour",
        "filled",
        "sell-outs/hour"
    )?;
    for row in &report.modes {
        writeln!(
            out,
            "  {:<30} {:>24} {:>26} {:>11.1} {:>6.1}% {:>15.1}",
            row.mode,
            ci(&row.oversells_per_week, 1),
            ci(&row.oversells_per_hour, 3),
            row.sales_per_hour.mean,
            row.fill_rate.mean * 100.0,
            row.sell_outs_per_hour.mean
        )?;
    }
    writeln!(out)?;
    Ok(())
}

fn charts(
    args: &OversellArgs,
    scenarios: &[(Preset, Params)],
    delays: Arc<DelayDistribution>,
    seeds: &[u64],
    threads: usize,
    dir: &Path,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let figures = figures::build(scenarios, args.interval_minutes, delays, seeds, threads)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = [
        (dir.join(figures::INTERVAL_FILE), &figures.interval_svg),
        (dir.join(figures::BUFFER_FILE), &figures.buffer_svg),
    ];
    for (path, svg) in &files {
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        let json = serde_json::json!({ "charts": figures.sweeps });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        for (path, _) in &files {
            writeln!(out, "wrote {}", path.display())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../simulator/tests/fixtures/projector-propagation.json"
    );

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: OversellArgs,
    }

    fn parse(argv: &[&str]) -> OversellArgs {
        let mut all = vec!["oversell"];
        all.extend_from_slice(argv);
        Cli::try_parse_from(all).expect("arguments parse").args
    }

    #[test]
    fn flags_override_the_preset() {
        let args = parse(&[
            "--preset",
            "large",
            "--skus",
            "300",
            "--buffer",
            "2",
            "--reserving-channels",
            "3",
        ]);
        let p = args.model.apply(Preset::Large).expect("valid");
        assert_eq!((p.skus, p.buffer, p.sales_per_hour), (300, 2, 200.0));
        assert_eq!(p.channels.iter().filter(|c| c.reserves).count(), 3);

        let args = parse(&["--channel-shares", "1,1,2"]);
        let p = args.model.apply(Preset::Small).expect("valid");
        assert_eq!(p.channels.len(), 3);
        assert_eq!(p.channels[2].share, 2.0);
        assert!(p.channels[0].reserves && !p.channels[1].reserves);
    }

    #[test]
    fn bad_values_are_refused_with_the_parameter_name() {
        let err = parse(&["--abandon-share", "1.5"])
            .model
            .apply(Preset::Small)
            .expect_err("refused");
        assert!(
            format!("{err:#}").contains("abandon_share = 1.5"),
            "{err:#}"
        );
        let err = parse(&["--reserving-channels", "3"])
            .model
            .apply(Preset::Small)
            .expect_err("refused");
        assert!(err.to_string().contains("only 2 channels"), "{err}");
    }

    #[test]
    fn a_missing_or_broken_delays_file_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("projector-propagation.json");
        let err = load_delays(&missing).expect_err("missing");
        let text = format!("{err:#}");
        assert!(
            text.contains("projector-propagation.json") && text.contains("--delays"),
            "{text}"
        );

        std::fs::write(&missing, "{\"samples_ms\": [3, -1]}").expect("write");
        let text = format!("{:#}", load_delays(&missing).expect_err("negative"));
        assert!(
            text.contains("projector-propagation.json")
                && text.contains("samples_ms[1] = -1 is negative"),
            "{text}"
        );

        let mut out = Vec::new();
        let args = parse(&["--delays", missing.to_str().expect("utf-8 path")]);
        assert!(execute(&args, &mut out).is_err());
    }

    #[test]
    fn the_table_and_the_json_have_every_mode() {
        let short = [
            "--preset",
            "small",
            "--seeds",
            "3",
            "--horizon-hours",
            "24",
            "--warmup-hours",
            "24",
            "--delays",
            FIXTURE,
        ];
        let mut out = Vec::new();
        execute(&parse(&short), &mut out).expect("runs");
        let text = String::from_utf8(out).expect("utf-8");
        for needle in [
            "small: 2 channels",
            "cron 15 min",
            "event-driven",
            "event-driven + reservations",
            "about 12 oversells a week",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
        let mut out = Vec::new();
        let mut json_args = short.to_vec();
        json_args.push("--json");
        execute(&parse(&json_args), &mut out).expect("runs");
        let json: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
        let modes = &json["scenarios"][0]["modes"];
        assert_eq!(modes.as_array().map(Vec::len), Some(3));
        assert_eq!(json["scenarios"][0]["seeds"], serde_json::json!([1, 2, 3]));
        assert!(modes[0]["oversells_per_week"]["mean"].is_number());
    }

    #[test]
    fn charts_are_written_to_the_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let charts = dir.path().join("docs");
        let argv = [
            "--preset",
            "small",
            "--seeds",
            "2",
            "--horizon-hours",
            "12",
            "--warmup-hours",
            "12",
            "--delays",
            FIXTURE,
            "--charts",
            charts.to_str().expect("utf-8 path"),
        ];
        let mut out = Vec::new();
        execute(&parse(&argv), &mut out).expect("runs");
        for name in ["oversell-vs-interval.svg", "oversell-vs-buffer.svg"] {
            let svg = std::fs::read_to_string(charts.join(name)).expect("written");
            assert!(
                svg.starts_with("<svg") && svg.contains("<polyline"),
                "{name}"
            );
        }
    }
}
