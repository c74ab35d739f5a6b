//! What a run reports: a text table for the terminal, a JSON file, and an SVG plot of
//! throughput and latency over time.

use crate::stats::Recorder;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    pub samples: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Percentiles {
            samples: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

/// One interval of the timeline; `t_secs` is its start, since the run's start.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    pub t_secs: f64,
    pub events_per_sec: f64,
    pub transitions_per_sec: Option<f64>,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// Kafka mode: events sent and not yet answered at the interval's end.
    pub in_flight: Option<u64>,
}

/// Whether every event sent came back exactly once (as a result or a dead letter).
#[derive(Clone, Debug, Serialize)]
pub struct Completeness {
    pub sent: u64,
    pub results: u64,
    pub dead_letters: u64,
    /// Sent and never answered: at-least-once delivery means this must be 0.
    pub missing: u64,
    /// Answers beyond the first for the same event (allowed by at-least-once, counted).
    pub duplicates: u64,
    /// Up to 20 of the missing event ids, to look for.
    pub missing_ids_sample: Vec<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// What distinguishes this run from the others of the same report ("2 threads").
    pub label: String,
    pub settings: serde_json::Value,
    pub elapsed_secs: f64,
    pub executions: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub events_per_sec: f64,
    /// `None` when unknown (an external daemon without `--metrics`).
    pub transitions_per_sec: Option<f64>,
    /// Engine mode: one execution, start to end. Kafka mode: sent to answered.
    pub latency: Percentiles,
    pub completeness: Option<Completeness>,
    /// Most executions in flight at once (events sent and not yet answered).
    pub peak_outstanding: Option<u64>,
    /// The daemon's peak resident memory, sampled every 100 ms (all its processes added).
    pub daemon_peak_rss_mb: Option<f64>,
    /// CPU cores the daemon kept busy on average over the run (user + system time / wall
    /// time), and this harness process (kafka mode: producer, answer reader and, when
    /// embedded, the broker; engine mode: the worker threads): where a 2-core machine's time
    /// went, and whether the runs had the cores they asked for.
    pub daemon_cpu_cores: Option<f64>,
    pub harness_cpu_cores: Option<f64>,
    /// Set when the run did not hold up (latency or throughput broke, or events were lost).
    pub verdict: Option<String>,
    pub timeline: Vec<Point>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub scenario: String,
    pub description: String,
    pub command: String,
    pub runs: Vec<RunReport>,
    /// Derived findings: thread scaling, the saturation point of a rate sweep.
    pub findings: Vec<String>,
}

/// The timeline of a recorder; `transitions` says whether its transition counts are known.
pub fn timeline(rec: &Recorder, transitions: bool) -> Vec<Point> {
    let secs = rec.interval_secs();
    rec.intervals
        .iter()
        .enumerate()
        .map(|(i, iv)| {
            let p = Percentiles::of(&iv.latency);
            Point {
                t_secs: i as f64 * secs,
                events_per_sec: iv.completed as f64 / secs,
                transitions_per_sec: transitions.then(|| iv.transitions as f64 / secs),
                p50_us: p.p50_us,
                p99_us: p.p99_us,
                max_us: p.max_us,
                in_flight: None,
            }
        })
        .collect()
}

/// "12.3 µs", "4.56 ms", "1.20 s".
pub fn duration_text(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// "1.23 M", "45.6 k", "789".
pub fn rate_text(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

pub fn text_table(report: &Report) -> String {
    let mut rows = vec![vec![
        "run".to_owned(),
        "executions".to_owned(),
        "events/s".to_owned(),
        "transitions/s".to_owned(),
        "p50".to_owned(),
        "p90".to_owned(),
        "p99".to_owned(),
        "p99.9".to_owned(),
        "max".to_owned(),
        "failed".to_owned(),
        "missing".to_owned(),
        "dup".to_owned(),
        "peak in flight".to_owned(),
        "daemon RSS".to_owned(),
        "CPU daemon/harness".to_owned(),
    ]];
    for r in &report.runs {
        let l = &r.latency;
        let (missing, dup) = match &r.completeness {
            Some(c) => (c.missing.to_string(), c.duplicates.to_string()),
            None => ("-".to_owned(), "-".to_owned()),
        };
        rows.push(vec![
            r.label.clone(),
            r.executions.to_string(),
            rate_text(r.events_per_sec),
            r.transitions_per_sec.map_or("-".to_owned(), rate_text),
            duration_text(l.p50_us),
            duration_text(l.p90_us),
            duration_text(l.p99_us),
            duration_text(l.p999_us),
            duration_text(l.max_us),
            r.failed.to_string(),
            missing,
            dup,
            r.peak_outstanding.map_or("-".to_owned(), |n| n.to_string()),
            r.daemon_peak_rss_mb
                .map_or("-".to_owned(), |mb| format!("{mb:.0} MB")),
            match (r.daemon_cpu_cores, r.harness_cpu_cores) {
                (Some(d), Some(h)) => format!("{d:.2} / {h:.2}"),
                (None, Some(h)) => format!("- / {h:.2}"),
                _ => "-".to_owned(),
            },
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!("{} — {} mode\n", report.scenario, report.mode);
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                let pad = w - cell.chars().count();
                // The run label reads left-aligned, numbers right-aligned.
                if c == 0 {
                    format!("{cell}{}", " ".repeat(pad))
                } else {
                    format!("{}{cell}", " ".repeat(pad))
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            let total = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    for r in &report.runs {
        if let Some(v) = &r.verdict {
            let _ = writeln!(out, "{}: {v}", r.label);
        }
    }
    for f in &report.findings {
        let _ = writeln!(out, "{f}");
    }
    out
}

/// Throughput (top, with executions in flight in kafka mode) and p50/p99 latency on a log
/// scale (bottom) over time; the runs of a report are drawn one after another, separated by
/// a labelled line.
pub fn svg_plot(report: &Report) -> String {
    const W: f64 = 960.0;
    const LEFT: f64 = 80.0;
    const RIGHT: f64 = 20.0;
    const TOP_Y: f64 = 50.0;
    const PANEL_H: f64 = 200.0;
    const GAP: f64 = 60.0;
    let bottom_y = TOP_Y + PANEL_H + GAP;
    let height = bottom_y + PANEL_H + 50.0;

    // Each run's points placed after the previous run's.
    let mut offset = 0.0;
    let mut series = Vec::new();
    for r in &report.runs {
        let step = r
            .timeline
            .get(1)
            .map_or(1.0, |p| p.t_secs - r.timeline[0].t_secs);
        series.push((offset, r));
        offset += r.timeline.len() as f64 * step;
    }
    let total_secs = offset.max(1.0);
    let max_rate = report
        .runs
        .iter()
        .flat_map(|r| r.timeline.iter().map(|p| p.events_per_sec))
        .fold(1.0, f64::max);
    // Kafka mode: executions in flight, drawn dashed on the throughput panel at a scale of
    // their own (0 to the peak, named in the panel's title).
    let max_flight = report
        .runs
        .iter()
        .flat_map(|r| r.timeline.iter().filter_map(|p| p.in_flight))
        .max()
        .unwrap_or(0);
    let lat: Vec<f64> = report
        .runs
        .iter()
        .flat_map(|r| r.timeline.iter().flat_map(|p| [p.p50_us, p.p99_us]))
        .filter(|v| *v > 0.0)
        .collect();
    let lo = lat.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = lat.iter().copied().fold(0.0, f64::max);
    let (lo_exp, hi_exp) = if lat.is_empty() {
        (0, 1)
    } else {
        (
            lo.log10().floor() as i32,
            (hi.log10().ceil() as i32).max(lo.log10().floor() as i32 + 1),
        )
    };
    let x = |t: f64| LEFT + (W - LEFT - RIGHT) * t / total_secs;
    let y_rate = |v: f64| TOP_Y + PANEL_H * (1.0 - v / max_rate);
    let y_lat = |us: f64| {
        let f = (us.log10() - lo_exp as f64) / (hi_exp - lo_exp) as f64;
        bottom_y + PANEL_H * (1.0 - f.clamp(0.0, 1.0))
    };

    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif" font-size="12">"##
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="white"/>"##);
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="20" font-size="15">{} — {} mode</text>"##,
        escape(&report.scenario),
        report.mode
    );
    let rate_title = match max_flight {
        0 => "completed events/s".to_owned(),
        n => format!("completed events/s (green); in flight, dashed grey, from 0 to {n}"),
    };
    for (panel_y, title) in [
        (TOP_Y, rate_title.as_str()),
        (bottom_y, "latency (log scale): p50 blue, p99 red"),
    ] {
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{panel_y}" width="{}" height="{PANEL_H}" fill="none" stroke="#888"/>"##,
            W - LEFT - RIGHT
        );
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="{}">{title}</text>"##,
            panel_y - 6.0
        );
    }
    for i in 0..=4 {
        let v = max_rate * i as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            y_rate(v) + 4.0,
            rate_text(v)
        );
    }
    for e in lo_exp..=hi_exp {
        let us = 10f64.powi(e);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y_lat(us) + 4.0,
            tick_text(us),
            y = y_lat(us)
        );
    }
    // Time ticks at a round step, at most a dozen of them.
    let step = [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|step| total_secs / step <= 12.0)
        .unwrap_or(1800.0);
    let mut t = 0.0;
    while t <= total_secs {
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="middle">{t:.0} s</text>"##,
            x(t),
            bottom_y + PANEL_H + 18.0
        );
        t += step;
    }
    for (start, r) in &series {
        if report.runs.len() > 1 {
            let _ = writeln!(
                s,
                r##"<line x1="{x0}" x2="{x0}" y1="{TOP_Y}" y2="{}" stroke="#aaa" stroke-dasharray="4 3"/><text x="{}" y="{}" fill="#555">{}</text>"##,
                bottom_y + PANEL_H,
                x(*start) + 4.0,
                TOP_Y + 14.0,
                escape(&r.label),
                x0 = x(*start)
            );
        }
        let pts = |f: &dyn Fn(&Point) -> Option<(f64, f64)>| -> String {
            r.timeline
                .iter()
                .filter_map(f)
                .map(|(px, py)| format!("{px:.1},{py:.1}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mid =
            |p: &Point| start + p.t_secs + 0.5 * (r.timeline.get(1).map_or(1.0, |q| q.t_secs));
        let rate = pts(&|p| Some((x(mid(p)), y_rate(p.events_per_sec))));
        let p50 = pts(&|p| (p.p50_us > 0.0).then(|| (x(mid(p)), y_lat(p.p50_us))));
        let p99 = pts(&|p| (p.p99_us > 0.0).then(|| (x(mid(p)), y_lat(p.p99_us))));
        if max_flight > 0 {
            let flight = pts(&|p| {
                let n = p.in_flight? as f64;
                Some((x(mid(p)), TOP_Y + PANEL_H * (1.0 - n / max_flight as f64)))
            });
            let _ = writeln!(
                s,
                r##"<polyline points="{flight}" fill="none" stroke="#888" stroke-width="1.5" stroke-dasharray="5 3"/>"##
            );
        }
        for (points, colour) in [(rate, "#2a7"), (p50, "#36c"), (p99, "#c33")] {
            let _ = writeln!(
                s,
                r##"<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>"##
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// A power of ten of microseconds, as a short label: "10 µs", "100 ms", "1 s".
fn tick_text(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.0} ms", us / 1000.0)
    } else {
        format!("{:.0} s", us / 1e6)
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
