//! Scenario 9, redis resume: `--redis-resume-clients` clients of instance A all reconnect
//! at once to instance B, which never served them, with the `Last-Event-ID` they got from
//! A; for how long B takes to replay everyone's missed events out of the shared Redis log,
//! and whether each replay is exactly the events after the client's id, with no gap and no
//! duplicate.
//!
//! The scenario starts a `redis-server` of its own and two instances of the variant on one
//! prefix. Every client opens its stream on A; the scenario publishes the first events on
//! A while they listen, and each client leaves A after one of the last `--redis-resume-
//! spread` of those (client `i` after the `i % spread`-th from the end, so that the ids
//! they resume from differ), keeping that event's id as `EventSource` would. Once every
//! client has left, the scenario publishes the other `--redis-resume-back` events on A with
//! nobody listening, holds every client at a start line, and releases them at once onto B.
//! Each client checks its replay frame by frame against the ids A's publishes were
//! answered with ([`Splice`]), then waits for one live event published on A, which reaches
//! it on B through Redis. The server that the runner started idles meanwhile, as the
//! storm's does.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::fleet::OPENING;
use super::resume::{await_live, publish, tally};
use super::{Bench, Scenario};
use crate::client::{Publisher, Subscriber, Target};
use crate::now_us;
use crate::redis::{self, RedisServer};
use crate::report::{Row, f0, f1};
use crate::server::Server;
use crate::stats::percentile_sorted;
use crate::wire::{Frame, make_payload, parse_payload};

/// The Redis prefix both instances share.
const PREFIX: &str = "bench-resume";

/// Read buffer per client: replays are a few hundred small events.
const BUF: usize = 16 * 1024;

/// The sizes of scenario 9.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct RedisResumeSizes {
    /// Scenario 9: clients that move from instance A to instance B at once.
    #[arg(long, default_value_t = 1000)]
    pub redis_resume_clients: usize,
    /// Scenario 9: events in the shared log before the storm.
    #[arg(long, default_value_t = 500)]
    pub redis_resume_prefill: usize,
    /// Scenario 9: events published after every client left A: the fewest any replays.
    #[arg(long, default_value_t = 300)]
    pub redis_resume_back: usize,
    /// Scenario 9: how many consecutive events the clients leave A after, so that their ids
    /// differ (client i replays back + i % spread events).
    #[arg(long, default_value_t = 100)]
    pub redis_resume_spread: usize,
}

/// What scenario 9 measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RedisResume {
    /// Clients asked for.
    pub clients: usize,
    /// Clients that opened on A, read up to their event and left.
    pub left_a: usize,
    /// Clients whose replay on B was exactly the events after their id, then the live one.
    pub ok: usize,
    /// Clients that failed to open, got a wrong replay, or missed the live event.
    pub failed: usize,
    /// An example failure.
    pub first_error: Option<String>,
    /// From the release until the last client had its whole replay (ms).
    pub all_replayed_ms: Option<f64>,
    /// Median client's replay time (ms).
    pub p50_replayed_ms: Option<f64>,
    /// From publishing one live event on A until every replayed client had it on B (ms).
    pub live_ms: Option<f64>,
    /// Why the storm could not run.
    pub errors: Vec<String>,
}

impl RedisResume {
    /// An outcome with nothing measured, for `error`.
    fn not_run(clients: usize, error: String) -> Self {
        Self {
            clients,
            errors: vec![error],
            ..Self::default()
        }
    }
}

/// Which events each client sees on A and which it must be replayed on B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    /// Events in the log before the storm.
    prefill: usize,
    /// Events published after every client left A.
    back: usize,
    /// Consecutive events the clients leave A after.
    spread: usize,
}

impl Plan {
    /// The plan of these sizes, if every client has an event on A to leave after.
    fn new(prefill: usize, back: usize, spread: usize) -> Result<Self, String> {
        if back == 0 || spread == 0 || back + spread > prefill {
            return Err(format!(
                "need 1 <= --redis-resume-back, 1 <= --redis-resume-spread and back + spread \
                 <= --redis-resume-prefill (got {back} + {spread} of {prefill})"
            ));
        }
        Ok(Self {
            prefill,
            back,
            spread,
        })
    }

    /// Events published while the clients are on A.
    fn on_a(&self) -> usize {
        self.prefill - self.back
    }

    /// The index (in publish order, from 0) of the last event client `i` reads on A.
    fn leaves_after(&self, i: usize) -> usize {
        self.on_a() - 1 - i % self.spread
    }

    /// The ids client `i` must be replayed on B, out of every event's `ids`.
    fn owed<'a>(&self, i: usize, ids: &'a [String]) -> &'a [String] {
        ids.get(self.leaves_after(i) + 1..).unwrap_or_default()
    }
}

/// One client's replay, checked frame by frame against the ids it is owed, in order.
#[derive(Debug, Default)]
struct Splice {
    /// How many of the owed ids have arrived, in order (the next one due is at this index).
    next: usize,
    /// Frames that were not the next id due (a gap, a duplicate, a foreign id, a reset).
    wrong: usize,
    /// The first of them, described.
    first_wrong: Option<String>,
    /// Whether the last owed id has arrived.
    done: bool,
}

impl Splice {
    /// Takes one frame of the replay against `owed`. A bench event must carry the next id
    /// due; one further on is a gap (the replay resumes from it), one already seen a
    /// duplicate, and any other a stranger. A `reset` means B did not know the id at all.
    fn observe(&mut self, frame: &Frame<'_>, owed: &[String]) {
        if frame.event == b"reset" {
            let data = String::from_utf8_lossy(frame.data);
            return self.mark(format!("reset instead of a replay: {data}"));
        }
        if frame.event != b"bench" {
            return;
        }
        let Some(id) = frame.id else {
            return self.mark("a bench event without an id".into());
        };
        let id = String::from_utf8_lossy(id);
        if owed.last().is_some_and(|last| *last == id) {
            self.done = true;
        }
        let ahead = owed.get(self.next..).unwrap_or_default();
        match ahead.iter().position(|due| *due == id) {
            Some(0) => self.next += 1,
            Some(skipped) => {
                // `ahead` holds the id just found, so it has a first element.
                let due = &ahead[0];
                self.mark(format!("gap: {id} arrived where {due} was due"));
                self.next += skipped + 1;
            }
            // `next` only ever moves onto an owed id, so it is at most `owed.len()`.
            None if owed[..self.next].iter().any(|seen| *seen == id) => {
                self.mark(format!("duplicate: {id} again"));
            }
            None => self.mark(format!("{id} is not among the events owed")),
        }
    }

    /// Notes one frame that was not the next id due.
    fn mark(&mut self, what: String) {
        self.wrong += 1;
        self.first_wrong.get_or_insert(what);
    }

    /// Whether the replay was exactly `owed`: every id, in order, nothing else.
    fn verdict(&self, owed: &[String]) -> Result<(), String> {
        if let Some(first) = &self.first_wrong {
            Err(format!("{} frames out of place, first {first}", self.wrong))
        } else if self.next != owed.len() {
            Err(format!("replayed {} of {} events", self.next, owed.len()))
        } else {
            Ok(())
        }
    }
}

/// What the scenario and every client share.
struct Crowd {
    /// Instance A, which the clients first subscribe to and every event is published on.
    a: Target,
    /// Instance B, which the clients move to.
    b: Target,
    /// Which events each client sees and is owed.
    plan: Plan,
    /// Limits how many streams open on A at once.
    gate: Semaphore,
    /// Clients whose stream on A is open.
    opened: AtomicUsize,
    /// Clients that read up to their event on A and left.
    left: AtomicUsize,
    /// Cancelled when clients should stop waiting for their event on A.
    over_a: CancellationToken,
    /// Every event's id, as its publish on A was answered; set before the release.
    ids: OnceLock<Vec<String>>,
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

impl Crowd {
    /// The clients of A and B following `plan`, none open yet.
    fn new(a: Target, b: Target, plan: Plan) -> Self {
        Self {
            a,
            b,
            plan,
            gate: Semaphore::new(OPENING),
            opened: AtomicUsize::new(0),
            left: AtomicUsize::new(0),
            over_a: CancellationToken::new(),
            ids: OnceLock::new(),
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

    /// Waits until every client that has not failed is at the start line, then releases
    /// them all at once, noting when.
    async fn release(&self, tasks: &[JoinHandle<Result<(), String>>]) {
        let waiting = || self.waiting.load(Ordering::SeqCst);
        settle(tasks, waiting, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.started_us.store(now_us(), Ordering::SeqCst);
        self.start.notify_waiters();
    }

    /// A client has its whole replay now.
    fn replayed(&self) {
        let at = now_us().saturating_sub(self.started_us.load(Ordering::SeqCst));
        if let Ok(mut times) = self.replayed_at.lock() {
            times.push(at);
        }
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

    /// Publishes one live event on A and waits (up to 10 s) until every replayed client
    /// has it on B; returns how long that took (ms), or `None` if someone never got it.
    async fn time_live(&self, publisher: &mut Publisher, payload: usize) -> Option<f64> {
        let started = Instant::now();
        let _ = publisher
            .publish("live", &make_payload(now_us(), 0, payload))
            .await;
        let replayed = self.sorted_replay_times().len();
        let seen = || self.live_seen.load(Ordering::SeqCst);
        while seen() < replayed && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (seen() >= replayed && replayed > 0).then(|| started.elapsed().as_secs_f64() * 1000.0)
    }
}

/// Waits until `count()` plus the tasks that have finished is every task, or `limit`
/// passes.
async fn settle(
    tasks: &[JoinHandle<Result<(), String>>],
    count: impl Fn() -> usize,
    limit: Duration,
) {
    let started = Instant::now();
    while count() + tasks.iter().filter(|t| t.is_finished()).count() < tasks.len()
        && started.elapsed() < limit
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Client `i`: listens on A up to its event and leaves, waits at the start line, then
/// resumes on B and checks its replay, with 90 s for everything after the release.
async fn client(i: usize, crowd: Arc<Crowd>) -> Result<(), String> {
    let last_id = {
        let mut sub = open_on_a(&crowd).await?;
        crowd.opened.fetch_add(1, Ordering::Relaxed);
        leave_a(&mut sub, crowd.plan.leaves_after(i), &crowd.over_a).await?
    };
    crowd.left.fetch_add(1, Ordering::Relaxed);
    crowd.wait_for_start().await;
    tokio::time::timeout(Duration::from_secs(90), move_to_b(i, &crowd, &last_id))
        .await
        .unwrap_or_else(|_| Err("timed out on B".into()))
}

/// Opens a stream on A (through the gate) and reads up to its `welcome`.
async fn open_on_a(crowd: &Crowd) -> Result<Subscriber, String> {
    let _permit = crowd.gate.acquire().await;
    let opening = async {
        let mut sub = Subscriber::open(&crowd.a, None, BUF, None)
            .await
            .map_err(|e| format!("opening on A: {e}"))?;
        match sub.until(|f| f.event == b"welcome").await {
            Ok(true) => Ok(sub),
            Ok(false) => Err("stream on A ended before welcome".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    };
    tokio::time::timeout(Duration::from_secs(30), opening)
        .await
        .unwrap_or_else(|_| Err("no welcome on A within 30 s".to_owned()))
}

/// Reads the stream on A until the bench event with index `k` arrives; returns its id,
/// the client's last event id from then on (what follows it in the same read is dropped
/// unseen, as by a client that goes away).
async fn leave_a(
    sub: &mut Subscriber,
    k: usize,
    over: &CancellationToken,
) -> Result<String, String> {
    let mut last_id = None;
    while last_id.is_none() {
        let mut on_frame = |f: Frame<'_>| {
            let index = parse_payload(f.data).map(|(_, index)| index);
            if last_id.is_none() && f.event == b"bench" && index == Some(k as u64) {
                last_id = f.id.map(|id| String::from_utf8_lossy(id).into_owned());
            }
        };
        let open = tokio::select! {
            () = over.cancelled() => return Err(format!("event {k} never reached it on A")),
            read = sub.read_frames(&mut on_frame) => read.map_err(|e| e.to_string())?,
        };
        if !open && last_id.is_none() {
            return Err(format!("stream on A ended before event {k}"));
        }
    }
    last_id.ok_or_else(|| format!("event {k} came without an id"))
}

/// Resumes on B from `last_id`, checks the replay against what client `i` is owed, then
/// waits for the live event. A wrong replay is reported only once the live event has
/// arrived, so that such a client still counts towards the live figure.
async fn move_to_b(i: usize, crowd: &Crowd, last_id: &str) -> Result<(), String> {
    let ids = crowd
        .ids
        .get()
        .ok_or("released before the events were published")?;
    let from_a = ids.get(crowd.plan.leaves_after(i)).map(String::as_str);
    if from_a != Some(last_id) {
        return Err(format!(
            "A sent id {last_id} for an event whose publish was answered {from_a:?}"
        ));
    }
    let owed = crowd.plan.owed(i, ids);
    let mut sub = Subscriber::open(&crowd.b, Some(last_id), BUF, None)
        .await
        .map_err(|e| format!("opening on B: {e}"))?;
    let splice = read_replay(&mut sub, owed).await?;
    crowd.replayed();
    let verdict = splice.verdict(owed);
    await_live(&mut sub, &crowd.live_over)
        .await
        .map_err(|e| format!("{e} on B"))?;
    crowd.live_seen.fetch_add(1, Ordering::SeqCst);
    verdict
}

/// Reads until the last owed id has arrived.
async fn read_replay(sub: &mut Subscriber, owed: &[String]) -> Result<Splice, String> {
    let mut splice = Splice::default();
    while !splice.done {
        let open = sub
            .read_frames(&mut |f| splice.observe(&f, owed))
            .await
            .map_err(|e| e.to_string())?;
        if !open && !splice.done {
            return Err(format!(
                "stream on B ended after {} of {} events",
                splice.next,
                owed.len()
            ));
        }
    }
    Ok(splice)
}

impl RedisResumeSizes {
    /// The storm from instance `a` onto instance `b`.
    async fn storm(&self, a: &Server, b: &Server, payload: usize) -> RedisResume {
        let clients = self.redis_resume_clients;
        let plan = match Plan::new(
            self.redis_resume_prefill,
            self.redis_resume_back,
            self.redis_resume_spread,
        ) {
            Ok(plan) => plan,
            Err(e) => return RedisResume::not_run(clients, e),
        };
        let crowd = Arc::new(Crowd::new(a.target.clone(), b.target.clone(), plan));
        let tasks: Vec<_> = (0..clients)
            .map(|i| tokio::spawn(client(i, crowd.clone())))
            .collect();
        let opened = || crowd.opened.load(Ordering::Relaxed);
        settle(
            &tasks,
            opened,
            Duration::from_secs(60 + clients as u64 / 100),
        )
        .await;
        let mut publisher = Publisher::new(a.target.clone());
        if let Err(e) = self.fill(&crowd, &tasks, &mut publisher, payload).await {
            for task in &tasks {
                task.abort();
            }
            return RedisResume::not_run(clients, e);
        }
        crowd.release(&tasks).await;
        let replays = || crowd.sorted_replay_times().len();
        settle(&tasks, replays, Duration::from_secs(60)).await;
        let live_ms = crowd.time_live(&mut publisher, payload).await;
        crowd.live_over.cancel();
        let left_a = crowd.left.load(Ordering::Relaxed);
        let (ok, first_error) = tally(tasks).await;
        let times = crowd.sorted_replay_times();
        let ms = |us: u64| us as f64 / 1000.0;
        RedisResume {
            clients,
            left_a,
            ok,
            failed: clients - ok,
            first_error,
            all_replayed_ms: (times.len() == clients)
                .then(|| times.last().copied().map(ms))
                .flatten(),
            p50_replayed_ms: percentile_sorted(&times, 0.5).map(ms),
            live_ms,
            errors: Vec::new(),
        }
    }

    /// Publishes the events the clients see on A, waits (up to 10 s) until each has left
    /// after its own, then publishes the rest with nobody listening, and hands every id to
    /// the clients.
    async fn fill(
        &self,
        crowd: &Crowd,
        tasks: &[JoinHandle<Result<(), String>>],
        publisher: &mut Publisher,
        payload: usize,
    ) -> Result<(), String> {
        let plan = crowd.plan;
        let mut ids = publish(publisher, 0..plan.on_a(), payload).await?;
        let left = || crowd.left.load(Ordering::Relaxed);
        settle(tasks, left, Duration::from_secs(10)).await;
        // Whoever has not got its event by now fails, rather than hold the storm back.
        crowd.over_a.cancel();
        ids.extend(publish(publisher, plan.on_a()..plan.prefill, payload).await?);
        crowd
            .ids
            .set(ids)
            .map_err(|_| "the ids were handed out twice".to_owned())
    }
}

impl Scenario for RedisResumeSizes {
    type Outcome = RedisResume;

    fn connections(&self) -> usize {
        self.redis_resume_clients
    }

    async fn run(&self, bench: &Bench<'_>) -> RedisResume {
        let clients = self.redis_resume_clients;
        let launch = match redis::unfit(bench.launch) {
            Ok(launch) => launch,
            Err(e) => return RedisResume::not_run(clients, e),
        };
        let redis = match RedisServer::start().await {
            Ok(redis) => redis,
            Err(e) => return RedisResume::not_run(clients, e),
        };
        let token = bench.server.target.token.clone();
        let outcome = match redis.instances(launch, PREFIX, 2, token).await {
            Ok(instances) => {
                let outcome = match instances.as_slice() {
                    [a, b] => self.storm(a, b, bench.payload).await,
                    _ => RedisResume::not_run(clients, "not two instances".into()),
                };
                redis::stop_all(instances).await;
                outcome
            }
            Err(e) => RedisResume::not_run(clients, e),
        };
        redis.stop().await;
        outcome
    }

    fn progress(&self, r: &RedisResume) -> String {
        let mut line = String::from("redis resume:");
        if r.errors.is_empty() {
            let _ = write!(
                line,
                " {}/{} left A, {}/{} correct on B, all replayed in {:.0} ms (p50 {:.0} ms), \
                 live from A to all on B in {:.1} ms",
                r.left_a,
                r.clients,
                r.ok,
                r.clients,
                r.all_replayed_ms.unwrap_or(f64::NAN),
                r.p50_replayed_ms.unwrap_or(f64::NAN),
                r.live_ms.unwrap_or(f64::NAN),
            );
        }
        if let Some(e) = &r.first_error {
            let _ = write!(line, "; e.g. {e}");
        }
        for error in &r.errors {
            let _ = write!(line, " {error}");
        }
        line
    }

    fn rows() -> Vec<Row<RedisResume>> {
        vec![
            Row::absolute("redis resume: all replayed on B (ms)", f0, |r| {
                r.all_replayed_ms
            }),
            Row::absolute("redis resume: p50 replayed on B (ms)", f0, |r| {
                r.p50_replayed_ms
            }),
            Row::absolute("redis resume: then live from A to all on B (ms)", f1, |r| {
                r.live_ms
            }),
            Row::absolute("redis resume: clients correct", f0, |r| {
                r.errors.is_empty().then_some(r.ok as f64)
            }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids `1-1` to `1-n`, as a log numbers its first `n` events.
    fn ids(n: u64) -> Vec<String> {
        (1..=n).map(|seq| format!("1-{seq}")).collect()
    }

    /// A bench frame with `id`.
    fn bench(id: &str) -> Frame<'_> {
        Frame {
            id: Some(id.as_bytes()),
            event: b"bench",
            data: b"0 0",
            retry: None,
        }
    }

    /// Feeds bench events with `arrived` ids to a fresh splice owed `owed`.
    fn splice_of(arrived: &[&str], owed: &[String]) -> Splice {
        let mut splice = Splice::default();
        for id in arrived {
            splice.observe(&bench(id), owed);
        }
        splice
    }

    /// 10 events, 4 published after everyone left, clients leaving after one of the 3
    /// before those.
    fn plan() -> Plan {
        Plan::new(10, 4, 3).expect("4 + 3 of 10 leaves an event to leave after")
    }

    #[test]
    fn clients_leave_a_after_one_of_the_last_spread_events_it_had() {
        let plan = plan();
        assert_eq!(plan.on_a(), 6);
        let leaves: Vec<usize> = (0..7).map(|i| plan.leaves_after(i)).collect();
        assert_eq!(leaves, [5, 4, 3, 5, 4, 3, 5]);
        let all = ids(10);
        assert_eq!(plan.owed(0, &all), &all[6..], "at least `back` events");
        assert_eq!(plan.owed(2, &all), &all[4..], "back + spread - 1 at most");
    }

    #[test]
    fn a_plan_needs_events_to_leave_after_and_to_replay() {
        assert!(Plan::new(10, 0, 3).is_err());
        assert!(Plan::new(10, 4, 0).is_err());
        assert!(
            Plan::new(10, 8, 3).is_err(),
            "client 2 would leave after event -1"
        );
        assert!(Plan::new(10, 7, 3).is_ok());
    }

    #[test]
    fn an_exact_replay_passes() {
        let owed = &ids(6)[3..];
        let splice = splice_of(&["1-4", "1-5", "1-6"], owed);
        assert!(splice.done);
        assert_eq!(splice.verdict(owed), Ok(()));
    }

    #[test]
    fn a_gap_is_named_and_the_replay_goes_on_from_it() {
        let owed = &ids(6)[2..];
        let splice = splice_of(&["1-3", "1-5", "1-6"], owed);
        assert!(splice.done);
        assert_eq!(splice.wrong, 1, "only the jump is out of place");
        assert_eq!(
            splice.verdict(owed),
            Err("1 frames out of place, first gap: 1-5 arrived where 1-4 was due".into())
        );
    }

    #[test]
    fn a_duplicate_is_named() {
        let owed = &ids(6)[3..];
        let splice = splice_of(&["1-4", "1-5", "1-5", "1-6"], owed);
        assert_eq!(
            splice.verdict(owed),
            Err("1 frames out of place, first duplicate: 1-5 again".into())
        );
    }

    #[test]
    fn the_event_resumed_from_is_not_owed_again() {
        // B replaying from the client's own id, not after it.
        let owed = &ids(6)[3..];
        let splice = splice_of(&["1-3", "1-4", "1-5", "1-6"], owed);
        assert_eq!(
            splice.verdict(owed),
            Err("1 frames out of place, first 1-3 is not among the events owed".into())
        );
    }

    #[test]
    fn a_reset_or_a_short_replay_fails() {
        let owed = &ids(6)[3..];
        let mut splice = Splice::default();
        splice.observe(
            &Frame {
                id: None,
                event: b"reset",
                data: b"{\"reason\":\"foreign\"}",
                retry: None,
            },
            owed,
        );
        let verdict = splice.verdict(owed).expect_err("a reset");
        assert!(verdict.contains("reset instead of a replay"), "{verdict}");
        let short = splice_of(&["1-4", "1-5"], owed);
        assert!(!short.done);
        assert_eq!(short.verdict(owed), Err("replayed 2 of 3 events".into()));
    }

    #[test]
    fn other_events_do_not_count() {
        let owed = &ids(6)[3..];
        let mut splice = splice_of(&["1-4"], owed);
        let welcome = Frame {
            event: b"welcome",
            ..bench("1-9")
        };
        splice.observe(&welcome, owed);
        splice.observe(&bench("1-5"), owed);
        splice.observe(&bench("1-6"), owed);
        assert_eq!(splice.verdict(owed), Ok(()));
    }
}
