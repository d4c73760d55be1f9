//! [`OperationRecord`]: one finished operation, as exported to JSON and CSV.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::fields::Resolution;
use crate::span::FinishedSpan;
use crate::value::FieldValue;

const MIB: f64 = 1024.0 * 1024.0;

/// One finished operation, with the original design's field names so that scripts
/// written for it keep working. This is the row of the CSV export and the element of
/// the JSON export's `operations` array; `docs/FORMATS.md` documents every field.
///
/// Every measurement is optional: `None` means "not measured", never zero.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OperationRecord {
    /// The operation's span id, 16 hex digits.
    pub operation_id: String,
    /// The `operation` field, or the span name.
    pub operation_type: String,
    /// The `strategy` field.
    pub strategy: String,
    /// Start, RFC 3339 UTC with microseconds.
    #[serde(with = "rfc3339")]
    pub start_time: SystemTime,
    /// End, RFC 3339 UTC with microseconds.
    #[serde(with = "rfc3339")]
    pub end_time: SystemTime,
    /// Duration in seconds, from the monotonic clock.
    pub duration_seconds: f64,
    /// Whether the operation succeeded.
    pub success: bool,
    /// Why it failed.
    pub error_message: Option<String>,
    /// Frames processed.
    pub frames_processed: Option<u64>,
    /// Segments processed.
    pub segments: Option<u64>,
    /// Input resolution, `WIDTHxHEIGHT`.
    pub input_resolution: Option<Resolution>,
    /// Output resolution, `WIDTHxHEIGHT`.
    pub output_resolution: Option<Resolution>,
    /// Scale factor (recorded, or output width over input width).
    pub scale_factor: Option<f64>,
    /// Quality score, 0.0–1.0.
    pub quality_score: Option<f64>,
    /// Improvement over the input.
    pub enhancement_factor: Option<f64>,
    /// Peak resident memory of the process during the operation, MiB.
    pub peak_memory_mb: Option<f64>,
    /// Peak GPU memory used during the operation, MiB.
    pub peak_gpu_memory_mb: Option<f64>,
    /// Peak process CPU utilization, percent of one core (200 = two cores busy).
    pub cpu_utilization_percent: Option<f64>,
    /// Peak GPU utilization, percent.
    pub gpu_utilization_percent: Option<f64>,
    /// Resource samples taken during the operation.
    pub samples: Option<u64>,
    /// The trace id, 32 hex digits.
    pub trace_id: String,
    /// The span id, 16 hex digits (equal to `operation_id`).
    pub span_id: String,
    /// Every other field recorded on the operation.
    pub metadata: BTreeMap<String, FieldValue>,
    /// Per-GPU peaks, on machines with more than one GPU (empty otherwise).
    #[serde(default)]
    pub gpu_devices: Vec<DeviceRecord>,
}

/// The peaks of one GPU during an operation, as exported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeviceRecord {
    /// NVML device index.
    pub index: u32,
    /// Peak device memory used, MiB.
    pub peak_gpu_memory_mb: Option<f64>,
    /// Peak utilization, percent.
    pub gpu_utilization_percent: Option<f64>,
}

impl OperationRecord {
    /// The record of a finished operation; `None` for an ordinary span.
    pub fn from_span(span: &FinishedSpan) -> Option<Self> {
        let key = span.operation.as_ref()?;
        let r = &span.resources;
        let span_id = span.span_id.to_string();
        Some(Self {
            operation_id: span_id.clone(),
            operation_type: key.operation_type.to_string(),
            strategy: key.strategy.to_string(),
            start_time: to_micros(span.start_time),
            end_time: to_micros(span.end_time),
            duration_seconds: span.duration.as_secs_f64(),
            success: span.is_success(),
            error_message: span.error.clone(),
            frames_processed: span.fields.frames_processed,
            segments: span.fields.segments,
            input_resolution: span.fields.input_resolution(),
            output_resolution: span.fields.output_resolution(),
            scale_factor: span.fields.effective_scale_factor(),
            quality_score: span.fields.quality_score,
            enhancement_factor: span.fields.enhancement_factor,
            peak_memory_mb: r.process_memory_bytes.map(|b| b as f64 / MIB),
            peak_gpu_memory_mb: r.gpu_memory_bytes.map(|b| b as f64 / MIB),
            cpu_utilization_percent: r.process_cpu_utilization.map(percent),
            gpu_utilization_percent: r.gpu_utilization.map(percent),
            samples: r.samples,
            trace_id: span.trace_id.to_string(),
            span_id,
            metadata: span
                .metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            gpu_devices: r
                .devices
                .iter()
                .map(|d| DeviceRecord {
                    index: d.index,
                    peak_gpu_memory_mb: d.memory_bytes.map(|b| b as f64 / MIB),
                    gpu_utilization_percent: d.utilization.map(percent),
                })
                .collect(),
        })
    }

    /// Frames per second, when frames were recorded and the duration is not zero.
    pub fn fps(&self) -> Option<f64> {
        let frames = self.frames_processed? as f64;
        (self.duration_seconds > 0.0).then(|| frames / self.duration_seconds)
    }
}

/// A ratio (1.0 = 100%) as a percentage rounded to 1e-4, so that 0.55 reads 55, not
/// 55.00000000000001.
pub(crate) fn percent(ratio: f64) -> f64 {
    (ratio * 1e6).round() / 1e4
}

/// `time` cut to whole microseconds, the precision of the exports, so that a record
/// read back from JSON or CSV equals the one written.
fn to_micros(time: SystemTime) -> SystemTime {
    match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => {
            std::time::UNIX_EPOCH + std::time::Duration::from_micros(since.as_micros() as u64)
        }
        Err(_) => time,
    }
}

/// RFC 3339 timestamps (UTC, microseconds) for serde.
pub(crate) mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn format(time: SystemTime) -> String {
        humantime::format_rfc3339_micros(time).to_string()
    }

    pub(crate) fn parse(text: &str) -> Result<SystemTime, humantime::TimestampError> {
        humantime::parse_rfc3339(text)
    }

    pub(crate) fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_micros(*time))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }
}
