//! [`MetricsSink`]: per-strategy metrics from every operation — whatever the trace
//! sampler keeps — through the SDK's meter provider.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use opentelemetry::metrics::{
    BoundCounter, BoundHistogram, Counter, Histogram, Meter, MeterProvider as _,
};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use vidperf_core::figure::{FIGURES, Figure};
use vidperf_core::stats::OVERFLOW_KEY;
use vidperf_core::{FinishedSpan, Sink};

use crate::convert::attr;

/// Distinct (operation, strategy) pairs given their own attributes; the rest are
/// reported under `__overflow__`, so every instrument's cardinality stays bounded.
pub const MAX_ATTRIBUTE_SETS: usize = 256;

/// The operation instruments; each resource figure's histogram follows, named by its
/// attribute in [`FIGURES`].
const OPERATION_METRICS: [&str; 4] = [
    "vidperf.operation.duration",
    "vidperf.operation.frames",
    "vidperf.operation.fps",
    "vidperf.operation.quality",
];

/// The name of every instrument, in the order they are created.
pub fn metric_names() -> Vec<&'static str> {
    OPERATION_METRICS
        .into_iter()
        .chain(FIGURES.iter().map(|d| d.attribute))
        .collect()
}

/// Duration buckets, seconds (the same bounds as the statistics).
const DURATION_BOUNDS: [f64; 17] = vidperf_core::stats::DURATION_BUCKETS;

/// One operation's bound instruments: by strategy, then `[failure, success]`.
type ByStrategy = HashMap<Arc<str>, [Option<Arc<Bound>>; 2]>;

/// Bound instruments by operation, then strategy, then `[failure, success]`; looked up
/// by `&str`, so finding them clones nothing but one `Arc`.
#[derive(Debug, Default)]
struct Seen {
    sets: HashMap<Arc<str>, ByStrategy>,
    len: usize,
}

/// The instruments of one attribute set (operation, strategy, outcome), each bound at
/// its first recording: the SDK resolves the set once instead of hashing it on every
/// recording, and an instrument never recorded for the set exports nothing for it (no
/// zero-count series, no GPU histograms without a GPU).
#[derive(Debug)]
struct Bound {
    attrs: [KeyValue; 3],
    duration: OnceLock<BoundHistogram<f64>>,
    frames: OnceLock<BoundCounter<u64>>,
    fps: OnceLock<BoundHistogram<f64>>,
    quality: OnceLock<BoundHistogram<f64>>,
    figures: [OnceLock<BoundHistogram<f64>>; Figure::COUNT],
}

impl Bound {
    fn new(operation: Arc<str>, strategy: Arc<str>, success: bool) -> Self {
        let outcome = if success { "success" } else { "failure" };
        Self {
            attrs: [
                KeyValue::new(attr::OPERATION, Value::String(operation.into())),
                KeyValue::new(attr::STRATEGY, Value::String(strategy.into())),
                KeyValue::new(attr::OUTCOME, outcome),
            ],
            duration: OnceLock::new(),
            frames: OnceLock::new(),
            fps: OnceLock::new(),
            quality: OnceLock::new(),
            figures: [const { OnceLock::new() }; Figure::COUNT],
        }
    }
}

/// The instruments, unbound.
#[derive(Debug)]
struct Instruments {
    duration: Histogram<f64>,
    frames: Counter<u64>,
    fps: Histogram<f64>,
    quality: Histogram<f64>,
    /// One per resource figure, in [`FIGURES`] order.
    figures: [Histogram<f64>; Figure::COUNT],
}

/// The metrics side of the bridge.
#[derive(Debug)]
pub struct MetricsSink {
    provider: SdkMeterProvider,
    instruments: Instruments,
    /// Instruments bound so far, by (operation, strategy, success), at most
    /// `2 * MAX_ATTRIBUTE_SETS`.
    seen: Mutex<Seen>,
    /// Bound to the `__overflow__` sets (failure, success), for keys past the cap.
    overflow: [Arc<Bound>; 2],
}

impl MetricsSink {
    /// Instruments on `provider` (whose readers decide where metrics go).
    pub fn new(provider: SdkMeterProvider) -> Self {
        let meter: Meter = provider.meter("vidperf");
        let instruments = Instruments {
            duration: meter
                .f64_histogram(OPERATION_METRICS[0])
                .with_unit("s")
                .with_description(
                    "Duration of finished operations (its count is the number of operations).",
                )
                .with_boundaries(DURATION_BOUNDS.to_vec())
                .build(),
            frames: meter
                .u64_counter(OPERATION_METRICS[1])
                .with_unit("{frame}")
                .with_description("Frames processed by finished operations.")
                .build(),
            fps: meter
                .f64_histogram(OPERATION_METRICS[2])
                .with_unit("{frame}/s")
                .with_description("Frames per second of finished operations.")
                .build(),
            quality: meter
                .f64_histogram(OPERATION_METRICS[3])
                .with_unit("1")
                .with_description("Quality score (0-1) of finished operations.")
                .with_boundaries(vec![
                    0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99,
                ])
                .build(),
            figures: FIGURES.map(|def| {
                meter
                    .f64_histogram(def.attribute)
                    .with_unit(def.unit.otel())
                    .with_description(def.doc)
                    .with_boundaries(def.bounds.to_vec())
                    .build()
            }),
        };
        let overflow = [false, true].map(|success| {
            Arc::new(Bound::new(
                OVERFLOW_KEY.into(),
                OVERFLOW_KEY.into(),
                success,
            ))
        });
        Self {
            provider,
            instruments,
            seen: Mutex::new(Seen::default()),
            overflow,
        }
    }
    /// Exports what the instruments hold now.
    pub fn flush(&self) -> OTelSdkResult {
        self.provider.force_flush()
    }

    /// Flushes and stops the meter provider.
    pub fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        self.provider.shutdown_with_timeout(timeout)
    }

    fn bound(&self, span: &FinishedSpan) -> Option<Arc<Bound>> {
        let key = span.operation.as_ref()?;
        let success = span.is_success();
        let outcome = usize::from(success);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(attrs) = seen
            .sets
            .get(&*key.operation_type)
            .and_then(|by_strategy| by_strategy.get(&*key.strategy))
            .and_then(|outcomes| outcomes[outcome].as_ref())
        {
            return Some(attrs.clone());
        }
        if seen.len >= 2 * MAX_ATTRIBUTE_SETS {
            return Some(self.overflow[outcome].clone());
        }
        let bound = Arc::new(Bound::new(
            key.operation_type.clone(),
            key.strategy.clone(),
            success,
        ));
        seen.len += 1;
        seen.sets
            .entry(key.operation_type.clone())
            .or_default()
            .entry(key.strategy.clone())
            .or_default()[outcome] = Some(bound.clone());
        Some(bound)
    }
}

impl Sink for MetricsSink {
    fn on_finish(&self, span: &FinishedSpan) {
        let Some(b) = self.bound(span) else {
            return;
        };
        // Binding (at an instrument's first recording for the set) resolves the set in
        // the SDK: its lock, no user code, no I/O.
        let i = &self.instruments;
        let a = &b.attrs;
        b.duration
            .get_or_init(|| i.duration.bind(a))
            .record(span.duration.as_secs_f64());
        if let Some(frames) = span.fields.frames_processed {
            b.frames.get_or_init(|| i.frames.bind(a)).add(frames);
        }
        if let Some(fps) = span.fps() {
            b.fps.get_or_init(|| i.fps.bind(a)).record(fps);
        }
        if let Some(q) = span.fields.quality_score {
            b.quality.get_or_init(|| i.quality.bind(a)).record(q);
        }
        for (figure, v) in span.resources.figures.iter() {
            let (bound, instrument) = (&b.figures[figure.index()], &i.figures[figure.index()]);
            bound.get_or_init(|| instrument.bind(a)).record(v);
        }
    }
}
