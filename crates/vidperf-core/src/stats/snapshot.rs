//! Point-in-time statistics: plain values, serialisable, detached from live state.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::figure::Figure;
use crate::record::OperationRecord;
pub use crate::wire::PeakStats;
use crate::wire::{self, rfc3339};

/// The key under which operations are counted once a cap on distinct strategies or
/// operation types is reached.
pub const OVERFLOW_KEY: &str = "__overflow__";

/// Everything the statistics know at one instant. Produced by
/// [`Stats::snapshot`](super::Stats::snapshot); owns its data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Totals over all operations (over the window, for a windowed snapshot).
    pub summary: Summary,
    /// The time window the summary and the per-key figures cover; absent for the
    /// cumulative statistics (everything since start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowInfo>,
    /// Per operation type (`enhancement`, `analysis`, …).
    pub by_operation: BTreeMap<String, AggregateStats>,
    /// Per strategy (`vsrm`, `seedvr2`, …).
    pub by_strategy: BTreeMap<String, AggregateStats>,
    /// The most recent finished operations, oldest first.
    pub recent: Vec<OperationRecord>,
    /// Recent durations and success rate over time.
    pub trends: Trends,
    /// Operations running now, oldest first.
    pub active: Vec<ActiveOperationInfo>,
    /// Bookkeeping: what was purged, overflowed or lost.
    pub health: Health,
    /// Every (operation type, strategy) pair with its whole duration distribution,
    /// when asked for ([`SnapshotOptions::with_pairs`](super::SnapshotOptions::with_pairs));
    /// JSON exports carry them (format 2), so a comparison does not depend on the
    /// records the history kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<PairStatistics>,
}

/// One (operation type, strategy) pair: its figures, its duration distribution and
/// the spread of its quality scores — what `vidperf compare` reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PairStatistics {
    /// The operation type.
    pub operation_type: String,
    /// The strategy.
    pub strategy: String,
    /// The pair's figures.
    pub statistics: AggregateStats,
    /// Every duration, bucketed: `[lowest nanoseconds, width in nanoseconds, count]` per
    /// non-empty bucket, lowest first (buckets 1/64 of an octave wide).
    pub duration_histogram: super::HistogramBuckets,
    /// Time per frame (duration over frames processed) of the operations that recorded
    /// frames, nanoseconds, bucketed the same way: a figure independent of clip length.
    #[serde(default)]
    pub frame_time_histogram: super::HistogramBuckets,
    /// Sample variance of the quality scores (absent with fewer than two).
    pub quality_variance: Option<f64>,
}

/// The time window of a windowed snapshot
/// ([`Stats::snapshot_window`](super::Stats::snapshot_window)).
///
/// Statistics are kept in fixed time slots ([`StatsConfig::window_slot`](super::StatsConfig),
/// aligned to the Unix epoch); a window is the whole slots that end after
/// `generated_at - seconds`, the current (partial) slot included, so it covers between
/// `seconds` and `seconds` plus one slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WindowInfo {
    /// The window asked for, seconds.
    pub seconds: f64,
    /// Start of the oldest slot included.
    #[serde(with = "rfc3339")]
    pub start_time: SystemTime,
    /// End of the newest slot included (in the future while that slot is current).
    #[serde(with = "rfc3339")]
    pub end_time: SystemTime,
    /// Length of one slot, seconds.
    pub slot_seconds: f64,
}

/// Totals over all operations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Summary {
    /// Finished operations.
    pub total_operations: u64,
    /// Finished operations that succeeded.
    pub successes: u64,
    /// Finished operations that failed.
    pub failures: u64,
    /// `successes / total_operations`; `None` before the first operation.
    pub success_rate: Option<f64>,
    /// Operations running now.
    pub active_operations: u64,
    /// Seconds since the statistics were created.
    pub uptime_seconds: f64,
    /// When the statistics were created.
    #[serde(with = "rfc3339")]
    pub started_at: SystemTime,
    /// When this snapshot was taken.
    #[serde(with = "rfc3339")]
    pub generated_at: SystemTime,
}

/// Statistics of one operation type or one strategy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AggregateStats {
    /// Finished operations.
    pub count: u64,
    /// Of which succeeded.
    pub successes: u64,
    /// Of which failed (an error or a panic).
    pub failures: u64,
    /// Of which were cancelled: dropped before they completed (a timeout, an abort).
    /// Neither successes nor failures; their durations are left out of `duration`
    /// unless [`StatsConfig::with_cancelled_durations`](crate::StatsConfig::with_cancelled_durations).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cancelled: u64,
    /// Of which overlapped no other operation (their resource peaks are theirs alone:
    /// each figure's `exclusive_max`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exclusive_operations: u64,
    /// `successes / count`.
    pub success_rate: Option<f64>,
    /// Duration figures; `None` when no operation is timed (none yet, or only
    /// cancelled ones).
    pub duration: Option<DurationStats>,
    /// Sum of `frames_processed`.
    pub frames_processed_total: u64,
    /// Sum of `segments`.
    pub segments_total: u64,
    /// Total frames over the total duration of the operations that recorded frames.
    pub frames_per_second: Option<f64>,
    /// Mean `quality_score` over the operations that recorded one.
    pub mean_quality_score: Option<f64>,
    /// How many operations recorded a quality score.
    pub quality_samples: u64,
    /// Peaks of the per-operation resource peaks.
    pub resources: ResourceStats,
}

/// Duration figures in seconds. Min, mean, max and total are exact; the quantiles come
/// from a histogram with 1 µs resolution and 1% relative precision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DurationStats {
    /// Shortest.
    pub min_seconds: f64,
    /// Mean.
    pub mean_seconds: f64,
    /// Longest.
    pub max_seconds: f64,
    /// Median.
    pub p50_seconds: f64,
    /// 95th percentile.
    pub p95_seconds: f64,
    /// 99th percentile.
    pub p99_seconds: f64,
    /// Sum of all durations.
    pub total_seconds: f64,
    /// Cumulative counts at the bounds in [`DURATION_BUCKETS`] (a Prometheus-style
    /// histogram; counts come from the 1%-precision histogram, so an operation within
    /// 1% of a bound may fall on either side of it). The `+Inf` bucket is `count`.
    pub buckets: Vec<Bucket>,
}

/// Upper bounds, in seconds, of the duration histogram buckets.
pub const DURATION_BUCKETS: [f64; 17] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0,
];

/// One cumulative histogram bucket.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Bucket {
    /// Upper bound, seconds (inclusive).
    pub le: f64,
    /// Operations that took at most `le`.
    pub count: u64,
}

/// Per-key view of the resource figures, in base units; each absent until measured.
///
/// Serialised (the statistics JSON, the JSON export) under each figure's key in
/// [`FIGURES`](crate::figure::FIGURES) in its wire unit — `peak_memory_mb` and
/// `peak_gpu_memory_mb` in MiB, `cpu_utilization_percent` and `gpu_utilization_percent`
/// in percent (100 = one core busy, or one GPU fully busy), rounded to 1e-4 — the 0.1.0
/// figures always (`null` until measured), later ones only once measured.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ResourceStats {
    figures: [Option<PeakStats>; Figure::COUNT],
    per_frame: [Option<f64>; Figure::COUNT],
}

impl ResourceStats {
    pub(crate) fn new(
        figures: [Option<PeakStats>; Figure::COUNT],
        per_frame: [Option<f64>; Figure::COUNT],
    ) -> Self {
        Self { figures, per_frame }
    }

    /// The highest and the mean of the operations' values of `figure`, when any
    /// operation measured it.
    pub fn get(&self, figure: Figure) -> Option<&PeakStats> {
        self.figures[figure.index()].as_ref()
    }

    /// A total figure (energy) over the frames of the operations that recorded both:
    /// joules per frame.
    pub fn per_frame(&self, figure: Figure) -> Option<f64> {
        self.per_frame[figure.index()]
    }

    /// The measured figures, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (Figure, &PeakStats)> + '_ {
        Figure::ALL
            .iter()
            .filter_map(|f| self.get(*f).map(|p| (*f, p)))
    }
}

impl Serialize for ResourceStats {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        wire::serialize_peaks((&self.figures, &self.per_frame), s)
    }
}

impl<'de> Deserialize<'de> for ResourceStats {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (figures, per_frame) = wire::deserialize_peaks(d)?;
        Ok(Self { figures, per_frame })
    }
}

/// Recent durations and success rate over time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Trends {
    /// Length of one window, seconds.
    pub window_seconds: u64,
    /// The durations of the last operations, oldest first.
    pub recent_durations: Vec<TrendPoint>,
    /// Counts and success rate per time window, oldest first (empty windows omitted).
    pub windows: Vec<WindowStats>,
}

/// One finished operation in the duration trend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TrendPoint {
    /// When it ended.
    #[serde(with = "rfc3339")]
    pub end_time: SystemTime,
    /// Operation type.
    pub operation_type: String,
    /// Strategy.
    pub strategy: String,
    /// Duration, seconds.
    pub duration_seconds: f64,
    /// Whether it succeeded.
    pub success: bool,
}

/// Operations that ended within one time window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WindowStats {
    /// Start of the window (aligned to the window length since the Unix epoch).
    #[serde(with = "rfc3339")]
    pub start_time: SystemTime,
    /// Operations that ended in the window.
    pub count: u64,
    /// Of which succeeded.
    pub successes: u64,
    /// Of which failed.
    pub failures: u64,
    /// `successes / count`.
    pub success_rate: Option<f64>,
    /// Mean duration, seconds.
    pub mean_duration_seconds: f64,
}

/// An operation running now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ActiveOperationInfo {
    /// Its span id.
    pub operation_id: String,
    /// Its trace id.
    pub trace_id: String,
    /// Operation type.
    pub operation_type: String,
    /// Strategy.
    pub strategy: String,
    /// When it started.
    #[serde(with = "rfc3339")]
    pub start_time: SystemTime,
    /// Seconds since it started.
    pub elapsed_seconds: f64,
    /// Frames handled so far, for an operation that recorded `frames_total`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames_processed: Option<u64>,
    /// Frames it will handle (`frames_total`), when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames_total: Option<u64>,
}

/// A source of health figures that [`Stats`](super::Stats) asks at every snapshot: the
/// layer (sink panics), the resource monitor, the OTLP export. Register one with
/// [`Stats::add_health_source`](super::Stats::add_health_source); the `vidperf`
/// builder registers its own.
///
/// `report` runs on the thread taking the snapshot, outside the statistics' lock; it
/// must be quick and must not take a snapshot itself.
pub trait HealthSource: Send + Sync + 'static {
    /// Fills in this source's part of `health`.
    fn report(&self, health: &mut Health);

    /// Adds this source's metric families (its counters and live gauges, named in its
    /// own table) for `/metrics` and the OTLP metrics. The default adds none.
    fn metrics(&self, families: &mut Vec<crate::metrics::Family>) {
        let _ = families;
    }
}

impl<T: HealthSource + ?Sized> HealthSource for std::sync::Arc<T> {
    fn report(&self, health: &mut Health) {
        (**self).report(health);
    }

    fn metrics(&self, families: &mut Vec<crate::metrics::Family>) {
        (**self).metrics(families);
    }
}

/// Bookkeeping figures: nothing here is ever silently lost. The statistics' own
/// figures are fields; every other part (the resource monitor, the OTLP export, the
/// alert rules) owns its health type and reports it here under its name, encoded as it
/// writes itself ([`Health::set_part`]); read one back typed with [`Health::part`].
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Health {
    /// Records held for export now.
    pub history_len: u64,
    /// Records held at most.
    pub history_limit: u64,
    /// Oldest records purged to respect the limit (still counted in every statistic).
    pub history_purged: u64,
    /// Operations counted under [`OVERFLOW_KEY`] in `by_strategy`.
    pub strategy_overflow: u64,
    /// Operations counted under [`OVERFLOW_KEY`] in `by_operation`.
    pub operation_overflow: u64,
    /// Operations running but not listed in `active` (over the active-table cap).
    pub active_untracked: u64,
    /// Operations counted under [`OVERFLOW_KEY`] in both maps because the cap on
    /// (operation type, strategy) pairs was reached.
    #[serde(default)]
    pub pair_overflow: u64,
    /// Operations left out of the time windows because they ended before the oldest
    /// slot held (the wall clock stepped back); still in the cumulative statistics.
    #[serde(default)]
    pub window_late: u64,
    /// Panics caught in sinks (each lost one span for that sink).
    pub sink_panics: u64,
    /// Bytes the statistics hold on the heap: an estimate from capacities (the
    /// aggregates, time slots, name table and history buffers, not the text of metadata
    /// held in the history). Bounded by the limits of [`StatsConfig`](super::StatsConfig).
    #[serde(default)]
    pub heap_bytes: u64,
    /// Every other part's health, by its name (`monitor`, `export`, `watch`).
    #[serde(flatten, deserialize_with = "parts")]
    pub(crate) parts: BTreeMap<String, serde_json::Value>,
}

/// The parts a 0.1.0 reader expects to find, `null` when absent.
const PARTS_SINCE_0_1: [&str; 2] = ["monitor", "export"];

fn parts<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, serde_json::Value>, D::Error> {
    let mut parts = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    parts.retain(|_, v| !v.is_null());
    Ok(parts)
}

impl Serialize for Health {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("history_len", &self.history_len)?;
        map.serialize_entry("history_limit", &self.history_limit)?;
        map.serialize_entry("history_purged", &self.history_purged)?;
        map.serialize_entry("strategy_overflow", &self.strategy_overflow)?;
        map.serialize_entry("operation_overflow", &self.operation_overflow)?;
        map.serialize_entry("active_untracked", &self.active_untracked)?;
        map.serialize_entry("pair_overflow", &self.pair_overflow)?;
        map.serialize_entry("window_late", &self.window_late)?;
        map.serialize_entry("sink_panics", &self.sink_panics)?;
        map.serialize_entry("heap_bytes", &self.heap_bytes)?;
        for name in PARTS_SINCE_0_1 {
            map.serialize_entry(name, &self.parts.get(name))?;
        }
        for (name, value) in &self.parts {
            if !PARTS_SINCE_0_1.contains(&name.as_str()) {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

impl Health {
    /// Reports part `name`'s health (a type of its own, encoded by its `Serialize`).
    /// A value that cannot be encoded is reported as its error message.
    pub fn set_part(&mut self, name: &str, health: &impl Serialize) {
        let value = serde_json::to_value(health)
            .unwrap_or_else(|e| serde_json::Value::String(format!("unencodable: {e}")));
        self.parts.insert(name.to_owned(), value);
    }

    /// Part `name`'s health read back as `T` (the part's own type), when reported.
    pub fn part<T: serde::de::DeserializeOwned>(&self, name: &str) -> Option<T> {
        serde_json::from_value(self.parts.get(name)?.clone()).ok()
    }

    /// Part `name`'s health as written, when reported.
    pub fn part_json(&self, name: &str) -> Option<&serde_json::Value> {
        self.parts.get(name)
    }

    /// The names of the parts that reported.
    pub fn parts(&self) -> impl Iterator<Item = &str> {
        self.parts.keys().map(String::as_str)
    }
}

// reason: serde's `skip_serializing_if` passes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}
