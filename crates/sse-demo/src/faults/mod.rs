//! The faults the compare page can trigger, each run by the demo against every variant, each
//! ending in one result row per variant.
//!
//! A fault is an `async fn(&Target, &Params) -> Row` in a file of its own. It works on one
//! variant through that variant's [`Target`]: the process (to restart it), its address (to
//! read `/metrics`, publish, and open streams of the demo's own), and the relay in front of it
//! (to cut the page's network, and to see what the page received). Every wait inside a fault
//! is bounded, and a fault that cannot tell says so in its row instead of guessing.

mod cut;
mod flood;
mod max_clients;
mod restart;
mod stall;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::children::Variant;
use crate::client::Metrics;
use crate::code::Moment;
use crate::relay::Relay;
use crate::watch::StreamSeen;

/// How often a fault looks at a variant's `/metrics` or at what the relay saw.
const POLL: Duration = Duration::from_millis(100);
/// How long the page may take to be streaming again once nothing stops it: its `retry:`
/// after a network error, or its own backoff after a refusal (capped at 30 s).
const PAGE_BACK: Duration = Duration::from_secs(40);

/// The topics the compare page's panes subscribe to. The faults publish what the page should
/// see on `demo/...`, and what it should not (a stalled reader's filler) elsewhere.
pub const PAGE_TOPICS: [&str; 3] = ["ticker", "default", "demo/*"];

/// `?topic=...` for [`PAGE_TOPICS`]: what the demo's reference streams ask for, so they get
/// exactly the page's events.
pub fn page_query() -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for topic in PAGE_TOPICS {
        query.append_pair("topic", topic);
    }
    query.finish()
}

/// One variant as a fault works on it.
pub struct Target {
    /// Its process.
    pub variant: Variant,
    /// The relay the page reaches it through.
    pub relay: Relay,
}

impl Target {
    /// Where the variant listens.
    fn addr(&self) -> SocketAddr {
        self.variant.addr
    }

    /// The name of this variant's idiom gauge on `/metrics`.
    pub fn idiom_gauge(&self) -> &'static str {
        match self.variant.name {
            "axum-stream-map" => axum_stream_map::stream::PIPELINES.name,
            "actix-push-loop" => actix_push_loop::broadcaster::LISTED.name,
            _ => warp_generator::generator::GENERATORS.name,
        }
    }

    /// The page's stream through the relay, if one is open (the newest answered with 200).
    fn page_stream(&self) -> Option<StreamSeen> {
        self.relay
            .seen(|seen| seen.streams.iter().rev().find(|s| s.status == 200).cloned())
    }
}

/// A fault the page can trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// A connection that never reads: who counts and closes it, and when.
    Stall,
    /// Many events, fast: delivery, lag cuts, memory.
    Flood,
    /// The page's network drops for a while: its reconnect, and that nothing was lost.
    Cut,
    /// The variant's process restarts: a reset or an exact resume, and the time to live.
    Restart,
    /// Streams up to `--max-clients`: the page's 503s and its own recovery.
    MaxClients,
}

impl Fault {
    /// Every fault, in the page's order.
    pub const ALL: [Fault; 5] = [
        Fault::Stall,
        Fault::Flood,
        Fault::Cut,
        Fault::Restart,
        Fault::MaxClients,
    ];

    /// Its name in `POST /faults/{fault}`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Stall => "stall",
            Fault::Flood => "flood",
            Fault::Cut => "cut",
            Fault::Restart => "restart",
            Fault::MaxClients => "max-clients",
        }
    }

    /// The fault named `name`, if there is one.
    pub fn parse(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|fault| fault.name() == name)
    }

    /// The part of each idiom file that its results concern.
    pub fn moment(self) -> Moment {
        match self {
            Fault::Stall => Moment::Disconnect,
            Fault::Flood => Moment::Lag,
            Fault::Cut | Fault::MaxClients => Moment::Join,
            Fault::Restart => Moment::Shutdown,
        }
    }

    /// Whether the variants take it one at a time. A flood measures throughput, and three
    /// floods at once on a small machine would measure the machine.
    pub fn one_at_a_time(self) -> bool {
        self == Fault::Flood
    }

    /// Runs the fault against one variant.
    pub async fn run(self, target: &Target, params: &Params) -> Row {
        match self {
            Fault::Stall => stall::run(target).await,
            Fault::Flood => flood::run(target, params).await,
            Fault::Cut => cut::run(target, params).await,
            Fault::Restart => restart::run(target).await,
            Fault::MaxClients => max_clients::run(target).await,
        }
    }
}

/// A fault's settings, each with a default and a range the control API enforces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Flood: how many events.
    pub events: usize,
    /// Flood: how many bytes of data each.
    pub bytes: usize,
    /// Cut: how long the network stays down, in seconds.
    pub seconds: f64,
}

impl Params {
    /// The defaults: a flood of 2,000 events of 4 KiB (more than the kernels buffer for a
    /// reader that stopped), a cut of 3 s.
    pub const DEFAULT: Params = Params {
        events: 2000,
        bytes: 4096,
        seconds: 3.0,
    };
    /// The most events a flood may publish.
    pub const MAX_EVENTS: usize = 20_000;
    /// The most bytes of data a flood's event may carry (publish takes up to 64 KiB).
    pub const MAX_BYTES: usize = 16 * 1024;
    /// The longest cut, in seconds.
    pub const MAX_SECONDS: f64 = 20.0;
}

/// One figure of a result row.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Stable name, for tests and scripts.
    pub key: &'static str,
    /// What the page shows before it.
    pub label: &'static str,
    /// A number, a string, or `null` for "not seen".
    pub value: Value,
    /// Shown after a number.
    pub unit: &'static str,
}

/// What one fault did to one variant.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The variant.
    pub variant: &'static str,
    /// Whether the variant behaved as the contract says.
    pub ok: bool,
    /// What was measured, in order.
    pub figures: Vec<Figure>,
    /// One sentence on what the figures mean for this idiom.
    pub note: String,
}

impl Row {
    /// An empty row for `target`, ok until a check says otherwise.
    fn new(target: &Target) -> Row {
        Row {
            variant: target.variant.name,
            ok: true,
            figures: Vec::new(),
            note: String::new(),
        }
    }

    /// A row that says why the fault could not run.
    pub fn failed(target: &Target, why: impl std::fmt::Display) -> Row {
        let mut row = Row::new(target);
        row.ok = false;
        row.note = why.to_string();
        row
    }

    /// Adds a figure.
    fn figure(
        &mut self,
        key: &'static str,
        label: &'static str,
        value: impl Into<Value>,
        unit: &'static str,
    ) -> &mut Row {
        self.figures.push(Figure {
            key,
            label,
            value: value.into(),
            unit,
        });
        self
    }

    /// Adds a duration in seconds (two decimals), or `null` when it was not seen.
    fn seconds(
        &mut self,
        key: &'static str,
        label: &'static str,
        took: Option<Duration>,
    ) -> &mut Row {
        let value = took.map_or(Value::Null, |d| Value::from(round2(d.as_secs_f64())));
        self.figure(key, label, value, "s")
    }
}

/// `x` to two decimals.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Resident memory in MiB, to one decimal, from a `/metrics` read.
fn mebibytes(metrics: &Metrics) -> Value {
    metrics
        .get("process_resident_memory_bytes")
        .map_or(Value::Null, |rss| {
            Value::from((rss / 104_857.6).round() / 10.0)
        })
}

/// Checks `probe` every [`POLL`] until it yields a value or `bound` passes.
async fn poll_until<T>(bound: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Reads `/metrics` from `addr` every [`POLL`] until `check` yields a value or `bound`
/// passes (a read that fails counts as one that does not satisfy `check`).
async fn poll_metrics<T>(
    addr: SocketAddr,
    bound: Duration,
    mut check: impl FnMut(&Metrics) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(value) = Metrics::read(addr).await.ok().and_then(|m| check(&m)) {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the page has a stream through `target`'s relay, answered 200 after `since`,
/// that delivered an event; returns it.
async fn page_back(target: &Target, since: Instant) -> Option<StreamSeen> {
    poll_until(PAGE_BACK, || {
        target.relay.seen(|seen| {
            seen.streams_since(since)
                .find(|s| s.status == 200 && s.first_event.is_some())
                .cloned()
        })
    })
    .await
}

/// The variant's `welcome` settings: the JSON its welcome carries.
async fn welcome(target: &Target) -> std::io::Result<Value> {
    let (status, stream) =
        crate::client::Subscriber::open(target.addr(), "topic=demo%2Fnone", None).await?;
    let mut stream =
        stream.ok_or_else(|| std::io::Error::other(format!("GET /stream answered {status}")))?;
    let deadline = tokio::time::Instant::now() + crate::client::REQUEST_TIMEOUT;
    while let Some(event) = stream.next(deadline).await? {
        if event.name == "welcome" {
            return serde_json::from_str(&event.data).map_err(std::io::Error::other);
        }
    }
    Err(std::io::Error::other("the stream ended before its welcome"))
}
