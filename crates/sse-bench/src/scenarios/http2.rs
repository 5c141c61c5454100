//! Scenario 10, http2: fan-out and held-stream memory over HTTP/2 beside HTTP/1.1, for what
//! multiplexing streams onto shared connections saves a server per stream.
//!
//! Three layouts, each on a fresh server process, each first holding `--h2-hold` idle
//! streams (RSS before and with them, from `/proc/<pid>/status`, as the hold scenario
//! reads it: [`held`]), then measuring the fan-out scenario's publish load to
//! `--h2-subs` subscribers ([`FanoutSizes::measure_shaped`]: events/s delivered, delay,
//! server CPU):
//!
//! - **HTTP/1.1, plain**: the server the runner started, a connection per stream, as the
//!   hold and fan-out scenarios measure it (here with this scenario's sizes);
//! - **HTTPS, HTTP/1.1**: an instance of the same variant started with `--tls-cert` and
//!   `--tls-key` (a self-signed certificate for 127.0.0.1 that the scenario makes in a temp
//!   dir and removes), the raw subscribers over TLS offering `http/1.1` alone, a connection
//!   per stream;
//! - **HTTPS, HTTP/2**: a fresh instance of the same, every subscriber a stream of hyper's
//!   HTTP/2 client connections (ALPN `h2` alone), `--h2-streams-per-conn` streams to a
//!   connection: 1,000 subscribers on 10 connections by default.
//!
//! In both HTTPS layouts the publishers post over HTTPS HTTP/1.1 keep-alive connections,
//! the same in both, so that the layouts differ only in how the subscribers are carried.
//! `limit` serves plain HTTP/1.1 only (it has no `--tls-cert`): it is measured in the
//! plain layout and its HTTPS rows are not run, which the markdown after the table says.
//! The open-file limit (20,000 here) counts both ends of every HTTP/1.1 stream in one
//! process, the bench's, and one end in the server's: keep `--h2-hold` and `--h2-subs`
//! under ~19,000.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::fanout::{Fanout, FanoutSizes, Shape, h2_connections};
use super::fleet::{Connected, SubSpec};
use super::hold::held;
use super::{Bench, Scenario};
use crate::client::H2Pool;
use crate::report::{Row, Run, f0, f1, f2, mega};
use crate::server::{Launch, Server};
use crate::tls::{self, BenchCert};

/// The sizes of scenario 10.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct Http2Sizes {
    /// Scenario 10 (http2): subscribers of each layout's fan-out (the other fan-out sizes
    /// are the fan-out scenario's).
    #[arg(long, default_value_t = 1000)]
    pub h2_subs: usize,
    /// Scenario 10: idle streams each layout holds for its memory per stream.
    #[arg(long, default_value_t = 1000)]
    pub h2_hold: usize,
    /// Scenario 10: HTTP/2 streams to a connection (1,000 subscribers at 100 are 10
    /// connections).
    #[arg(long, default_value_t = 100)]
    pub h2_streams_per_conn: usize,
}

/// What one layout measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Layout {
    /// How opening the held streams went.
    pub held: Connected,
    /// TCP connections the held streams used.
    pub held_connections: usize,
    /// Server RSS before the held streams (bytes).
    pub rss_before: Option<u64>,
    /// Server RSS with them open, after settling (bytes).
    pub rss_after: Option<u64>,
    /// (after - before) / held streams, in KiB.
    pub rss_per_stream_kib: Option<f64>,
    /// The fan-out measurement.
    pub fanout: Fanout,
}

/// What scenario 10 measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Http2 {
    /// Plain HTTP/1.1, a connection per stream.
    pub plain: Option<Layout>,
    /// HTTPS, HTTP/1.1, a connection per stream.
    pub h1_tls: Option<Layout>,
    /// HTTPS, HTTP/2, `--h2-streams-per-conn` streams to a connection.
    pub h2: Option<Layout>,
    /// Why a layout was not measured.
    pub errors: Vec<String>,
}

impl Http2 {
    /// What multiplexing saves per held stream: HTTPS HTTP/1.1's KiB per stream minus
    /// HTTP/2's.
    pub fn saved_kib(&self) -> Option<f64> {
        difference(&self.h1_tls, &self.h2)
    }

    /// What TLS adds per held stream on HTTP/1.1: HTTPS's KiB per stream minus plain's.
    pub fn tls_kib(&self) -> Option<f64> {
        difference(&self.h1_tls, &self.plain)
    }
}

/// `a`'s KiB per held stream minus `b`'s.
fn difference(a: &Option<Layout>, b: &Option<Layout>) -> Option<f64> {
    Some(a.as_ref()?.rss_per_stream_kib? - b.as_ref()?.rss_per_stream_kib?)
}

/// How a layout's subscribers reach the server.
enum Carriage {
    /// A connection each, plain or TLS as the server's target says (HTTP/1.1).
    Own,
    /// Streams of shared HTTP/2 connections, through this TLS configuration.
    Shared(Arc<rustls::ClientConfig>),
}

/// The launch to start HTTPS instances from, or why there is none.
fn tls_launch(launch: Option<&Launch>) -> Result<&Launch, String> {
    match launch {
        None => Err("HTTPS: not run: it starts instances of its own, so not with --url".into()),
        Some(launch) if launch.name == "limit" => {
            Err("HTTPS: not run: limit serves plain HTTP/1.1 only (it has no --tls-cert)".into())
        }
        Some(launch) => Ok(launch),
    }
}

impl Http2Sizes {
    /// Holds `--h2-hold` streams carried as `carriage` on `server`, then measures `fanout`'s
    /// load to `--h2-subs` subscribers carried the same way.
    async fn layout(&self, server: &Server, carriage: &Carriage, fanout: &FanoutSizes) -> Layout {
        let per_conn = self.h2_streams_per_conn;
        let mut spec = SubSpec::new(server.target.clone(), 2048);
        let mut pool = None;
        if let Carriage::Shared(tls) = carriage {
            let conns = h2_connections(self.h2_hold, per_conn);
            let shared = Arc::new(H2Pool::new(server.target.clone(), tls.clone(), conns));
            spec = spec.over_h2(shared.clone());
            pool = Some(shared);
        }
        let held = held(server, self.h2_hold, &spec, "http2 hold").await;
        let rss_per_stream_kib = held.per_stream_kib();
        let held_connections = pool.map_or(held.connected.ready, |p| p.connections());
        let connected = held.connected.clone();
        let (rss_before, rss_after) = (held.rss_before, held.rss_after);
        held.fleet.stop().await;
        drop(spec);
        // Let the server see the held streams go before the fan-out's connect.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let shape = Shape {
            h2: match carriage {
                Carriage::Own => None,
                Carriage::Shared(tls) => Some((tls.clone(), per_conn)),
            },
            ..Shape::default()
        };
        let sizes = FanoutSizes {
            fanout_subs: self.h2_subs,
            ..fanout.clone()
        };
        let measured = sizes.measure_shaped(&[server], &|| None, &shape).await;
        Layout {
            held: connected,
            held_connections,
            rss_before,
            rss_after,
            rss_per_stream_kib,
            fanout: measured.fanout,
        }
    }

    /// The two HTTPS layouts, each on a fresh instance of `launch` serving `cert`.
    async fn over_tls(&self, launch: &Launch, bench: &Bench<'_>, outcome: &mut Http2) {
        let cert = match BenchCert::generate() {
            Ok(cert) => cert,
            Err(e) => return outcome.errors.push(format!("HTTPS: {e}")),
        };
        let configs = cert
            .client(tls::HTTP1)
            .and_then(|h1| Ok((h1, cert.client(tls::H2)?)));
        let (h1, h2) = match configs {
            Ok(configs) => configs,
            Err(e) => return outcome.errors.push(format!("HTTPS: {e}")),
        };
        let launch = cert.serving(launch);
        for (name, carriage) in [
            ("HTTPS HTTP/1.1", Carriage::Own),
            ("HTTPS HTTP/2", Carriage::Shared(h2)),
        ] {
            // Let the kernel retire the last process's sockets before the next one starts.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut server = match Server::start(&launch, bench.server.target.token.clone()).await {
                Ok(server) => server,
                Err(e) => {
                    outcome.errors.push(format!("{name}: {e}"));
                    continue;
                }
            };
            // Publishers, /metrics and HTTP/1.1 subscribers all go over TLS from here on.
            server.target.tls = Some(h1.clone());
            let layout = self.layout(&server, &carriage, bench.fanout).await;
            match carriage {
                Carriage::Own => outcome.h1_tls = Some(layout),
                Carriage::Shared(_) => outcome.h2 = Some(layout),
            }
            server.stop().await;
        }
    }
}

/// One layout's part of the progress line.
fn summary(l: &Layout) -> String {
    let f = &l.fanout;
    format!(
        "held {}/{} on {} conns, {:.2} KiB/stream; fan-out {:.3} M events/s, p99 {:.1} ms, \
         CPU {:.0}%, dropped {}",
        l.held.ready,
        l.held.ready + l.held.failed,
        l.held_connections,
        l.rss_per_stream_kib.unwrap_or(f64::NAN),
        f.events_per_sec / 1e6,
        f.p99_ms.unwrap_or(f64::NAN),
        f.server_cpu_pct.unwrap_or(f64::NAN),
        f.dropped
    )
}

/// Three rows of one figure, one per layout: `layouts!(kind, "label", fmt, l => figure)`
/// reads the figure off the [`Layout`] `l` of each, the plain row shown as `Row::$kind`
/// (with its ratio to `limit` when relative), the HTTPS rows as values alone (`limit` has
/// none to hold them against).
macro_rules! layouts {
    ($kind:ident, $label:literal, $fmt:expr, $l:ident => $get:expr) => {
        [
            Row::$kind(
                concat!("http2: ", $label, " (HTTP/1.1, plain)"),
                $fmt,
                |r: &Http2| {
                    let $l = r.plain.as_ref()?;
                    $get
                },
            ),
            Row::absolute(
                concat!("http2: ", $label, " (HTTPS, HTTP/1.1)"),
                $fmt,
                |r: &Http2| {
                    let $l = r.h1_tls.as_ref()?;
                    $get
                },
            ),
            Row::absolute(
                concat!("http2: ", $label, " (HTTPS, HTTP/2)"),
                $fmt,
                |r: &Http2| {
                    let $l = r.h2.as_ref()?;
                    $get
                },
            ),
        ]
    };
}

impl Scenario for Http2Sizes {
    type Outcome = Http2;

    fn connections(&self) -> usize {
        // Streams, which the servers' --max-clients counts, however they are carried.
        self.h2_subs.max(self.h2_hold)
    }

    async fn run(&self, bench: &Bench<'_>) -> Http2 {
        let mut outcome = Http2 {
            plain: Some(
                self.layout(bench.server, &Carriage::Own, bench.fanout)
                    .await,
            ),
            ..Http2::default()
        };
        match tls_launch(bench.launch) {
            Ok(launch) => self.over_tls(launch, bench, &mut outcome).await,
            Err(e) => outcome.errors.push(e),
        }
        outcome
    }

    fn progress(&self, r: &Http2) -> String {
        let mut line = String::from("http2:");
        let layouts = [
            ("HTTP/1.1", &r.plain),
            ("HTTPS HTTP/1.1", &r.h1_tls),
            ("HTTPS HTTP/2", &r.h2),
        ];
        for (name, layout) in layouts {
            if let Some(l) = layout {
                let _ = write!(line, " {name}: {};", summary(l));
            }
        }
        if let Some(saved) = r.saved_kib() {
            let _ = write!(line, " multiplexing saves {saved:.2} KiB/stream;");
        }
        if let Some(tls) = r.tls_kib() {
            let _ = write!(line, " TLS adds {tls:.2} KiB/stream on HTTP/1.1;");
        }
        for error in &r.errors {
            let _ = write!(line, " {error};");
        }
        line.trim_end_matches(';').to_owned()
    }

    fn rows() -> Vec<Row<Http2>> {
        let mut rows: Vec<Row<Http2>> = [
            layouts!(absolute, "held streams open", f0, l => Some(l.held.ready as f64)),
            layouts!(absolute, "held streams' connections", f0,
                l => Some(l.held_connections as f64)),
            layouts!(relative, "RSS per held stream (KiB)", f2, l => l.rss_per_stream_kib),
            layouts!(relative, "fan-out events/s delivered", mega,
                l => Some(l.fanout.events_per_sec)),
            layouts!(relative, "fan-out delay p99 (ms)", f1, l => l.fanout.p99_ms),
            layouts!(absolute, "fan-out server CPU (% of a core)", f0,
                l => l.fanout.server_cpu_pct),
            layouts!(absolute, "fan-out subscribers dropped", f0,
                l => Some(l.fanout.dropped as f64)),
        ]
        .into_iter()
        .flatten()
        .collect();
        rows.extend([
            Row::absolute(
                "http2: KiB/stream multiplexing saves (HTTPS HTTP/1.1 − HTTP/2)",
                f2,
                Http2::saved_kib,
            ),
            Row::absolute(
                "http2: KiB/stream TLS adds (HTTPS HTTP/1.1 − plain)",
                f2,
                Http2::tls_kib,
            ),
        ]);
        rows
    }
}

/// The markdown after the table for this scenario: why a server's layouts were not
/// measured (`limit` has no HTTPS), each once however many rounds gave it; empty when
/// nothing was left out.
pub fn not_measured(run: &Run) -> String {
    let mut lines: Vec<String> = Vec::new();
    for server in &run.servers {
        let errors = server.outcomes.http2.iter().flat_map(|h| &h.errors);
        for error in errors {
            let line = format!("- {}: {error}", server.name);
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
    }
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "\nhttp2 scenario, layouts not measured (their rows show –):\n\n{}\n",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Machine, ServerResult};

    /// A layout that held streams at `kib` KiB each.
    fn layout(kib: f64) -> Layout {
        Layout {
            held: Connected::sum(&[]),
            held_connections: 10,
            rss_before: None,
            rss_after: None,
            rss_per_stream_kib: Some(kib),
            fanout: Fanout {
                connected: Connected::sum(&[]),
                events_per_sec: 1e6,
                publishes_per_sec: 1e3,
                p50_ms: None,
                p99_ms: Some(20.0),
                p999_ms: None,
                server_cpu_pct: Some(100.0),
                dropped: 0,
                publish_errors: 0,
                lagged: None,
            },
        }
    }

    #[test]
    fn multiplexing_saves_the_https_http1_figure_minus_http2s() {
        let all = Http2 {
            plain: Some(layout(18.0)),
            h1_tls: Some(layout(40.0)),
            h2: Some(layout(12.5)),
            errors: Vec::new(),
        };
        assert_eq!(all.saved_kib(), Some(27.5));
        assert_eq!(all.tls_kib(), Some(22.0));
        let plain_only = Http2 {
            plain: Some(layout(1.5)),
            ..Http2::default()
        };
        assert_eq!(plain_only.saved_kib(), None);
        assert_eq!(plain_only.tls_kib(), None);
    }

    #[test]
    fn limit_and_external_servers_get_no_https_layouts_and_say_why() {
        assert!(tls_launch(None).is_err());
        let limit = Launch {
            name: "limit".into(),
            program: "x".into(),
            prefix: Vec::new(),
            flags: Vec::new(),
            log: "x.log".into(),
        };
        let why = tls_launch(Some(&limit)).expect_err("limit has no TLS");
        assert!(why.contains("plain HTTP/1.1 only"), "{why}");
        let axum = Launch {
            name: "axum-stream-map".into(),
            ..limit
        };
        assert!(tls_launch(Some(&axum)).is_ok());
    }

    #[test]
    fn the_progress_line_and_the_notes_name_what_was_not_run() {
        let limit = Http2 {
            plain: Some(layout(1.5)),
            errors: vec![tls_launch(None).expect_err("external")],
            ..Http2::default()
        };
        let sizes = Http2Sizes {
            h2_subs: 1000,
            h2_hold: 1000,
            h2_streams_per_conn: 100,
        };
        let line = sizes.progress(&limit);
        assert!(
            line.starts_with("http2: HTTP/1.1: held 0/0 on 10 conns, 1.50 KiB/stream"),
            "{line}"
        );
        assert!(
            line.ends_with("; HTTPS: not run: it starts instances of its own, so not with --url"),
            "{line}"
        );
        let mut server = ServerResult::named("limit");
        server.outcomes.http2 = Some(limit);
        let run = Run {
            date: String::new(),
            command: String::new(),
            machine: Machine::probe((1, 1)),
            settings: serde_json::Value::Null,
            servers: vec![server.clone(), server],
        };
        let notes = not_measured(&run);
        assert_eq!(
            notes.matches("- limit: HTTPS: not run").count(),
            1,
            "{notes}"
        );
        let both = Http2 {
            h1_tls: Some(layout(40.0)),
            h2: Some(layout(12.5)),
            ..Http2::default()
        };
        assert!(
            sizes
                .progress(&both)
                .contains("multiplexing saves 27.50 KiB/stream")
        );
    }
}
