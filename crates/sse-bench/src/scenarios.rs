//! The five scenarios, each run against one freshly started server.
//!
//! All load runs in this process on one tokio runtime: subscribers are tasks, publishers are
//! a few keep-alive connections. Delays are measured from the publisher's clock reading,
//! written into the payload just before the request is sent, to the subscriber's clock
//! reading when the read that completed the frame returned; both are the same machine's
//! wall clock. The load generator shares the two cores with the server, as it would on any
//! single machine; that cost is the same for every server, and `limit` shows its ceiling.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::{Publisher, Subscriber, Target};
use crate::now_us;
use crate::server::Server;
use crate::stats::{Sharded, percentile_sorted};
use crate::wire::{Frame, id_seq, make_payload, parse_payload};

/// No measurement phase is active.
const IDLE: usize = usize::MAX;

/// Shards per phase histogram; far more than cores, so that two busy subscribers on
/// different threads rarely share one.
const SHARDS: usize = 32;

/// Delays recorded by subscribers, split into measurement phases.
pub struct Recorder {
    /// One sharded histogram per phase; its sample count is the phase's delivery count.
    hists: Vec<Sharded>,
    /// The active phase, or [`IDLE`] (warm-up, wind-down).
    phase: AtomicUsize,
}

impl Recorder {
    /// A recorder with `phases` phases, idle until [`Self::set_phase`].
    pub fn new(phases: usize) -> Self {
        Self {
            hists: (0..phases).map(|_| Sharded::new(SHARDS)).collect(),
            phase: AtomicUsize::new(IDLE),
        }
    }

    /// Starts recording into `phase` (or stops, with [`IDLE`]).
    pub fn set_phase(&self, phase: usize) {
        self.phase.store(phase, Ordering::SeqCst);
    }

    /// Records one delivery delay (µs) by subscriber `who` in the active phase.
    fn record(&self, who: usize, delay_us: u64) {
        let phase = self.phase.load(Ordering::Relaxed);
        if let Some(hist) = self.hists.get(phase) {
            hist.record(who, delay_us);
        }
    }

    /// Bench events received during `phase`.
    fn received(&self, phase: usize) -> u64 {
        self.hists[phase].count()
    }

    /// Quantiles of `phase`'s delays, in milliseconds.
    fn ms(&self, phase: usize, qs: &[f64]) -> Vec<Option<f64>> {
        let merged = self.hists[phase].merged();
        qs.iter()
            .map(|q| merged.quantile(*q).map(|us| us as f64 / 1000.0))
            .collect()
    }
}

/// A subscriber's progress counter on a cache line of its own: neighbours are updated by
/// other threads at every event.
#[repr(align(64))]
#[derive(Default)]
struct Progress(AtomicU64);

/// First and last receive time of each event, for the spread across subscribers.
struct PerEvent {
    /// Earliest receive time (µs since the epoch) per event index.
    first: Vec<AtomicU64>,
    /// Latest receive time per event index.
    last: Vec<AtomicU64>,
}

impl PerEvent {
    /// Room for event indexes `0..n`.
    fn new(n: usize) -> Self {
        Self {
            first: (0..n).map(|_| AtomicU64::new(u64::MAX)).collect(),
            last: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Notes that event `k` reached a subscriber at `now`.
    fn mark(&self, k: u64, now: u64) {
        let Ok(k) = usize::try_from(k) else { return };
        if let (Some(first), Some(last)) = (self.first.get(k), self.last.get(k)) {
            first.fetch_min(now, Ordering::Relaxed);
            last.fetch_max(now, Ordering::Relaxed);
        }
    }
}

/// What each subscriber of a fleet does with what it reads.
#[derive(Clone)]
struct SubSpec {
    /// The server.
    target: Target,
    /// Read buffer while streaming.
    buf: usize,
    /// Smaller read buffer once connected, for fleets that only idle.
    idle_buf: Option<usize>,
    /// Where delays go.
    rec: Option<Arc<Recorder>>,
    /// Highest event index each subscriber has seen (drives the publishers' window).
    progress: Option<Arc<Vec<Progress>>>,
    /// Per-event first/last receive times.
    per_event: Option<Arc<PerEvent>>,
}

/// How a subscriber task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SubEnd {
    /// Stopped by the scenario: the healthy outcome.
    Cancelled,
    /// The server ended the stream.
    Ended,
    /// A read failed after the stream was open.
    Broken,
    /// The stream never opened.
    Failed,
}

/// Counters shared by a fleet's tasks.
#[derive(Default)]
struct FleetState {
    /// Subscribers that got their `welcome`.
    ready: AtomicUsize,
    /// Subscribers that failed to open.
    failed: AtomicUsize,
    /// The first failure, as an example for the report.
    first_error: Mutex<Option<String>>,
}

/// A set of subscriber tasks.
struct Fleet {
    /// Stops every task.
    cancel: CancellationToken,
    /// The tasks.
    handles: Vec<JoinHandle<SubEnd>>,
    /// Their shared counters.
    state: Arc<FleetState>,
}

/// What connecting a fleet achieved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connected {
    /// Streams that got their `welcome`.
    pub ready: usize,
    /// Streams that failed to open.
    pub failed: usize,
    /// An example failure.
    pub first_error: Option<String>,
    /// Seconds until every stream was open or had failed.
    pub secs: f64,
}

impl Fleet {
    /// Starts `n` subscribers, at most `parallel` of them opening at any moment.
    fn spawn(n: usize, spec: &SubSpec, parallel: usize) -> Self {
        let cancel = CancellationToken::new();
        let state = Arc::new(FleetState::default());
        let gate = Arc::new(Semaphore::new(parallel.max(1)));
        let spec = Arc::new(spec.clone());
        let handles = (0..n)
            .map(|i| {
                let (spec, state, gate, cancel) =
                    (spec.clone(), state.clone(), gate.clone(), cancel.clone());
                tokio::spawn(async move { subscriber(i, &spec, &state, &gate, &cancel).await })
            })
            .collect();
        Self {
            cancel,
            handles,
            state,
        }
    }

    /// Waits until every subscriber is open or has failed (or `limit` passes), printing
    /// progress now and then.
    async fn connected(&self, label: &str, limit: Duration) -> Connected {
        let n = self.handles.len();
        let started = Instant::now();
        let mut last_print = Instant::now();
        loop {
            let ready = self.state.ready.load(Ordering::Relaxed);
            let failed = self.state.failed.load(Ordering::Relaxed);
            if ready + failed >= n || started.elapsed() > limit {
                return Connected {
                    ready,
                    failed: n - ready,
                    first_error: self
                        .state
                        .first_error
                        .lock()
                        .ok()
                        .and_then(|e| e.clone())
                        .or_else(|| (ready + failed < n).then(|| "timed out connecting".into())),
                    secs: started.elapsed().as_secs_f64(),
                };
            }
            if last_print.elapsed() > Duration::from_secs(3) {
                eprintln!("    {label}: {ready}/{n} open, {failed} failed");
                last_print = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Subscribers that were open but are gone (ended by the server or broken) right now.
    fn gone(&self) -> usize {
        self.handles.iter().filter(|h| h.is_finished()).count()
            - self.state.failed.load(Ordering::Relaxed)
    }

    /// Stops every subscriber and tallies how each ended.
    async fn stop(self) -> Vec<SubEnd> {
        self.cancel.cancel();
        let mut ends = Vec::with_capacity(self.handles.len());
        for handle in self.handles {
            ends.push(handle.await.unwrap_or(SubEnd::Broken));
        }
        ends
    }
}

/// One subscriber: open (through `gate`), wait for `welcome`, then read and record.
async fn subscriber(
    i: usize,
    spec: &SubSpec,
    state: &FleetState,
    gate: &Semaphore,
    cancel: &CancellationToken,
) -> SubEnd {
    let opened = {
        let _permit = gate.acquire().await;
        tokio::time::timeout(Duration::from_secs(30), async {
            let mut sub = Subscriber::open(&spec.target, None, spec.buf, None)
                .await
                .map_err(|e| e.to_string())?;
            match sub.until(|f| f.event == b"welcome").await {
                Ok(true) => Ok(sub),
                Ok(false) => Err("stream ended before welcome".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
        .unwrap_or_else(|_| Err("no welcome within 30 s".to_owned()))
    };
    let mut sub = match opened {
        Ok(sub) => sub,
        Err(error) => {
            state.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut first) = state.first_error.lock() {
                first.get_or_insert(error);
            }
            return SubEnd::Failed;
        }
    };
    if let Some(size) = spec.idle_buf {
        sub.set_buffer_size(size);
    }
    state.ready.fetch_add(1, Ordering::Relaxed);
    let end = loop {
        // One clock reading per read: every frame in it arrived at the same moment.
        let mut now = 0;
        let mut on_frame = |f: Frame<'_>| {
            if f.event != b"bench" {
                return;
            }
            let Some((sent, k)) = parse_payload(f.data) else {
                return;
            };
            if now == 0 {
                now = now_us();
            }
            if let Some(rec) = &spec.rec {
                rec.record(i, now.saturating_sub(sent));
            }
            if let Some(progress) = &spec.progress {
                progress[i].0.fetch_max(k, Ordering::Relaxed);
            }
            if let Some(per_event) = &spec.per_event {
                per_event.mark(k, now);
            }
        };
        tokio::select! {
            () = cancel.cancelled() => break SubEnd::Cancelled,
            read = sub.read_frames(&mut on_frame) => match read {
                Ok(true) => {}
                Ok(false) => break SubEnd::Ended,
                Err(_) => break SubEnd::Broken,
            },
        }
    };
    if let Some(progress) = &spec.progress {
        // A subscriber that is gone must not hold the publishers' window shut.
        progress[i].0.store(u64::MAX, Ordering::Relaxed);
    }
    end
}

/// Counts `Ended` and `Broken` among `ends`.
fn dropped(ends: &[SubEnd]) -> usize {
    ends.iter()
        .filter(|e| matches!(e, SubEnd::Ended | SubEnd::Broken))
        .count()
}

/// CPU use of `server` between two readings, in percent of one core.
fn cpu_pct(before: Option<f64>, after: Option<f64>, secs: f64) -> Option<f64> {
    Some((after? - before?) / secs * 100.0)
}

/// Scenario 1: hold idle streams.
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

/// Runs scenario 1 against `server`.
pub async fn hold(server: &Server, n: usize, idle_secs: f64) -> Hold {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = server.rss().await;
    let spec = SubSpec {
        target: server.target.clone(),
        buf: 2048,
        idle_buf: Some(256),
        rec: None,
        progress: None,
        per_event: None,
    };
    let fleet = Fleet::spawn(n, &spec, 256);
    let connected = fleet
        .connected("hold", Duration::from_secs(60 + n as u64 / 100))
        .await;
    // Let allocators and lazily grown buffers settle before reading memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = server.rss().await;
    let cpu_before = server.cpu_secs();
    let idle = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(idle_secs)).await;
    let idle_cpu_pct = cpu_pct(cpu_before, server.cpu_secs(), idle.elapsed().as_secs_f64());
    let server_reported = server.metric("sse_connected_clients").await;
    let dropped_now = fleet.gone();
    let _ = fleet.stop().await;
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
        dropped: dropped_now,
    }
}

/// Settings of the publishing scenarios.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutSizes {
    /// Subscribers.
    pub subscribers: usize,
    /// Publisher connections.
    pub publishers: usize,
    /// Payload bytes per event.
    pub payload: usize,
    /// Events the publishers may be ahead of the slowest subscriber.
    pub window: u64,
    /// Unmeasured warm-up seconds.
    pub warmup_secs: f64,
    /// Measured seconds.
    pub secs: f64,
}

/// Scenario 2: fan-out throughput.
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

/// Runs scenario 2 against `server`.
pub async fn fanout(server: &Server, sizes: &FanoutSizes) -> Fanout {
    let rec = Arc::new(Recorder::new(1));
    let progress: Arc<Vec<Progress>> = Arc::new(
        (0..sizes.subscribers)
            .map(|_| Progress::default())
            .collect(),
    );
    let spec = SubSpec {
        target: server.target.clone(),
        buf: 16 * 1024,
        idle_buf: None,
        rec: Some(rec.clone()),
        progress: Some(progress.clone()),
        per_event: None,
    };
    let fleet = Fleet::spawn(sizes.subscribers, &spec, 256);
    let connected = fleet.connected("fan-out", Duration::from_secs(60)).await;

    // The slowest subscriber's progress, refreshed every 2 ms, gates the publishers
    // so that nobody falls `--queue` behind: the figure is what the server can deliver to
    // everyone, not how fast it can drop laggards.
    let stop = CancellationToken::new();
    let min_progress = Arc::new(AtomicU64::new(0));
    let monitor = {
        let (stop, min_progress, progress) = (stop.clone(), min_progress.clone(), progress.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let min = progress
                    .iter()
                    .map(|p| p.0.load(Ordering::Relaxed))
                    .min()
                    .unwrap_or(u64::MAX);
                min_progress.store(min, Ordering::Relaxed);
                // Each scan touches a cache line per subscriber; every 2 ms is plenty for
                // a window of tens of milliseconds.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let next = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let publishers: Vec<_> = (0..sizes.publishers)
        .map(|_| {
            let mut publisher = Publisher::new(server.target.clone());
            let (stop, min_progress, next, accepted, errors) = (
                stop.clone(),
                min_progress.clone(),
                next.clone(),
                accepted.clone(),
                errors.clone(),
            );
            let (window, payload) = (sizes.window, sizes.payload);
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    let k = next.fetch_add(1, Ordering::Relaxed) + 1;
                    while k > min_progress.load(Ordering::Relaxed).saturating_add(window) {
                        if stop.is_cancelled() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    let data = make_payload(now_us(), k, payload);
                    match publisher.publish("bench", &data).await {
                        Ok(_) => accepted.fetch_add(1, Ordering::Relaxed),
                        Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(sizes.warmup_secs)).await;
    let cpu_before = server.cpu_secs();
    let accepted_before = accepted.load(Ordering::Relaxed);
    let started = Instant::now();
    rec.set_phase(0);
    tokio::time::sleep(Duration::from_secs_f64(sizes.secs)).await;
    rec.set_phase(IDLE);
    let secs = started.elapsed().as_secs_f64();
    let server_cpu_pct = cpu_pct(cpu_before, server.cpu_secs(), secs);
    let published = accepted.load(Ordering::Relaxed) - accepted_before;
    stop.cancel();
    for publisher in publishers {
        let _ = publisher.await;
    }
    let _ = monitor.await;
    let lagged = server.metric("sse_lagged_disconnects_total").await;
    let ends = fleet.stop().await;
    let q = rec.ms(0, &[0.5, 0.99, 0.999]);
    Fanout {
        connected,
        events_per_sec: rec.received(0) as f64 / secs,
        publishes_per_sec: published as f64 / secs,
        p50_ms: q[0],
        p99_ms: q[1],
        p999_ms: q[2],
        server_cpu_pct,
        dropped: dropped(&ends),
        publish_errors: errors.load(Ordering::Relaxed),
        lagged,
    }
}

/// Scenario 3: delivery delay at scale.
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

/// Runs scenario 3 against `server`.
pub async fn latency(
    server: &Server,
    subscribers: usize,
    events: u64,
    interval: Duration,
    payload: usize,
) -> Latency {
    let rec = Arc::new(Recorder::new(1));
    let slots = usize::try_from(events).unwrap_or(0) + 1;
    let per_event = Arc::new(PerEvent::new(slots));
    let spec = SubSpec {
        target: server.target.clone(),
        buf: 4096,
        idle_buf: None,
        rec: Some(rec.clone()),
        progress: None,
        per_event: Some(per_event.clone()),
    };
    let fleet = Fleet::spawn(subscribers, &spec, 256);
    let connected = fleet
        .connected(
            "latency",
            Duration::from_secs(60 + subscribers as u64 / 100),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    rec.set_phase(0);
    let mut publisher = Publisher::new(server.target.clone());
    let mut ticker = tokio::time::interval(interval);
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
    let expected = published * connected.ready as u64;
    let deadline = Instant::now() + interval.max(Duration::from_secs(2));
    while rec.received(0) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rec.set_phase(IDLE);
    let ends = fleet.stop().await;
    let mut spreads: Vec<u64> = (1..slots)
        .filter_map(|k| {
            let first = per_event.first[k].load(Ordering::Relaxed);
            let last = per_event.last[k].load(Ordering::Relaxed);
            (first != u64::MAX).then(|| last.saturating_sub(first))
        })
        .collect();
    spreads.sort_unstable();
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
        dropped: dropped(&ends),
    }
}

/// Settings of scenario 4.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlowSizes {
    /// Healthy subscribers.
    pub subscribers: usize,
    /// Events per second.
    pub rate: u64,
    /// Payload bytes per event.
    pub payload: usize,
    /// Seconds measured before the stalled subscriber joins.
    pub baseline_secs: f64,
    /// Seconds measured with it.
    pub secs: f64,
    /// The stalled subscriber's `SO_RCVBUF`.
    pub rcvbuf: u32,
}

/// Scenario 4: one stalled subscriber among healthy ones.
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

/// Runs scenario 4 against `server`.
pub async fn slow(server: &Server, sizes: &SlowSizes) -> Slow {
    let rec = Arc::new(Recorder::new(2));
    let spec = SubSpec {
        target: server.target.clone(),
        buf: 16 * 1024,
        idle_buf: None,
        rec: Some(rec.clone()),
        progress: None,
        per_event: None,
    };
    let fleet = Fleet::spawn(sizes.subscribers, &spec, 256);
    let connected = fleet.connected("slow", Duration::from_secs(60)).await;
    let stop = CancellationToken::new();
    let publisher = {
        let (stop, phase_of, target, rate, payload) = (
            stop.clone(),
            rec.clone(),
            server.target.clone(),
            sizes.rate.max(1),
            sizes.payload,
        );
        tokio::spawn(async move {
            let mut publisher = Publisher::new(target);
            let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut k = 0;
            let mut per_phase = [0u64; 2];
            while !stop.is_cancelled() {
                ticker.tick().await;
                k += 1;
                // Count into the phase the subscribers record into.
                let phase = phase_of.phase.load(Ordering::Relaxed);
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
        })
    };
    // Warm up, then phase 0: every subscriber healthy.
    tokio::time::sleep(Duration::from_millis(500)).await;
    rec.set_phase(0);
    tokio::time::sleep(Duration::from_secs_f64(sizes.baseline_secs)).await;
    rec.set_phase(IDLE);
    let rss_base = server.rss().await;
    // The stalled subscriber reads its head and welcome, then nothing until the end.
    let stalled = tokio::time::timeout(Duration::from_secs(10), async {
        let mut sub = Subscriber::open(&server.target, None, 16 * 1024, Some(sizes.rcvbuf))
            .await
            .map_err(|e| e.to_string())?;
        sub.until(|f| f.event == b"welcome")
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(sub)
    })
    .await
    .unwrap_or_else(|_| Err("no welcome within 10 s".into()));
    rec.set_phase(1);
    let started = Instant::now();
    let mut rss_peak = rss_base;
    while started.elapsed().as_secs_f64() < sizes.secs {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(rss) = server.rss().await {
            rss_peak = Some(rss_peak.map_or(rss, |p| p.max(rss)));
        }
    }
    stop.cancel();
    let per_phase = publisher.await.unwrap_or([0, 0]);
    // Let the last deliveries land before closing the phase.
    tokio::time::sleep(Duration::from_millis(500)).await;
    rec.set_phase(IDLE);
    let lagged_before_drain = server.metric("sse_lagged_disconnects_total").await;
    let (stalled_eof, stalled_events, stalled_error) = match stalled {
        Ok(mut sub) => {
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
            (Some(eof), events, None)
        }
        Err(error) => (None, 0, Some(error)),
    };
    let lagged = server
        .metric("sse_lagged_disconnects_total")
        .await
        .or(lagged_before_drain);
    let ends = fleet.stop().await;
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
        dropped: dropped(&ends),
        stalled_error,
    }
}

/// Settings of scenario 5.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResumeSizes {
    /// Clients reconnecting at once.
    pub clients: usize,
    /// Events published before the storm.
    pub prefill: usize,
    /// How many events back the clients resume from.
    pub back: usize,
    /// Payload bytes per event.
    pub payload: usize,
}

/// Scenario 5: everyone reconnects at once with `Last-Event-ID`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resume {
    /// Clients that got exactly the expected replay, in order, then the live event.
    pub ok: usize,
    /// Clients that failed to open, got a wrong replay, or missed the live event.
    pub failed: usize,
    /// An example failure.
    pub first_error: Option<String>,
    /// From the storm's start until the last client had its whole replay (ms).
    pub all_replayed_ms: Option<f64>,
    /// Median client's replay time (ms).
    pub p50_replayed_ms: Option<f64>,
    /// From publishing one live event after the replay until every client had it (ms).
    pub live_ms: Option<f64>,
}

/// Runs scenario 5 against `server`.
pub async fn resume(server: &Server, sizes: &ResumeSizes) -> Resume {
    let failure = |e: String| Resume {
        ok: 0,
        failed: sizes.clients,
        first_error: Some(e),
        all_replayed_ms: None,
        p50_replayed_ms: None,
        live_ms: None,
    };
    let mut publisher = Publisher::new(server.target.clone());
    let mut ids = Vec::with_capacity(sizes.prefill);
    for k in 0..sizes.prefill {
        match publisher
            .publish("bench", &make_payload(now_us(), k as u64, sizes.payload))
            .await
        {
            Ok(id) => ids.push(id),
            Err(e) => return failure(format!("prefill publish failed: {e}")),
        }
    }
    if sizes.back == 0 || sizes.back >= ids.len() {
        return failure("--resume-back must be between 1 and --resume-prefill - 1".into());
    }
    let from = ids[ids.len() - 1 - sizes.back].clone();
    let expected_first = ids[ids.len() - sizes.back].clone();
    let last = ids[ids.len() - 1].clone();
    let start = Arc::new(tokio::sync::Notify::new());
    let live = CancellationToken::new();
    let waiting = Arc::new(AtomicUsize::new(0));
    let replayed_at = Arc::new(Mutex::new(Vec::<u64>::new()));
    let live_seen = Arc::new(AtomicUsize::new(0));
    let storm_start = Arc::new(AtomicU64::new(0));
    let tasks: Vec<JoinHandle<Result<(), String>>> = (0..sizes.clients)
        .map(|_| {
            let (start, waiting, replayed_at, live_seen, storm_start, live) = (
                start.clone(),
                waiting.clone(),
                replayed_at.clone(),
                live_seen.clone(),
                storm_start.clone(),
                live.clone(),
            );
            let (target, from, expected_first, last, back) = (
                server.target.clone(),
                from.clone(),
                expected_first.clone(),
                last.clone(),
                sizes.back,
            );
            tokio::spawn(async move {
                let notified = start.notified();
                waiting.fetch_add(1, Ordering::SeqCst);
                notified.await;
                let run = async {
                    let mut sub = Subscriber::open(&target, Some(&from), 16 * 1024, None)
                        .await
                        .map_err(|e| e.to_string())?;
                    let mut count = 0usize;
                    let mut first: Option<String> = None;
                    let mut done = false;
                    let mut bad: Option<String> = None;
                    let mut previous: Option<u64> = None;
                    let mut out_of_order = 0usize;
                    while !done {
                        let open = sub
                            .read_frames(&mut |f| {
                                let Some(id) = f.id else { return };
                                if f.event != b"bench" {
                                    return;
                                }
                                count += 1;
                                // Ids only grow: a repeat or a step back is a broken splice.
                                if let Some(seq) = id_seq(id) {
                                    if previous.is_some_and(|p| p >= seq) {
                                        out_of_order += 1;
                                    }
                                    previous = Some(seq);
                                }
                                let id = String::from_utf8_lossy(id);
                                if first.is_none() {
                                    first = Some(id.to_string());
                                }
                                if id == last.as_str() {
                                    done = true;
                                }
                            })
                            .await
                            .map_err(|e| e.to_string())?;
                        if !open && !done {
                            return Err(format!("stream ended after {count} replayed events"));
                        }
                    }
                    let at = now_us().saturating_sub(storm_start.load(Ordering::SeqCst));
                    if let Ok(mut v) = replayed_at.lock() {
                        v.push(at);
                    }
                    if out_of_order > 0 {
                        bad = Some(format!("{out_of_order} replayed ids did not grow"));
                    } else if first.as_deref() != Some(expected_first.as_str()) {
                        bad = Some(format!("replay started at {first:?}, not {expected_first}"));
                    } else if count != back {
                        bad = Some(format!("replayed {count} events, not {back}"));
                    }
                    // Now live: wait for the one event published after the storm.
                    let mut got_live = false;
                    while !got_live {
                        let mut on_frame = |f: Frame<'_>| got_live |= f.event == b"live";
                        let open = tokio::select! {
                            () = live.cancelled() => return Err("no live event".into()),
                            r = sub.read_frames(&mut on_frame) => r,
                        }
                        .map_err(|e| e.to_string())?;
                        if !open && !got_live {
                            return Err("stream ended before the live event".into());
                        }
                    }
                    live_seen.fetch_add(1, Ordering::SeqCst);
                    bad.map_or(Ok(()), Err)
                };
                tokio::time::timeout(Duration::from_secs(90), run)
                    .await
                    .unwrap_or_else(|_| Err("timed out".into()))
            })
        })
        .collect();
    while waiting.load(Ordering::SeqCst) < sizes.clients {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    storm_start.store(now_us(), Ordering::SeqCst);
    let started = Instant::now();
    start.notify_waiters();
    // Wait for every replay (or for the tasks that fail to finish failing).
    loop {
        let replayed = replayed_at.lock().map(|v| v.len()).unwrap_or(0);
        let finished = tasks.iter().filter(|t| t.is_finished()).count();
        if replayed + finished >= sizes.clients || started.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let live_started = Instant::now();
    let _ = publisher
        .publish("live", &make_payload(now_us(), 0, sizes.payload))
        .await;
    let replayed_n = replayed_at.lock().map(|v| v.len()).unwrap_or(0);
    while live_seen.load(Ordering::SeqCst) < replayed_n
        && live_started.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let live_ms = (live_seen.load(Ordering::SeqCst) >= replayed_n && replayed_n > 0)
        .then(|| live_started.elapsed().as_secs_f64() * 1000.0);
    live.cancel();
    let mut ok = 0;
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok(())) => ok += 1,
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    let mut times = replayed_at.lock().map(|v| v.clone()).unwrap_or_default();
    times.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    Resume {
        ok,
        failed: sizes.clients - ok,
        first_error,
        all_replayed_ms: (times.len() == sizes.clients)
            .then(|| times.last().copied().map(ms))
            .flatten(),
        p50_replayed_ms: percentile_sorted(&times, 0.5).map(ms),
        live_ms,
    }
}
