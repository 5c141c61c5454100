//! Scenario 2, fan-out: publishers send as fast as every subscriber is served, for the
//! events per second the server delivers to everyone and the delay each event takes.
//!
//! The publishers are paced by the slowest subscriber, so that nobody falls `--queue`
//! behind: the figure is what the server can deliver to everyone, not how fast it can drop
//! laggards. The Redis fan-out scenario measures the same way with the subscribers split
//! over two instances ([`FanoutSizes::measure`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::fleet::{Connected, Fleet, SubSpec};
use super::record::{IDLE, Progress, Recorder, cpu_pct};
use super::{Bench, Scenario};
use crate::client::Publisher;
use crate::now_us;
use crate::report::{Row, f0, f1, mega};
use crate::server::Server;
use crate::wire::make_payload;

/// The sizes of scenario 2.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct FanoutSizes {
    /// Scenario 2: subscribers.
    #[arg(long, default_value_t = 1000)]
    pub fanout_subs: usize,
    /// Scenario 2: publisher keep-alive connections (each has one request in flight, so
    /// fewer than ~16 measure the publish round trip instead of the fan-out).
    #[arg(long, default_value_t = 16)]
    pub publishers: usize,
    /// Scenario 2: payload bytes per event.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Scenario 2: events publishers may run ahead of the slowest subscriber (keep it well
    /// under the servers' --queue).
    #[arg(long, default_value_t = 64)]
    pub window: u64,
    /// Scenario 2: unmeasured warm-up seconds.
    #[arg(long, default_value_t = 1.0)]
    pub fanout_warmup_secs: f64,
    /// Scenario 2: measured seconds.
    #[arg(long, default_value_t = 5.0)]
    pub fanout_secs: f64,
}

/// What scenario 2 measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fanout {
    /// How connecting went.
    pub connected: Connected,
    /// Events delivered per second, summed over subscribers, in the measured window.
    pub events_per_sec: f64,
    /// Publishes accepted per second in the measured window.
    pub publishes_per_sec: f64,
    /// Publish-to-receive delay percentiles (ms).
    pub p50_ms: Option<f64>,
    /// 99th percentile (ms).
    pub p99_ms: Option<f64>,
    /// 99.9th percentile (ms).
    pub p999_ms: Option<f64>,
    /// Server CPU in the measured window, percent of one core.
    pub server_cpu_pct: Option<f64>,
    /// Subscribers that the server dropped.
    pub dropped: usize,
    /// Publish requests that failed.
    pub publish_errors: u64,
    /// `sse_lagged_disconnects_total` at the end.
    pub lagged: Option<f64>,
}

impl FanoutSizes {
    /// The chart's group for this scenario: delivered events per second.
    pub fn headline() -> Row<Fanout> {
        Row::headline("fan-out events/s (higher is better)", |f| {
            Some(f.events_per_sec)
        })
    }
}

/// What the publishers share: the next event index, the window they may not run past,
/// and their tallies.
struct Pace {
    /// Stops the publishers and the watcher.
    stop: CancellationToken,
    /// The last event index handed out.
    next: AtomicU64,
    /// The slowest subscriber's progress, refreshed by [`watch_slowest`].
    slowest: AtomicU64,
    /// Events a publisher may be ahead of the slowest subscriber.
    window: u64,
    /// Publishes the server accepted.
    accepted: AtomicU64,
    /// Publishes that failed.
    errors: AtomicU64,
}

impl Pace {
    /// Publishers that may run `window` events ahead of the slowest subscriber.
    fn new(window: u64) -> Self {
        Self {
            stop: CancellationToken::new(),
            next: AtomicU64::new(0),
            slowest: AtomicU64::new(0),
            window,
            accepted: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// Takes the next event index, then waits until the slowest subscriber is within the
    /// window of it; `None` if the publishers are stopped meanwhile.
    async fn claim(&self) -> Option<u64> {
        let k = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        while k > self
            .slowest
            .load(Ordering::Relaxed)
            .saturating_add(self.window)
        {
            if self.stop.is_cancelled() {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Some(k)
    }

    /// Publishes accepted so far.
    fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

/// One publisher: claims indexes and publishes them until stopped.
async fn publish_paced(mut publisher: Publisher, pace: Arc<Pace>, payload: usize) {
    while !pace.stop.is_cancelled() {
        let Some(k) = pace.claim().await else { return };
        let data = make_payload(now_us(), k, payload);
        match publisher.publish("bench", &data).await {
            Ok(_) => pace.accepted.fetch_add(1, Ordering::Relaxed),
            Err(_) => pace.errors.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Refreshes the slowest subscriber's progress, over every fleet, for the publishers until
/// they stop.
async fn watch_slowest(progress: Vec<Arc<Progress>>, pace: Arc<Pace>) {
    while !pace.stop.is_cancelled() {
        let slowest = progress.iter().map(|p| p.slowest()).min();
        pace.slowest
            .store(slowest.unwrap_or(u64::MAX), Ordering::Relaxed);
        // Each scan touches a cache line per subscriber; every 2 ms is plenty for a window
        // of tens of milliseconds.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// What the measured window saw on the publishing side.
struct Window {
    /// Its length in seconds.
    secs: f64,
    /// Publishes accepted in it.
    published: u64,
    /// Server CPU in it, percent of one core.
    server_cpu_pct: Option<f64>,
    /// The sidecar's CPU in it, percent of one core.
    sidecar_cpu_pct: Option<f64>,
}

/// A fan-out measurement, and the CPU that another process (the Redis scenarios'
/// `redis-server`) used over the same window.
pub struct Measured {
    /// What was measured, as the fan-out scenario reports it.
    pub fanout: Fanout,
    /// The other process's CPU in the measured window, percent of one core.
    pub sidecar_cpu_pct: Option<f64>,
}

/// `n` subscribers split as evenly as can be into `parts` fleets, the first ones larger.
fn split(n: usize, parts: usize) -> Vec<usize> {
    let parts = parts.max(1);
    (0..parts)
        .map(|i| n / parts + usize::from(i < n % parts))
        .collect()
}

/// The sum of the servers' CPU seconds so far; `None` if any cannot be read.
fn cpu_secs(servers: &[&Server]) -> Option<f64> {
    servers.iter().map(|s| s.cpu_secs()).sum()
}

/// The sum of a counter over the servers' `/metrics`; `None` if no server has it.
async fn metric_sum(servers: &[&Server], name: &str) -> Option<f64> {
    let mut sum = None;
    for server in servers {
        if let Some(value) = server.metric(name).await {
            *sum.get_or_insert(0.0) += value;
        }
    }
    sum
}

impl FanoutSizes {
    /// Measures fan-out with `--fanout-subs` subscribers split evenly over `servers` and
    /// every publisher on the first of them, the servers' CPU summed; `sidecar` reads
    /// another process's CPU seconds, measured over the same window. With one server this
    /// is the fan-out scenario.
    pub async fn measure(
        &self,
        servers: &[&Server],
        sidecar: &dyn Fn() -> Option<f64>,
    ) -> Measured {
        let Some(first) = servers.first() else {
            return Measured {
                fanout: Fanout::nothing(),
                sidecar_cpu_pct: None,
            };
        };
        let rec = Arc::new(Recorder::new(1));
        let mut fleets = Vec::with_capacity(servers.len());
        let mut progress = Vec::with_capacity(servers.len());
        for (server, subs) in servers.iter().zip(split(self.fanout_subs, servers.len())) {
            let fleet_progress = Arc::new(Progress::new(subs));
            let spec = SubSpec::new(server.target.clone(), 16 * 1024)
                .recording(rec.clone())
                .progress(fleet_progress.clone());
            fleets.push(Fleet::spawn(subs, &spec));
            progress.push(fleet_progress);
        }
        let mut parts = Vec::with_capacity(fleets.len());
        for fleet in &fleets {
            parts.push(fleet.connected("fan-out", Duration::from_secs(60)).await);
        }
        let connected = Connected::sum(&parts);

        let pace = Arc::new(Pace::new(self.window));
        let watcher = tokio::spawn(watch_slowest(progress, pace.clone()));
        let publishers: Vec<_> = (0..self.publishers)
            .map(|_| {
                let publisher = Publisher::new(first.target.clone());
                tokio::spawn(publish_paced(publisher, pace.clone(), self.payload))
            })
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(self.fanout_warmup_secs)).await;
        let window = {
            let cpu_before = cpu_secs(servers);
            let sidecar_before = sidecar();
            let accepted_before = pace.accepted();
            let started = Instant::now();
            rec.set_phase(0);
            tokio::time::sleep(Duration::from_secs_f64(self.fanout_secs)).await;
            rec.set_phase(IDLE);
            let secs = started.elapsed().as_secs_f64();
            Window {
                secs,
                server_cpu_pct: cpu_pct(cpu_before, cpu_secs(servers), secs),
                sidecar_cpu_pct: cpu_pct(sidecar_before, sidecar(), secs),
                published: pace.accepted() - accepted_before,
            }
        };
        pace.stop.cancel();
        for publisher in publishers {
            let _ = publisher.await;
        }
        let _ = watcher.await;
        let lagged = metric_sum(servers, "sse_lagged_disconnects_total").await;
        let mut dropped = 0;
        for fleet in fleets {
            dropped += fleet.stop().await;
        }
        let q = rec.ms(0, &[0.5, 0.99, 0.999]);
        let fanout = Fanout {
            connected,
            events_per_sec: rec.received(0) as f64 / window.secs,
            publishes_per_sec: window.published as f64 / window.secs,
            p50_ms: q[0],
            p99_ms: q[1],
            p999_ms: q[2],
            server_cpu_pct: window.server_cpu_pct,
            dropped,
            publish_errors: pace.errors.load(Ordering::Relaxed),
            lagged,
        };
        Measured {
            fanout,
            sidecar_cpu_pct: window.sidecar_cpu_pct,
        }
    }
}

impl Fanout {
    /// The outcome of a measurement that had no server to measure.
    fn nothing() -> Self {
        Self {
            connected: Connected::sum(&[]),
            events_per_sec: 0.0,
            publishes_per_sec: 0.0,
            p50_ms: None,
            p99_ms: None,
            p999_ms: None,
            server_cpu_pct: None,
            dropped: 0,
            publish_errors: 0,
            lagged: None,
        }
    }
}

impl Scenario for FanoutSizes {
    type Outcome = Fanout;

    fn connections(&self) -> usize {
        self.fanout_subs
    }

    async fn run(&self, bench: &Bench<'_>) -> Fanout {
        self.measure(&[bench.server], &|| None).await.fanout
    }

    fn progress(&self, r: &Fanout) -> String {
        format!(
            "fan-out: {:.3} M events/s ({:.0} publishes/s), p50 {:.1} p99 {:.1} p99.9 {:.1} ms, CPU {:.0}%, dropped {}",
            r.events_per_sec / 1e6,
            r.publishes_per_sec,
            r.p50_ms.unwrap_or(f64::NAN),
            r.p99_ms.unwrap_or(f64::NAN),
            r.p999_ms.unwrap_or(f64::NAN),
            r.server_cpu_pct.unwrap_or(f64::NAN),
            r.dropped
        )
    }

    fn rows() -> Vec<Row<Fanout>> {
        vec![
            Row::relative("fan-out: events/s delivered", mega, |f| {
                Some(f.events_per_sec)
            }),
            Row::relative("fan-out: delay p50 (ms)", f1, |f| f.p50_ms),
            Row::relative("fan-out: delay p99 (ms)", f1, |f| f.p99_ms),
            Row::relative("fan-out: delay p99.9 (ms)", f1, |f| f.p999_ms),
            Row::absolute("fan-out: server CPU (% of a core)", f0, |f| {
                f.server_cpu_pct
            }),
            Row::absolute("fan-out: subscribers dropped", f0, |f| {
                Some(f.dropped as f64)
            }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_publisher_waits_for_the_slowest_subscriber_to_come_within_the_window() {
        let pace = Arc::new(Pace::new(2));
        assert_eq!(pace.claim().await, Some(1));
        assert_eq!(pace.claim().await, Some(2));
        let waiting = tokio::spawn({
            let pace = pace.clone();
            async move { pace.claim().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "event 3 is past 0 + window 2");
        pace.slowest.store(1, Ordering::Relaxed);
        assert_eq!(waiting.await.ok().flatten(), Some(3));
    }

    #[test]
    fn subscribers_split_evenly_over_instances_the_first_ones_larger() {
        assert_eq!(split(1000, 1), [1000]);
        assert_eq!(split(1001, 2), [501, 500]);
        assert_eq!(split(5, 3), [2, 2, 1]);
        assert_eq!(split(7, 0), [7], "no instance counts as one");
        assert_eq!(split(1000, 2).iter().sum::<usize>(), 1000);
    }

    #[tokio::test]
    async fn a_waiting_publisher_gives_up_when_stopped() {
        let pace = Pace::new(0);
        pace.stop.cancel();
        assert_eq!(pace.claim().await, None);
    }
}
