//! The hub interface: the one seam between the idiom crates and where events live.
//!
//! A hub numbers published events, keeps a bounded history, and hands each new subscriber
//! its replay and a live receiver *atomically*, so that nothing falls between the two. The
//! idiom crates see only this trait (as `Arc<dyn Hub>`), which is what lets a second backend
//! replace [`crate::memory::MemoryHub`] without touching them.
//!
//! A shared backend (Redis Streams, so that instances behind one load balancer share events)
//! fits the same shape: `publish` is async because it would be a network round trip, while
//! `subscribe` stays synchronous because such a backend keeps a local mirror of recent
//! history, fed by one reader task, and serves subscribers from it exactly as the in-memory
//! hub does.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::event::{Draft, Event};
use crate::topic::Selectors;

/// The future [`Hub::publish`] returns; boxed so that the trait stays object safe.
pub type PublishFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Arc<Event>, HubError>> + Send + 'a>>;

/// Where events are numbered, kept and fanned out.
pub trait Hub: Send + Sync + 'static {
    /// Gives `draft` the next id, keeps it in history and delivers it to every live receiver.
    fn publish(&self, draft: Draft) -> PublishFuture<'_>;

    /// Replay after `last_event_id` plus a live receiver that starts exactly where the
    /// replay ends: no event is in both, and none is in neither. The receiver carries at
    /// least the events `topics` selects (see [`Subscription::live`]).
    fn subscribe(&self, last_event_id: Option<&str>, topics: &Selectors) -> Subscription;

    /// A snapshot for `welcome` frames and metrics.
    fn status(&self) -> HubStatus;

    /// What backs the hub, as `welcome` names it: `memory` or `redis`.
    fn kind(&self) -> &'static str;

    /// Resolves once the hub can answer a subscriber resuming after `last_event_id`
    /// exactly, or after a short bound if it cannot.
    ///
    /// A hub that serves from a local mirror of a shared log may be asked for an id that
    /// another instance published, which its mirror has not read yet; subscribing at once
    /// would call that id unknown (or foreign, for a log the mirror has not switched to).
    /// Waiting briefly for the mirror turns that into an exact resume. A hub that numbers
    /// its own events has nothing to wait for.
    fn ready_for(&self, last_event_id: Option<&str>) -> ReadyFuture<'_> {
        let _ = last_event_id;
        Box::pin(std::future::ready(()))
    }
}

/// The future [`Hub::ready_for`] returns.
pub type ReadyFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// What a new subscriber receives from the hub.
pub struct Subscription {
    /// The retained events after the client's last id, oldest first.
    pub replay: Replay,
    /// The events published after the replay was taken: those of the subscriber's topic
    /// when it asked for one topic or one `PREFIX/*`, else every event, which the
    /// subscriber filters itself. Its capacity is the contract's per-subscriber queue: a
    /// receiver that falls further behind gets `Lagged`.
    pub live: broadcast::Receiver<Arc<Event>>,
    /// The sequence number of the newest event published before `live` starts (0 when none
    /// was): `live` delivers exactly the events after it. A caller that fans out itself
    /// (the push loop) starts counting from here.
    pub position: u64,
}

/// The catch-up part of a subscription.
#[derive(Debug, Default)]
pub struct Replay {
    /// Set when the hub could not resume exactly after the client's id.
    pub reset: Option<Reset>,
    /// Retained events after the client's id (or all retained ones after a foreign id).
    pub events: Vec<Arc<Event>>,
}

/// Why a resume could not be exact, and what the hub still holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reset {
    /// What was wrong with the client's `Last-Event-ID`.
    pub reason: ResetReason,
    /// The oldest id the hub retains, so a client can judge what it lost.
    pub oldest_id: Option<String>,
    /// The newest id the hub has issued.
    pub last_id: Option<String>,
}

/// The four ways a `Last-Event-ID` can fail to name a retained position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetReason {
    /// This run issued it, but events after it were evicted from history.
    TooOld,
    /// It has this run's form but names a position that was never issued.
    Unknown,
    /// It was issued by another run of the server (the epoch differs).
    Foreign,
    /// It is not an id this server could have issued (or it is over 128 bytes).
    Malformed,
}

impl ResetReason {
    /// A sentence for people, sent beside the machine-readable reason.
    pub fn explain(self) -> &'static str {
        match self {
            ResetReason::TooOld => {
                "events after your last id were evicted from history; replaying what is retained"
            }
            ResetReason::Unknown => "your last id was never issued by this server; continuing live",
            ResetReason::Foreign => {
                "your last id is from an earlier run of the server; replaying this run's history"
            }
            ResetReason::Malformed => "your last id is not a valid event id; continuing live",
        }
    }
}

/// A hub's state at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubStatus {
    /// The newest id issued, if any.
    pub last_id: Option<String>,
    /// The oldest id still in history, if any.
    pub oldest_id: Option<String>,
    /// Events in history now.
    pub history_len: usize,
    /// The newest sequence number of the log (for the in-memory hub, events published since
    /// start).
    pub published: u64,
    /// Whether the backend answers (always for the in-memory hub).
    pub up: bool,
    /// How many events the backend's log is ahead of this instance's view of it (0 for the
    /// in-memory hub, which is its own log).
    pub behind: u64,
}

/// A failure to publish. The in-memory hub never fails; a networked backend can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubError(pub String);

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hub unavailable: {}", self.0)
    }
}

impl std::error::Error for HubError {}
