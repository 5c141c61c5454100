//! Scenario 1, hold: many idle streams held open, for what one stream costs the server in
//! memory and what idling costs it in CPU. The http2 scenario measures memory the same way
//! ([`held`]) over HTTPS.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::fleet::{Connected, Fleet, SubSpec};
use super::record::cpu_pct;
use super::{Bench, Scenario};
use crate::report::{Row, f0, f1, f2};
use crate::server::Server;

/// The sizes of scenario 1.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct HoldSizes {
    /// Scenario 1: idle streams to hold (one server process; at most ~19,000 under a
    /// 20,000 open-file cap).
    #[arg(long, default_value_t = 10_000)]
    pub hold: usize,
    /// Scenario 1: seconds of idling over which server CPU is measured (longer than
    /// --keepalive-secs, so that it includes a round of keep-alive comments).
    #[arg(long, default_value_t = 16.0)]
    pub hold_idle_secs: f64,
}

/// What scenario 1 measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hold {
    /// Streams asked for.
    pub requested: usize,
    /// How connecting went.
    pub connected: Connected,
    /// Server RSS before connecting (bytes).
    pub rss_before: Option<u64>,
    /// Server RSS with every stream open, after settling (bytes).
    pub rss_after: Option<u64>,
    /// (after - before) / open streams, in KiB.
    pub rss_per_stream_kib: Option<f64>,
    /// Server CPU while the streams idle, in percent of one core.
    pub idle_cpu_pct: Option<f64>,
    /// `sse_connected_clients` as the server reports it while holding.
    pub server_reported: Option<f64>,
    /// Streams that the server closed while they idled.
    pub dropped: usize,
}

impl HoldSizes {
    /// The chart's group for this scenario: memory per held stream.
    pub fn headline() -> Row<Hold> {
        Row::headline("RSS per held stream (lower is better)", |h| {
            h.rss_per_stream_kib
        })
    }
}

/// Streams held open, and the server's memory before and with them.
pub struct Held {
    /// The fleet holding them, still open.
    pub fleet: Fleet,
    /// How connecting went.
    pub connected: Connected,
    /// Server RSS before connecting (bytes).
    pub rss_before: Option<u64>,
    /// Server RSS with every stream open, after settling (bytes).
    pub rss_after: Option<u64>,
}

impl Held {
    /// (after - before) / open streams, in KiB.
    pub fn per_stream_kib(&self) -> Option<f64> {
        per_stream_kib(self.rss_before, self.rss_after, self.connected.ready)
    }
}

/// Opens `n` idle streams to `server` as `spec` says (its read buffers shrunk once open),
/// reading the server's RSS before and once they are all open and settled; `label` names
/// them in the progress printed while they connect.
pub async fn held(server: &Server, n: usize, spec: &SubSpec, label: &str) -> Held {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = server.rss().await;
    // Held streams only idle, so each keeps a tiny read buffer once open.
    let fleet = Fleet::spawn(n, &spec.clone().idle_buf(256));
    let connected = fleet
        .connected(label, Duration::from_secs(60 + n as u64 / 100))
        .await;
    // Let allocators and lazily grown buffers settle before reading memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = server.rss().await;
    Held {
        fleet,
        connected,
        rss_before,
        rss_after,
    }
}

/// Memory per stream in KiB: the growth from `before` to `after` over `streams`; none
/// without both readings or without a stream.
pub fn per_stream_kib(before: Option<u64>, after: Option<u64>, streams: usize) -> Option<f64> {
    match (before, after) {
        (Some(b), Some(a)) if streams > 0 => Some((a as f64 - b as f64) / 1024.0 / streams as f64),
        _ => None,
    }
}

impl Scenario for HoldSizes {
    type Outcome = Hold;

    fn connections(&self) -> usize {
        self.hold
    }

    async fn run(&self, bench: &Bench<'_>) -> Hold {
        let server = bench.server;
        let n = self.hold;
        let spec = SubSpec::new(server.target.clone(), 2048);
        let held = held(server, n, &spec, "hold").await;
        let rss_per_stream_kib = held.per_stream_kib();
        let Held {
            fleet,
            connected,
            rss_before,
            rss_after,
        } = held;
        let cpu_before = server.cpu_secs();
        let idle = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(self.hold_idle_secs)).await;
        let idle_cpu_pct = cpu_pct(cpu_before, server.cpu_secs(), idle.elapsed().as_secs_f64());
        let server_reported = server.metric("sse_connected_clients").await;
        let dropped = fleet.gone();
        fleet.stop().await;
        Hold {
            requested: n,
            connected,
            rss_before,
            rss_after,
            rss_per_stream_kib,
            idle_cpu_pct,
            server_reported,
            dropped,
        }
    }

    fn progress(&self, r: &Hold) -> String {
        format!(
            "hold: {}/{} open ({} failed{}), {:.2} KiB/stream, idle CPU {:.1}%",
            r.connected.ready,
            r.requested,
            r.connected.failed,
            r.connected
                .first_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default(),
            r.rss_per_stream_kib.unwrap_or(f64::NAN),
            r.idle_cpu_pct.unwrap_or(f64::NAN)
        )
    }

    fn rows() -> Vec<Row<Hold>> {
        vec![
            Row::absolute("hold: streams open (of requested)", f0, |h| {
                Some(h.connected.ready as f64)
            }),
            Row::absolute("hold: failed to open", f0, |h| {
                Some(h.connected.failed as f64)
            }),
            Row::relative("hold: RSS per stream (KiB)", f2, |h| h.rss_per_stream_kib),
            Row::absolute("hold: idle server CPU (% of a core)", f1, |h| {
                h.idle_cpu_pct
            }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_per_stream_is_the_growth_over_the_streams_open() {
        let mib = 1024 * 1024;
        assert_eq!(
            per_stream_kib(Some(10 * mib), Some(30 * mib), 1024),
            Some(20.0)
        );
        assert_eq!(
            per_stream_kib(Some(30 * mib), Some(29 * mib), 1024),
            Some(-1.0)
        );
        assert_eq!(per_stream_kib(None, Some(mib), 1), None);
        assert_eq!(
            per_stream_kib(Some(mib), Some(2 * mib), 0),
            None,
            "no stream open"
        );
    }
}
