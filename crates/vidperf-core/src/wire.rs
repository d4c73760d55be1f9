//! Units at the edge: records and statistics hold base units (seconds, bytes, cores,
//! ratios, watts, joules); the JSON and CSV formats write the original design's MiB and
//! percent under the keys of [`FIGURES`](crate::figure::FIGURES). Every conversion
//! between the two, and the serde shapes that apply them, live here — a leaf module
//! that the value types and the encoders both use.

use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::figure::{FIGURES, Figure, FigureDef, Figures, Wire};

/// Bytes in a MiB.
pub(crate) const MIB: f64 = 1024.0 * 1024.0;

/// Bytes as MiB (exact: a division by a power of two).
pub(crate) fn mib(bytes: f64) -> f64 {
    bytes / MIB
}

/// MiB as whole bytes (exact for a value written by [`mib`]).
pub(crate) fn bytes_from_mib(mib: f64) -> f64 {
    (mib * MIB).round()
}

/// A ratio (1.0 = one core, or 100%) as a percentage rounded to 1e-4, so that 0.55
/// reads 55, not 55.00000000000001.
pub(crate) fn percent(ratio: f64) -> f64 {
    (ratio * 1e6).round() / 1e4
}

/// A percentage as a ratio.
pub(crate) fn ratio_from_percent(percent: f64) -> f64 {
    percent / 100.0
}

/// A ratio at the precision the formats keep (1e-6, i.e. 1e-4 percent): what reading
/// it back from JSON or CSV gives, exactly.
pub(crate) fn ratio_as_exported(ratio: f64) -> f64 {
    ratio_from_percent(percent(ratio))
}

/// MiB read from a file as whole bytes; an error for a negative or non-finite value.
pub(crate) fn to_bytes(mib: f64) -> Result<u64, String> {
    let bytes = bytes_from_mib(mib);
    if bytes.is_finite() && bytes >= 0.0 && bytes <= u64::MAX as f64 {
        Ok(bytes as u64)
    } else {
        Err(format!("{mib} MiB is not a memory size"))
    }
}

/// A figure's value as the formats write it.
pub(crate) fn to_wire(def: &FigureDef, value: f64) -> f64 {
    match def.wire {
        Wire::Mib => mib(value),
        Wire::Percent => percent(value),
        Wire::Base => value,
    }
}

/// A figure's value read from the formats, in its base unit; an error for a value the
/// figure cannot hold (a negative size, a non-finite number).
pub(crate) fn from_wire(def: &FigureDef, value: f64) -> Result<f64, String> {
    if !value.is_finite() {
        return Err(format!("{value} is not a number"));
    }
    match def.wire {
        Wire::Mib => to_bytes(value).map(|b| b as f64),
        Wire::Percent => Ok(ratio_from_percent(value)),
        Wire::Base => Ok(value),
    }
}

/// A figure's value at the precision the formats keep: what reading it back gives.
pub(crate) fn at_wire_precision(def: &FigureDef, value: f64) -> f64 {
    match def.wire {
        Wire::Mib => value.max(0.0).round(),
        Wire::Percent => ratio_as_exported(value),
        Wire::Base => value,
    }
}

/// Whether a figure is written when absent (`null`): the 0.1.0 figures.
fn written_when_absent(def: &FigureDef) -> bool {
    def.since_0_1
}

/// Writes the figures of a record into `map`: each under its JSON key in its wire unit,
/// the 0.1.0 ones as `null` when absent and later ones left out; a per-frame figure
/// after its total, when frames are known.
pub(crate) fn write_figures<M: SerializeMap>(
    map: &mut M,
    figures: &Figures,
    defs: impl Iterator<Item = &'static FigureDef>,
    frames: Option<u64>,
) -> Result<(), M::Error> {
    for def in defs {
        match figures.get(def.figure) {
            Some(v) => map.serialize_entry(def.json, &to_wire(def, v))?,
            None if written_when_absent(def) => map.serialize_entry(def.json, &None::<f64>)?,
            None => {}
        }
        if let (Some((_, key)), Some(v), Some(frames)) = (
            def.per_frame,
            figures.get(def.figure),
            frames.filter(|f| *f > 0),
        ) {
            map.serialize_entry(key, &(v / frames as f64))?;
        }
    }
    Ok(())
}

/// Reads the figures of a record from its map entries, ignoring every other key.
pub(crate) fn deserialize_figures<'de, D: Deserializer<'de>>(
    deserializer: D,
    per_device: bool,
) -> Result<Figures, D::Error> {
    struct FiguresVisitor {
        per_device: bool,
    }
    impl<'de> Visitor<'de> for FiguresVisitor {
        type Value = Figures;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("the resource figures of an operation")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Figures, A::Error> {
            let mut out = Figures::none();
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                let def = FIGURES
                    .iter()
                    .find(|d| d.json == key && (!self.per_device || d.per_device));
                match def {
                    Some(def) => {
                        if let Some(v) = map.next_value::<Option<f64>>()? {
                            let v = from_wire(def, v)
                                .map_err(|e| de::Error::custom(format!("{key}: {e}")))?;
                            out.set(def.figure, Some(v));
                        }
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(FiguresVisitor { per_device })
}

/// The per-key statistics of one figure, in its base unit: the highest and the mean of
/// the operations' values (and their sum, for totals).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PeakStats {
    /// Highest value seen.
    pub max: f64,
    /// Mean of the operations' values.
    pub mean: f64,
    /// Operations that had this figure measured.
    pub operations: u64,
    /// Sum over the operations, for figures that are totals (energy); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
    /// Highest value among the operations that overlapped no other (their figure is
    /// theirs alone, not shared with concurrent work on the process or the GPU); absent
    /// when none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive_max: Option<f64>,
}

fn peak_to_wire(def: &FigureDef, p: &PeakStats) -> PeakStats {
    let total = p.total.map(|t| to_wire(def, t));
    match def.wire {
        // `max` is a value some operation had: whole bytes, exactly; the mean need not be.
        Wire::Mib => PeakStats {
            max: mib(p.max),
            mean: mib(p.mean),
            operations: p.operations,
            total,
            exclusive_max: p.exclusive_max.map(mib),
        },
        _ => PeakStats {
            max: to_wire(def, p.max),
            mean: to_wire(def, p.mean),
            operations: p.operations,
            total,
            exclusive_max: p.exclusive_max.map(|v| to_wire(def, v)),
        },
    }
}

fn peak_from_wire(def: &FigureDef, p: PeakStats) -> PeakStats {
    match def.wire {
        Wire::Mib => PeakStats {
            max: bytes_from_mib(p.max),
            mean: p.mean * MIB,
            operations: p.operations,
            total: p.total.map(|t| t * MIB),
            exclusive_max: p.exclusive_max.map(bytes_from_mib),
        },
        Wire::Percent => PeakStats {
            max: ratio_from_percent(p.max),
            mean: ratio_from_percent(p.mean),
            operations: p.operations,
            total: p.total.map(ratio_from_percent),
            exclusive_max: p.exclusive_max.map(ratio_from_percent),
        },
        Wire::Base => p,
    }
}

/// Per-figure statistics, and per frame for totals: what `resources` holds in the
/// statistics of one key.
pub(crate) type PeakArrays = (
    [Option<PeakStats>; Figure::COUNT],
    [Option<f64>; Figure::COUNT],
);

/// Per-figure statistics as map entries: 0.1.0 figures always (`null` when no operation
/// measured them), later ones only when measured; a per-frame figure after its total.
pub(crate) fn serialize_peaks<S: Serializer>(
    (peaks, per_frame): (
        &[Option<PeakStats>; Figure::COUNT],
        &[Option<f64>; Figure::COUNT],
    ),
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(None)?;
    for def in &FIGURES {
        let i = def.figure.index();
        match &peaks[i] {
            Some(p) => map.serialize_entry(def.json, &peak_to_wire(def, p))?,
            None if written_when_absent(def) => map.serialize_entry(def.json, &None::<f64>)?,
            None => {}
        }
        if let (Some((_, key)), Some(v)) = (def.per_frame, per_frame[i]) {
            map.serialize_entry(key, &to_wire(def, v))?;
        }
    }
    map.end()
}

/// Reads per-figure statistics, ignoring unknown keys.
pub(crate) fn deserialize_peaks<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<PeakArrays, D::Error> {
    struct PeaksVisitor;
    impl<'de> Visitor<'de> for PeaksVisitor {
        type Value = PeakArrays;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("per-figure resource statistics")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out: PeakArrays = Default::default();
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if let Some(def) = FIGURES.iter().find(|d| d.json == key) {
                    out.0[def.figure.index()] = map
                        .next_value::<Option<PeakStats>>()?
                        .map(|p| peak_from_wire(def, p));
                } else if let Some(def) = FIGURES
                    .iter()
                    .find(|d| d.per_frame.is_some_and(|(_, k)| k == key))
                {
                    out.1[def.figure.index()] = map
                        .next_value::<Option<f64>>()?
                        .map(|v| from_wire(def, v))
                        .transpose()
                        .map_err(de::Error::custom)?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(PeaksVisitor)
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
    use super::*;

    #[test]
    fn exported_ratios_read_back_exactly() {
        for ratio in [0.0, 0.55, 0.123_456_789, 1.0 / 3.0, 7.999_999_9, 63.5, 1e-9] {
            let kept = ratio_as_exported(ratio);
            assert_eq!(ratio_from_percent(percent(kept)), kept, "{ratio}");
            assert!((kept - ratio).abs() <= 5e-7, "{ratio} kept as {kept}");
        }
        assert_eq!(percent(0.55), 55.0);
    }

    #[test]
    fn bytes_read_back_exactly() {
        for bytes in [
            0u64,
            1,
            1_048_576,
            150 * 1024 * 1024 + 12_345,
            (1 << 53) - 1,
        ] {
            assert_eq!(to_bytes(mib(bytes as f64)), Ok(bytes));
        }
        assert!(to_bytes(-1.0).is_err());
        assert!(to_bytes(f64::NAN).is_err());
    }

    #[test]
    fn every_figure_reads_back_at_wire_precision() {
        for def in &FIGURES {
            for v in [0.0, 0.55, 3.0, 123_456_789.0] {
                let kept = at_wire_precision(def, v);
                assert_eq!(from_wire(def, to_wire(def, kept)), Ok(kept), "{}", def.name);
            }
        }
    }
}
