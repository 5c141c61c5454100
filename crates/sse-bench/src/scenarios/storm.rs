//! Scenario 6, storm: an instance restarts under `--storm-clients` open streams, for how the
//! clients' reconnects spread over time when everyone was told the same `retry:` and when
//! each was told a jittered one, and how long until every client is live again.
//!
//! Every client behaves as a browser's `EventSource` does ([`Source`]): it remembers the
//! `retry:` of its stream and the last event id it saw; when the stream ends it waits that
//! delay and reconnects with `Last-Event-ID`, and when a reconnect fails (refused while no
//! process listens, a 503 from the process that is shutting down, a stream cut before its
//! `welcome`) it waits the delay again, up to `--storm-attempts` attempts. Reconnects are
//! not paced: arriving all at once is the storm.
//!
//! The scenario restarts twice, each time on a process of its own started with the run's
//! flags plus `--retry-jitter 0`, then `--retry-jitter` = `--storm-jitter`: it opens every
//! client's stream, publishes one event so that each has an id to resume from, sends the
//! process SIGTERM, and as soon as it has exited starts a new one with the same flags on the
//! same port, as a service manager restarting it would. The new process answers the old id
//! with a `reset` (reason `foreign`), which the clients take like any other event. Every time
//! is measured from the SIGTERM; a client is back when its new stream's `welcome` arrives.
//! The server that the runner started for the scenario idles meanwhile: the storm needs
//! processes that it can stop and start with flags of its own.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::fleet::OPENING;
use super::{Bench, Scenario};
use crate::client::{Publisher, Subscriber, Target};
use crate::now_us;
use crate::report::{self, Row, Run, f0};
use crate::server::{Launch, Server};
use crate::stats::percentile_sorted;
use crate::wire::{Frame, make_payload};

/// Width of the histogram's buckets: fine enough to show a jittered storm's 2J spread of a
/// 3 s delay (1.2 s at J = 0.2) as a dozen bars.
const BUCKET_MS: u64 = 100;

/// The reconnection delay before a stream has sent any `retry:`: what Chromium's
/// `EventSource` waits by default.
const DEFAULT_RETRY_MS: u64 = 3000;

/// Read buffer per client: the streams carry `retry:`, `welcome`, one event and a `reset`.
const BUF: usize = 1024;

/// Longest bar of the text histogram, in characters.
const BAR: usize = 30;

/// The sizes of scenario 6.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct StormSizes {
    /// Scenario 6: clients of the restarted instance.
    #[arg(long, default_value_t = 5000)]
    pub storm_clients: usize,
    /// Scenario 6: the --retry-jitter of the second restart (the first has 0).
    #[arg(long, default_value_t = 0.2)]
    pub storm_jitter: f64,
    /// Scenario 6: reconnect attempts a client makes before it gives up.
    #[arg(long, default_value_t = 10)]
    pub storm_attempts: u32,
    /// Scenario 6: seconds after the SIGTERM within which clients must be back.
    #[arg(long, default_value_t = 60.0)]
    pub storm_secs: f64,
}

/// What scenario 6 measured: one restart per jitter setting.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Storm {
    /// The restart with `--retry-jitter 0`: every client was told the same delay.
    pub exact: Option<Restart>,
    /// The restart with `--retry-jitter` set to `--storm-jitter`.
    pub jittered: Option<Restart>,
    /// Why a restart could not be measured.
    pub errors: Vec<String>,
}

/// One restart under load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Restart {
    /// The `--retry-jitter` both processes ran with.
    pub retry_jitter: f64,
    /// Clients asked for.
    pub clients: usize,
    /// Clients whose stream was open when the restart began.
    pub connected: usize,
    /// The shortest and the longest `retry:` those streams were sent (ms).
    pub retry_sent_ms: Option<(u64, u64)>,
    /// From the SIGTERM until the old process had exited (ms; `None`: killed after 5 s).
    pub exit_ms: Option<f64>,
    /// From the SIGTERM until the new process listened (ms).
    pub down_ms: f64,
    /// How the clients came back.
    #[serde(flatten)]
    pub spread: Spread,
}

/// How the clients of one restart came back, every time counted from the SIGTERM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Clients whose new stream's `welcome` arrived.
    pub reconnected: usize,
    /// Clients that were open before the restart but not back within the bound.
    pub never_back: usize,
    /// Why a client never opened or never came back, as an example.
    pub first_error: Option<String>,
    /// Reconnect attempts that failed (refused, not 200, or cut before `welcome`), in all.
    pub failed_attempts: u64,
    /// Clients whose new stream ended again before the scenario stopped them.
    pub cut_again: usize,
    /// When the median first stream ended (ms): how promptly the old process let go.
    pub cut_p50_ms: Option<f64>,
    /// When the last first stream ended (ms).
    pub cut_last_ms: Option<f64>,
    /// Median reconnect time (ms).
    pub p50_ms: Option<f64>,
    /// 99th percentile reconnect time (ms).
    pub p99_ms: Option<f64>,
    /// The last reconnect time (ms), whether or not everyone came back.
    pub last_ms: Option<f64>,
    /// The last reconnect time (ms) if every client that was open came back: the time
    /// until all are live again.
    pub all_live_ms: Option<f64>,
    /// Width of the histogram's buckets (ms).
    pub bucket_ms: u64,
    /// Reconnects per bucket, the first starting at the SIGTERM, up to the last with any.
    pub histogram: Vec<u32>,
    /// The most reconnects in one bucket.
    pub peak: u32,
}

/// How one client's restart went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Comeback {
    /// Whether its first stream opened.
    opened: bool,
    /// The `retry:` its first stream sent, if it sent one.
    told_ms: Option<u64>,
    /// When the restart ended its first stream (µs after the SIGTERM).
    cut_us: Option<u64>,
    /// When its new stream's `welcome` arrived (µs after the SIGTERM).
    back_us: Option<u64>,
    /// Its reconnect attempts that failed.
    failed: u32,
    /// Whether its new stream ended again before the scenario stopped it.
    cut_again: bool,
    /// Why it never opened or never came back.
    error: Option<String>,
}

/// Reconnects per bucket of `bucket_ms`, the first bucket starting at 0, up to the last
/// bucket that holds a time; empty without times.
fn histogram(times_us: &[u64], bucket_ms: u64) -> Vec<u32> {
    let width = bucket_ms.max(1) * 1000;
    let index = |us: u64| usize::try_from(us / width).unwrap_or(usize::MAX);
    let Some(last) = times_us.iter().copied().max() else {
        return Vec::new();
    };
    let mut counts = vec![0u32; index(last) + 1];
    for &us in times_us {
        // Every time is at most `last`, so its bucket is in range.
        counts[index(us)] += 1;
    }
    counts
}

/// What every client's comeback adds up to, with reconnects counted in buckets of
/// `bucket_ms`.
fn summarise(comebacks: &[Comeback], bucket_ms: u64) -> Spread {
    let mut times: Vec<u64> = comebacks.iter().filter_map(|c| c.back_us).collect();
    times.sort_unstable();
    let histogram = histogram(&times, bucket_ms);
    let never_back = comebacks
        .iter()
        .filter(|c| c.opened && c.back_us.is_none())
        .count();
    let ms = |us: u64| us as f64 / 1000.0;
    let last_ms = times.last().copied().map(ms);
    let mut cuts: Vec<u64> = comebacks.iter().filter_map(|c| c.cut_us).collect();
    cuts.sort_unstable();
    Spread {
        reconnected: times.len(),
        never_back,
        first_error: comebacks.iter().find_map(|c| c.error.clone()),
        failed_attempts: comebacks.iter().map(|c| u64::from(c.failed)).sum(),
        cut_again: comebacks.iter().filter(|c| c.cut_again).count(),
        cut_p50_ms: percentile_sorted(&cuts, 0.5).map(ms),
        cut_last_ms: cuts.last().copied().map(ms),
        p50_ms: percentile_sorted(&times, 0.5).map(ms),
        p99_ms: percentile_sorted(&times, 0.99).map(ms),
        last_ms,
        all_live_ms: last_ms.filter(|_| never_back == 0),
        bucket_ms,
        peak: histogram.iter().copied().max().unwrap_or(0),
        histogram,
    }
}

/// The shortest and the longest `retry:` the first streams sent.
fn retry_sent(comebacks: &[Comeback]) -> Option<(u64, u64)> {
    let told = comebacks.iter().filter_map(|c| c.told_ms);
    Some((told.clone().min()?, told.max()?))
}

/// A client's reconnection state as a browser's `EventSource` keeps it: the `retry:` it was
/// last sent, its last event id, and its attempts since its stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Source {
    /// The last `retry:` received, on any of its streams.
    retry_ms: Option<u64>,
    /// The last event id received (`None` also after an empty `id:`, which clears it).
    last_id: Option<String>,
    /// Reconnect attempts made.
    attempts: u32,
    /// Reconnect attempts that failed.
    failures: u32,
    /// Attempts it makes before giving up.
    max_attempts: u32,
}

impl Source {
    /// A client that has seen nothing yet and may make `max_attempts` reconnect attempts.
    fn new(max_attempts: u32) -> Self {
        Self {
            retry_ms: None,
            last_id: None,
            attempts: 0,
            failures: 0,
            max_attempts,
        }
    }

    /// Takes a frame's `retry:` and `id:` as `EventSource` does (an id containing NUL is
    /// ignored, an empty one clears the last id); returns whether the frame is `welcome`.
    fn observe(&mut self, frame: &Frame<'_>) -> bool {
        if let Some(ms) = frame.retry {
            self.retry_ms = Some(ms);
        }
        if let Some(id) = frame.id
            && !id.contains(&0)
        {
            self.last_id = (!id.is_empty()).then(|| String::from_utf8_lossy(id).into_owned());
        }
        frame.event == b"welcome"
    }

    /// Counts one more attempt and returns how long to wait before it: the last `retry:`
    /// (or the browser's default before any), or `None` once every attempt has been made.
    fn next_attempt(&mut self) -> Option<Duration> {
        if self.attempts >= self.max_attempts {
            return None;
        }
        self.attempts += 1;
        Some(Duration::from_millis(
            self.retry_ms.unwrap_or(DEFAULT_RETRY_MS),
        ))
    }

    /// The attempt just made failed.
    fn failed(&mut self) {
        self.failures += 1;
    }
}

/// What the scenario and every client share during one restart.
struct Crowd {
    /// The server, on the same port before and after the restart.
    target: Target,
    /// Limits how many first streams open at once; reconnects are not limited (arriving
    /// all at once is the storm).
    gate: Semaphore,
    /// Reconnect attempts each client may make.
    attempts: u32,
    /// Clients whose first stream is open.
    opened: AtomicUsize,
    /// Clients with an event id to resume from.
    primed: AtomicUsize,
    /// Clients live again after the restart.
    back: AtomicUsize,
    /// When the SIGTERM was sent (µs since the epoch; 0 before).
    sigterm_us: AtomicU64,
    /// Ends every client.
    over: CancellationToken,
}

impl Crowd {
    /// The clients of `target`, each allowed `attempts` reconnect attempts.
    fn new(target: Target, attempts: u32) -> Self {
        Self {
            target,
            gate: Semaphore::new(OPENING),
            attempts,
            opened: AtomicUsize::new(0),
            primed: AtomicUsize::new(0),
            back: AtomicUsize::new(0),
            sigterm_us: AtomicU64::new(0),
            over: CancellationToken::new(),
        }
    }

    /// Microseconds from the SIGTERM to `now_us`.
    fn since_sigterm(&self, now_us: u64) -> u64 {
        now_us.saturating_sub(self.sigterm_us.load(Ordering::SeqCst))
    }

    /// Whether the SIGTERM has been sent.
    fn restarting(&self) -> bool {
        self.sigterm_us.load(Ordering::SeqCst) != 0
    }
}

/// One client: opens its stream, lives through the restart, and reports how it went.
async fn client(crowd: Arc<Crowd>) -> Comeback {
    let mut source = Source::new(crowd.attempts);
    let first = {
        // Only first streams wait at the gate.
        let _permit = crowd.gate.acquire().await;
        open_stream(&crowd.target, &mut source).await
    };
    let sub = match first {
        Ok(sub) => sub,
        Err(error) => {
            return Comeback {
                error: Some(error),
                ..Comeback::default()
            };
        }
    };
    crowd.opened.fetch_add(1, Ordering::Relaxed);
    let told_ms = source.retry_ms;
    Comeback {
        opened: true,
        told_ms,
        ..live_through(&crowd, sub, &mut source).await
    }
}

/// Reads the first stream until the restart cuts it, comes back, and stays until the
/// scenario ends; the comeback says when each happened, and why it did not.
async fn live_through(crowd: &Crowd, mut sub: Subscriber, source: &mut Source) -> Comeback {
    let cut_us = match read_until_cut(&mut sub, source, crowd).await {
        Ok(cut_us) => cut_us,
        Err(error) => {
            return Comeback {
                error: Some(error),
                ..Comeback::default()
            };
        }
    };
    drop(sub);
    let comeback = match come_back(crowd, source).await {
        Ok((sub, back_us)) => {
            crowd.back.fetch_add(1, Ordering::Relaxed);
            Comeback {
                back_us: Some(back_us),
                cut_again: stay(sub, &crowd.over).await,
                ..Comeback::default()
            }
        }
        Err(error) => Comeback {
            error: Some(error),
            ..Comeback::default()
        },
    };
    Comeback {
        cut_us: Some(cut_us),
        failed: source.failures,
        ..comeback
    }
}

/// Opens a stream as `source` would (with its last id) and reads up to `welcome`, taking
/// every frame's `retry:` and id on the way.
async fn open_stream(target: &Target, source: &mut Source) -> Result<Subscriber, String> {
    let opening = async {
        let mut sub = Subscriber::open(target, source.last_id.as_deref(), BUF, None)
            .await
            .map_err(|e| e.to_string())?;
        match sub.until(|f| source.observe(f)).await {
            Ok(true) => Ok(sub),
            Ok(false) => Err("stream ended before welcome".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    };
    tokio::time::timeout(Duration::from_secs(30), opening)
        .await
        .unwrap_or_else(|_| Err("no welcome within 30 s".to_owned()))
}

/// Reads the first stream until it ends, counting the client as primed once it has an id;
/// returns when it ended (µs after the SIGTERM), or `Err` when it ended before the
/// restart, or the scenario ended first.
async fn read_until_cut(
    sub: &mut Subscriber,
    source: &mut Source,
    crowd: &Crowd,
) -> Result<u64, String> {
    let mut primed = false;
    loop {
        let mut on_frame = |f: Frame<'_>| {
            source.observe(&f);
        };
        let read = tokio::select! {
            () = crowd.over.cancelled() => return Err("not cut by the restart".into()),
            read = sub.read_frames(&mut on_frame) => read,
        };
        if !primed && source.last_id.is_some() {
            primed = true;
            crowd.primed.fetch_add(1, Ordering::Relaxed);
        }
        // A read error (a connection reset) ends the stream as EOF does: the browser
        // reconnects after either.
        if !matches!(read, Ok(true)) {
            break;
        }
    }
    if crowd.restarting() {
        Ok(crowd.since_sigterm(now_us()))
    } else {
        Err("stream ended before the restart".into())
    }
}

/// Reconnects as `EventSource` does: waits the last `retry:`, tries, and on failure waits
/// again; returns the new stream and when its `welcome` arrived (µs after the SIGTERM).
async fn come_back(crowd: &Crowd, source: &mut Source) -> Result<(Subscriber, u64), String> {
    let mut last_error = String::from("no attempt made");
    while let Some(delay) = source.next_attempt() {
        let attempt = async {
            tokio::time::sleep(delay).await;
            open_stream(&crowd.target, source).await
        };
        let opened = tokio::select! {
            () = crowd.over.cancelled() => return Err(format!("not back in time (last: {last_error})")),
            opened = attempt => opened,
        };
        match opened {
            Ok(sub) => return Ok((sub, crowd.since_sigterm(now_us()))),
            Err(error) => {
                source.failed();
                last_error = error;
            }
        }
    }
    Err(format!(
        "gave up after {} attempts (last: {last_error})",
        source.attempts
    ))
}

/// Holds the new stream until `over`; returns whether the server ended it first.
async fn stay(mut sub: Subscriber, over: &CancellationToken) -> bool {
    let mut ignore = |_: Frame<'_>| {};
    loop {
        tokio::select! {
            () = over.cancelled() => return false,
            read = sub.read_frames(&mut ignore) => if !matches!(read, Ok(true)) {
                return true;
            },
        }
    }
}

/// Waits until `count()` plus the clients that have finished is every client, or `limit`
/// passes, printing `label`'s progress now and then.
async fn settle(
    tasks: &[JoinHandle<Comeback>],
    count: impl Fn() -> usize,
    limit: Duration,
    label: &str,
) {
    let started = Instant::now();
    let mut printed = Instant::now();
    loop {
        let finished = tasks.iter().filter(|t| t.is_finished()).count();
        if count() + finished >= tasks.len() || started.elapsed() > limit {
            return;
        }
        if printed.elapsed() > Duration::from_secs(3) {
            eprintln!("    storm: {}/{} {label}", count(), tasks.len());
            printed = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every client's comeback, once each has ended.
async fn collect(tasks: Vec<JoinHandle<Comeback>>) -> Vec<Comeback> {
    let mut comebacks = Vec::with_capacity(tasks.len());
    for task in tasks {
        comebacks.push(task.await.unwrap_or_else(|e| Comeback {
            error: Some(format!("client task failed: {e}")),
            ..Comeback::default()
        }));
    }
    comebacks
}

/// Sends `server` SIGTERM, noting when in `crowd` first, waits until it has exited, and
/// starts `again` on its port; returns how long the old process took to exit (`None`:
/// killed), how long until the new one listened, and the new one.
async fn bounce(
    server: Server,
    again: &Launch,
    token: Option<String>,
    crowd: &Crowd,
) -> (Option<Duration>, Duration, std::io::Result<Server>) {
    // Noted before the signal, so that no client sees its stream end before the mark.
    crowd.sigterm_us.store(now_us(), Ordering::SeqCst);
    let sigterm = Instant::now();
    let exit = server.stop().await;
    let new = Server::start(again, token).await;
    (exit, sigterm.elapsed(), new)
}

/// Milliseconds in `d`.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl StormSizes {
    /// One restart of `launch`'s server, started with `--retry-jitter jitter`, under every
    /// client.
    async fn restart(
        &self,
        launch: &Launch,
        token: Option<String>,
        jitter: f64,
        payload: usize,
    ) -> Result<Restart, String> {
        let launch = launch.with_flag("--retry-jitter", &jitter.to_string());
        let server = Server::start(&launch, token.clone())
            .await
            .map_err(|e| e.to_string())?;
        let crowd = Arc::new(Crowd::new(server.target.clone(), self.storm_attempts));
        let tasks = self.gather(&crowd).await;
        let connected = crowd.opened.load(Ordering::Relaxed);
        if let Err(e) = prime(&server.target, payload, &crowd, &tasks).await {
            crowd.over.cancel();
            collect(tasks).await;
            server.stop().await;
            return Err(e);
        }
        let again = launch.with_flag("--port", &server.port().to_string());
        let (exit, down, new) = bounce(server, &again, token, &crowd).await;
        if new.is_ok() {
            let back = || crowd.back.load(Ordering::Relaxed);
            let limit = Duration::from_secs_f64(self.storm_secs).saturating_sub(down);
            settle(&tasks, back, limit, "back").await;
        }
        crowd.over.cancel();
        let comebacks = collect(tasks).await;
        new.map_err(|e| format!("the restart failed: {e}"))?
            .stop()
            .await;
        Ok(Restart {
            retry_jitter: jitter,
            clients: self.storm_clients,
            connected,
            retry_sent_ms: retry_sent(&comebacks),
            exit_ms: exit.map(ms),
            down_ms: ms(down),
            spread: summarise(&comebacks, BUCKET_MS),
        })
    }

    /// Starts every client of `crowd` and waits until their first streams are open (or
    /// have failed to open).
    async fn gather(&self, crowd: &Arc<Crowd>) -> Vec<JoinHandle<Comeback>> {
        let tasks: Vec<_> = (0..self.storm_clients)
            .map(|_| tokio::spawn(client(crowd.clone())))
            .collect();
        let limit = Duration::from_secs(60 + self.storm_clients as u64 / 100);
        let opened = || crowd.opened.load(Ordering::Relaxed);
        settle(&tasks, opened, limit, "open").await;
        tasks
    }
}

/// Publishes one event and waits (up to 10 s) until every open client has it, so that
/// each has an id to resume from.
async fn prime(
    target: &Target,
    payload: usize,
    crowd: &Crowd,
    tasks: &[JoinHandle<Comeback>],
) -> Result<(), String> {
    Publisher::new(target.clone())
        .publish("bench", &make_payload(now_us(), 0, payload))
        .await
        .map_err(|e| format!("cannot publish the event to resume from: {e}"))?;
    let primed = || crowd.primed.load(Ordering::Relaxed);
    settle(tasks, primed, Duration::from_secs(10), "primed").await;
    Ok(())
}

/// One restart's progress line.
fn summary(r: &Restart) -> String {
    let s = &r.spread;
    format!(
        "{}/{} back, peak {} per {} ms, p50 {:.0} ms, all live {:.0} ms, {} failed attempts",
        s.reconnected,
        r.connected,
        s.peak,
        s.bucket_ms,
        s.p50_ms.unwrap_or(f64::NAN),
        s.all_live_ms.unwrap_or(f64::NAN),
        s.failed_attempts,
    )
}

/// Two rows of one figure of a restart, the exact restart's then the jittered one's:
/// `both!("label", r => figure)` reads the figure off the [`Restart`] `r` of each.
macro_rules! both {
    ($label:literal, $r:ident => $get:expr) => {
        [
            Row::absolute(
                concat!("storm: ", $label, " (jitter 0)"),
                f0,
                |s: &Storm| {
                    let $r = s.exact.as_ref()?;
                    $get
                },
            ),
            Row::absolute(
                concat!("storm: ", $label, " (jittered)"),
                f0,
                |s: &Storm| {
                    let $r = s.jittered.as_ref()?;
                    $get
                },
            ),
        ]
    };
}

impl Scenario for StormSizes {
    type Outcome = Storm;

    fn connections(&self) -> usize {
        self.storm_clients
    }

    async fn run(&self, bench: &Bench<'_>) -> Storm {
        let Some(launch) = bench.launch else {
            return Storm {
                errors: vec!["the storm restarts servers it starts: not with --url".into()],
                ..Storm::default()
            };
        };
        let token = bench.server.target.token.clone();
        let mut storm = Storm::default();
        for (jitter, slot) in [
            (0.0, &mut storm.exact),
            (self.storm_jitter, &mut storm.jittered),
        ] {
            match self
                .restart(launch, token.clone(), jitter, bench.payload)
                .await
            {
                Ok(restart) => *slot = Some(restart),
                Err(e) => storm.errors.push(format!("jitter {jitter}: {e}")),
            }
            // Let the kernel retire the closed sockets before the next process starts.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        storm
    }

    fn progress(&self, storm: &Storm) -> String {
        let mut line = String::from("storm:");
        for (name, restart) in [("jitter 0", &storm.exact), ("jittered", &storm.jittered)] {
            if let Some(r) = restart {
                let _ = write!(line, " {name}: {};", summary(r));
            }
        }
        for error in &storm.errors {
            let _ = write!(line, " error: {error};");
        }
        line.trim_end_matches(';').to_owned()
    }

    fn rows() -> Vec<Row<Storm>> {
        [
            both!("clients back", r => Some(r.spread.reconnected as f64)),
            both!("never back", r => Some(r.spread.never_back as f64)),
            both!("peak reconnects per 100 ms", r => Some(f64::from(r.spread.peak))),
            both!("reconnect p50 (ms after SIGTERM)", r => r.spread.p50_ms),
            both!("reconnect p99 (ms after SIGTERM)", r => r.spread.p99_ms),
            both!("all live again (ms after SIGTERM)", r => r.spread.all_live_ms),
            both!("last old stream ended (ms after SIGTERM)", r => r.spread.cut_last_ms),
            both!("failed reconnect attempts", r => Some(r.spread.failed_attempts as f64)),
            both!("new process listening (ms after SIGTERM)", r => Some(r.down_ms)),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// The markdown after the table: for every server that ran the storm, its reconnects per
/// bucket after the SIGTERM, both restarts side by side, and why a restart was not
/// measured; empty when none ran it.
pub fn histograms(run: &Run) -> String {
    let several = report::rounds(run) > 1;
    let mut out = String::new();
    for (i, server) in run.servers.iter().enumerate() {
        let Some(storm) = &server.outcomes.storm else {
            continue;
        };
        let _ = write!(out, "\n{}", server.name);
        if several {
            let round = run.servers[..=i]
                .iter()
                .filter(|s| s.name == server.name)
                .count();
            let _ = write!(out, " (round {round})");
        }
        if storm.exact.is_none() && storm.jittered.is_none() {
            let _ = writeln!(out, ": no restart measured.");
        } else {
            let _ = writeln!(out, ":\n\n```text\n{}```", chart(storm));
        }
        if !storm.errors.is_empty() {
            out.push('\n');
        }
        for error in &storm.errors {
            let _ = writeln!(out, "- {error}");
        }
    }
    if out.is_empty() {
        return out;
    }
    format!(
        "\nReconnect storm: reconnects per {BUCKET_MS} ms after the SIGTERM, both restarts side \
         by side (bars scaled to the server's peak; the `retry:` range is what the streams \
         were sent).\n{out}"
    )
}

/// One server's two restarts as a text histogram, side by side: a row per bucket from the
/// first with a reconnect to the last, runs of empty buckets folded into one line.
fn chart(storm: &Storm) -> String {
    let exact = storm.exact.as_ref();
    let jittered = storm.jittered.as_ref();
    let (left, right) = (counts(exact), counts(jittered));
    let bucket_ms = exact.or(jittered).map_or(BUCKET_MS, |r| r.spread.bucket_ms);
    let peak = left.iter().chain(right).copied().max().unwrap_or(0);
    let at = |side: &[u32], i: usize| side.get(i).copied().unwrap_or(0);
    let mut out = format!(
        "{:>7} | {:<w$} | {}\n",
        "after",
        column_title(exact, "jitter 0"),
        column_title(jittered, "jittered"),
        w = BAR + 6
    );
    let len = left.len().max(right.len());
    let first = (0..len).find(|&i| at(left, i) + at(right, i) > 0);
    let mut i = first.unwrap_or(len);
    while i < len {
        let empty = (i..len)
            .take_while(|&j| at(left, j) + at(right, j) == 0)
            .count();
        if empty >= 2 {
            let secs = (empty as u64 * bucket_ms) as f64 / 1000.0;
            let _ = writeln!(out, "{:>7} | no reconnects for {secs:.1} s", "...");
            i += empty;
            continue;
        }
        let line = format!(
            "{:>5.1} s | {} | {}",
            (i as u64 * bucket_ms) as f64 / 1000.0,
            cell(at(left, i), peak),
            cell(at(right, i), peak)
        );
        let _ = writeln!(out, "{}", line.trim_end());
        i += 1;
    }
    out
}

/// A restart's reconnects per bucket; none for a restart that did not run.
fn counts(restart: Option<&Restart>) -> &[u32] {
    restart.map_or(&[], |r| &r.spread.histogram)
}

/// A column's title: which restart, and the `retry:` range its streams were sent.
fn column_title(restart: Option<&Restart>, name: &str) -> String {
    match restart {
        None => format!("{name}: did not run"),
        Some(r) => match r.retry_sent_ms {
            Some((lo, hi)) => format!("J = {}, retry: {lo}-{hi} ms", r.retry_jitter),
            None => format!("J = {}, no retry: seen", r.retry_jitter),
        },
    }
}

/// One count and its bar, `peak` being as long as [`BAR`]; blank for none.
fn cell(count: u32, peak: u32) -> String {
    if count == 0 {
        return format!("{:w$}", "", w = BAR + 6);
    }
    // At least one mark, so that a single straggler still shows.
    let len = ((f64::from(count) * BAR as f64 / f64::from(peak.max(1))).round() as usize).max(1);
    format!("{count:>5} {:<BAR$}", "#".repeat(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame with these fields, of event `event`.
    fn frame<'a>(event: &'a str, id: Option<&'a str>, retry: Option<u64>) -> Frame<'a> {
        Frame {
            id: id.map(str::as_bytes),
            event: event.as_bytes(),
            data: b"",
            retry,
        }
    }

    /// A client cut 10 ms after the SIGTERM that came back `back_ms` after it, after
    /// `failed` failed attempts.
    fn back(back_ms: u64, failed: u32) -> Comeback {
        Comeback {
            opened: true,
            told_ms: Some(3000),
            cut_us: Some(10_000),
            back_us: Some(back_ms * 1000),
            failed,
            ..Comeback::default()
        }
    }

    #[test]
    fn buckets_start_at_zero_and_hold_their_lower_edge_only() {
        let us = |ms: u64| ms * 1000;
        let times = [us(0), us(99), us(100), us(100), us(299) + 999, us(300)];
        assert_eq!(histogram(&times, 100), [2, 2, 1, 1]);
        assert_eq!(histogram(&[us(250)], 100), [0, 0, 1]);
        assert_eq!(histogram(&[], 100), Vec::<u32>::new());
    }

    #[test]
    fn the_delay_is_the_last_retry_received_and_the_default_before_any() {
        let mut source = Source::new(5);
        assert_eq!(
            source.next_attempt(),
            Some(Duration::from_millis(DEFAULT_RETRY_MS))
        );
        assert!(!source.observe(&frame("", None, Some(2400))));
        assert_eq!(source.next_attempt(), Some(Duration::from_millis(2400)));
        // A stream that sends no retry: leaves the remembered one alone.
        assert!(source.observe(&frame("welcome", None, None)));
        assert_eq!(source.next_attempt(), Some(Duration::from_millis(2400)));
        source.observe(&frame("", None, Some(3550)));
        assert_eq!(source.next_attempt(), Some(Duration::from_millis(3550)));
    }

    #[test]
    fn a_client_gives_up_after_its_attempts() {
        let mut source = Source::new(3);
        for _ in 0..3 {
            assert!(source.next_attempt().is_some());
            source.failed();
        }
        assert_eq!(source.next_attempt(), None);
        assert_eq!((source.attempts, source.failures), (3, 3));
        assert_eq!(Source::new(0).next_attempt(), None);
    }

    #[test]
    fn the_last_id_follows_eventsource() {
        let mut source = Source::new(1);
        source.observe(&frame("bench", Some("e-1"), None));
        // welcome and reset carry no id: the last id stays.
        source.observe(&frame("reset", None, None));
        assert_eq!(source.last_id.as_deref(), Some("e-1"));
        source.observe(&frame("bench", Some("e\0-2"), None));
        assert_eq!(
            source.last_id.as_deref(),
            Some("e-1"),
            "an id with NUL is ignored"
        );
        source.observe(&frame("", Some(""), None));
        assert_eq!(source.last_id, None, "an empty id clears it");
    }

    #[test]
    fn the_summary_counts_who_came_back_and_when() {
        let comebacks = [
            back(2950, 0),
            back(3010, 0),
            back(3020, 1),
            back(4100, 2),
            Comeback {
                opened: true,
                told_ms: Some(2400),
                cut_us: Some(1_500_000),
                failed: 10,
                error: Some("gave up".into()),
                ..Comeback::default()
            },
            Comeback {
                error: Some("never opened".into()),
                ..Comeback::default()
            },
        ];
        let spread = summarise(&comebacks, 1000);
        assert_eq!(spread.reconnected, 4);
        assert_eq!(spread.never_back, 1, "one that never opened was never lost");
        assert_eq!(spread.first_error.as_deref(), Some("gave up"));
        assert_eq!(spread.failed_attempts, 13);
        assert_eq!(spread.histogram, [0, 0, 1, 2, 1]);
        assert_eq!(spread.peak, 2);
        assert_eq!(spread.p50_ms, Some(3010.0));
        assert_eq!(spread.p99_ms, Some(4100.0));
        assert_eq!(spread.last_ms, Some(4100.0));
        assert_eq!(spread.all_live_ms, None, "not everyone came back");
        assert_eq!(
            (spread.cut_p50_ms, spread.cut_last_ms),
            (Some(10.0), Some(1500.0))
        );
        assert_eq!(retry_sent(&comebacks), Some((2400, 3000)));
        let everyone = summarise(&comebacks[..4], 1000);
        assert_eq!(everyone.all_live_ms, Some(4100.0));
        assert_eq!(retry_sent(&comebacks[5..]), None);
    }

    /// A restart whose reconnects per bucket are `histogram`.
    fn restart(jitter: f64, histogram: &[u32]) -> Restart {
        let times: Vec<u64> = histogram
            .iter()
            .enumerate()
            .flat_map(|(i, &n)| std::iter::repeat_n(i as u64 * 100 + 50, n as usize))
            .collect();
        let comebacks: Vec<Comeback> = times.iter().map(|&ms| back(ms, 0)).collect();
        Restart {
            retry_jitter: jitter,
            clients: times.len(),
            connected: times.len(),
            retry_sent_ms: Some((3000, 3000)),
            exit_ms: Some(1.0),
            down_ms: 2.0,
            spread: summarise(&comebacks, 100),
        }
    }

    #[test]
    fn the_chart_sets_both_restarts_side_by_side_and_folds_empty_runs() {
        let storm = Storm {
            exact: Some(restart(0.0, &[0, 0, 0, 20, 0, 0, 0, 1])),
            jittered: Some(restart(0.2, &[0, 0, 5, 10, 5, 0])),
            errors: Vec::new(),
        };
        let pad = " ".repeat(BAR + 6);
        let expected = [
            format!(
                "  after | {:<36} | J = 0.2, retry: 3000-3000 ms",
                "J = 0, retry: 3000-3000 ms"
            ),
            // 20 is the peak of both: 30 marks; 5 gets 7.5, rounded up.
            format!("  0.2 s | {pad} |     5 ########"),
            format!(
                "  0.3 s |    20 {} |    10 {}",
                "#".repeat(30),
                "#".repeat(15)
            ),
            format!("  0.4 s | {pad} |     5 ########"),
            "    ... | no reconnects for 0.2 s".to_owned(),
            format!("  0.7 s |     1 ##{} |", " ".repeat(28)),
        ];
        let chart = chart(&storm);
        assert_eq!(chart.lines().collect::<Vec<_>>(), expected, "\n{chart}");
    }

    #[test]
    fn a_restart_that_did_not_run_is_named_and_a_single_empty_bucket_is_kept() {
        let storm = Storm {
            exact: None,
            jittered: Some(restart(0.2, &[1, 0, 1])),
            errors: vec!["jitter 0: failed".into()],
        };
        let chart = chart(&storm);
        let lines: Vec<&str> = chart.lines().collect();
        assert!(lines[0].contains("jitter 0: did not run"), "{chart}");
        assert_eq!(lines.len(), 4, "{chart}");
        assert!(lines[2].starts_with("  0.1 s |"), "{chart}");
    }

    #[test]
    fn only_runs_with_a_storm_get_a_histogram() {
        use crate::report::{Machine, ServerResult};
        let mut with = ServerResult::named("axum-stream-map");
        with.outcomes.storm = Some(Storm {
            exact: Some(restart(0.0, &[1])),
            ..Storm::default()
        });
        let mut failed = ServerResult::named("warp-generator");
        failed.outcomes.storm = Some(Storm {
            errors: vec!["jitter 0: boom".into()],
            ..Storm::default()
        });
        let mut run = Run {
            date: String::new(),
            command: String::new(),
            machine: Machine::probe((1, 1)),
            settings: serde_json::Value::Null,
            servers: vec![ServerResult::named("limit"), with, failed],
        };
        let text = histograms(&run);
        assert!(text.contains("\naxum-stream-map:\n\n```text\n"), "{text}");
        assert!(!text.contains("limit"), "{text}");
        assert!(
            text.ends_with("\nwarp-generator: no restart measured.\n\n- jitter 0: boom\n"),
            "{text}"
        );
        run.servers.truncate(1);
        assert_eq!(histograms(&run), "");
    }
}
