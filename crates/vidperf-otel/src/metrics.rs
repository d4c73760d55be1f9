//! [`MetricsSink`]: per-strategy metrics from every operation — whatever the trace
//! sampler keeps — through the SDK's meter provider.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use vidperf_core::stats::OVERFLOW_KEY;
use vidperf_core::{FinishedSpan, Sink};

/// Distinct (operation, strategy) pairs given their own attributes; the rest are
/// reported under `__overflow__`, so every instrument's cardinality stays bounded.
pub const MAX_ATTRIBUTE_SETS: usize = 256;

/// Duration buckets, seconds (the same bounds as the statistics).
const DURATION_BOUNDS: [f64; 17] = vidperf_core::stats::DURATION_BUCKETS;

/// One operation's attribute sets: by strategy, then `[failure, success]`.
type ByStrategy = HashMap<Arc<str>, [Option<Attributes>; 2]>;

/// Attribute sets by operation, then strategy, then `[failure, success]`; looked up by
/// `&str`, so finding one clones nothing.
#[derive(Debug, Default)]
struct Seen {
    sets: HashMap<Arc<str>, ByStrategy>,
    len: usize,
}

/// An attribute set shared by every recording with the same key.
type Attributes = Arc<[KeyValue; 3]>;

fn attribute_set(operation: Arc<str>, strategy: Arc<str>, success: bool) -> Attributes {
    let outcome = if success { "success" } else { "failure" };
    Arc::new([
        KeyValue::new("vidperf.operation", Value::String(operation.into())),
        KeyValue::new("vidperf.strategy", Value::String(strategy.into())),
        KeyValue::new("vidperf.outcome", outcome),
    ])
}

/// The metrics side of the bridge.
#[derive(Debug)]
pub struct MetricsSink {
    provider: SdkMeterProvider,
    duration: Histogram<f64>,
    frames: Counter<u64>,
    fps: Histogram<f64>,
    quality: Histogram<f64>,
    memory: Histogram<u64>,
    gpu_memory: Histogram<u64>,
    cpu: Histogram<f64>,
    gpu: Histogram<f64>,
    /// Attribute sets already built, by (operation, strategy, success), at most
    /// `2 * MAX_ATTRIBUTE_SETS`: recording shares one attribute array instead of
    /// building one.
    seen: Mutex<Seen>,
    /// The `__overflow__` sets (failure, success) for keys past the cap.
    overflow: [Attributes; 2],
}

impl MetricsSink {
    /// Instruments on `provider` (whose readers decide where metrics go).
    pub fn new(provider: SdkMeterProvider) -> Self {
        let meter: Meter = provider.meter("vidperf");
        Self {
            duration: meter
                .f64_histogram("vidperf.operation.duration")
                .with_unit("s")
                .with_description(
                    "Duration of finished operations (its count is the number of operations).",
                )
                .with_boundaries(DURATION_BOUNDS.to_vec())
                .build(),
            frames: meter
                .u64_counter("vidperf.operation.frames")
                .with_unit("{frame}")
                .with_description("Frames processed by finished operations.")
                .build(),
            fps: meter
                .f64_histogram("vidperf.operation.fps")
                .with_unit("{frame}/s")
                .with_description("Frames per second of finished operations.")
                .build(),
            quality: meter
                .f64_histogram("vidperf.operation.quality")
                .with_unit("1")
                .with_description("Quality score (0-1) of finished operations.")
                .with_boundaries(vec![
                    0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99,
                ])
                .build(),
            memory: meter
                .u64_histogram("vidperf.process.memory.peak")
                .with_unit("By")
                .with_description("Peak process resident memory during an operation.")
                .build(),
            gpu_memory: meter
                .u64_histogram("vidperf.gpu.memory.peak")
                .with_unit("By")
                .with_description("Peak GPU memory used during an operation.")
                .build(),
            cpu: meter
                .f64_histogram("vidperf.process.cpu.utilization.peak")
                .with_unit("1")
                .with_description("Peak process CPU (1 = one core) during an operation.")
                .build(),
            gpu: meter
                .f64_histogram("vidperf.gpu.utilization.peak")
                .with_unit("1")
                .with_description("Peak GPU utilization (0-1) during an operation.")
                .build(),
            provider,
            seen: Mutex::new(Seen::default()),
            overflow: [false, true]
                .map(|success| attribute_set(OVERFLOW_KEY.into(), OVERFLOW_KEY.into(), success)),
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

    fn attributes(&self, span: &FinishedSpan) -> Option<Attributes> {
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
        let attrs = attribute_set(key.operation_type.clone(), key.strategy.clone(), success);
        seen.len += 1;
        seen.sets
            .entry(key.operation_type.clone())
            .or_default()
            .entry(key.strategy.clone())
            .or_default()[outcome] = Some(attrs.clone());
        Some(attrs)
    }
}

impl Sink for MetricsSink {
    fn on_finish(&self, span: &FinishedSpan) {
        let Some(attrs) = self.attributes(span) else {
            return;
        };
        let attrs: &[KeyValue] = &attrs[..];
        self.duration.record(span.duration.as_secs_f64(), attrs);
        if let Some(frames) = span.fields.frames_processed {
            self.frames.add(frames, attrs);
        }
        if let Some(fps) = span.fps() {
            self.fps.record(fps, attrs);
        }
        if let Some(q) = span.fields.quality_score {
            self.quality.record(q, attrs);
        }
        let r = &span.resources;
        if let Some(v) = r.process_memory_bytes {
            self.memory.record(v, attrs);
        }
        if let Some(v) = r.gpu_memory_bytes {
            self.gpu_memory.record(v, attrs);
        }
        if let Some(v) = r.process_cpu_utilization {
            self.cpu.record(v, attrs);
        }
        if let Some(v) = r.gpu_utilization {
            self.gpu.record(v, attrs);
        }
    }
}
