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
    /// Tries of span batches sent again after a retryable failure.
    #[serde(default)]
    pub retries: u64,
    /// Why the last span batch that failed did (the collector's status, or why it could
    /// not be reached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Why the span export's thread ended in a panic, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_panicked: Option<String>,
    /// What the tail sampler decided, when it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<crate::tail::TailHealth>,
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

    /// Retried batches, and the last failure.
    #[must_use]
    pub fn with_errors(mut self, retries: u64, last_error: Option<String>) -> Self {
        self.retries = retries;
        self.last_error = last_error;
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

    /// Retried span batches.
    pub const RETRIES: FamilyDef = FamilyDef::new(
        "vidperf.export.retries",
        "{request}",
        Kind::Counter,
        "Span batches sent again after a retryable failure (HTTP 429/502/503/504, gRPC UNAVAILABLE, no answer).",
    );

    /// Local traces the tail sampler decided, by decision and reason.
    pub const TAIL_TRACES: FamilyDef = FamilyDef::new(
        "vidperf.export.tail.traces",
        "{trace}",
        Kind::Counter,
        "Local traces the tail sampler decided: kept, by reason (error, parent, slow, resource, warmup, background), or dropped.",
    );

    /// Traces decided before their local root closed.
    pub const TAIL_EARLY: FamilyDef = FamilyDef::new(
        "vidperf.export.tail.early",
        "{trace}",
        Kind::Counter,
        "Local traces decided before their root closed, by why (trace_bytes, buffer_bytes, age, shutdown).",
    );

    /// Bytes waiting for a tail decision.
    pub const TAIL_BUFFERED: FamilyDef = FamilyDef::new(
        "vidperf.export.tail.buffered",
        "By",
        Kind::Gauge,
        "Bytes of encoded spans waiting for their trace's tail decision.",
    );

    /// Every family of the export.
    pub const EXPORT: [FamilyDef; 8] = [
        SPANS,
        SPANS_DROPPED,
        SPANS_QUEUED,
        METRIC_EXPORTS,
        RETRIES,
        TAIL_TRACES,
        TAIL_EARLY,
        TAIL_BUFFERED,
    ];
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
        let mut retries = Family::new(family::RETRIES);
        retries.push(Vec::new(), self.retries as f64);
        out.extend([spans, dropped, queued, metrics, retries]);
        if let Some(tail) = &self.tail {
            let mut traces = Family::new(family::TAIL_TRACES);
            for (reason, n) in &tail.kept {
                traces.push(
                    vec![
                        ("decision", Cow::Borrowed("kept")),
                        ("reason", Cow::Owned(reason.clone())),
                    ],
                    *n as f64,
                );
            }
            traces.push(
                vec![
                    ("decision", Cow::Borrowed("dropped")),
                    ("reason", Cow::Borrowed("none")),
                ],
                tail.dropped_traces as f64,
            );
            let mut early = Family::new(family::TAIL_EARLY);
            for (reason, n) in &tail.early {
                early.push(vec![("reason", Cow::Owned(reason.clone()))], *n as f64);
            }
            let mut buffered = Family::new(family::TAIL_BUFFERED);
            buffered.push(Vec::new(), tail.buffered_bytes as f64);
            out.extend([traces, early, buffered]);
        }
    }
}
