//! The live baseline's sequential check, simulated: a day of checks every 30 s at 2
//! operations a second per pair, against a baseline of 1,000 operations, log times of
//! σ = 0.3. The false alarms of an A/A day stay within `alpha` per pair though the
//! pair is looked at 2,880 times; slowdowns that start mid-day are found.
//!
//! `VIDPERF_SIM_PAIRS=1000 cargo test --release -p vidperf-watch --test sequential --
//! --nocapture` prints the figures of `docs/REGRESSIONS.md`.

// reason: the simulation prints the figures the docs quote.
#![allow(clippy::print_stdout)]

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use vidperf_watch::sequential::SequentialConfig;
use vidperf_watch::sequential::simulate::Pair;

const SIGMA: f64 = 0.3;
const BASELINE: u64 = 1000;
const PER_CHECK: u64 = 60; // 2 operations a second, checks every 30 s
const CHECKS_PER_DAY: u64 = 2880;

fn pairs() -> u64 {
    std::env::var("VIDPERF_SIM_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// One simulated pair's day: the check at which the sequential test first alarmed, if
/// it did, and whether a fixed one-sided z-test at the same `alpha` on the last 10
/// minutes, repeated at every check (the peeking the sequential test is for), did. The
/// live mean log time moves by `ln(1 + shift)` from check `shift_at` on.
fn day(seed: u64, shift: f64, shift_at: u64) -> (Option<u64>, bool) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let unit = Normal::new(0.0, 1.0).expect("normal");
    // The baseline is itself a sample: its mean is off the truth by its standard error.
    let baseline_mean = SIGMA * unit.sample(&mut rng) / (BASELINE as f64).sqrt();
    let config = SequentialConfig::default();
    let mut pair = Pair::new(BASELINE, baseline_mean, SIGMA * SIGMA);
    let (mut n, mut sum) = (0u64, 0.0f64);
    let mut window = std::collections::VecDeque::new();
    let mut fixed_alarmed = false;
    let mut alarmed = None;
    for check in 0..CHECKS_PER_DAY {
        let mean = if check >= shift_at {
            shift.ln_1p()
        } else {
            0.0
        };
        // The sum of 60 normal log times.
        let k = PER_CHECK as f64;
        let batch = k * mean + SIGMA * k.sqrt() * unit.sample(&mut rng);
        sum += batch;
        n += PER_CHECK;
        window.push_back(batch);
        if window.len() > 20 {
            window.pop_front();
        }
        let w = (window.len() as u64 * PER_CHECK) as f64;
        let z = (window.iter().sum::<f64>() / w - baseline_mean)
            / (SIGMA * SIGMA * (1.0 / w + 1.0 / BASELINE as f64)).sqrt();
        fixed_alarmed |= z > 2.326; // one-sided, alpha 0.01
        if alarmed.is_none() && pair.observe(n, sum, (check * 30) as f64, &config) {
            alarmed = Some(check);
        }
    }
    (alarmed, fixed_alarmed)
}

fn quantile(sorted: &[u64], q: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[test]
fn a_day_of_checks_every_30_s_keeps_false_alarms_within_alpha() {
    let pairs = pairs();
    let days: Vec<_> = (0..pairs).map(|i| day(i, 0.0, u64::MAX)).collect();
    let alarms = days.iter().filter(|d| d.0.is_some()).count();
    let fixed = days.iter().filter(|d| d.1).count();
    println!(
        "A/A: {alarms} of {pairs} pairs alarmed in 24 h of checks every 30 s ({:.2}%); \
         a fixed z-test on the last 10 minutes at each check: {fixed} ({:.1}%)",
        alarms as f64 / pairs as f64 * 100.0,
        fixed as f64 / pairs as f64 * 100.0
    );
    assert!(
        fixed as f64 > 0.1 * pairs as f64,
        "the peeking problem the sequential test is for: {fixed} of {pairs}"
    );
    assert!(
        alarms as f64 <= 0.01 * pairs as f64,
        "{alarms} of {pairs} pairs raised a false alarm"
    );
}

#[test]
fn slowdowns_starting_mid_day_are_found() {
    let pairs = pairs().min(400);
    // From 12:03:30: check 1447.
    let start = 1447;
    for (shift, within_checks) in [(0.5, 10), (0.1, 120)] {
        let mut delays: Vec<u64> = (0..pairs)
            // Checks from the change until (and with) the one that alarmed.
            .map(|i| {
                day(10_000 + i, shift, start)
                    .0
                    .map_or(u64::MAX, |c| c + 1 - start)
            })
            .collect();
        delays.sort_unstable();
        let found = delays.iter().filter(|&&d| d <= within_checks).count();
        println!(
            "{:.0}% slower from 12:03:30: median {} s, p90 {} s to detect; {found} of {pairs} within {} min",
            shift * 100.0,
            quantile(&delays, 0.5).saturating_mul(30),
            quantile(&delays, 0.9).saturating_mul(30),
            within_checks / 2
        );
        assert!(
            found as f64 >= 0.95 * pairs as f64,
            "{shift}: {found} of {pairs} found within {within_checks} checks"
        );
    }
}

/// Drift of the whole machine — every strategy of an operation 8% slower for 12 hours,
/// with a ±3% wave — is not one strategy's regression: the absolute test flags the
/// pairs, the relative test (each strategy against the others' median) stays quiet, and
/// a 10% regression of one strategy during the drift is still found by both.
#[test]
fn machine_drift_is_told_apart_from_a_strategy_regression() {
    use vidperf_watch::sequential::simulate_operation::Operation;
    let operations = (pairs() / 10).clamp(10, 250);
    let unit = Normal::new(0.0, 1.0).expect("normal");
    let (mut absolute, mut relative, mut found, mut found_relative) = (0, 0, 0, 0);
    for seed in 0..operations {
        for regress in [false, true] {
            let mut rng = ChaCha8Rng::seed_from_u64(50_000 + seed * 2 + u64::from(regress));
            let baselines: Vec<(u64, f64, f64)> = (0..4)
                .map(|_| {
                    let mean = SIGMA * unit.sample(&mut rng) / (BASELINE as f64).sqrt();
                    (BASELINE, mean, SIGMA * SIGMA)
                })
                .collect();
            let mut op = Operation::new(&baselines, SequentialConfig::default());
            let mut totals = [(0u64, 0.0f64); 4];
            let (mut any_absolute, mut any_relative) = (false, false);
            let (mut hit, mut hit_relative) = (false, false);
            for check in 0..CHECKS_PER_DAY {
                let hours = check as f64 * 30.0 / 3600.0;
                let drift = if (6.0..18.0).contains(&hours) {
                    0.08f64.ln_1p() + 0.03 * (hours * std::f64::consts::TAU / 3.0).sin()
                } else {
                    0.0
                };
                for (i, t) in totals.iter_mut().enumerate() {
                    let own = if regress && i == 0 && check >= 1447 {
                        0.1f64.ln_1p()
                    } else {
                        0.0
                    };
                    let k = PER_CHECK as f64;
                    t.1 += k * (drift + own) + SIGMA * k.sqrt() * unit.sample(&mut rng);
                    t.0 += PER_CHECK;
                }
                let states = op.observe(&totals, (check * 30) as f64);
                if regress {
                    hit |= states[0].0;
                    hit_relative |= states[0].1 == Some(true);
                } else {
                    any_absolute |= states.iter().any(|s| s.0);
                    any_relative |= states.iter().any(|s| s.1 == Some(true));
                }
            }
            if regress {
                found += usize::from(hit);
                found_relative += usize::from(hit_relative);
            } else {
                absolute += usize::from(any_absolute);
                relative += usize::from(any_relative);
            }
        }
    }
    println!(
        "machine drift (+8% for 12 h, ±3% wave), {operations} operations of 4 strategies: \
         absolute test fired on {absolute}, relative on {relative}; \
         one strategy 10% slower from 12:03:30 during the drift: found by the relative test \
         in {found_relative} of {operations} (absolute {found})"
    );
    assert!(
        absolute as f64 >= 0.9 * operations as f64,
        "the drift is detected: {absolute}"
    );
    assert!(
        relative as f64 <= 0.02 * operations as f64,
        "the relative test stays quiet: {relative}"
    );
    assert!(
        found_relative as f64 >= 0.9 * operations as f64,
        "found: {found_relative}"
    );
}
