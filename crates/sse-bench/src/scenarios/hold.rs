//! Scenario 1, hold: many idle streams held open, for what one stream costs the server in
//! memory and what idling costs it in CPU.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::fleet::{Connected, Fleet, SubSpec};
use super::record::cpu_pct;
use super::{Bench, Scenario};
use crate::report::{Row, f0, f1, f2};

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

impl Scenario for HoldSizes {
    type Outcome = Hold;

    fn connections(&self) -> usize {
        self.hold
    }

    async fn run(&self, bench: &Bench<'_>) -> Hold {
        let server = bench.server;
        let n = self.hold;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_before = server.rss().await;
        // Held streams only idle, so each keeps a tiny read buffer once open.
        let spec = SubSpec::new(server.target.clone(), 2048).idle_buf(256);
        let fleet = Fleet::spawn(n, &spec);
        let connected = fleet
            .connected("hold", Duration::from_secs(60 + n as u64 / 100))
            .await;
        // Let allocators and lazily grown buffers settle before reading memory.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_after = server.rss().await;
        let cpu_before = server.cpu_secs();
        let idle = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(self.hold_idle_secs)).await;
        let idle_cpu_pct = cpu_pct(cpu_before, server.cpu_secs(), idle.elapsed().as_secs_f64());
        let server_reported = server.metric("sse_connected_clients").await;
        let dropped = fleet.gone();
        fleet.stop().await;
        let rss_per_stream_kib = match (rss_before, rss_after) {
            (Some(b), Some(a)) if connected.ready > 0 => {
                Some((a as f64 - b as f64) / 1024.0 / connected.ready as f64)
            }
            _ => None,
        };
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
