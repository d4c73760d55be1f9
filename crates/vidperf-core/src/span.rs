//! What the layer hands to sinks when a span closes.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tracing::Level;

use crate::fields::OperationFields;
use crate::figure::{Figure, Figures};
use crate::ids::{SpanId, TraceId};
use crate::propagation::{TraceFlags, TraceState};
use crate::value::FieldValue;

/// A span that has closed, with everything vidperf collected about it.
///
/// Built once per span at close and handed by reference to every [`Sink`](crate::Sink).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FinishedSpan {
    /// The trace this span belongs to.
    pub trace_id: TraceId,
    /// This span's id; for an operation, also its `operation_id`.
    pub span_id: SpanId,
    /// The nearest enclosing span vidperf tracked, or a remote parent (see
    /// [`SpanExt::set_parent`](crate::SpanExt::set_parent)), if any.
    pub parent_span_id: Option<SpanId>,
    /// Whether the parent lives in another process.
    pub parent_is_remote: bool,
    /// Links to other positions (`follows_from`, [`SpanExt::add_link`](crate::SpanExt::add_link)).
    pub links: Vec<(TraceId, SpanId)>,
    /// The span's name (for `#[instrument]`, the function name).
    pub name: &'static str,
    /// The span's target (usually its module path).
    pub target: &'static str,
    /// The span's level.
    pub level: Level,
    /// Operation type and strategy; `None` for an ordinary (non-operation) span.
    pub operation: Option<OperationKey>,
    /// Wall-clock start.
    pub start_time: SystemTime,
    /// Wall-clock end (start plus the monotonic duration).
    pub end_time: SystemTime,
    /// Duration measured on the monotonic clock.
    pub duration: Duration,
    /// The contract fields recorded on the span.
    pub fields: OperationFields,
    /// `Some(message)` when the operation failed.
    pub error: Option<String>,
    /// Every other field recorded on the span, in recording order.
    pub metadata: Vec<(Cow<'static, str>, FieldValue)>,
    /// Resource peaks over the span's life; every figure absent when not measured.
    pub resources: ResourcePeaks,
    /// Fields named `otel.*` (`otel.name`, `otel.kind`, `otel.status_code`, …): hints for
    /// trace exporters, not metadata.
    pub otel: Vec<(Cow<'static, str>, FieldValue)>,
    /// Events emitted inside the span, oldest first; collected only when a sink asks
    /// for every span ([`SpanInterest::All`](crate::SpanInterest::All)).
    pub events: Vec<SpanEvent>,
    /// Events not kept because the span had already collected
    /// [`MAX_EVENTS_PER_SPAN`](crate::MAX_EVENTS_PER_SPAN).
    pub dropped_events: u32,
    /// The sampling decision the span carried (and propagated), with the random trace
    /// id flag.
    pub flags: TraceFlags,
    /// The parent's sampled flag, when the span had a parent (local or remote).
    pub parent_sampled: Option<bool>,
    /// The span's `tracestate`.
    pub trace_state: TraceState,
    /// The first span of this trace in this process (the span's own id for a local
    /// root): what a tail sampler decides on.
    pub local_root: SpanId,
    /// The class of the failure ([`fields::ERROR_TYPE`](crate::fields::ERROR_TYPE)), set
    /// whenever [`error`](Self::error) is.
    pub error_type: Option<Cow<'static, str>>,
    /// Whether a tracked span was created under this one (a span without children has
    /// no descendant that can close after it).
    pub had_children: bool,
    /// Whether the operation was dropped before it completed (then
    /// [`error`](Self::error) is `cancelled`).
    pub cancelled: bool,
}

/// A `tracing` event emitted inside a span.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SpanEvent {
    /// When it was emitted.
    pub time: SystemTime,
    /// Its `message` field, or else the event's name.
    pub name: String,
    /// Its level.
    pub level: Level,
    /// Its target.
    pub target: &'static str,
    /// Its other fields.
    pub fields: Vec<(Cow<'static, str>, FieldValue)>,
}

impl FinishedSpan {
    /// An operation that ended at `end_time` after `duration`, with the given ids and
    /// every other figure absent (no parent, no fields, no resource peaks, succeeded).
    /// The public fields can then be set; for replaying operations into a
    /// [`Stats`](crate::Stats) or testing a [`Sink`](crate::Sink).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use vidperf_core::{FinishedSpan, OperationKey, SpanId, Stats, StatsConfig, TraceId};
    ///
    /// let key = OperationKey { operation_type: "enhancement".into(), strategy: "vsrm".into() };
    /// let ids = (TraceId::from_bytes([1; 16]), SpanId::from_bytes([2; 8]));
    /// let mut span = FinishedSpan::operation(key, ids, SystemTime::now(), Duration::from_millis(40));
    /// span.fields.frames_processed = Some(30);
    /// let stats = Stats::new(StatsConfig::default());
    /// stats.record(&span);
    /// assert_eq!(stats.snapshot().by_strategy["vsrm"].frames_processed_total, 30);
    /// ```
    pub fn operation(
        key: OperationKey,
        (trace_id, span_id): (TraceId, SpanId),
        end_time: SystemTime,
        duration: Duration,
    ) -> Self {
        Self {
            trace_id,
            span_id,
            parent_span_id: None,
            parent_is_remote: false,
            links: Vec::new(),
            name: "operation",
            target: "vidperf",
            level: Level::INFO,
            operation: Some(key),
            start_time: end_time.checked_sub(duration).unwrap_or(end_time),
            end_time,
            duration,
            fields: OperationFields::default(),
            error: None,
            metadata: Vec::new(),
            resources: ResourcePeaks::default(),
            otel: Vec::new(),
            events: Vec::new(),
            dropped_events: 0,
            flags: TraceFlags::SAMPLED,
            parent_sampled: None,
            trace_state: TraceState::new(),
            local_root: span_id,
            error_type: None,
            had_children: false,
            cancelled: false,
        }
    }

    /// Whether this span is the first of its trace in this process.
    pub fn is_local_root(&self) -> bool {
        self.local_root == self.span_id
    }

    /// Whether the operation succeeded (no error field, error event, panic or
    /// cancellation).
    pub fn is_success(&self) -> bool {
        self.error.is_none()
    }

    /// Whether it succeeded, failed, or was cancelled.
    pub fn outcome(&self) -> Outcome {
        match (&self.error, self.cancelled) {
            (None, _) => Outcome::Success,
            (Some(_), true) => Outcome::Cancelled,
            (Some(_), false) => Outcome::Failure,
        }
    }

    /// A total figure (energy) per frame processed, when both were recorded.
    pub fn per_frame(&self, figure: Figure) -> Option<f64> {
        let frames = self.fields.frames_processed.filter(|f| *f > 0)?;
        Some(self.resources.get(figure)? / frames as f64)
    }

    /// Frames per second: frames processed over the duration.
    pub fn fps(&self) -> Option<f64> {
        let frames = self.fields.frames_processed?;
        let secs = self.duration.as_secs_f64();
        (secs > 0.0).then(|| frames as f64 / secs)
    }
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// It completed without an error.
    Success,
    /// It recorded an error, or panicked.
    Failure,
    /// It was dropped before it completed (a timeout, an aborted task).
    Cancelled,
}

impl Outcome {
    /// Every outcome, in order.
    pub const ALL: [Self; 3] = [Self::Success, Self::Failure, Self::Cancelled];

    /// Its name on metrics (`vidperf.outcome`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What makes a span an operation: its type and strategy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OperationKey {
    /// The `operation` field, or the span name.
    pub operation_type: Arc<str>,
    /// The `strategy` field.
    pub strategy: Arc<str>,
}

/// The resource figures measured during a span's life.
///
/// A figure that could not be measured is absent, never zero. Concurrent operations
/// share one process and its GPUs, so these are process-level and device-level figures
/// during the span's window, not the span's own allocation. What each figure means, its
/// unit and its name in every output is in [`FIGURES`](crate::figure::FIGURES).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ResourcePeaks {
    /// Every figure, in base units (bytes, cores, ratios, watts, joules).
    pub figures: Figures,
    /// How many resource samples fell inside the span.
    pub samples: Option<u64>,
    /// Per-device figures, listed only on machines with more than one GPU (with one GPU
    /// the device figures above are that device's; with none, this is empty).
    pub devices: Vec<DevicePeaks>,
}

impl ResourcePeaks {
    /// Peaks with every figure absent.
    pub fn none() -> Self {
        Self::default()
    }

    /// A figure's value, when measured.
    pub fn get(&self, figure: Figure) -> Option<f64> {
        self.figures.get(figure)
    }

    /// A bytes figure as whole bytes, when measured.
    pub fn bytes(&self, figure: Figure) -> Option<u64> {
        self.figures.bytes(figure)
    }
}

/// The figures of one GPU during a span's life (those marked
/// [`per_device`](crate::figure::FigureDef::per_device) in the table).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct DevicePeaks {
    /// The NVML device index.
    pub index: u32,
    /// The device's figures, in base units.
    pub figures: Figures,
}

impl DevicePeaks {
    /// Figures of device `index`.
    pub fn new(index: u32, figures: Figures) -> Self {
        Self { index, figures }
    }

    /// A figure's value, when measured.
    pub fn get(&self, figure: Figure) -> Option<f64> {
        self.figures.get(figure)
    }
}

/// How far a running operation has got: the frames it has handled so far of those it
/// will handle, shared between the layer — which stores what the span records, in place,
/// without a lock — and the sinks that show running operations.
///
/// An operation has one once it records [`frames_total`](crate::fields::FRAMES_TOTAL);
/// its [`frames_processed`](crate::fields::FRAMES_PROCESSED), recorded as it goes, is the
/// work done. The layer hands it to [`Sink::on_progress`](crate::Sink::on_progress) once.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
    total: AtomicU64,
}

impl Progress {
    pub(crate) fn new(done: u64, total: u64) -> Self {
        Self {
            done: done.into(),
            total: total.into(),
        }
    }

    pub(crate) fn set_done(&self, done: u64) {
        self.done.store(done, Ordering::Relaxed);
    }

    pub(crate) fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }

    /// Frames handled so far (the last `frames_processed` recorded; 0 before any).
    pub fn frames_processed(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Frames the operation will handle (the last `frames_total` recorded).
    pub fn frames_total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// The share done, 0.0–1.0 (1.0 for a total of 0; over 1.0 is clamped).
    pub fn fraction(&self) -> f64 {
        match self.frames_total() {
            0 => 1.0,
            total => (self.frames_processed() as f64 / total as f64).min(1.0),
        }
    }
}

/// An operation that has started and not finished yet, as handed to
/// [`Sink::on_start`](crate::Sink::on_start) (borrowed: the layer copies nothing for it).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct ActiveOperation<'a> {
    /// The operation's span id.
    pub span_id: SpanId,
    /// The operation's trace id.
    pub trace_id: TraceId,
    /// The operation type as known when it started (the `operation` field, or the span
    /// name).
    pub operation_type: &'a Arc<str>,
    /// The strategy as known when it started.
    pub strategy: &'a Arc<str>,
    /// Wall-clock start.
    pub start_time: SystemTime,
    /// Monotonic start, for elapsed time.
    pub started: std::time::Instant,
    /// Its progress, when `frames_total` was recorded at creation (otherwise
    /// [`Sink::on_progress`](crate::Sink::on_progress) hands it over later, if ever).
    pub progress: Option<&'a Arc<Progress>>,
}
