//! Results: the JSON record of a run, the markdown table, and the SVG bar chart.
//!
//! The table puts one figure per row and one server per column, each value followed by its
//! ratio to `limit`'s; the chart shows the four headline figures as ratios to `limit`, so
//! that figures of different units share one axis. Which figures there are is each
//! scenario's business ([`crate::scenarios::figures`], [`crate::scenarios::chart`]); this
//! file only lays them out, taking the median over rounds.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::scenarios::{self, Outcomes};

/// Everything measured for one server.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ServerResult {
    /// `limit`, a variant's crate name, or `external`.
    pub name: String,
    /// Each scenario's outcome, under the scenario's own key (`hold`, `fanout`, ...), as
    /// earlier runs wrote them.
    #[serde(flatten)]
    pub outcomes: Outcomes,
    /// Scenarios that could not run (e.g. the server did not start), with why.
    pub errors: Vec<String>,
    /// Seconds the server took to exit on SIGTERM after each scenario (None = killed).
    pub shutdown_secs: Vec<Option<f64>>,
}

impl ServerResult {
    /// A result for server `name` with nothing measured yet.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }
}

/// One whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// When it started (RFC 3339, UTC).
    pub date: String,
    /// The command line.
    pub command: String,
    /// `nproc`, memory, CPU model, load average before the run.
    pub machine: Machine,
    /// The settings.
    pub settings: serde_json::Value,
    /// Per server, in the order run.
    pub servers: Vec<ServerResult>,
}

/// The machine the run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// Total memory from /proc/meminfo (GiB).
    pub mem_gib: f64,
    /// /proc/loadavg before the run.
    pub load_before: String,
    /// /proc/loadavg after the run.
    pub load_after: String,
    /// The open-file limit the load generator ran with (soft, hard).
    pub nofile: (u64, u64),
}

impl Machine {
    /// Reads the machine description from /proc.
    pub fn probe(nofile: (u64, u64)) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_owned())
            .unwrap_or_default();
        let mem_kib: f64 = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Self {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            mem_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            load_before: loadavg(),
            load_after: String::new(),
            nofile,
        }
    }
}

/// The first three fields of /proc/loadavg.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads one figure off a server's results.
pub type Reader = dyn Fn(&ServerResult) -> Option<f64>;

/// A figure read off one scenario's outcome `T`, and how it is shown: a table row, or a
/// chart group (which plots the ratio to `limit` and ignores `fmt` and `ratio`).
pub struct Row<T> {
    /// Row label (or chart group label).
    label: &'static str,
    /// Reads the figure; `None` when the outcome has none.
    get: fn(&T) -> Option<f64>,
    /// Formats the value for the table.
    fmt: fn(f64) -> String,
    /// Whether the table shows the ratio to `limit` after the value.
    ratio: bool,
}

impl<T: 'static> Row<T> {
    /// A row shown as its value alone (counts, yes/no, CPU shares).
    pub fn absolute(
        label: &'static str,
        fmt: fn(f64) -> String,
        get: fn(&T) -> Option<f64>,
    ) -> Self {
        Self {
            label,
            get,
            fmt,
            ratio: false,
        }
    }

    /// A row shown with its ratio to `limit`'s value.
    pub fn relative(
        label: &'static str,
        fmt: fn(f64) -> String,
        get: fn(&T) -> Option<f64>,
    ) -> Self {
        Self {
            label,
            get,
            fmt,
            ratio: true,
        }
    }

    /// A chart group: the chart plots the figure's ratio to `limit`, whatever its unit.
    pub fn headline(label: &'static str, get: fn(&T) -> Option<f64>) -> Self {
        Self::relative(label, f2, get)
    }

    /// The same figure read off a whole server result, through `pick`, which finds the
    /// scenario's outcome in it.
    pub fn lift(self, pick: fn(&ServerResult) -> Option<&T>) -> Figure {
        let get = self.get;
        Figure {
            label: self.label,
            get: Box::new(move |result| pick(result).and_then(get)),
            fmt: self.fmt,
            ratio: self.ratio,
        }
    }
}

/// A [`Row`] lifted to read whole server results, as the table and the chart use it.
pub struct Figure {
    /// Row label.
    label: &'static str,
    /// Reads the figure.
    get: Box<Reader>,
    /// Formats the value.
    fmt: fn(f64) -> String,
    /// Whether to show the ratio to `limit`.
    ratio: bool,
}

/// No decimals.
pub fn f0(v: f64) -> String {
    format!("{v:.0}")
}
/// One decimal.
pub fn f1(v: f64) -> String {
    format!("{v:.1}")
}
/// Two decimals.
pub fn f2(v: f64) -> String {
    format!("{v:.2}")
}
/// Millions with two decimals.
pub fn mega(v: f64) -> String {
    format!("{:.2} M", v / 1e6)
}
/// Yes or no.
pub fn yes_no(v: f64) -> String {
    if v > 0.5 { "yes".into() } else { "NO".into() }
}

/// Server names in the order they first ran; with `--rounds`, `run.servers` holds one
/// entry per server per round.
pub fn names(run: &Run) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for server in &run.servers {
        if !names.contains(&server.name.as_str()) {
            names.push(&server.name);
        }
    }
    names
}

/// How many rounds the run has (the most entries any server has).
pub fn rounds(run: &Run) -> usize {
    names(run)
        .iter()
        .map(|n| run.servers.iter().filter(|s| s.name == *n).count())
        .max()
        .unwrap_or(0)
}

/// The median over rounds of a figure of server `name` (rounds without it are skipped).
pub fn median(run: &Run, name: &str, get: &Reader) -> Option<f64> {
    let mut values: Vec<f64> = run
        .servers
        .iter()
        .filter(|s| s.name == name)
        .filter_map(get)
        .collect();
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The markdown table: figures down, servers across, ratios to `limit` in parentheses;
/// with several rounds, each cell is the median over them.
pub fn table(run: &Run) -> String {
    let names = names(run);
    let mut out = String::new();
    let rounds = rounds(run);
    if rounds > 1 {
        let _ = writeln!(
            out,
            "Medians of {rounds} rounds (servers interleaved; every round's figures are in the JSON).\n"
        );
    }
    out.push_str("| figure |");
    for name in &names {
        let _ = write!(out, " {name} |");
    }
    out.push_str("\n|---|");
    for _ in &names {
        out.push_str("---:|");
    }
    out.push('\n');
    for figure in scenarios::figures() {
        if run.servers.iter().all(|s| (figure.get)(s).is_none()) {
            continue;
        }
        let _ = write!(out, "| {} |", figure.label);
        let base = median(run, "limit", &figure.get);
        for name in &names {
            match median(run, name, &figure.get) {
                Some(v) => {
                    let _ = write!(out, " {}", (figure.fmt)(v));
                    if figure.ratio
                        && *name != "limit"
                        && let Some(b) = base.filter(|b| *b != 0.0)
                    {
                        let _ = write!(out, " ({:.2}x)", v / b);
                    }
                    out.push_str(" |");
                }
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    out.push_str(&scenarios::appendix(run));
    let errors: Vec<String> = run
        .servers
        .iter()
        .flat_map(|s| s.errors.iter().map(move |e| format!("- {}: {e}", s.name)))
        .collect();
    if !errors.is_empty() {
        out.push_str("\nErrors:\n");
        out.push_str(&errors.join("\n"));
        out.push('\n');
    }
    out
}

/// Bar colours per server, in run order.
const COLOURS: [&str; 6] = [
    "#555555", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b",
];

/// A grouped bar chart of the headline figures as ratios to `limit`, hand-written SVG.
pub fn svg(run: &Run) -> String {
    let names = names(run);
    let chart = scenarios::chart();
    let (width, height, top, bottom, left) = (900.0, 420.0, 60.0, 90.0, 50.0);
    let plot_h = height - top - bottom;
    let group_w = (width - left - 20.0) / chart.len() as f64;
    let n = names.len().max(1) as f64;
    let bar_w = (group_w - 30.0) / n;
    let ratios: Vec<Vec<Option<f64>>> = chart
        .iter()
        .map(|group| {
            let base = median(run, "limit", &group.get).filter(|b| *b > 0.0);
            names
                .iter()
                .map(|n| Some(median(run, n, &group.get)? / base?))
                .collect()
        })
        .collect();
    // A log2 axis: ratios from 0.1x to 20x must all be readable, and 2x worse should look
    // as far from the limit as 2x better. Bars start at the limit's line (1x).
    let all: Vec<f64> = ratios
        .iter()
        .flatten()
        .flatten()
        .copied()
        .filter(|v| *v > 0.0)
        .collect();
    let lo = all.iter().fold(0.5f64, |m, v| m.min(*v)).log2().floor();
    let hi = all.iter().fold(2.0f64, |m, v| m.max(*v)).log2().ceil();
    let y =
        |v: f64| top + plot_h * (hi - v.max(f64::MIN_POSITIVE).log2().clamp(lo, hi)) / (hi - lo);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="16">SSE servers as a ratio to limit (log scale, limit = 1x), {}</text>"#,
        width / 2.0,
        escape(&run.date)
    );
    // Grid lines at every power of two.
    let mut exp = lo;
    while exp <= hi {
        let tick = exp.exp2();
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="{}" />"##,
            width - 20.0,
            if exp == 0.0 { "#000" } else { "#ddd" },
            yy = y(tick)
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{tick}x</text>"#,
            left - 6.0,
            y(tick) + 4.0
        );
        exp += 1.0;
    }
    for (g, (Figure { label, .. }, group)) in chart.iter().zip(&ratios).enumerate() {
        let gx = left + 15.0 + g as f64 * group_w;
        for (i, ratio) in group.iter().enumerate() {
            let x = gx + i as f64 * bar_w;
            let colour = COLOURS[i % COLOURS.len()];
            match ratio {
                Some(r) => {
                    let (from, to) = (y(1.0), y(*r));
                    let _ = writeln!(
                        s,
                        r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"/>"#,
                        from.min(to),
                        bar_w - 4.0,
                        (from - to).abs().max(1.5)
                    );
                    // The label sits beyond the bar's end: above for > 1x, below for < 1x.
                    let label_y = if *r >= 1.0 { to - 3.0 } else { to + 12.0 };
                    let _ = writeln!(
                        s,
                        r#"<text x="{:.1}" y="{label_y:.1}" text-anchor="middle" font-size="10">{r:.2}</text>"#,
                        x + (bar_w - 4.0) / 2.0,
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">n/a</text>"#,
                        x + (bar_w - 4.0) / 2.0,
                        top + plot_h - 3.0
                    );
                }
            }
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            gx + (group_w - 30.0) / 2.0,
            top + plot_h + 18.0,
            escape(label)
        );
    }
    // Legend.
    for (i, name) in names.iter().enumerate() {
        let x = left + i as f64 * 190.0;
        let ly = height - 30.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x:.1}" y="{:.1}" width="14" height="14" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            ly - 11.0,
            COLOURS[i % COLOURS.len()],
            x + 20.0,
            ly,
            escape(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Escapes text for SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(names: &[&str]) -> Run {
        Run {
            date: "2026-01-01T00:00:00Z".into(),
            command: "sse-bench".into(),
            machine: Machine::probe((1, 1)),
            settings: serde_json::Value::Null,
            servers: names.iter().map(|n| ServerResult::named(n)).collect(),
        }
    }

    #[test]
    fn table_and_chart_render_without_results() {
        let run = run_with(&["limit", "axum-stream-map"]);
        let table = table(&run);
        assert!(table.starts_with("| figure | limit | axum-stream-map |"));
        let chart = svg(&run);
        assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
        assert!(chart.contains("n/a"));
    }

    #[test]
    fn rounds_are_summarised_by_their_median() {
        let mut run = run_with(&[
            "limit",
            "axum-stream-map",
            "limit",
            "axum-stream-map",
            "limit",
        ]);
        for (i, server) in run.servers.iter_mut().enumerate() {
            server.shutdown_secs = vec![Some(i as f64)];
        }
        let get = |r: &ServerResult| r.shutdown_secs.first().copied().flatten();
        assert_eq!(rounds(&run), 3);
        assert_eq!(names(&run), ["limit", "axum-stream-map"]);
        assert_eq!(median(&run, "limit", &get), Some(2.0));
        assert_eq!(median(&run, "axum-stream-map", &get), Some(2.0));
        assert_eq!(median(&run, "warp-generator", &get), None);
        assert!(table(&run).starts_with("Medians of 3 rounds"));
    }

    /// A record written before the scenarios had files of their own: a real run of `limit`
    /// plus a hand-edited second server (missing figures, a failed scenario), with the
    /// table and chart that the code of the time rendered from it.
    const OLD_RECORD: &str = include_str!("../testdata/run-before-split.json");
    /// That record's table, as rendered then.
    const OLD_TABLE: &str = include_str!("../testdata/run-before-split.md");
    /// That record's chart, as rendered then.
    const OLD_CHART: &str = include_str!("../testdata/run-before-split.svg");

    #[test]
    fn an_old_record_renders_as_it_did() {
        let run: Run = serde_json::from_str(OLD_RECORD).expect("an old record parses");
        assert_eq!(table(&run), OLD_TABLE);
        assert_eq!(svg(&run), OLD_CHART);
    }

    #[test]
    fn an_old_record_is_written_back_field_for_field() {
        let old: serde_json::Value = serde_json::from_str(OLD_RECORD).expect("JSON");
        let run: Run = serde_json::from_value(old.clone()).expect("an old record parses");
        assert_eq!(serde_json::to_value(&run).expect("serialisable"), old);
    }

    #[test]
    fn escapes_svg_text() {
        assert_eq!(escape("a<b&c>"), "a&lt;b&amp;c&gt;");
    }
}
