//! [`Signals`]: live readings one part offers another, as typed calls — the alert rules
//! read the OTLP export's dropped-span count and the largest GPU's memory through them,
//! rather than through those parts' health documents.

use std::sync::Arc;

/// Figures of other parts that rules read, handed in by whoever wires the parts (the
/// `vidperf` builder): typed calls, not lookups in their health documents.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct Signals {
    /// Spans the OTLP export dropped so far (`export_dropped_rate`).
    pub dropped_spans: Option<Arc<dyn Fn() -> u64 + Send + Sync>>,
    /// The largest GPU's total memory, bytes (`peak_gpu_memory_fraction`).
    pub gpu_memory_limit: Option<Arc<dyn Fn() -> Option<u64> + Send + Sync>>,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals")
            .field("dropped_spans", &self.dropped_spans.is_some())
            .field("gpu_memory_limit", &self.gpu_memory_limit.is_some())
            .finish()
    }
}

impl Signals {
    /// Reads the export's dropped-span count from `f`.
    #[must_use]
    pub fn with_dropped_spans(mut self, f: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.dropped_spans = Some(Arc::new(f));
        self
    }

    /// Reads the largest GPU's total memory from `f`.
    #[must_use]
    pub fn with_gpu_memory_limit(
        mut self,
        f: impl Fn() -> Option<u64> + Send + Sync + 'static,
    ) -> Self {
        self.gpu_memory_limit = Some(Arc::new(f));
        self
    }
}
