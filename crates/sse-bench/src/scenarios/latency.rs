//! Scenario 3, latency: a few events, well apart, to many subscribers, for the delay of one
//! event at scale and the spread between the first and the last subscriber to get it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::fleet::{Connected, Fleet, SubSpec};
use super::record::{IDLE, PerEvent, Recorder};
use super::{Bench, Scenario};
use crate::client::{Publisher, Target};
use crate::now_us;
use crate::report::{Row, f0, f1};
use crate::stats::percentile_sorted;
use crate::wire::make_payload;

/// The sizes of scenario 3.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct LatencySizes {
    /// Scenario 3: subscribers.
    #[arg(long, default_value_t = 10_000)]
    pub latency_subs: usize,
    /// Scenario 3: events published.
    #[arg(long, default_value_t = 5)]
    pub latency_events: u64,
    /// Scenario 3: milliseconds between events.
    #[arg(long, default_value_t = 2000)]
    pub latency_interval_ms: u64,
}

/// What scenario 3 measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    /// How connecting went.
    pub connected: Connected,
    /// Events published.
    pub events: u64,
    /// Deliveries seen / deliveries expected (open subscribers x events).
    pub delivered: u64,
    /// Deliveries expected.
    pub expected: u64,
    /// Delay percentiles over every delivery (ms).
    pub p50_ms: Option<f64>,
    /// 99th percentile (ms).
    pub p99_ms: Option<f64>,
    /// Worst delivery (ms).
    pub max_ms: Option<f64>,
    /// Largest gap between the first and the last subscriber to get one event (ms).
    pub spread_max_ms: Option<f64>,
    /// Median of that gap over the events (ms).
    pub spread_p50_ms: Option<f64>,
    /// Subscribers that the server dropped.
    pub dropped: usize,
}

impl LatencySizes {
    /// The chart's group for this scenario: the p99 delay to many subscribers.
    pub fn headline() -> Row<Latency> {
        Row::headline("p99 delay at scale (lower is better)", |l| l.p99_ms)
    }

    /// The time between events.
    fn interval(&self) -> Duration {
        Duration::from_millis(self.latency_interval_ms)
    }

    /// Publishes events `1..=latency_events`, one per interval; returns how many the
    /// server accepted.
    async fn publish(&self, target: &Target, payload: usize) -> u64 {
        let events = self.latency_events;
        let mut publisher = Publisher::new(target.clone());
        let mut ticker = tokio::time::interval(self.interval());
        let mut published = 0;
        for k in 1..=events {
            ticker.tick().await;
            if publisher
                .publish("bench", &make_payload(now_us(), k, payload))
                .await
                .is_ok()
            {
                published += 1;
            }
            eprintln!("    latency: event {k}/{events} published");
        }
        published
    }
}

/// Waits until `rec` has `expected` deliveries or `deadline` passes.
async fn await_deliveries(rec: &Recorder, expected: u64, deadline: Instant) {
    while rec.received(0) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Scenario for LatencySizes {
    type Outcome = Latency;

    fn connections(&self) -> usize {
        self.latency_subs
    }

    async fn run(&self, bench: &Bench<'_>) -> Latency {
        let server = bench.server;
        let subscribers = self.latency_subs;
        let rec = Arc::new(Recorder::new(1));
        // Event indexes start at 1; slot 0 stays unmarked.
        let slots = usize::try_from(self.latency_events).unwrap_or(0) + 1;
        let per_event = Arc::new(PerEvent::new(slots));
        let spec = SubSpec::new(server.target.clone(), 4096)
            .recording(rec.clone())
            .per_event(per_event.clone());
        let fleet = Fleet::spawn(subscribers, &spec);
        let connected = fleet
            .connected(
                "latency",
                Duration::from_secs(60 + subscribers as u64 / 100),
            )
            .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        rec.set_phase(0);
        let published = self.publish(&server.target, bench.payload).await;
        let expected = published * connected.ready as u64;
        let deadline = Instant::now() + self.interval().max(Duration::from_secs(2));
        await_deliveries(&rec, expected, deadline).await;
        rec.set_phase(IDLE);
        let dropped = fleet.stop().await;
        let spreads = per_event.spreads();
        let ms = |us: u64| us as f64 / 1000.0;
        let q = rec.ms(0, &[0.5, 0.99, 1.0]);
        Latency {
            connected,
            events: published,
            delivered: rec.received(0),
            expected,
            p50_ms: q[0],
            p99_ms: q[1],
            max_ms: q[2],
            spread_max_ms: spreads.last().copied().map(ms),
            spread_p50_ms: percentile_sorted(&spreads, 0.5).map(ms),
            dropped,
        }
    }

    fn progress(&self, r: &Latency) -> String {
        format!(
            "latency: {} open, {}/{} delivered, p50 {:.1} p99 {:.1} ms, spread max {:.1} ms",
            r.connected.ready,
            r.delivered,
            r.expected,
            r.p50_ms.unwrap_or(f64::NAN),
            r.p99_ms.unwrap_or(f64::NAN),
            r.spread_max_ms.unwrap_or(f64::NAN)
        )
    }

    fn rows() -> Vec<Row<Latency>> {
        vec![
            Row::relative("latency: delay p50 (ms)", f1, |l| l.p50_ms),
            Row::relative("latency: delay p99 (ms)", f1, |l| l.p99_ms),
            Row::relative("latency: first-to-last spread, max (ms)", f1, |l| {
                l.spread_max_ms
            }),
            Row::absolute("latency: deliveries missing", f0, |l| {
                Some(l.expected.saturating_sub(l.delivered) as f64)
            }),
        ]
    }
}
