//! Where finished spans go.

use std::sync::Arc;

use crate::ids::SpanId;
use crate::span::{ActiveOperation, FinishedSpan, Progress};

/// Which spans a [`Sink`] wants to see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SpanInterest {
    /// Only operations (spans with a `strategy` field). Ordinary spans then cost
    /// nothing in the layer.
    #[default]
    Operations,
    /// Every span, for sinks that export whole traces.
    All,
}

/// A destination for finished spans: the statistics aggregator, an exporter, your own.
///
/// The layer calls a sink synchronously from the thread that closes the span, after it
/// has released every lock of its own. A sink therefore must:
///
/// - return quickly: no I/O, no blocking, no waiting on locks held across slow work
///   (hand work to a background thread over a bounded channel and count what it drops);
/// - never emit `tracing` events or spans (that would re-enter the layer);
/// - not panic: a panic is caught, counted in the layer's health figures, and the span
///   is lost for that sink.
///
/// ```
/// use vidperf_core::{FinishedSpan, Sink};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// /// Counts frames across all operations.
/// #[derive(Debug, Default)]
/// struct FrameCounter(AtomicU64);
///
/// impl Sink for FrameCounter {
///     fn on_finish(&self, span: &FinishedSpan) {
///         let frames = span.fields.frames_processed.unwrap_or(0);
///         self.0.fetch_add(frames, Ordering::Relaxed);
///     }
/// }
/// ```
pub trait Sink: Send + Sync + 'static {
    /// Receives every finished span this sink is interested in.
    fn on_finish(&self, span: &FinishedSpan);

    /// Called when an operation starts. The default does nothing.
    fn on_start(&self, operation: &ActiveOperation<'_>) {
        let _ = operation;
    }

    /// Called once for a running operation that records
    /// [`frames_total`](crate::fields::FRAMES_TOTAL) after it started: its progress,
    /// which the layer keeps current from then on (an operation that records it at
    /// creation hands it to [`on_start`](Self::on_start) instead). The default does
    /// nothing.
    fn on_progress(&self, operation: SpanId, progress: &Arc<Progress>) {
        let _ = (operation, progress);
    }

    /// Which spans this sink wants. Read once, when the layer is built.
    fn interest(&self) -> SpanInterest {
        SpanInterest::Operations
    }
}

impl<T: Sink + ?Sized> Sink for Arc<T> {
    fn on_finish(&self, span: &FinishedSpan) {
        (**self).on_finish(span);
    }

    fn on_start(&self, operation: &ActiveOperation<'_>) {
        (**self).on_start(operation);
    }

    fn on_progress(&self, operation: SpanId, progress: &Arc<Progress>) {
        (**self).on_progress(operation, progress);
    }

    fn interest(&self) -> SpanInterest {
        (**self).interest()
    }
}
