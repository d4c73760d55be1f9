//! The OTLP export's health: what became of every span, typed here and written as JSON
//! (`health.export`) and as metric families by the encoders below.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use vidperf_core::metrics::{Family, FamilyDef, Kind};

/// What happened to the spans sent to the OTLP exporter, in the statistics' health (`health.export`): at any
/// time `emitted == exported + failed + dropped + queued`; every count but `queued` only
/// grows, and `queued` is 0 after a flush or shutdown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExportHealth {
    /// Spans sampled in and offered to the export.
    pub emitted: u64,
    /// Spans the sampler left out (still in statistics and metrics).
    pub unsampled: u64,
    /// Spans delivered.
    pub exported: u64,
    /// Spans in batches the collector did not accept or could not be reached for.
    pub failed: u64,
    /// Spans lost before the exporter: `dropped_queue_full + dropped_shutdown`.
    pub dropped: u64,
    /// Spans that found the export queue full.
    #[serde(default)]
    pub dropped_queue_full: u64,
    /// Spans still queued when shutdown gave up waiting, or emitted after it.
    #[serde(default)]
    pub dropped_shutdown: u64,
    /// Spans waiting for the exporter or in a batch being sent now.
    #[serde(default)]
    pub queued: u64,
    /// OTLP metrics requests delivered.
    #[serde(default)]
    pub metric_exports: u64,
    /// OTLP metrics requests that failed (the next one carries their figures: the
    /// series are cumulative, or deltas from the last delivered one).
    #[serde(default)]
    pub metric_export_failures: u64,
    /// Why the last metrics request failed, if one did.
    #[serde(default)]
    pub metric_export_error: Option<String>,
    /// Why the metrics export's thread ended in a panic, if it did (no metrics are sent
    /// after that).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_export_panicked: Option<String>,
}

impl ExportHealth {
    /// Counts of a trace export, with nothing dropped or queued.
    pub fn new(emitted: u64, unsampled: u64, exported: u64, failed: u64) -> Self {
        Self {
            emitted,
            unsampled,
            exported,
            failed,
            ..Self::default()
        }
    }

    /// Spans dropped, by reason: the queue was full, or shutdown came first.
    #[must_use]
    pub fn with_dropped(mut self, queue_full: u64, shutdown: u64) -> Self {
        self.dropped_queue_full = queue_full;
        self.dropped_shutdown = shutdown;
        self.dropped = queue_full + shutdown;
        self
    }

    /// Spans in flight.
    #[must_use]
    pub fn with_queued(mut self, queued: u64) -> Self {
        self.queued = queued;
        self
    }
}

/// The export's metric families, declared once.
pub mod family {
    use super::{FamilyDef, Kind};

    /// Spans by what became of them.
    pub const SPANS: FamilyDef = FamilyDef::new(
        "vidperf.export.spans",
        "{span}",
        Kind::Counter,
        "Spans offered to the OTLP trace export, by what became of them (emitted = exported + failed + dropped + queued).",
    );
    /// Spans dropped, by reason.
    pub const SPANS_DROPPED: FamilyDef = FamilyDef::new(
        "vidperf.export.spans.dropped",
        "{span}",
        Kind::Counter,
        "Spans lost before the exporter, by reason: the queue was full, or shutdown came first.",
    );
    /// Spans in flight.
    pub const SPANS_QUEUED: FamilyDef = FamilyDef::new(
        "vidperf.export.spans.queued",
        "{span}",
        Kind::Gauge,
        "Spans waiting for the OTLP exporter or in a batch being sent now.",
    );

    /// OTLP metrics requests by outcome.
    pub const METRIC_EXPORTS: FamilyDef = FamilyDef::new(
        "vidperf.export.metrics",
        "{request}",
        Kind::Counter,
        "OTLP metrics requests, by outcome (delivered, failed).",
    );

    /// Every family of the export.
    pub const EXPORT: [FamilyDef; 4] = [SPANS, SPANS_DROPPED, SPANS_QUEUED, METRIC_EXPORTS];
}

impl ExportHealth {
    /// The export's metric families now.
    pub fn families(&self, out: &mut Vec<Family>) {
        let mut spans = Family::new(family::SPANS);
        for (outcome, n) in [
            ("emitted", self.emitted),
            ("exported", self.exported),
            ("failed", self.failed),
            ("dropped", self.dropped),
            ("unsampled", self.unsampled),
        ] {
            spans.push(vec![("outcome", Cow::Borrowed(outcome))], n as f64);
        }
        let mut dropped = Family::new(family::SPANS_DROPPED);
        for (reason, n) in [
            ("queue_full", self.dropped_queue_full),
            ("shutdown", self.dropped_shutdown),
        ] {
            dropped.push(vec![("reason", Cow::Borrowed(reason))], n as f64);
        }
        let mut queued = Family::new(family::SPANS_QUEUED);
        queued.push(Vec::new(), self.queued as f64);
        let mut metrics = Family::new(family::METRIC_EXPORTS);
        for (outcome, n) in [
            ("delivered", self.metric_exports),
            ("failed", self.metric_export_failures),
        ] {
            metrics.push(vec![("outcome", Cow::Borrowed(outcome))], n as f64);
        }
        out.extend([spans, dropped, queued, metrics]);
    }
}
