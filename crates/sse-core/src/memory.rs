//! The in-memory hub: a bounded history ring and a broadcast channel under one lock.
//!
//! Ids are `<epoch>-<seq>`: the epoch is 12 random hex digits drawn once per run, the
//! sequence counts from 1. The epoch is what lets a restarted server tell an id from an
//! earlier run (foreign) from a position in this one.
//!
//! The splice between replay and live is exact because `publish` appends to the ring and
//! sends on the channel while holding the lock, and `subscribe` copies the ring and creates
//! its receiver under the same lock: every event is either in the copy or in the receiver,
//! never both, never neither.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use crate::event::{Draft, Event, EventId};
use crate::hub::{Hub, HubStatus, PublishFuture, Replay, Reset, ResetReason, Subscription};

/// Longest `Last-Event-ID` the hub will look at; longer ones are malformed by contract.
pub const MAX_LAST_EVENT_ID_LEN: usize = 128;

/// Hex digits in a run's epoch.
const EPOCH_DIGITS: usize = 12;

/// A hub that lives in this process: history and subscribers are lost on restart.
pub struct MemoryHub {
    /// This run's id prefix.
    epoch: String,
    /// History and the sequence counter; see the module docs for why one lock covers both.
    ///
    /// A `std` mutex, not tokio's: it is held for a push or a copy of the ring and never
    /// across an `.await`, so it cannot block the runtime, and it is cheaper than an async
    /// lock. It is the only lock in the hub, so there is no lock order to keep; callers
    /// (the push loop's client list) may hold their own lock while taking it, never the
    /// other way round.
    ring: Mutex<Ring>,
    /// The live feed; its capacity is the per-subscriber queue bound.
    live: broadcast::Sender<Arc<Event>>,
}

/// Retained events, oldest first, and the numbering state.
struct Ring {
    /// At most `capacity` events, in id order.
    events: VecDeque<Arc<Event>>,
    /// The `--history` bound.
    capacity: usize,
    /// The sequence number the next event gets.
    next_seq: u64,
}

impl MemoryHub {
    /// A hub that retains `history` events and lets a subscriber fall `queue` events behind.
    pub fn new(history: usize, queue: usize) -> Self {
        let epoch = format!("{:0width$x}", fastrand::u64(..) >> 16, width = EPOCH_DIGITS);
        Self::with_epoch(epoch, history, queue)
    }

    /// Like [`MemoryHub::new`] with a chosen epoch (12 lowercase hex digits), for tests.
    pub fn with_epoch(epoch: String, history: usize, queue: usize) -> Self {
        assert!(
            history > 0 && queue > 0,
            "history and queue are validated by Config"
        );
        let (live, _) = broadcast::channel(queue);
        MemoryHub {
            epoch,
            ring: Mutex::new(Ring {
                events: VecDeque::with_capacity(history),
                capacity: history,
                next_seq: 1,
            }),
            live,
        }
    }

    /// Publishes synchronously; [`Hub::publish`] wraps this.
    pub fn publish_now(&self, draft: Draft) -> Arc<Event> {
        let mut ring = self.lock();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        let id = EventId::new(seq, format!("{}-{seq}", self.epoch));
        let event = Arc::new(draft.into_event(id));
        if ring.events.len() == ring.capacity {
            ring.events.pop_front();
        }
        ring.events.push_back(Arc::clone(&event));
        // An error only means nobody is subscribed right now, which is not a failure.
        let _ = self.live.send(Arc::clone(&event));
        event
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding the lock cannot leave the ring half-updated in a way that
        // matters (each step is a single push or pop), so a poisoned lock is still usable.
        self.ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Works out the replay for `last_event_id` from the ring as it is now.
    fn replay_locked(&self, ring: &Ring, last_event_id: Option<&str>) -> Replay {
        let Some(raw) = last_event_id.filter(|id| !id.is_empty()) else {
            return Replay::default();
        };
        let last_seq = ring.next_seq - 1;
        let oldest_seq = ring.events.front().map_or(ring.next_seq, |e| e.seq());
        let (reason, after) = match self.parse(raw) {
            Err(reason) => (Some(reason), None),
            Ok(Some(seq)) if seq > last_seq => (Some(ResetReason::Unknown), None),
            Ok(Some(seq)) if seq + 1 < oldest_seq => (Some(ResetReason::TooOld), Some(seq)),
            Ok(Some(seq)) => (None, Some(seq)),
            // Another run's id: everything this run holds is news to the client.
            Ok(None) => (Some(ResetReason::Foreign), Some(0)),
        };
        let events = match after {
            Some(after) => {
                let start = ring.events.partition_point(|e| e.seq() <= after);
                ring.events.range(start..).cloned().collect()
            }
            None => Vec::new(),
        };
        let id_text = |e: Option<&Arc<Event>>| e.and_then(|e| e.id_str()).map(str::to_owned);
        let reset = reason.map(|reason| Reset {
            reason,
            oldest_id: id_text(ring.events.front()),
            last_id: id_text(ring.events.back()),
        });
        Replay { reset, events }
    }

    /// `Ok(Some(seq))` for this run's ids, `Ok(None)` for another run's, `Err` for junk.
    fn parse(&self, raw: &str) -> Result<Option<u64>, ResetReason> {
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
            (true, Some(seq)) if epoch == self.epoch => Ok(Some(seq)),
            (true, Some(_)) => Ok(None),
            _ => Err(ResetReason::Malformed),
        }
    }
}

impl Hub for MemoryHub {
    fn publish(&self, draft: Draft) -> PublishFuture<'_> {
        let event = self.publish_now(draft);
        Box::pin(async move { Ok(event) })
    }

    fn subscribe(&self, last_event_id: Option<&str>) -> Subscription {
        let ring = self.lock();
        let live = self.live.subscribe();
        let replay = self.replay_locked(&ring, last_event_id);
        Subscription {
            replay,
            live,
            position: ring.next_seq - 1,
        }
    }

    fn status(&self) -> HubStatus {
        let ring = self.lock();
        let id_text = |e: Option<&Arc<Event>>| e.and_then(|e| e.id_str()).map(str::to_owned);
        HubStatus {
            last_id: id_text(ring.events.back()),
            oldest_id: id_text(ring.events.front()),
            history_len: ring.events.len(),
            published: ring.next_seq - 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;
    use tokio::sync::broadcast::error::TryRecvError;

    const EPOCH: &str = "0123456789ab";

    fn hub(history: usize, queue: usize) -> MemoryHub {
        MemoryHub::with_epoch(EPOCH.to_owned(), history, queue)
    }

    fn draft(data: &str) -> Draft {
        Draft::new(None, data)
    }

    fn ids(events: &[Arc<Event>]) -> Vec<u64> {
        events.iter().map(|e| e.seq()).collect()
    }

    impl MemoryHub {
        /// The replay a subscriber resuming after `last_event_id` would get.
        fn replay(&self, last_event_id: Option<&str>) -> Replay {
            self.subscribe(last_event_id).replay
        }
    }

    #[test]
    fn ids_grow_and_never_repeat() {
        let hub = hub(10, 4);
        let a = hub.publish_now(draft("a"));
        let b = hub.publish_now(draft("b"));
        assert_eq!(a.id_str(), Some("0123456789ab-1"));
        assert_eq!(b.id_str(), Some("0123456789ab-2"));
        assert!(a.id < b.id);
    }

    #[test]
    fn replay_is_everything_after_the_id_in_order() {
        let hub = hub(10, 4);
        for n in 0..5 {
            hub.publish_now(draft(&n.to_string()));
        }
        let replay = hub.replay(Some("0123456789ab-2"));
        assert_eq!(replay.reset, None);
        assert_eq!(ids(&replay.events), [3, 4, 5]);
        assert!(hub.replay(Some("0123456789ab-5")).events.is_empty());
        assert!(
            hub.replay(None).events.is_empty(),
            "a fresh client starts live"
        );
        assert!(
            hub.replay(Some("")).events.is_empty(),
            "an empty id means fresh"
        );
    }

    #[test]
    fn ring_evicts_the_oldest_and_too_old_ids_reset() {
        let hub = hub(3, 4);
        for n in 0..6 {
            hub.publish_now(draft(&n.to_string()));
        }
        assert_eq!(hub.status().history_len, 3);
        assert_eq!(hub.status().oldest_id.as_deref(), Some("0123456789ab-4"));
        // Id 3 is evicted but everything after it is retained: exact, no reset.
        let exact = hub.replay(Some("0123456789ab-3"));
        assert_eq!((exact.reset, ids(&exact.events)), (None, vec![4, 5, 6]));
        // After id 2, event 3 is gone: reset, then what is retained.
        let old = hub.replay(Some("0123456789ab-2"));
        let reset = old.reset.expect("a reset for a too-old id");
        assert_eq!(reset.reason, ResetReason::TooOld);
        assert_eq!(reset.oldest_id.as_deref(), Some("0123456789ab-4"));
        assert_eq!(ids(&old.events), [4, 5, 6]);
    }

    #[test]
    fn every_kind_of_bad_id_resets() {
        let hub = hub(3, 4);
        hub.publish_now(draft("x"));
        let reason = |id: &str| hub.replay(Some(id)).reset.map(|r| r.reason);
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
    fn a_foreign_id_replays_all_of_this_run() {
        let hub = hub(5, 4);
        hub.publish_now(draft("a"));
        hub.publish_now(draft("b"));
        let replay = hub.replay(Some("ba9876543210-7"));
        assert_eq!(replay.reset.map(|r| r.reason), Some(ResetReason::Foreign));
        assert_eq!(ids(&replay.events), [1, 2]);
    }

    #[test]
    fn a_receiver_that_falls_behind_its_queue_lags() {
        let hub = hub(100, 2);
        let mut sub = hub.subscribe(None);
        for n in 0..3 {
            hub.publish_now(draft(&n.to_string()));
        }
        assert!(matches!(sub.live.try_recv(), Err(TryRecvError::Lagged(1))));
    }

    /// The splice, hammered: while publishers run flat out, thousands of subscriptions each
    /// check that their first live event is the one right after their position. A
    /// subscription that took its replay and its receiver under two locks would miss or
    /// repeat whatever was published between them.
    #[test]
    fn live_starts_exactly_after_the_subscription_position() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let hub = Arc::new(hub(64, 1 << 16));
        let stop = Arc::new(AtomicBool::new(false));
        let publishers: Vec<_> = (0..2)
            .map(|_| {
                let (hub, stop) = (Arc::clone(&hub), Arc::clone(&stop));
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        hub.publish_now(draft("x"));
                    }
                })
            })
            .collect();
        for _ in 0..50_000 {
            let mut sub = hub.subscribe(None);
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
        let hub = Arc::new(hub(TOTAL as usize, TOTAL as usize));
        let name = EventName::parse("t").expect("valid name");
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|_| {
                let hub = Arc::clone(&hub);
                let name = name.clone();
                std::thread::spawn(move || {
                    for _ in 0..PER_PUBLISHER {
                        hub.publish_now(Draft::new(Some(name.clone()), "x"));
                    }
                })
            })
            .collect();
        let mut subscribers = Vec::new();
        while subscribers.len() < 20 {
            let resume = hub.status().last_id;
            let after = resume.as_deref().map_or(0, |id| {
                id.rsplit_once('-')
                    .and_then(|(_, s)| s.parse().ok())
                    .unwrap_or(0)
            });
            subscribers.push((after, hub.subscribe(resume.as_deref())));
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
