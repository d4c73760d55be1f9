//! Comparing two sets of (operation type, strategy) pairs — a baseline and a current
//! run, or a baseline and a service's live window — figure by figure, with a verdict a
//! CI job or an on-call engineer can act on.
//!
//! Per pair:
//!
//! - **p50 and p95 duration**: the ratio current / baseline, a bootstrap confidence
//!   interval of that ratio, and a Mann–Whitney U test of the two duration
//!   distributions. Regressed only when the test's p-value is under `alpha` *and* the
//!   whole interval lies above `1 + noise`; improved, symmetrically, below
//!   `1 / (1 + noise)`.
//! - **time per frame** (median of duration over frames processed, for pairs that
//!   record frames): judged like a duration. Clip lengths spread durations widely; the
//!   time per frame does not depend on them, so a slower model shows there first.
//! - **failure rate**: the difference current − baseline, a Newcombe (Wilson score)
//!   interval, and a two-proportion test (Fisher's exact test when failures are few).
//!   Regressed when p < `alpha` and the interval lies above `failure_noise`.
//! - **quality**: the difference of the mean quality scores, Welch's t interval and
//!   test. Regressed when p < `alpha` and the interval lies below `-quality_noise`.
//! - **fps, peak RAM, peak VRAM**: the change, shown, not judged (an export holds no
//!   per-operation distribution of them).
//!
//! Fewer than `min_samples` operations on either side is "not enough data" (p95 needs
//! `min_samples_p95`). The resampling is seeded per pair and figure, so a comparison
//! is deterministic. Both sides' durations are bucketed in the statistics' log-linear
//! histogram (1/64 of an octave, about 1.1% wide), which bounds the resolution of a
//! ratio to about 1%.
//!
//! The bootstrap does not resample whole data sets: the k-th smallest of n values drawn
//! from a distribution F is F⁻¹ of the k-th smallest of n uniforms, which is
//! Beta(k, n − k + 1)-distributed, so each replicate of a quantile costs one Beta draw
//! and one lookup, whatever n is — the exact bootstrap distribution of the quantile,
//! at any sample size.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution};
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, DiscreteCDF, Hypergeometric, Normal, StudentsT};
use vidperf_core::stats::{HistogramBuckets, PairStatistics};

/// The thresholds of a comparison. The defaults and the measurements behind them are in
/// `docs/REGRESSIONS.md`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CompareConfig {
    /// Significance level of the tests. Default 0.01.
    pub alpha: f64,
    /// Relative change of a duration quantile that counts as noise: a regression's
    /// whole interval must lie above `1 + noise`. Default 0.02.
    pub noise: f64,
    /// Failure-rate increase that counts as noise (absolute). Default 0.01.
    pub failure_noise: f64,
    /// Mean quality change that counts as noise (absolute). Default 0.01.
    pub quality_noise: f64,
    /// Operations needed on each side to judge a pair. Default 30.
    pub min_samples: u64,
    /// Operations needed on each side to judge the p95. Default 100.
    pub min_samples_p95: u64,
    /// Confidence level of the intervals. Default 0.95.
    pub confidence: f64,
    /// Bootstrap replicates. Default 2,000.
    pub resamples: usize,
    /// Seed of the resampling.
    pub seed: u64,
}

impl Default for CompareConfig {
    fn default() -> Self {
        Self {
            alpha: 0.01,
            noise: 0.02,
            failure_noise: 0.01,
            quality_noise: 0.01,
            min_samples: 30,
            min_samples_p95: 100,
            confidence: 0.95,
            resamples: 2_000,
            seed: 0x7669_6470_6572_6621,
        }
    }
}

/// Why a configuration is refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{field} = {value}: {reason}")]
pub struct ConfigError {
    /// The setting.
    pub field: &'static str,
    /// Its value.
    pub value: f64,
    /// What it must be.
    pub reason: &'static str,
}

impl CompareConfig {
    /// Checks every threshold.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |field, value: f64, ok: bool, reason| {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(ConfigError {
                    field,
                    value,
                    reason,
                })
            }
        };
        check(
            "alpha",
            self.alpha,
            self.alpha > 0.0 && self.alpha < 1.0,
            "between 0 and 1",
        )?;
        check("noise", self.noise, self.noise >= 0.0, "0 or more")?;
        check(
            "failure_noise",
            self.failure_noise,
            (0.0..1.0).contains(&self.failure_noise),
            "from 0 to 1",
        )?;
        check(
            "quality_noise",
            self.quality_noise,
            self.quality_noise >= 0.0,
            "0 or more",
        )?;
        check(
            "confidence",
            self.confidence,
            self.confidence > 0.5 && self.confidence < 1.0,
            "between 0.5 and 1",
        )?;
        check(
            "resamples",
            self.resamples as f64,
            self.resamples >= 100,
            "at least 100",
        )?;
        check(
            "min_samples",
            self.min_samples as f64,
            self.min_samples >= 2,
            "at least 2",
        )
    }
}

/// A figure compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Figure {
    /// Median duration, seconds (change: ratio).
    P50Duration,
    /// 95th-percentile duration, seconds (change: ratio).
    P95Duration,
    /// Median time per frame (duration over frames processed), seconds (change:
    /// ratio): independent of clip length, so it separates a slower model from
    /// longer clips.
    FrameTime,
    /// Failed over all operations (change: difference).
    FailureRate,
    /// Mean quality score (change: difference).
    Quality,
    /// Frames per second (change: ratio; not judged).
    Fps,
    /// Mean per-operation peak process memory, bytes (change: ratio; not judged).
    PeakMemory,
    /// Mean per-operation peak GPU memory, bytes (change: ratio; not judged).
    PeakGpuMemory,
}

impl Figure {
    /// The figure's name in outputs and on `/metrics` (`figure` label).
    pub fn name(self) -> &'static str {
        match self {
            Figure::P50Duration => "p50_duration",
            Figure::P95Duration => "p95_duration",
            Figure::FrameTime => "frame_time",
            Figure::FailureRate => "failure_rate",
            Figure::Quality => "quality",
            Figure::Fps => "fps",
            Figure::PeakMemory => "peak_memory",
            Figure::PeakGpuMemory => "peak_gpu_memory",
        }
    }

    /// Whether its change is a ratio (else a difference).
    pub fn is_ratio(self) -> bool {
        !matches!(self, Figure::FailureRate | Figure::Quality)
    }
}

/// A verdict on a figure or a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verdict {
    /// Worse beyond the noise threshold, significantly.
    Regressed,
    /// Better beyond the noise threshold, significantly.
    Improved,
    /// Neither.
    Unchanged,
    /// Too few operations on a side to judge.
    NotEnoughData,
    /// Only in the current set.
    New,
    /// Only in the baseline.
    Gone,
}

impl Verdict {
    /// The verdict as written in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Regressed => "regressed",
            Verdict::Improved => "improved",
            Verdict::Unchanged => "unchanged",
            Verdict::NotEnoughData => "not enough data",
            Verdict::New => "new",
            Verdict::Gone => "gone",
        }
    }
}

/// One figure of one pair.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FigureChange {
    /// Which.
    pub figure: Figure,
    /// The baseline's value (seconds, ratio 0–1, score, frames/s or bytes).
    pub baseline: Option<f64>,
    /// The current value.
    pub current: Option<f64>,
    /// current / baseline for a ratio figure, current − baseline otherwise.
    pub change: Option<f64>,
    /// Confidence interval of the change.
    pub interval: Option<[f64; 2]>,
    /// The test's two-sided p-value.
    pub p_value: Option<f64>,
    /// The verdict; absent for a figure shown but not judged.
    pub verdict: Option<Verdict>,
    /// The relative change a duration figure had to exceed when it was judged against
    /// several baseline runs: the larger of the noise threshold and the run-to-run
    /// spread of the baselines ([`compare_runs`]); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

impl FigureChange {
    /// A ratio figure (current / baseline), not yet judged.
    fn ratio(figure: Figure, baseline: Option<f64>, current: Option<f64>) -> Self {
        let change = baseline
            .zip(current)
            .filter(|(b, _)| *b > 0.0)
            .map(|(b, c)| c / b);
        Self::with_change(figure, baseline, current, change)
    }

    /// A difference figure (current − baseline), not yet judged.
    fn difference(figure: Figure, baseline: Option<f64>, current: Option<f64>) -> Self {
        let change = baseline.zip(current).map(|(b, c)| c - b);
        Self::with_change(figure, baseline, current, change)
    }

    fn with_change(
        figure: Figure,
        baseline: Option<f64>,
        current: Option<f64>,
        change: Option<f64>,
    ) -> Self {
        Self {
            figure,
            baseline,
            current,
            change,
            interval: None,
            p_value: None,
            verdict: None,
            threshold: None,
        }
    }
}

/// One (operation type, strategy) pair.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PairComparison {
    /// The operation type.
    pub operation_type: String,
    /// The strategy.
    pub strategy: String,
    /// Operations in the baseline.
    pub baseline_operations: u64,
    /// Operations in the current set.
    pub current_operations: u64,
    /// Regressed if any judged figure regressed; else improved if any improved; else
    /// not enough data if no figure could be judged; else unchanged.
    pub verdict: Verdict,
    /// Every figure.
    pub figures: Vec<FigureChange>,
}

/// A whole comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Comparison {
    /// The thresholds used.
    pub config: CompareConfig,
    /// Baseline runs compared against (the figures shown are against the first).
    pub baselines: usize,
    /// Every pair of either side, by operation type then strategy.
    pub pairs: Vec<PairComparison>,
}

impl Comparison {
    /// Whether any pair regressed.
    pub fn regressed(&self) -> bool {
        self.pairs.iter().any(|p| p.verdict == Verdict::Regressed)
    }

    /// How many pairs were judged (regressed, improved or unchanged): `0` means the
    /// comparison says nothing — every pair had too few operations, or was new or gone —
    /// which is not a pass.
    pub fn judged(&self) -> usize {
        self.pairs
            .iter()
            .filter(|p| {
                matches!(
                    p.verdict,
                    Verdict::Regressed | Verdict::Improved | Verdict::Unchanged
                )
            })
            .count()
    }

    /// The regressed figures, as (operation type, strategy, figure).
    pub fn regressions(&self) -> impl Iterator<Item = (&str, &str, Figure)> + '_ {
        self.pairs.iter().flat_map(|p| {
            p.figures
                .iter()
                .filter(|f| f.verdict == Some(Verdict::Regressed))
                .map(move |f| (p.operation_type.as_str(), p.strategy.as_str(), f.figure))
        })
    }
}

/// Compares `current` with `baseline`, pair by pair.
pub fn compare(
    baseline: &[PairStatistics],
    current: &[PairStatistics],
    config: &CompareConfig,
) -> Comparison {
    let key = |p: &PairStatistics| (p.operation_type.clone(), p.strategy.clone());
    type Sides<'a> = (Option<&'a PairStatistics>, Option<&'a PairStatistics>);
    let mut both: BTreeMap<(String, String), Sides<'_>> = BTreeMap::new();
    for p in baseline {
        both.entry(key(p)).or_default().0 = Some(p);
    }
    for p in current {
        both.entry(key(p)).or_default().1 = Some(p);
    }
    let pairs = both
        .into_iter()
        .map(|((operation_type, strategy), sides)| match sides {
            (Some(b), Some(c)) => compare_pair(b, c, config),
            (b, c) => PairComparison {
                baseline_operations: b.map_or(0, |p| p.statistics.count),
                current_operations: c.map_or(0, |p| p.statistics.count),
                verdict: if b.is_some() {
                    Verdict::Gone
                } else {
                    Verdict::New
                },
                figures: Vec::new(),
                operation_type,
                strategy,
            },
        })
        .collect();
    Comparison {
        config: config.clone(),
        baselines: 1,
        pairs,
    }
}

/// Compares `current` with several baseline runs, so that the spread between runs on
/// one machine is measured rather than guessed.
///
/// With one baseline this is [`compare`]. With two or more, the figures shown are
/// against the first baseline, and each judged figure is judged against every baseline:
/// regressed only if it regressed against all of them (significant, and its interval
/// beyond the noise threshold), improved only if it improved against all. A duration
/// figure (p50, p95, time per frame) must moreover lie beyond the baselines' own
/// spread: the current value's change from the baselines' geometric mean must exceed
/// [`FigureChange::threshold`], the larger of the noise threshold and the one-sided
/// (1 − α) prediction bound of a new run — with `x_i` the log of the figure in baseline
/// `i` of `k`, `exp(t(k−1, 1−α) · sd(x) · √(1 + 1/k)) − 1`. Few baselines give a wide
/// bound (Student's t with k − 1 degrees of freedom): use five or more.
pub fn compare_runs(
    baselines: &[&[PairStatistics]],
    current: &[PairStatistics],
    config: &CompareConfig,
) -> Comparison {
    let Some((first, rest)) = baselines.split_first() else {
        return compare(&[], current, config);
    };
    let mut result = compare(first, current, config);
    if rest.is_empty() {
        return result;
    }
    let others: Vec<Comparison> = rest.iter().map(|b| compare(b, current, config)).collect();
    let k = baselines.len();
    for pair in &mut result.pairs {
        let theirs = |figure: Figure| -> Vec<Option<&FigureChange>> {
            others
                .iter()
                .map(|o| {
                    o.pairs
                        .iter()
                        .find(|p| {
                            p.operation_type == pair.operation_type && p.strategy == pair.strategy
                        })
                        .and_then(|p| p.figures.iter().find(|f| f.figure == figure))
                })
                .collect()
        };
        let mut figures = std::mem::take(&mut pair.figures);
        for figure in &mut figures {
            let Some(verdict) = figure.verdict else {
                continue;
            };
            let other = theirs(figure.figure);
            let is_duration = matches!(
                figure.figure,
                Figure::P50Duration | Figure::P95Duration | Figure::FrameTime
            );
            let mut verdicts: Vec<Verdict> = std::iter::once(verdict)
                .chain(
                    other
                        .iter()
                        .map(|f| f.and_then(|f| f.verdict).unwrap_or(Verdict::NotEnoughData)),
                )
                .collect();
            if is_duration {
                let logs: Option<Vec<f64>> = std::iter::once(Some(&*figure))
                    .chain(other.iter().copied())
                    .map(|f| f.and_then(|f| f.baseline).filter(|v| *v > 0.0).map(f64::ln))
                    .collect();
                let bound = logs
                    .as_deref()
                    .and_then(|x| prediction_bound(x, config.alpha));
                let threshold = bound.map_or(config.noise, |b| b.max(config.noise));
                figure.threshold = Some(threshold);
                // Beyond the spread: the current value against the baselines' mean.
                let shift = logs
                    .as_deref()
                    .zip(figure.current.filter(|c| *c > 0.0))
                    .map(|(x, c)| c.ln() - x.iter().sum::<f64>() / x.len() as f64);
                let limit = threshold.ln_1p();
                for v in &mut verdicts {
                    *v = match (*v, shift) {
                        (Verdict::Regressed, Some(d)) if d > limit => Verdict::Regressed,
                        (Verdict::Improved, Some(d)) if -d > limit => Verdict::Improved,
                        (Verdict::Regressed | Verdict::Improved, _) => Verdict::Unchanged,
                        (v, _) => v,
                    };
                }
            }
            figure.verdict = Some(if verdicts.iter().all(|v| *v == Verdict::Regressed) {
                Verdict::Regressed
            } else if verdicts.iter().all(|v| *v == Verdict::Improved) {
                Verdict::Improved
            } else if verdicts.contains(&Verdict::NotEnoughData) {
                Verdict::NotEnoughData
            } else {
                Verdict::Unchanged
            });
        }
        pair.figures = figures;
        if !matches!(pair.verdict, Verdict::New | Verdict::Gone) {
            pair.verdict = pair_verdict(&pair.figures);
        }
    }
    result.baselines = k;
    result
}

/// `exp(t(k−1, 1−α) · sd · √(1 + 1/k)) − 1` of the logs `x` of k runs' figures.
fn prediction_bound(x: &[f64], alpha: f64) -> Option<f64> {
    let k = x.len();
    if k < 2 {
        return None;
    }
    let n = k as f64;
    let mean = x.iter().sum::<f64>() / n;
    let sd = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let t = StudentsT::new(0.0, 1.0, n - 1.0)
        .ok()?
        .inverse_cdf(1.0 - alpha);
    Some((t * sd * (1.0 + 1.0 / n).sqrt()).exp() - 1.0)
}

/// A pair's verdict from its judged figures.
fn pair_verdict(figures: &[FigureChange]) -> Verdict {
    let judged = || figures.iter().filter_map(|f| f.verdict);
    if judged().any(|v| v == Verdict::Regressed) {
        Verdict::Regressed
    } else if judged().any(|v| v == Verdict::Improved) {
        Verdict::Improved
    } else if judged().all(|v| v == Verdict::NotEnoughData) {
        Verdict::NotEnoughData
    } else {
        Verdict::Unchanged
    }
}

/// FNV-1a (64-bit) of `parts`, each followed by a zero byte: stable across builds and
/// platforms.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|p| p.bytes().chain([0])) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn compare_pair(b: &PairStatistics, c: &PairStatistics, config: &CompareConfig) -> PairComparison {
    let hb = Buckets::new(b);
    let hc = Buckets::new(c);
    let mw = (hb.total > 0 && hc.total > 0).then(|| mann_whitney(&hb, &hc));
    // A stable hash (std does not promise `DefaultHasher`'s algorithm), so a comparison
    // is the same on every build.
    let seed =
        |figure: Figure| config.seed ^ fnv1a(&[&b.operation_type, &b.strategy, figure.name()]);
    let mut figures = vec![
        duration(
            Figure::P50Duration,
            0.50,
            config.min_samples,
            &hb,
            &hc,
            mw,
            seed(Figure::P50Duration),
            config,
        ),
        duration(
            Figure::P95Duration,
            0.95,
            config.min_samples_p95.max(config.min_samples),
            &hb,
            &hc,
            mw,
            seed(Figure::P95Duration),
            config,
        ),
        frame_time(b, c, seed(Figure::FrameTime), config),
        failure_rate(b, c, config),
        quality(b, c, config),
    ];
    let shown = |figure, value: fn(&PairStatistics) -> Option<f64>| {
        FigureChange::ratio(figure, value(b), value(c))
    };
    figures.push(shown(Figure::Fps, |p| p.statistics.frames_per_second));
    figures.push(shown(Figure::PeakMemory, |p| {
        p.statistics
            .resources
            .get(vidperf_core::Figure::ProcessMemory)
            .map(|s| s.mean)
    }));
    figures.push(shown(Figure::PeakGpuMemory, |p| {
        p.statistics
            .resources
            .get(vidperf_core::Figure::GpuMemory)
            .map(|s| s.mean)
    }));
    let verdict = pair_verdict(&figures);
    PairComparison {
        operation_type: b.operation_type.clone(),
        strategy: b.strategy.clone(),
        baseline_operations: b.statistics.count,
        current_operations: c.statistics.count,
        verdict,
        figures,
    }
}

/// A duration histogram as values (bucket midpoints, seconds) with cumulative counts.
struct Buckets {
    values: Vec<f64>,
    /// Bucket lower bounds, nanoseconds (to align two histograms).
    lows: Vec<u64>,
    counts: Vec<u64>,
    cumulative: Vec<u64>,
    total: u64,
}

impl Buckets {
    fn new(p: &PairStatistics) -> Self {
        Self::of(&p.duration_histogram)
    }

    fn of(histogram: &HistogramBuckets) -> Self {
        let mut rows: Vec<[u64; 3]> = histogram.0.clone();
        rows.sort_unstable_by_key(|r| r[0]);
        let mut cumulative = Vec::with_capacity(rows.len());
        let mut total = 0u64;
        for r in &rows {
            total = total.saturating_add(r[2]);
            cumulative.push(total);
        }
        Self {
            values: rows
                .iter()
                .map(|[low, width, _]| (low + width.saturating_sub(1) / 2) as f64 / 1e9)
                .collect(),
            lows: rows.iter().map(|r| r[0]).collect(),
            counts: rows.iter().map(|r| r[2]).collect(),
            cumulative,
            total,
        }
    }

    /// The value of the `rank`-th smallest (1-based).
    fn at_rank(&self, rank: u64) -> f64 {
        let i = self.cumulative.partition_point(|c| *c < rank);
        self.values[i.min(self.values.len() - 1)]
    }

    /// The q-quantile: the value of rank ceil(q n), as the statistics report it.
    fn quantile(&self, q: f64) -> f64 {
        self.at_rank(rank(q, self.total))
    }

    /// The value at cumulative fraction `u` (0–1): F⁻¹(u).
    fn inverse(&self, u: f64) -> f64 {
        self.at_rank(((u * self.total as f64).ceil() as u64).clamp(1, self.total))
    }
}

fn rank(q: f64, n: u64) -> u64 {
    ((q * n as f64).ceil() as u64).clamp(1, n.max(1))
}

/// The two-sided p-value of the Mann–Whitney U test that the current durations are
/// shifted from the baseline's, with ties (operations in one bucket) corrected for.
fn mann_whitney(b: &Buckets, c: &Buckets) -> f64 {
    let (n1, n2) = (b.total as f64, c.total as f64);
    // U of the current side: pairs where it is larger, plus half the ties.
    let (mut u, mut below_b, mut ties) = (0.0f64, 0.0f64, 0.0f64);
    let (mut i, mut j) = (0, 0);
    while i < b.lows.len() || j < c.lows.len() {
        let low = match (b.lows.get(i), c.lows.get(j)) {
            (Some(x), Some(y)) => *x.min(y),
            (Some(x), None) => *x,
            (None, Some(y)) => *y,
            (None, None) => break,
        };
        let nb = if b.lows.get(i) == Some(&low) {
            i += 1;
            b.counts[i - 1] as f64
        } else {
            0.0
        };
        let nc = if c.lows.get(j) == Some(&low) {
            j += 1;
            c.counts[j - 1] as f64
        } else {
            0.0
        };
        u += nc * below_b + 0.5 * nc * nb;
        below_b += nb;
        let t = nb + nc;
        ties += t * t * t - t;
    }
    let n = n1 + n2;
    let mean = n1 * n2 / 2.0;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if variance <= 0.0 || !variance.is_finite() {
        return 1.0;
    }
    let diff = (u - mean).abs();
    // Continuity correction.
    let z = (diff - 0.5).max(0.0) / variance.sqrt();
    2.0 * standard_normal().sf(z)
}

fn standard_normal() -> Normal {
    Normal::standard()
}

#[allow(clippy::too_many_arguments)]
fn duration(
    figure: Figure,
    q: f64,
    min_samples: u64,
    b: &Buckets,
    c: &Buckets,
    mw: Option<f64>,
    seed: u64,
    config: &CompareConfig,
) -> FigureChange {
    let value = |h: &Buckets| (h.total > 0).then(|| h.quantile(q));
    let mut change = FigureChange::ratio(figure, value(b), value(c));
    change.p_value = mw;
    change.verdict = Some(Verdict::NotEnoughData);
    if b.total < min_samples || c.total < min_samples {
        return change;
    }
    let interval = bootstrap_ratio(b, c, q, config.resamples, config.confidence, seed);
    change.interval = interval;
    let p = mw.unwrap_or(1.0);
    change.verdict = Some(match interval {
        Some([lo, _]) if p < config.alpha && lo > 1.0 + config.noise => Verdict::Regressed,
        Some([_, hi]) if p < config.alpha && hi < 1.0 / (1.0 + config.noise) => Verdict::Improved,
        _ => Verdict::Unchanged,
    });
    change
}

/// The percentile interval of current / baseline for the q-quantile, from `resamples`
/// bootstrap replicates of each side's quantile (one Beta draw each: see the module
/// docs).
fn bootstrap_ratio(
    b: &Buckets,
    c: &Buckets,
    q: f64,
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Option<[f64; 2]> {
    let order = |h: &Buckets| {
        let k = rank(q, h.total) as f64;
        Beta::new(k, h.total as f64 - k + 1.0).ok()
    };
    let (db, dc) = (order(b)?, order(c)?);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ratios: Vec<f64> = (0..resamples)
        .filter_map(|_| {
            let vb = b.inverse(db.sample(&mut rng));
            let vc = c.inverse(dc.sample(&mut rng));
            (vb > 0.0).then(|| vc / vb)
        })
        .collect();
    if ratios.len() < resamples / 2 {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    let pick = |p: f64| ratios[((ratios.len() - 1) as f64 * p).round() as usize];
    Some([pick(tail), pick(1.0 - tail)])
}

/// The median time per frame, judged like a duration; not judged (absent) for pairs
/// that record no frames.
fn frame_time(
    b: &PairStatistics,
    c: &PairStatistics,
    seed: u64,
    config: &CompareConfig,
) -> FigureChange {
    let (hb, hc) = (
        Buckets::of(&b.frame_time_histogram),
        Buckets::of(&c.frame_time_histogram),
    );
    if hb.total == 0 && hc.total == 0 {
        return FigureChange::ratio(Figure::FrameTime, None, None);
    }
    let mw = (hb.total > 0 && hc.total > 0).then(|| mann_whitney(&hb, &hc));
    duration(
        Figure::FrameTime,
        0.5,
        config.min_samples,
        &hb,
        &hc,
        mw,
        seed,
        config,
    )
}

fn failure_rate(b: &PairStatistics, c: &PairStatistics, config: &CompareConfig) -> FigureChange {
    let (nb, nc) = (b.statistics.count, c.statistics.count);
    let (xb, xc) = (b.statistics.failures, c.statistics.failures);
    let rate = |x: u64, n: u64| (n > 0).then(|| x as f64 / n as f64);
    let (rb, rc) = (rate(xb, nb), rate(xc, nc));
    let mut change = FigureChange::difference(Figure::FailureRate, rb, rc);
    change.verdict = Some(Verdict::NotEnoughData);
    if nb < config.min_samples || nc < config.min_samples {
        return change;
    }
    let z = standard_normal().inverse_cdf(1.0 - (1.0 - config.confidence) / 2.0);
    let (lb, ub) = wilson(xb, nb, z);
    let (lc, uc) = wilson(xc, nc, z);
    let (pb, pc) = (xb as f64 / nb as f64, xc as f64 / nc as f64);
    let d = pc - pb;
    let interval = [
        d - ((pc - lc).powi(2) + (ub - pb).powi(2)).sqrt(),
        d + ((uc - pc).powi(2) + (pb - lb).powi(2)).sqrt(),
    ];
    let p = two_proportions(xb, nb, xc, nc);
    change.interval = Some(interval);
    change.p_value = Some(p);
    change.verdict = Some(if p < config.alpha && interval[0] > config.failure_noise {
        Verdict::Regressed
    } else if p < config.alpha && interval[1] < -config.failure_noise {
        Verdict::Improved
    } else {
        Verdict::Unchanged
    });
    change
}

/// The Wilson score interval of x successes in n.
fn wilson(x: u64, n: u64, z: f64) -> (f64, f64) {
    let (x, n) = (x as f64, n as f64);
    let p = x / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Two-sided p-value that two failure proportions differ: Fisher's exact test when an
/// expected failure count is under 5, the pooled two-proportion z test otherwise.
fn two_proportions(xb: u64, nb: u64, xc: u64, nc: u64) -> f64 {
    let (x, n) = (xb + xc, nb + nc);
    let expected_b = x as f64 * nb as f64 / n as f64;
    let expected_c = x as f64 * nc as f64 / n as f64;
    if x == 0 || x == n {
        return 1.0;
    }
    if expected_b.min(expected_c) < 5.0 {
        // Current-side failures given the total: hypergeometric.
        return match Hypergeometric::new(n, x, nc) {
            Ok(h) => {
                let lower = h.cdf(xc);
                let upper = if xc == 0 { 1.0 } else { h.sf(xc - 1) };
                (2.0 * lower.min(upper)).min(1.0)
            }
            Err(_) => 1.0,
        };
    }
    let p = x as f64 / n as f64;
    let se = (p * (1.0 - p) * (1.0 / nb as f64 + 1.0 / nc as f64)).sqrt();
    if se <= 0.0 {
        return 1.0;
    }
    let z = (xc as f64 / nc as f64 - xb as f64 / nb as f64).abs() / se;
    2.0 * standard_normal().sf(z)
}

fn quality(b: &PairStatistics, c: &PairStatistics, config: &CompareConfig) -> FigureChange {
    let (mb, mc) = (
        b.statistics.mean_quality_score,
        c.statistics.mean_quality_score,
    );
    let (nb, nc) = (b.statistics.quality_samples, c.statistics.quality_samples);
    let mut change = FigureChange::difference(Figure::Quality, mb, mc);
    // Not judged for pairs that record no quality at all.
    let (Some(mb), Some(mc)) = (mb, mc) else {
        return change;
    };
    change.verdict = Some(Verdict::NotEnoughData);
    let (Some(vb), Some(vc)) = (b.quality_variance, c.quality_variance) else {
        return change;
    };
    if nb < config.min_samples || nc < config.min_samples {
        return change;
    }
    let (nb, nc) = (nb as f64, nc as f64);
    let d = mc - mb;
    let se2 = vb / nb + vc / nc;
    let (interval, p) = if se2 <= 0.0 {
        ([d, d], if d == 0.0 { 1.0 } else { 0.0 })
    } else {
        let se = se2.sqrt();
        let df = se2 * se2
            / ((vb / nb).powi(2) / (nb - 1.0) + (vc / nc).powi(2) / (nc - 1.0))
                .max(f64::MIN_POSITIVE);
        match StudentsT::new(0.0, 1.0, df.max(1.0)) {
            Ok(t) => {
                let crit = t.inverse_cdf(1.0 - (1.0 - config.confidence) / 2.0);
                ([d - crit * se, d + crit * se], 2.0 * t.sf((d / se).abs()))
            }
            Err(_) => return change,
        }
    };
    change.interval = Some(interval);
    change.p_value = Some(p);
    change.verdict = Some(if p < config.alpha && interval[1] < -config.quality_noise {
        Verdict::Regressed
    } else if p < config.alpha && interval[0] > config.quality_noise {
        Verdict::Improved
    } else {
        Verdict::Unchanged
    });
    change
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default each field's documentation quotes ("Default 0.02."), read from this
    /// file's source.
    fn documented_default(field: &str) -> f64 {
        let source = include_str!("compare.rs");
        let at = source
            .find(&format!("    pub {field}: "))
            .unwrap_or_else(|| panic!("no field {field}"));
        let doc_start = source[..at].rfind("pub ").map_or(0, |p| p + 4);
        let doc = &source[doc_start..at];
        let value = doc
            .split("Default ")
            .nth(1)
            .unwrap_or_else(|| panic!("{field}: no default documented in {doc:?}"));
        let number: String = value
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',')
            .filter(|c| *c != ',')
            .collect();
        number
            .trim_end_matches('.')
            .parse()
            .unwrap_or_else(|_| panic!("{field}: {number:?}"))
    }

    #[test]
    fn the_documented_defaults_are_the_defaults() {
        let c = CompareConfig::default();
        for (field, value) in [
            ("alpha", c.alpha),
            ("noise", c.noise),
            ("failure_noise", c.failure_noise),
            ("quality_noise", c.quality_noise),
            ("min_samples", c.min_samples as f64),
            ("min_samples_p95", c.min_samples_p95 as f64),
            ("confidence", c.confidence),
            ("resamples", c.resamples as f64),
        ] {
            assert_eq!(documented_default(field), value, "{field}");
        }
    }

    /// A pair whose durations are the given buckets `(low ns, count)` (width 1 ns).
    fn pair(strategy: &str, buckets: &[(u64, u64)], failures: u64) -> PairStatistics {
        let count: u64 = buckets.iter().map(|b| b.1).sum();
        let mut json = serde_json::json!({
            "operation_type": "enhancement",
            "strategy": strategy,
            "statistics": {
                "count": count, "successes": count - failures, "failures": failures,
                "success_rate": null, "duration": null, "frames_processed_total": 0,
                "segments_total": 0, "frames_per_second": null, "mean_quality_score": null,
                "quality_samples": 0,
                "resources": {
                    "peak_memory_mb": null, "peak_gpu_memory_mb": null,
                    "cpu_utilization_percent": null, "gpu_utilization_percent": null
                }
            },
            "duration_histogram": [],
            "frame_time_histogram": [],
            "quality_variance": null
        });
        json["duration_histogram"] = serde_json::to_value(HistogramBuckets(
            buckets.iter().map(|(low, n)| [*low, 1, *n]).collect(),
        ))
        .expect("buckets");
        serde_json::from_value(json).expect("a pair")
    }

    #[test]
    fn mann_whitney_matches_a_worked_example() {
        // Baseline 1,2,3,4,5 against current 6,7,8,9,10: U = 25 (every pair larger),
        // mean 12.5, variance 5·5·11/12; z = (12.5 − 0.5) / 4.787 = 2.507, p = 0.0122.
        let b = pair("x", &[(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)], 0);
        let c = pair("x", &[(6, 1), (7, 1), (8, 1), (9, 1), (10, 1)], 0);
        let p = mann_whitney(&Buckets::new(&b), &Buckets::new(&c));
        assert!((p - 0.0122).abs() < 0.0005, "{p}");
        // Identical samples: no evidence at all.
        let p = mann_whitney(&Buckets::new(&b), &Buckets::new(&b));
        assert!(p > 0.99, "{p}");
    }

    #[test]
    fn wilson_interval_matches_a_worked_example() {
        // 5 of 50 at 95%: [0.0435, 0.2136].
        let (lo, hi) = wilson(5, 50, 1.959_964);
        assert!(
            (lo - 0.0435).abs() < 5e-4 && (hi - 0.2136).abs() < 5e-4,
            "{lo} {hi}"
        );
    }

    #[test]
    fn few_operations_new_and_gone_pairs_are_not_regressions() {
        let few = pair("vsrm", &[(1_000, 10)], 0);
        let slow_few = pair("vsrm", &[(9_000, 10)], 0);
        let only_base = pair("ditvr", &[(1_000, 100)], 0);
        let only_now = pair("seedvr2", &[(1_000, 100)], 0);
        let result = compare(
            &[few, only_base],
            &[slow_few, only_now],
            &CompareConfig::default(),
        );
        let verdict = |s: &str| {
            result
                .pairs
                .iter()
                .find(|p| p.strategy == s)
                .map(|p| p.verdict)
        };
        assert_eq!(verdict("vsrm"), Some(Verdict::NotEnoughData));
        assert_eq!(verdict("ditvr"), Some(Verdict::Gone));
        assert_eq!(verdict("seedvr2"), Some(Verdict::New));
        assert!(!result.regressed());
    }

    #[test]
    fn more_failures_beyond_the_noise_regress() {
        let b = pair("vsrm", &[(1_000, 400)], 4);
        let c = pair("vsrm", &[(1_000, 400)], 40);
        let result = compare(&[b], &[c], &CompareConfig::default());
        assert_eq!(
            result.regressions().collect::<Vec<_>>(),
            vec![("enhancement", "vsrm", Figure::FailureRate)]
        );
    }

    /// 400 operations spread over 1,000–1,195 ns, all scaled by `factor`.
    fn run(factor: f64) -> PairStatistics {
        let buckets: Vec<(u64, u64)> = (0..40)
            .map(|b| (((1_000 + 5 * b) as f64 * factor) as u64, 10))
            .collect();
        pair("seedvr2", &buckets, 0)
    }

    #[test]
    fn several_baselines_measure_the_run_to_run_spread() {
        let config = CompareConfig::default();
        // Five baseline runs that drift by up to 15% between themselves.
        let baselines: Vec<Vec<PairStatistics>> = [1.00, 1.10, 0.95, 1.15, 1.05]
            .iter()
            .map(|f| vec![run(*f)])
            .collect();
        let refs: Vec<&[PairStatistics]> = baselines.iter().map(Vec::as_slice).collect();
        let p50 = |c: &Comparison| {
            c.pairs[0]
                .figures
                .iter()
                .find(|f| f.figure == Figure::P50Duration)
                .cloned()
                .expect("p50")
        };

        // 12% slower than the first run, within the baselines' own spread: one baseline
        // calls it a regression, five do not.
        let within = [run(1.12)];
        assert!(compare(refs[0], &within, &config).regressed());
        let judged = compare_runs(&refs, &within, &config);
        assert_eq!(judged.baselines, 5);
        assert!(!judged.regressed(), "{judged:?}");
        let threshold = p50(&judged).threshold.expect("a threshold");
        assert!(threshold > 0.15 && threshold < 0.6, "{threshold}");

        // 80% slower than every baseline: regressed.
        let slow = [run(1.80)];
        let judged = compare_runs(&refs, &slow, &config);
        assert!(judged.regressed(), "{judged:?}");
        assert_eq!(p50(&judged).verdict, Some(Verdict::Regressed));

        // One baseline: exactly `compare`.
        assert_eq!(
            compare_runs(&refs[..1], &slow, &config),
            compare(refs[0], &slow, &config)
        );
        // Baselines that agree keep the configured noise threshold.
        let same: Vec<&[PairStatistics]> = vec![refs[0]; 3];
        let judged = compare_runs(&same, &within, &config);
        assert_eq!(p50(&judged).threshold, Some(config.noise));
        assert!(judged.regressed());
    }

    #[test]
    fn a_comparison_is_deterministic() {
        let b = pair("vsrm", &[(1_000, 40), (1_100, 30), (1_500, 30)], 1);
        let c = pair("vsrm", &[(1_050, 40), (1_200, 30), (1_600, 30)], 2);
        let config = CompareConfig::default();
        assert_eq!(
            compare(std::slice::from_ref(&b), std::slice::from_ref(&c), &config),
            compare(&[b], &[c], &config)
        );
    }
}
