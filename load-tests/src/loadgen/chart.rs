//! Line charts as hand-written SVG: axes with labelled ticks (linear or log10), one polyline
//! per series, a legend, a title, and optional shaded bands (e.g. a burst phase). Plain text,
//! no dependency, opens in any browser.

use std::fmt::Write as _;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = 56.0;

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    /// Any SVG colour.
    pub color: &'static str,
    /// (x, y) in data units, x ascending; missing values are simply left out.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed, so a line that another one covers (sent under acked) stays visible.
    pub dashed: bool,
}

/// How the y axis maps values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// From 0 to a round maximum.
    Linear,
    /// Decades; values ≤ 0 are drawn at the bottom.
    Log,
}

/// A shaded stretch of the x axis with a label (a phase of the run).
#[derive(Clone, Debug)]
pub struct Band {
    pub from: f64,
    pub to: f64,
    pub label: String,
}

/// A chart to render with [`Chart::svg`].
#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub scale: Scale,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
}

/// Maps data to pixels.
struct Frame {
    x_max: f64,
    y_min: f64,
    y_max: f64,
    scale: Scale,
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        LEFT + (x / self.x_max).clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        let f = match self.scale {
            Scale::Linear => y / self.y_max,
            Scale::Log => {
                let (lo, hi) = (self.y_min.log10(), self.y_max.log10());
                (y.max(self.y_min).log10() - lo) / (hi - lo)
            }
        };
        HEIGHT - BOTTOM - f.clamp(0.0, 1.0) * (HEIGHT - TOP - BOTTOM)
    }
}

impl Chart {
    /// The chart as a standalone SVG document.
    pub fn svg(&self) -> String {
        let points = || self.series.iter().flat_map(|s| s.points.iter().copied());
        let x_max = axis_max(points().map(|p| p.0).fold(0.0, f64::max).max(1.0));
        let (y_min, y_max, y_ticks) = match self.scale {
            Scale::Linear => {
                let max = axis_max(points().map(|p| p.1).fold(0.0, f64::max).max(1.0));
                (0.0, max, linear_ticks(max))
            }
            Scale::Log => {
                let positive = || points().map(|p| p.1).filter(|&y| y > 0.0);
                let lo = 10f64.powf(positive().fold(f64::INFINITY, f64::min).min(1.0).log10().floor());
                let hi = 10f64.powf(positive().fold(0.0, f64::max).max(lo * 10.0).log10().ceil());
                let decades = (hi / lo).log10().round() as i32;
                (lo, hi, (0..=decades).map(|d| lo * 10f64.powi(d)).collect())
            }
        };
        let f = Frame { x_max, y_min, y_max, scale: self.scale };
        let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP);
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="24" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
            WIDTH / 2.0,
            esc(&self.title)
        );
        s += "<g class=\"bands\">\n";
        for b in &self.bands {
            let (a, z) = (f.px(b.from), f.px(b.to));
            let _ = writeln!(
                s,
                r##"<rect x="{a:.1}" y="{y1}" width="{:.1}" height="{}" fill="#fff3cd"/>"##,
                z - a,
                y0 - y1
            );
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#8a6d00">{}</text>"##,
                (a + z) / 2.0,
                y1 + 14.0,
                esc(&b.label)
            );
        }
        s += "</g>\n<g class=\"grid\" stroke=\"#e0e0e0\">\n";
        for &t in &y_ticks {
            let _ = writeln!(s, r#"<line x1="{x0}" y1="{0:.1}" x2="{x1}" y2="{0:.1}"/>"#, f.py(t));
        }
        s += "</g>\n<g class=\"axes\" stroke=\"black\">\n";
        let _ = writeln!(s, r#"<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}"/>"#);
        let _ = writeln!(s, r#"<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}"/>"#);
        s += "</g>\n<g class=\"ticks\">\n";
        for t in linear_ticks(x_max) {
            let x = f.px(t);
            let _ = writeln!(s, r#"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{}" stroke="black"/>"#, y0 + 5.0);
            let _ = writeln!(s, r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#, y0 + 19.0, label(t));
        }
        for &t in &y_ticks {
            let y = f.py(t);
            let _ = writeln!(s, r#"<line x1="{}" y1="{y:.1}" x2="{x0}" y2="{y:.1}" stroke="black"/>"#, x0 - 5.0);
            let _ = writeln!(s, r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#, x0 - 8.0, y + 4.0, label(t));
        }
        s += "</g>\n";
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (x0 + x1) / 2.0,
            HEIGHT - 14.0,
            esc(&self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (y0 + y1) / 2.0,
            esc(&self.y_label)
        );
        for series in &self.series {
            let coords: Vec<String> =
                series.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", f.px(x), f.py(y))).collect();
            if let [only] = coords.as_slice() {
                let (cx, cy) = only.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(s, r#"<circle cx="{cx}" cy="{cy}" r="2.5" fill="{}"/>"#, series.color);
            } else if !coords.is_empty() {
                let dash = if series.dashed { r#" stroke-dasharray="6 4""# } else { "" };
                let _ = writeln!(
                    s,
                    r#"<polyline fill="none" stroke="{}" stroke-width="1.6" stroke-linejoin="round"{dash} points="{}"/>"#,
                    series.color,
                    coords.join(" ")
                );
            }
        }
        s += "<g class=\"legend\">\n";
        let mut lx = x0 + 10.0;
        for series in &self.series {
            let dash = if series.dashed { r#" stroke-dasharray="4 2""# } else { "" };
            let _ = writeln!(
                s,
                r#"<line x1="{lx:.1}" y1="40" x2="{:.1}" y2="40" stroke="{}" stroke-width="3"{dash}/>"#,
                lx + 18.0,
                series.color
            );
            let _ = writeln!(s, r#"<text x="{:.1}" y="44">{}</text>"#, lx + 23.0, esc(&series.name));
            lx += 36.0 + 7.0 * series.name.chars().count() as f64;
        }
        s += "</g>\n</svg>\n";
        s
    }
}

/// The smallest 1, 2 or 5 × 10^k at or above `x` (x > 0).
fn nice_ceil(x: f64) -> f64 {
    let p = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * p).find(|&v| v >= x * (1.0 - 1e-9)).unwrap_or(10.0 * p)
}

/// The round step for an axis from 0 to `max`: 4 to 8 ticks.
fn tick_step(max: f64) -> f64 {
    nice_ceil(max / 8.0)
}

/// The axis end for data up to `max`: the next multiple of the tick step (11 → 12, not 20).
fn axis_max(max: f64) -> f64 {
    let step = tick_step(max);
    (max / step - 1e-9).ceil() * step
}

/// 0 to `max` in round steps.
fn linear_ticks(max: f64) -> Vec<f64> {
    let step = tick_step(max);
    let n = (max / step + 1e-9).floor() as usize;
    (0..=n).map(|k| k as f64 * step).collect()
}

/// A tick label: integers plainly, thousands as `k`, small values with the decimals they need.
fn label(v: f64) -> String {
    if v >= 10_000.0 && (v / 1000.0).fract() == 0.0 {
        format!("{}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// Text escaped for SVG content.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(scale: Scale, series: Vec<Series>) -> Chart {
        Chart {
            title: "steady <10k chats>".into(),
            x_label: "seconds".into(),
            y_label: "msg/s".into(),
            scale,
            series,
            bands: vec![Band { from: 2.0, to: 4.0, label: "burst".into() }],
        }
    }

    #[test]
    fn linear_chart_has_axes_ticks_legend_and_the_data_points() {
        let sent = Series {
            name: "sent".into(),
            color: "#1f77b4",
            points: vec![(0.0, 0.0), (5.0, 50.0), (10.0, 100.0)],
            dashed: true,
        };
        let svg = chart(Scale::Linear, vec![sent]).svg();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        // x 0..10 over 78..936 px, y 0..100 over 384..56 px.
        assert!(svg.contains(r#"stroke-dasharray="6 4" points="78.0,384.0 507.0,220.0 936.0,56.0""#), "{svg}");
        for text in [">seconds</text>", ">msg/s</text>", ">sent</text>", ">100</text>", ">60</text>", ">8</text>"] {
            assert!(svg.contains(text), "missing {text}");
        }
        // The title is escaped, the burst band drawn between x = 2 and x = 4.
        assert!(svg.contains("steady &lt;10k chats&gt;"));
        assert!(svg.contains(r#"<rect x="249.6" y="56" width="171.6""#), "{svg}");
        assert_eq!(svg.matches("<g").count(), svg.matches("</g>").count());
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn log_chart_spaces_decades_evenly() {
        let p99 = Series {
            name: "p99".into(),
            color: "red",
            points: vec![(1.0, 1.0), (2.0, 10.0), (3.0, 100.0)],
            dashed: false,
        };
        let svg = chart(Scale::Log, vec![p99]).svg();
        // 1 → bottom (384), 100 → top (56), 10 halfway.
        assert!(svg.contains(r#"points="364.0,384.0 650.0,220.0 936.0,56.0""#), "{svg}");
        for tick in [">1</text>", ">10</text>", ">100</text>"] {
            assert!(svg.contains(tick), "missing {tick}");
        }
    }

    #[test]
    fn a_single_point_is_a_dot_and_an_empty_series_draws_nothing() {
        let one = Series { name: "rss".into(), color: "green", points: vec![(1.0, 5.0)], dashed: false };
        let none = Series { name: "none".into(), color: "blue", points: vec![], dashed: false };
        let svg = chart(Scale::Linear, vec![one, none]).svg();
        assert_eq!(svg.matches("<circle").count(), 1);
        assert_eq!(svg.matches("<polyline").count(), 0);
        assert!(svg.contains(">none</text>"), "the legend still names it");
    }

    #[test]
    fn ticks_and_labels_are_round() {
        assert_eq!(nice_ceil(73.0), 100.0);
        assert_eq!(nice_ceil(1.2), 2.0);
        assert_eq!(nice_ceil(0.04), 0.05);
        assert_eq!(linear_ticks(100.0), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(axis_max(11.0), 12.0);
        assert_eq!(axis_max(139.5), 140.0);
        assert_eq!(axis_max(100.0), 100.0);
        assert_eq!(label(20_000.0), "20k");
        assert_eq!(label(2000.0), "2000");
        assert_eq!(label(0.1), "0.1");
    }
}
