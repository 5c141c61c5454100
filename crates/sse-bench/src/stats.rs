//! Statistics: a lock-free log-linear histogram of delays in microseconds, and percentiles.
//!
//! Thousands of subscriber tasks record into one shared histogram, so recording is a single
//! relaxed atomic add; percentiles are read once at the end of a scenario. Buckets keep
//! values below 128 µs exact and split every power of two above into 64 sub-buckets, so a
//! reported percentile is within about 1.6 % of the true sample.

use std::sync::atomic::{AtomicU64, Ordering};

/// Values below this are stored exactly, one bucket each.
const EXACT: u64 = 128;
/// Sub-buckets per power of two above [`EXACT`] (6 bits of precision).
const SUB_BITS: u32 = 6;
/// Sub-buckets per octave.
const SUB: u64 = 1 << SUB_BITS;
/// Total buckets: the exact ones, then 64 per octave from 2^7 up to 2^63.
const BUCKETS: usize = EXACT as usize + (64 - 7) * SUB as usize;

/// Index of the sample count in `counts`, after the buckets.
const TOTAL: usize = BUCKETS;
/// Index of the largest sample in `counts`.
const MAX: usize = BUCKETS + 1;

/// A concurrent histogram of `u64` samples (microseconds throughout this crate).
pub struct Histogram {
    /// One counter per bucket, then the sample count and the largest sample. All live in
    /// this one heap block so that histograms kept side by side (see [`Sharded`]) share no
    /// cache line.
    counts: Vec<AtomicU64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: (0..BUCKETS + 2).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Records one sample.
    pub fn record(&self, value: u64) {
        self.counts[bucket_of(value)].fetch_add(1, Ordering::Relaxed);
        self.counts[TOTAL].fetch_add(1, Ordering::Relaxed);
        self.counts[MAX].fetch_max(value, Ordering::Relaxed);
    }

    /// Number of samples recorded.
    pub fn count(&self) -> u64 {
        self.counts[TOTAL].load(Ordering::Relaxed)
    }

    /// Largest sample recorded (0 when empty).
    pub fn max(&self) -> u64 {
        self.counts[MAX].load(Ordering::Relaxed)
    }

    /// Adds every sample of `other` to this histogram.
    pub fn merge(&self, other: &Self) {
        for (mine, theirs) in self.counts[..BUCKETS].iter().zip(&other.counts[..BUCKETS]) {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.counts[TOTAL].fetch_add(other.count(), Ordering::Relaxed);
        self.counts[MAX].fetch_max(other.max(), Ordering::Relaxed);
    }

    /// The `q`-quantile (0.0..=1.0) as a bucket's midpoint, or `None` when empty.
    ///
    /// Uses the nearest-rank definition: the smallest value with at least `ceil(q * n)`
    /// samples at or below it.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = rank_for(q, n);
        let mut seen = 0;
        for (index, count) in self.counts[..BUCKETS].iter().enumerate() {
            seen += count.load(Ordering::Relaxed);
            if seen >= rank {
                // Never report more than the exact maximum: the top bucket's midpoint may be.
                return Some(midpoint(index).min(self.max()));
            }
        }
        Some(self.max())
    }
}

/// A histogram split into shards that recorders pick by a key of their own (a subscriber's
/// index): at a million samples per second, threads that shared one set of counters would
/// spend more time moving cache lines between cores than recording.
pub struct Sharded {
    /// The shards.
    shards: Vec<Histogram>,
}

impl Sharded {
    /// `n` empty shards (at least one).
    pub fn new(n: usize) -> Self {
        Self {
            shards: (0..n.max(1)).map(|_| Histogram::new()).collect(),
        }
    }

    /// Records `value` into the shard for `key`.
    pub fn record(&self, key: usize, value: u64) {
        self.shards[key % self.shards.len()].record(value);
    }

    /// Samples recorded in all shards.
    pub fn count(&self) -> u64 {
        self.shards.iter().map(Histogram::count).sum()
    }

    /// All shards merged into one histogram.
    pub fn merged(&self) -> Histogram {
        let all = Histogram::new();
        for shard in &self.shards {
            all.merge(shard);
        }
        all
    }
}

/// Nearest rank (1-based) of quantile `q` among `n` samples.
fn rank_for(q: f64, n: u64) -> u64 {
    let q = q.clamp(0.0, 1.0);
    // The product is at most n, which fits f64 exactly for any realistic sample count.
    let rank = (q * n as f64).ceil() as u64;
    rank.clamp(1, n)
}

/// The bucket index of `value`.
fn bucket_of(value: u64) -> usize {
    if value < EXACT {
        return usize::try_from(value).unwrap_or(0);
    }
    let exp = 63 - value.leading_zeros(); // >= 7
    let sub = (value >> (exp - SUB_BITS)) & (SUB - 1);
    let index = EXACT + u64::from(exp - 7) * SUB + sub;
    usize::try_from(index).unwrap_or(BUCKETS - 1)
}

/// The value a bucket stands for: exact below [`EXACT`], its middle above.
fn midpoint(index: usize) -> u64 {
    let index = index as u64;
    if index < EXACT {
        return index;
    }
    let octave = (index - EXACT) / SUB;
    let sub = (index - EXACT) % SUB;
    let exp = octave + 7;
    let width = 1u64 << (exp - u64::from(SUB_BITS));
    let lower = (SUB + sub) * width;
    lower + width / 2
}

/// The nearest-rank `q`-quantile of an already sorted slice, or `None` when empty.
pub fn percentile_sorted(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = rank_for(q, sorted.len() as u64);
    let index = usize::try_from(rank - 1).ok()?;
    sorted.get(index).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        let h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), Some(50));
        assert_eq!(h.quantile(0.99), Some(99));
        assert_eq!(h.quantile(1.0), Some(100));
        assert_eq!(h.quantile(0.0), Some(1));
    }

    #[test]
    fn empty_has_no_quantile() {
        assert_eq!(Histogram::new().quantile(0.5), None);
        assert_eq!(percentile_sorted(&[], 0.5), None);
    }

    #[test]
    fn large_values_are_within_two_percent() {
        let h = Histogram::new();
        let values: Vec<u64> = (1..=10_000).map(|i| i * 37).collect();
        for &v in &values {
            h.record(v);
        }
        for q in [0.5, 0.9, 0.99, 0.999] {
            let exact = percentile_sorted(&values, q).expect("not empty");
            let approx = h.quantile(q).expect("not empty");
            let error = (approx as f64 - exact as f64).abs() / exact as f64;
            assert!(error < 0.02, "q={q}: {approx} vs {exact}");
        }
    }

    #[test]
    fn quantile_never_exceeds_max() {
        let h = Histogram::new();
        h.record(1_000_001);
        assert_eq!(h.quantile(1.0), Some(1_000_001));
    }

    #[test]
    fn buckets_are_monotonic_and_in_range() {
        let mut last = 0;
        for v in (0..1_000_000u64)
            .step_by(97)
            .chain([u64::MAX / 2, u64::MAX])
        {
            let b = bucket_of(v);
            assert!(b < BUCKETS);
            assert!(b >= last);
            last = b;
            if v >= EXACT {
                let m = midpoint(b);
                assert!(
                    (m as f64 - v as f64).abs() / (v as f64) < 0.02,
                    "{v} -> {m}"
                );
            }
        }
    }

    #[test]
    fn shards_merge_into_one_distribution() {
        let sharded = Sharded::new(4);
        for v in 1..=100u64 {
            sharded.record(v as usize, v);
        }
        assert_eq!(sharded.count(), 100);
        let all = sharded.merged();
        assert_eq!(all.count(), 100);
        assert_eq!(all.max(), 100);
        assert_eq!(all.quantile(0.5), Some(50));
        assert_eq!(all.quantile(0.99), Some(99));
    }

    #[test]
    fn sorted_percentiles_use_nearest_rank() {
        let v = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
        assert_eq!(percentile_sorted(&v, 0.5), Some(50));
        assert_eq!(percentile_sorted(&v, 0.99), Some(100));
        assert_eq!(percentile_sorted(&v, 0.1), Some(10));
        assert_eq!(percentile_sorted(&[7], 0.999), Some(7));
    }
}
