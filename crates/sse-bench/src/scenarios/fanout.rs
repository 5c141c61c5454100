//! Scenario 2, fan-out: publishers send as fast as every subscriber is served, for the
//! events per second the server delivers to everyone and the delay each event takes.
//!
//! The publishers are paced by the slowest subscriber, so that nobody falls `--queue`
//! behind: the figure is what the server can deliver to everyone, not how fast it can drop
//! laggards.

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

/// Refreshes the slowest subscriber's progress for the publishers until they stop.
async fn watch_slowest(progress: Arc<Progress>, pace: Arc<Pace>) {
    while !pace.stop.is_cancelled() {
        pace.slowest.store(progress.slowest(), Ordering::Relaxed);
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
}

impl Scenario for FanoutSizes {
    type Outcome = Fanout;

    fn connections(&self) -> usize {
        self.fanout_subs
    }

    async fn run(&self, bench: &Bench<'_>) -> Fanout {
        let server = bench.server;
        let rec = Arc::new(Recorder::new(1));
        let progress = Arc::new(Progress::new(self.fanout_subs));
        let spec = SubSpec::new(server.target.clone(), 16 * 1024)
            .recording(rec.clone())
            .progress(progress.clone());
        let fleet = Fleet::spawn(self.fanout_subs, &spec);
        let connected = fleet.connected("fan-out", Duration::from_secs(60)).await;

        let pace = Arc::new(Pace::new(self.window));
        let watcher = tokio::spawn(watch_slowest(progress, pace.clone()));
        let publishers: Vec<_> = (0..self.publishers)
            .map(|_| {
                let publisher = Publisher::new(server.target.clone());
                tokio::spawn(publish_paced(publisher, pace.clone(), self.payload))
            })
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(self.fanout_warmup_secs)).await;
        let window = {
            let cpu_before = server.cpu_secs();
            let accepted_before = pace.accepted();
            let started = Instant::now();
            rec.set_phase(0);
            tokio::time::sleep(Duration::from_secs_f64(self.fanout_secs)).await;
            rec.set_phase(IDLE);
            let secs = started.elapsed().as_secs_f64();
            Window {
                secs,
                server_cpu_pct: cpu_pct(cpu_before, server.cpu_secs(), secs),
                published: pace.accepted() - accepted_before,
            }
        };
        pace.stop.cancel();
        for publisher in publishers {
            let _ = publisher.await;
        }
        let _ = watcher.await;
        let lagged = server.metric("sse_lagged_disconnects_total").await;
        let dropped = fleet.stop().await;
        let q = rec.ms(0, &[0.5, 0.99, 0.999]);
        Fanout {
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
        }
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

    #[tokio::test]
    async fn a_waiting_publisher_gives_up_when_stopped() {
        let pace = Pace::new(0);
        pace.stop.cancel();
        assert_eq!(pace.claim().await, None);
    }
}
