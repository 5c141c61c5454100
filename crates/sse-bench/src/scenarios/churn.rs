//! Scenario 12, churn: `--churn-total` connections in all, `--churn-batch` at a time (open
//! a batch of streams, wait until each has its `welcome`, drop them all, again), so that no
//! client is left at the end; for whether the server gives back the memory that its
//! clients cost it once they are gone. The target: RSS after the churn within
//! 10 MiB of RSS before it.
//!
//! RSS is read from `/proc/<pid>/status`: `VmRSS` before the first connection, `VmHWM` (the
//! kernel's high-water mark, so that no sampling misses the peak) at the end, and `VmRSS`
//! after the churn, once `sse_connected_clients` on `/metrics` has come down to 0 (waited
//! for, at most `--churn-drain-secs`: a server that notices a closed client only when it
//! next writes to it needs up to `--keepalive-secs`) and then `--churn-settle-secs` more
//! for the allocator to hand pages back.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::fleet::{Fleet, SubSpec};
use super::{Bench, Scenario};
use crate::report::{Row, f0, f1};
use crate::server::Server;

/// The target: RSS after the churn at most this many MiB above RSS before it.
pub const TARGET_MIB: f64 = 10.0;

/// The sizes of scenario 12.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct ChurnSizes {
    /// Scenario 12 (churn): connections opened in all.
    #[arg(long, default_value_t = 40_000)]
    pub churn_total: usize,
    /// Scenario 12: connections open at a time (each batch opened, welcomed, then dropped).
    #[arg(long, default_value_t = 1000)]
    pub churn_batch: usize,
    /// Scenario 12: seconds to wait at most, after the last batch, for the server's
    /// `sse_connected_clients` to reach 0.
    #[arg(long, default_value_t = 30.0)]
    pub churn_drain_secs: f64,
    /// Scenario 12: seconds between the gauge reaching 0 (or the wait ending) and the
    /// after-churn RSS reading.
    #[arg(long, default_value_t = 2.0)]
    pub churn_settle_secs: f64,
}

/// What scenario 12 measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Churn {
    /// Connections asked for, in all (whole batches).
    pub requested: usize,
    /// Batches opened.
    pub batches: usize,
    /// Streams that got their `welcome`.
    pub opened: usize,
    /// Streams that failed to open.
    pub failed: usize,
    /// An example failure.
    pub first_error: Option<String>,
    /// Seconds from the first connection to the last batch dropped.
    pub churn_secs: f64,
    /// Server RSS before any connection (bytes).
    pub rss_start: Option<u64>,
    /// The server's peak RSS, `VmHWM` (bytes).
    pub rss_peak: Option<u64>,
    /// Server RSS after the churn, the clients gone and settled (bytes).
    pub rss_after: Option<u64>,
    /// Seconds from the last batch dropped until `sse_connected_clients` read 0; `None`
    /// if it did not within `--churn-drain-secs`.
    pub drained_secs: Option<f64>,
    /// `sse_connected_clients` when the wait ended.
    pub clients_left: Option<f64>,
}

impl Churn {
    /// RSS after the churn minus RSS before it, in MiB.
    pub fn growth_mib(&self) -> Option<f64> {
        Some(mib(self.rss_after?) - mib(self.rss_start?))
    }
}

/// Bytes in MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Batches of `batch` that make up `total` connections (the last one whole, so that every
/// batch is as large: `total` rounded up to a multiple of `batch`).
fn batches(total: usize, batch: usize) -> usize {
    total.div_ceil(batch.max(1))
}

/// Polls `server`'s `sse_connected_clients` until it reads 0 or `bound` passes; returns
/// how long it took (`None` if it did not) and the last reading.
async fn drained(server: &Server, bound: Duration) -> (Option<f64>, Option<f64>) {
    let started = Instant::now();
    loop {
        let clients = server.metric("sse_connected_clients").await;
        if clients == Some(0.0) {
            return (Some(started.elapsed().as_secs_f64()), clients);
        }
        if started.elapsed() >= bound {
            return (None, clients);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Scenario for ChurnSizes {
    type Outcome = Churn;

    fn connections(&self) -> usize {
        self.churn_batch
    }

    async fn run(&self, bench: &Bench<'_>) -> Churn {
        let server = bench.server;
        let batch = self.churn_batch.max(1);
        let rounds = batches(self.churn_total, batch);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_start = server.rss().await;
        // Streams that only wait for `welcome` and go: a small read buffer does.
        let spec = SubSpec::new(server.target.clone(), 2048);
        let mut outcome = Churn {
            requested: rounds * batch,
            rss_start,
            ..Churn::default()
        };
        // Sampled after each batch is open, for a server without a pid to read VmHWM of.
        let mut sampled_peak = rss_start;
        let started = Instant::now();
        for round in 0..rounds {
            let fleet = Fleet::spawn(batch, &spec);
            let connected = fleet.connected("churn", Duration::from_secs(60)).await;
            sampled_peak = sampled_peak.max(server.rss().await);
            outcome.opened += connected.ready;
            outcome.failed += connected.failed;
            if outcome.first_error.is_none() {
                outcome.first_error = connected.first_error;
            }
            fleet.stop().await;
            outcome.batches = round + 1;
            if (round + 1) % 10 == 0 {
                eprintln!(
                    "    churn: {}/{} connections, {} failed",
                    (round + 1) * batch,
                    rounds * batch,
                    outcome.failed
                );
            }
        }
        outcome.churn_secs = started.elapsed().as_secs_f64();
        let bound = Duration::from_secs_f64(self.churn_drain_secs);
        (outcome.drained_secs, outcome.clients_left) = drained(server, bound).await;
        tokio::time::sleep(Duration::from_secs_f64(self.churn_settle_secs)).await;
        outcome.rss_after = server.rss().await;
        outcome.rss_peak = server.rss_peak().or(sampled_peak);
        outcome
    }

    fn progress(&self, c: &Churn) -> String {
        let verdict = match c.growth_mib() {
            Some(g) if g <= TARGET_MIB => "within",
            Some(_) => "NOT within",
            None => "unknown against",
        };
        format!(
            "churn: {}/{} opened in {} batches over {:.1} s ({} failed{}); RSS start {:.1}, \
             peak {:.1}, after {:.1} MiB ({:+.1} MiB, {verdict} the {TARGET_MIB:.0} MiB \
             target); clients to 0 in {}",
            c.opened,
            c.requested,
            c.batches,
            c.churn_secs,
            c.failed,
            c.first_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default(),
            c.rss_start.map_or(f64::NAN, mib),
            c.rss_peak.map_or(f64::NAN, mib),
            c.rss_after.map_or(f64::NAN, mib),
            c.growth_mib().unwrap_or(f64::NAN),
            c.drained_secs.map_or_else(
                || format!(
                    "more than {:.0} s ({} left)",
                    self.churn_drain_secs,
                    c.clients_left.map_or("?".to_owned(), |n| format!("{n:.0}"))
                ),
                |s| format!("{s:.1} s")
            ),
        )
    }

    fn rows() -> Vec<Row<Churn>> {
        vec![
            Row::absolute("churn: streams opened (in all)", f0, |c| {
                Some(c.opened as f64)
            }),
            Row::absolute("churn: failed to open", f0, |c| Some(c.failed as f64)),
            Row::relative("churn: seconds to open and drop them all", f1, |c| {
                Some(c.churn_secs)
            }),
            Row::absolute("churn: RSS at start (MiB)", f1, |c| c.rss_start.map(mib)),
            Row::absolute("churn: RSS peak (MiB)", f1, |c| c.rss_peak.map(mib)),
            Row::absolute("churn: RSS after churn (MiB)", f1, |c| c.rss_after.map(mib)),
            Row::absolute(
                "churn: RSS after − start (MiB, target ≤ 10)",
                f1,
                Churn::growth_mib,
            ),
            Row::absolute("churn: seconds until no client is counted", f1, |c| {
                c.drained_secs
            }),
            Row::absolute("churn: clients still counted at the end", f0, |c| {
                c.clients_left
            }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_is_whole_batches_covering_the_total() {
        assert_eq!(batches(40_000, 1000), 40);
        assert_eq!(batches(40_001, 1000), 41);
        assert_eq!(batches(999, 1000), 1);
        assert_eq!(batches(0, 1000), 0);
        assert_eq!(batches(5, 0), 5, "a batch of none counts as one");
    }

    #[test]
    fn growth_is_after_minus_start_in_mib() {
        let churn = Churn {
            rss_start: Some(10 * 1024 * 1024),
            rss_after: Some(25 * 1024 * 1024 + 512 * 1024),
            ..Churn::default()
        };
        assert_eq!(churn.growth_mib(), Some(15.5));
        let shrunk = Churn {
            rss_after: Some(9 * 1024 * 1024),
            ..churn.clone()
        };
        assert_eq!(shrunk.growth_mib(), Some(-1.0));
        let unread = Churn {
            rss_after: None,
            ..churn
        };
        assert_eq!(unread.growth_mib(), None);
        assert_eq!(mib(3 * 1024 * 1024), 3.0);
    }

    #[test]
    fn the_progress_line_says_whether_the_target_was_met() {
        let sizes = ChurnSizes {
            churn_total: 40_000,
            churn_batch: 1000,
            churn_drain_secs: 30.0,
            churn_settle_secs: 2.0,
        };
        let churn = Churn {
            requested: 40_000,
            batches: 40,
            opened: 40_000,
            rss_start: Some(8 * 1024 * 1024),
            rss_peak: Some(40 * 1024 * 1024),
            rss_after: Some(12 * 1024 * 1024),
            drained_secs: Some(0.5),
            clients_left: Some(0.0),
            ..Churn::default()
        };
        let line = sizes.progress(&churn);
        assert!(
            line.contains("(+4.0 MiB, within the 10 MiB target)"),
            "{line}"
        );
        assert!(line.ends_with("clients to 0 in 0.5 s"), "{line}");
        let stuck = Churn {
            rss_after: Some(30 * 1024 * 1024),
            drained_secs: None,
            clients_left: Some(17.0),
            ..churn
        };
        let line = sizes.progress(&stuck);
        assert!(line.contains("NOT within"), "{line}");
        assert!(line.ends_with("more than 30 s (17 left)"), "{line}");
    }
}
