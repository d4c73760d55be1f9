//! [`TraceSink`]: every finished span, as the SDK's span data, into a batch span
//! processor and the OTLP exporter — with every span accounted for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry::trace::{SpanKind, TraceId};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, Sampler, SamplingDecision, ShouldSample, SpanData, SpanExporter,
    SpanProcessor,
};
use vidperf_core::{FinishedSpan, Sink, SpanInterest};

use crate::convert::span_data;

/// Spans counted on their way out; after a flush or shutdown,
/// `emitted == exported + failed + dropped`.
#[derive(Debug, Default)]
pub struct TraceCounters {
    emitted: AtomicU64,
    unsampled: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
}

/// A point-in-time copy of [`TraceCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct TraceReport {
    /// Spans handed to the batch processor (sampled in).
    pub emitted: u64,
    /// Spans the sampler left out (still counted in statistics and metrics).
    pub unsampled: u64,
    /// Spans the exporter delivered.
    pub exported: u64,
    /// Spans in batches the exporter failed to deliver (collector down, rejected).
    pub failed: u64,
    /// Spans lost without reaching the exporter: the queue was full, or shutdown came
    /// first. Exact after a flush or shutdown; in flight before.
    pub dropped: u64,
}

impl TraceCounters {
    /// The counts now.
    pub fn report(&self) -> TraceReport {
        let emitted = self.emitted.load(Ordering::Acquire);
        let exported = self.exported.load(Ordering::Acquire);
        let failed = self.failed.load(Ordering::Acquire);
        TraceReport {
            emitted,
            unsampled: self.unsampled.load(Ordering::Acquire),
            exported,
            failed,
            dropped: emitted.saturating_sub(exported + failed),
        }
    }
}

/// Wraps the real exporter to count what it delivered and what it failed.
#[derive(Debug)]
pub(crate) struct CountingExporter<E> {
    inner: E,
    counters: Arc<TraceCounters>,
}

impl<E> CountingExporter<E> {
    pub(crate) fn new(inner: E, counters: Arc<TraceCounters>) -> Self {
        Self { inner, counters }
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        let counter = if result.is_ok() {
            &self.counters.exported
        } else {
            &self.counters.failed
        };
        counter.fetch_add(n, Ordering::AcqRel);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The trace side of the bridge: a [`Sink`] for every span.
#[derive(Debug)]
pub struct TraceSink {
    processor: BatchSpanProcessor,
    sampler: Sampler,
    scope: InstrumentationScope,
    counters: Arc<TraceCounters>,
}

impl TraceSink {
    /// Spans go through `exporter` (wrapped to count) in a batch processor with
    /// `batch` settings; `sampler` decides per trace id.
    pub fn with_exporter<E: SpanExporter + 'static>(
        exporter: E,
        resource: &Resource,
        sampler: Sampler,
        batch: opentelemetry_sdk::trace::BatchConfig,
    ) -> Self {
        let counters = Arc::new(TraceCounters::default());
        let mut processor =
            BatchSpanProcessor::builder(CountingExporter::new(exporter, counters.clone()))
                .with_batch_config(batch)
                .build();
        processor.set_resource(resource);
        let scope = InstrumentationScope::builder("vidperf")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        Self {
            processor,
            sampler,
            scope,
            counters,
        }
    }

    /// What happened to the spans so far.
    pub fn counters(&self) -> &Arc<TraceCounters> {
        &self.counters
    }

    /// Exports everything queued.
    pub fn flush(&self) -> OTelSdkResult {
        self.processor.force_flush()
    }

    /// Flushes and stops the processor, waiting at most `timeout`.
    pub fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        self.processor.shutdown_with_timeout(timeout)
    }

    /// The sampler decides on the trace id alone, so every span of a trace gets the
    /// same decision wherever and whenever it closes.
    fn sampled(&self, span: &FinishedSpan) -> bool {
        let trace_id = TraceId::from_bytes(span.trace_id.to_bytes());
        let result =
            self.sampler
                .should_sample(None, trace_id, span.name, &SpanKind::Internal, &[], &[]);
        !matches!(result.decision, SamplingDecision::Drop)
    }
}

impl Sink for TraceSink {
    fn on_finish(&self, span: &FinishedSpan) {
        if !self.sampled(span) {
            self.counters.unsampled.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.counters.emitted.fetch_add(1, Ordering::AcqRel);
        self.processor.on_end(span_data(span, &self.scope));
    }

    fn interest(&self) -> SpanInterest {
        SpanInterest::All
    }
}
