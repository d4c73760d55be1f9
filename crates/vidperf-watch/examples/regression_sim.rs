//! False alarms and detection power of `vidperf compare` at its defaults, by
//! simulation: operations drawn from known distributions are recorded into real
//! `Stats`, their pairs compared as an export's would be. Deterministic (seeded).
//!
//! Run: `cargo run --release -p vidperf-watch --example regression_sim` (the tables of
//! docs/REGRESSIONS.md; `-- --quick` for 200 comparisons per case instead of 1,000).

// reason: an example reports on stdout.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};
use vidperf_core::stats::PairStatistics;
use vidperf_core::{
    FinishedSpan, OperationKey, SnapshotOptions, SpanId, Stats, StatsConfig, TraceId,
};
use vidperf_watch::compare::{CompareConfig, Figure, Verdict, compare};

/// A duration distribution, seconds.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Shape {
    /// Lognormal with this median and log-space standard deviation.
    LogNormal {
        /// Median, seconds.
        median: f64,
        /// Standard deviation of the logarithm.
        sigma: f64,
    },
    /// 80% around `fast`, 20% around `slow` (each lognormal, sigma 0.05): a cache hit
    /// or miss, a short or long clip.
    Bimodal {
        /// The fast mode, seconds.
        fast: f64,
        /// The slow mode, seconds.
        slow: f64,
    },
}

impl Shape {
    pub(crate) fn name(self) -> String {
        match self {
            Shape::LogNormal { sigma, .. } => format!("lognormal, σ = {sigma}"),
            Shape::Bimodal { fast, slow } => format!("bimodal {fast} s / {slow} s (80/20)"),
        }
    }

    fn draw(self, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            Shape::LogNormal { median, sigma } => LogNormal::new(median.ln(), sigma)
                .map(|d| d.sample(rng))
                .unwrap_or(median),
            Shape::Bimodal { fast, slow } => {
                let centre = if rng.random_bool(0.8) { fast } else { slow };
                LogNormal::new(centre.ln(), 0.05)
                    .map(|d| d.sample(rng))
                    .unwrap_or(centre)
            }
        }
    }
}

/// `n` operations of `shape`, every duration times `factor`, failing with probability
/// `failure`, recorded into real statistics; their one pair.
pub(crate) fn pair(
    shape: Shape,
    n: usize,
    factor: f64,
    failure: f64,
    rng: &mut ChaCha8Rng,
) -> PairStatistics {
    let stats = Stats::new(
        StatsConfig::default()
            .with_history_limit(0)
            .with_window_slots(Duration::from_secs(10), 0),
    );
    let end = SystemTime::now();
    for i in 0..n {
        let key = OperationKey {
            operation_type: Arc::from("enhancement"),
            strategy: Arc::from("sim"),
        };
        let ids = (
            TraceId::from_bytes([7; 16]),
            SpanId::from_bytes((i as u64 + 1).to_be_bytes()),
        );
        let seconds = shape.draw(rng) * factor;
        let mut span = FinishedSpan::operation(key, ids, end, Duration::from_secs_f64(seconds));
        span.error = rng.random_bool(failure).then(|| "failed".to_owned());
        stats.record(&span);
    }
    stats
        .snapshot_with(SnapshotOptions::default().with_recent(0).with_pairs())
        .pairs
        .remove(0)
}

/// How often, over `runs` comparisons of a baseline with a current set slowed by
/// `factor`, the pair is judged regressed (any figure), and the p50 alone.
pub(crate) fn rate(shape: Shape, n: usize, factor: f64, runs: usize, seed: u64) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let config = CompareConfig::default();
    let (mut any, mut p50) = (0, 0);
    for _ in 0..runs {
        let baseline = pair(shape, n, 1.0, 0.02, &mut rng);
        let current = pair(shape, n, factor, 0.02, &mut rng);
        let result = compare(&[baseline], &[current], &config);
        if result.pairs[0].verdict == Verdict::Regressed {
            any += 1;
        }
        if result
            .regressions()
            .any(|(_, _, figure)| figure == Figure::P50Duration)
        {
            p50 += 1;
        }
    }
    (any as f64 / runs as f64, p50 as f64 / runs as f64)
}

pub(crate) const SHAPES: [Shape; 3] = [
    Shape::LogNormal {
        median: 0.5,
        sigma: 0.1,
    },
    Shape::LogNormal {
        median: 0.5,
        sigma: 0.3,
    },
    Shape::Bimodal {
        fast: 0.4,
        slow: 0.8,
    },
];

#[allow(dead_code)]
fn main() {
    let runs = if std::env::args().any(|a| a == "--quick") {
        200
    } else {
        1_000
    };
    let config = CompareConfig::default();
    println!(
        "Defaults: alpha {}, noise {} (durations), {} (failure rate), min samples {} ({} for p95), \
         {} resamples, {runs} comparisons per case, 2% failures on both sides.\n",
        config.alpha,
        config.noise,
        config.failure_noise,
        config.min_samples,
        config.min_samples_p95,
        config.resamples
    );
    println!("| A/A: same distribution | n per side | judged regressed (any figure) | target |");
    println!("|---|---:|---:|---|");
    for (s, shape) in SHAPES.iter().enumerate() {
        for (k, n) in [30usize, 100, 1_000].into_iter().enumerate() {
            let (any, _) = rate(*shape, n, 1.0, runs, 1_000 + (s * 10 + k) as u64);
            println!(
                "| {} | {n} | {:.1}% | ≤ 1%: {} |",
                shape.name(),
                any * 100.0,
                if any <= 0.01 { "met" } else { "missed" }
            );
        }
    }
    println!();
    println!(
        "| power: current slowed by | distribution | n per side | p50 judged regressed | target |"
    );
    println!("|---|---|---:|---:|---|");
    for (s, shape) in SHAPES.iter().enumerate() {
        for (k, (factor, n, target)) in [
            (1.10, 100usize, Some(0.95)),
            (1.05, 1_000, Some(0.90)),
            (1.20, 30, None),
        ]
        .into_iter()
        .enumerate()
        {
            let (_, p50) = rate(*shape, n, factor, runs, 2_000 + (s * 10 + k) as u64);
            let verdict = match target {
                Some(t) if p50 >= t => format!("≥ {:.0}%: met", t * 100.0),
                Some(t) => format!("≥ {:.0}%: missed", t * 100.0),
                None => "(none)".to_owned(),
            };
            println!(
                "| {:.0}% | {} | {n} | {:.1}% | {verdict} |",
                (factor - 1.0) * 100.0,
                shape.name(),
                p50 * 100.0
            );
        }
    }
}
