//! Metrics as one model, encoded twice: every metric vidperf exports is a [`Family`] of
//! [`Point`]s with OpenTelemetry names, units and attributes, built from the statistics
//! (per (operation, strategy) pair: durations by outcome, frames, quality, every resource
//! figure of [`FIGURES`]) and from each part's health (the
//! resource monitor's live device gauges, the OTLP export's span counts, alert states).
//! The OTLP bridge sends the families as OTLP metrics; `/metrics` writes the same
//! families in the Prometheus text format, each name and attribute translated by the
//! OpenTelemetry rules for Prometheus ([`prometheus_name`], [`prometheus_label`]) — the
//! names a collector's Prometheus exporter would give them. So both outputs carry the
//! same figures with the same attribute sets, by construction.
//!
//! | OTLP | Prometheus |
//! |---|---|
//! | `vidperf.operation.duration` (histogram, s) `{vidperf.operation, vidperf.strategy, vidperf.outcome}` | `vidperf_operation_duration_seconds_bucket{vidperf_operation, vidperf_strategy, vidperf_outcome, le}` |
//! | `vidperf.operation.frames` (counter, `{frame}`) | `vidperf_operation_frames_total` |
//! | `hw.gpu.memory.usage` (gauge, By) `{hw.id, hw.type}` | `hw_gpu_memory_usage_bytes{hw_id, hw_type}` |
//!
//! `docs/FORMATS.md` lists every family; a test holds it to [`family_defs`].

mod text;

use std::borrow::Cow;
use std::time::SystemTime;

pub use text::{
    OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, encode_openmetrics, encode_prometheus,
};

use crate::figure::{FIGURES, Over};

/// What a family's points are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A monotonic sum (cumulative since start).
    Counter,
    /// A value now.
    Gauge,
    /// Bucketed observations with their count and sum (cumulative since start).
    Histogram,
}

/// A family's name, unit, kind and help: declared once, as a constant or a figure's
/// table row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FamilyDef {
    /// The OpenTelemetry name (`vidperf.operation.duration`, `hw.gpu.memory.usage`).
    pub name: &'static str,
    /// The UCUM unit (`s`, `By`, `1`, `{frame}`).
    pub unit: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// One line of help.
    pub help: &'static str,
}

impl FamilyDef {
    /// A family definition.
    pub const fn new(
        name: &'static str,
        unit: &'static str,
        kind: Kind,
        help: &'static str,
    ) -> Self {
        Self {
            name,
            unit,
            kind,
            help,
        }
    }

    /// The Prometheus name of this family ([`prometheus_name`]).
    pub fn prometheus_name(&self) -> String {
        prometheus_name(self.name, self.unit, self.kind)
    }
}

/// One series of a family: its attributes and its value.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Point {
    /// Attribute keys (OpenTelemetry names) and values, in a fixed order per family.
    pub attributes: Vec<(&'static str, Cow<'static, str>)>,
    /// The value.
    pub value: Value,
}

impl Point {
    /// A point with these attributes.
    pub fn new(attributes: Vec<(&'static str, Cow<'static, str>)>, value: Value) -> Self {
        Self { attributes, value }
    }
}

/// A point's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A counter's or a gauge's number.
    Number(f64),
    /// A histogram's buckets.
    Histogram(HistogramValue),
}

/// A histogram point: observations per bucket (not cumulative) at explicit upper bounds
/// (inclusive), with the count, the sum and the extremes.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct HistogramValue {
    /// Upper bounds, increasing; the last bucket (`+Inf`) is implicit.
    pub bounds: &'static [f64],
    /// Observations per bucket, `bounds.len() + 1` of them.
    pub counts: Vec<u64>,
    /// All observations.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest and the largest, when known.
    pub min: Option<f64>,
    /// See `min`.
    pub max: Option<f64>,
    /// Recent observations with the trace they belong to, at most one per bucket.
    pub exemplars: Vec<Exemplar>,
}

impl HistogramValue {
    /// A histogram point.
    pub fn new(bounds: &'static [f64], counts: Vec<u64>, count: u64, sum: f64) -> Self {
        Self {
            bounds,
            counts,
            count,
            sum,
            min: None,
            max: None,
            exemplars: Vec::new(),
        }
    }

    /// Cumulative counts at each bound (`le`), then `+Inf`.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let mut total = 0;
        self.bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(&self.counts)
            .map(move |(le, n)| {
                total += n;
                (le, total)
            })
    }
}

/// One observation with the trace and span it came from.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Exemplar {
    /// The observed value.
    pub value: f64,
    /// When it was observed.
    pub time: SystemTime,
    /// The trace, 16 bytes.
    pub trace_id: [u8; 16],
    /// The span, 8 bytes.
    pub span_id: [u8; 8],
}

impl Exemplar {
    /// An exemplar.
    pub fn new(value: f64, time: SystemTime, trace_id: [u8; 16], span_id: [u8; 8]) -> Self {
        Self {
            value,
            time,
            trace_id,
            span_id,
        }
    }
}

/// A family with its points.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Family {
    /// Name, unit, kind and help.
    pub def: FamilyDef,
    /// The series.
    pub points: Vec<Point>,
}

impl Family {
    /// An empty family.
    pub fn new(def: FamilyDef) -> Self {
        Self {
            def,
            points: Vec::new(),
        }
    }

    /// Adds a number point.
    pub fn push(&mut self, attributes: Vec<(&'static str, Cow<'static, str>)>, value: f64) {
        self.points
            .push(Point::new(attributes, Value::Number(value)));
    }
}

/// Every metric at one instant: what `/metrics` and the OTLP metrics export encode.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Metrics {
    /// When the statistics started (the start of every cumulative series).
    pub start_time: SystemTime,
    /// When these were read.
    pub time: SystemTime,
    /// The families; a family with no point is left out.
    pub families: Vec<Family>,
}

impl Metrics {
    /// Families read at `time`, of series that started at `start_time`.
    pub fn new(start_time: SystemTime, time: SystemTime, families: Vec<Family>) -> Self {
        Self {
            start_time,
            time,
            families,
        }
    }

    /// The family named `name` (OpenTelemetry name), if it has points.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.def.name == name)
    }
}

/// The attribute keys vidperf's metrics use.
pub mod attr {
    /// Operation type.
    pub const OPERATION: &str = "vidperf.operation";
    /// Strategy.
    pub const STRATEGY: &str = "vidperf.strategy";
    /// `success` or `failure`.
    pub const OUTCOME: &str = "vidperf.outcome";
    /// A device's index (semantic conventions' `hw.id`).
    pub const HW_ID: &str = "hw.id";
    /// `gpu` on device gauges (semantic conventions' `hw.type`).
    pub const HW_TYPE: &str = "hw.type";
    /// `decoder`, `encoder` on `hw.gpu.utilization` (semantic conventions'
    /// `hw.gpu.task`).
    pub const HW_GPU_TASK: &str = "hw.gpu.task";
}

/// The families of the statistics, declared once.
pub mod family {
    use super::{FamilyDef, Kind};

    /// Duration of finished operations by operation type, strategy and outcome.
    pub const OPERATION_DURATION: FamilyDef = FamilyDef::new(
        "vidperf.operation.duration",
        "s",
        Kind::Histogram,
        "Duration of finished operations (the count is the number of operations), by operation type, strategy and outcome.",
    );
    /// Frames processed.
    pub const OPERATION_FRAMES: FamilyDef = FamilyDef::new(
        "vidperf.operation.frames",
        "{frame}",
        Kind::Counter,
        "Frames processed by finished operations.",
    );
    /// Segments processed.
    pub const OPERATION_SEGMENTS: FamilyDef = FamilyDef::new(
        "vidperf.operation.segments",
        "{segment}",
        Kind::Counter,
        "Segments processed by finished operations.",
    );
    /// Frames per second since start.
    pub const OPERATION_FPS: FamilyDef = FamilyDef::new(
        "vidperf.operation.frames_per_second",
        "{frame}/s",
        Kind::Gauge,
        "Frames over the duration of the operations that reported frames, since start.",
    );
    /// Quality scores.
    pub const OPERATION_QUALITY: FamilyDef = FamilyDef::new(
        "vidperf.operation.quality",
        "1",
        Kind::Histogram,
        "Quality score (0-1) of finished operations.",
    );
    /// Operations running now.
    pub const OPERATIONS_ACTIVE: FamilyDef = FamilyDef::new(
        "vidperf.operations.active",
        "{operation}",
        Kind::Gauge,
        "Operations running now.",
    );
    /// Seconds since the statistics started.
    pub const UPTIME: FamilyDef = FamilyDef::new(
        "vidperf.uptime",
        "s",
        Kind::Gauge,
        "Seconds since the statistics started.",
    );
    /// Records held for export.
    pub const HISTORY_RECORDS: FamilyDef = FamilyDef::new(
        "vidperf.history.records",
        "{record}",
        Kind::Gauge,
        "Operation records held for export.",
    );
    /// Records purged.
    pub const HISTORY_PURGED: FamilyDef = FamilyDef::new(
        "vidperf.history.purged",
        "{record}",
        Kind::Counter,
        "Oldest records purged to respect the history limit (still counted in every statistic).",
    );
    /// Operations under `__overflow__`.
    pub const OVERFLOW: FamilyDef = FamilyDef::new(
        "vidperf.overflow.operations",
        "{operation}",
        Kind::Counter,
        "Operations counted under __overflow__ because a key cap was reached, by dimension (pair: the cap on operation type and strategy pairs).",
    );
    /// Sink panics.
    pub const SINK_PANICS: FamilyDef = FamilyDef::new(
        "vidperf.sink.panics",
        "{panic}",
        Kind::Counter,
        "Panics caught in sinks (each lost one span for that sink).",
    );

    /// Bytes the statistics hold on the heap.
    pub const HEAP: FamilyDef = FamilyDef::new(
        "vidperf.stats.heap",
        "By",
        Kind::Gauge,
        "Bytes the statistics hold on the heap (an estimate from capacities).",
    );

    /// Every family of the statistics but the figures' (see [`super::family_defs`]).
    pub const STATS: [FamilyDef; 12] = [
        OPERATION_DURATION,
        OPERATION_FRAMES,
        OPERATION_SEGMENTS,
        OPERATION_FPS,
        OPERATION_QUALITY,
        OPERATIONS_ACTIVE,
        UPTIME,
        HISTORY_RECORDS,
        HISTORY_PURGED,
        OVERFLOW,
        SINK_PANICS,
        HEAP,
    ];
}

/// The histogram of a resource figure per (operation, strategy).
pub fn figure_family(def: &'static crate::figure::FigureDef) -> FamilyDef {
    FamilyDef::new(def.attribute, def.unit.otel(), Kind::Histogram, def.doc)
}

/// The gauge of a figure's highest value per (operation, strategy) since start (the
/// Prometheus text format's histograms carry no maximum; OTLP's do, and this says the
/// same).
pub fn figure_max_family(def: &'static crate::figure::FigureDef) -> FamilyDef {
    FamilyDef::new(
        def.max_metric,
        def.unit.otel(),
        Kind::Gauge,
        "The highest value of the figure over the operations since start.",
    )
}

/// The per-frame gauge of a total figure (energy per frame), since start.
pub fn per_frame_family(def: &'static crate::figure::FigureDef) -> Option<FamilyDef> {
    let (name, _) = def.per_frame?;
    Some(FamilyDef::new(
        name,
        per_frame_unit(def),
        Kind::Gauge,
        "A total figure over the frames of the operations that recorded both, since start.",
    ))
}

fn per_frame_unit(def: &crate::figure::FigureDef) -> &'static str {
    match def.unit {
        crate::figure::Unit::Joules => "J/{frame}",
        _ => "1",
    }
}

/// The families the statistics export: [`family::STATS`], then one histogram per
/// resource figure (and a per-frame gauge for totals). The resource monitor, the OTLP
/// export and the alert rules declare their own.
pub fn family_defs() -> Vec<FamilyDef> {
    let mut out = family::STATS.to_vec();
    for def in &FIGURES {
        out.push(figure_family(def));
        out.push(figure_max_family(def));
        if def.over == Over::Total {
            out.extend(per_frame_family(def));
        }
    }
    out
}

/// The Prometheus name of an OpenTelemetry metric, by the OpenTelemetry rules for
/// Prometheus: characters outside `[a-zA-Z0-9_:]` become `_`, the unit is appended
/// (`By` → `bytes`, `s` → `seconds`, `1` → `ratio` for gauges, `J` → `joules`, `W` →
/// `watts`, `X/Y` → `X_per_Y`; annotations in braces are dropped) unless the name
/// already ends with it, and counters end in `_total`.
pub fn prometheus_name(name: &str, unit: &str, kind: Kind) -> String {
    let mut out = sanitize(name);
    let suffix = unit_suffix(unit, kind);
    if !suffix.is_empty() && !out.ends_with(&suffix) {
        out.push('_');
        out.push_str(&suffix);
    }
    if kind == Kind::Counter && !out.ends_with("_total") {
        out.push_str("_total");
    }
    out
}

/// The Prometheus label of an OpenTelemetry attribute key (`hw.id` → `hw_id`).
pub fn prometheus_label(key: &str) -> String {
    sanitize(key)
}

fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "By" => "bytes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "J" => "joules",
        "W" => "watts",
        "1" => return None,
        _ => return None,
    })
}

fn unit_suffix(unit: &str, kind: Kind) -> String {
    // Annotations (`{frame}`) carry no unit.
    let stripped: String = {
        let mut depth = 0;
        unit.chars()
            .filter(|c| match c {
                '{' => {
                    depth += 1;
                    false
                }
                '}' => {
                    depth -= 1;
                    false
                }
                _ => depth == 0,
            })
            .collect()
    };
    if unit == "1" {
        return if kind == Kind::Gauge {
            "ratio".to_owned()
        } else {
            String::new()
        };
    }
    match stripped.split_once('/') {
        // A denominator that was only an annotation (`J/{frame}`): the numerator's word.
        Some((num, "")) => unit_word(num).unwrap_or_default().to_owned(),
        Some((num, den)) => {
            let den = match den {
                "s" => "second",
                "m" => "minute",
                "h" => "hour",
                "d" => "day",
                other => return format!("{}per_{other}", word_or(num)),
            };
            format!("{}per_{den}", word_or(num))
        }
        None => unit_word(&stripped).unwrap_or_default().to_owned(),
    }
}

/// `X_` for a numerator with a word, nothing otherwise (`{frame}/s` → `per_second`).
fn word_or(numerator: &str) -> String {
    match unit_word(numerator) {
        Some(w) => format!("{w}_"),
        None if numerator.is_empty() => String::new(),
        None => format!("{}_", sanitize(numerator)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_translate_by_the_opentelemetry_rules() {
        let cases = [
            (
                "vidperf.operation.duration",
                "s",
                Kind::Histogram,
                "vidperf_operation_duration_seconds",
            ),
            (
                "vidperf.operation.frames",
                "{frame}",
                Kind::Counter,
                "vidperf_operation_frames_total",
            ),
            (
                "vidperf.operation.frames_per_second",
                "{frame}/s",
                Kind::Gauge,
                "vidperf_operation_frames_per_second",
            ),
            (
                "hw.gpu.memory.usage",
                "By",
                Kind::Gauge,
                "hw_gpu_memory_usage_bytes",
            ),
            (
                "hw.gpu.utilization",
                "1",
                Kind::Gauge,
                "hw_gpu_utilization_ratio",
            ),
            ("hw.energy", "J", Kind::Counter, "hw_energy_joules_total"),
            ("hw.power", "W", Kind::Gauge, "hw_power_watts"),
            (
                "vidperf.gpu.utilization.peak",
                "1",
                Kind::Histogram,
                "vidperf_gpu_utilization_peak",
            ),
            (
                "vidperf.gpu.energy.per_frame",
                "J/{frame}",
                Kind::Gauge,
                "vidperf_gpu_energy_per_frame_joules",
            ),
            ("vidperf.uptime", "s", Kind::Gauge, "vidperf_uptime_seconds"),
            (
                "vidperf.history.purged",
                "{record}",
                Kind::Counter,
                "vidperf_history_purged_total",
            ),
        ];
        for (name, unit, kind, want) in cases {
            assert_eq!(prometheus_name(name, unit, kind), want, "{name}");
        }
        assert_eq!(prometheus_label("hw.gpu.task"), "hw_gpu_task");
    }

    #[test]
    fn every_family_has_a_distinct_prometheus_name() {
        let mut names: Vec<String> = family_defs()
            .iter()
            .map(FamilyDef::prometheus_name)
            .collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "{names:?}");
    }
}
