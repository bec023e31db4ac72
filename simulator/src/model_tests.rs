//! Tests of the model as a whole: results a wrong simulation would get wrong.

use std::sync::Arc;

use crate::delays::DelayDistribution;
use crate::engine::{RunStats, run};
use crate::experiment::{self, compared_modes};
use crate::params::{ChannelParams, Mode, Params, Preset, Sync};

const FIXTURE: &str = include_str!("../tests/fixtures/projector-propagation.json");

fn fixture_delays() -> Arc<DelayDistribution> {
    Arc::new(DelayDistribution::from_json(FIXTURE).expect("fixture is valid"))
}

/// The large preset over two counted days: enough sell-outs to see oversells, fast in debug.
fn short(preset: Preset) -> Params {
    Params {
        warmup_hours: 24.0,
        horizon_hours: 48.0,
        ..preset.params()
    }
}

fn cron(interval_minutes: f64) -> Mode {
    Mode {
        sync: Sync::Cron { interval_minutes },
        reservations: false,
    }
}

fn oversells(params: &Params, mode: &Mode, seeds: &[u64]) -> u64 {
    experiment::run_seeds(params, mode, seeds, 2)
        .expect("valid parameters")
        .iter()
        .map(|r| r.oversells)
        .sum()
}

fn conserved(r: &RunStats) {
    assert!(
        r.total_sold_units <= r.total_initial_units + r.total_restocked_units,
        "{r:?}"
    );
    assert_eq!(
        r.total_final_units + r.total_sold_units,
        r.total_initial_units + r.total_restocked_units,
        "units on hand at the end = at the start + restocked − sold: {r:?}"
    );
    assert!(r.sales <= r.buyers && r.buyers <= r.carts, "{r:?}");
}

#[test]
fn a_seed_gives_the_same_run_and_another_seed_another() {
    let p = short(Preset::Large);
    for mode in compared_modes(15.0, fixture_delays()) {
        let a = run(&p, &mode, 11).expect("valid");
        let b = run(&p, &mode, 11).expect("valid");
        assert_eq!(a, b, "{}", mode.label());
        let c = run(&p, &mode, 12).expect("valid");
        assert_ne!(
            (a.sales, a.oversells, a.carts),
            (c.sales, c.oversells, c.carts)
        );
    }
}

#[test]
fn the_thread_count_does_not_change_results() {
    let p = short(Preset::Small);
    let seeds = [1, 2, 3, 4, 5];
    let one = experiment::run_seeds(&p, &cron(15.0), &seeds, 1).expect("valid");
    let two = experiment::run_seeds(&p, &cron(15.0), &seeds, 2).expect("valid");
    assert_eq!(one, two);
    assert_eq!(one.iter().map(|r| r.seed).collect::<Vec<_>>(), seeds);
}

#[test]
fn one_channel_never_oversells_whatever_the_sync_interval() {
    let p = Params {
        channels: vec![ChannelParams {
            name: "only".into(),
            share: 1.0,
            reserves: false,
        }],
        ..short(Preset::Large)
    };
    for interval in [15.0, 60.0, 240.0] {
        let runs = experiment::run_seeds(&p, &cron(interval), &[1, 2], 2).expect("valid");
        for r in &runs {
            assert_eq!(r.oversells, 0, "interval {interval}: {r:?}");
            // Not vacuous: SKUs did sell out and shoppers met them sold out.
            assert!(
                r.sell_outs > 0 && r.shown_sold_out > 0 && r.sales > 1000,
                "{r:?}"
            );
            conserved(r);
        }
    }
}

#[test]
fn instant_sync_never_oversells_on_five_channels() {
    let p = short(Preset::Large);
    let zero = Arc::new(DelayDistribution::from_samples(vec![0.0]).expect("valid"));
    let modes = [
        cron(0.0),
        // 6 ms between refreshes: the lazy per-SKU refresh must behave like an instant one.
        cron(0.0001),
        Mode {
            sync: Sync::Event { delays: zero },
            reservations: false,
        },
    ];
    for mode in modes {
        assert_eq!(oversells(&p, &mode, &[1, 2, 3]), 0, "{}", mode.label());
    }
    assert!(
        oversells(&p, &cron(15.0), &[1, 2, 3]) > 0,
        "the same demand oversells under a cron"
    );
}

#[test]
fn oversells_grow_with_the_cron_interval() {
    let p = short(Preset::Large);
    let seeds = [1, 2, 3, 4];
    let counts = [1.0, 5.0, 15.0, 60.0].map(|i| oversells(&p, &cron(i), &seeds));
    assert!(counts.windows(2).all(|w| w[0] < w[1]), "{counts:?}");
}

#[test]
fn event_driven_at_measured_delays_oversells_a_small_fraction_of_the_cron() {
    for preset in Preset::ALL {
        let p = short(preset);
        let seeds = [1, 2, 3, 4];
        let summary = experiment::compare(&p, &compared_modes(15.0, fixture_delays()), &seeds, 2)
            .expect("valid");
        let total = |i: usize| summary[i].oversells.iter().sum::<u64>();
        let (cron, event, reserved) = (total(0), total(1), total(2));
        assert!(cron > 0, "{preset:?}: the cron oversells");
        assert!(
            event * 20 < cron,
            "{preset:?}: event {event} vs cron {cron}"
        );
        assert!(
            reserved * 20 < cron,
            "{preset:?}: with reservations {reserved} vs cron {cron}"
        );
    }
}

#[test]
fn slower_propagation_oversells_more() {
    let p = short(Preset::Large);
    let event = |ms: f64| Mode {
        sync: Sync::Event {
            delays: Arc::new(DelayDistribution::from_samples(vec![ms]).expect("valid")),
        },
        reservations: false,
    };
    let seeds = [1, 2, 3];
    let fast = oversells(&p, &event(1_000.0), &seeds);
    let slow = oversells(&p, &event(120_000.0), &seeds);
    assert!(fast < slow, "1 s: {fast}, 2 min: {slow}");
}

#[test]
fn every_channel_reserving_never_oversells() {
    let mut p = short(Preset::Large);
    for c in &mut p.channels {
        c.reserves = true;
    }
    let mode = Mode {
        sync: Sync::Cron {
            interval_minutes: 60.0,
        },
        reservations: true,
    };
    let runs = experiment::run_seeds(&p, &mode, &[1, 2], 2).expect("valid");
    for r in &runs {
        assert_eq!(r.oversells, 0, "{r:?}");
        assert!(
            r.refused_by_ledger > 0,
            "stale channels met the ledger's refusal: {r:?}"
        );
        conserved(r);
    }
}

#[test]
fn a_buffer_cuts_oversells() {
    let p = short(Preset::Large);
    let seeds = [1, 2, 3];
    let with = |buffer| {
        oversells(
            &Params {
                buffer,
                ..p.clone()
            },
            &cron(15.0),
            &seeds,
        )
    };
    let (none, two) = (with(0), with(2));
    assert!(two * 2 < none, "buffer 0: {none}, buffer 2: {two}");
}

#[test]
fn units_are_conserved_in_every_mode() {
    for preset in Preset::ALL {
        let p = short(preset);
        for mode in compared_modes(15.0, fixture_delays()) {
            for r in experiment::run_seeds(&p, &mode, &[1, 2], 2).expect("valid") {
                conserved(&r);
            }
        }
    }
}

#[test]
fn demand_arrives_at_the_stated_rate_and_splits_by_share() {
    // Deep stock and nothing abandoned: every buyer is served, so sales measure demand.
    let p = Params {
        depth_mean: 1e5,
        abandon_share: 0.0,
        horizon_hours: 24.0 * 7.0,
        warmup_hours: 0.0,
        ..Preset::Small.params()
    };
    let r = run(&p, &cron(15.0), 5).expect("valid");
    let rate = r.sales_per_hour();
    assert!((rate - 30.0).abs() < 1.5, "{rate} sales/hour, want 30");
    assert_eq!((r.oversells, r.shown_sold_out), (0, 0));
}
