//! An anytime-valid check of a live service against its baseline: a test that can be
//! repeated every 30 seconds for weeks without its false alarms growing with the
//! number of looks.
//!
//! `vidperf compare`'s tests are fixed-sample tests: right for one comparison, wrong
//! for one repeated thousands of times a day (each look is another chance of a false
//! alarm). This is a sequential test whose guarantee holds at every look at once:
//! per pair and per day, the probability of *any* false alarm is at most `alpha`.
//!
//! # Method
//!
//! The figure is the log of each operation's time per frame when the baseline recorded
//! frames for the pair (a figure independent of clip length, which is most of the
//! variance of a video service's durations), else the log of its duration. Both are
//! read from the histograms the statistics keep, at the buckets' midpoints, the same
//! map on both sides.
//!
//! For an e-process started at some moment with `N` live operations since, whose mean
//! log time exceeds the baseline's by `D`, and `v = s²(1/N + 1/n_b)` (`s²` the
//! baseline's variance, `n_b` its operations: the baseline's own uncertainty is part of
//! `v`), the one-sided normal mixture over the shift with scale `τ = ln(1 + shift)` is
//!
//! ```text
//! ln E = ln 2 + ½ ln(v / (v + τ²)) + τ² D² / (2 v (v + τ²)) + ln Φ(τ D / √(v (v + τ²)))
//! ```
//!
//! (`D` less `ln(1 + noise)`, so that a slowdown within the noise threshold is not
//! counted as one), the likelihood ratio of the data's location-invariant part mixed
//! over the shift: a
//! non-negative martingale under "no slower than the baseline", so by Ville's
//! inequality it reaches `1/alpha` with probability at most `alpha`, however often it
//! is looked at (Howard et al. 2021; Lindon et al. 2022).
//!
//! One e-process runs from the start of each day with weight ½; so that a regression
//! that starts mid-day is not diluted by the hours before it, a new one starts every
//! `restart_every` (2 minutes) with weight ½ / (processes per day), kept for `keep_for`
//! (2 hours). A pair is regressed while some process's weighted e-value reaches
//! `1/alpha`; by the union bound the daily guarantee holds for the family.
//!
//! **Drift of the whole machine** moves every strategy at once; a sequential test
//! detects it as faithfully as a regression. So each pair is also tested *relative to
//! the other strategies of its operation*: the same e-process on its shift less their
//! median shift over the same process (`relative_regressed`). A strategy regressed on
//! both is a regression of that strategy ([`SequentialPair::strategy_regressed`]);
//! regressed alone is drift, and is reported as such.
//!
//! The operations are counted once, as they arrive: the check reads the statistics'
//! cumulative histograms and takes the difference from each process's start, never
//! the overlapping live window again.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::Serialize;
use vidperf_core::stats::{HistogramBuckets, PairStatistics};

/// How the sequential check runs.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SequentialConfig {
    /// The most probability of any false alarm per pair per day. Default 0.01.
    pub alpha: f64,
    /// The relative slowdown the test is tuned to detect fastest (it detects any, the
    /// others more slowly). Default 0.10.
    pub shift: f64,
    /// How often a new e-process starts. Default 2 minutes.
    pub restart_every: Duration,
    /// How long each one after the day's first is kept. Default 2 hours.
    pub keep_for: Duration,
    /// The period of the guarantee: the family restarts after it. Default 24 hours.
    pub day: Duration,
    /// Operations a pair's baseline needs to be checked. Default 30.
    pub min_baseline: u64,
    /// A slowdown up to this much is noise, not a regression (the null hypothesis is
    /// "at most this much slower"), as `vidperf compare`'s threshold. Default 0.02.
    pub noise: f64,
}

impl Default for SequentialConfig {
    fn default() -> Self {
        Self {
            alpha: 0.01,
            shift: 0.10,
            restart_every: Duration::from_secs(120),
            keep_for: Duration::from_secs(7200),
            day: Duration::from_secs(86_400),
            min_baseline: 30,
            noise: 0.02,
        }
    }
}

/// One pair's state, as `GET /performance/regressions` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SequentialPair {
    /// The operation type.
    pub operation_type: String,
    /// The strategy.
    pub strategy: String,
    /// `frame_time` or `duration`: the figure tested.
    pub figure: &'static str,
    /// Operations since the day's first e-process started.
    pub live_operations: u64,
    /// The highest weighted e-value; the pair is regressed at `1/alpha` or more.
    pub evidence: f64,
    /// The change of the geometric mean over the operations of the process holding the
    /// most evidence (`0.12` = 12% slower); absent before any operation.
    pub change: Option<f64>,
    /// Whether the pair is regressed now: slower than the baseline.
    pub regressed: bool,
    /// The same test on the pair's shift less the median shift of the other strategies
    /// of its operation over the same time (absent without any): what the machine did
    /// to all of them is taken out. `regressed` with this `false` is drift of the whole
    /// machine (or of the workload), not this strategy's regression.
    pub relative_regressed: Option<bool>,
    /// The relative test's weighted e-value.
    pub relative_evidence: Option<f64>,
    /// The change relative to the other strategies (`0.1` = 10% slower than they moved).
    pub relative_change: Option<f64>,
}

impl SequentialPair {
    /// Whether this is a regression of the strategy itself: regressed, and — when the
    /// operation has other strategies — regressed relative to them too.
    pub fn strategy_regressed(&self) -> bool {
        self.regressed && self.relative_regressed != Some(false)
    }
}

/// The sequential check of every pair of a baseline.
#[derive(Clone, Debug)]
pub struct Sequential {
    config: SequentialConfig,
    pairs: BTreeMap<(String, String), PairSequence>,
}

impl Sequential {
    /// A check of the pairs of `baseline` with at least `min_baseline` operations.
    pub fn new(baseline: &[PairStatistics], config: SequentialConfig) -> Self {
        let pairs = baseline
            .iter()
            .filter_map(|p| {
                let per_frame = Moments::of(&p.frame_time_histogram);
                let (figure, moments) = if per_frame.n >= config.min_baseline {
                    (Figure::FrameTime, per_frame)
                } else {
                    (Figure::Duration, Moments::of(&p.duration_histogram))
                };
                (moments.n >= config.min_baseline && moments.variance() > 0.0).then(|| {
                    (
                        (p.operation_type.clone(), p.strategy.clone()),
                        PairSequence::new(figure, &moments),
                    )
                })
            })
            .collect();
        Self { config, pairs }
    }

    /// Feeds the live pairs' *cumulative* statistics (everything since the service
    /// started, not a window) seen at `at` (seconds on any monotonic clock), and
    /// answers every checked pair's state.
    pub fn update(&mut self, live: &[PairStatistics], at: f64) -> Vec<SequentialPair> {
        let config = &self.config;
        for ((operation_type, strategy), seq) in &mut self.pairs {
            let totals = live
                .iter()
                .find(|p| &p.operation_type == operation_type && &p.strategy == strategy)
                .map_or(Moments::default(), |p| match seq.figure {
                    Figure::FrameTime => Moments::of(&p.frame_time_histogram),
                    Figure::Duration => Moments::of(&p.duration_histogram),
                });
            seq.observe(totals.n, totals.sum, at, config);
        }
        self.pairs
            .iter()
            .map(|((operation_type, strategy), seq)| {
                let peers: Vec<&PairSequence> = self
                    .pairs
                    .iter()
                    .filter(|((o, s), p)| {
                        o == operation_type && s != strategy && p.figure == seq.figure
                    })
                    .map(|(_, p)| p)
                    .collect();
                let mut state = seq.state(operation_type, strategy, config);
                if let Some((ln_e, change)) = seq.relative(&peers, config) {
                    state.relative_evidence = Some(ln_e.exp());
                    state.relative_change = Some(change);
                    state.relative_regressed = Some(ln_e >= (1.0 / config.alpha).ln());
                }
                state
            })
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Figure {
    FrameTime,
    Duration,
}

/// Count, sum and sum of squares of the log values of a histogram (bucket midpoints,
/// nanoseconds).
#[derive(Clone, Copy, Debug, Default)]
struct Moments {
    n: u64,
    sum: f64,
    sum_sq: f64,
}

impl Moments {
    fn of(h: &HistogramBuckets) -> Self {
        let mut m = Self::default();
        for &[low, width, count] in &h.0 {
            let y = (low as f64 + width as f64 / 2.0).max(1.0).ln();
            m.n = m.n.saturating_add(count);
            m.sum += count as f64 * y;
            m.sum_sq += count as f64 * y * y;
        }
        m
    }

    fn mean(&self) -> f64 {
        self.sum / self.n as f64
    }

    fn variance(&self) -> f64 {
        if self.n < 2 {
            return 0.0;
        }
        let n = self.n as f64;
        ((self.sum_sq - self.sum * self.sum / n) / (n - 1.0)).max(0.0)
    }
}

/// An e-process: the live totals when it started, and its weight.
#[derive(Clone, Copy, Debug)]
struct Process {
    started: f64,
    n0: u64,
    s0: f64,
    ln_weight: f64,
}

#[derive(Clone, Debug)]
struct PairSequence {
    figure: Figure,
    baseline_mean: f64,
    baseline_variance: f64,
    baseline_n: f64,
    /// The day's first process, then the restarts, oldest first.
    day: Option<Process>,
    restarts: VecDeque<Process>,
    last: (u64, f64),
    /// (ln of the weighted e-value, the change) of the strongest process.
    best: (f64, Option<f64>),
    /// Each process's estimate at the last look.
    estimates: Vec<Estimate>,
}

/// One process's estimate: the shift of the mean log time and its variance.
#[derive(Clone, Copy, Debug)]
struct Estimate {
    started: f64,
    ln_weight: f64,
    d: f64,
    v: f64,
}

impl PairSequence {
    fn new(figure: Figure, baseline: &Moments) -> Self {
        Self {
            figure,
            baseline_mean: baseline.mean(),
            baseline_variance: baseline.variance(),
            baseline_n: baseline.n as f64,
            day: None,
            restarts: VecDeque::new(),
            last: (0, 0.0),
            best: (f64::NEG_INFINITY, None),
            estimates: Vec::new(),
        }
    }

    fn observe(&mut self, n: u64, sum: f64, at: f64, config: &SequentialConfig) {
        // Fewer operations than before: the statistics were reset; start over.
        if n < self.last.0 {
            self.day = None;
            self.restarts.clear();
        }
        let day_secs = config.day.as_secs_f64();
        let every = config.restart_every.as_secs_f64().max(1.0);
        let per_day = (day_secs / every).max(1.0);
        let start = |ln_weight| Process {
            started: at,
            n0: n,
            s0: sum,
            ln_weight,
        };
        match self.day {
            Some(d) if at - d.started < day_secs => {}
            _ => {
                self.day = Some(start(0.5f64.ln()));
                self.restarts.clear();
            }
        }
        let due = self
            .restarts
            .back()
            .or(self.day.as_ref())
            .is_none_or(|p| at - p.started >= every);
        if due {
            self.restarts.push_back(start((0.5 / per_day).ln()));
        }
        let keep = config.keep_for.as_secs_f64();
        while self.restarts.front().is_some_and(|p| at - p.started > keep) {
            self.restarts.pop_front();
        }
        self.last = (n, sum);
        let tau2 = config.shift.ln_1p().powi(2);
        let noise = config.noise.max(0.0).ln_1p();
        self.estimates = self
            .day
            .iter()
            .chain(&self.restarts)
            .filter_map(|p| {
                let count = n.checked_sub(p.n0).filter(|&c| c > 0)?;
                let d = (sum - p.s0) / count as f64 - self.baseline_mean;
                let v = self.baseline_variance * (1.0 / count as f64 + 1.0 / self.baseline_n);
                Some(Estimate {
                    started: p.started,
                    ln_weight: p.ln_weight,
                    d,
                    v,
                })
            })
            .collect();
        self.best = self
            .estimates
            .iter()
            .map(|e| {
                (
                    e.ln_weight + ln_e(e.d - noise, e.v, tau2),
                    Some(e.d.exp_m1()),
                )
            })
            .fold(
                (f64::NEG_INFINITY, None),
                |a, b| if b.0 > a.0 { b } else { a },
            );
    }

    /// The evidence that this pair slowed more than its `peers` (the other strategies of
    /// its operation) did over the same processes: the shift less the peers' median
    /// shift, whose variance is added to the pair's (the median of `m` estimates taken as
    /// `π/2m` of their mean variance from three on, the mean's below).
    fn relative(&self, peers: &[&PairSequence], config: &SequentialConfig) -> Option<(f64, f64)> {
        if peers.is_empty() {
            return None;
        }
        let tau2 = config.shift.ln_1p().powi(2);
        let noise = config.noise.max(0.0).ln_1p();
        let best = self
            .estimates
            .iter()
            .filter_map(|e| {
                let mut others: Vec<(f64, f64)> = peers
                    .iter()
                    .filter_map(|p| {
                        // Estimates are in the order their processes started.
                        p.estimates
                            .binary_search_by(|o| o.started.total_cmp(&e.started))
                            .ok()
                            .map(|i| (p.estimates[i].d, p.estimates[i].v))
                    })
                    .collect();
                if others.is_empty() {
                    return None;
                }
                others.sort_by(|a, b| a.0.total_cmp(&b.0));
                let m = others.len();
                let median = if m % 2 == 1 {
                    others[m / 2].0
                } else {
                    (others[m / 2 - 1].0 + others[m / 2].0) / 2.0
                };
                let mean_v = others.iter().map(|o| o.1).sum::<f64>() / m as f64;
                let median_v = if m >= 3 {
                    std::f64::consts::FRAC_PI_2 * mean_v / m as f64
                } else {
                    mean_v / m as f64
                };
                let d = e.d - median;
                Some((
                    e.ln_weight + ln_e(d - noise, e.v + median_v, tau2),
                    d.exp_m1(),
                ))
            })
            .fold(
                (f64::NEG_INFINITY, 0.0),
                |a, b| if b.0 > a.0 { b } else { a },
            );
        best.0.is_finite().then_some(best)
    }

    fn state(
        &self,
        operation_type: &str,
        strategy: &str,
        config: &SequentialConfig,
    ) -> SequentialPair {
        let live_operations = self.day.map_or(0, |d| self.last.0.saturating_sub(d.n0));
        let threshold = (1.0 / config.alpha).ln();
        SequentialPair {
            operation_type: operation_type.to_owned(),
            strategy: strategy.to_owned(),
            figure: match self.figure {
                Figure::FrameTime => "frame_time",
                Figure::Duration => "duration",
            },
            live_operations,
            evidence: if self.best.0.is_finite() {
                self.best.0.exp()
            } else {
                0.0
            },
            change: self.best.1,
            regressed: self.best.0 >= threshold,
            relative_regressed: None,
            relative_evidence: None,
            relative_change: None,
        }
    }
}

/// The one-sided normal-mixture e-value, in logs (see the module's documentation).
fn ln_e(d: f64, v: f64, tau2: f64) -> f64 {
    if !(v > 0.0 && v.is_finite() && d.is_finite()) {
        return 0.0;
    }
    let s = v + tau2;
    std::f64::consts::LN_2
        + 0.5 * (v / s).ln()
        + tau2 * d * d / (2.0 * v * s)
        + ln_phi(d * tau2.sqrt() / (v * s).sqrt())
}

/// ln Φ(x), the standard normal distribution function, accurate far into the tail.
fn ln_phi(x: f64) -> f64 {
    if x > -20.0 {
        (0.5 * statrs::function::erf::erfc(-x / std::f64::consts::SQRT_2)).ln()
    } else {
        // Mills' ratio: Φ(x) ≈ φ(x)/|x| for x → −∞.
        -0.5 * x * x - (-x).ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
    }
}

#[doc(hidden)]
/// For the simulation in `tests/sequential.rs`: a pair from the baseline's moments of
/// log time, fed live totals directly.
pub mod simulate {
    use super::{Figure, Moments, PairSequence, SequentialConfig};

    /// A pair against a baseline of `n` operations with this mean and variance of log
    /// time.
    #[derive(Debug)]
    pub struct Pair(PairSequence);

    impl Pair {
        /// See [`Pair`].
        pub fn new(n: u64, mean: f64, variance: f64) -> Self {
            let m = Moments {
                n,
                sum: mean * n as f64,
                sum_sq: (variance * (n as f64 - 1.0)) + mean * mean * n as f64,
            };
            Self(PairSequence::new(Figure::Duration, &m))
        }

        /// Feeds the live totals (operations, sum of log times) at `at` seconds;
        /// whether the pair is regressed.
        pub fn observe(&mut self, n: u64, sum: f64, at: f64, config: &SequentialConfig) -> bool {
            self.0.observe(n, sum, at, config);
            self.0.state("", "", config).regressed
        }
    }
}

#[doc(hidden)]
/// For the simulation in `tests/sequential.rs`: one operation's strategies, each against
/// a baseline of `n` operations of this mean and variance of log time.
pub mod simulate_operation {
    use std::collections::BTreeMap;

    use super::{Figure, Moments, PairSequence, Sequential, SequentialConfig};

    /// See the module.
    #[derive(Debug)]
    pub struct Operation(Sequential);

    impl Operation {
        /// `baselines[i]` = (operations, mean, variance) of strategy `i`.
        pub fn new(baselines: &[(u64, f64, f64)], config: SequentialConfig) -> Self {
            let pairs: BTreeMap<_, _> = baselines
                .iter()
                .enumerate()
                .map(|(i, &(n, mean, variance))| {
                    let m = Moments {
                        n,
                        sum: mean * n as f64,
                        sum_sq: variance * (n as f64 - 1.0) + mean * mean * n as f64,
                    };
                    (
                        ("op".to_owned(), format!("s{i}")),
                        PairSequence::new(Figure::Duration, &m),
                    )
                })
                .collect();
            Self(Sequential { config, pairs })
        }

        /// Feeds each strategy's live totals (operations, sum of log times) at `at`;
        /// per strategy, (regressed, regressed relative to the others).
        pub fn observe(&mut self, totals: &[(u64, f64)], at: f64) -> Vec<(bool, Option<bool>)> {
            let config = self.0.config.clone();
            for (i, seq) in self.0.pairs.values_mut().enumerate() {
                let (n, sum) = totals[i];
                seq.observe(n, sum, at, &config);
            }
            let keys: Vec<_> = self.0.pairs.keys().cloned().collect();
            keys.iter()
                .map(|key| {
                    let seq = &self.0.pairs[key];
                    let peers: Vec<&PairSequence> = self
                        .0
                        .pairs
                        .iter()
                        .filter(|(k, _)| *k != key)
                        .map(|(_, p)| p)
                        .collect();
                    let threshold = (1.0 / config.alpha).ln();
                    (
                        seq.best.0 >= threshold,
                        seq.relative(&peers, &config).map(|r| r.0 >= threshold),
                    )
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_e_value_is_one_without_evidence_and_grows_with_a_slowdown() {
        assert!((ln_e(0.0, 1e9, 0.01) - 0.0).abs() < 1e-3, "no data: e = 1");
        assert!(ln_e(-0.2, 0.001, 0.0091) < 0.0, "faster: no evidence");
        assert!(ln_e(0.1, 0.001, 0.0091) > 3.0, "10% slower over many ops");
        assert!(ln_phi(-40.0).is_finite() && ln_phi(-40.0) < -700.0);
        assert!((ln_phi(0.0) - 0.5f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn moments_read_histograms_at_bucket_midpoints() {
        let h = HistogramBuckets(vec![[1000, 10, 3], [2000, 20, 1]]);
        let m = Moments::of(&h);
        assert_eq!(m.n, 4);
        let expected = (3.0 * 1005f64.ln() + 2010f64.ln()) / 4.0;
        assert!((m.mean() - expected).abs() < 1e-12);
    }
}
