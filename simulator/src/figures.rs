//! The two figures of docs/OVERSELL.md: oversells against the cron interval, and against
//! the buffer (cron and event-driven), one panel per scenario. Runs the sweeps and returns
//! the SVG text with the numbers behind it; the caller writes the files.

use std::sync::Arc;

use serde::Serialize;

use crate::chart::{self, Panel, Series};
use crate::delays::DelayDistribution;
use crate::experiment::{self, SweepPoint};
use crate::params::{Mode, ParamError, Params, Preset, Sync};

/// Cron intervals of the interval figure, in minutes (0 = an instant sync).
pub const INTERVALS: [f64; 10] = [0.0, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0];
/// Buffers of the buffer figure, in units.
pub const BUFFERS: [u32; 6] = [0, 1, 2, 3, 4, 5];

/// File names of the figures.
pub const INTERVAL_FILE: &str = "oversell-vs-interval.svg";
pub const BUFFER_FILE: &str = "oversell-vs-buffer.svg";

/// The sweeps of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioSweeps {
    pub preset: Preset,
    /// The cron at each of [`INTERVALS`].
    pub interval: Vec<SweepPoint>,
    /// The cron at the chosen interval, at each of [`BUFFERS`].
    pub buffer_cron: Vec<SweepPoint>,
    /// Event-driven sync at each of [`BUFFERS`].
    pub buffer_event: Vec<SweepPoint>,
}

/// Both figures as SVG text, and their numbers.
#[derive(Debug, Clone)]
pub struct Figures {
    pub interval_svg: String,
    pub buffer_svg: String,
    pub sweeps: Vec<ScenarioSweeps>,
}

const CRON_COLOR: &str = "#d62728";
const EVENT_COLOR: &str = "#1f77b4";

/// Runs the sweeps of every scenario over `seeds` and draws them.
pub fn build(
    scenarios: &[(Preset, Params)],
    interval_minutes: f64,
    delays: Arc<DelayDistribution>,
    seeds: &[u64],
    threads: usize,
) -> Result<Figures, ParamError> {
    let cron = Mode {
        sync: Sync::Cron { interval_minutes },
        reservations: false,
    };
    let event = Mode {
        sync: Sync::Event { delays },
        reservations: false,
    };
    let mut interval_panels = Vec::new();
    let mut buffer_panels = Vec::new();
    let mut sweeps = Vec::new();
    for (preset, params) in scenarios {
        let title = format!(
            "{}: {} channels, {} SKUs, {} sales/h",
            preset.name(),
            params.channels.len(),
            params.skus,
            params.sales_per_hour
        );
        let run = |points: Vec<_>| experiment::sweep(&points, seeds, threads);
        let interval = run(experiment::interval_points(params, &INTERVALS))?;
        let buffer_cron = run(experiment::buffer_points(params, &cron, &BUFFERS))?;
        let buffer_event = run(experiment::buffer_points(params, &event, &BUFFERS))?;
        interval_panels.push(Panel {
            title: title.clone(),
            x_label: "cron interval (minutes; 0 = instant)".into(),
            y_label: "oversells per week".into(),
            series: vec![Series {
                label: "cron (band: 95% CI)".into(),
                color: CRON_COLOR,
                points: interval.clone(),
            }],
        });
        buffer_panels.push(Panel {
            title,
            x_label: "buffer (units held back from each channel)".into(),
            y_label: "oversells per week".into(),
            series: vec![
                Series {
                    label: format!("cron {interval_minutes} min (band: 95% CI)"),
                    color: CRON_COLOR,
                    points: buffer_cron.clone(),
                },
                Series {
                    label: "event-driven".into(),
                    color: EVENT_COLOR,
                    points: buffer_event.clone(),
                },
            ],
        });
        sweeps.push(ScenarioSweeps {
            preset: *preset,
            interval,
            buffer_cron,
            buffer_event,
        });
    }
    let n = seeds.len();
    Ok(Figures {
        interval_svg: chart::render(
            &format!("Oversells against the cron interval ({n} seeds)"),
            &interval_panels,
        ),
        buffer_svg: chart::render(
            &format!("Oversells against the buffer ({n} seeds)"),
            &buffer_panels,
        ),
        sweeps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_have_a_panel_per_scenario_and_sweeps_that_behave() {
        let short = |preset: Preset| Params {
            warmup_hours: 24.0,
            horizon_hours: 24.0,
            ..preset.params()
        };
        let scenarios = [
            (Preset::Small, short(Preset::Small)),
            (Preset::Large, short(Preset::Large)),
        ];
        let delays = Arc::new(DelayDistribution::from_samples(vec![10.0]).expect("valid"));
        let f = build(&scenarios, 15.0, delays, &[1, 2], 2).expect("valid");
        assert_eq!(f.sweeps.len(), 2);
        assert_eq!(f.interval_svg.matches("<polyline").count(), 2);
        assert_eq!(f.buffer_svg.matches("<polyline").count(), 4);
        let large = &f.sweeps[1];
        assert_eq!(large.interval.len(), INTERVALS.len());
        // An instant sync never oversells; an hourly cron does.
        assert_eq!(large.interval[0].oversells_per_week.mean, 0.0);
        assert!(large.interval[INTERVALS.len() - 1].oversells_per_week.mean > 0.0);
        // The buffer's first point is the plain cron at the chosen interval (15 min).
        assert_eq!(
            large.buffer_cron[0].oversells_per_week,
            large.interval[5].oversells_per_week
        );
        // A buffer of 5 units hides stock: fewer buyers served than with none.
        assert!(large.buffer_cron[5].fill_rate.mean < large.buffer_cron[0].fill_rate.mean);
    }
}
