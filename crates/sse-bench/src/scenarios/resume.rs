//! Scenario 5, resume: every client reconnects at once with `Last-Event-ID`, for how long
//! the server takes to replay everyone's missed events, whether each replay is exactly
//! right, and how soon a live event reaches everyone after the storm.
//!
//! The runner prefills the server's history, picks an id `--resume-back` events from the
//! end, and holds every client at a start line until all are waiting, so that they connect
//! in one burst. Each client then checks its replay frame by frame ([`Replay`]): it must
//! start right after the id it resumed from, grow without repeats or steps back, and end
//! at the last prefilled id; after that it waits for the one live event.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Bench, Scenario};
use crate::client::{Publisher, Subscriber, Target};
use crate::now_us;
use crate::report::{Row, f0, f1};
use crate::stats::percentile_sorted;
use crate::wire::{Frame, id_seq, make_payload};

/// The sizes of scenario 5.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct ResumeSizes {
    /// Scenario 5: clients reconnecting at once.
    #[arg(long, default_value_t = 1000)]
    pub resume_clients: usize,
    /// Scenario 5: events published before the storm.
    #[arg(long, default_value_t = 500)]
    pub resume_prefill: usize,
    /// Scenario 5: how many events back the clients resume.
    #[arg(long, default_value_t = 300)]
    pub resume_back: usize,
}

/// What scenario 5 measured.
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

impl Resume {
    /// The outcome when the storm could not even start: every client counts as failed.
    fn failure(clients: usize, error: String) -> Self {
        Self {
            ok: 0,
            failed: clients,
            first_error: Some(error),
            all_replayed_ms: None,
            p50_replayed_ms: None,
            live_ms: None,
        }
    }
}

impl ResumeSizes {
    /// The chart's group for this scenario: the time until everyone is replayed.
    pub fn headline() -> Row<Resume> {
        Row::headline("resume storm time (lower is better)", |r| r.all_replayed_ms)
    }
}

/// Which ids the storm resumes from and expects, picked from the prefilled ones.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    /// The `Last-Event-ID` every client sends.
    from: String,
    /// The first id the replay must hold: the one after `from`.
    expected_first: String,
    /// The last prefilled id: the replay ends with it.
    last: String,
    /// Events the replay must hold.
    back: usize,
}

impl Plan {
    /// Resumes `back` events before the end of `ids` (in publish order), which needs at
    /// least one event before those to resume from.
    fn pick(ids: &[String], back: usize) -> Result<Self, String> {
        if back == 0 || back >= ids.len() {
            return Err("--resume-back must be between 1 and --resume-prefill - 1".into());
        }
        Ok(Self {
            from: ids[ids.len() - 1 - back].clone(),
            expected_first: ids[ids.len() - back].clone(),
            last: ids[ids.len() - 1].clone(),
            back,
        })
    }
}

/// One client's replay, checked frame by frame as it arrives.
#[derive(Debug, Default)]
struct Replay {
    /// Bench events with an id seen so far.
    count: usize,
    /// The first such event's id.
    first: Option<String>,
    /// The sequence number of the latest id, for the order check.
    previous: Option<u64>,
    /// Ids that repeated or stepped back from the one before.
    out_of_order: usize,
    /// Whether the plan's last id has arrived.
    done: bool,
}

impl Replay {
    /// Takes one frame. Only bench events with an id count; their ids must grow (an id
    /// that repeats or steps back is a broken splice of history and live events), and the
    /// one equal to `last` completes the replay.
    fn observe(&mut self, frame: &Frame<'_>, last: &str) {
        let Some(id) = frame.id else { return };
        if frame.event != b"bench" {
            return;
        }
        self.count += 1;
        if let Some(seq) = id_seq(id) {
            if self.previous.is_some_and(|p| p >= seq) {
                self.out_of_order += 1;
            }
            self.previous = Some(seq);
        }
        let id = String::from_utf8_lossy(id);
        if self.first.is_none() {
            self.first = Some(id.to_string());
        }
        if id == last {
            self.done = true;
        }
    }

    /// Whether the last id has arrived.
    fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the replay was exactly the one `plan` expects: in order, from the right
    /// first id, with the right number of events.
    fn verdict(&self, plan: &Plan) -> Result<(), String> {
        let Self {
            count,
            first,
            out_of_order,
            ..
        } = self;
        if *out_of_order > 0 {
            Err(format!("{out_of_order} replayed ids did not grow"))
        } else if first.as_deref() != Some(plan.expected_first.as_str()) {
            Err(format!(
                "replay started at {first:?}, not {}",
                plan.expected_first
            ))
        } else if *count != plan.back {
            Err(format!("replayed {count} events, not {}", plan.back))
        } else {
            Ok(())
        }
    }
}

/// What the runner and every client share during the storm.
struct Storm {
    /// The server.
    target: Target,
    /// The ids to resume from and expect.
    plan: Plan,
    /// The start line: every client waits on it, and is released at once.
    start: Notify,
    /// Clients at the start line.
    waiting: AtomicUsize,
    /// When the storm started (µs since the epoch).
    started_us: AtomicU64,
    /// Each finished replay's time since the storm started (µs), in finishing order.
    replayed_at: Mutex<Vec<u64>>,
    /// Clients that got the live event.
    live_seen: AtomicUsize,
    /// Cancelled when clients should stop waiting for the live event.
    live_over: CancellationToken,
}

impl Storm {
    /// A storm on `target` following `plan`, nobody at the start line yet.
    fn new(target: Target, plan: Plan) -> Self {
        Self {
            target,
            plan,
            start: Notify::new(),
            waiting: AtomicUsize::new(0),
            started_us: AtomicU64::new(0),
            replayed_at: Mutex::new(Vec::new()),
            live_seen: AtomicUsize::new(0),
            live_over: CancellationToken::new(),
        }
    }

    /// A client waits at the start line until the storm starts.
    async fn wait_for_start(&self) {
        // Registered before counting in, so that a release right after the count sees it.
        let notified = self.start.notified();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        notified.await;
    }

    /// Waits until `clients` are at the start line, then releases them all at once;
    /// returns when.
    async fn release(&self, clients: usize) -> Instant {
        while self.waiting.load(Ordering::SeqCst) < clients {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.started_us.store(now_us(), Ordering::SeqCst);
        let started = Instant::now();
        self.start.notify_waiters();
        started
    }

    /// A client has its whole replay now.
    fn replayed(&self) {
        let at = now_us().saturating_sub(self.started_us.load(Ordering::SeqCst));
        if let Ok(mut times) = self.replayed_at.lock() {
            times.push(at);
        }
    }

    /// Clients that have their whole replay.
    fn replays(&self) -> usize {
        self.replayed_at.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Every replay time so far (µs since the storm started), sorted.
    fn sorted_replay_times(&self) -> Vec<u64> {
        let mut times = self
            .replayed_at
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        times.sort_unstable();
        times
    }

    /// Waits until every client has its replay or has failed, or 60 s have passed since
    /// `started`.
    async fn await_replays(&self, tasks: &[JoinHandle<Result<(), String>>], started: Instant) {
        loop {
            let finished = tasks.iter().filter(|t| t.is_finished()).count();
            if self.replays() + finished >= tasks.len()
                || started.elapsed() > Duration::from_secs(60)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Publishes one live event and waits (up to 10 s) until every replayed client has
    /// it; returns how long that took (ms), or `None` if someone never got it.
    async fn time_live(&self, publisher: &mut Publisher, payload: usize) -> Option<f64> {
        let started = Instant::now();
        let _ = publisher
            .publish("live", &make_payload(now_us(), 0, payload))
            .await;
        let replayed = self.replays();
        let seen = || self.live_seen.load(Ordering::SeqCst);
        while seen() < replayed && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (seen() >= replayed && replayed > 0).then(|| started.elapsed().as_secs_f64() * 1000.0)
    }
}

/// One client: waits at the start line, then resumes, with 90 s for everything.
async fn client(storm: Arc<Storm>) -> Result<(), String> {
    storm.wait_for_start().await;
    tokio::time::timeout(Duration::from_secs(90), resume_then_live(&storm))
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

/// Reconnects with `Last-Event-ID`, reads and checks the replay, then waits for the live
/// event. A wrong replay is reported only once the live event has arrived, so that a
/// client with a wrong replay still counts towards the live figure.
async fn resume_then_live(storm: &Storm) -> Result<(), String> {
    let plan = &storm.plan;
    let mut sub = Subscriber::open(&storm.target, Some(&plan.from), 16 * 1024, None)
        .await
        .map_err(|e| e.to_string())?;
    let replay = read_replay(&mut sub, &plan.last).await?;
    storm.replayed();
    let verdict = replay.verdict(plan);
    await_live(&mut sub, &storm.live_over).await?;
    storm.live_seen.fetch_add(1, Ordering::SeqCst);
    verdict
}

/// Reads until the event with id `last` has arrived.
async fn read_replay(sub: &mut Subscriber, last: &str) -> Result<Replay, String> {
    let mut replay = Replay::default();
    while !replay.is_done() {
        let open = sub
            .read_frames(&mut |f| replay.observe(&f, last))
            .await
            .map_err(|e| e.to_string())?;
        if !open && !replay.is_done() {
            return Err(format!(
                "stream ended after {} replayed events",
                replay.count
            ));
        }
    }
    Ok(replay)
}

/// Reads until a `live` event arrives, or fails when `over` is cancelled first.
pub(super) async fn await_live(
    sub: &mut Subscriber,
    over: &CancellationToken,
) -> Result<(), String> {
    let mut got_live = false;
    while !got_live {
        let mut on_frame = |f: Frame<'_>| got_live |= f.event == b"live";
        let open = tokio::select! {
            () = over.cancelled() => return Err("no live event".into()),
            r = sub.read_frames(&mut on_frame) => r,
        }
        .map_err(|e| e.to_string())?;
        if !open && !got_live {
            return Err("stream ended before the live event".into());
        }
    }
    Ok(())
}

/// Publishes the bench events with indexes `range`; returns their ids in order.
pub(super) async fn publish(
    publisher: &mut Publisher,
    range: std::ops::Range<usize>,
    payload: usize,
) -> Result<Vec<String>, String> {
    let mut ids = Vec::with_capacity(range.len());
    for k in range {
        let id = publisher
            .publish("bench", &make_payload(now_us(), k as u64, payload))
            .await
            .map_err(|e| format!("publishing bench event {k}: {e}"))?;
        ids.push(id);
    }
    Ok(ids)
}

/// Waits for every client; returns how many were correct and the first failure.
pub(super) async fn tally(tasks: Vec<JoinHandle<Result<(), String>>>) -> (usize, Option<String>) {
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
    (ok, first_error)
}

impl Scenario for ResumeSizes {
    type Outcome = Resume;

    fn connections(&self) -> usize {
        self.resume_clients
    }

    async fn run(&self, bench: &Bench<'_>) -> Resume {
        let clients = self.resume_clients;
        let target = &bench.server.target;
        let mut publisher = Publisher::new(target.clone());
        let plan = publish(&mut publisher, 0..self.resume_prefill, bench.payload)
            .await
            .and_then(|ids| Plan::pick(&ids, self.resume_back));
        let plan = match plan {
            Ok(plan) => plan,
            Err(e) => return Resume::failure(clients, e),
        };
        let storm = Arc::new(Storm::new(target.clone(), plan));
        let tasks: Vec<_> = (0..clients)
            .map(|_| tokio::spawn(client(storm.clone())))
            .collect();
        let started = storm.release(clients).await;
        storm.await_replays(&tasks, started).await;
        let live_ms = storm.time_live(&mut publisher, bench.payload).await;
        storm.live_over.cancel();
        let (ok, first_error) = tally(tasks).await;
        let times = storm.sorted_replay_times();
        let ms = |us: u64| us as f64 / 1000.0;
        Resume {
            ok,
            failed: clients - ok,
            first_error,
            all_replayed_ms: (times.len() == clients)
                .then(|| times.last().copied().map(ms))
                .flatten(),
            p50_replayed_ms: percentile_sorted(&times, 0.5).map(ms),
            live_ms,
        }
    }

    fn progress(&self, r: &Resume) -> String {
        format!(
            "resume: {}/{} correct, all replayed in {:.0} ms (p50 {:.0} ms), live to all in {:.1} ms{}",
            r.ok,
            self.resume_clients,
            r.all_replayed_ms.unwrap_or(f64::NAN),
            r.p50_replayed_ms.unwrap_or(f64::NAN),
            r.live_ms.unwrap_or(f64::NAN),
            r.first_error
                .as_deref()
                .map(|e| format!("; e.g. {e}"))
                .unwrap_or_default()
        )
    }

    fn rows() -> Vec<Row<Resume>> {
        vec![
            Row::relative("resume: all replayed (ms)", f0, |r| r.all_replayed_ms),
            Row::absolute("resume: then live to all (ms)", f1, |r| r.live_ms),
            Row::absolute("resume: clients correct", f0, |r| Some(r.ok as f64)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids `1-1` to `1-n`, as a server numbers its first `n` events.
    fn ids(n: u64) -> Vec<String> {
        (1..=n).map(|seq| format!("1-{seq}")).collect()
    }

    /// Feeds `frames` (event name, id) to a fresh replay that ends at `last`.
    fn replay_of(frames: &[(&str, Option<&str>)], last: &str) -> Replay {
        let mut replay = Replay::default();
        for (event, id) in frames {
            let frame = Frame {
                id: id.map(str::as_bytes),
                event: event.as_bytes(),
                data: b"0 0",
                retry: None,
            };
            replay.observe(&frame, last);
        }
        replay
    }

    /// Bench events with the given ids.
    fn bench<'a>(ids: &[&'a str]) -> Vec<(&'static str, Option<&'a str>)> {
        ids.iter().map(|id| ("bench", Some(*id))).collect()
    }

    /// Resuming 3 back from 5 prefilled ids: from `1-2`, expecting `1-3` to `1-5`.
    fn plan() -> Plan {
        Plan::pick(&ids(5), 3).expect("3 back of 5 leaves one to resume from")
    }

    #[test]
    fn the_plan_resumes_from_the_id_before_the_replay() {
        assert_eq!(
            plan(),
            Plan {
                from: "1-2".into(),
                expected_first: "1-3".into(),
                last: "1-5".into(),
                back: 3,
            }
        );
    }

    #[test]
    fn the_plan_needs_an_id_to_resume_from_and_something_to_replay() {
        assert!(Plan::pick(&ids(5), 0).is_err());
        assert!(
            Plan::pick(&ids(5), 5).is_err(),
            "nothing before the first id"
        );
        assert!(Plan::pick(&ids(5), 4).is_ok());
        assert!(Plan::pick(&[], 1).is_err());
    }

    #[test]
    fn an_exact_replay_passes() {
        let replay = replay_of(&bench(&["1-3", "1-4", "1-5"]), "1-5");
        assert!(replay.is_done());
        assert_eq!(replay.verdict(&plan()), Ok(()));
    }

    #[test]
    fn the_replay_is_done_only_at_the_last_id() {
        let replay = replay_of(&bench(&["1-3", "1-4"]), "1-5");
        assert!(!replay.is_done());
        assert_eq!(replay.count, 2);
    }

    #[test]
    fn a_gap_is_a_short_replay() {
        let replay = replay_of(&bench(&["1-3", "1-5"]), "1-5");
        assert!(replay.is_done());
        assert_eq!(
            replay.verdict(&plan()),
            Err("replayed 2 events, not 3".into())
        );
    }

    #[test]
    fn an_event_past_the_last_id_makes_the_replay_too_long() {
        // It arrived in the same read as the last id, so the client still saw it.
        let replay = replay_of(&bench(&["1-3", "1-4", "1-5", "1-6"]), "1-5");
        assert!(replay.is_done());
        assert_eq!(
            replay.verdict(&plan()),
            Err("replayed 4 events, not 3".into())
        );
    }

    #[test]
    fn a_duplicate_id_did_not_grow() {
        let replay = replay_of(&bench(&["1-3", "1-4", "1-4", "1-5"]), "1-5");
        assert_eq!(
            replay.verdict(&plan()),
            Err("1 replayed ids did not grow".into())
        );
    }

    #[test]
    fn a_step_back_did_not_grow() {
        let replay = replay_of(&bench(&["1-4", "1-3", "1-5"]), "1-5");
        assert_eq!(
            replay.verdict(&plan()),
            Err("1 replayed ids did not grow".into())
        );
    }

    #[test]
    fn order_is_checked_before_the_start_and_the_count() {
        let replay = replay_of(&bench(&["1-2", "1-2", "1-5"]), "1-5");
        assert_eq!(
            replay.verdict(&plan()),
            Err("1 replayed ids did not grow".into())
        );
    }

    #[test]
    fn a_replay_from_the_wrong_id_fails_even_with_the_right_count() {
        let replay = replay_of(&bench(&["1-2", "1-3", "1-5"]), "1-5");
        assert_eq!(
            replay.verdict(&plan()),
            Err(r#"replay started at Some("1-2"), not 1-3"#.into())
        );
        let empty = Replay::default();
        assert_eq!(
            empty.verdict(&plan()),
            Err("replay started at None, not 1-3".into())
        );
    }

    #[test]
    fn other_events_and_events_without_an_id_do_not_count() {
        let mut frames = vec![("welcome", Some("1-1")), ("bench", None)];
        frames.extend(bench(&["1-3", "1-4"]));
        frames.push(("live", Some("1-9")));
        frames.extend(bench(&["1-5"]));
        let replay = replay_of(&frames, "1-5");
        assert_eq!(replay.verdict(&plan()), Ok(()));
    }

    #[test]
    fn ids_without_a_sequence_number_count_but_are_not_ordered() {
        let replay = replay_of(&bench(&["1-3", "odd", "1-5"]), "1-5");
        assert_eq!(replay.out_of_order, 0);
        assert_eq!(replay.verdict(&plan()), Ok(()));
    }
}
