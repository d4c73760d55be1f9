//! [`OperationRecord`]: one finished operation, as exported to JSON and CSV.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::fields::{OperationFields, Resolution};
use crate::ids::{SpanId, TraceId};
use crate::span::{FinishedSpan, ResourcePeaks};
use crate::stats::units::{self, ratio_as_exported};
use crate::value::FieldValue;

/// One finished operation, with the original design's field names so that scripts
/// written for it keep working. This is the row of the CSV export and the element of
/// the JSON export's `operations` array; `docs/FORMATS.md` documents every field.
///
/// Every measurement is optional: `None` means "not measured", never zero. Figures are
/// in base units (seconds, bytes, cores, ratios); the JSON and CSV formats write memory
/// in MiB and utilization in percent under the original names (`peak_memory_mb`,
/// `cpu_utilization_percent`, …). Utilization is kept at the formats' precision (1e-6),
/// so a record read back from either format equals the one written.
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
    /// Peak resident memory of the process during the operation, bytes (written as
    /// `peak_memory_mb`, MiB).
    #[serde(rename = "peak_memory_mb", with = "units::mib_bytes")]
    pub peak_memory_bytes: Option<u64>,
    /// Peak GPU memory used during the operation, bytes (written as
    /// `peak_gpu_memory_mb`, MiB).
    #[serde(rename = "peak_gpu_memory_mb", with = "units::mib_bytes")]
    pub peak_gpu_memory_bytes: Option<u64>,
    /// Peak process CPU, cores: 2.0 = two cores busy (written as
    /// `cpu_utilization_percent`, 200).
    #[serde(rename = "cpu_utilization_percent", with = "units::percent_ratio")]
    pub cpu_utilization: Option<f64>,
    /// Peak GPU utilization, 0.0–1.0 (written as `gpu_utilization_percent`).
    #[serde(rename = "gpu_utilization_percent", with = "units::percent_ratio")]
    pub gpu_utilization: Option<f64>,
    /// Mean GPU utilization from the driver's samples stamped inside the operation,
    /// 0.0–1.0 (written as `gpu_utilization_mean_percent`; left out when not measured).
    #[serde(
        rename = "gpu_utilization_mean_percent",
        with = "units::percent_ratio",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub gpu_utilization_mean: Option<f64>,
    /// Peak SM utilization of this process from the driver's per-process samples,
    /// 0.0–1.0 (written as `gpu_process_utilization_percent`; left out when not
    /// measured).
    #[serde(
        rename = "gpu_process_utilization_percent",
        with = "units::percent_ratio",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub gpu_process_utilization: Option<f64>,
    /// GPM SM utilization over the operation, 0.0–1.0 (written as
    /// `gpu_sm_utilization_percent`; left out where the GPU has no GPM).
    #[serde(
        rename = "gpu_sm_utilization_percent",
        with = "units::percent_ratio",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub gpu_sm_utilization: Option<f64>,
    /// GPM SM occupancy over the operation, 0.0–1.0 (written as
    /// `gpu_sm_occupancy_percent`; left out where the GPU has no GPM).
    #[serde(
        rename = "gpu_sm_occupancy_percent",
        with = "units::percent_ratio",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub gpu_sm_occupancy: Option<f64>,
    /// GPM tensor-core activity over the operation, 0.0–1.0 (written as
    /// `gpu_tensor_activity_percent`; left out where the GPU has no GPM).
    #[serde(
        rename = "gpu_tensor_activity_percent",
        with = "units::percent_ratio",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub gpu_tensor_activity: Option<f64>,
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
    /// Peak device memory used, bytes (written as `peak_gpu_memory_mb`, MiB).
    #[serde(rename = "peak_gpu_memory_mb", with = "units::mib_bytes")]
    pub peak_memory_bytes: Option<u64>,
    /// Peak utilization, 0.0–1.0 (written as `gpu_utilization_percent`).
    #[serde(rename = "gpu_utilization_percent", with = "units::percent_ratio")]
    pub utilization: Option<f64>,
}

/// The parts of a finished operation a record is made of.
pub(crate) struct Parts<'a> {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) operation_type: &'a str,
    pub(crate) strategy: &'a str,
    pub(crate) start_time: SystemTime,
    pub(crate) duration: std::time::Duration,
    pub(crate) fields: &'a OperationFields,
    pub(crate) error: Option<&'a str>,
    pub(crate) metadata: &'a [(std::borrow::Cow<'static, str>, FieldValue)],
    pub(crate) resources: &'a ResourcePeaks,
}

impl OperationRecord {
    /// The record of a finished operation; `None` for an ordinary span.
    pub fn from_span(span: &FinishedSpan) -> Option<Self> {
        let key = span.operation.as_ref()?;
        Some(Self::from_parts(&Parts {
            trace_id: span.trace_id,
            span_id: span.span_id,
            operation_type: &key.operation_type,
            strategy: &key.strategy,
            start_time: span.start_time,
            duration: span.duration,
            fields: &span.fields,
            error: span.error.as_deref(),
            metadata: &span.metadata,
            resources: &span.resources,
        }))
    }

    pub(crate) fn from_parts(p: &Parts<'_>) -> Self {
        let r = p.resources;
        let span_id = p.span_id.to_string();
        let start_time = to_micros(p.start_time);
        Self {
            operation_id: span_id.clone(),
            operation_type: p.operation_type.to_owned(),
            strategy: p.strategy.to_owned(),
            start_time,
            end_time: to_micros(p.start_time + p.duration),
            duration_seconds: p.duration.as_secs_f64(),
            success: p.error.is_none(),
            error_message: p.error.map(str::to_owned),
            frames_processed: p.fields.frames_processed,
            segments: p.fields.segments,
            input_resolution: p.fields.input_resolution(),
            output_resolution: p.fields.output_resolution(),
            scale_factor: p.fields.effective_scale_factor(),
            quality_score: p.fields.quality_score,
            enhancement_factor: p.fields.enhancement_factor,
            peak_memory_bytes: r.process_memory_bytes,
            peak_gpu_memory_bytes: r.gpu_memory_bytes,
            cpu_utilization: r.process_cpu_utilization.map(ratio_as_exported),
            gpu_utilization: r.gpu_utilization.map(ratio_as_exported),
            gpu_utilization_mean: r.gpu_utilization_mean.map(ratio_as_exported),
            gpu_process_utilization: r.gpu_process_utilization.map(ratio_as_exported),
            gpu_sm_utilization: r.gpu_sm_utilization.map(ratio_as_exported),
            gpu_sm_occupancy: r.gpu_sm_occupancy.map(ratio_as_exported),
            gpu_tensor_activity: r.gpu_tensor_activity.map(ratio_as_exported),
            samples: r.samples,
            trace_id: p.trace_id.to_string(),
            span_id,
            metadata: p
                .metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            gpu_devices: r
                .devices
                .iter()
                .map(|d| DeviceRecord {
                    index: d.index,
                    peak_memory_bytes: d.memory_bytes,
                    utilization: d.utilization.map(ratio_as_exported),
                })
                .collect(),
        }
    }

    /// A record with every optional figure absent, at the Unix epoch (what the CSV
    /// reader fills in, column by column).
    pub(crate) fn blank() -> Self {
        Self {
            operation_id: String::new(),
            operation_type: String::new(),
            strategy: String::new(),
            start_time: std::time::UNIX_EPOCH,
            end_time: std::time::UNIX_EPOCH,
            duration_seconds: 0.0,
            success: true,
            error_message: None,
            frames_processed: None,
            segments: None,
            input_resolution: None,
            output_resolution: None,
            scale_factor: None,
            quality_score: None,
            enhancement_factor: None,
            peak_memory_bytes: None,
            peak_gpu_memory_bytes: None,
            cpu_utilization: None,
            gpu_utilization: None,
            gpu_utilization_mean: None,
            gpu_process_utilization: None,
            gpu_sm_utilization: None,
            gpu_sm_occupancy: None,
            gpu_tensor_activity: None,
            samples: None,
            trace_id: String::new(),
            span_id: String::new(),
            metadata: BTreeMap::new(),
            gpu_devices: Vec::new(),
        }
    }

    /// Frames per second, when frames were recorded and the duration is not zero.
    pub fn fps(&self) -> Option<f64> {
        let frames = self.frames_processed? as f64;
        (self.duration_seconds > 0.0).then(|| frames / self.duration_seconds)
    }
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::ids::{SpanId, TraceId};
    use crate::span::OperationKey;

    fn span() -> FinishedSpan {
        let key = OperationKey {
            operation_type: "enhancement".into(),
            strategy: "seedvr2".into(),
        };
        let ids = (TraceId::from_bytes([1; 16]), SpanId::from_bytes([2; 8]));
        FinishedSpan::operation(
            key,
            ids,
            UNIX_EPOCH + Duration::from_secs(1_790_000_000),
            Duration::from_millis(300),
        )
    }

    #[test]
    fn driver_and_gpm_figures_are_written_in_percent_when_measured_and_left_out_otherwise() {
        let mut measured = span();
        let r = &mut measured.resources;
        r.gpu_utilization = Some(0.7);
        r.gpu_utilization_mean = Some(0.55);
        r.gpu_process_utilization = Some(0.61);
        r.gpu_sm_utilization = Some(0.625);
        r.gpu_sm_occupancy = Some(0.3);
        r.gpu_tensor_activity = Some(0.125);
        let record = OperationRecord::from_span(&measured).expect("an operation");
        let json = serde_json::to_value(&record).expect("serialize");
        for (key, want) in [
            ("gpu_utilization_percent", 70.0),
            ("gpu_utilization_mean_percent", 55.0),
            ("gpu_process_utilization_percent", 61.0),
            ("gpu_sm_utilization_percent", 62.5),
            ("gpu_sm_occupancy_percent", 30.0),
            ("gpu_tensor_activity_percent", 12.5),
        ] {
            assert_eq!(json[key].as_f64(), Some(want), "{key}: {json}");
        }
        let back: OperationRecord = serde_json::from_value(json).expect("read back");
        assert_eq!(back, record);

        // Not measured (no GPM, no driver samples): absent from the file, not 0 or null,
        // and a file without them reads back.
        let record = OperationRecord::from_span(&span()).expect("an operation");
        let json = serde_json::to_value(&record).expect("serialize");
        for key in [
            "gpu_utilization_mean_percent",
            "gpu_process_utilization_percent",
            "gpu_sm_utilization_percent",
            "gpu_sm_occupancy_percent",
            "gpu_tensor_activity_percent",
        ] {
            assert!(json.get(key).is_none(), "{key}: {json}");
        }
        assert!(
            json["gpu_utilization_percent"].is_null(),
            "the 0.1.0 field stays"
        );
        let back: OperationRecord = serde_json::from_value(json).expect("read back");
        assert_eq!(back, record);
    }
}
