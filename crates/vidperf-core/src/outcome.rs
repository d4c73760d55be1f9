//! [`OperationOutcome`]: what a tracked handler returns, recorded on its span.

use std::fmt::Display;

use tracing::Span;

use crate::fields::{self, Resolution};

/// What an operation produced, recorded automatically on its span by
/// `#[vidperf::track]` and by [`record_outcome`].
///
/// Every method defaults to "not reported"; implement the ones your result type knows.
/// `Result<T, E>` implements it when `T` does and `E: Display`: `Ok` records `T`'s
/// figures, `Err` marks the operation failed with the error's message. `()` reports
/// nothing.
///
/// ```
/// use vidperf_core::{OperationOutcome, Resolution};
///
/// struct Enhanced { frames: Vec<Vec<u8>>, quality: f64 }
///
/// impl OperationOutcome for Enhanced {
///     fn frames_processed(&self) -> Option<u64> { Some(self.frames.len() as u64) }
///     fn quality_score(&self) -> Option<f64> { Some(self.quality) }
///     fn output_resolution(&self) -> Option<Resolution> { Some(Resolution::new(2560, 1440)) }
/// }
/// ```
pub trait OperationOutcome {
    /// Frames processed.
    fn frames_processed(&self) -> Option<u64> {
        None
    }
    /// Segments processed.
    fn segments(&self) -> Option<u64> {
        None
    }
    /// Input resolution.
    fn input_resolution(&self) -> Option<Resolution> {
        None
    }
    /// Output resolution.
    fn output_resolution(&self) -> Option<Resolution> {
        None
    }
    /// Scale factor (derived from the resolutions when not given).
    fn scale_factor(&self) -> Option<f64> {
        None
    }
    /// Quality score, 0.0–1.0.
    fn quality_score(&self) -> Option<f64> {
        None
    }
    /// Improvement over the input.
    fn enhancement_factor(&self) -> Option<f64> {
        None
    }
    /// `Some(message)` marks the operation failed.
    fn error_message(&self) -> Option<String> {
        None
    }
    /// The class of the failure, recorded as `error.type` (for `Result<T, E>`, `E`'s
    /// type name); `_OTHER` when a failure has none.
    fn error_type(&self) -> Option<&'static str> {
        None
    }
}

impl OperationOutcome for () {}

impl<T: OperationOutcome + ?Sized> OperationOutcome for &T {
    fn frames_processed(&self) -> Option<u64> {
        (**self).frames_processed()
    }
    fn segments(&self) -> Option<u64> {
        (**self).segments()
    }
    fn input_resolution(&self) -> Option<Resolution> {
        (**self).input_resolution()
    }
    fn output_resolution(&self) -> Option<Resolution> {
        (**self).output_resolution()
    }
    fn scale_factor(&self) -> Option<f64> {
        (**self).scale_factor()
    }
    fn quality_score(&self) -> Option<f64> {
        (**self).quality_score()
    }
    fn enhancement_factor(&self) -> Option<f64> {
        (**self).enhancement_factor()
    }
    fn error_message(&self) -> Option<String> {
        (**self).error_message()
    }
    fn error_type(&self) -> Option<&'static str> {
        (**self).error_type()
    }
}

impl<T: OperationOutcome, E: Display> OperationOutcome for Result<T, E> {
    fn frames_processed(&self) -> Option<u64> {
        self.as_ref().ok()?.frames_processed()
    }
    fn segments(&self) -> Option<u64> {
        self.as_ref().ok()?.segments()
    }
    fn input_resolution(&self) -> Option<Resolution> {
        self.as_ref().ok()?.input_resolution()
    }
    fn output_resolution(&self) -> Option<Resolution> {
        self.as_ref().ok()?.output_resolution()
    }
    fn scale_factor(&self) -> Option<f64> {
        self.as_ref().ok()?.scale_factor()
    }
    fn quality_score(&self) -> Option<f64> {
        self.as_ref().ok()?.quality_score()
    }
    fn enhancement_factor(&self) -> Option<f64> {
        self.as_ref().ok()?.enhancement_factor()
    }
    fn error_message(&self) -> Option<String> {
        match self {
            Ok(v) => v.error_message(),
            Err(e) => Some(e.to_string()),
        }
    }
    fn error_type(&self) -> Option<&'static str> {
        match self {
            Ok(v) => v.error_type(),
            Err(_) => Some(std::any::type_name::<E>()),
        }
    }
}

/// Records `outcome` on `span` through the span's declared contract fields (declare
/// them with `field::Empty`; `#[vidperf::track]` and
/// [`Operation`](crate::operation::Operation) do). Fields the span does not declare are
/// recorded through the [`PerfLayer`](crate::PerfLayer) when it tracks the span.
pub fn record_outcome<O: OperationOutcome + ?Sized>(span: &Span, outcome: &O) {
    let ints = [
        (fields::FRAMES_PROCESSED, outcome.frames_processed()),
        (fields::SEGMENTS, outcome.segments()),
    ];
    for (name, value) in ints {
        if let Some(v) = value {
            record(span, name, v.into());
        }
    }
    for (w, h, res) in [
        (
            fields::INPUT_WIDTH,
            fields::INPUT_HEIGHT,
            outcome.input_resolution(),
        ),
        (
            fields::OUTPUT_WIDTH,
            fields::OUTPUT_HEIGHT,
            outcome.output_resolution(),
        ),
    ] {
        if let Some(r) = res {
            record(span, w, r.width.into());
            record(span, h, r.height.into());
        }
    }
    let floats = [
        (fields::SCALE_FACTOR, outcome.scale_factor()),
        (fields::QUALITY_SCORE, outcome.quality_score()),
        (fields::ENHANCEMENT_FACTOR, outcome.enhancement_factor()),
    ];
    for (name, value) in floats {
        if let Some(v) = value {
            record(span, name, v.into());
        }
    }
    if let Some(message) = outcome.error_message() {
        if let Some(kind) = outcome.error_type() {
            record(span, fields::ERROR_TYPE, kind.into());
        }
        record(span, fields::ERROR, message.into());
    }
}

/// Records through the span's own field when declared (so every layer sees it), else
/// straight into the PerfLayer's state.
pub(crate) fn record(span: &Span, name: &str, value: crate::FieldValue) {
    use crate::FieldValue as V;
    let declared = span
        .metadata()
        .is_some_and(|m| m.fields().field(name).is_some());
    if !declared {
        crate::record_field(span, name, value);
        return;
    }
    match value {
        V::Bool(v) => span.record(name, v),
        V::I64(v) => span.record(name, v),
        V::U64(v) => span.record(name, v),
        V::F64(v) => span.record(name, v),
        V::Str(v) => span.record(name, v.as_str()),
    };
}

/// What `#[vidperf::track]` records from any return value, picked at compile time by
/// autoref specialization: an [`OperationOutcome`] records its figures (and a
/// `Result<T: OperationOutcome, E>` its error too); any other `Result<_, E: Display>`
/// records its error; anything else records nothing. Not public API.
#[doc(hidden)]
pub mod specialize {
    use std::fmt::Display;

    use tracing::Span;

    use super::{OperationOutcome, record_outcome};

    /// The return value, borrowed.
    pub struct Returned<'a, T: ?Sized>(pub &'a T);

    impl<T: ?Sized> std::fmt::Debug for Returned<'_, T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Returned")
        }
    }

    /// First choice: the value reports figures.
    pub trait RecordFigures {
        /// Records them.
        fn record_on(&self, span: &Span);
    }

    impl<T: OperationOutcome + ?Sized> RecordFigures for &&Returned<'_, T> {
        fn record_on(&self, span: &Span) {
            record_outcome(span, self.0);
        }
    }

    /// Second choice: a `Result` whose error can be shown.
    pub trait RecordError {
        /// Records the error, if any.
        fn record_on(&self, span: &Span);
    }

    impl<T, E: Display> RecordError for &Returned<'_, Result<T, E>> {
        fn record_on(&self, span: &Span) {
            if let Err(e) = self.0 {
                record_outcome(span, &Failed(e));
            }
        }
    }

    /// Last: nothing to record.
    pub trait RecordNothing {
        /// Does nothing.
        fn record_on(&self, span: &Span);
    }

    impl<T: ?Sized> RecordNothing for Returned<'_, T> {
        fn record_on(&self, _: &Span) {}
    }

    struct Failed<'a, E>(&'a E);

    impl<E: Display> OperationOutcome for Failed<'_, E> {
        fn error_message(&self) -> Option<String> {
            Some(self.0.to_string())
        }
        fn error_type(&self) -> Option<&'static str> {
            Some(std::any::type_name::<E>())
        }
    }
}
