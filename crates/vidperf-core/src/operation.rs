//! Manual tracking: start an operation, update it, finish it — the original design's
//! `start_operation` / `update_operation` / `finish_operation` and its context
//! manager, as a guard over an ordinary `tracing` span.

use std::fmt::{self, Display};

use tracing::Span;

use crate::outcome::{OperationOutcome, record, record_outcome};
use crate::value::FieldValue;

/// A manually tracked operation. It is a `tracing` span with every contract field
/// declared, so other layers (and exporters) see it like any `#[instrument]` span.
///
/// The operation ends when the guard is finished or dropped: [`finish`](Self::finish)
/// (or [`finish_with`](Self::finish_with) an `Ok`) is a success unless an error was
/// recorded, [`fail`](Self::fail) a failure, dropping it while a panic unwinds a
/// failure, and dropping it otherwise — the work abandoned before it said it was done,
/// as when a timeout drops the future holding it — a cancellation.
///
/// ```
/// # use std::sync::Arc;
/// # use tracing_subscriber::prelude::*;
/// # use vidperf_core::{PerfLayer, Stats};
/// use vidperf_core::operation::Operation;
/// # let stats = Arc::new(Stats::default());
/// # let subscriber = tracing_subscriber::registry()
/// #     .with(PerfLayer::builder().sink(stats.clone()).build());
/// # tracing::subscriber::with_default(subscriber, || {
///
/// let op = Operation::start("enhancement", "seedvr2")
///     .with_metadata("video_path", "clips/intro.mp4")
///     .with_metadata("quality_tier", "high");
/// // ... process the video ...
/// op.update("frames_processed", 240).update("quality_score", 0.91);
/// op.finish();
/// # });
/// # let snap = stats.snapshot();
/// # assert_eq!(snap.by_strategy["seedvr2"].frames_processed_total, 240);
/// # assert_eq!(snap.recent[0].metadata["quality_tier"].as_str(), Some("high"));
/// ```
#[must_use = "the operation ends when this guard is dropped"]
pub struct Operation {
    span: Span,
    ended: bool,
}

impl Drop for Operation {
    fn drop(&mut self) {
        if !self.ended && !std::thread::panicking() {
            crate::record_cancelled(&self.span);
        }
    }
}

impl fmt::Debug for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operation")
            .field("span", &self.span)
            .finish()
    }
}

impl Operation {
    /// Starts an operation of `operation_type` (`enhancement`, `analysis`, …) run by
    /// `strategy`, as a child of the current span.
    pub fn start(operation_type: &str, strategy: &str) -> Self {
        let span = crate::operation_span!(
            target: "vidperf::operation",
            "operation",
            otel.name = operation_type,
            operation = operation_type,
            strategy = strategy
        );
        Self { span, ended: false }
    }

    /// Adds metadata (or a contract field) and returns the guard, for chaining at start.
    pub fn with_metadata(self, key: &str, value: impl Into<FieldValue>) -> Self {
        self.update(key, value);
        self
    }

    /// Records a contract field (`frames_processed`, `quality_score`, …) or any other
    /// name as metadata. Recording a name again replaces its value.
    pub fn update(&self, key: &str, value: impl Into<FieldValue>) -> &Self {
        record(&self.span, key, value.into());
        self
    }

    /// Records everything `outcome` reports.
    pub fn record_outcome<O: OperationOutcome + ?Sized>(&self, outcome: &O) -> &Self {
        record_outcome(&self.span, outcome);
        self
    }

    /// Marks the operation failed without ending it (the first failure recorded wins).
    pub fn record_error(&self, error: impl Display) -> &Self {
        record(
            &self.span,
            crate::fields::ERROR,
            FieldValue::text(&error.to_string()),
        );
        self
    }

    /// The underlying span, e.g. to pass to `Instrument::instrument` or as a parent.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Runs `f` inside the operation's span, so spans it opens are children.
    pub fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        self.span.in_scope(f)
    }

    /// Ends the operation successfully (unless an error was recorded).
    pub fn finish(mut self) {
        self.ended = true;
    }

    /// Ends the operation as failed with `error`'s message.
    pub fn fail(mut self, error: impl Display) {
        self.record_error(error);
        self.ended = true;
    }

    /// Ends the operation, failed if `result` is `Err`.
    pub fn finish_with<T, E: Display>(mut self, result: &Result<T, E>) {
        if let Err(e) = result {
            self.record_error(e);
        }
        self.ended = true;
    }
}

/// Runs `f` as an operation — the original design's `track_operation` context
/// manager. An `Err` (or a panic) marks the operation failed; the result is returned
/// unchanged.
///
/// ```
/// # use std::sync::Arc;
/// # use tracing_subscriber::prelude::*;
/// # use vidperf_core::{PerfLayer, Stats};
/// use vidperf_core::operation::track_operation;
/// # let stats = Arc::new(Stats::default());
/// # let subscriber = tracing_subscriber::registry()
/// #     .with(PerfLayer::builder().sink(stats.clone()).build());
/// # tracing::subscriber::with_default(subscriber, || {
///
/// let confidence = track_operation("analysis", "degradation_router", |op| {
///     op.update("frames_processed", 96).update("quality_score", 0.8);
///     Ok::<_, std::io::Error>(0.8)
/// });
/// # assert!(confidence.is_ok());
/// # });
/// # assert_eq!(stats.snapshot().by_operation["analysis"].successes, 1);
/// ```
pub fn track_operation<T, E, F>(operation_type: &str, strategy: &str, f: F) -> Result<T, E>
where
    E: Display,
    F: FnOnce(&Operation) -> Result<T, E>,
{
    let op = Operation::start(operation_type, strategy);
    let result = op.in_scope(|| f(&op));
    op.finish_with(&result);
    result
}
