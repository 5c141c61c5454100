//! Scenario 4, slow: one subscriber that stops reading joins healthy ones, for whether the
//! healthy ones' delay suffers, whether the server lets the stalled one go, and what
//! holding its backlog costs in memory.
//!
//! Events go out at a steady rate in two measured phases: phase 0 with only healthy
//! subscribers, phase 1 with the stalled one among them. The stalled subscriber has a tiny
//! receive buffer and reads its head and `welcome`, then nothing until the end, when it
//! drains to see whether the server ended its stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::fleet::{Connected, Fleet, SubSpec};
use super::record::{IDLE, Recorder};
use super::{Bench, Scenario};
use crate::client::{Publisher, Subscriber, Target};
use crate::now_us;
use crate::report::{Row, f0, f1, yes_no};
use crate::server::Server;
use crate::wire::make_payload;

/// The sizes of scenario 4.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct SlowSizes {
    /// Scenario 4: healthy subscribers (plus one stalled).
    #[arg(long, default_value_t = 999)]
    pub slow_subs: usize,
    /// Scenario 4: events per second.
    #[arg(long, default_value_t = 100)]
    pub slow_rate: u64,
    /// Scenario 4: payload bytes per event (large enough that the stalled subscriber's
    /// kernel buffers, which autotune to a few MB, fill within --slow-secs).
    #[arg(long, default_value_t = 4096)]
    pub slow_payload: usize,
    /// Scenario 4: seconds measured before the stalled subscriber joins.
    #[arg(long, default_value_t = 4.0)]
    pub slow_baseline_secs: f64,
    /// Scenario 4: seconds measured while it is stalled.
    #[arg(long, default_value_t = 15.0)]
    pub slow_secs: f64,
    /// Scenario 4: the stalled subscriber's SO_RCVBUF in bytes.
    #[arg(long, default_value_t = 4096)]
    pub slow_rcvbuf: u32,
}

/// What scenario 4 measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Slow {
    /// How connecting went.
    pub connected: Connected,
    /// Healthy subscribers' p99 before the stalled one joined (ms).
    pub p99_without_ms: Option<f64>,
    /// Healthy subscribers' p99 while it is stalled (ms).
    pub p99_with_ms: Option<f64>,
    /// Healthy deliveries seen / expected while it is stalled.
    pub delivered_with: u64,
    /// Expected deliveries while it is stalled.
    pub expected_with: u64,
    /// Whether the stalled subscriber, reading again after the run, found its stream ended.
    pub stalled_eof: Option<bool>,
    /// Events the stalled subscriber got in all.
    pub stalled_events: u64,
    /// `sse_lagged_disconnects_total` at the end.
    pub lagged: Option<f64>,
    /// Largest server RSS growth over the pre-stall level while stalled (MiB).
    pub rss_growth_mib: Option<f64>,
    /// Healthy subscribers that the server dropped.
    pub dropped: usize,
    /// Why the stalled subscriber could not be opened, if it could not.
    pub stalled_error: Option<String>,
}

/// A publisher at a steady rate that counts its events into the recorder's phases.
struct Metronome {
    /// Stops it.
    stop: CancellationToken,
    /// The task; it returns the events published in phase 0 and in phase 1.
    task: JoinHandle<[u64; 2]>,
}

impl Metronome {
    /// Starts publishing `payload`-byte events to `target`, `rate` a second.
    fn start(target: Target, rate: u64, payload: usize, rec: Arc<Recorder>) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(tick(target, rate.max(1), payload, rec, stop.clone()));
        Self { stop, task }
    }

    /// Stops publishing; returns the events published per phase.
    async fn stop(self) -> [u64; 2] {
        self.stop.cancel();
        self.task.await.unwrap_or([0, 0])
    }
}

/// The metronome's loop: one event per tick until `stop`.
async fn tick(
    target: Target,
    rate: u64,
    payload: usize,
    rec: Arc<Recorder>,
    stop: CancellationToken,
) -> [u64; 2] {
    let mut publisher = Publisher::new(target);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut k = 0;
    let mut per_phase = [0u64; 2];
    while !stop.is_cancelled() {
        ticker.tick().await;
        k += 1;
        // Count into the phase the subscribers record into.
        let phase = rec.phase();
        if publisher
            .publish("bench", &make_payload(now_us(), k, payload))
            .await
            .is_ok()
            && let Some(count) = per_phase.get_mut(phase)
        {
            *count += 1;
        }
    }
    per_phase
}

/// Opens the stalled subscriber with an `SO_RCVBUF` of `rcvbuf` and reads up to its
/// `welcome`; it reads nothing more until [`drain`].
async fn open_stalled(target: &Target, rcvbuf: u32) -> Result<Subscriber, String> {
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut sub = Subscriber::open(target, None, 16 * 1024, Some(rcvbuf))
            .await
            .map_err(|e| e.to_string())?;
        sub.until(|f| f.event == b"welcome")
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(sub)
    })
    .await
    .unwrap_or_else(|_| Err("no welcome within 10 s".into()))
}

/// Reads what the stalled subscriber's server queued; returns whether the stream ended
/// within 10 s and how many bench events it held.
async fn drain(mut sub: Subscriber) -> (bool, u64) {
    let _ = sub.grow_receive_buffer(1 << 20);
    let mut events = 0;
    let eof = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match sub
                .read_frames(&mut |f| events += u64::from(f.event == b"bench"))
                .await
            {
                Ok(true) => {}
                Ok(false) | Err(_) => return true,
            }
        }
    })
    .await
    .unwrap_or(false);
    (eof, events)
}

/// Samples the server's RSS every 250 ms for `secs`; returns the highest, starting from
/// `base`.
async fn peak_rss(server: &Server, secs: f64, base: Option<u64>) -> Option<u64> {
    let started = Instant::now();
    let mut peak = base;
    while started.elapsed().as_secs_f64() < secs {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(rss) = server.rss().await {
            peak = Some(peak.map_or(rss, |p| p.max(rss)));
        }
    }
    peak
}

impl Scenario for SlowSizes {
    type Outcome = Slow;

    /// Kept out of the count, as it always was: the healthy `--slow-subs` never entered
    /// the open-file warning or the servers' `--max-clients`, and counting them now would
    /// change what the servers get whenever this is the largest fleet.
    fn connections(&self) -> usize {
        0
    }

    async fn run(&self, bench: &Bench<'_>) -> Slow {
        let server = bench.server;
        let rec = Arc::new(Recorder::new(2));
        let spec = SubSpec::new(server.target.clone(), 16 * 1024).recording(rec.clone());
        let fleet = Fleet::spawn(self.slow_subs, &spec);
        let connected = fleet.connected("slow", Duration::from_secs(60)).await;
        let metronome = Metronome::start(
            server.target.clone(),
            self.slow_rate,
            self.slow_payload,
            rec.clone(),
        );
        // Warm up, then phase 0: every subscriber healthy.
        tokio::time::sleep(Duration::from_millis(500)).await;
        rec.set_phase(0);
        tokio::time::sleep(Duration::from_secs_f64(self.slow_baseline_secs)).await;
        rec.set_phase(IDLE);
        let rss_base = server.rss().await;
        let stalled = open_stalled(&server.target, self.slow_rcvbuf).await;
        rec.set_phase(1);
        let rss_peak = peak_rss(server, self.slow_secs, rss_base).await;
        let per_phase = metronome.stop().await;
        // Let the last deliveries land before closing the phase.
        tokio::time::sleep(Duration::from_millis(500)).await;
        rec.set_phase(IDLE);
        let lagged_before_drain = server.metric("sse_lagged_disconnects_total").await;
        let (stalled_eof, stalled_events, stalled_error) = match stalled {
            Ok(sub) => {
                let (eof, events) = drain(sub).await;
                (Some(eof), events, None)
            }
            Err(error) => (None, 0, Some(error)),
        };
        let lagged = server
            .metric("sse_lagged_disconnects_total")
            .await
            .or(lagged_before_drain);
        let dropped = fleet.stop().await;
        let healthy = connected.ready as u64;
        Slow {
            connected,
            p99_without_ms: rec.ms(0, &[0.99])[0],
            p99_with_ms: rec.ms(1, &[0.99])[0],
            delivered_with: rec.received(1),
            expected_with: per_phase[1] * healthy,
            stalled_eof,
            stalled_events,
            lagged,
            rss_growth_mib: match (rss_base, rss_peak) {
                (Some(b), Some(p)) => Some((p as f64 - b as f64) / (1024.0 * 1024.0)),
                _ => None,
            },
            dropped,
            stalled_error,
        }
    }

    fn progress(&self, r: &Slow) -> String {
        format!(
            "slow: p99 {:.1} ms without, {:.1} ms with the stalled one; stalled EOF {:?} after {} events; lagged {:?}; RSS +{:.1} MiB",
            r.p99_without_ms.unwrap_or(f64::NAN),
            r.p99_with_ms.unwrap_or(f64::NAN),
            r.stalled_eof,
            r.stalled_events,
            r.lagged,
            r.rss_growth_mib.unwrap_or(f64::NAN)
        )
    }

    fn rows() -> Vec<Row<Slow>> {
        vec![
            Row::relative("slow: healthy p99 without stalled (ms)", f1, |s| {
                s.p99_without_ms
            }),
            Row::relative("slow: healthy p99 with stalled (ms)", f1, |s| s.p99_with_ms),
            Row::absolute("slow: stalled one reaches EOF", yes_no, |s| {
                s.stalled_eof.map(|e| if e { 1.0 } else { 0.0 })
            }),
            Row::absolute("slow: lagged disconnects", f0, |s| s.lagged),
            Row::absolute("slow: server RSS growth (MiB)", f1, |s| s.rss_growth_mib),
        ]
    }
}
