//! A fleet: many subscribers to one server, each a task that opens its stream, waits for
//! `welcome`, then reads until the scenario stops it, feeding what it reads into the
//! scenario's recorders. Every scenario but resume loads the server with one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::record::{PerEvent, Progress, Recorder};
use crate::client::{Subscriber, Target};
use crate::now_us;
use crate::wire::{Frame, parse_payload};

/// Streams opening at any moment: enough to open thousands in seconds, few enough that
/// the server's accept queue never overflows (the storm's first streams open this way too).
pub const OPENING: usize = 256;

/// What each subscriber of a fleet does with what it reads.
#[derive(Clone)]
pub struct SubSpec {
    /// The server.
    target: Target,
    /// Read buffer while streaming.
    buf: usize,
    /// Smaller read buffer once connected, for fleets that only idle.
    idle_buf: Option<usize>,
    /// Where delays go.
    rec: Option<Arc<Recorder>>,
    /// Highest event index each subscriber has seen (drives the publishers' window).
    progress: Option<Arc<Progress>>,
    /// Per-event first/last receive times.
    per_event: Option<Arc<PerEvent>>,
}

impl SubSpec {
    /// Subscribers of `target` reading `buf` bytes at a time and recording nothing.
    pub fn new(target: Target, buf: usize) -> Self {
        Self {
            target,
            buf,
            idle_buf: None,
            rec: None,
            progress: None,
            per_event: None,
        }
    }

    /// Once open, each subscriber swaps its read buffer for one of `size` bytes.
    pub fn idle_buf(self, size: usize) -> Self {
        Self {
            idle_buf: Some(size),
            ..self
        }
    }

    /// Each subscriber records every bench event's delay into `rec`.
    pub fn recording(self, rec: Arc<Recorder>) -> Self {
        Self {
            rec: Some(rec),
            ..self
        }
    }

    /// Each subscriber advances its slot of `progress` (subscriber `i` uses slot `i`).
    pub fn progress(self, progress: Arc<Progress>) -> Self {
        Self {
            progress: Some(progress),
            ..self
        }
    }

    /// Each subscriber marks every bench event's arrival in `per_event`.
    pub fn per_event(self, per_event: Arc<PerEvent>) -> Self {
        Self {
            per_event: Some(per_event),
            ..self
        }
    }

    /// Subscriber `who` got `frame` from a read that returned at `now` (µs; 0 until this
    /// read's first bench event asks for the clock, so that a read costs one clock reading).
    fn observe(&self, who: usize, frame: &Frame<'_>, now: &mut u64) {
        if frame.event != b"bench" {
            return;
        }
        let Some((sent, k)) = parse_payload(frame.data) else {
            return;
        };
        if *now == 0 {
            *now = now_us();
        }
        if let Some(rec) = &self.rec {
            rec.record(who, now.saturating_sub(sent));
        }
        if let Some(progress) = &self.progress {
            progress.advance(who, k);
        }
        if let Some(per_event) = &self.per_event {
            per_event.mark(k, *now);
        }
    }
}

/// How a subscriber task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Subscribers that the server dropped (ended or broken) among `ends`.
fn dropped(ends: &[SubEnd]) -> usize {
    ends.iter()
        .filter(|e| matches!(e, SubEnd::Ended | SubEnd::Broken))
        .count()
}

/// Counters of a fleet's tasks.
#[derive(Default)]
struct Tally {
    /// Subscribers that got their `welcome`.
    ready: AtomicUsize,
    /// Subscribers that failed to open.
    failed: AtomicUsize,
    /// The first failure, as an example for the report.
    first_error: Mutex<Option<String>>,
}

impl Tally {
    /// One more subscriber failed to open, for `error`.
    fn fail(&self, error: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(error);
        }
    }

    /// The first failure recorded, if any.
    fn first_error(&self) -> Option<String> {
        self.first_error.lock().ok().and_then(|e| e.clone())
    }
}

/// What every task of a fleet shares.
struct Crew {
    /// What each subscriber does.
    spec: SubSpec,
    /// The fleet's counters.
    tally: Tally,
    /// Limits how many streams open at once.
    gate: Semaphore,
    /// Stops every task.
    cancel: CancellationToken,
}

/// A set of subscriber tasks.
pub struct Fleet {
    /// What the tasks share.
    crew: Arc<Crew>,
    /// One task per subscriber, in index order.
    handles: Vec<JoinHandle<SubEnd>>,
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

impl Connected {
    /// What connecting several fleets achieved together: their streams added up, the first
    /// example failure, and the longest time (they connect at the same time).
    pub fn sum(parts: &[Self]) -> Self {
        Self {
            ready: parts.iter().map(|p| p.ready).sum(),
            failed: parts.iter().map(|p| p.failed).sum(),
            first_error: parts.iter().find_map(|p| p.first_error.clone()),
            secs: parts.iter().map(|p| p.secs).fold(0.0, f64::max),
        }
    }
}

impl Fleet {
    /// Starts `n` subscribers doing what `spec` says, a few at a time.
    pub fn spawn(n: usize, spec: &SubSpec) -> Self {
        let crew = Arc::new(Crew {
            spec: spec.clone(),
            tally: Tally::default(),
            gate: Semaphore::new(OPENING),
            cancel: CancellationToken::new(),
        });
        let handles = (0..n)
            .map(|i| {
                let crew = crew.clone();
                tokio::spawn(async move { subscriber(i, &crew).await })
            })
            .collect();
        Self { crew, handles }
    }

    /// Waits until every subscriber is open or has failed (or `limit` passes), printing
    /// progress under `label` now and then.
    pub async fn connected(&self, label: &str, limit: Duration) -> Connected {
        let n = self.handles.len();
        let tally = &self.crew.tally;
        let started = Instant::now();
        let mut last_print = Instant::now();
        loop {
            let ready = tally.ready.load(Ordering::Relaxed);
            let failed = tally.failed.load(Ordering::Relaxed);
            if ready + failed >= n || started.elapsed() > limit {
                return Connected {
                    ready,
                    failed: n - ready,
                    first_error: tally
                        .first_error()
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
    pub fn gone(&self) -> usize {
        self.handles.iter().filter(|h| h.is_finished()).count()
            - self.crew.tally.failed.load(Ordering::Relaxed)
    }

    /// Stops every subscriber; returns how many of them the server had dropped.
    pub async fn stop(self) -> usize {
        self.crew.cancel.cancel();
        let mut ends = Vec::with_capacity(self.handles.len());
        for handle in self.handles {
            ends.push(handle.await.unwrap_or(SubEnd::Broken));
        }
        dropped(&ends)
    }
}

/// Subscriber `i`: open (through the gate), wait for `welcome`, then read and record until
/// cancelled or the stream ends.
async fn subscriber(i: usize, crew: &Crew) -> SubEnd {
    let mut sub = match open(crew).await {
        Ok(sub) => sub,
        Err(error) => {
            crew.tally.fail(error);
            return SubEnd::Failed;
        }
    };
    if let Some(size) = crew.spec.idle_buf {
        sub.set_buffer_size(size);
    }
    crew.tally.ready.fetch_add(1, Ordering::Relaxed);
    let end = read_until_cancelled(i, &mut sub, crew).await;
    if let Some(progress) = &crew.spec.progress {
        // A subscriber that is gone must not hold the publishers' window shut.
        progress.leave(i);
    }
    end
}

/// Opens one stream and reads up to its `welcome`, holding a gate permit meanwhile.
async fn open(crew: &Crew) -> Result<Subscriber, String> {
    let _permit = crew.gate.acquire().await;
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut sub = Subscriber::open(&crew.spec.target, None, crew.spec.buf, None)
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
}

/// Subscriber `i` reads and observes frames until the fleet is stopped or the stream ends.
async fn read_until_cancelled(i: usize, sub: &mut Subscriber, crew: &Crew) -> SubEnd {
    loop {
        // One clock reading per read: every frame in it arrived at the same moment.
        let mut now = 0;
        let mut on_frame = |f: Frame<'_>| crew.spec.observe(i, &f, &mut now);
        tokio::select! {
            () = crew.cancel.cancelled() => return SubEnd::Cancelled,
            read = sub.read_frames(&mut on_frame) => match read {
                Ok(true) => {}
                Ok(false) => return SubEnd::Ended,
                Err(_) => return SubEnd::Broken,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ended_and_broken_streams_count_as_dropped() {
        let ends = [
            SubEnd::Cancelled,
            SubEnd::Ended,
            SubEnd::Failed,
            SubEnd::Broken,
            SubEnd::Cancelled,
        ];
        assert_eq!(dropped(&ends), 2);
        assert_eq!(dropped(&[SubEnd::Cancelled, SubEnd::Failed]), 0);
    }

    #[test]
    fn fleets_connected_together_add_up_and_take_the_longest() {
        let part = |ready, failed, error: Option<&str>, secs| Connected {
            ready,
            failed,
            first_error: error.map(str::to_owned),
            secs,
        };
        let sum = Connected::sum(&[
            part(500, 0, None, 1.5),
            part(498, 2, Some("HTTP 503"), 1.25),
        ]);
        assert_eq!((sum.ready, sum.failed), (998, 2));
        assert_eq!(sum.first_error.as_deref(), Some("HTTP 503"));
        assert_eq!(sum.secs, 1.5);
        let one = Connected::sum(&[part(7, 1, Some("x"), 0.5)]);
        assert_eq!((one.ready, one.failed, one.secs), (7, 1, 0.5));
        let none = Connected::sum(&[]);
        assert_eq!((none.ready, none.failed, none.first_error), (0, 0, None));
    }

    /// A spec for tests: the target is never connected to.
    fn spec() -> SubSpec {
        let target = Target {
            addr: ([127, 0, 0, 1], 9).into(),
            host: "127.0.0.1:9".into(),
            token: None,
        };
        SubSpec::new(target, 64)
    }

    /// A bench frame carrying `payload`.
    fn bench(payload: &str) -> Frame<'_> {
        Frame {
            id: Some(b"1-1"),
            event: b"bench",
            data: payload.as_bytes(),
            retry: None,
        }
    }

    #[test]
    fn bench_events_feed_every_recorder_with_one_clock_reading() {
        let rec = Arc::new(Recorder::new(1));
        let progress = Arc::new(Progress::new(2));
        let per_event = Arc::new(PerEvent::new(4));
        let spec = spec()
            .recording(rec.clone())
            .progress(progress.clone())
            .per_event(per_event.clone());
        rec.set_phase(0);
        let mut now = 0;
        spec.observe(1, &bench("0 3 xx"), &mut now);
        let first_reading = now;
        assert!(first_reading > 0);
        spec.observe(1, &bench("0 2 xx"), &mut now);
        assert_eq!(now, first_reading);
        spec.observe(0, &bench("0 1"), &mut now);
        assert_eq!(rec.received(0), 3);
        assert_eq!(progress.slowest(), 1);
        progress.leave(0);
        assert_eq!(progress.slowest(), 3);
        assert_eq!(per_event.spreads(), [0, 0, 0]);
    }

    #[test]
    fn other_events_and_foreign_payloads_are_ignored() {
        let rec = Arc::new(Recorder::new(1));
        let spec = spec().recording(rec.clone());
        rec.set_phase(0);
        let mut now = 0;
        let welcome = Frame {
            event: b"welcome",
            ..bench("0 1")
        };
        spec.observe(0, &welcome, &mut now);
        spec.observe(0, &bench("not a payload"), &mut now);
        assert_eq!(now, 0, "no clock reading without a bench event");
        assert_eq!(rec.received(0), 0);
    }
}
