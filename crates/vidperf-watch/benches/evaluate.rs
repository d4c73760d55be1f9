//! One evaluation cycle of the alert engine over a service's statistics: 64 strategies
//! with operations in every window, 20 rules (each one alert per strategy, so 1,280
//! alerts), against the real `Stats`. Target: at most 1 ms per cycle.
//!
//! Run: `cargo bench -p vidperf-watch --bench evaluate` (`-- --quick` for a short run).

// reason: a benchmark reports on stdout.
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use vidperf_core::{Figure, FinishedSpan, OperationKey, SpanId, Stats, StatsConfig, TraceId};
use vidperf_watch::alerts::Alerts;
use vidperf_watch::rules::RuleSet;

#[path = "support/rules.rs"]
mod rules;
use rules::{STRATEGIES, twenty_rules};

fn span(i: usize, strategy: &Arc<str>, end: SystemTime) -> FinishedSpan {
    let duration = Duration::from_micros(20_000 + (i as u64 * 7919) % 200_000);
    let key = OperationKey {
        operation_type: Arc::from("enhancement"),
        strategy: Arc::clone(strategy),
    };
    let ids = (
        TraceId::from_bytes((i as u128 + 1).to_be_bytes()),
        SpanId::from_bytes((i as u64 + 1).to_be_bytes()),
    );
    let mut span = FinishedSpan::operation(key, ids, end, duration);
    span.fields.frames_processed = Some(30);
    span.fields.quality_score = Some(0.9);
    span.error = i.is_multiple_of(17).then(|| "failed".to_owned());
    span.resources
        .figures
        .set(Figure::ProcessMemory, Some((1u64 << 30) as f64));
    span.resources
        .figures
        .set(Figure::GpuMemory, Some((8u64 << 30) as f64));
    span
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let stats = Stats::new(StatsConfig::default());
    let names: Vec<Arc<str>> = (0..STRATEGIES)
        .map(|s| Arc::from(format!("strategy{s:02}")))
        .collect();
    // Ten minutes of operations, 20 per strategy per minute.
    let now = SystemTime::now();
    let mut i = 0;
    for minute in 0..10u64 {
        for name in &names {
            for k in 0..20u64 {
                let end = now - Duration::from_secs(minute * 60 + k * 3);
                stats.record(&span(i, name, end));
                i += 1;
            }
        }
    }
    let mut engine =
        Alerts::new(RuleSet::parse(&twenty_rules("5s"), Path::new("bench.toml")).expect("rules"));
    let cycles = if quick { 50 } else { 500 };
    let mut times = Vec::with_capacity(cycles);
    for c in 0..cycles {
        let at = now + Duration::from_millis(c as u64 * 5);
        let started = Instant::now();
        let transitions = engine.evaluate(&stats, at);
        times.push(started.elapsed());
        std::hint::black_box(transitions);
    }
    let alerts = engine.gauges().len();
    times.sort();
    let started = Instant::now();
    for c in 0..cycles {
        let at = now + Duration::from_millis(c as u64 * 5);
        for w in [60, 300] {
            std::hint::black_box(vidperf_watch::Figures::window(
                &stats,
                Duration::from_secs(w),
                at,
                None,
                None,
            ));
        }
    }
    let snapshots = started.elapsed().as_secs_f64() * 1e3 / cycles as f64;
    let pick = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "alert evaluation: {STRATEGIES} strategies x 20 rules ({alerts} alerts), {} records: \
         median {:.3} ms, p95 {:.3} ms, max {:.3} ms per cycle over {cycles} cycles (target <= 1 ms: {}); the two window snapshots \
         alone {snapshots:.3} ms",
        stats.recorded(),
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.95).as_secs_f64() * 1e3,
        pick(1.0).as_secs_f64() * 1e3,
        if pick(0.5) <= Duration::from_millis(1) {
            "met"
        } else {
            "missed"
        },
    );
}
