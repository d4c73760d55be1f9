//! One running aggregate, in base units: counts, exact min/mean/max, a duration
//! histogram for quantiles and exact counts at the Prometheus bucket bounds, work and
//! quality sums, resource peaks. Merges exactly with [`Aggregate::merge`]; clearing
//! keeps its allocation, so a time slot reused for a new interval does not allocate.

use super::histogram::{DurationHistogram, HistogramBuckets};
use super::snapshot::{
    AggregateStats, Bucket, DURATION_BUCKETS, DurationStats, PairStatistics, PeakStats,
    ResourceStats,
};
use crate::figure::{FIGURES, Figure, Figures, Over};

/// [`DURATION_BUCKETS`] in nanoseconds.
pub(crate) const BOUNDS_NANOS: [u64; DURATION_BUCKETS.len()] = {
    let mut out = [0u64; DURATION_BUCKETS.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = (DURATION_BUCKETS[i] * 1e9) as u64;
        i += 1;
    }
    out
};

/// What one finished operation contributes to the statistics, in base units.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Measured {
    /// The operation as an exemplar of its duration bucket, when its trace is exported.
    pub(crate) exemplar: Option<crate::metrics::Exemplar>,
    pub(crate) nanos: u64,
    pub(crate) success: bool,
    /// Dropped before it completed (then `success` is false too).
    pub(crate) cancelled: bool,
    /// Whether its duration counts in the duration figures (not for a cancelled
    /// operation unless the configuration says so).
    pub(crate) timed: bool,
    /// How many other operations overlapped it at most, when known.
    pub(crate) overlap: Option<u32>,
    pub(crate) frames: Option<u64>,
    pub(crate) segments: Option<u64>,
    pub(crate) quality: Option<f64>,
    pub(crate) figures: Figures,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Aggregate {
    count: u64,
    failures: u64,
    cancelled: u64,
    /// Operations in the duration figures.
    timed: u64,
    /// Operations that overlapped no other.
    exclusive: u64,
    nanos_sum: u128,
    min: u64,
    max: u64,
    histogram: DurationHistogram,
    /// Time per frame (duration over frames, nanoseconds) of the operations that
    /// recorded frames: a figure that does not depend on clip length.
    frame_time: DurationHistogram,
    /// Operations per bucket of [`DURATION_BUCKETS`] (not cumulative); longer ones are
    /// only in `count`.
    le: [u64; DURATION_BUCKETS.len()],
    frames: u64,
    frames_nanos: u128,
    segments: u64,
    quality_sum: f64,
    /// Sum of squared quality scores, for their variance.
    quality_squares: f64,
    quality_count: u64,
    /// Per figure: the highest, the sum and the count of the operations' values.
    figures: [Peak; Figure::COUNT],
    /// Per total figure (energy): its sum and the frames, over the operations that
    /// recorded both.
    per_frame: [(f64, u64); Figure::COUNT],
}

/// Max, sum and count of the operations' values of one figure (in its base unit).
#[derive(Clone, Copy, Debug)]
struct Peak {
    max: f64,
    sum: f64,
    count: u64,
    /// The highest among operations that overlapped no other; NaN while none did.
    exclusive_max: f64,
}

impl Default for Peak {
    fn default() -> Self {
        Self {
            max: 0.0,
            sum: 0.0,
            count: 0,
            exclusive_max: f64::NAN,
        }
    }
}

impl Peak {
    fn add(&mut self, value: Option<f64>, exclusive: bool) {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            self.max = if self.count == 0 { v } else { self.max.max(v) };
            self.sum += v;
            self.count += 1;
            if exclusive {
                self.exclusive_max = self.exclusive_max.max(v);
            }
        }
    }

    fn merge(&mut self, other: &Self) {
        if other.count > 0 {
            self.max = if self.count == 0 {
                other.max
            } else {
                self.max.max(other.max)
            };
            self.sum += other.sum;
            self.count += other.count;
            // NaN-aware: `max` keeps the other when one is NaN.
            self.exclusive_max = self.exclusive_max.max(other.exclusive_max);
        }
    }

    fn stats(&self, total: bool) -> Option<PeakStats> {
        (self.count > 0).then(|| PeakStats {
            max: self.max,
            mean: self.sum / self.count as f64,
            operations: self.count,
            total: total.then_some(self.sum),
            exclusive_max: (!self.exclusive_max.is_nan()).then_some(self.exclusive_max),
        })
    }
}

fn seconds(nanos: u128) -> f64 {
    nanos as f64 / 1e9
}

impl Aggregate {
    pub(crate) fn record(&mut self, m: &Measured) {
        let nanos = m.nanos;
        self.count += 1;
        self.failures += u64::from(!m.success && !m.cancelled);
        self.cancelled += u64::from(m.cancelled);
        let exclusive = m.overlap == Some(0);
        self.exclusive += u64::from(exclusive);
        if m.timed {
            if self.timed == 0 {
                self.min = nanos;
                self.max = nanos;
            } else {
                self.min = self.min.min(nanos);
                self.max = self.max.max(nanos);
            }
            self.timed += 1;
            self.nanos_sum += u128::from(nanos);
            self.histogram.record(nanos);
            let bucket = BOUNDS_NANOS.partition_point(|bound| *bound < nanos);
            if let Some(n) = self.le.get_mut(bucket) {
                *n += 1;
            }
        }
        if let Some(frames) = m.frames {
            self.frames = self.frames.saturating_add(frames);
            self.frames_nanos += u128::from(nanos);
            if let Some(per_frame) = nanos.checked_div(frames) {
                self.frame_time.record(per_frame);
            }
        }
        if let Some(segments) = m.segments {
            self.segments = self.segments.saturating_add(segments);
        }
        if let Some(q) = m.quality.filter(|q| q.is_finite()) {
            self.quality_sum += q;
            self.quality_squares += q * q;
            self.quality_count += 1;
        }
        for (figure, peak) in Figure::ALL.iter().zip(&mut self.figures) {
            peak.add(m.figures.get(*figure), exclusive);
        }
        if let Some(frames) = m.frames.filter(|f| *f > 0) {
            for def in FIGURES.iter().filter(|d| d.per_frame.is_some()) {
                if let Some(v) = m.figures.get(def.figure) {
                    let slot = &mut self.per_frame[def.figure.index()];
                    slot.0 += v;
                    slot.1 = slot.1.saturating_add(frames);
                }
            }
        }
    }

    /// Adds `other` in: every figure is exactly what recording both sets would give.
    pub(crate) fn merge(&mut self, other: &Self) {
        if other.count == 0 {
            return;
        }
        if other.timed > 0 {
            if self.timed == 0 {
                self.min = other.min;
                self.max = other.max;
            } else {
                self.min = self.min.min(other.min);
                self.max = self.max.max(other.max);
            }
        }
        self.count += other.count;
        self.failures += other.failures;
        self.cancelled += other.cancelled;
        self.timed += other.timed;
        self.exclusive += other.exclusive;
        self.nanos_sum += other.nanos_sum;
        self.histogram.merge(&other.histogram);
        self.frame_time.merge(&other.frame_time);
        for (mine, theirs) in self.le.iter_mut().zip(other.le) {
            *mine += theirs;
        }
        self.frames = self.frames.saturating_add(other.frames);
        self.frames_nanos += other.frames_nanos;
        self.segments = self.segments.saturating_add(other.segments);
        self.quality_sum += other.quality_sum;
        self.quality_squares += other.quality_squares;
        self.quality_count += other.quality_count;
        for (peak, other) in self.figures.iter_mut().zip(&other.figures) {
            peak.merge(other);
        }
        for (mine, theirs) in self.per_frame.iter_mut().zip(&other.per_frame) {
            mine.0 += theirs.0;
            mine.1 = mine.1.saturating_add(theirs.1);
        }
    }

    /// Empties the aggregate, keeping the histogram's allocation.
    pub(crate) fn clear(&mut self) {
        let mut histogram = std::mem::take(&mut self.histogram);
        histogram.clear();
        let mut frame_time = std::mem::take(&mut self.frame_time);
        frame_time.clear();
        *self = Self {
            histogram,
            frame_time,
            ..Self::default()
        };
    }

    /// The histogram buckets `lo..hi` the durations fall in; `None` when empty.
    pub(crate) fn histogram_range(&self) -> Option<(u32, u32)> {
        self.histogram.range()
    }

    /// Makes room in the histogram for the buckets `lo..hi` (nothing when `lo >= hi`).
    pub(crate) fn reserve_histogram_range(&mut self, lo: u32, hi: u32) {
        self.histogram.reserve_range(lo, hi);
    }

    /// The pair's figures with its duration distribution.
    pub(crate) fn pair_statistics(&self, operation_type: &str, strategy: &str) -> PairStatistics {
        let n = self.quality_count as f64;
        let quality_variance = (self.quality_count > 1).then(|| {
            ((self.quality_squares - self.quality_sum * self.quality_sum / n) / (n - 1.0)).max(0.0)
        });
        PairStatistics {
            operation_type: operation_type.to_owned(),
            strategy: strategy.to_owned(),
            statistics: self.stats(),
            duration_histogram: HistogramBuckets::from(&self.histogram),
            frame_time_histogram: HistogramBuckets::from(&self.frame_time),
            quality_variance,
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    pub(crate) fn successes(&self) -> u64 {
        self.count - self.failures - self.cancelled
    }

    /// Bytes held on the heap.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.histogram.heap_bytes() + self.frame_time.heap_bytes()
    }

    pub(crate) fn stats(&self) -> AggregateStats {
        let (min, max) = (self.min as f64 / 1e9, self.max as f64 / 1e9);
        // A quantile is its bucket's midpoint, clamped to the exact extremes.
        let quantile = |q: f64| {
            self.histogram
                .quantile(q)
                .map_or(max, |v| (v as f64 / 1e9).clamp(min, max))
        };
        let duration = (self.timed > 0).then(|| DurationStats {
            min_seconds: min,
            mean_seconds: seconds(self.nanos_sum) / self.timed as f64,
            max_seconds: max,
            p50_seconds: quantile(0.50),
            p95_seconds: quantile(0.95),
            p99_seconds: quantile(0.99),
            total_seconds: seconds(self.nanos_sum),
            buckets: self.buckets(),
        });
        AggregateStats {
            count: self.count,
            successes: self.successes(),
            failures: self.failures,
            cancelled: self.cancelled,
            exclusive_operations: self.exclusive,
            success_rate: rate(self.successes(), self.count),
            duration,
            frames_processed_total: self.frames,
            segments_total: self.segments,
            frames_per_second: (self.frames_nanos > 0)
                .then(|| self.frames as f64 / seconds(self.frames_nanos)),
            mean_quality_score: (self.quality_count > 0)
                .then(|| self.quality_sum / self.quality_count as f64),
            quality_samples: self.quality_count,
            resources: ResourceStats::new(
                std::array::from_fn(|i| self.figures[i].stats(FIGURES[i].over == Over::Total)),
                std::array::from_fn(|i| {
                    let (sum, frames) = self.per_frame[i];
                    (frames > 0).then(|| sum / frames as f64)
                }),
            ),
        }
    }

    /// Cumulative counts at [`DURATION_BUCKETS`] (exact: each operation was classified
    /// by its duration in nanoseconds when recorded).
    fn buckets(&self) -> Vec<Bucket> {
        let mut total = 0;
        DURATION_BUCKETS
            .iter()
            .zip(self.le)
            .map(|(le, n)| {
                total += n;
                Bucket {
                    le: *le,
                    count: total,
                }
            })
            .collect()
    }
}

pub(crate) fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(nanos: u64) -> Measured {
        Measured {
            nanos,
            success: true,
            timed: true,
            ..Measured::default()
        }
    }

    #[test]
    fn cancelled_operations_count_apart_and_stay_out_of_the_durations() {
        let mut a = Aggregate::default();
        a.record(&op(10_000_000));
        a.record(&Measured {
            nanos: 1_000,
            cancelled: true,
            ..Measured::default()
        });
        a.record(&Measured {
            nanos: 20_000_000,
            timed: true,
            ..Measured::default()
        });
        let s = a.stats();
        assert_eq!(
            (s.count, s.successes, s.failures, s.cancelled),
            (3, 1, 1, 1)
        );
        let d = s.duration.expect("durations");
        assert_eq!(d.min_seconds, 0.01, "the cancelled 1 µs is not a duration");
        assert_eq!(d.mean_seconds, 0.015);
    }

    #[test]
    fn bucket_bounds_are_inclusive_and_exact() {
        let mut a = Aggregate::default();
        for nanos in [1_000_000, 1_000_001, 600_000_000_000, 600_000_000_001] {
            a.record(&op(nanos));
        }
        let buckets = a.buckets();
        assert_eq!(buckets[0].count, 1, "1 ms is within le=0.001");
        assert_eq!(buckets[1].count, 2);
        assert_eq!(buckets[DURATION_BUCKETS.len() - 1].count, 3);
        assert_eq!(a.count(), 4, "the longest is only in +Inf");
    }

    #[test]
    fn one_operation_reports_its_own_duration_as_every_quantile() {
        let mut a = Aggregate::default();
        a.record(&op(600_079_000));
        let d = a.stats().duration.expect("one operation");
        assert_eq!(d.p50_seconds, 0.600079);
        assert_eq!(d.p99_seconds, 0.600079);
    }

    #[test]
    fn clear_keeps_the_histogram_allocation() {
        let mut a = Aggregate::default();
        a.record(&op(1_000));
        let held = a.heap_bytes();
        a.clear();
        assert_eq!(a.count(), 0);
        assert_eq!(a.heap_bytes(), held);
    }
}
