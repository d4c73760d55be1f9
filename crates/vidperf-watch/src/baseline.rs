//! A baseline for a running service: an export (a release's, a good week's) that the
//! service's live window is compared with on the watcher's thread, by the same rules as
//! `vidperf compare` ([`crate::compare`]).

use std::collections::BTreeSet;
use std::io::BufReader;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use vidperf_core::export::{ExportSummary, ReadError, read_summary};
use vidperf_core::{SnapshotOptions, Stats};

use crate::compare::{CompareConfig, Comparison, Figure, Verdict, compare};
use crate::sequential::{SequentialConfig, SequentialPair};

/// A baseline loaded from an export, with how the live window is compared with it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Baseline {
    /// Where it was read from.
    pub source: String,
    /// What was read.
    pub summary: ExportSummary,
    /// The live window compared (at most the statistics' longest). Default 10 minutes.
    pub window: Duration,
    /// How often. Default 30 s.
    pub interval: Duration,
    /// The thresholds.
    pub config: CompareConfig,
    /// The anytime-valid check run beside the windowed comparison
    /// ([`crate::sequential`]).
    pub sequential: SequentialConfig,
}

/// Why a baseline could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BaselineError {
    /// The file could not be opened.
    #[error("baseline {path}: cannot open: {error}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// It is not a readable export.
    #[error("baseline {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        error: ReadError,
    },
    /// It holds no operations.
    #[error("baseline {path}: the export holds no operations")]
    Empty {
        /// The file.
        path: String,
    },
}

impl Baseline {
    /// Reads the JSON export at `path` (only up to its pairs, for a format-2 export).
    pub fn from_file(path: &Path) -> Result<Self, BaselineError> {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|error| BaselineError::Open {
            path: name.clone(),
            error,
        })?;
        let summary = read_summary(BufReader::new(file)).map_err(|error| BaselineError::Read {
            path: name.clone(),
            error,
        })?;
        if summary.pairs.iter().all(|p| p.statistics.count == 0) {
            return Err(BaselineError::Empty { path: name });
        }
        Ok(Self {
            source: name,
            summary,
            window: Duration::from_secs(600),
            interval: Duration::from_secs(30),
            config: CompareConfig::default(),
            sequential: SequentialConfig::default(),
        })
    }

    /// Compares the service's last `window` with the baseline.
    pub fn check(&self, stats: &Stats, now: SystemTime) -> Comparison {
        let options = SnapshotOptions::default()
            .with_window(self.window.min(stats.max_window()))
            .with_recent(0)
            .with_active(0)
            .with_pairs()
            .at(now);
        let live = stats.snapshot_with(options).pairs;
        compare(&self.summary.pairs, &live, &self.config)
    }
}

/// The baseline as described in `GET /performance/regressions`.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct BaselineInfo {
    /// The file.
    pub source: String,
    /// Its format version.
    pub format_version: u32,
    /// When it was exported.
    #[serde(serialize_with = "crate::watcher::optional_time")]
    pub exported_at: Option<SystemTime>,
    /// Operations it holds.
    pub operations: u64,
}

/// `GET /performance/regressions`: the last comparison of the live window with the
/// baseline.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct RegressionsDocument {
    /// When it was compared (absent before the first comparison).
    #[serde(serialize_with = "crate::watcher::optional_time")]
    pub evaluated_at: Option<SystemTime>,
    /// The baseline.
    pub baseline: BaselineInfo,
    /// The live window compared, seconds.
    pub window_seconds: f64,
    /// Whether any pair is regressed now.
    pub regressed: bool,
    /// The comparison (absent before the first).
    pub comparison: Option<Comparison>,
    /// The anytime-valid check of each pair with enough baseline operations: over a
    /// day of checks its false alarms stay within `alpha` per pair, which a repeated
    /// windowed comparison's do not ([`crate::sequential`]).
    pub sequential: Vec<SequentialPair>,
}

impl RegressionsDocument {
    pub(crate) fn new(baseline: &Baseline) -> Self {
        Self {
            evaluated_at: None,
            baseline: BaselineInfo {
                source: baseline.source.clone(),
                format_version: baseline.summary.format_version,
                exported_at: baseline.summary.exported_at,
                operations: baseline
                    .summary
                    .pairs
                    .iter()
                    .map(|p| p.statistics.count)
                    .sum(),
            },
            window_seconds: baseline.window.as_secs_f64(),
            regressed: false,
            comparison: None,
            sequential: Vec::new(),
        }
    }
}

/// One judged figure of one pair, as `vidperf_regression` reports it (1 regressed, 0
/// not).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegressionGauge {
    /// The operation type.
    pub operation: String,
    /// The strategy.
    pub strategy: String,
    /// The figure (`p50_duration`, `p95_duration`, `failure_rate`, `quality`), or
    /// `sequential` for the anytime-valid check of the pair (1 when the strategy itself
    /// regressed: against the baseline and against its operation's other strategies).
    pub figure: &'static str,
    /// 1 when regressed.
    pub regressed: bool,
}

/// The judged figures with data, as gauges.
pub(crate) fn gauges(comparison: &Comparison) -> Vec<RegressionGauge> {
    comparison
        .pairs
        .iter()
        .flat_map(|p| {
            p.figures
                .iter()
                .filter(|f| {
                    matches!(
                        f.verdict,
                        Some(Verdict::Regressed | Verdict::Improved | Verdict::Unchanged)
                    )
                })
                .map(|f| RegressionGauge {
                    operation: p.operation_type.clone(),
                    strategy: p.strategy.clone(),
                    figure: f.figure.name(),
                    regressed: f.verdict == Some(Verdict::Regressed),
                })
        })
        .collect()
}

/// The regressed figures, as (operation type, strategy, figure).
pub(crate) fn regressed_set(comparison: &Comparison) -> BTreeSet<(String, String, Figure)> {
    comparison
        .regressions()
        .map(|(o, s, f)| (o.to_owned(), s.to_owned(), f))
        .collect()
}
