//! [`DurationHistogram`]: durations in nanoseconds, log-linear buckets (64 per power of
//! two, so every bucket is at most 1/64 of its values wide), stored densely between the
//! lowest and highest bucket used. Merging adds counts: exact. A quantile is the
//! midpoint of the bucket holding it, at most 1/128 (0.8%) from the true value, and is
//! clamped to the exact minimum and maximum by the caller.

use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Values below this are their own bucket (exact).
const LINEAR: u64 = 2 * SUB;

/// The bucket of `v`.
#[inline]
pub(crate) fn index(v: u64) -> u32 {
    if v < LINEAR {
        return v as u32;
    }
    let shift = 63 - v.leading_zeros() - SUB_BITS;
    // (v >> shift) is in [SUB, 2 * SUB): the top SUB_BITS + 1 bits of v.
    (u64::from(shift) * SUB + (v >> shift)) as u32
}

/// The lowest value of bucket `i`, and its width.
#[inline]
pub(crate) fn bounds(i: u32) -> (u64, u64) {
    let i = u64::from(i);
    if i < LINEAR {
        return (i, 1);
    }
    let shift = i / SUB - 1;
    let top = i - shift * SUB; // in [SUB, 2 * SUB)
    (top << shift, 1 << shift)
}

/// The value reported for bucket `i`: its midpoint (its only value when it is exact).
fn representative(i: u32) -> u64 {
    let (low, width) = bounds(i);
    low + (width - 1) / 2
}

/// Counts per bucket, dense from `offset`: `counts` runs from the lowest bucket with a
/// count to the highest, and is empty when the histogram is. Clearing keeps the
/// allocation, so a structure reused (a time slot) does not allocate again once it has
/// seen its range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DurationHistogram {
    offset: u32,
    counts: Vec<u64>,
    total: u64,
}

/// Buckets summed at a time when a quantile search skips ahead (one octave).
const CHUNK: usize = 64;

impl DurationHistogram {
    pub(crate) fn record(&mut self, nanos: u64) {
        self.add_at(index(nanos), 1);
    }

    fn add_at(&mut self, i: u32, n: u64) {
        self.cover(i, i + 1);
        self.counts[(i - self.offset) as usize] += n;
        self.total += n;
    }

    /// Widens the dense range to hold the buckets `lo..hi`.
    fn cover(&mut self, lo: u32, hi: u32) {
        if self.counts.is_empty() {
            self.offset = lo;
        } else if lo < self.offset {
            let grow = (self.offset - lo) as usize;
            self.counts
                .splice(0..0, std::iter::repeat_n(0, grow))
                .for_each(drop);
            self.offset = lo;
        }
        let end = (hi - self.offset) as usize;
        if end > self.counts.len() {
            self.counts.resize(end, 0);
        }
    }

    /// The buckets `lo..hi` this histogram's counts run over; `None` when empty.
    pub(crate) fn range(&self) -> Option<(u32, u32)> {
        (!self.counts.is_empty()).then(|| (self.offset, self.offset + self.counts.len() as u32))
    }

    /// Makes room for the buckets `lo..hi` at once, so that merging histograms within
    /// that range moves nothing.
    pub(crate) fn reserve_range(&mut self, lo: u32, hi: u32) {
        if lo < hi {
            self.cover(lo, hi);
        }
    }

    /// Empties the histogram, keeping its allocation.
    pub(crate) fn clear(&mut self) {
        self.counts.clear();
        self.total = 0;
    }

    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Adds `other`'s counts: the range is grown once, then the buckets are added
    /// slice to slice (a window's snapshot merges many slots).
    pub(crate) fn merge(&mut self, other: &Self) {
        let Some((lo, hi)) = other.range() else {
            return;
        };
        self.cover(lo, hi);
        let start = (lo - self.offset) as usize;
        for (mine, n) in self.counts[start..start + other.counts.len()]
            .iter_mut()
            .zip(&other.counts)
        {
            *mine += n;
        }
        self.total += other.total;
    }

    /// The value at quantile `q` (0–1): the midpoint of the bucket holding the
    /// `ceil(q * total)`-th smallest value; `None` when empty.
    pub(crate) fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).clamp(1, self.total);
        // Whole octaves are skipped by their sums (which vectorise), so a histogram
        // stretched by a few outliers over many octaves costs one sum per octave, not
        // one step per bucket.
        let k = if rank <= self.total / 2 {
            // The first bucket whose cumulative count reaches the rank.
            let mut seen = 0;
            let mut start = 0;
            for chunk in self.counts.chunks(CHUNK) {
                let sum: u64 = chunk.iter().sum();
                if seen + sum >= rank {
                    break;
                }
                seen += sum;
                start += chunk.len();
            }
            self.counts[start..]
                .iter()
                .position(|n| {
                    seen += n;
                    seen >= rank
                })
                .map(|k| start + k)
        } else {
            // High quantiles from the top: going down, the first bucket that holds,
            // with those above it, more than the `total - rank` values above the rank.
            let above = self.total - rank;
            let mut seen = 0;
            let mut end = self.counts.len();
            for chunk in self.counts.rchunks(CHUNK) {
                let sum: u64 = chunk.iter().sum();
                if seen + sum > above {
                    break;
                }
                seen += sum;
                end -= chunk.len();
            }
            self.counts[..end].iter().rposition(|n| {
                seen += n;
                seen > above
            })
        };
        k.map(|k| representative(self.offset + k as u32))
    }

    /// Non-empty buckets as `(index, count)`, lowest first.
    pub(crate) fn buckets(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (self.offset + k as u32, *n))
    }

    /// Bytes held on the heap.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.counts.capacity() * std::mem::size_of::<u64>()
    }
}

/// A histogram as exported: its non-empty buckets, lowest first, each as
/// `[lowest value in nanoseconds, width in nanoseconds, count]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistogramBuckets(pub Vec<[u64; 3]>);

impl From<&DurationHistogram> for HistogramBuckets {
    fn from(h: &DurationHistogram) -> Self {
        Self(
            h.buckets()
                .map(|(i, n)| {
                    let (low, width) = bounds(i);
                    [low, width, n]
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_range_and_stay_within_a_64th() {
        let mut previous_end = 0;
        for i in 0..index(u64::MAX) {
            let (low, width) = bounds(i);
            assert_eq!(low, previous_end, "bucket {i} starts where {} ends", i - 1);
            assert_eq!(index(low), i);
            assert_eq!(index(low + width - 1), i);
            if low >= LINEAR {
                assert!(width * 64 <= low, "bucket {i}: width {width} at {low}");
            }
            previous_end = low + width;
        }
        assert_eq!(index(u64::MAX), index(u64::MAX - 1));
    }

    #[test]
    fn quantiles_are_within_half_a_bucket() {
        let mut h = DurationHistogram::default();
        let values: Vec<u64> = (1..=1000u64).map(|k| k * 997 + 13).collect();
        for v in &values {
            h.record(*v);
        }
        for q in [0.01, 0.5, 0.95, 0.99, 1.0] {
            let exact = values[((q * 1000.0_f64).ceil() as usize).clamp(1, 1000) - 1] as f64;
            let got = h.quantile(q).expect("not empty") as f64;
            assert!(
                (got - exact).abs() <= exact / 128.0 + 1.0,
                "q {q}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn merge_is_exact_and_clear_keeps_the_allocation() {
        let (mut a, mut b, mut both) = Default::default();
        for v in [5u64, 1_000, 77_777, 5_000_000_000] {
            DurationHistogram::record(&mut a, v);
            DurationHistogram::record(&mut both, v);
        }
        for v in [3u64, 9_999_999] {
            DurationHistogram::record(&mut b, v);
            DurationHistogram::record(&mut both, v);
        }
        let mut merged: DurationHistogram = a.clone();
        merged.merge(&b);
        assert_eq!(
            merged.buckets().collect::<Vec<_>>(),
            both.buckets().collect::<Vec<_>>()
        );
        assert_eq!(merged.total(), 6);
        let capacity = merged.heap_bytes();
        merged.clear();
        assert_eq!(merged.total(), 0);
        assert_eq!(merged.quantile(0.5), None);
        merged.record(1_000);
        assert_eq!(merged.heap_bytes(), capacity);
        // 1,000 ns is the start of an 8 ns wide bucket: its midpoint is 1,003.
        assert_eq!(merged.quantile(0.5), Some(1_003));
    }

    proptest::proptest! {
        /// Every quantile is the representative of the bucket of the value at its rank
        /// among the sorted values.
        #[test]
        fn quantiles_match_the_sorted_values(
            mut values in proptest::collection::vec(1u64..1 << 40, 1..200),
            q in 0.0f64..=1.0,
        ) {
            let mut h = DurationHistogram::default();
            for v in &values { h.record(*v); }
            values.sort_unstable();
            let n = values.len() as u64;
            let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
            let expected = representative(index(values[(rank - 1) as usize]));
            proptest::prop_assert_eq!(h.quantile(q), Some(expected));
        }
    }

    proptest::proptest! {
        /// Merging equals recording every value in one histogram, whatever ranges the
        /// two cover and whether either was cleared first (zeros kept past its end).
        #[test]
        fn merge_equals_recording_everything(
            old_a in proptest::collection::vec(1u64..1 << 40, 0..8),
            old_b in proptest::collection::vec(1u64..1 << 40, 0..8),
            a in proptest::collection::vec(1u64..1 << 40, 0..40),
            b in proptest::collection::vec(1u64..1 << 40, 0..40),
        ) {
            let (mut x, mut y, mut both) =
                (DurationHistogram::default(), DurationHistogram::default(), DurationHistogram::default());
            for v in &old_a { x.record(*v); }
            for v in &old_b { y.record(*v); }
            x.clear();
            y.clear();
            for v in &a { x.record(*v); both.record(*v); }
            for v in &b { y.record(*v); both.record(*v); }
            x.merge(&y);
            proptest::prop_assert_eq!(x.buckets().collect::<Vec<_>>(), both.buckets().collect::<Vec<_>>());
            proptest::prop_assert_eq!(x.total(), both.total());
            for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
                proptest::prop_assert_eq!(x.quantile(q), both.quantile(q));
            }
        }
    }
}
