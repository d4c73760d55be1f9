//! [`TraceSink`]: every finished span that is sampled (by the head sampler's flag, or
//! by the tail sampler when it runs) encoded as OTLP once, at close, and queued for the
//! batch export — with every span accounted for.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use vidperf_core::metrics::Family;
use vidperf_core::stats::{Health, HealthSource};
use vidperf_core::worker::StopTimeout;
use vidperf_core::{FinishedSpan, Sink, SpanInterest, Stats};

use crate::batch::{BatchConfig, Batcher, SpanExport};
use crate::encode::{self, Envelope};
use crate::health::ExportHealth;
use crate::tail::{Tail, TailConfig};
use crate::transport::ExportError;

/// Spans held for export unless configured (`OTEL_BSP_MAX_QUEUE_SIZE`'s default).
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 2048;

/// Spans counted on their way out: every report adds up
/// (`emitted == exported + failed + dropped + queued`), every count but `queued` only
/// grows, and `queued` is 0 after a flush or shutdown. (One exception: a batch the
/// exporter finishes after shutdown stopped waiting for it moves from
/// `dropped_shutdown` to `exported` or `failed`.)
///
/// A span is admitted only while fewer than the queue size are in flight (queued, or in
/// a batch being exported); every drop is counted with its reason as it happens.
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
    retries: AtomicU64,
    last_error: Mutex<Option<String>>,
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
            retries: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub(crate) fn set_error(&self, error: &ExportError) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
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
        .with_errors(
            self.retries.load(Ordering::Relaxed),
            self.last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
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
    pub(crate) fn finished(&self, n: u64, delivered: bool) {
        let counter = if delivered {
            &self.exported
        } else {
            &self.failed
        };
        counter.fetch_add(n, Ordering::AcqRel);
        self.in_flight.fetch_sub(n, Ordering::AcqRel);
    }
}

/// The trace side of the bridge: a [`Sink`] for every span.
pub struct TraceSink {
    inner: Arc<Inner>,
}

struct Inner {
    counters: Arc<TraceCounters>,
    batcher: OnceLock<Batcher>,
    tail: Option<Tail>,
    flush_timeout: Duration,
}

impl std::fmt::Debug for TraceSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceSink")
            .field("tail", &self.inner.tail.is_some())
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Takes a place in the queue for an encoded span, or counts it dropped.
    fn enqueue(&self, span: Vec<u8>) {
        if self.counters.admit()
            && let Some(batcher) = self.batcher.get()
        {
            batcher.push(span);
        }
    }
}

/// Builds a [`TraceSink`]: where its batches go, the resource they are reported under,
/// the batching, and optionally the tail sampler.
#[must_use]
pub struct TraceSinkBuilder {
    export: Arc<dyn SpanExport>,
    resource: Vec<(String, String)>,
    batch: BatchConfig,
    tail: Option<(TailConfig, Arc<Stats>)>,
    gpu_memory_limit: Option<crate::GpuMemoryLimit>,
}

impl std::fmt::Debug for TraceSinkBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceSinkBuilder")
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl TraceSinkBuilder {
    /// The resource's attributes (`service.name`, …).
    pub fn resource(mut self, attributes: Vec<(String, String)>) -> Self {
        self.resource = attributes;
        self
    }

    /// How spans are batched.
    pub fn batch(mut self, batch: BatchConfig) -> Self {
        self.batch = batch;
        self
    }

    /// Decides by [`TailConfig`] which local traces are exported, with the live
    /// quantiles of `stats`; only operations whose trace is exported become
    /// exemplars.
    pub fn tail(mut self, config: TailConfig, stats: Arc<Stats>) -> Self {
        self.tail = Some((config, stats));
        self
    }

    /// The GPU's memory, for the tail sampler's VRAM rule.
    pub fn gpu_memory_limit(mut self, limit: crate::GpuMemoryLimit) -> Self {
        self.gpu_memory_limit = Some(limit);
        self
    }

    /// Starts the export thread.
    pub fn start(self) -> std::io::Result<TraceSink> {
        let counters = Arc::new(TraceCounters::new(self.batch.max_queue_size));
        let tail = self
            .tail
            .map(|(config, stats)| Tail::new(config, stats, self.gpu_memory_limit.map(|l| l.0)));
        let inner = Arc::new(Inner {
            counters: counters.clone(),
            batcher: OnceLock::new(),
            tail,
            flush_timeout: self.batch.export_timeout,
        });
        let tick = inner.tail.is_some().then(|| {
            let weak: Weak<Inner> = Arc::downgrade(&inner);
            Box::new(move || {
                if let Some(inner) = weak.upgrade()
                    && let Some(tail) = &inner.tail
                {
                    tail.tick(&mut |span| inner.enqueue(span));
                }
            }) as crate::batch::Tick
        });
        let batcher = Batcher::start(
            self.export,
            Envelope::new(&self.resource),
            self.batch,
            counters,
            tick,
        )?;
        let _ = inner.batcher.set(batcher);
        Ok(TraceSink { inner })
    }
}

impl TraceSink {
    /// A sink whose batches go to `export`.
    pub fn builder(export: impl SpanExport) -> TraceSinkBuilder {
        TraceSinkBuilder {
            export: Arc::new(export),
            resource: Vec::new(),
            batch: BatchConfig::default(),
            tail: None,
            gpu_memory_limit: None,
        }
    }

    /// What happened to the spans so far.
    pub fn counters(&self) -> &Arc<TraceCounters> {
        &self.inner.counters
    }

    /// What the export says of itself: the span counts, and the tail sampler's.
    pub fn health(&self) -> ExportHealth {
        let mut health = self.inner.counters.report();
        health.tail = self.inner.tail.as_ref().map(Tail::health);
        health.export_panicked = self.inner.batcher.get().and_then(Batcher::panicked);
        health
    }

    /// Exports everything queued, waiting at most the export timeout.
    pub fn flush(&self) -> Result<(), StopTimeout> {
        match self.inner.batcher.get() {
            Some(b) => b.flush(self.inner.flush_timeout),
            None => Ok(()),
        }
    }

    /// Decides the traces still open (by what their spans said so far), exports what is
    /// queued and stops, waiting at most `timeout`. What is still queued then, and every
    /// span that finishes afterwards, is counted as [`ExportHealth::dropped_shutdown`].
    pub fn shutdown(&self, timeout: Duration) -> Result<(), StopTimeout> {
        if let Some(tail) = &self.inner.tail {
            tail.drain(&mut |span| self.inner.enqueue(span));
        }
        let result = match self.inner.batcher.get() {
            Some(b) => b.shutdown(timeout),
            None => Ok(()),
        };
        self.inner.counters.shut_down.store(true, Ordering::Release);
        result
    }
}

impl Sink for TraceSink {
    fn on_finish(&self, span: &FinishedSpan) {
        let inner = &*self.inner;
        match &inner.tail {
            Some(tail) => tail.on_finish(span, &mut |bytes| inner.enqueue(bytes)),
            None if !span.flags.is_sampled() => {
                inner.counters.unsampled.fetch_add(1, Ordering::Relaxed);
            }
            // The place first: a span the full queue drops is never encoded.
            None => {
                if inner.counters.admit()
                    && let Some(batcher) = inner.batcher.get()
                {
                    batcher.push(encode::span(span));
                }
            }
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
        health.set_part("export", &self.health());
    }

    fn metrics(&self, families: &mut Vec<Family>) {
        self.health().families(families);
    }
}
