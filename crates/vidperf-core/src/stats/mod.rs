//! [`Stats`]: the in-process aggregator — per operation type and per strategy counts,
//! durations with quantiles, throughput, quality, resource peaks, recent activity,
//! trends and the operations running now.

mod aggregate;
mod snapshot;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use snapshot::*;

use crate::hash::FxHashMap;
use crate::ids::SpanId;
use crate::record::OperationRecord;
use crate::sink::Sink;
use crate::span::{ActiveOperation, FinishedSpan, OperationKey};
use aggregate::{Aggregate, rate};

/// Limits and windows of a [`Stats`] aggregator.
///
/// Every structure is bounded by one of these, so memory stays flat however many
/// operations run.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StatsConfig {
    /// Finished-operation records kept for export and `recent` (oldest purged first).
    /// Default 10,000.
    pub history_limit: usize,
    /// Distinct strategies, and distinct operation types, aggregated separately;
    /// beyond this, operations are counted under [`OVERFLOW_KEY`]. Default 64.
    pub max_keys: usize,
    /// Operations listed as active at most (the count stays exact). Default 10,000.
    pub max_active: usize,
    /// Durations kept for the duration trend. Default 100.
    pub trend_points: usize,
    /// Length of one success-rate window. Default 60 s.
    pub trend_window: Duration,
    /// Success-rate windows kept. Default 60.
    pub trend_windows: usize,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            history_limit: 10_000,
            max_keys: 64,
            max_active: 10_000,
            trend_points: 100,
            trend_window: Duration::from_secs(60),
            trend_windows: 60,
        }
    }
}

impl StatsConfig {
    /// Sets [`StatsConfig::history_limit`].
    #[must_use]
    pub fn with_history_limit(mut self, limit: usize) -> Self {
        self.history_limit = limit;
        self
    }

    /// Sets [`StatsConfig::max_keys`].
    #[must_use]
    pub fn with_max_keys(mut self, max: usize) -> Self {
        self.max_keys = max;
        self
    }

    /// Sets [`StatsConfig::max_active`].
    #[must_use]
    pub fn with_max_active(mut self, max: usize) -> Self {
        self.max_active = max;
        self
    }

    /// Sets [`StatsConfig::trend_points`].
    #[must_use]
    pub fn with_trend_points(mut self, points: usize) -> Self {
        self.trend_points = points;
        self
    }

    /// Sets the trend window length and how many windows are kept.
    #[must_use]
    pub fn with_trend_windows(mut self, window: Duration, windows: usize) -> Self {
        self.trend_window = window.max(Duration::from_secs(1));
        self.trend_windows = windows;
        self
    }
}

/// What a snapshot includes beyond the aggregates.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct SnapshotOptions {
    /// Recent operations listed (at most the history held). Default 10.
    pub recent: usize,
    /// Active operations listed, oldest first. Default 100.
    pub active: usize,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        Self {
            recent: 10,
            active: 100,
        }
    }
}

impl SnapshotOptions {
    /// Sets how many recent operations are listed.
    #[must_use]
    pub fn with_recent(mut self, recent: usize) -> Self {
        self.recent = recent;
        self
    }

    /// Sets how many active operations are listed.
    #[must_use]
    pub fn with_active(mut self, active: usize) -> Self {
        self.active = active;
        self
    }
}

/// The statistics sink. Thread-safe and memory-bounded; share it in an `Arc` between
/// the layer (as a [`Sink`]) and whoever reads [`Stats::snapshot`].
///
/// Recording takes one short lock with no calls out. Statistics count every operation
/// ever finished; only the per-operation history (for export and `recent`) is bounded
/// by [`StatsConfig::history_limit`].
#[derive(Debug)]
pub struct Stats {
    config: StatsConfig,
    started: Instant,
    started_at: SystemTime,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    totals: Aggregate,
    by_operation: Keyed,
    by_strategy: Keyed,
    history: History,
    purged: u64,
    trend: VecDeque<(SystemTime, OperationKey, f64, bool)>,
    windows: VecDeque<Window>,
    active: ActiveTable,
}

/// The per-operation records kept for export: a ring that, once full, overwrites its
/// oldest entry in place (reusing its allocations) rather than moving entries around.
#[derive(Debug, Default)]
struct History {
    ring: Vec<FinishedSpan>,
    /// Index of the oldest entry once the ring is full.
    head: usize,
}

impl History {
    /// Keeps `span`; true when the oldest record was purged to make room (or, with a
    /// limit of 0, when `span` itself was not kept).
    fn push(&mut self, span: &FinishedSpan, limit: usize) -> bool {
        if limit == 0 {
            return true;
        }
        if self.ring.len() < limit {
            self.ring.push(span.clone());
            return false;
        }
        if let Some(slot) = self.ring.get_mut(self.head) {
            slot.assign_from(span);
        }
        self.head = (self.head + 1) % self.ring.len().max(1);
        true
    }

    fn len(&self) -> usize {
        self.ring.len()
    }

    /// Oldest first.
    fn iter(&self) -> impl DoubleEndedIterator<Item = &FinishedSpan> {
        let (newer, older) = self.ring.split_at(self.head.min(self.ring.len()));
        older.iter().chain(newer.iter())
    }
}

#[derive(Debug, Default)]
struct Keyed {
    slots: Vec<(Arc<str>, Aggregate)>,
    index: FxHashMap<Arc<str>, usize>,
    overflow: Aggregate,
}

impl Keyed {
    fn record(&mut self, key: &Arc<str>, span: &FinishedSpan, max_keys: usize) {
        // Names are interned, so a pointer comparison usually finds the slot without
        // hashing; the map catches names that were not interned.
        let slot = match self.slots.iter().position(|(k, _)| Arc::ptr_eq(k, key)) {
            Some(i) => Some(i),
            None => self.index.get(key).copied(),
        };
        match slot {
            Some(i) => self.slots[i].1.record(span),
            None if self.slots.len() < max_keys => {
                let mut aggregate = Aggregate::default();
                aggregate.record(span);
                self.index.insert(key.clone(), self.slots.len());
                self.slots.push((key.clone(), aggregate));
            }
            None => self.overflow.record(span),
        }
    }

    fn stats(&self, only: Option<&str>) -> BTreeMap<String, AggregateStats> {
        let mut out: BTreeMap<String, AggregateStats> = self
            .slots
            .iter()
            .filter(|(k, _)| only.is_none_or(|o| &**k == o))
            .filter(|(k, _)| &**k != OVERFLOW_KEY)
            .map(|(k, a)| (k.to_string(), a.stats()))
            .collect();
        // A strategy literally named like the overflow key merges with the overflow.
        let mut overflow = self.overflow.clone();
        if let Some((_, named)) = self.slots.iter().find(|(k, _)| &**k == OVERFLOW_KEY) {
            overflow += named;
        }
        if overflow.count() > 0 && only.is_none_or(|o| o == OVERFLOW_KEY) {
            out.insert(OVERFLOW_KEY.to_owned(), overflow.stats());
        }
        out
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    index: u64,
    count: u64,
    successes: u64,
    duration_sum: f64,
}

#[derive(Debug, Default)]
struct ActiveTable {
    map: FxHashMap<SpanId, ActiveOperation>,
    untracked: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new(StatsConfig::default())
    }
}

impl Stats {
    /// An empty aggregator.
    pub fn new(config: StatsConfig) -> Self {
        Self {
            config,
            started: Instant::now(),
            started_at: SystemTime::now(),
            inner: Mutex::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &StatsConfig {
        &self.config
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds one finished operation. Ordinary spans (no operation key) are ignored.
    pub fn record(&self, span: &FinishedSpan) {
        if span.operation.is_some() {
            self.record_locked(span, &mut self.inner());
        }
    }

    fn record_locked(&self, span: &FinishedSpan, inner: &mut Inner) {
        let Some(key) = &span.operation else { return };
        let secs = span.duration.as_secs_f64();
        let window = window_index(span.end_time, self.config.trend_window);
        inner.totals.record(span);
        inner
            .by_operation
            .record(&key.operation_type, span, self.config.max_keys);
        inner
            .by_strategy
            .record(&key.strategy, span, self.config.max_keys);
        if inner.history.push(span, self.config.history_limit) {
            inner.purged += 1;
        }
        if self.config.trend_points > 0 {
            if inner.trend.len() >= self.config.trend_points {
                inner.trend.pop_front();
            }
            inner
                .trend
                .push_back((span.end_time, key.clone(), secs, span.is_success()));
        }
        record_window(
            &mut inner.windows,
            window,
            secs,
            span.is_success(),
            self.config.trend_windows,
        );
    }

    /// A point-in-time snapshot with the default options.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.snapshot_with(SnapshotOptions::default())
    }

    /// A point-in-time snapshot. Its cost depends on the number of keys and on the
    /// options, not on how many operations were recorded.
    pub fn snapshot_with(&self, options: SnapshotOptions) -> StatsSnapshot {
        self.filtered_snapshot(options, None, None)
    }

    /// A snapshot restricted to one strategy and/or one operation type. The summary and
    /// health stay global; the per-key maps, `recent`, trends and `active` are filtered.
    pub fn filtered_snapshot(
        &self,
        options: SnapshotOptions,
        strategy: Option<&str>,
        operation: Option<&str>,
    ) -> StatsSnapshot {
        self.snapshot_inner(options, strategy, operation, false).0
    }

    /// A snapshot and every record held, taken at the same instant, so that an export's
    /// statistics and its records agree.
    pub fn snapshot_and_records(
        &self,
        options: SnapshotOptions,
    ) -> (StatsSnapshot, Vec<OperationRecord>) {
        let (snapshot, spans) = self.snapshot_inner(options, None, None, true);
        (
            snapshot,
            spans
                .iter()
                .filter_map(OperationRecord::from_span)
                .collect(),
        )
    }

    fn snapshot_inner(
        &self,
        options: SnapshotOptions,
        strategy: Option<&str>,
        operation: Option<&str>,
        with_records: bool,
    ) -> (StatsSnapshot, Vec<FinishedSpan>) {
        let now = SystemTime::now();
        let matches = |key: &OperationKey| {
            strategy.is_none_or(|s| &*key.strategy == s)
                && operation.is_none_or(|o| &*key.operation_type == o)
        };
        let inner = self.inner();
        let (active, active_count, untracked) = {
            let table = &inner.active;
            let mut list: Vec<&ActiveOperation> =
                table.map.values().filter(|a| matches(&a.key)).collect();
            list.sort_by_key(|a| a.started);
            let list: Vec<ActiveOperationInfo> = list
                .into_iter()
                .take(options.active)
                .map(|a| ActiveOperationInfo {
                    operation_id: a.span_id.to_string(),
                    trace_id: a.trace_id.to_string(),
                    operation_type: a.key.operation_type.to_string(),
                    strategy: a.key.strategy.to_string(),
                    start_time: a.start_time,
                    elapsed_seconds: a.started.elapsed().as_secs_f64(),
                })
                .collect();
            (
                list,
                table.map.len() as u64 + table.untracked,
                table.untracked,
            )
        };
        let recent_spans: Vec<FinishedSpan> = inner
            .history
            .iter()
            .rev()
            .filter(|s| s.operation.as_ref().is_some_and(matches))
            .take(options.recent)
            .cloned()
            .collect();
        let recent_durations: Vec<TrendPoint> = inner
            .trend
            .iter()
            .filter(|(_, key, _, _)| matches(key))
            .map(|(end, key, secs, ok)| TrendPoint {
                end_time: *end,
                operation_type: key.operation_type.to_string(),
                strategy: key.strategy.to_string(),
                duration_seconds: *secs,
                success: *ok,
            })
            .collect();
        let window = self.config.trend_window;
        let windows = inner
            .windows
            .iter()
            .map(|w| WindowStats {
                start_time: UNIX_EPOCH + window * u32::try_from(w.index).unwrap_or(u32::MAX),
                count: w.count,
                successes: w.successes,
                failures: w.count - w.successes,
                success_rate: rate(w.successes, w.count),
                mean_duration_seconds: w.duration_sum / w.count.max(1) as f64,
            })
            .collect();
        let by_operation = inner.by_operation.stats(operation);
        let by_strategy = inner.by_strategy.stats(strategy);
        let summary = Summary {
            total_operations: inner.totals.count(),
            successes: inner.totals.successes(),
            failures: inner.totals.count() - inner.totals.successes(),
            success_rate: rate(inner.totals.successes(), inner.totals.count()),
            active_operations: active_count,
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            started_at: self.started_at,
            generated_at: now,
        };
        let health = Health {
            history_len: inner.history.len() as u64,
            history_limit: self.config.history_limit as u64,
            history_purged: inner.purged,
            strategy_overflow: inner.by_strategy.overflow.count(),
            operation_overflow: inner.by_operation.overflow.count(),
            active_untracked: untracked,
            sink_panics: 0,
            monitor: None,
            export: None,
        };
        let all: Vec<FinishedSpan> = if with_records {
            inner.history.iter().cloned().collect()
        } else {
            Vec::new()
        };
        drop(inner);
        let mut recent: Vec<OperationRecord> = recent_spans
            .iter()
            .filter_map(OperationRecord::from_span)
            .collect();
        recent.reverse();
        let snapshot = StatsSnapshot {
            summary,
            by_operation,
            by_strategy,
            recent,
            trends: Trends {
                window_seconds: window.as_secs(),
                recent_durations,
                windows,
            },
            active,
            health,
        };
        (snapshot, all)
    }

    /// Every record held (at most [`StatsConfig::history_limit`]), oldest first.
    pub fn records(&self) -> Vec<OperationRecord> {
        let spans: Vec<FinishedSpan> = self.inner().history.iter().cloned().collect();
        spans
            .iter()
            .filter_map(OperationRecord::from_span)
            .collect()
    }

    /// Forgets everything recorded so far (active operations stay listed).
    pub fn reset(&self) {
        let mut inner = self.inner();
        let active = std::mem::take(&mut inner.active);
        *inner = Inner {
            active,
            ..Inner::default()
        };
    }
}

fn window_index(time: SystemTime, window: Duration) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    since.as_secs() / window.as_secs().max(1)
}

fn record_window(windows: &mut VecDeque<Window>, index: u64, secs: f64, ok: bool, keep: usize) {
    if keep == 0 {
        return;
    }
    // Spans close out of order across threads: look from the newest window back.
    if let Some(w) = windows.iter_mut().rev().find(|w| w.index == index) {
        w.count += 1;
        w.successes += u64::from(ok);
        w.duration_sum += secs;
        return;
    }
    if windows.back().is_some_and(|w| w.index > index) {
        // Older than the newest window and not present: it was purged or skipped.
        let pos = windows.iter().position(|w| w.index > index).unwrap_or(0);
        if pos == 0 && windows.len() >= keep {
            return;
        }
        windows.insert(
            pos,
            Window {
                index,
                count: 1,
                successes: u64::from(ok),
                duration_sum: secs,
            },
        );
    } else {
        windows.push_back(Window {
            index,
            count: 1,
            successes: u64::from(ok),
            duration_sum: secs,
        });
    }
    while windows.len() > keep {
        windows.pop_front();
    }
}

impl Sink for Stats {
    fn on_finish(&self, span: &FinishedSpan) {
        if span.operation.is_none() {
            return;
        }
        let mut inner = self.inner();
        let table = &mut inner.active;
        if table.map.remove(&span.span_id).is_none() {
            table.untracked = table.untracked.saturating_sub(1);
        }
        self.record_locked(span, &mut inner);
    }

    fn on_start(&self, operation: &ActiveOperation) {
        let mut inner = self.inner();
        let table = &mut inner.active;
        if table.map.len() < self.config.max_active {
            table.map.insert(operation.span_id, operation.clone());
        } else {
            table.untracked += 1;
        }
    }
}
