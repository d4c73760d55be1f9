//! [`MetricsSink`]: per-strategy metrics from every operation — whatever the trace
//! sampler keeps — through the SDK's meter provider.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use vidperf_core::stats::OVERFLOW_KEY;
use vidperf_core::{FinishedSpan, Sink};

/// Distinct (operation, strategy) pairs given their own attributes; the rest are
/// reported under `__overflow__`, so every instrument's cardinality stays bounded.
pub const MAX_ATTRIBUTE_SETS: usize = 256;

/// Duration buckets, seconds (the same bounds as the statistics).
const DURATION_BOUNDS: [f64; 17] = vidperf_core::stats::DURATION_BUCKETS;

/// The metrics side of the bridge.
#[derive(Debug)]
pub struct MetricsSink {
    provider: SdkMeterProvider,
    duration: Histogram<f64>,
    operations: Counter<u64>,
    frames: Counter<u64>,
    fps: Histogram<f64>,
    quality: Histogram<f64>,
    memory: Histogram<u64>,
    gpu_memory: Histogram<u64>,
    cpu: Histogram<f64>,
    gpu: Histogram<f64>,
    seen: Mutex<HashSet<(Arc<str>, Arc<str>)>>,
}

impl MetricsSink {
    /// Instruments on `provider` (whose readers decide where metrics go).
    pub fn new(provider: SdkMeterProvider) -> Self {
        let meter: Meter = provider.meter("vidperf");
        Self {
            duration: meter
                .f64_histogram("vidperf.operation.duration")
                .with_unit("s")
                .with_description("Duration of finished operations.")
                .with_boundaries(DURATION_BOUNDS.to_vec())
                .build(),
            operations: meter
                .u64_counter("vidperf.operation.count")
                .with_unit("{operation}")
                .with_description("Finished operations.")
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
            seen: Mutex::new(HashSet::new()),
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

    fn attributes(&self, span: &FinishedSpan) -> Option<[KeyValue; 3]> {
        let key = span.operation.as_ref()?;
        let known = {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            let pair = (key.operation_type.clone(), key.strategy.clone());
            seen.contains(&pair) || (seen.len() < MAX_ATTRIBUTE_SETS && seen.insert(pair))
        };
        let (operation, strategy) = if known {
            (key.operation_type.to_string(), key.strategy.to_string())
        } else {
            (OVERFLOW_KEY.to_owned(), OVERFLOW_KEY.to_owned())
        };
        let outcome = if span.is_success() {
            "success"
        } else {
            "failure"
        };
        Some([
            KeyValue::new("vidperf.operation", operation),
            KeyValue::new("vidperf.strategy", strategy),
            KeyValue::new("vidperf.outcome", outcome),
        ])
    }
}

impl Sink for MetricsSink {
    fn on_finish(&self, span: &FinishedSpan) {
        let Some(attrs) = self.attributes(span) else {
            return;
        };
        self.duration.record(span.duration.as_secs_f64(), &attrs);
        self.operations.add(1, &attrs);
        if let Some(frames) = span.fields.frames_processed {
            self.frames.add(frames, &attrs);
        }
        if let Some(fps) = span.fps() {
            self.fps.record(fps, &attrs);
        }
        if let Some(q) = span.fields.quality_score {
            self.quality.record(q, &attrs);
        }
        let r = &span.resources;
        if let Some(v) = r.process_memory_bytes {
            self.memory.record(v, &attrs);
        }
        if let Some(v) = r.gpu_memory_bytes {
            self.gpu_memory.record(v, &attrs);
        }
        if let Some(v) = r.process_cpu_utilization {
            self.cpu.record(v, &attrs);
        }
        if let Some(v) = r.gpu_utilization {
            self.gpu.record(v, &attrs);
        }
    }
}
