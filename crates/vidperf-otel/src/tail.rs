//! The tail sampler: which local traces are exported, decided when the trace's local
//! root closes, by what the trace did — a failure anywhere in it, an operation slower
//! than its (operation, strategy) pair's live quantile, an operation over a share of the
//! GPU's memory, an upstream that sampled the trace — plus a background fraction by
//! trace id. Spans that close before their local root wait in a bounded buffer;
//! statistics and metrics see every operation whatever is decided here.
//!
//! A tail decision is local: this process keeps or drops its own spans of a trace. The
//! sampled flag it propagates is the head sampler's (`OTEL_TRACES_SAMPLER`), made when
//! the trace started here; services downstream decide by that flag, not by what this
//! process keeps later. An upstream that sampled the trace is always honoured.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use vidperf_core::figure::Figure;
use vidperf_core::sampler::Sampler;
use vidperf_core::stats::HistogramBuckets;
use vidperf_core::{FinishedSpan, OperationKey, SnapshotOptions, SpanId, Stats, TraceId};

use crate::convert::attr;
use crate::encode;

/// How the tail sampler decides (`VIDPERF_TAIL_*`).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TailConfig {
    /// An operation slower than this quantile of its pair's durations over
    /// [`window`](Self::window) keeps its trace. Default 0.95.
    pub quantile: f64,
    /// The live window the quantile is taken over. Default 5 minutes (at most what
    /// the statistics keep).
    pub window: Duration,
    /// Until a pair has this many operations in the window, its traces are all kept.
    /// Default 20.
    pub min_samples: u64,
    /// An operation whose GPU memory peak is over this fraction of the device's memory
    /// keeps its trace. Default 0.9; `None` turns the rule off.
    pub vram_fraction: Option<f64>,
    /// The fraction of the other traces kept, by trace id (every process with the
    /// same fraction keeps the same traces). Default 0.01.
    pub background: f64,
    /// The most bytes of encoded spans one trace holds while its local root is open;
    /// past it the trace is decided early. Default 256 KiB.
    pub max_trace_bytes: usize,
    /// The most bytes all open traces hold; past it the oldest is decided early.
    /// Default 32 MiB.
    pub max_buffer_bytes: usize,
    /// A trace whose local root has not closed after this long is decided early.
    /// Default 60 s.
    pub max_trace_age: Duration,
}

impl Default for TailConfig {
    fn default() -> Self {
        Self {
            quantile: 0.95,
            window: Duration::from_secs(300),
            min_samples: 20,
            vram_fraction: Some(0.9),
            background: 0.01,
            max_trace_bytes: 256 * 1024,
            max_buffer_bytes: 32 * 1024 * 1024,
            max_trace_age: Duration::from_secs(60),
        }
    }
}

/// Why a trace was kept, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// A span of the trace failed.
    Error,
    /// The upstream service sampled the trace.
    Parent,
    /// An operation was slower than its pair's live quantile.
    Slow,
    /// An operation's GPU memory peak was over the configured share of the device.
    Resource,
    /// The operation's pair has too few operations in the window to judge.
    Warmup,
    /// The background fraction.
    Background,
}

impl Reason {
    /// Every reason, in order.
    pub const ALL: [Self; 6] = [
        Self::Error,
        Self::Parent,
        Self::Slow,
        Self::Resource,
        Self::Warmup,
        Self::Background,
    ];

    /// The reason as the span attribute `vidperf.sampling.reason` says it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Parent => "parent",
            Self::Slow => "slow",
            Self::Resource => "resource",
            Self::Warmup => "warmup",
            Self::Background => "background",
        }
    }
}

/// Why a trace was decided before its local root closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Early {
    /// It held [`TailConfig::max_trace_bytes`].
    TraceBytes,
    /// All open traces held [`TailConfig::max_buffer_bytes`]: it was the oldest.
    BufferBytes,
    /// Its root stayed open longer than [`TailConfig::max_trace_age`].
    Age,
    /// The export shut down with its root still open.
    Shutdown,
}

impl Early {
    /// Every early decision, in order.
    pub const ALL: [Self; 4] = [
        Self::TraceBytes,
        Self::BufferBytes,
        Self::Age,
        Self::Shutdown,
    ];

    /// Its name in health and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::TraceBytes => "trace_bytes",
            Self::BufferBytes => "buffer_bytes",
            Self::Age => "age",
            Self::Shutdown => "shutdown",
        }
    }
}

/// What the tail sampler did, in `health.export.tail`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TailHealth {
    /// Traces kept, by reason (`error`, `parent`, `slow`, `resource`, `warmup`,
    /// `background`).
    pub kept: std::collections::BTreeMap<String, u64>,
    /// Traces dropped.
    pub dropped_traces: u64,
    /// Spans of dropped traces (in statistics and metrics all the same).
    pub dropped_spans: u64,
    /// Traces decided before their local root closed, by why (`trace_bytes`,
    /// `buffer_bytes`, `age`, `shutdown`).
    pub early: std::collections::BTreeMap<String, u64>,
    /// Spans that closed after their trace was decided, and went its way.
    pub late_spans: u64,
    /// Traces whose local root is open with spans waiting.
    pub open_traces: u64,
    /// Bytes of encoded spans waiting.
    pub buffered_bytes: u64,
}

/// FxHash (rustc's): the pairs' names are short and hashed on every operation.
#[derive(Default)]
struct Fx(u64);

impl std::hash::Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
}

/// The pairs' live thresholds.
type Thresholds = HashMap<OperationKey, Threshold, std::hash::BuildHasherDefault<Fx>>;

/// One pair's live threshold.
#[derive(Clone, Copy, Debug)]
struct Threshold {
    seconds: f64,
    samples: u64,
}

/// A span waiting for its trace's decision.
#[derive(Debug)]
struct Buffered {
    bytes: Vec<u8>,
    exemplar: Option<Offer>,
}

/// An operation to offer the statistics as an exemplar if its trace is kept.
#[derive(Debug)]
struct Offer(Box<FinishedSpan>);

#[derive(Debug)]
struct Pending {
    spans: Vec<Buffered>,
    bytes: usize,
    reason: Option<Reason>,
    opened: Instant,
}

type TraceKey = (TraceId, SpanId);

/// The decisions kept for spans that close after their local root, per shard.
const DECIDED_PER_SHARD: usize = 4096;
const SHARDS: usize = 16;

#[derive(Debug, Default)]
struct Shard {
    pending: HashMap<TraceKey, Pending>,
    decided: HashMap<TraceKey, Option<Reason>>,
    order: VecDeque<TraceKey>,
}

impl Shard {
    fn decide(&mut self, key: TraceKey, reason: Option<Reason>) {
        if self.decided.insert(key, reason).is_none() {
            self.order.push_back(key);
            if self.order.len() > DECIDED_PER_SHARD
                && let Some(old) = self.order.pop_front()
            {
                self.decided.remove(&old);
            }
        }
    }
}

/// The running tail sampler.
pub(crate) struct Tail {
    config: TailConfig,
    stats: Arc<Stats>,
    gpu_memory_limit: Option<Arc<dyn Fn() -> Option<u64> + Send + Sync>>,
    thresholds: RwLock<Thresholds>,
    /// The device's memory in bytes, 0 while unknown.
    vram: AtomicU64,
    background: Sampler,
    shards: Vec<Mutex<Shard>>,
    /// Open traces in the order they opened (some since decided: skipped, and pruned
    /// every second), for evicting the oldest.
    opened: Mutex<VecDeque<TraceKey>>,
    kept: [AtomicU64; 6],
    early: [AtomicU64; 4],
    dropped_traces: AtomicU64,
    dropped_spans: AtomicU64,
    late: AtomicU64,
    buffered: AtomicUsize,
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The quantile `q` of a pair's histogram (the bucket's midpoint), in seconds.
fn quantile(h: &HistogramBuckets, q: f64) -> Option<f64> {
    let total: u64 = h.0.iter().map(|[_, _, n]| n).sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for [low, width, n] in &h.0 {
        seen += n;
        if seen >= rank {
            return Some((*low as f64 + *width as f64 / 2.0) / 1e9);
        }
    }
    None
}

/// Spans go where `emit` sends them (the export queue).
pub(crate) type Emit<'a> = &'a mut dyn FnMut(Vec<u8>);

impl Tail {
    pub(crate) fn new(
        config: TailConfig,
        stats: Arc<Stats>,
        gpu_memory_limit: Option<Arc<dyn Fn() -> Option<u64> + Send + Sync>>,
    ) -> Self {
        stats.exemplars_from_offers();
        let background = Sampler::TraceIdRatio(config.background.clamp(0.0, 1.0));
        Self {
            config,
            stats,
            gpu_memory_limit,
            thresholds: RwLock::default(),
            vram: AtomicU64::new(0),
            background,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            opened: Mutex::default(),
            kept: Default::default(),
            early: Default::default(),
            dropped_traces: AtomicU64::new(0),
            dropped_spans: AtomicU64::new(0),
            late: AtomicU64::new(0),
            buffered: AtomicUsize::new(0),
        }
    }

    fn shard(&self, key: &TraceKey) -> MutexGuard<'_, Shard> {
        // Span ids are random: their last byte spreads the traces.
        let i = usize::from(key.1.to_bytes()[7]) % SHARDS;
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// What the span alone says about keeping its trace.
    fn judge(&self, span: &FinishedSpan) -> Option<Reason> {
        if span.error.is_some() {
            return Some(Reason::Error);
        }
        let key = span.operation.as_ref()?;
        let mut reason = None;
        if let Some(fraction) = self.config.vram_fraction {
            let limit = self.vram.load(Ordering::Relaxed);
            if let Some(peak) = span.resources.bytes(Figure::GpuMemory)
                && limit > 0
                && peak as f64 > fraction * limit as f64
            {
                reason = Some(Reason::Resource);
            }
        }
        let thresholds = self
            .thresholds
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let by_time = match thresholds.get(key) {
            Some(t) if t.samples >= self.config.min_samples => {
                (span.duration.as_secs_f64() > t.seconds).then_some(Reason::Slow)
            }
            _ => Some(Reason::Warmup),
        };
        strongest(reason, by_time)
    }

    /// The span's own verdict combined with what the trace's other spans said, an
    /// upstream's decision, and the background fraction.
    fn verdict(&self, root: &FinishedSpan, others: Option<Reason>) -> Option<Reason> {
        let parent =
            (root.parent_is_remote && root.parent_sampled == Some(true)).then_some(Reason::Parent);
        strongest(strongest(self.judge(root), others), parent).or_else(|| {
            self.background
                .should_sample(root.trace_id, None)
                .then_some(Reason::Background)
        })
    }

    fn keep(&self, mut bytes: Vec<u8>, reason: Reason, offer: Option<Offer>, emit: Emit<'_>) {
        encode::append_attribute(&mut bytes, attr::SAMPLING_REASON, reason.name());
        emit(bytes);
        if let Some(Offer(span)) = offer {
            self.stats.offer_exemplar(&span);
        }
    }

    fn offer(span: &FinishedSpan) -> Option<Offer> {
        span.operation
            .is_some()
            .then(|| Offer(Box::new(span.clone())))
    }

    /// Counts the decision of a trace and sends its spans on.
    fn conclude(&self, pending: Option<Pending>, reason: Option<Reason>, emit: Emit<'_>) {
        let spans = pending.map(|p| {
            self.buffered.fetch_sub(p.bytes, Ordering::Relaxed);
            p.spans
        });
        match reason {
            Some(r) => {
                self.kept[r as usize].fetch_add(1, Ordering::Relaxed);
                for b in spans.into_iter().flatten() {
                    self.keep(b.bytes, r, b.exemplar, emit);
                }
            }
            None => {
                self.dropped_traces.fetch_add(1, Ordering::Relaxed);
                let n = spans.map_or(0, |s| s.len() as u64);
                self.dropped_spans.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Decides a trace before its root closed: kept when one of its spans gave a reason
    /// or it is in the background fraction.
    fn early(&self, key: TraceKey, pending: Pending, why: Early, emit: Emit<'_>) {
        self.early[why as usize].fetch_add(1, Ordering::Relaxed);
        let reason = pending.reason.or_else(|| {
            self.background
                .should_sample(key.0, None)
                .then_some(Reason::Background)
        });
        self.shard(&key).decide(key, reason);
        self.conclude(Some(pending), reason, emit);
    }

    /// A finished span: decided with its trace when it is the local root, sent the way
    /// of its trace when that was decided, buffered otherwise.
    pub(crate) fn on_finish(&self, span: &FinishedSpan, emit: Emit<'_>) {
        let key = (span.trace_id, span.local_root);
        if span.is_local_root() && !span.had_children {
            // A trace of one span: nothing waits for it and nothing can close after it.
            match self.verdict(span, None) {
                Some(r) => {
                    self.kept[r as usize].fetch_add(1, Ordering::Relaxed);
                    self.keep(encode::span(span), r, Self::offer(span), emit);
                }
                None => {
                    self.dropped_traces.fetch_add(1, Ordering::Relaxed);
                    self.dropped_spans.fetch_add(1, Ordering::Relaxed);
                }
            }
            return;
        }
        if span.is_local_root() {
            let (decided, pending) = {
                let mut shard = self.shard(&key);
                (shard.decided.get(&key).copied(), shard.pending.remove(&key))
            };
            let reason = match decided {
                Some(reason) => reason,
                None => {
                    let reason = self.verdict(span, pending.as_ref().and_then(|p| p.reason));
                    self.shard(&key).decide(key, reason);
                    reason
                }
            };
            // The decision first, so that a flat span that is dropped is never encoded.
            match reason {
                Some(r) => {
                    self.conclude(pending, Some(r), emit);
                    self.keep(encode::span(span), r, Self::offer(span), emit);
                }
                None => {
                    self.conclude(pending, None, emit);
                    self.dropped_spans.fetch_add(1, Ordering::Relaxed);
                }
            }
            return;
        }
        let decided = self.shard(&key).decided.get(&key).copied();
        if let Some(reason) = decided {
            self.late.fetch_add(1, Ordering::Relaxed);
            match reason {
                Some(r) => self.keep(encode::span(span), r, Self::offer(span), emit),
                None => {
                    self.dropped_spans.fetch_add(1, Ordering::Relaxed);
                }
            }
            return;
        }
        let judged = self.judge(span);
        let bytes = encode::span(span);
        let len = bytes.len();
        let buffered = Buffered {
            bytes,
            exemplar: Self::offer(span),
        };
        let mut opened = false;
        let full = {
            let mut shard = self.shard(&key);
            let pending = shard.pending.entry(key).or_insert_with(|| {
                opened = true;
                Pending {
                    spans: Vec::new(),
                    bytes: 0,
                    reason: None,
                    opened: Instant::now(),
                }
            });
            pending.spans.push(buffered);
            pending.bytes += len;
            pending.reason = strongest(pending.reason, judged);
            let full = pending.bytes > self.config.max_trace_bytes;
            full.then(|| shard.pending.remove(&key)).flatten()
        };
        // (Never under a shard's lock: the upkeep takes this one, then the shards'.)
        if opened {
            self.opened
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_back(key);
        }
        let total = self.buffered.fetch_add(len, Ordering::Relaxed) + len;
        if let Some(pending) = full {
            self.early(key, pending, Early::TraceBytes, emit);
        } else if total > self.config.max_buffer_bytes {
            self.evict_oldest(emit);
        }
    }

    /// Decides the oldest open trace early (the buffer is full).
    fn evict_oldest(&self, emit: Emit<'_>) {
        loop {
            let Some(key) = self
                .opened
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front()
            else {
                return;
            };
            let pending = self.shard(&key).pending.remove(&key);
            if let Some(pending) = pending {
                self.early(key, pending, Early::BufferBytes, emit);
                return;
            }
        }
    }

    /// Upkeep, every second: the pairs' thresholds from the live window, the GPU's
    /// memory, and the traces open too long decided early.
    pub(crate) fn tick(&self, emit: Emit<'_>) {
        let window = self.config.window.min(self.stats.max_window());
        let snapshot = self.stats.snapshot_with(
            SnapshotOptions::default()
                .with_window(window)
                .with_recent(0)
                .with_active(0)
                .with_pairs(),
        );
        let thresholds: Thresholds = snapshot
            .pairs
            .iter()
            .filter_map(|p| {
                let seconds = quantile(&p.duration_histogram, self.config.quantile)?;
                let key = OperationKey {
                    operation_type: p.operation_type.as_str().into(),
                    strategy: p.strategy.as_str().into(),
                };
                Some((
                    key,
                    Threshold {
                        seconds,
                        samples: p.statistics.count,
                    },
                ))
            })
            .collect();
        *self
            .thresholds
            .write()
            .unwrap_or_else(PoisonError::into_inner) = thresholds;
        if let Some(limit) = self.gpu_memory_limit.as_ref().and_then(|f| f()) {
            self.vram.store(limit, Ordering::Relaxed);
        }
        let now = Instant::now();
        let old: Vec<(TraceKey, Pending)> = self
            .shards
            .iter()
            .flat_map(|s| {
                let mut s = s.lock().unwrap_or_else(PoisonError::into_inner);
                let keys: Vec<TraceKey> = s
                    .pending
                    .iter()
                    .filter(|(_, p)| now.duration_since(p.opened) > self.config.max_trace_age)
                    .map(|(k, _)| *k)
                    .collect();
                keys.into_iter()
                    .filter_map(|k| s.pending.remove(&k).map(|p| (k, p)))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (key, pending) in old {
            self.early(key, pending, Early::Age, emit);
        }
        // Forget the decided traces in the opening order.
        let mut order = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        order.retain(|k| self.shard(k).pending.contains_key(k));
    }

    /// Decides every open trace now (the export is shutting down).
    pub(crate) fn drain(&self, emit: Emit<'_>) {
        let open: Vec<(TraceKey, Pending)> = self
            .shards
            .iter()
            .flat_map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pending
                    .drain()
                    .collect::<Vec<_>>()
            })
            .collect();
        for (key, pending) in open {
            self.early(key, pending, Early::Shutdown, emit);
        }
    }

    /// The counts now.
    pub(crate) fn health(&self) -> TailHealth {
        let open = self
            .shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pending
                    .len() as u64
            })
            .sum();
        TailHealth {
            kept: Reason::ALL
                .iter()
                .map(|r| {
                    (
                        r.name().to_owned(),
                        self.kept[*r as usize].load(Ordering::Relaxed),
                    )
                })
                .collect(),
            dropped_traces: self.dropped_traces.load(Ordering::Relaxed),
            dropped_spans: self.dropped_spans.load(Ordering::Relaxed),
            early: Early::ALL
                .iter()
                .map(|e| {
                    (
                        e.name().to_owned(),
                        self.early[*e as usize].load(Ordering::Relaxed),
                    )
                })
                .collect(),
            late_spans: self.late.load(Ordering::Relaxed),
            open_traces: open,
            buffered_bytes: self.buffered.load(Ordering::Relaxed) as u64,
        }
    }
}

fn strongest(a: Option<Reason>, b: Option<Reason>) -> Option<Reason> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quantile_is_the_bucket_holding_its_rank() {
        let h = HistogramBuckets(vec![[0, 10, 90], [100, 10, 9], [1_000, 100, 1]]);
        assert_eq!(quantile(&h, 0.5), Some(5e-9));
        assert_eq!(quantile(&h, 0.95), Some(105e-9));
        assert_eq!(quantile(&h, 1.0), Some(1050e-9));
        assert_eq!(quantile(&HistogramBuckets::default(), 0.5), None);
    }

    #[test]
    fn the_strongest_reason_wins() {
        assert_eq!(
            strongest(Some(Reason::Warmup), Some(Reason::Error)),
            Some(Reason::Error)
        );
        assert_eq!(strongest(None, Some(Reason::Slow)), Some(Reason::Slow));
        assert_eq!(strongest(None, None), None);
    }
}
