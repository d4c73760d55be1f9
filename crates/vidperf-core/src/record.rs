//! [`OperationRecord`]: one finished operation, as exported to JSON and CSV.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::fields::{OperationFields, Resolution};
use crate::figure::{FIGURES, Figure, Figures};
use crate::ids::{SpanId, TraceId};
use crate::span::{FinishedSpan, ResourcePeaks};
use crate::value::FieldValue;
use crate::wire::{self, rfc3339};

/// One finished operation, with the original design's field names so that scripts
/// written for it keep working. This is the row of the CSV export and the element of
/// the JSON export's `operations` array; `docs/FORMATS.md` documents every field.
///
/// Every measurement is optional: `None` means "not measured", never zero. Figures are
/// in base units (seconds, bytes, cores, ratios, watts, joules); the JSON and CSV
/// formats write memory in MiB and utilization in percent under the original names
/// (`peak_memory_mb`, `cpu_utilization_percent`, …), each figure under its key in
/// [`FIGURES`](crate::figure::FIGURES). Figures are kept at the formats' precision
/// (whole bytes, ratios to 1e-6), so a record read back from either format equals the
/// one written.
#[derive(Clone, Debug, PartialEq, Deserialize)]
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
    /// The resource figures during the operation, in base units.
    #[serde(flatten, deserialize_with = "record_figures")]
    pub figures: Figures,
    /// Resource samples taken during the operation.
    pub samples: Option<u64>,
    /// The trace id, 32 hex digits.
    pub trace_id: String,
    /// The span id, 16 hex digits (equal to `operation_id`).
    pub span_id: String,
    /// Every other field recorded on the operation.
    pub metadata: BTreeMap<String, FieldValue>,
    /// Per-GPU figures, on machines with more than one GPU (empty otherwise).
    #[serde(default)]
    pub gpu_devices: Vec<DeviceRecord>,
    /// Whether it was cancelled: dropped before it completed (then `success` is false
    /// and `error_message` is `cancelled`). Written only when true.
    #[serde(default)]
    pub cancelled: bool,
    /// The span it ran under (the request it belonged to), 16 hex digits; written only
    /// when it had one.
    #[serde(default)]
    pub parent_span_id: Option<String>,
    /// Whether that parent lives in another process (joined with
    /// `SpanExt::set_parent`); written only with a parent.
    #[serde(default)]
    pub parent_is_remote: bool,
    /// How many other operations of this process ran alongside it at most (0: it had
    /// the process and its GPUs to itself, so its peaks are its own); written only when
    /// known.
    #[serde(default)]
    pub overlapping_operations: Option<u32>,
}

fn record_figures<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Figures, D::Error> {
    wire::deserialize_figures(d, false)
}

fn device_figures<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Figures, D::Error> {
    wire::deserialize_figures(d, true)
}

/// The record's fields in order, its figures among them under their own keys.
impl Serialize for OperationRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("operation_id", &self.operation_id)?;
        map.serialize_entry("operation_type", &self.operation_type)?;
        map.serialize_entry("strategy", &self.strategy)?;
        map.serialize_entry("start_time", &rfc3339::format(self.start_time))?;
        map.serialize_entry("end_time", &rfc3339::format(self.end_time))?;
        map.serialize_entry("duration_seconds", &self.duration_seconds)?;
        map.serialize_entry("success", &self.success)?;
        map.serialize_entry("error_message", &self.error_message)?;
        map.serialize_entry("frames_processed", &self.frames_processed)?;
        map.serialize_entry("segments", &self.segments)?;
        map.serialize_entry("input_resolution", &self.input_resolution)?;
        map.serialize_entry("output_resolution", &self.output_resolution)?;
        map.serialize_entry("scale_factor", &self.scale_factor)?;
        map.serialize_entry("quality_score", &self.quality_score)?;
        map.serialize_entry("enhancement_factor", &self.enhancement_factor)?;
        wire::write_figures(
            &mut map,
            &self.figures,
            FIGURES.iter(),
            self.frames_processed,
        )?;
        map.serialize_entry("samples", &self.samples)?;
        map.serialize_entry("trace_id", &self.trace_id)?;
        map.serialize_entry("span_id", &self.span_id)?;
        map.serialize_entry("metadata", &self.metadata)?;
        map.serialize_entry("gpu_devices", &self.gpu_devices)?;
        if self.cancelled {
            map.serialize_entry("cancelled", &true)?;
        }
        if let Some(parent) = &self.parent_span_id {
            map.serialize_entry("parent_span_id", parent)?;
            map.serialize_entry("parent_is_remote", &self.parent_is_remote)?;
        }
        if let Some(n) = self.overlapping_operations {
            map.serialize_entry("overlapping_operations", &n)?;
        }
        map.end()
    }
}

/// The figures of one GPU during an operation, as exported (those marked
/// [`per_device`](crate::figure::FigureDef::per_device)).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct DeviceRecord {
    /// NVML device index.
    pub index: u32,
    /// The device's figures, in base units (written under the same keys as the
    /// record's: `peak_gpu_memory_mb`, `gpu_utilization_percent`, …).
    #[serde(flatten, deserialize_with = "device_figures")]
    pub figures: Figures,
}

impl DeviceRecord {
    /// A figure's value, when measured.
    pub fn get(&self, figure: Figure) -> Option<f64> {
        self.figures.get(figure)
    }

    /// A bytes figure as whole bytes, when measured.
    pub fn bytes(&self, figure: Figure) -> Option<u64> {
        self.figures.bytes(figure)
    }
}

impl Serialize for DeviceRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("index", &self.index)?;
        let per_device = FIGURES.iter().filter(|d| d.per_device);
        wire::write_figures(&mut map, &self.figures, per_device, None)?;
        map.end()
    }
}

/// Figures at the formats' precision (what reading them back gives).
fn at_wire_precision(figures: &Figures) -> Figures {
    figures
        .iter()
        .map(|(f, v)| (f, wire::at_wire_precision(f.def(), v)))
        .collect()
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
    pub(crate) cancelled: bool,
    pub(crate) parent: Option<(SpanId, bool)>,
    pub(crate) overlap: Option<u32>,
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
            cancelled: span.cancelled,
            parent: span.parent_span_id.map(|p| (p, span.parent_is_remote)),
            overlap: None,
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
            figures: at_wire_precision(&r.figures),
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
                    figures: at_wire_precision(&d.figures),
                })
                .collect(),
            cancelled: p.cancelled,
            parent_span_id: p.parent.map(|(id, _)| id.to_string()),
            parent_is_remote: p.parent.is_some_and(|(_, remote)| remote),
            overlapping_operations: p.overlap,
        }
    }

    /// What a CSV export keeps of this record: the CSV has the original design's
    /// columns, so the JSON-only fields — the parent and how many operations overlapped
    /// it — are absent; a cancellation reads back from `success = false` and
    /// `error_message = cancelled`.
    #[must_use]
    pub fn as_in_csv(&self) -> Self {
        Self {
            parent_span_id: None,
            parent_is_remote: false,
            overlapping_operations: None,
            ..self.clone()
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
            figures: Figures::none(),
            samples: None,
            trace_id: String::new(),
            span_id: String::new(),
            metadata: BTreeMap::new(),
            gpu_devices: Vec::new(),
            cancelled: false,
            parent_span_id: None,
            parent_is_remote: false,
            overlapping_operations: None,
        }
    }

    /// A figure's value, when measured.
    pub fn get(&self, figure: Figure) -> Option<f64> {
        self.figures.get(figure)
    }

    /// A bytes figure as whole bytes, when measured.
    pub fn bytes(&self, figure: Figure) -> Option<u64> {
        self.figures.bytes(figure)
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
        let r = &mut measured.resources.figures;
        r.set(Figure::GpuUtilization, Some(0.7));
        r.set(Figure::GpuUtilizationMean, Some(0.55));
        r.set(Figure::GpuProcessUtilization, Some(0.61));
        r.set(Figure::GpuSmUtilization, Some(0.625));
        r.set(Figure::GpuSmOccupancy, Some(0.3));
        r.set(Figure::GpuTensorActivity, Some(0.125));
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

    #[test]
    fn energy_is_written_in_joules_and_per_frame_with_the_power_peak() {
        let mut measured = span();
        measured.fields.frames_processed = Some(60);
        let r = &mut measured.resources.figures;
        r.set(Figure::GpuEnergy, Some(30.0));
        r.set(Figure::GpuPower, Some(412.5));
        r.set(Figure::GpuDecoderUtilization, Some(0.25));
        let record = OperationRecord::from_span(&measured).expect("an operation");
        let json = serde_json::to_value(&record).expect("serialize");
        assert_eq!(json["gpu_energy_joules"].as_f64(), Some(30.0));
        assert_eq!(json["gpu_energy_per_frame_joules"].as_f64(), Some(0.5));
        assert_eq!(json["peak_gpu_power_watts"].as_f64(), Some(412.5));
        assert_eq!(json["gpu_decoder_utilization_percent"].as_f64(), Some(25.0));
        assert!(json.get("gpu_encoder_utilization_percent").is_none());
        let back: OperationRecord = serde_json::from_value(json).expect("read back");
        assert_eq!(back, record);

        let stats = crate::Stats::default();
        stats.record(&measured);
        let mut other = span();
        other.fields.frames_processed = Some(40);
        other.resources.figures.set(Figure::GpuEnergy, Some(10.0));
        stats.record(&other);
        let snap = stats.snapshot();
        let seedvr2 = &snap.by_strategy["seedvr2"].resources;
        let energy = seedvr2.get(Figure::GpuEnergy).expect("energy");
        assert_eq!(
            (energy.max, energy.mean, energy.total),
            (30.0, 20.0, Some(40.0))
        );
        assert_eq!(
            seedvr2.per_frame(Figure::GpuEnergy),
            Some(0.4),
            "40 J over 100 frames"
        );
        let json = serde_json::to_value(&snap.by_strategy["seedvr2"]).expect("stats json");
        assert_eq!(
            json["resources"]["gpu_energy_per_frame_joules"].as_f64(),
            Some(0.4)
        );
        assert_eq!(
            json["resources"]["gpu_energy_joules"]["total"].as_f64(),
            Some(40.0)
        );
    }
}
