//! Units at the edge: statistics and records hold base units (seconds, bytes, cores
//! and ratios); the JSON and CSV formats write the original design's MiB and percent.
//! Every conversion between the two lives here.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::snapshot::PeakStats;

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

fn convert(peak: &PeakStats, f: fn(f64) -> f64) -> PeakStats {
    PeakStats {
        max: f(peak.max),
        mean: f(peak.mean),
        operations: peak.operations,
    }
}

/// `Option<PeakStats>` in bytes, written in MiB.
pub(crate) mod mib_peak {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<PeakStats>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        value.as_ref().map(|p| convert(p, mib)).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<PeakStats>, D::Error> {
        let read = Option::<PeakStats>::deserialize(d)?;
        Ok(read.map(|p| PeakStats {
            max: bytes_from_mib(p.max),
            mean: p.mean * MIB,
            operations: p.operations,
        }))
    }
}

/// `Option<PeakStats>` as ratios, written in percent.
pub(crate) mod percent_peak {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<PeakStats>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        value.as_ref().map(|p| convert(p, percent)).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<PeakStats>, D::Error> {
        let read = Option::<PeakStats>::deserialize(d)?;
        Ok(read.map(|p| convert(&p, ratio_from_percent)))
    }
}

/// `Option<u64>` bytes, written in MiB.
pub(crate) mod mib_bytes {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        value.map(|b| mib(b as f64)).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let read = Option::<f64>::deserialize(d)?;
        read.map(|m| to_bytes(m).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// `Option<f64>` ratio, written in percent.
pub(crate) mod percent_ratio {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        value.map(percent).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.map(ratio_from_percent))
    }
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
}
