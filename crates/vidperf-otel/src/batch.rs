//! The span export queue: encoded spans wait in a bounded queue and a thread named
//! `vidperf-otlp-traces` sends them in batches (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`) every
//! `OTEL_BSP_SCHEDULE_DELAY` or as soon as a batch is full, retrying what the collector
//! may accept later (HTTP 429/502/503/504, gRPC `UNAVAILABLE`, no answer) with
//! exponential backoff and jitter within `OTEL_BSP_EXPORT_TIMEOUT`, honouring
//! `Retry-After`. Nothing here runs on the span's thread but a push.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use vidperf_core::worker::{StopTimeout, Worker};

use crate::encode::Envelope;
use crate::traces::TraceCounters;
use crate::transport::{ExportError, Signal, Transport};

/// Where batches of spans go: one OTLP `ExportTraceServiceRequest` (protobuf) per
/// call. The bridge sends them over HTTP/protobuf or gRPC; implement it to send them
/// elsewhere (or to inspect them in tests).
pub trait SpanExport: Send + Sync + 'static {
    /// Sends one request; an error says whether trying again may help
    /// ([`ExportError::is_retryable`]).
    fn export(&self, request: &[u8]) -> Result<(), ExportError>;
}

impl SpanExport for Transport {
    fn export(&self, request: &[u8]) -> Result<(), ExportError> {
        self.send(Signal::Traces, request)
    }
}

/// How spans are batched (the `OTEL_BSP_*` variables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchConfig {
    /// Spans held at most (queued, or in the batch being sent); more are dropped and
    /// counted. Default 2048 (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub max_queue_size: usize,
    /// Spans per request at most. Default 512 (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub max_export_batch_size: usize,
    /// The longest a span waits for a batch to fill. Default 5 s
    /// (`OTEL_BSP_SCHEDULE_DELAY`).
    pub schedule_delay: Duration,
    /// The longest one batch may take, retries included. Default 30 s
    /// (`OTEL_BSP_EXPORT_TIMEOUT`).
    pub export_timeout: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_queue_size: crate::traces::DEFAULT_MAX_QUEUE_SIZE,
            max_export_batch_size: 512,
            schedule_delay: Duration::from_secs(5),
            export_timeout: Duration::from_secs(30),
        }
    }
}

impl BatchConfig {
    /// Sets [`BatchConfig::max_queue_size`] (at least 1).
    #[must_use]
    pub fn with_max_queue_size(mut self, spans: usize) -> Self {
        self.max_queue_size = spans.max(1);
        self
    }

    /// Sets [`BatchConfig::max_export_batch_size`] (at least 1).
    #[must_use]
    pub fn with_max_export_batch_size(mut self, spans: usize) -> Self {
        self.max_export_batch_size = spans.max(1);
        self
    }

    /// Sets [`BatchConfig::schedule_delay`].
    #[must_use]
    pub fn with_schedule_delay(mut self, delay: Duration) -> Self {
        self.schedule_delay = delay;
        self
    }

    /// Sets [`BatchConfig::export_timeout`].
    #[must_use]
    pub fn with_export_timeout(mut self, timeout: Duration) -> Self {
        self.export_timeout = timeout;
        self
    }
}

#[derive(Debug, Default)]
struct Queue {
    spans: VecDeque<Vec<u8>>,
    /// Flushes asked for, and the last one done.
    flush_asked: u64,
    flushed: u64,
    stop: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// The worker waits on it for spans, a flush, a stop.
    wake: Condvar,
    /// Flushes wait on it.
    done: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the worker does every second besides exporting (the tail sampler's upkeep).
pub(crate) type Tick = Box<dyn FnMut() + Send>;

/// The running queue and its thread.
pub(crate) struct Batcher {
    shared: Arc<Shared>,
    batch_size: usize,
    worker: Worker,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

/// Retries of one batch: the wait before try `n` (from 0), or `None` to give up.
fn backoff(n: u32, error: &ExportError, left: Duration) -> Option<Duration> {
    if !error.is_retryable() {
        return None;
    }
    let base = Duration::from_millis(100).saturating_mul(1 << n.min(6));
    let base = base.min(Duration::from_secs(5));
    // Jitter: between half and all of the delay.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = 0.5 + f64::from(nanos % 1000) / 2000.0;
    let wait = error.retry_after().unwrap_or(base.mul_f64(jitter));
    (wait < left).then_some(wait)
}

struct Run {
    shared: Arc<Shared>,
    export: Arc<dyn SpanExport>,
    envelope: Envelope,
    config: BatchConfig,
    counters: Arc<TraceCounters>,
    tick: Option<Tick>,
}

impl Run {
    fn run(mut self) {
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut due = Instant::now() + self.config.schedule_delay;
        let mut next_tick = Instant::now() + Duration::from_secs(1);
        loop {
            let stopping;
            {
                let mut q = self.shared.lock();
                loop {
                    let now = Instant::now();
                    let flushing = q.flush_asked > q.flushed;
                    let ready = q.spans.len() >= self.config.max_export_batch_size
                        || (!q.spans.is_empty() && (flushing || q.stop || now >= due));
                    if ready || q.stop || (flushing && q.spans.is_empty()) || now >= next_tick {
                        break;
                    }
                    let wait = due.min(next_tick).saturating_duration_since(now);
                    q = self
                        .shared
                        .wake
                        .wait_timeout(q, wait.max(Duration::from_millis(1)))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                stopping = q.stop;
                let n = q.spans.len().min(self.config.max_export_batch_size);
                batch.extend(q.spans.drain(..n));
                if batch.is_empty() {
                    if q.flush_asked > q.flushed {
                        q.flushed = q.flush_asked;
                        self.shared.done.notify_all();
                    }
                    if stopping {
                        return;
                    }
                }
            }
            if Instant::now() >= next_tick {
                if let Some(tick) = &mut self.tick {
                    tick();
                }
                next_tick = Instant::now() + Duration::from_secs(1);
            }
            if batch.is_empty() {
                due = Instant::now() + self.config.schedule_delay;
                continue;
            }
            let request = self.envelope.request(batch.iter().map(Vec::as_slice));
            let delivered = self.send(&request, stopping);
            self.counters.finished(batch.len() as u64, delivered);
            batch.clear();
            due = Instant::now() + self.config.schedule_delay;
        }
    }

    /// Sends one request, retrying within the export timeout (one try once stopping).
    fn send(&self, request: &[u8], stopping: bool) -> bool {
        let deadline = Instant::now() + self.config.export_timeout;
        let mut tries = 0;
        loop {
            match self.export.export(request) {
                Ok(()) => return true,
                Err(error) => {
                    self.counters.set_error(&error);
                    let left = deadline.saturating_duration_since(Instant::now());
                    let Some(wait) = backoff(tries, &error, left).filter(|_| !stopping) else {
                        return false;
                    };
                    tries += 1;
                    self.counters.retried();
                    // Interrupted by a stop.
                    let q = self.shared.lock();
                    let (q, _) = self
                        .shared
                        .wake
                        .wait_timeout_while(q, wait, |q| !q.stop)
                        .unwrap_or_else(PoisonError::into_inner);
                    if q.stop {
                        drop(q);
                        return self.export.export(request).is_ok();
                    }
                }
            }
        }
    }
}

impl Batcher {
    /// Starts the thread.
    pub(crate) fn start(
        export: Arc<dyn SpanExport>,
        envelope: Envelope,
        config: BatchConfig,
        counters: Arc<TraceCounters>,
        tick: Option<Tick>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            done: Condvar::new(),
        });
        let batch_size = config.max_export_batch_size.max(1);
        let run = Run {
            shared: shared.clone(),
            export,
            envelope,
            config: BatchConfig {
                max_export_batch_size: batch_size,
                ..config
            },
            counters,
            tick,
        };
        let worker = Worker::spawn("vidperf-otlp-traces", move || run.run())?;
        Ok(Self {
            shared,
            batch_size,
            worker,
        })
    }

    /// Queues one encoded span (its place was taken with [`TraceCounters::admit`]).
    pub(crate) fn push(&self, span: Vec<u8>) {
        let mut q = self.shared.lock();
        q.spans.push_back(span);
        if q.spans.len() >= self.batch_size {
            self.shared.wake.notify_one();
        }
    }

    /// Sends everything queued now, waiting at most `timeout`.
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), StopTimeout> {
        let mut q = self.shared.lock();
        if q.stop {
            return Ok(());
        }
        q.flush_asked += 1;
        let target = q.flush_asked;
        self.shared.wake.notify_all();
        let (q, result) = self
            .shared
            .done
            .wait_timeout_while(q, timeout, |q| q.flushed < target && !q.stop)
            .unwrap_or_else(PoisonError::into_inner);
        drop(q);
        if result.timed_out() {
            Err(StopTimeout::new("OTLP span export", timeout))
        } else {
            Ok(())
        }
    }

    /// Sends what is queued (one try per batch) and stops, waiting at most `timeout`.
    pub(crate) fn shutdown(&self, timeout: Duration) -> Result<(), StopTimeout> {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        self.shared.done.notify_all();
        self.worker.join(timeout)
    }

    /// Why the thread ended in a panic, if it did.
    pub(crate) fn panicked(&self) -> Option<String> {
        self.worker.panicked()
    }
}
