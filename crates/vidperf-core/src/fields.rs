//! The field contract: the span fields vidperf understands, by name.
//!
//! An **operation** is any span that declares a [`STRATEGY`] field. Its operation
//! type is its [`OPERATION`] field when present, otherwise the span's name. Every
//! other field recorded on an operation is kept as metadata.
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `strategy` | str | vsrm, seedvr2, ditvr, degradation_router, … |
//! | `operation` | str | enhancement, analysis, api_request, background_job, … |
//! | `frames_processed`, `segments` | int | work done |
//! | `input_width`, `input_height`, `output_width`, `output_height` | int | resolutions |
//! | `scale_factor` | float | derived from the widths when not recorded |
//! | `quality_score` | float | 0.0–1.0 |
//! | `enhancement_factor` | float | improvement over input |
//! | `error` | str | marks the operation failed, with this message |
//!
//! A running operation that records [`FRAMES_TOTAL`] (`frames_total`, the frames it will
//! handle) shows its progress — `frames_processed` of `frames_total` — among the running
//! operations of a snapshot, the live stream and `vidperf top`; the finished operation
//! keeps `frames_total` in its metadata.
//!
//! A contract field recorded with a value of the wrong type (a negative frame count,
//! a quality score that is not a finite number, text where a number belongs) is not
//! dropped: it is kept in the metadata under its own name, and the typed field stays
//! absent.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `strategy`: what makes a span an operation.
pub const STRATEGY: &str = "strategy";
/// `operation`: the operation type (defaults to the span name).
pub const OPERATION: &str = "operation";
/// `frames_processed`: frames the operation handled.
pub const FRAMES_PROCESSED: &str = "frames_processed";
/// `frames_total`: frames the operation will handle, for the progress of a running
/// operation (its `frames_processed`, recorded as it goes, is the work done). Not a typed
/// contract field: the finished operation keeps it in its metadata.
pub const FRAMES_TOTAL: &str = "frames_total";
/// `segments`: segments the operation handled.
pub const SEGMENTS: &str = "segments";
/// `input_width`, in pixels.
pub const INPUT_WIDTH: &str = "input_width";
/// `input_height`, in pixels.
pub const INPUT_HEIGHT: &str = "input_height";
/// `output_width`, in pixels.
pub const OUTPUT_WIDTH: &str = "output_width";
/// `output_height`, in pixels.
pub const OUTPUT_HEIGHT: &str = "output_height";
/// `scale_factor`: output size over input size.
pub const SCALE_FACTOR: &str = "scale_factor";
/// `quality_score`: 0.0–1.0.
pub const QUALITY_SCORE: &str = "quality_score";
/// `enhancement_factor`: improvement over the input.
pub const ENHANCEMENT_FACTOR: &str = "enhancement_factor";
/// `error`: marks the operation failed.
pub const ERROR: &str = "error";
/// `error.type`: the class of a failure (the OpenTelemetry semantic conventions'
/// attribute): the error's type name when `#[vidperf::track]` or
/// [`record_outcome`](crate::record_outcome) records an `Err`, `panic` for a panic, or
/// what the span records under this name; [`ERROR_TYPE_OTHER`] otherwise.
pub const ERROR_TYPE: &str = "error.type";
/// The `error.type` of a failure whose class is not known.
pub const ERROR_TYPE_OTHER: &str = "_OTHER";

/// The strategy reported for an operation whose `strategy` field was never recorded.
pub const UNKNOWN_STRATEGY: &str = "unknown";

/// The type a contract field's value must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldKind {
    /// Text.
    Text,
    /// A non-negative integer (exported as an integer, never as text).
    Int,
    /// A finite floating-point number.
    Float,
}

/// One field of the contract: its name, type and meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContractField {
    /// The span field name.
    pub name: &'static str,
    /// The type of its value.
    pub kind: FieldKind,
    /// What it means.
    pub meaning: &'static str,
}

const fn field(name: &'static str, kind: FieldKind, meaning: &'static str) -> ContractField {
    ContractField {
        name,
        kind,
        meaning,
    }
}

/// Every contract field, in order: the one list the docs' table, the
/// [`operation_span!`](crate::operation_span) declarations (checked by a test) and the
/// exporters follow.
pub const CONTRACT: [ContractField; 12] = [
    field(
        STRATEGY,
        FieldKind::Text,
        "vsrm, seedvr2, ditvr, degradation_router, …",
    ),
    field(
        OPERATION,
        FieldKind::Text,
        "enhancement, analysis, api_request, background_job, …",
    ),
    field(
        FRAMES_PROCESSED,
        FieldKind::Int,
        "frames the operation handled",
    ),
    field(SEGMENTS, FieldKind::Int, "segments the operation handled"),
    field(INPUT_WIDTH, FieldKind::Int, "input width, pixels"),
    field(INPUT_HEIGHT, FieldKind::Int, "input height, pixels"),
    field(OUTPUT_WIDTH, FieldKind::Int, "output width, pixels"),
    field(OUTPUT_HEIGHT, FieldKind::Int, "output height, pixels"),
    field(
        SCALE_FACTOR,
        FieldKind::Float,
        "output size over input size (derived from the widths when not recorded)",
    ),
    field(QUALITY_SCORE, FieldKind::Float, "0.0–1.0"),
    field(
        ENHANCEMENT_FACTOR,
        FieldKind::Float,
        "improvement over the input",
    ),
    field(
        ERROR,
        FieldKind::Text,
        "marks the operation failed, with this message",
    ),
];

/// A recorded number, with its contract type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    /// An integer field.
    Int(u64),
    /// A float field.
    Float(f64),
}

/// The typed contract fields of one operation. `None` means "not recorded".
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct OperationFields {
    /// Frames processed.
    pub frames_processed: Option<u64>,
    /// Segments processed.
    pub segments: Option<u64>,
    /// Input width in pixels.
    pub input_width: Option<u32>,
    /// Input height in pixels.
    pub input_height: Option<u32>,
    /// Output width in pixels.
    pub output_width: Option<u32>,
    /// Output height in pixels.
    pub output_height: Option<u32>,
    /// The recorded scale factor (see [`OperationFields::effective_scale_factor`]).
    pub scale_factor: Option<f64>,
    /// Quality score, 0.0–1.0.
    pub quality_score: Option<f64>,
    /// Improvement over the input.
    pub enhancement_factor: Option<f64>,
}

impl OperationFields {
    /// The input resolution, when both its width and height were recorded.
    pub fn input_resolution(&self) -> Option<Resolution> {
        Some(Resolution::new(self.input_width?, self.input_height?))
    }

    /// The output resolution, when both its width and height were recorded.
    pub fn output_resolution(&self) -> Option<Resolution> {
        Some(Resolution::new(self.output_width?, self.output_height?))
    }

    /// The numeric contract fields that were recorded, by name, in [`CONTRACT`] order
    /// (the scale factor as [`effective_scale_factor`](Self::effective_scale_factor)).
    pub fn numbers(&self) -> impl Iterator<Item = (&'static str, Number)> {
        let int = |v: Option<u64>| v.map(Number::Int);
        let float = |v: Option<f64>| v.map(Number::Float);
        [
            (FRAMES_PROCESSED, int(self.frames_processed)),
            (SEGMENTS, int(self.segments)),
            (INPUT_WIDTH, int(self.input_width.map(u64::from))),
            (INPUT_HEIGHT, int(self.input_height.map(u64::from))),
            (OUTPUT_WIDTH, int(self.output_width.map(u64::from))),
            (OUTPUT_HEIGHT, int(self.output_height.map(u64::from))),
            (SCALE_FACTOR, float(self.effective_scale_factor())),
            (QUALITY_SCORE, float(self.quality_score)),
            (ENHANCEMENT_FACTOR, float(self.enhancement_factor)),
        ]
        .into_iter()
        .filter_map(|(name, v)| Some((name, v?)))
    }

    /// The recorded scale factor, or else output width over input width.
    pub fn effective_scale_factor(&self) -> Option<f64> {
        self.scale_factor.or_else(|| {
            let input = self.input_width.filter(|w| *w > 0)?;
            Some(f64::from(self.output_width?) / f64::from(input))
        })
    }
}

/// A frame size in pixels, written `WIDTHxHEIGHT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Resolution {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Resolution {
    /// A resolution of `width` by `height` pixels.
    pub const fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl std::str::FromStr for Resolution {
    type Err = ParseResolutionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (w, h) = s
            .split_once('x')
            .ok_or_else(|| ParseResolutionError(s.to_owned()))?;
        match (w.parse(), h.parse()) {
            (Ok(width), Ok(height)) => Ok(Self { width, height }),
            _ => Err(ParseResolutionError(s.to_owned())),
        }
    }
}

/// A resolution that is not `WIDTHxHEIGHT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid resolution {0:?}: expected WIDTHxHEIGHT, e.g. 1280x720")]
pub struct ParseResolutionError(String);

impl Serialize for Resolution {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Resolution {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A span with every contract field declared (`field::Empty`, to be recorded later):
/// `tracing::info_span!` plus the contract. Give it the span name and at least the
/// `strategy`; `target:` first is optional, as in `info_span!`. This is the span
/// [`Operation::start`](crate::operation::Operation::start) and `#[vidperf::track]` open.
///
/// ```
/// let span = vidperf_core::operation_span!("upscale", strategy = "vsrm", operation = "enhancement");
/// span.record("frames_processed", 48); // declared, so recorded like any field
/// ```
#[macro_export]
macro_rules! operation_span {
    (target: $target:expr, $name:expr, $($fields:tt)+) => {
        $crate::__private::tracing::info_span!(
            target: $target,
            $name,
            $($fields)+,
            frames_processed = $crate::__private::tracing::field::Empty,
            segments = $crate::__private::tracing::field::Empty,
            input_width = $crate::__private::tracing::field::Empty,
            input_height = $crate::__private::tracing::field::Empty,
            output_width = $crate::__private::tracing::field::Empty,
            output_height = $crate::__private::tracing::field::Empty,
            scale_factor = $crate::__private::tracing::field::Empty,
            quality_score = $crate::__private::tracing::field::Empty,
            enhancement_factor = $crate::__private::tracing::field::Empty,
            error = $crate::__private::tracing::field::Empty,
        )
    };
    ($name:expr, $($fields:tt)+) => {
        $crate::operation_span!(target: ::core::module_path!(), $name, $($fields)+)
    };
}

#[cfg(test)]
mod tests {
    use super::CONTRACT;

    #[test]
    fn operation_span_declares_exactly_the_contract() {
        let _guard = tracing::subscriber::set_default(tracing_subscriber::registry());
        let span = crate::operation_span!("op", strategy = "vsrm", operation = "enhancement");
        let declared: Vec<&str> = span
            .metadata()
            .expect("enabled")
            .fields()
            .iter()
            .map(|f| f.name())
            .collect();
        let mut contract: Vec<&str> = CONTRACT.iter().map(|f| f.name).collect();
        let mut sorted = declared.clone();
        sorted.sort_unstable();
        contract.sort_unstable();
        assert_eq!(sorted, contract);
    }
}
