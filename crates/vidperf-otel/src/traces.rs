//! [`TraceSink`]: every finished span, as the SDK's span data, into a batch span
//! processor and the OTLP exporter — with every span accounted for.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry::trace::{SpanKind, TraceId};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SamplingDecision, ShouldSample, SpanData,
    SpanExporter, SpanProcessor,
};
use vidperf_core::metrics::Family;
use vidperf_core::stats::{Health, HealthSource};

use crate::health::ExportHealth;
use vidperf_core::{FinishedSpan, Sink, SpanInterest};

use crate::convert::span_data;

/// The batch span processor's queue size unless configured (the SDK's default).
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 2048;

/// Spans counted on their way out: every report adds up
/// (`emitted == exported + failed + dropped + queued`), every count but `queued` only
/// grows, and `queued` is 0 after a flush or shutdown. (One exception: a batch the
/// exporter finishes after shutdown stopped waiting for it moves from
/// `dropped_shutdown` to `exported` or `failed`.)
///
/// The queue is bounded here rather than inside the SDK's batch processor, which
/// drops spans that find its channel full without saying how many: a span is admitted
/// only while fewer than the queue size are in flight (queued, or in a batch being
/// exported), so the processor's own channel, of the same size, never overflows and
/// every drop is counted with its reason.
#[derive(Debug)]
pub struct TraceCounters {
    emitted: AtomicU64,
    unsampled: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_after_shutdown: AtomicU64,
    /// Admitted and not yet exported or failed: the queue's occupancy, for admission
    /// (reports derive it from the other counts, so that they add up).
    in_flight: AtomicU64,
    capacity: u64,
    shut_down: AtomicBool,
}

impl TraceCounters {
    fn new(capacity: usize) -> Self {
        Self {
            emitted: AtomicU64::new(0),
            unsampled: AtomicU64::new(0),
            exported: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped_queue_full: AtomicU64::new(0),
            dropped_after_shutdown: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            capacity: capacity.max(1) as u64,
            shut_down: AtomicBool::new(false),
        }
    }

    /// The counts now.
    pub fn report(&self) -> ExportHealth {
        let shut_down = self.shut_down.load(Ordering::Acquire);
        let exported = self.exported.load(Ordering::Acquire);
        let failed = self.failed.load(Ordering::Acquire);
        let dropped_queue_full = self.dropped_queue_full.load(Ordering::Acquire);
        let after_shutdown = self.dropped_after_shutdown.load(Ordering::Acquire);
        // Read last: a span is counted as emitted before any of the counts above, so
        // the rest is what is in flight, and the report adds up even while spans move.
        let emitted = self.emitted.load(Ordering::Acquire);
        let in_flight =
            emitted.saturating_sub(exported + failed + dropped_queue_full + after_shutdown);
        // After shutdown, what is still in flight will not be exported: a batch the
        // exporter finishes later moves from here to `exported` or `failed`.
        let (queued, unfinished) = if shut_down {
            (0, in_flight)
        } else {
            (in_flight, 0)
        };
        let dropped_shutdown = after_shutdown + unfinished;
        ExportHealth::new(
            emitted,
            self.unsampled.load(Ordering::Acquire),
            exported,
            failed,
        )
        .with_dropped(dropped_queue_full, dropped_shutdown)
        .with_queued(queued)
    }

    /// Takes a place in the queue for one span, or counts it dropped.
    fn admit(&self) -> bool {
        self.emitted.fetch_add(1, Ordering::AcqRel);
        if self.shut_down.load(Ordering::Acquire) {
            self.dropped_after_shutdown.fetch_add(1, Ordering::AcqRel);
            return false;
        }
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.dropped_queue_full.fetch_add(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// A batch of `n` spans left the queue, delivered or not.
    fn finished(&self, n: u64, delivered: bool) {
        let counter = if delivered {
            &self.exported
        } else {
            &self.failed
        };
        counter.fetch_add(n, Ordering::AcqRel);
        self.in_flight.fetch_sub(n, Ordering::AcqRel);
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
        self.counters.finished(n, result.is_ok());
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
    /// Spans go through `exporter` (wrapped to count) in a batch processor holding at
    /// most `max_queue_size` spans (see [`DEFAULT_MAX_QUEUE_SIZE`]); its other settings
    /// come from the `OTEL_BSP_*` variables as in the SDK. `sampler` decides per trace
    /// id.
    pub fn with_exporter<E: SpanExporter + 'static>(
        exporter: E,
        resource: &Resource,
        sampler: Sampler,
        max_queue_size: usize,
    ) -> Self {
        let counters = Arc::new(TraceCounters::new(max_queue_size));
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(max_queue_size.max(1))
            .build();
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

    /// Flushes and stops the processor, waiting at most `timeout`. What is still
    /// queued then, and every span that finishes afterwards, is counted as
    /// [`ExportHealth::dropped_shutdown`].
    pub fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        let result = self.processor.shutdown_with_timeout(timeout);
        self.counters.shut_down.store(true, Ordering::Release);
        result
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
        if self.counters.admit() {
            self.processor.on_end(span_data(span, &self.scope));
        }
    }

    fn interest(&self) -> SpanInterest {
        SpanInterest::All
    }
}

/// The export's counts, in the statistics' health (`health.export`) and as metric
/// families.
impl HealthSource for TraceSink {
    fn report(&self, health: &mut Health) {
        health.set_part("export", &self.counters().report());
    }

    fn metrics(&self, families: &mut Vec<Family>) {
        self.counters().report().families(families);
    }
}
