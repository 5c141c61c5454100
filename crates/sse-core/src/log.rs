//! The event log every hub serves subscribers from: a bounded history ring and live broadcast
//! channels, indexed by topic, under one lock, with ids of the form `<epoch>-<seq>`.
//!
//! The in-memory hub numbers its own events into a [`Log`]; the Redis hub keeps one as a
//! mirror of the shared log, fed by its reader. Either way the splice between replay and live
//! is exact for the same reason: appending pushes to the ring and sends on the channels while
//! holding the lock, and [`Log::subscribe`] copies the ring and creates its receiver under
//! the same lock, so every event is either in the copy or in the receiver, never both, never
//! neither.
//!
//! A subscriber that selects one topic, or one `PREFIX/*`, receives from a channel of that
//! selection alone ([`Feeds`]), so an event wakes only the subscribers that want it: with one
//! channel for all, 1,000 subscribers over 100 topics were each woken for every event, and the
//! filtered stream cost as much CPU as the unfiltered one (docs/BENCH.md, "Topic filtering").
//! Every other subscriber (`*`, or a union of several selectors) receives every event and
//! filters it itself.
//!
//! The epoch (12 lowercase hex digits) names one log: the in-memory hub draws one per run,
//! the Redis hub uses the shared log's. It is what tells an id from another log (foreign)
//! from a position in this one. When the log is replaced (a shared backend lost its data and
//! starts a new one), [`Log::restart`] empties the ring and closes the live channel, so every
//! open stream ends and its client resumes against the new log.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, watch};

use crate::event::{Event, EventId};
use crate::hub::{HubStatus, Replay, Reset, ResetReason, Subscription};
use crate::topic::{Selector, Selectors};

/// Longest `Last-Event-ID` the hub will look at; longer ones are malformed by contract.
pub const MAX_LAST_EVENT_ID_LEN: usize = 128;

/// Hex digits in an epoch.
pub const EPOCH_DIGITS: usize = 12;

/// Where a log stands: its epoch (none before its first event, for a mirror) and the
/// sequence number of its newest event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// The epoch, as ids carry it.
    pub epoch: Option<String>,
    /// The newest sequence number; 0 before the first event.
    pub top: u64,
}

/// Retained events and a live feed, under one lock; see the module docs.
pub struct Log {
    /// History, position and the live channel.
    ///
    /// A `std` mutex, not tokio's: it is held for a push or a copy of the ring and never
    /// across an `.await`, so it cannot block the runtime. Callers may hold a lock of their
    /// own while taking it (the push loop's client list does), never the other way round.
    state: Mutex<State>,
    /// The position after every change, for callers that wait for the log to catch up.
    position: watch::Sender<Position>,
}

/// What the log's lock guards.
struct State {
    /// The current epoch; `None` for a mirror that has seen no event yet.
    epoch: Option<String>,
    /// At most `capacity` events, oldest first, all of `epoch`.
    events: VecDeque<Arc<Event>>,
    /// The `--history` bound.
    capacity: usize,
    /// The newest sequence number appended (0 when none).
    top: u64,
    /// The live channels; replaced (and so closed for their receivers) by [`Log::restart`].
    live: Feeds,
}

/// The live channels, one per selection that a subscriber can be given exactly.
///
/// Each channel has the log's queue capacity, so a subscriber lags when it falls that many
/// of *its* events behind, as the push loop's clients do. A channel costs its buffer (about
/// 40 bytes a slot, 10 KiB at the default 256) whoever shares it, and goes when nobody
/// receives from it: at the next event it would carry, or at a later subscribe's prune.
struct Feeds {
    /// Every event: for `*`, and for unions of several selectors, which filter themselves.
    all: broadcast::Sender<Arc<Event>>,
    /// Events of one topic, keyed by the topic.
    exact: HashMap<Arc<str>, broadcast::Sender<Arc<Event>>>,
    /// Events under one `PREFIX/*`, keyed by the prefix.
    under: HashMap<Arc<str>, broadcast::Sender<Arc<Event>>>,
    /// The channels' capacity.
    queue: usize,
    /// Channel count at which the next new channel first drops those nobody receives from,
    /// so that subscribers to topics nobody publishes on cannot grow the index for ever.
    prune_at: usize,
}

/// The fewest channels [`Feeds`] keeps before pruning.
const MIN_PRUNE_AT: usize = 64;

impl Log {
    /// An empty log of `epoch` that retains `history` events and lets a subscriber fall
    /// `queue` events behind.
    pub fn new(epoch: Option<String>, history: usize, queue: usize) -> Self {
        assert!(
            history > 0 && queue > 0,
            "history and queue are validated by Config"
        );
        let (position, _) = watch::channel(Position {
            epoch: epoch.clone(),
            top: 0,
        });
        Log {
            state: Mutex::new(State {
                epoch,
                events: VecDeque::with_capacity(history),
                capacity: history,
                top: 0,
                live: Feeds::new(queue),
            }),
            position,
        }
    }

    /// Appends the event that `make` builds for the next sequence number (and the epoch),
    /// and delivers it to every live receiver: how a hub that numbers its own events
    /// publishes.
    pub fn append_next(&self, make: impl FnOnce(u64, &str) -> Event) -> Arc<Event> {
        let mut state = self.lock();
        let seq = state.top + 1;
        let epoch = state.epoch.clone().unwrap_or_default();
        let event = Arc::new(make(seq, &epoch));
        self.push(&mut state, Arc::clone(&event));
        event
    }

    /// Appends an event numbered elsewhere (a mirror's reader). It must be the next one of
    /// this epoch; the caller checks that with [`Log::position`] and restarts on a gap.
    pub fn append(&self, event: Arc<Event>) {
        let mut state = self.lock();
        debug_assert_eq!(event.seq(), state.top + 1, "a log's events are consecutive");
        self.push(&mut state, event);
    }

    /// Pushes under the lock: ring, counter, live channel, then the position watchers.
    fn push(&self, state: &mut State, event: Arc<Event>) {
        if state.events.len() == state.capacity {
            state.events.pop_front();
        }
        state.top = event.seq();
        state.events.push_back(Arc::clone(&event));
        state.live.send(&event);
        self.position.send_replace(Position {
            epoch: state.epoch.clone(),
            top: state.top,
        });
    }

    /// Starts over as log `epoch` at `top`: history is emptied and the live channel is
    /// replaced, so every current receiver sees it closed and its stream ends.
    pub fn restart(&self, epoch: Option<String>, top: u64) {
        let mut state = self.lock();
        state.epoch = epoch;
        state.events.clear();
        state.top = top;
        state.live = Feeds::new(state.live.queue);
        self.position.send_replace(Position {
            epoch: state.epoch.clone(),
            top,
        });
    }

    /// Gives a log that has no epoch yet (a mirror before its first event) `epoch`, starting
    /// after `top`. Unlike [`Log::restart`], open receivers stay: they have seen nothing
    /// that the new epoch could contradict.
    pub fn adopt(&self, epoch: String, top: u64) {
        let mut state = self.lock();
        debug_assert!(state.epoch.is_none() && state.events.is_empty());
        state.epoch = Some(epoch);
        state.top = top;
        self.position.send_replace(Position {
            epoch: state.epoch.clone(),
            top,
        });
    }

    /// Where the log stands now.
    pub fn position(&self) -> Position {
        self.position.borrow().clone()
    }

    /// A receiver of every position the log reaches from now on.
    pub fn watch(&self) -> watch::Receiver<Position> {
        self.position.subscribe()
    }

    /// Replay after `last_event_id` plus a live receiver of the events `topics` selects (or
    /// of every event, see [`Feeds`]) that starts exactly where the replay ends (see the
    /// module docs).
    pub fn subscribe(&self, last_event_id: Option<&str>, topics: &Selectors) -> Subscription {
        let mut state = self.lock();
        Subscription {
            replay: replay(&state, last_event_id),
            live: state.live.receiver(topics),
            position: state.top,
        }
    }

    /// A snapshot for `welcome` frames and metrics (the backend fields left at defaults).
    pub fn status(&self) -> HubStatus {
        let state = self.lock();
        HubStatus {
            last_id: id_text(state.events.back()),
            oldest_id: id_text(state.events.front()),
            history_len: state.events.len(),
            published: state.top,
            ..HubStatus::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change under the lock is a single push, pop or assignment, so a panic
        // elsewhere cannot leave the log half-updated; a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Feeds {
    /// Only the channel for every event, with nobody on it yet.
    fn new(queue: usize) -> Self {
        Feeds {
            all: broadcast::channel(queue).0,
            exact: HashMap::new(),
            under: HashMap::new(),
            queue,
            prune_at: MIN_PRUNE_AT,
        }
    }

    /// Sends `event` on every channel that selects it: the one for all, its topic's, and one
    /// per prefix of its topic that ends before a `/` with more after it. A channel found
    /// with no receivers is dropped.
    fn send(&mut self, event: &Arc<Event>) {
        // An error only means nobody is subscribed right now, which is not a failure.
        let _ = self.all.send(Arc::clone(event));
        let topic = event.topic.as_str();
        send_or_drop(&mut self.exact, topic, event);
        if self.under.is_empty() {
            return;
        }
        for (slash, _) in topic.match_indices('/') {
            if slash + 1 < topic.len() {
                send_or_drop(&mut self.under, &topic[..slash], event);
            }
        }
    }

    /// A receiver for `topics`: its own selection's channel when it is one topic or one
    /// prefix, else the channel for all.
    fn receiver(&mut self, topics: &Selectors) -> broadcast::Receiver<Arc<Event>> {
        self.prune();
        let queue = self.queue;
        let mut selectors = topics.iter();
        let (channels, key) = match (selectors.next(), selectors.next()) {
            (Some(Selector::Exactly(topic)), None) => (&mut self.exact, topic.as_str()),
            (Some(Selector::Under(prefix)), None) => (&mut self.under, &**prefix),
            _ => return self.all.subscribe(),
        };
        if let Some(live) = channels.get(key) {
            return live.subscribe();
        }
        let (live, receiver) = broadcast::channel(queue);
        channels.insert(key.into(), live);
        receiver
    }

    /// Drops the channels nobody receives from, once there are `prune_at` of them, and sets
    /// the next bound to twice what is left, so that pruning costs O(1) per subscribe.
    fn prune(&mut self) {
        if self.len() < self.prune_at {
            return;
        }
        self.exact.retain(|_, live| live.receiver_count() > 0);
        self.under.retain(|_, live| live.receiver_count() > 0);
        self.prune_at = (2 * self.len()).max(MIN_PRUNE_AT);
    }

    /// How many topic and prefix channels exist.
    fn len(&self) -> usize {
        self.exact.len() + self.under.len()
    }
}

/// Sends `event` on `channels[key]`, if there is one, and drops it if nobody receives.
fn send_or_drop(
    channels: &mut HashMap<Arc<str>, broadcast::Sender<Arc<Event>>>,
    key: &str,
    event: &Arc<Event>,
) {
    let Some(live) = channels.get(key) else {
        return;
    };
    if live.send(Arc::clone(event)).is_err() {
        channels.remove(key);
    }
}

/// The wire form of an event's id, if there is an event.
fn id_text(event: Option<&Arc<Event>>) -> Option<String> {
    event.and_then(|e| e.id_str()).map(str::to_owned)
}

/// The wire form of id `seq` in `epoch`.
pub fn id_of(epoch: &str, seq: u64) -> EventId {
    EventId::new(seq, format!("{epoch}-{seq}"))
}

/// Works out the replay for `last_event_id` from the log as it is now.
fn replay(state: &State, last_event_id: Option<&str>) -> Replay {
    let Some(raw) = last_event_id.filter(|id| !id.is_empty()) else {
        return Replay::default();
    };
    let oldest = state.events.front().map_or(state.top + 1, |e| e.seq());
    let (reason, after) = match parse(raw) {
        Err(reason) => (Some(reason), None),
        Ok((epoch, _)) if Some(epoch) != state.epoch.as_deref() => {
            // Another log's id: everything this log holds is news to the client.
            (Some(ResetReason::Foreign), Some(0))
        }
        Ok((_, seq)) if seq > state.top => (Some(ResetReason::Unknown), None),
        Ok((_, seq)) if seq + 1 < oldest => (Some(ResetReason::TooOld), Some(seq)),
        Ok((_, seq)) => (None, Some(seq)),
    };
    let events = match after {
        Some(after) => {
            let start = state.events.partition_point(|e| e.seq() <= after);
            state.events.range(start..).cloned().collect()
        }
        None => Vec::new(),
    };
    let reset = reason.map(|reason| Reset {
        reason,
        oldest_id: id_text(state.events.front()),
        last_id: id_text(state.events.back()),
    });
    Replay { reset, events }
}

/// `(epoch, seq)` for an id of the form `<12 hex digits>-<digits>`, or why it is malformed.
pub fn parse(raw: &str) -> Result<(&str, u64), ResetReason> {
    if raw.len() > MAX_LAST_EVENT_ID_LEN {
        return Err(ResetReason::Malformed);
    }
    let (epoch, seq) = raw.split_once('-').ok_or(ResetReason::Malformed)?;
    let is_epoch = epoch.len() == EPOCH_DIGITS
        && epoch
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let seq = seq
        .parse::<u64>()
        .ok()
        .filter(|_| seq.bytes().all(|b| b.is_ascii_digit()));
    match (is_epoch, seq) {
        (true, Some(seq)) => Ok((epoch, seq)),
        _ => Err(ResetReason::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Draft, EventName};
    use crate::topic::Topic;
    use tokio::sync::broadcast::error::TryRecvError;

    const EPOCH: &str = "0123456789ab";

    fn log(history: usize, queue: usize) -> Log {
        Log::new(Some(EPOCH.to_owned()), history, queue)
    }

    fn publish(log: &Log, data: &str) -> Arc<Event> {
        log.append_next(|seq, epoch| Draft::new(None, data).into_event(id_of(epoch, seq)))
    }

    fn ids(events: &[Arc<Event>]) -> Vec<u64> {
        events.iter().map(|e| e.seq()).collect()
    }

    fn replay_after(log: &Log, id: Option<&str>) -> Replay {
        log.subscribe(id, &Selectors::everything()).replay
    }

    #[test]
    fn ids_grow_and_never_repeat() {
        let log = log(10, 4);
        let a = publish(&log, "a");
        let b = publish(&log, "b");
        assert_eq!(a.id_str(), Some("0123456789ab-1"));
        assert_eq!(b.id_str(), Some("0123456789ab-2"));
        assert!(a.id < b.id);
    }

    #[test]
    fn replay_is_everything_after_the_id_in_order() {
        let log = log(10, 4);
        for n in 0..5 {
            publish(&log, &n.to_string());
        }
        let replay = replay_after(&log, Some("0123456789ab-2"));
        assert_eq!(replay.reset, None);
        assert_eq!(ids(&replay.events), [3, 4, 5]);
        assert!(replay_after(&log, Some("0123456789ab-5")).events.is_empty());
        assert!(
            replay_after(&log, None).events.is_empty(),
            "a fresh client starts live"
        );
        assert!(
            replay_after(&log, Some("")).events.is_empty(),
            "an empty id means fresh"
        );
    }

    #[test]
    fn ring_evicts_the_oldest_and_too_old_ids_reset() {
        let log = log(3, 4);
        for n in 0..6 {
            publish(&log, &n.to_string());
        }
        assert_eq!(log.status().history_len, 3);
        assert_eq!(log.status().oldest_id.as_deref(), Some("0123456789ab-4"));
        // Id 3 is evicted but everything after it is retained: exact, no reset.
        let exact = replay_after(&log, Some("0123456789ab-3"));
        assert_eq!((exact.reset, ids(&exact.events)), (None, vec![4, 5, 6]));
        // After id 2, event 3 is gone: reset, then what is retained.
        let old = replay_after(&log, Some("0123456789ab-2"));
        let reset = old.reset.expect("a reset for a too-old id");
        assert_eq!(reset.reason, ResetReason::TooOld);
        assert_eq!(reset.oldest_id.as_deref(), Some("0123456789ab-4"));
        assert_eq!(ids(&old.events), [4, 5, 6]);
    }

    #[test]
    fn every_kind_of_bad_id_resets() {
        let log = log(3, 4);
        publish(&log, "x");
        let reason = |id: &str| replay_after(&log, Some(id)).reset.map(|r| r.reason);
        assert_eq!(reason("0123456789ab-9"), Some(ResetReason::Unknown));
        assert_eq!(reason("ba9876543210-1"), Some(ResetReason::Foreign));
        for junk in [
            "garbage",
            "0123456789ab",
            "0123456789ab-x",
            "0123456789ab-+1",
            "XYZ-1",
        ] {
            assert_eq!(reason(junk), Some(ResetReason::Malformed), "{junk}");
        }
        let long = format!("{EPOCH}-{}", "1".repeat(MAX_LAST_EVENT_ID_LEN));
        assert_eq!(reason(&long), Some(ResetReason::Malformed));
    }

    #[test]
    fn a_foreign_id_replays_all_of_this_log() {
        let log = log(5, 4);
        publish(&log, "a");
        publish(&log, "b");
        let replay = replay_after(&log, Some("ba9876543210-7"));
        assert_eq!(replay.reset.map(|r| r.reason), Some(ResetReason::Foreign));
        assert_eq!(ids(&replay.events), [1, 2]);
    }

    #[test]
    fn a_mirror_before_its_first_event_calls_every_id_foreign() {
        let mirror = Log::new(None, 5, 4);
        let replay = replay_after(&mirror, Some("0123456789ab-3"));
        assert_eq!(replay.reset.map(|r| r.reason), Some(ResetReason::Foreign));
        assert!(replay.events.is_empty());
    }

    #[test]
    fn a_receiver_that_falls_behind_its_queue_lags() {
        let log = log(100, 2);
        let mut sub = log.subscribe(None, &Selectors::everything());
        for n in 0..3 {
            publish(&log, &n.to_string());
        }
        assert!(matches!(sub.live.try_recv(), Err(TryRecvError::Lagged(1))));
    }

    #[test]
    fn a_restart_ends_every_live_receiver_and_empties_history() {
        let log = log(10, 4);
        publish(&log, "old");
        let mut sub = log.subscribe(None, &Selectors::everything());
        log.restart(Some("ffffffffffff".into()), 0);
        assert!(matches!(sub.live.try_recv(), Err(TryRecvError::Closed)));
        assert_eq!(log.status().history_len, 0);
        let first = publish(&log, "new");
        assert_eq!(first.id_str(), Some("ffffffffffff-1"));
        let old = replay_after(&log, Some("0123456789ab-1"));
        assert_eq!(old.reset.map(|r| r.reason), Some(ResetReason::Foreign));
        assert_eq!(ids(&old.events), [1], "the new log's history");
    }

    #[test]
    fn appended_events_move_the_watched_position() {
        let log = log(10, 4);
        let watch = log.watch();
        publish(&log, "a");
        assert_eq!(watch.borrow().top, 1);
        let next = Draft::new(None, "b").into_event(id_of(EPOCH, 2));
        log.append(Arc::new(next));
        assert_eq!(
            log.position(),
            Position {
                epoch: Some(EPOCH.into()),
                top: 2
            }
        );
    }

    fn on(log: &Log, topic: &str) -> Arc<Event> {
        let topic = Topic::parse(topic).expect("a valid topic");
        log.append_next(|seq, epoch| {
            Draft::new(None, "x")
                .on(topic)
                .into_event(id_of(epoch, seq))
        })
    }

    fn selecting(texts: &[&str]) -> Selectors {
        Selectors::new(
            texts
                .iter()
                .map(|text| Selector::parse(text).expect("a valid selector"))
                .collect(),
        )
    }

    fn received(sub: &mut Subscription) -> Vec<u64> {
        std::iter::from_fn(|| sub.live.try_recv().ok())
            .map(|event| event.seq())
            .collect()
    }

    #[test]
    fn one_topic_or_one_prefix_receives_only_its_events() {
        let log = log(10, 16);
        let mut news = log.subscribe(None, &selecting(&["news"]));
        let mut sport = log.subscribe(None, &selecting(&["sport/*"]));
        let mut every = log.subscribe(None, &Selectors::everything());
        for topic in [
            "news",
            "sport",
            "sport/",
            "sport/f1",
            "sport/f1/monza",
            "newsroom",
        ] {
            on(&log, topic);
        }
        assert_eq!(received(&mut news), [1]);
        assert_eq!(
            received(&mut sport),
            [4, 5],
            "`sport/*` is under `sport/` only"
        );
        assert_eq!(received(&mut every), [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_union_of_selectors_receives_every_event_and_filters_itself() {
        let log = log(10, 16);
        let mut union = log.subscribe(None, &selecting(&["news", "sport/*"]));
        on(&log, "news");
        on(&log, "weather");
        assert_eq!(received(&mut union), [1, 2]);
    }

    #[test]
    fn a_topic_subscriber_lags_on_its_own_events_only() {
        let log = log(100, 2);
        let mut quiet = log.subscribe(None, &selecting(&["quiet"]));
        for _ in 0..10 {
            on(&log, "busy");
        }
        on(&log, "quiet");
        assert_eq!(
            received(&mut quiet),
            [11],
            "busy events never filled its queue"
        );
        for _ in 0..3 {
            on(&log, "quiet");
        }
        assert!(matches!(
            quiet.live.try_recv(),
            Err(TryRecvError::Lagged(1))
        ));
    }

    #[test]
    fn channels_nobody_receives_from_are_dropped() {
        let log = log(10, 4);
        drop(log.subscribe(None, &selecting(&["gone"])));
        on(&log, "gone");
        assert_eq!(log.lock().live.len(), 0, "dropped at its next event");
        // Topics nobody publishes on are pruned as new ones are asked for.
        for n in 0..1_000 {
            drop(log.subscribe(None, &selecting(&[&format!("t{n}")])));
        }
        let _kept = log.subscribe(None, &selecting(&["kept"]));
        assert!(
            log.lock().live.len() <= MIN_PRUNE_AT,
            "the index stays bounded"
        );
        for n in 0..1_000 {
            drop(log.subscribe(None, &selecting(&[&format!("u{n}")])));
        }
        assert!(
            log.lock().live.exact.contains_key("kept"),
            "a channel with a receiver is never pruned"
        );
    }

    #[test]
    fn a_restart_ends_topic_receivers_too() {
        let log = log(10, 4);
        let mut news = log.subscribe(None, &selecting(&["news"]));
        log.restart(Some("ffffffffffff".into()), 0);
        on(&log, "news");
        assert!(matches!(news.live.try_recv(), Err(TryRecvError::Closed)));
    }

    /// The splice, hammered: while publishers run flat out, thousands of subscriptions each
    /// check that their first live event is the one right after their position. A
    /// subscription that took its replay and its receiver under two locks would miss or
    /// repeat whatever was published between them.
    #[test]
    fn live_starts_exactly_after_the_subscription_position() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let log = Arc::new(log(64, 1 << 16));
        let stop = Arc::new(AtomicBool::new(false));
        let publishers: Vec<_> = (0..2)
            .map(|_| {
                let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        publish(&log, "x");
                    }
                })
            })
            .collect();
        for _ in 0..50_000 {
            let mut sub = log.subscribe(None, &Selectors::everything());
            let first = loop {
                match sub.live.try_recv() {
                    Ok(event) => break event.seq(),
                    Err(TryRecvError::Empty) => std::thread::yield_now(),
                    Err(other) => panic!("receiver failed: {other:?}"),
                }
            };
            assert_eq!(first, sub.position + 1, "gap or overlap at the splice");
        }
        stop.store(true, Ordering::Relaxed);
        for publisher in publishers {
            publisher.join().expect("publisher thread");
        }
    }

    /// Many publishers and many subscribers joining mid-stream: each subscriber's replay
    /// followed by its live events is exactly the published sequence after its resume point.
    #[test]
    fn splice_has_no_gap_or_duplicate_under_concurrent_publishers() {
        const PUBLISHERS: usize = 4;
        const PER_PUBLISHER: usize = 500;
        const TOTAL: u64 = (PUBLISHERS * PER_PUBLISHER) as u64;
        let log = Arc::new(log(TOTAL as usize, TOTAL as usize));
        let name = EventName::parse("t").expect("valid name");
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|_| {
                let log = Arc::clone(&log);
                let name = name.clone();
                std::thread::spawn(move || {
                    for _ in 0..PER_PUBLISHER {
                        log.append_next(|seq, epoch| {
                            Draft::new(Some(name.clone()), "x").into_event(id_of(epoch, seq))
                        });
                    }
                })
            })
            .collect();
        let mut subscribers = Vec::new();
        while subscribers.len() < 20 {
            let resume = log.status().last_id;
            let after = resume
                .as_deref()
                .and_then(|id| parse(id).ok())
                .map_or(0, |(_, seq)| seq);
            // Half listen to every event, half to the one topic they are on: both splice.
            let topics = if subscribers.len() % 2 == 0 {
                Selectors::everything()
            } else {
                selecting(&["default"])
            };
            subscribers.push((after, log.subscribe(resume.as_deref(), &topics)));
            std::thread::yield_now();
        }
        for publisher in publishers {
            publisher.join().expect("publisher thread");
        }
        for (after, mut sub) in subscribers {
            assert!(sub.replay.reset.is_none());
            let mut seen = ids(&sub.replay.events);
            while let Ok(event) = sub.live.try_recv() {
                seen.push(event.seq());
            }
            let expected: Vec<u64> = (after + 1..=TOTAL).collect();
            assert_eq!(seen, expected, "subscriber resumed after {after}");
        }
    }
}
