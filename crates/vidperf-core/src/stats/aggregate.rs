//! One running aggregate: counts, exact min/mean/max, a duration histogram for
//! quantiles, work and quality sums, resource peaks. Merges with `+=`.

use std::ops::AddAssign;

use hdrhistogram::Histogram;

use super::snapshot::{
    AggregateStats, Bucket, DURATION_BUCKETS, DurationStats, PeakStats, ResourceStats,
};
use crate::span::FinishedSpan;

const MIB: f64 = 1024.0 * 1024.0;
/// Durations are kept in microseconds, from 1 µs to 24 h, to 2 significant digits
/// (quantiles within 1%). Longer operations count as 24 h in the quantiles only; the
/// exact max and mean are kept separately.
const HIST_MAX_MICROS: u64 = 24 * 3600 * 1_000_000;
const HIST_SIGFIGS: u8 = 2;

#[derive(Clone, Debug, Default)]
pub(crate) struct Aggregate {
    count: u64,
    successes: u64,
    duration_sum: f64,
    duration_min: f64,
    duration_max: f64,
    durations: Option<Histogram<u64>>,
    frames_total: u64,
    frames_seconds: f64,
    segments_total: u64,
    quality_sum: f64,
    quality_count: u64,
    memory: Peak,
    gpu_memory: Peak,
    cpu: Peak,
    gpu: Peak,
}

/// Max and mean of per-operation peaks.
#[derive(Clone, Copy, Debug, Default)]
struct Peak {
    max: f64,
    sum: f64,
    count: u64,
}

impl Peak {
    fn add(&mut self, value: Option<f64>) {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            self.max = if self.count == 0 { v } else { self.max.max(v) };
            self.sum += v;
            self.count += 1;
        }
    }

    fn stats(&self) -> Option<PeakStats> {
        (self.count > 0).then(|| PeakStats {
            max: self.max,
            mean: self.sum / self.count as f64,
            operations: self.count,
        })
    }
}

impl AddAssign<&Peak> for Peak {
    fn add_assign(&mut self, other: &Peak) {
        if other.count > 0 {
            self.max = if self.count == 0 {
                other.max
            } else {
                self.max.max(other.max)
            };
            self.sum += other.sum;
            self.count += other.count;
        }
    }
}

pub(crate) fn new_histogram() -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, HIST_MAX_MICROS, HIST_SIGFIGS).ok()
}

impl Aggregate {
    pub(crate) fn record(&mut self, span: &FinishedSpan) {
        let secs = span.duration.as_secs_f64();
        if self.count == 0 {
            self.duration_min = secs;
            self.duration_max = secs;
        } else {
            self.duration_min = self.duration_min.min(secs);
            self.duration_max = self.duration_max.max(secs);
        }
        self.count += 1;
        self.successes += u64::from(span.is_success());
        self.duration_sum += secs;
        if self.durations.is_none() {
            self.durations = new_histogram();
        }
        if let Some(h) = &mut self.durations {
            let micros = u64::try_from(span.duration.as_micros()).unwrap_or(u64::MAX);
            h.saturating_record(micros.clamp(1, HIST_MAX_MICROS));
        }
        if let Some(frames) = span.fields.frames_processed {
            self.frames_total = self.frames_total.saturating_add(frames);
            self.frames_seconds += secs;
        }
        if let Some(segments) = span.fields.segments {
            self.segments_total = self.segments_total.saturating_add(segments);
        }
        if let Some(q) = span.fields.quality_score.filter(|q| q.is_finite()) {
            self.quality_sum += q;
            self.quality_count += 1;
        }
        let r = &span.resources;
        self.memory
            .add(r.process_memory_bytes.map(|b| b as f64 / MIB));
        self.gpu_memory
            .add(r.gpu_memory_bytes.map(|b| b as f64 / MIB));
        self.cpu
            .add(r.process_cpu_utilization.map(crate::record::percent));
        self.gpu.add(r.gpu_utilization.map(crate::record::percent));
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    pub(crate) fn successes(&self) -> u64 {
        self.successes
    }

    pub(crate) fn stats(&self) -> AggregateStats {
        let quantile = |q: f64| {
            self.durations
                .as_ref()
                .filter(|h| !h.is_empty())
                .map(|h| h.value_at_quantile(q) as f64 / 1e6)
        };
        let duration = (self.count > 0).then(|| DurationStats {
            min_seconds: self.duration_min,
            mean_seconds: self.duration_sum / self.count as f64,
            max_seconds: self.duration_max,
            p50_seconds: quantile(0.50).unwrap_or(self.duration_min),
            p95_seconds: quantile(0.95).unwrap_or(self.duration_max),
            p99_seconds: quantile(0.99).unwrap_or(self.duration_max),
            total_seconds: self.duration_sum,
            buckets: self.buckets(),
        });
        AggregateStats {
            count: self.count,
            successes: self.successes,
            failures: self.count - self.successes,
            success_rate: rate(self.successes, self.count),
            duration,
            frames_processed_total: self.frames_total,
            segments_total: self.segments_total,
            frames_per_second: (self.frames_seconds > 0.0)
                .then(|| self.frames_total as f64 / self.frames_seconds),
            mean_quality_score: (self.quality_count > 0)
                .then(|| self.quality_sum / self.quality_count as f64),
            quality_samples: self.quality_count,
            resources: ResourceStats {
                peak_memory_mb: self.memory.stats(),
                peak_gpu_memory_mb: self.gpu_memory.stats(),
                cpu_utilization_percent: self.cpu.stats(),
                gpu_utilization_percent: self.gpu.stats(),
            },
        }
    }
}

impl Aggregate {
    /// Cumulative counts at [`DURATION_BUCKETS`], in one pass over the histogram's
    /// recorded values (cost independent of how many operations were recorded).
    fn buckets(&self) -> Vec<Bucket> {
        let mut counts = [0u64; DURATION_BUCKETS.len()];
        if let Some(h) = &self.durations {
            for v in h.iter_recorded() {
                // Classified by the HDR bucket's highest equivalent value (within 1%).
                let secs = v.value_iterated_to() as f64 / 1e6;
                if let Some(i) = DURATION_BUCKETS.iter().position(|le| secs <= *le) {
                    counts[i] += v.count_at_value();
                }
            }
        }
        let mut total = 0;
        DURATION_BUCKETS
            .iter()
            .zip(counts)
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

impl AddAssign<&Aggregate> for Aggregate {
    fn add_assign(&mut self, other: &Aggregate) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            self.duration_min = other.duration_min;
            self.duration_max = other.duration_max;
        } else {
            self.duration_min = self.duration_min.min(other.duration_min);
            self.duration_max = self.duration_max.max(other.duration_max);
        }
        self.count += other.count;
        self.successes += other.successes;
        self.duration_sum += other.duration_sum;
        match (&mut self.durations, &other.durations) {
            (Some(mine), Some(theirs)) => {
                // Same bounds on both sides, so `add` cannot fail.
                let _ = mine.add(theirs);
            }
            (mine @ None, Some(theirs)) => *mine = Some(theirs.clone()),
            _ => {}
        }
        self.frames_total = self.frames_total.saturating_add(other.frames_total);
        self.frames_seconds += other.frames_seconds;
        self.segments_total = self.segments_total.saturating_add(other.segments_total);
        self.quality_sum += other.quality_sum;
        self.quality_count += other.quality_count;
        self.memory += &other.memory;
        self.gpu_memory += &other.gpu_memory;
        self.cpu += &other.cpu;
        self.gpu += &other.gpu;
    }
}
