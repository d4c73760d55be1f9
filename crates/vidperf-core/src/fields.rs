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

/// The strategy reported for an operation whose `strategy` field was never recorded.
pub const UNKNOWN_STRATEGY: &str = "unknown";

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
