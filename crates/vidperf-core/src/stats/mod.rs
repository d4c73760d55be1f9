//! [`Stats`]: the in-process aggregator and the single source of every figure vidperf
//! reports — per operation type and per strategy counts, durations with quantiles,
//! throughput, quality and resource peaks, cumulative and over time windows; recent
//! operations, trends, the operations running now, and the health of every part.
//!
//! Inside, figures are kept per (operation type, strategy) pair in base units
//! (nanoseconds, bytes, cores and ratios); the per-operation and per-strategy views are
//! merged from the pairs when a snapshot is taken, and MiB and percent appear only in
//! the JSON and CSV formats.

mod aggregate;
mod histogram;
mod history;
mod metrics;
mod overlap;
mod snapshot;
#[cfg(test)]
mod tests;
mod window;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use histogram::HistogramBuckets;
pub use snapshot::*;

use crate::hash::FxHashMap;
use crate::ids::SpanId;
use crate::record::{OperationRecord, Parts};
use crate::sink::Sink;
use crate::span::{ActiveOperation, FinishedSpan, OperationKey, Progress};
use aggregate::{Aggregate, Measured, rate};
use history::{History, Names, Row, SPILLED};
use window::{Ring, Slots};

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
    /// Distinct (operation type, strategy) pairs aggregated separately; beyond this,
    /// operations are counted under [`OVERFLOW_KEY`] in both views. Default 256.
    pub max_pairs: usize,
    /// Operations listed as active at most (the count stays exact). Default 10,000.
    pub max_active: usize,
    /// Durations listed in the duration trend (the newest operations held in the
    /// history). Default 100.
    pub trend_points: usize,
    /// Length of one success-rate window. Default 60 s.
    pub trend_window: Duration,
    /// Success-rate windows kept. Default 60.
    pub trend_windows: usize,
    /// Length of one time slot of the windowed statistics. Default 10 s.
    pub window_slot: Duration,
    /// Time slots kept: the longest window is `window_slot × window_slots`. Default 60
    /// (10 minutes).
    pub window_slots: usize,
    /// Whether cancelled operations' durations count in the duration figures
    /// (quantiles, mean, extremes, buckets). Default false: a request a timeout cut short
    /// would otherwise make the p95 look better exactly when the service fails.
    pub cancelled_durations: bool,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            history_limit: 10_000,
            max_keys: 64,
            max_pairs: 256,
            max_active: 10_000,
            trend_points: 100,
            trend_window: Duration::from_secs(60),
            trend_windows: 60,
            window_slot: Duration::from_secs(10),
            window_slots: 60,
            cancelled_durations: false,
        }
    }
}

impl StatsConfig {
    /// Sets [`StatsConfig::cancelled_durations`].
    #[must_use]
    pub fn with_cancelled_durations(mut self, include: bool) -> Self {
        self.cancelled_durations = include;
        self
    }

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

    /// Sets [`StatsConfig::max_pairs`].
    #[must_use]
    pub fn with_max_pairs(mut self, max: usize) -> Self {
        self.max_pairs = max;
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

    /// Sets the time slots of the windowed statistics: their length (at least 1 ms)
    /// and how many are kept.
    #[must_use]
    pub fn with_window_slots(mut self, slot: Duration, slots: usize) -> Self {
        self.window_slot = slot.max(Duration::from_millis(1));
        self.window_slots = slots;
        self
    }
}

/// What a snapshot includes beyond the aggregates, and over what time.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct SnapshotOptions {
    /// Recent operations listed (at most the history held). Default 10.
    pub recent: usize,
    /// Active operations listed, oldest first. Default 100.
    pub active: usize,
    /// Restricts the summary and the per-key figures to operations that ended in this
    /// last stretch of time (whole slots, see [`WindowInfo`]); at most
    /// [`Stats::max_window`], a longer window is cut to it. Default: none, everything
    /// since start.
    pub window: Option<Duration>,
    /// The instant the snapshot is taken. Default: the system clock. Set it to replay
    /// or to test time windows without waiting.
    pub now: Option<SystemTime>,
    /// Lists every (operation type, strategy) pair with its whole duration
    /// distribution ([`StatsSnapshot::pairs`]), as JSON exports do. Default: no.
    pub pairs: bool,
    /// Lists in `recent` only the operations that ran under this span (a request's
    /// enhancement and analysis, say). Default: any.
    pub parent: Option<crate::ids::SpanId>,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        Self {
            recent: 10,
            active: 100,
            window: None,
            now: None,
            pairs: false,
            parent: None,
        }
    }
}

impl SnapshotOptions {
    /// Lists in `recent` only the operations whose parent is `span` (the request they
    /// belonged to).
    #[must_use]
    pub fn with_parent(mut self, span: crate::ids::SpanId) -> Self {
        self.parent = Some(span);
        self
    }

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

    /// Restricts the figures to a time window.
    #[must_use]
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = Some(window);
        self
    }

    /// Takes the snapshot as of `now` instead of the system clock.
    #[must_use]
    pub fn at(mut self, now: SystemTime) -> Self {
        self.now = Some(now);
        self
    }

    /// Lists every pair with its duration distribution ([`StatsSnapshot::pairs`]).
    #[must_use]
    pub fn with_pairs(mut self) -> Self {
        self.pairs = true;
        self
    }
}

/// Why a time window cannot be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WindowError {
    /// The window is empty.
    #[error("a time window must be longer than zero")]
    Zero,
    /// The window is longer than the time slots kept.
    #[error("a time window is at most {max:?} (window_slot × window_slots)")]
    TooLong {
        /// The longest window.
        max: Duration,
    },
}

/// The statistics sink. Thread-safe and memory-bounded; share it in an `Arc` between
/// the layer (as a [`Sink`]) and whoever reads [`Stats::snapshot`].
///
/// Recording takes one short lock with no calls out: the operation is added to its
/// (operation type, strategy) pair's running aggregate and current time slot, and its
/// row is written over the oldest in the history ring. Statistics count every
/// operation ever finished; only the history (for export and `recent`) is bounded by
/// [`StatsConfig::history_limit`].
pub struct Stats {
    config: StatsConfig,
    slots: Slots,
    trend_window_nanos: u64,
    started: Instant,
    started_at: SystemTime,
    inner: Mutex<Inner>,
    sources: RwLock<Vec<Arc<dyn HealthSource>>>,
    /// Whether the trace sink offers the exemplars ([`Stats::offer_exemplar`]) rather
    /// than every sampled operation being one.
    exemplars_offered: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("config", &self.config)
            .field("started_at", &self.started_at)
            .finish_non_exhaustive()
    }
}

/// `span` as the exemplar of its duration (in seconds).
fn exemplar(span: &FinishedSpan, nanos: u64) -> crate::metrics::Exemplar {
    crate::metrics::Exemplar::new(
        nanos as f64 / 1e9,
        span.end_time,
        span.trace_id.to_bytes(),
        span.span_id.to_bytes(),
    )
}

/// A pair key part: a name id, or the overflow key.
const OVERFLOW: u32 = u32::MAX;

/// Where an operation's figures go, and its names.
#[derive(Clone, Copy, Debug)]
struct Resolved {
    pair: u32,
    operation: u32,
    strategy: u32,
    /// The pair cap was reached: the operation counts under the overflow pair.
    capped: bool,
}

#[derive(Debug)]
struct Pair {
    operation: u32,
    strategy: u32,
    total: Aggregate,
    /// What the metrics need since start (durations by outcome, buckets per figure).
    cumulative: metrics::Cumulative,
    ring: Ring,
}

/// Per-name admission into the per-key views.
#[derive(Debug, Default)]
struct Admitted {
    /// By name id: bit 0 admitted as an operation type, bit 1 as a strategy.
    flags: Vec<u8>,
    operations: usize,
    strategies: usize,
}

#[derive(Debug, Default)]
struct Inner {
    names: Names,
    /// Resolutions by the addresses of the names' shared strings (interned names hit
    /// here without hashing their text).
    by_address: FxHashMap<(usize, usize), Resolved>,
    admitted: Admitted,
    pairs: Vec<Pair>,
    pair_of: FxHashMap<(u32, u32), u32>,
    strategy_overflow: u64,
    operation_overflow: u64,
    pair_overflow: u64,
    window_late: u64,
    history: History,
    /// Operations recorded so far (the history holds the newest of them).
    recorded: u64,
    purged: u64,
    trend: VecDeque<TrendWindow>,
    active: ActiveTable,
    overlap: overlap::Overlap,
}

/// Resolutions cached by address at most.
const MAX_ADDRESSES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct TrendWindow {
    index: u64,
    count: u64,
    successes: u64,
    duration_sum: f64,
}

#[derive(Debug)]
struct ActiveRow {
    trace_id: crate::ids::TraceId,
    /// Its start's event number in the overlap tracker.
    overlap_seq: u64,
    /// Name ids; the names themselves when the table was full.
    names: (u32, u32),
    spilled: Option<Box<(Arc<str>, Arc<str>)>>,
    start_time: SystemTime,
    started: Instant,
    /// Kept current by the layer once the operation records `frames_total`.
    progress: Option<Arc<Progress>>,
}

impl ActiveRow {
    fn names<'a>(&'a self, names: &'a Names) -> (&'a str, &'a str) {
        let pick = |id: u32, spill: Option<&'a Arc<str>>| -> &'a str {
            match names.get(id) {
                Some(name) => name,
                None => spill.map_or("", |s| s),
            }
        };
        let spilled = self.spilled.as_deref();
        (
            pick(self.names.0, spilled.map(|s| &s.0)),
            pick(self.names.1, spilled.map(|s| &s.1)),
        )
    }
}

#[derive(Debug, Default)]
struct ActiveTable {
    map: FxHashMap<SpanId, ActiveRow>,
    untracked: u64,
}

fn address(name: &Arc<str>) -> usize {
    Arc::as_ptr(name).cast::<u8>() as usize
}

impl Inner {
    /// The pair and names of an operation, admitting new names and pairs while the
    /// caps allow.
    fn resolve(&mut self, key: &OperationKey, config: &StatsConfig) -> Resolved {
        let addresses = (address(&key.operation_type), address(&key.strategy));
        if let Some(found) = self.by_address.get(&addresses) {
            return *found;
        }
        let operation = self.names.resolve(&key.operation_type);
        let strategy = self.names.resolve(&key.strategy);
        let op_key = self.admit(operation, &key.operation_type, 0, config.max_keys);
        let strategy_key = self.admit(strategy, &key.strategy, 1, config.max_keys);
        let (pair, capped) = match self.pair_of.get(&(op_key, strategy_key)) {
            Some(pair) => (*pair, false),
            None if self.pairs.len() < config.max_pairs => {
                (self.add_pair(op_key, strategy_key), false)
            }
            None => (self.overflow_pair(), true),
        };
        let resolved = Resolved {
            pair,
            operation,
            strategy,
            capped,
        };
        // Cache only the table's own strings: their addresses cannot be reused while
        // the table holds them.
        let canonical = |id: u32, arc: &Arc<str>| {
            self.names
                .get(id)
                .is_some_and(|stored| Arc::ptr_eq(stored, arc))
        };
        if canonical(operation, &key.operation_type)
            && canonical(strategy, &key.strategy)
            && self.by_address.len() < MAX_ADDRESSES
        {
            self.by_address.insert(addresses, resolved);
        }
        resolved
    }

    /// The key part a name aggregates under in one view (`bit` 0: operation types, 1:
    /// strategies): the name, or the overflow key once `max` names are admitted.
    fn admit(&mut self, id: u32, text: &str, bit: u8, max: usize) -> u32 {
        if text == OVERFLOW_KEY {
            return OVERFLOW;
        }
        let a = &mut self.admitted;
        if id != SPILLED {
            let i = id as usize;
            if a.flags.len() <= i {
                a.flags.resize(i + 1, 0);
            }
            if a.flags[i] & (1 << bit) != 0 {
                return id;
            }
            let admitted = if bit == 0 {
                &mut a.operations
            } else {
                &mut a.strategies
            };
            if *admitted < max {
                *admitted += 1;
                a.flags[i] |= 1 << bit;
                return id;
            }
        }
        OVERFLOW
    }

    fn add_pair(&mut self, operation: u32, strategy: u32) -> u32 {
        let index = self.pairs.len() as u32;
        self.pairs.push(Pair {
            operation,
            strategy,
            total: Aggregate::default(),
            cumulative: metrics::Cumulative::default(),
            ring: Ring::default(),
        });
        self.pair_of.insert((operation, strategy), index);
        index
    }

    fn overflow_pair(&mut self) -> u32 {
        match self.pair_of.get(&(OVERFLOW, OVERFLOW)) {
            Some(pair) => *pair,
            None => self.add_pair(OVERFLOW, OVERFLOW),
        }
    }

    fn key_text(&self, key: u32) -> &str {
        if key == OVERFLOW {
            OVERFLOW_KEY
        } else {
            self.names.get(key).map_or(OVERFLOW_KEY, |s| s)
        }
    }

    fn record_trend(&mut self, index: u64, secs: f64, ok: bool, keep: usize) {
        let windows = &mut self.trend;
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
        let window = TrendWindow {
            index,
            count: 1,
            successes: u64::from(ok),
            duration_sum: secs,
        };
        if windows.back().is_some_and(|w| w.index > index) {
            // Older than the newest window and not present: it was purged or skipped.
            let pos = windows.iter().position(|w| w.index > index).unwrap_or(0);
            if pos == 0 && windows.len() >= keep {
                return;
            }
            windows.insert(pos, window);
        } else {
            windows.push_back(window);
        }
        while windows.len() > keep {
            windows.pop_front();
        }
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self::new(StatsConfig::default())
    }
}

/// How many pairs a key (operation type or strategy) has, and the union of their
/// duration histograms' ranges.
type KeyPairs = (u32, Option<(u32, u32)>);

/// The figures a snapshot is made of, read under the lock and turned into a
/// [`StatsSnapshot`] outside it.
struct Gathered {
    pairs: Vec<PairStatistics>,
    by_operation: BTreeMap<String, AggregateStats>,
    by_strategy: BTreeMap<String, AggregateStats>,
    /// Operations and successes over every pair (the summary needs no histogram).
    totals: (u64, u64),
    window: Option<WindowInfo>,
    recent: Vec<Row>,
    trend_rows: Vec<Row>,
    records: Vec<Row>,
    names: Vec<Arc<str>>,
    trend: Vec<TrendWindow>,
    active: Vec<ActiveOperationInfo>,
    active_count: u64,
    health: Health,
}

impl Stats {
    /// An empty aggregator.
    pub fn new(config: StatsConfig) -> Self {
        Self {
            slots: Slots::new(config.window_slot, config.window_slots),
            trend_window_nanos: config.trend_window.as_secs().max(1) * 1_000_000_000,
            config,
            started: Instant::now(),
            started_at: SystemTime::now(),
            inner: Mutex::default(),
            sources: RwLock::default(),
            exemplars_offered: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Exemplars come only from [`Stats::offer_exemplar`] from now on: a trace sink that
    /// decides after the operation ended which traces it exports (a tail sampler) says
    /// so, so that every exemplar's trace is one that was exported. Otherwise every
    /// operation whose trace is sampled is its bucket's newest exemplar.
    pub fn exemplars_from_offers(&self) {
        self.exemplars_offered
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Makes `span` (an operation recorded earlier) its duration bucket's exemplar: its
    /// trace was exported.
    pub fn offer_exemplar(&self, span: &FinishedSpan) {
        let Some(key) = &span.operation else { return };
        let nanos = u64::try_from(span.duration.as_nanos()).unwrap_or(u64::MAX);
        let bucket = aggregate::BOUNDS_NANOS.partition_point(|bound| *bound < nanos);
        let exemplar = exemplar(span, nanos);
        let mut inner = self.inner();
        let resolved = inner.resolve(key, &self.config);
        if let Some(pair) = inner.pairs.get_mut(resolved.pair as usize) {
            pair.cumulative.offer(
                metrics::outcome_index(span.is_success(), span.cancelled),
                bucket,
                exemplar,
            );
        }
    }

    /// The configuration.
    pub fn config(&self) -> &StatsConfig {
        &self.config
    }

    /// The longest time window a snapshot can cover: `window_slot × window_slots`.
    pub fn max_window(&self) -> Duration {
        self.slots.span()
    }

    /// Registers a source of health figures (a resource monitor, an exporter), asked
    /// at every snapshot.
    pub fn add_health_source(&self, source: impl HealthSource) {
        self.sources
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(source));
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds one finished operation (without touching the active table). Ordinary spans
    /// (no operation key) are ignored.
    pub fn record(&self, span: &FinishedSpan) {
        if span.operation.is_some() {
            let end = window::epoch_nanos(span.end_time);
            self.record_locked(span, end, &mut self.inner(), None);
        }
    }

    /// `end`: the span's end, nanoseconds since the Unix epoch (read once, outside the
    /// lock); `overlap`: how many operations ran alongside it at most, when tracked.
    fn record_locked(
        &self,
        span: &FinishedSpan,
        end: u64,
        inner: &mut Inner,
        overlap: Option<u32>,
    ) {
        let slot = self.slots.number_at(end);
        let Some(key) = &span.operation else { return };
        let r = &span.resources;
        let nanos = u64::try_from(span.duration.as_nanos()).unwrap_or(u64::MAX);
        let offered = self
            .exemplars_offered
            .load(std::sync::atomic::Ordering::Relaxed);
        let m = Measured {
            exemplar: (span.flags.is_sampled() && !offered).then(|| exemplar(span, nanos)),
            nanos,
            success: span.is_success(),
            cancelled: span.cancelled,
            timed: !span.cancelled || self.config.cancelled_durations,
            overlap,
            frames: span.fields.frames_processed,
            segments: span.fields.segments,
            quality: span.fields.quality_score,
            figures: r.figures,
        };
        let resolved = inner.resolve(key, &self.config);
        if let Some(pair) = inner.pairs.get_mut(resolved.pair as usize) {
            pair.total.record(&m);
            pair.cumulative.record(&m);
            if !pair.ring.record(&self.slots, slot, &m) {
                inner.window_late += 1;
            }
            // Counted under the overflow key though named otherwise.
            let moved = |k: u32, text: &str| u64::from(k == OVERFLOW && text != OVERFLOW_KEY);
            let (op, strategy) = (pair.operation, pair.strategy);
            inner.operation_overflow += moved(op, &key.operation_type);
            inner.strategy_overflow += moved(strategy, &key.strategy);
            inner.pair_overflow += u64::from(resolved.capped);
        }
        inner.recorded += 1;
        if inner.history.push(
            span,
            end,
            (resolved.operation, resolved.strategy),
            overlap,
            self.config.history_limit,
        ) {
            inner.purged += 1;
        }
        let trend_index = end / self.trend_window_nanos;
        inner.record_trend(
            trend_index,
            span.duration.as_secs_f64(),
            span.is_success(),
            self.config.trend_windows,
        );
    }

    /// A point-in-time snapshot of everything since start, with the default options.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.snapshot_with(SnapshotOptions::default())
    }

    /// A point-in-time snapshot. Its cost depends on the number of keys, the window and
    /// the options, not on how many operations were recorded.
    pub fn snapshot_with(&self, options: SnapshotOptions) -> StatsSnapshot {
        self.filtered_snapshot(options, None, None)
    }

    /// A snapshot of the operations that ended in the last `window` (whole time slots:
    /// see [`WindowInfo`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use vidperf_core::Stats;
    ///
    /// let stats = Stats::default();
    /// let last_5_min = stats.snapshot_window(Duration::from_secs(300))?;
    /// assert_eq!(last_5_min.summary.total_operations, 0);
    /// assert!(stats.snapshot_window(Duration::from_secs(3600)).is_err()); // over 10 min
    /// # Ok::<(), vidperf_core::stats::WindowError>(())
    /// ```
    pub fn snapshot_window(&self, window: Duration) -> Result<StatsSnapshot, WindowError> {
        self.check_window(window)?;
        Ok(self.snapshot_with(SnapshotOptions::default().with_window(window)))
    }

    /// Whether `window` can be answered: longer than zero, at most [`Stats::max_window`].
    pub fn check_window(&self, window: Duration) -> Result<(), WindowError> {
        if window.is_zero() {
            Err(WindowError::Zero)
        } else if window > self.max_window() {
            Err(WindowError::TooLong {
                max: self.max_window(),
            })
        } else {
            Ok(())
        }
    }

    /// A snapshot restricted to one strategy and/or one operation type. The summary and
    /// health stay global; the per-key views (from the pairs that match both filters),
    /// `recent`, trends and `active` are filtered.
    pub fn filtered_snapshot(
        &self,
        options: SnapshotOptions,
        strategy: Option<&str>,
        operation: Option<&str>,
    ) -> StatsSnapshot {
        let gathered = self.gather(&options, strategy, operation, false);
        self.assemble(gathered, &options)
    }

    /// Everything an export writes, taken at one instant: the snapshot and the history's
    /// rows (compact, about 180 bytes each), from which records are built one at a time
    /// while they are written — an export of 10,000 records never holds them all.
    pub fn export_view(&self) -> ExportView {
        let options = SnapshotOptions::default().with_pairs();
        let mut gathered = self.gather(&options, None, None, true);
        let rows = std::mem::take(&mut gathered.records);
        let names = gathered.names.clone();
        ExportView {
            snapshot: self.assemble(gathered, &options),
            rows,
            names,
            skip: 0,
        }
    }

    /// How many operations have been recorded so far: a watermark for
    /// [`Stats::records_since`].
    pub fn recorded(&self) -> u64 {
        self.inner().recorded
    }

    /// The operations recorded after `watermark` (a value of [`Stats::recorded`]), oldest
    /// first, at most `max` of them (the newest); also how many more there were (not
    /// listed, or already purged from the history), and the new watermark.
    pub fn records_since(&self, watermark: u64, max: usize) -> RecordsSince {
        let (rows, names, recorded) = {
            let inner = self.inner();
            let new = inner.recorded.saturating_sub(watermark);
            let take = usize::try_from(new).unwrap_or(usize::MAX).min(max);
            let mut rows: Vec<Row> = inner.history.iter().rev().take(take).cloned().collect();
            rows.reverse();
            (rows, inner.names.list().to_vec(), inner.recorded)
        };
        let new = recorded.saturating_sub(watermark);
        RecordsSince {
            omitted: new - rows.len() as u64,
            records: rows_to_records(&rows, &names),
            watermark: recorded,
        }
    }

    /// Every record held (at most [`StatsConfig::history_limit`]), oldest first.
    pub fn records(&self) -> Vec<OperationRecord> {
        let (rows, names) = {
            let inner = self.inner();
            let rows: Vec<Row> = inner.history.iter().cloned().collect();
            (rows, inner.names.list().to_vec())
        };
        rows_to_records(&rows, &names)
    }

    /// Forgets everything recorded so far (active operations stay listed).
    pub fn reset(&self) {
        let mut inner = self.inner();
        let active = std::mem::take(&mut inner.active);
        let names = std::mem::take(&mut inner.names);
        // Active rows refer to names by id: keep the table they index.
        *inner = Inner {
            active,
            names,
            ..Inner::default()
        };
    }

    /// Bytes the statistics hold on the heap (an estimate from capacities: the
    /// aggregates, time slots, name table and history buffers, not the text of
    /// metadata held in the history).
    fn heap_bytes(inner: &Inner) -> usize {
        let pairs: usize = inner
            .pairs
            .iter()
            .map(|p| std::mem::size_of::<Pair>() + p.total.heap_bytes() + p.ring.heap_bytes())
            .sum();
        pairs
            + inner.names.heap_bytes()
            + inner.history.heap_bytes()
            + inner.active.map.capacity() * (std::mem::size_of::<ActiveRow>() + 16)
    }

    /// Every metric family now: per (operation, strategy) pair since start — durations
    /// by outcome, frames, segments, frames per second, quality, a histogram per
    /// resource figure — then the process's (active operations, uptime, history,
    /// overflow, sink panics) and those of every registered part (the resource
    /// monitor's live gauges, the OTLP export's counts, alert states). What `/metrics`
    /// and the OTLP metrics export encode.
    pub fn metrics(&self) -> crate::metrics::Metrics {
        use crate::metrics::{Family, family};
        let time = SystemTime::now();
        let mut pairs = metrics::Families::new();
        let (health, active) = {
            let inner = self.inner();
            for pair in &inner.pairs {
                let (op, st) = (
                    inner.key_text(pair.operation),
                    inner.key_text(pair.strategy),
                );
                pair.cumulative.points(op, st, &mut pairs);
            }
            let active = inner.active.map.len() as u64 + inner.active.untracked;
            (self.base_health(&inner), active)
        };
        let mut health = health;
        let sources: Vec<Arc<dyn HealthSource>> = self
            .sources
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for source in &sources {
            source.report(&mut health);
        }
        let mut families: Vec<Family> = pairs.into_families().collect();
        let one = |def, value: f64| {
            let mut f = Family::new(def);
            f.push(Vec::new(), value);
            f
        };
        families.push(one(family::OPERATIONS_ACTIVE, active as f64));
        families.push(one(family::UPTIME, self.started.elapsed().as_secs_f64()));
        families.push(one(family::HISTORY_RECORDS, health.history_len as f64));
        families.push(one(family::HISTORY_PURGED, health.history_purged as f64));
        let mut overflow = Family::new(family::OVERFLOW);
        for (dimension, n) in [
            ("strategy", health.strategy_overflow),
            ("operation", health.operation_overflow),
            ("pair", health.pair_overflow),
        ] {
            overflow.push(vec![("dimension", dimension.into())], n as f64);
        }
        families.push(overflow);
        families.push(one(family::SINK_PANICS, health.sink_panics as f64));
        families.push(one(family::HEAP, health.heap_bytes as f64));
        for source in &sources {
            source.metrics(&mut families);
        }
        families.retain(|f| !f.points.is_empty());
        crate::metrics::Metrics {
            start_time: self.started_at,
            time,
            families,
        }
    }

    /// The statistics' own health figures.
    fn base_health(&self, inner: &Inner) -> Health {
        Health {
            history_len: inner.history.len() as u64,
            history_limit: self.config.history_limit as u64,
            history_purged: inner.purged,
            strategy_overflow: inner.strategy_overflow,
            operation_overflow: inner.operation_overflow,
            active_untracked: inner.active.untracked,
            pair_overflow: inner.pair_overflow,
            window_late: inner.window_late,
            heap_bytes: Self::heap_bytes(inner) as u64,
            ..Health::default()
        }
    }

    fn gather(
        &self,
        options: &SnapshotOptions,
        strategy: Option<&str>,
        operation: Option<&str>,
        with_records: bool,
    ) -> Gathered {
        let now = options.now.unwrap_or_else(SystemTime::now);
        let window = options.window.map(|length| {
            let length = length.min(self.max_window());
            let (first, last) = self.slots.window(length, now);
            (first, last, length)
        });
        let inner = self.inner();
        let matches = |(op, st): (&str, &str)| {
            strategy.is_none_or(|s| s == st) && operation.is_none_or(|o| o == op)
        };
        let row_matches = |row: &Row| matches(row.names(inner.names.list()));
        // How many pairs each operation type and strategy has: a key with one pair (the
        // usual strategy) takes its figures from that pair in place; several are merged.
        // (Counted by name: the overflow key may stand for several ids.) With each
        // key, the union of its pairs' duration ranges (a window's lie within them), so
        // a merged histogram is sized once.
        let mut pairs_of: HashMap<(bool, &str), KeyPairs> = HashMap::new();
        for pair in &inner.pairs {
            let range = pair.total.histogram_range();
            for key in [
                (true, inner.key_text(pair.operation)),
                (false, inner.key_text(pair.strategy)),
            ] {
                let (n, union) = pairs_of.entry(key).or_default();
                *n += 1;
                *union = match (*union, range) {
                    (Some((lo, hi)), Some((l, h))) => Some((lo.min(l), hi.max(h))),
                    (u, r) => u.or(r),
                };
            }
        }
        let mut totals = (0u64, 0u64);
        let mut pairs = Vec::new();
        let mut by_operation: BTreeMap<String, AggregateStats> = BTreeMap::new();
        let mut by_strategy: BTreeMap<String, AggregateStats> = BTreeMap::new();
        let mut merged: BTreeMap<(bool, &str), Aggregate> = BTreeMap::new();
        let mut scratch = Aggregate::default();
        for pair in &inner.pairs {
            let aggregate = match window {
                None => &pair.total,
                Some((first, last, _)) => {
                    scratch.clear();
                    pair.ring.merge_into(&mut scratch, first, last);
                    &scratch
                }
            };
            if aggregate.count() == 0 {
                continue;
            }
            totals.0 += aggregate.count();
            totals.1 += aggregate.successes();
            let (op, st) = (
                inner.key_text(pair.operation),
                inner.key_text(pair.strategy),
            );
            if operation.is_some_and(|o| o != op) || strategy.is_some_and(|s| s != st) {
                continue;
            }
            if options.pairs {
                pairs.push(aggregate.pair_statistics(op, st));
            }
            for (key, out) in [
                ((true, op), &mut by_operation),
                ((false, st), &mut by_strategy),
            ] {
                let (n, range) = pairs_of.get(&key).copied().unwrap_or_default();
                if n <= 1 {
                    out.insert(key.1.to_owned(), aggregate.stats());
                } else {
                    merged
                        .entry(key)
                        .or_insert_with(|| {
                            let mut a = Aggregate::default();
                            if let Some((lo, hi)) = range {
                                a.reserve_histogram_range(lo, hi);
                            }
                            a
                        })
                        .merge(aggregate);
                }
            }
        }
        for ((is_operation, text), aggregate) in merged {
            let out = if is_operation {
                &mut by_operation
            } else {
                &mut by_strategy
            };
            out.insert(text.to_owned(), aggregate.stats());
        }
        let under_parent = |r: &Row| {
            options
                .parent
                .is_none_or(|p| r.parent().is_some_and(|(id, _)| id == p))
        };
        let recent: Vec<Row> = inner
            .history
            .iter()
            .rev()
            .filter(|r| row_matches(r) && under_parent(r))
            .take(options.recent)
            .cloned()
            .collect();
        let trend_rows: Vec<Row> = inner
            .history
            .iter()
            .rev()
            .take(self.config.trend_points)
            .filter(|r| row_matches(r))
            .cloned()
            .collect();
        let records: Vec<Row> = if with_records {
            inner.history.iter().cloned().collect()
        } else {
            Vec::new()
        };
        let mut active: Vec<(&SpanId, &ActiveRow)> = inner
            .active
            .map
            .iter()
            .filter(|(_, a)| matches(a.names(&inner.names)))
            .collect();
        active.sort_by_key(|(_, a)| a.started);
        let active: Vec<ActiveOperationInfo> = active
            .into_iter()
            .take(options.active)
            .map(|(id, a)| {
                let (operation_type, strategy) = a.names(&inner.names);
                ActiveOperationInfo {
                    operation_id: id.to_string(),
                    trace_id: a.trace_id.to_string(),
                    operation_type: operation_type.to_owned(),
                    strategy: strategy.to_owned(),
                    start_time: a.start_time,
                    elapsed_seconds: a.started.elapsed().as_secs_f64(),
                    frames_processed: a.progress.as_ref().map(|p| p.frames_processed()),
                    frames_total: a.progress.as_ref().map(|p| p.frames_total()),
                }
            })
            .collect();
        let health = self.base_health(&inner);
        pairs.sort_by(|a: &PairStatistics, b| {
            (&a.operation_type, &a.strategy).cmp(&(&b.operation_type, &b.strategy))
        });
        Gathered {
            pairs,
            by_operation,
            by_strategy,
            totals,
            window: window.map(|(first, last, length)| WindowInfo {
                seconds: length.as_secs_f64(),
                start_time: self.slots.start(first),
                end_time: self.slots.start(last.saturating_add(1)),
                slot_seconds: self.config.window_slot.as_secs_f64(),
            }),
            recent,
            trend_rows,
            records,
            names: inner.names.list().to_vec(),
            trend: inner.trend.iter().copied().collect(),
            active_count: inner.active.map.len() as u64 + inner.active.untracked,
            active,
            health,
        }
    }

    /// The one place a [`StatsSnapshot`] is built.
    fn assemble(&self, g: Gathered, options: &SnapshotOptions) -> StatsSnapshot {
        let now = options.now.unwrap_or_else(SystemTime::now);
        let mut health = g.health;
        for source in self
            .sources
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            source.report(&mut health);
        }
        let mut recent = rows_to_records(&g.recent, &g.names);
        recent.reverse();
        let mut recent_durations: Vec<TrendPoint> = g
            .trend_rows
            .iter()
            .map(|row| {
                let (operation_type, strategy) = row.names(&g.names);
                TrendPoint {
                    end_time: row.end_time(),
                    operation_type: operation_type.to_owned(),
                    strategy: strategy.to_owned(),
                    duration_seconds: row.duration().as_secs_f64(),
                    success: row.is_success(),
                }
            })
            .collect();
        recent_durations.reverse();
        let window = self.config.trend_window;
        let windows = g
            .trend
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
        let (count, successes) = g.totals;
        StatsSnapshot {
            summary: Summary {
                total_operations: count,
                successes,
                failures: count - successes,
                success_rate: rate(successes, count),
                active_operations: g.active_count,
                uptime_seconds: self.started.elapsed().as_secs_f64(),
                started_at: self.started_at,
                generated_at: now,
            },
            window: g.window,
            by_operation: g.by_operation,
            by_strategy: g.by_strategy,
            recent,
            trends: Trends {
                window_seconds: window.as_secs(),
                recent_durations,
                windows,
            },
            active: g.active,
            health,
            pairs: g.pairs,
        }
    }
}

fn row_to_record(row: &Row, names: &[Arc<str>]) -> OperationRecord {
    let (operation_type, strategy) = row.names(names);
    OperationRecord::from_parts(&Parts {
        trace_id: row.trace_id,
        span_id: row.span_id,
        operation_type,
        strategy,
        start_time: row.start_time(),
        duration: row.duration(),
        fields: &row.fields(),
        error: row.error(),
        metadata: row.metadata(),
        resources: &row.resources(),
        cancelled: row.cancelled(),
        parent: row.parent(),
        overlap: row.overlap(),
    })
}

fn rows_to_records(rows: &[Row], names: &[Arc<str>]) -> Vec<OperationRecord> {
    rows.iter().map(|row| row_to_record(row, names)).collect()
}

/// What [`Stats::records_since`] found.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RecordsSince {
    /// The newest operations recorded after the watermark, oldest first.
    pub records: Vec<OperationRecord>,
    /// How many more were recorded after the watermark but are not listed.
    pub omitted: u64,
    /// The watermark to ask from next time.
    pub watermark: u64,
}

/// A snapshot and the history's rows, taken together ([`Stats::export_view`]): what an
/// export writes, detached from the live statistics.
#[derive(Debug)]
pub struct ExportView {
    snapshot: StatsSnapshot,
    rows: Vec<Row>,
    names: Vec<Arc<str>>,
    skip: usize,
}

impl ExportView {
    /// The statistics at that instant.
    pub fn snapshot(&self) -> &StatsSnapshot {
        &self.snapshot
    }

    /// How many records the view holds (after [`ExportView::keep_newest`]).
    pub fn len(&self) -> usize {
        self.rows.len() - self.skip
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps only the newest `n` records; returns how many were left out.
    pub fn keep_newest(&mut self, n: usize) -> usize {
        let omitted = self.len().saturating_sub(n);
        self.skip += omitted;
        omitted
    }

    /// The records, oldest first, each built when it is reached.
    pub fn records(&self) -> impl ExactSizeIterator<Item = OperationRecord> + '_ {
        self.rows[self.skip..]
            .iter()
            .map(|row| row_to_record(row, &self.names))
    }
}

impl Sink for Stats {
    fn on_finish(&self, span: &FinishedSpan) {
        if span.operation.is_none() {
            return;
        }
        let end = window::epoch_nanos(span.end_time);
        let mut inner = self.inner();
        let inner = &mut *inner;
        let overlap = match inner.active.map.remove(&span.span_id) {
            Some(row) => Some(inner.overlap.finish(row.overlap_seq)),
            None => {
                inner.active.untracked = inner.active.untracked.saturating_sub(1);
                inner.overlap.finish_untracked();
                None
            }
        };
        self.record_locked(span, end, inner, overlap);
    }

    fn on_start(&self, operation: &ActiveOperation<'_>) {
        let mut inner = self.inner();
        if inner.active.map.len() >= self.config.max_active {
            inner.active.untracked += 1;
            inner.overlap.start_untracked();
            return;
        }
        let overlap_seq = inner.overlap.start();
        let names = (
            inner.names.resolve(operation.operation_type),
            inner.names.resolve(operation.strategy),
        );
        let spilled = (names.0 == SPILLED || names.1 == SPILLED)
            .then(|| Box::new((operation.operation_type.clone(), operation.strategy.clone())));
        let row = ActiveRow {
            trace_id: operation.trace_id,
            overlap_seq,
            names,
            spilled,
            start_time: operation.start_time,
            started: operation.started,
            progress: operation.progress.cloned(),
        };
        inner.active.map.insert(operation.span_id, row);
    }

    fn on_progress(&self, operation: SpanId, progress: &Arc<Progress>) {
        if let Some(row) = self.inner().active.map.get_mut(&operation) {
            row.progress = Some(progress.clone());
        }
    }
}
