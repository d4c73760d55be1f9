//! The hook through which a resource monitor attaches peaks to operations.
//!
//! `vidperf-core` measures no resources itself; a monitor such as `vidperf-sampler`'s
//! `ResourceMonitor` implements [`ResourceWindows`], and the [`PerfLayer`](crate::PerfLayer)
//! opens a window when an operation starts and closes it when the operation closes.

use std::time::Instant;

use crate::span::ResourcePeaks;

/// An open measurement window: where the monitor's sample sequence stood when an
/// operation started, and when it started. Small and `Copy`; kept in the operation's
/// state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowStart {
    /// The sequence number of the first sample that belongs to the window.
    pub first_sample: u64,
    /// When the operation started (for figures a source stamps with their own time,
    /// such as the GPU driver's utilization samples).
    pub opened: Instant,
    /// Process resident memory read at the start, bytes, by a monitor that reads at
    /// operation boundaries (`None` otherwise).
    pub opened_memory_bytes: Option<u64>,
    /// GPU memory used read at the start (the maximum over devices), bytes, likewise.
    pub opened_gpu_memory_bytes: Option<u64>,
}

/// A source of per-window resource peaks.
///
/// Both methods run on the span path, on the thread that opens or closes the
/// operation. Implementations must therefore be cheap and non-blocking: no system or
/// driver calls, no I/O, no lock held across anything slow. `open` should be O(1) and
/// `close` O(log n) in the number of samples, independent of how many windows are open.
pub trait ResourceWindows: Send + Sync + 'static {
    /// Opens a window for an operation that starts at `now` (the layer passes the
    /// monotonic time it already read for the operation's start).
    fn open(&self, now: Instant) -> WindowStart;

    /// Closes the window of an operation that ends at `now` and returns the peaks of
    /// every sample that fell inside it (including the latest sample at open and at
    /// close). Every figure that was not measured stays `None`.
    fn close(&self, start: WindowStart, now: Instant) -> ResourcePeaks;
}

impl<T: ResourceWindows + ?Sized> ResourceWindows for std::sync::Arc<T> {
    fn open(&self, now: Instant) -> WindowStart {
        (**self).open(now)
    }

    fn close(&self, start: WindowStart, now: Instant) -> ResourcePeaks {
        (**self).close(start, now)
    }
}
