//! What the scenarios measure with: delivery delays split into phases, each subscriber's
//! progress through the events, each event's first and last arrival, and the server's CPU
//! share. Subscribers on every thread write into these at every event, so each is a set of
//! relaxed atomics laid out to keep threads off each other's cache lines.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::stats::Sharded;

/// No measurement phase is active.
pub const IDLE: usize = usize::MAX;

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

    /// The active phase, or [`IDLE`]; a publisher counts its events into the same phase
    /// that the subscribers record them in.
    pub fn phase(&self) -> usize {
        self.phase.load(Ordering::Relaxed)
    }

    /// Records one delivery delay (µs) by subscriber `who` in the active phase.
    pub fn record(&self, who: usize, delay_us: u64) {
        if let Some(hist) = self.hists.get(self.phase()) {
            hist.record(who, delay_us);
        }
    }

    /// Bench events received during `phase`.
    pub fn received(&self, phase: usize) -> u64 {
        self.hists[phase].count()
    }

    /// Quantiles of `phase`'s delays, in milliseconds.
    pub fn ms(&self, phase: usize, qs: &[f64]) -> Vec<Option<f64>> {
        let merged = self.hists[phase].merged();
        qs.iter()
            .map(|q| merged.quantile(*q).map(|us| us as f64 / 1000.0))
            .collect()
    }
}

/// One subscriber's progress counter, on a cache line of its own: its neighbours are
/// updated by other threads at every event.
#[repr(align(64))]
#[derive(Default)]
struct Slot(AtomicU64);

/// The highest event index each subscriber of a fleet has seen, which paces publishers
/// that must not run ahead of the slowest one.
pub struct Progress {
    /// One slot per subscriber.
    slots: Vec<Slot>,
}

impl Progress {
    /// Progress of `n` subscribers, none of whom has seen anything.
    pub fn new(n: usize) -> Self {
        Self {
            slots: (0..n).map(|_| Slot::default()).collect(),
        }
    }

    /// Subscriber `i` has seen event `k` (indexes may arrive out of order).
    pub fn advance(&self, i: usize, k: u64) {
        self.slots[i].0.fetch_max(k, Ordering::Relaxed);
    }

    /// Subscriber `i` is gone: it must not hold the publishers back any longer.
    pub fn leave(&self, i: usize) {
        self.slots[i].0.store(u64::MAX, Ordering::Relaxed);
    }

    /// The slowest subscriber's progress (`u64::MAX` when there is none).
    pub fn slowest(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .min()
            .unwrap_or(u64::MAX)
    }
}

/// First and last receive time of each event, for the spread across subscribers.
pub struct PerEvent {
    /// Earliest receive time (µs since the epoch) per event index.
    first: Vec<AtomicU64>,
    /// Latest receive time per event index.
    last: Vec<AtomicU64>,
}

impl PerEvent {
    /// Room for event indexes `0..n`.
    pub fn new(n: usize) -> Self {
        Self {
            first: (0..n).map(|_| AtomicU64::new(u64::MAX)).collect(),
            last: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Notes that event `k` reached a subscriber at `now`; indexes without room are ignored.
    pub fn mark(&self, k: u64, now: u64) {
        let Ok(k) = usize::try_from(k) else { return };
        if let (Some(first), Some(last)) = (self.first.get(k), self.last.get(k)) {
            first.fetch_min(now, Ordering::Relaxed);
            last.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// For every event that reached anyone, the time from its first to its last arrival
    /// (µs), sorted.
    pub fn spreads(&self) -> Vec<u64> {
        let mut spreads: Vec<u64> = self
            .first
            .iter()
            .zip(&self.last)
            .filter_map(|(first, last)| {
                let (first, last) = (first.load(Ordering::Relaxed), last.load(Ordering::Relaxed));
                (first != u64::MAX).then(|| last.saturating_sub(first))
            })
            .collect();
        spreads.sort_unstable();
        spreads
    }
}

/// A process's CPU use between two readings of its CPU seconds, in percent of one core.
pub fn cpu_pct(before: Option<f64>, after: Option<f64>, secs: f64) -> Option<f64> {
    Some((after? - before?) / secs * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_count_only_in_the_active_phase() {
        // Delays under 128 µs are kept exactly, so the quantiles can be compared exactly.
        let rec = Recorder::new(2);
        rec.record(0, 50);
        rec.set_phase(0);
        rec.record(0, 10);
        rec.record(1, 30);
        rec.set_phase(1);
        rec.record(0, 90);
        rec.set_phase(IDLE);
        rec.record(0, 70);
        assert_eq!(rec.received(0), 2);
        assert_eq!(rec.received(1), 1);
        assert_eq!(rec.ms(0, &[0.5, 1.0]), [Some(0.01), Some(0.03)]);
        assert_eq!(rec.ms(1, &[0.5]), [Some(0.09)]);
    }

    #[test]
    fn an_empty_phase_has_no_quantiles() {
        assert_eq!(Recorder::new(1).ms(0, &[0.99]), [None]);
    }

    #[test]
    fn the_slowest_subscriber_paces_and_a_departed_one_does_not() {
        let progress = Progress::new(3);
        progress.advance(0, 7);
        progress.advance(1, 4);
        progress.advance(2, 9);
        progress.advance(1, 2);
        assert_eq!(progress.slowest(), 4);
        progress.leave(1);
        assert_eq!(progress.slowest(), 7);
        assert_eq!(Progress::new(0).slowest(), u64::MAX);
    }

    #[test]
    fn spread_is_first_to_last_arrival_of_each_event_reached() {
        let per_event = PerEvent::new(4);
        per_event.mark(1, 100);
        per_event.mark(1, 130);
        per_event.mark(1, 110);
        per_event.mark(3, 500);
        per_event.mark(4, 999);
        per_event.mark(u64::MAX, 1);
        assert_eq!(per_event.spreads(), [0, 30]);
    }

    #[test]
    fn cpu_share_needs_both_readings() {
        assert_eq!(cpu_pct(Some(1.0), Some(1.5), 2.0), Some(25.0));
        assert_eq!(cpu_pct(None, Some(1.5), 2.0), None);
        assert_eq!(cpu_pct(Some(1.0), None, 2.0), None);
    }
}
