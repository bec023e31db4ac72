//! Line charts with 95% confidence bands as SVG text, one or more panels side by side,
//! written by hand (no font or system libraries): axes with round ticks, a band per series
//! from its low to its high estimate, the mean as a line with markers, and a legend.

use std::fmt::Write as _;

use crate::experiment::SweepPoint;

/// One line of a panel.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    /// A CSS colour.
    pub color: &'static str,
    pub points: Vec<SweepPoint>,
}

/// One chart area with its own axes.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

const PANEL_W: f64 = 480.0;
const PANEL_H: f64 = 360.0;
const HEADER: f64 = 40.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 52.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Round tick values covering `0..=max` (steps of 1, 2 or 5 × 10^k, about 5 ticks).
fn ticks(max: f64) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let count = (max / step).ceil() as usize;
    (0..=count).map(|i| i as f64 * step).collect()
}

fn label(v: f64) -> String {
    let text = format!("{v:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// The whole SVG document: `title` above the panels, laid out left to right.
pub fn render(title: &str, panels: &[Panel]) -> String {
    let width = PANEL_W * panels.len().max(1) as f64;
    let height = PANEL_H + HEADER;
    let mut svg = String::new();
    // Writing to a String cannot fail; the results are ignored through `ok()`.
    writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">"#
    )
    .ok();
    writeln!(
        svg,
        r#"<rect width="{width}" height="{height}" fill="white"/>"#
    )
    .ok();
    writeln!(
        svg,
        r#"<text x="{}" y="26" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        width / 2.0,
        escape(title)
    )
    .ok();
    for (i, panel) in panels.iter().enumerate() {
        render_panel(&mut svg, panel, i as f64 * PANEL_W, HEADER);
    }
    svg.push_str("</svg>\n");
    svg
}

fn render_panel(svg: &mut String, panel: &Panel, ox: f64, oy: f64) {
    let points = panel.series.iter().flat_map(|s| s.points.iter());
    let (mut x_min, mut x_max, mut y_max) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for p in points {
        x_min = x_min.min(p.x);
        x_max = x_max.max(p.x);
        y_max = y_max
            .max(p.oversells_per_week.high)
            .max(p.oversells_per_week.mean);
    }
    if !(x_min.is_finite() && x_max.is_finite()) {
        (x_min, x_max) = (0.0, 1.0);
    }
    if x_max <= x_min {
        x_max = x_min + 1.0;
    }
    let y_ticks = ticks(y_max);
    let y_top = y_ticks.last().copied().unwrap_or(1.0);
    let (plot_x, plot_y) = (ox + LEFT, oy + TOP);
    let (plot_w, plot_h) = (PANEL_W - LEFT - RIGHT, PANEL_H - TOP - BOTTOM);
    let sx = |x: f64| plot_x + (x - x_min) / (x_max - x_min) * plot_w;
    let sy = |y: f64| plot_y + plot_h - y.clamp(0.0, y_top) / y_top * plot_h;

    writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
        plot_x + plot_w / 2.0,
        oy + 18.0,
        escape(&panel.title)
    )
    .ok();
    for &t in &y_ticks {
        let y = sy(t);
        writeln!(
            svg,
            r##"<line x1="{plot_x}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            plot_x + plot_w,
            plot_x - 6.0,
            y + 4.0,
            label(t)
        )
        .ok();
    }
    // Round ticks from 0 when the axis starts there (intervals, buffers), else the data's x.
    let x_ticks = if x_min == 0.0 {
        ticks(x_max)
            .into_iter()
            .filter(|t| *t <= x_max * 1.000_001)
            .collect()
    } else {
        panel
            .series
            .first()
            .map(|s| s.points.iter().map(|p| p.x).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    for &t in &x_ticks {
        let x = sx(t);
        writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#333"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            plot_y + plot_h,
            plot_y + plot_h + 5.0,
            plot_y + plot_h + 18.0,
            label(t)
        )
        .ok();
    }
    writeln!(
        svg,
        r##"<path d="M{plot_x},{plot_y} V{:.1} H{:.1}" fill="none" stroke="#333"/>"##,
        plot_y + plot_h,
        plot_x + plot_w
    )
    .ok();
    writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        plot_x + plot_w / 2.0,
        plot_y + plot_h + 38.0,
        escape(&panel.x_label)
    )
    .ok();
    let (lx, ly) = (ox + 16.0, plot_y + plot_h / 2.0);
    writeln!(
        svg,
        r#"<text x="{lx:.1}" y="{ly:.1}" text-anchor="middle" transform="rotate(-90 {lx:.1} {ly:.1})">{}</text>"#,
        escape(&panel.y_label)
    )
    .ok();

    for (k, series) in panel.series.iter().enumerate() {
        if series.points.is_empty() {
            continue;
        }
        let upper = series
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", sx(p.x), sy(p.oversells_per_week.high)));
        let lower = series
            .points
            .iter()
            .rev()
            .map(|p| format!("{:.1},{:.1}", sx(p.x), sy(p.oversells_per_week.low)));
        let band = upper.chain(lower).collect::<Vec<_>>().join(" ");
        writeln!(
            svg,
            r#"<polygon points="{band}" fill="{}" fill-opacity="0.18" stroke="none"/>"#,
            series.color
        )
        .ok();
        let line = series
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", sx(p.x), sy(p.oversells_per_week.mean)))
            .collect::<Vec<_>>()
            .join(" ");
        writeln!(
            svg,
            r#"<polyline points="{line}" fill="none" stroke="{}" stroke-width="2"/>"#,
            series.color
        )
        .ok();
        for p in &series.points {
            writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                sx(p.x),
                sy(p.oversells_per_week.mean),
                series.color
            )
            .ok();
        }
        let (kx, ky) = (plot_x + 12.0, plot_y + 14.0 + 18.0 * k as f64);
        writeln!(
            svg,
            r#"<line x1="{kx:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            ky - 4.0,
            kx + 20.0,
            ky - 4.0,
            series.color,
            kx + 26.0,
            ky,
            escape(&series.label)
        )
        .ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Estimate;

    fn point(x: f64, mean: f64) -> SweepPoint {
        let estimate = |mean: f64| Estimate {
            mean,
            low: mean - 1.0,
            high: mean + 1.0,
            n: 3,
        };
        SweepPoint {
            x,
            oversells_per_week: estimate(mean),
            fill_rate: estimate(0.9),
        }
    }

    #[test]
    fn ticks_are_round_and_cover_the_maximum() {
        assert_eq!(ticks(9.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(1400.0), vec![0.0, 500.0, 1000.0, 1500.0]);
        let labels = ticks(0.0).into_iter().map(label).collect::<Vec<_>>();
        assert_eq!(labels, ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
    }

    #[test]
    fn svg_has_a_line_a_band_and_a_legend_per_series_and_escapes_text() {
        let panel = Panel {
            title: "small <2 channels>".into(),
            x_label: "cron interval (min)".into(),
            y_label: "oversells / week".into(),
            series: vec![
                Series {
                    label: "cron".into(),
                    color: "#d62728",
                    points: vec![point(0.0, 0.0), point(15.0, 12.0), point(60.0, 40.0)],
                },
                Series {
                    label: "event & reservations".into(),
                    color: "#1f77b4",
                    points: vec![point(0.0, 0.0), point(60.0, 0.5)],
                },
            ],
        };
        let svg = render("Oversells", &[panel.clone(), panel]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert_eq!(svg.matches("<polygon").count(), 4);
        assert_eq!(svg.matches("<circle").count(), 10);
        assert!(svg.contains("small &lt;2 channels&gt;"));
        assert!(svg.contains("event &amp; reservations"));
        assert!(svg.contains(r#"width="960""#));
        // x ticks every 10 minutes from 0 to 60, not at every point.
        for tick in ["0", "10", "20", "30", "40", "50", "60"] {
            assert!(svg.contains(&format!(">{tick}</text>")), "tick {tick}");
        }
        assert!(!svg.contains(">15</text>"));
    }
}
