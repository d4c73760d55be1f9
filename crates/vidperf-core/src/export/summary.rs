//! Reading what a comparison needs from a JSON export, in one pass and without holding
//! its records: the format version, when it was written, and every (operation type,
//! strategy) pair with its duration distribution.
//!
//! A format-2 export carries the pairs in `statistics.pairs`, before the records; the
//! records after them are then only checked for syntax, never held, so a file cut
//! short or with anything after the document is refused rather than judged. A
//! format-1 export has no pairs; they are rebuilt from its records, each folded into
//! the statistics as it is read. Either way the pairs are checked: every histogram's
//! buckets have a width, do not overlap, and hold as many operations as the pair's
//! `statistics.count`.

use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{JSON_FORMAT_VERSION, ReadError};
use crate::ids::{SpanId, TraceId};
use crate::record::OperationRecord;
use crate::span::{FinishedSpan, OperationKey};
use crate::stats::{PairStatistics, SnapshotOptions, Stats, StatsConfig};
use crate::wire::rfc3339;

/// What [`read_summary`] takes from an export.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ExportSummary {
    /// The file's `format_version`.
    pub format_version: u32,
    /// When it was written.
    pub exported_at: Option<SystemTime>,
    /// Every pair, sorted by operation type then strategy.
    pub pairs: Vec<PairStatistics>,
    /// Whether the pairs were rebuilt from the records (a format-1 export): then they
    /// cover only the records the history kept.
    pub from_records: bool,
}

/// Reads the summary of a JSON export: its pairs, from `statistics.pairs` (format 2)
/// or rebuilt from its records (format 1). An export from a newer format than this
/// library reads is [`ReadError::NewerFormat`].
pub fn read_summary<R: Read>(input: R) -> Result<ExportSummary, ReadError> {
    let mut found = Found::default();
    let mut de = serde_json::Deserializer::from_reader(input);
    let result = (&mut de).deserialize_map(TopLevel { found: &mut found });
    match result {
        Ok(()) => {
            de.end().map_err(|e| match e.classify() {
                serde_json::error::Category::Syntax => ReadError::NotAnExport(
                    "unexpected text after the export (two documents, or garbage appended)",
                ),
                _ => syntax(e),
            })?;
        }
        Err(e) => {
            if let Some(version) = found.newer {
                return Err(ReadError::NewerFormat {
                    found: version,
                    supported: JSON_FORMAT_VERSION,
                });
            }
            return Err(syntax(e));
        }
    }
    let format_version = found
        .format_version
        .ok_or(ReadError::NotAnExport("no format_version"))?;
    // The pairs, when the export has them, wherever its keys were put (a tool that
    // sorts keys puts `operations` first, and those were folded on the way).
    let (pairs, from_records) = match (found.pairs, found.rebuilt) {
        (Some(pairs), _) if !pairs.is_empty() => {
            for pair in &pairs {
                check_pair(pair)?;
            }
            (pairs, false)
        }
        (_, Some(stats)) => {
            let options = SnapshotOptions::default()
                .with_recent(0)
                .with_active(0)
                .with_pairs();
            (stats.snapshot_with(options).pairs, true)
        }
        (Some(pairs), None) => (pairs, false),
        (None, None) => {
            return Err(ReadError::NotAnExport("no statistics and no operations"));
        }
    };
    Ok(ExportSummary {
        format_version,
        exported_at: found.exported_at,
        pairs,
        from_records,
    })
}

/// Checks what a comparison relies on: each histogram tiles part of the range (every
/// bucket has a width, none overlaps the one before, none runs past `u64::MAX`), and
/// the duration histogram holds exactly `statistics.count` operations.
fn check_pair(pair: &PairStatistics) -> Result<(), ReadError> {
    let fail = |message: String| ReadError::Inconsistent {
        pair: format!("{}/{}", pair.operation_type, pair.strategy),
        message,
    };
    let total = |name: &str, histogram: &crate::stats::HistogramBuckets| {
        let (mut end, mut total) = (0u64, 0u64);
        for (i, &[low, width, count]) in histogram.0.iter().enumerate() {
            if width == 0 {
                return Err(fail(format!("{name}[{i}] has width 0")));
            }
            if i > 0 && low < end {
                return Err(fail(format!(
                    "{name}[{i}] starts at {low} ns, inside the bucket before it \
                     (buckets are lowest first and do not overlap)"
                )));
            }
            end = low.checked_add(width).ok_or_else(|| {
                fail(format!(
                    "{name}[{i}] runs past the largest duration ({low} + {width} ns)"
                ))
            })?;
            total = total.checked_add(count).ok_or_else(|| {
                fail(format!("{name}: the bucket counts overflow a 64-bit count"))
            })?;
        }
        Ok(total)
    };
    let totals = [
        total("duration_histogram", &pair.duration_histogram)?,
        total("frame_time_histogram", &pair.frame_time_histogram)?,
    ];
    let count = pair.statistics.count;
    if totals[0] != count {
        return Err(fail(format!(
            "duration_histogram holds {} operations but statistics.count is {count}",
            totals[0]
        )));
    }
    if totals[1] > count {
        return Err(fail(format!(
            "frame_time_histogram holds {} operations, more than statistics.count ({count})",
            totals[1]
        )));
    }
    Ok(())
}

fn syntax(e: serde_json::Error) -> ReadError {
    if e.is_io() {
        ReadError::Io(std::io::Error::from(e))
    } else {
        ReadError::Json(e)
    }
}

#[derive(Default)]
struct Found {
    format_version: Option<u32>,
    newer: Option<u32>,
    exported_at: Option<SystemTime>,
    /// `statistics.pairs`, when the statistics were read.
    pairs: Option<Vec<PairStatistics>>,
    /// The records folded into statistics (format 1).
    rebuilt: Option<Stats>,
}

struct TopLevel<'a> {
    found: &'a mut Found,
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a vidperf JSON export (an object with format_version, statistics, operations)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "format_version" => {
                    let version: u32 = map.next_value()?;
                    if version > JSON_FORMAT_VERSION {
                        self.found.newer = Some(version);
                        return Err(de::Error::custom("newer format"));
                    }
                    self.found.format_version = Some(version);
                }
                "exported_at" => {
                    let text: std::borrow::Cow<'de, str> = map.next_value()?;
                    self.found.exported_at =
                        Some(rfc3339::parse(&text).map_err(de::Error::custom)?);
                }
                "statistics" => {
                    #[derive(Deserialize)]
                    struct Statistics {
                        #[serde(default)]
                        pairs: Vec<PairStatistics>,
                    }
                    let statistics: Statistics = map.next_value()?;
                    self.found.pairs = Some(statistics.pairs);
                }
                "operations" => {
                    // With pairs the records add nothing; without (format 1, or a
                    // document written from a snapshot without them) they are folded.
                    let has_pairs = self.found.pairs.as_ref().is_some_and(|p| !p.is_empty());
                    if has_pairs {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    let stats = Stats::new(
                        StatsConfig::default()
                            .with_history_limit(0)
                            .with_window_slots(Duration::from_secs(10), 0)
                            .with_max_pairs(usize::MAX)
                            .with_max_keys(usize::MAX),
                    );
                    map.next_value_seed(Fold { stats: &stats })?;
                    self.found.rebuilt = Some(stats);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Folds the records into statistics as they are read.
struct Fold<'a> {
    stats: &'a Stats,
}

impl<'de> DeserializeSeed<'de> for Fold<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Fold<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of operation records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i: u64 = 0;
        while let Some(record) = seq.next_element::<OperationRecord>()? {
            i += 1;
            self.stats.record(&replayed(&record, i));
        }
        Ok(())
    }
}

/// A record as the finished operation it was, for the statistics.
fn replayed(r: &OperationRecord, i: u64) -> FinishedSpan {
    let key = OperationKey {
        operation_type: Arc::from(r.operation_type.as_str()),
        strategy: Arc::from(r.strategy.as_str()),
    };
    let ids = (
        TraceId::from_hex(&r.trace_id).unwrap_or(TraceId::from_bytes(u128::from(i).to_be_bytes())),
        SpanId::from_hex(&r.span_id).unwrap_or(SpanId::from_bytes(i.to_be_bytes())),
    );
    let duration = Duration::try_from_secs_f64(r.duration_seconds).unwrap_or_default();
    let mut span = FinishedSpan::operation(key, ids, r.end_time, duration);
    span.fields.frames_processed = r.frames_processed;
    span.fields.segments = r.segments;
    span.fields.quality_score = r.quality_score;
    span.error = (!r.success).then(|| r.error_message.clone().unwrap_or_default());
    span.resources.figures = r.figures;
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_with(n: u64) -> Stats {
        let stats = Stats::new(StatsConfig::default().with_history_limit(5));
        for i in 0..n {
            let strategy = if i % 3 == 0 { "seedvr2" } else { "vsrm" };
            let key = OperationKey {
                operation_type: Arc::from("enhancement"),
                strategy: Arc::from(strategy),
            };
            let ids = (
                TraceId::from_bytes([1; 16]),
                SpanId::from_bytes((i + 1).to_be_bytes()),
            );
            let mut span = FinishedSpan::operation(
                key,
                ids,
                SystemTime::now(),
                Duration::from_micros(1_000 + i * 37),
            );
            span.fields.quality_score = Some(0.5 + (i % 7) as f64 / 20.0);
            span.error = (i % 11 == 0).then(|| "x".to_owned());
            stats.record(&span);
        }
        stats
    }

    fn export(stats: &Stats) -> Vec<u8> {
        let mut out = Vec::new();
        crate::export::write_stats_json(&mut out, stats).expect("write");
        out
    }

    #[test]
    fn a_format_2_export_gives_every_pair_even_past_the_history_limit() {
        let stats = stats_with(100);
        let read = read_summary(export(&stats).as_slice()).expect("read");
        assert_eq!(read.format_version, JSON_FORMAT_VERSION);
        assert!(!read.from_records);
        let expected = stats
            .snapshot_with(SnapshotOptions::default().with_pairs())
            .pairs;
        assert_eq!(read.pairs, expected);
        let total: u64 = read.pairs.iter().map(|p| p.statistics.count).sum();
        assert_eq!(total, 100, "the history kept only 5 records");
    }

    #[test]
    fn the_pairs_count_wherever_the_keys_were_put() {
        let stats = stats_with(100);
        let value: serde_json::Value = serde_json::from_slice(&export(&stats)).expect("json");
        // serde_json's map sorts keys: `operations` now comes before `statistics`.
        let sorted = serde_json::to_vec(&value).expect("json");
        let read = read_summary(sorted.as_slice()).expect("read");
        assert!(!read.from_records);
        let total: u64 = read.pairs.iter().map(|p| p.statistics.count).sum();
        assert_eq!(total, 100, "the pairs, not the 5 records kept");
    }

    #[test]
    fn records_after_the_pairs_are_checked_not_held() {
        let bytes = export(&stats_with(20));
        let at = bytes
            .windows(b"\"operations\"".len())
            .position(|w| w == b"\"operations\"")
            .expect("operations");
        let mut cut = bytes[..at + 20].to_vec();
        cut.extend_from_slice(b"this is not JSON at all");
        assert!(matches!(
            read_summary(cut.as_slice()),
            Err(ReadError::Json(_))
        ));
        let mut appended = bytes;
        appended.extend_from_slice(b"{}");
        assert!(matches!(
            read_summary(appended.as_slice()),
            Err(ReadError::NotAnExport(m)) if m.contains("after the export")
        ));
    }

    #[test]
    fn impossible_histograms_are_named() {
        let stats = stats_with(30);
        let good = read_summary(export(&stats).as_slice()).expect("read");
        let mut pair = good.pairs[0].clone();
        assert!(
            pair.duration_histogram.0.len() > 1,
            "several buckets to test with"
        );
        assert!(check_pair(&pair).is_ok());
        pair.duration_histogram.0[0][1] = 0;
        let message = check_pair(&pair).expect_err("zero width").to_string();
        assert!(
            message.contains("duration_histogram[0] has width 0"),
            "{message}"
        );
        let mut pair = good.pairs[0].clone();
        pair.duration_histogram.0.reverse();
        let message = check_pair(&pair).expect_err("unsorted").to_string();
        assert!(message.contains("inside the bucket before it"), "{message}");
        let mut pair = good.pairs[0].clone();
        pair.statistics.count += 1;
        let message = check_pair(&pair).expect_err("count").to_string();
        assert!(message.contains("statistics.count"), "{message}");
        let mut pair = good.pairs[0].clone();
        pair.duration_histogram.0[0][2] = u64::MAX;
        let message = check_pair(&pair).expect_err("overflow").to_string();
        assert!(message.contains("overflow"), "{message}");
    }

    #[test]
    fn a_format_1_export_has_its_pairs_rebuilt_from_the_records() {
        let golden = include_str!("../../tests/golden/export-0.1.0.json");
        let read = read_summary(golden.as_bytes()).expect("0.1.0 export");
        assert_eq!(read.format_version, 1);
        assert!(read.from_records);
        let full = super::super::read_json(golden.as_bytes()).expect("read_json");
        for (strategy, s) in &full.statistics.by_strategy {
            let count: u64 = read
                .pairs
                .iter()
                .filter(|p| &p.strategy == strategy)
                .map(|p| p.statistics.count)
                .sum();
            assert_eq!(count, s.count, "{strategy}");
            let failures: u64 = read
                .pairs
                .iter()
                .filter(|p| &p.strategy == strategy)
                .map(|p| p.statistics.failures)
                .sum();
            assert_eq!(failures, s.failures, "{strategy}");
        }
    }

    #[test]
    fn bad_input_is_named() {
        let newer = br#"{"format_version": 3, "statistics": {}, "operations": []}"#;
        match read_summary(newer.as_slice()) {
            Err(ReadError::NewerFormat {
                found: 3,
                supported,
            }) => {
                assert_eq!(supported, JSON_FORMAT_VERSION);
            }
            other => panic!("{other:?}"),
        }
        let mut truncated = export(&stats_with(10));
        truncated.truncate(truncated.len() / 3);
        assert!(matches!(
            read_summary(truncated.as_slice()),
            Err(ReadError::Json(e)) if e.is_eof()
        ));
        let csv = b"operation_id,operation_type,strategy\n1,enhancement,vsrm\n";
        assert!(matches!(
            read_summary(csv.as_slice()),
            Err(ReadError::Json(_))
        ));
        assert!(matches!(
            read_summary(b"{}".as_slice()),
            Err(ReadError::NotAnExport(m)) if m.contains("format_version")
        ));
    }
}
