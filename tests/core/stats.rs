//! Statistics against a naive reference, concurrency and bounds.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use tracing::info_span;
use vidperf::stats::OVERFLOW_KEY;
use vidperf::{OperationRecord, SnapshotOptions, StatsConfig};

use crate::{run, run_with};

#[derive(Debug, Clone)]
struct Op {
    strategy: usize,
    operation: usize,
    frames: Option<u32>,
    quality: Option<f64>,
    fail: bool,
    micros: u64,
}

fn op() -> impl Strategy<Value = Op> {
    (
        0usize..5,
        0usize..3,
        proptest::option::of(0u32..500),
        proptest::option::of(0.0f64..1.0),
        any::<bool>(),
        0u64..3000,
    )
        .prop_map(|(strategy, operation, frames, quality, fail, micros)| Op {
            strategy,
            operation,
            frames,
            quality,
            fail,
            micros,
        })
}

const STRATEGIES: [&str; 5] = [
    "vsrm",
    "seedvr2",
    "ditvr",
    "degradation_router",
    "ünïcode,\"quoted\"",
];
const OPERATIONS: [&str; 3] = ["enhancement", "analysis", "api_request"];

fn emit(op: &Op) {
    let span = info_span!(
        "op",
        strategy = STRATEGIES[op.strategy],
        operation = OPERATIONS[op.operation],
        frames_processed = tracing::field::Empty,
        quality_score = tracing::field::Empty,
        error = tracing::field::Empty,
    );
    if let Some(f) = op.frames {
        span.record("frames_processed", f);
    }
    if let Some(q) = op.quality {
        span.record("quality_score", q);
    }
    if op.fail {
        span.record("error", "failed");
    }
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_micros(op.micros) {
        std::hint::spin_loop();
    }
}

/// The naive reference: every figure computed from the full list of records.
struct Reference {
    count: u64,
    successes: u64,
    min: f64,
    max: f64,
    mean: f64,
    sorted: Vec<f64>,
    frames: u64,
    fps: Option<f64>,
    quality: Option<f64>,
}

fn reference(records: &[&OperationRecord]) -> Reference {
    let mut sorted: Vec<f64> = records.iter().map(|r| r.duration_seconds).collect();
    sorted.sort_by(f64::total_cmp);
    let with_frames: Vec<_> = records
        .iter()
        .filter(|r| r.frames_processed.is_some())
        .collect();
    let frames: u64 = with_frames.iter().filter_map(|r| r.frames_processed).sum();
    let frame_secs: f64 = with_frames.iter().map(|r| r.duration_seconds).sum();
    let q: Vec<f64> = records.iter().filter_map(|r| r.quality_score).collect();
    Reference {
        count: records.len() as u64,
        successes: records.iter().filter(|r| r.success).count() as u64,
        min: sorted[0],
        max: sorted[sorted.len() - 1],
        mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
        frames,
        fps: (frame_secs > 0.0).then(|| frames as f64 / frame_secs),
        quality: (!q.is_empty()).then(|| q.iter().sum::<f64>() / q.len() as f64),
        sorted,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// The histogram quantile lies within the histogram's precision (half a bucket, 1/128,
/// plus 1 ns) of a value between the nearest ranks around `q`, and inside the exact
/// [min, max].
fn quantile_ok(sorted: &[f64], q: f64, got: f64) -> bool {
    let n = sorted.len();
    let lo = sorted[((q * n as f64).floor() as usize)
        .saturating_sub(1)
        .min(n - 1)];
    let hi = sorted[((q * n as f64).ceil() as usize).min(n - 1)];
    let precision = 1.0 / 128.0;
    got >= lo * (1.0 - precision) - 1e-9
        && got <= hi * (1.0 + precision) + 1e-9
        && got >= sorted[0]
        && got <= sorted[n - 1]
}

fn check(
    snapshot_stats: &vidperf::stats::AggregateStats,
    r: &Reference,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(snapshot_stats.count, r.count);
    prop_assert_eq!(snapshot_stats.successes, r.successes);
    prop_assert_eq!(snapshot_stats.failures, r.count - r.successes);
    prop_assert!(close(
        snapshot_stats.success_rate.unwrap_or(-1.0),
        r.successes as f64 / r.count as f64
    ));
    let d = snapshot_stats
        .duration
        .as_ref()
        .ok_or_else(|| TestCaseError::fail("no durations"))?;
    // The records carry the same f64 seconds the aggregate summed.
    prop_assert!(
        close(d.min_seconds, r.min),
        "min {} vs {}",
        d.min_seconds,
        r.min
    );
    prop_assert!(
        close(d.max_seconds, r.max),
        "max {} vs {}",
        d.max_seconds,
        r.max
    );
    prop_assert!(
        close(d.mean_seconds, r.mean),
        "mean {} vs {}",
        d.mean_seconds,
        r.mean
    );
    for (q, got) in [
        (0.5, d.p50_seconds),
        (0.95, d.p95_seconds),
        (0.99, d.p99_seconds),
    ] {
        prop_assert!(
            quantile_ok(&r.sorted, q, got),
            "p{} = {} for {:?}",
            q,
            got,
            r.sorted
        );
    }
    // Histogram buckets: cumulative and exact (bounds inclusive).
    for b in &d.buckets {
        let at_most = r.sorted.iter().filter(|s| **s <= b.le).count() as u64;
        prop_assert_eq!(b.count, at_most, "bucket le={}", b.le);
    }
    prop_assert_eq!(snapshot_stats.frames_processed_total, r.frames);
    match (snapshot_stats.frames_per_second, r.fps) {
        (Some(a), Some(b)) => prop_assert!(close(a, b), "fps {} vs {}", a, b),
        (a, b) => prop_assert_eq!(a, b),
    }
    match (snapshot_stats.mean_quality_score, r.quality) {
        (Some(a), Some(b)) => prop_assert!(close(a, b)),
        (a, b) => prop_assert_eq!(a, b),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_figure_matches_a_naive_reference(ops in proptest::collection::vec(op(), 1..60)) {
        let vidperf = run(|| ops.iter().for_each(emit));
        let records = vidperf.stats().records();
        prop_assert_eq!(records.len(), ops.len());
        let snap = vidperf.stats().snapshot_with(SnapshotOptions::default().with_recent(usize::MAX));
        prop_assert_eq!(snap.summary.total_operations, ops.len() as u64);
        prop_assert_eq!(snap.summary.failures, ops.iter().filter(|o| o.fail).count() as u64);
        let mut by_strategy: BTreeMap<&str, Vec<&OperationRecord>> = BTreeMap::new();
        let mut by_operation: BTreeMap<&str, Vec<&OperationRecord>> = BTreeMap::new();
        for r in &records {
            by_strategy.entry(&r.strategy).or_default().push(r);
            by_operation.entry(&r.operation_type).or_default().push(r);
        }
        prop_assert_eq!(snap.by_strategy.len(), by_strategy.len());
        prop_assert_eq!(snap.by_operation.len(), by_operation.len());
        for (key, recs) in &by_strategy {
            check(&snap.by_strategy[*key], &reference(recs))?;
        }
        for (key, recs) in &by_operation {
            check(&snap.by_operation[*key], &reference(recs))?;
        }
        prop_assert_eq!(&snap.recent, &records, "recent = the whole history, oldest first");
        let window_total: u64 = snap.trends.windows.iter().map(|w| w.count).sum();
        prop_assert_eq!(window_total, ops.len() as u64);
        let trend: Vec<f64> = snap.trends.recent_durations.iter().map(|p| p.duration_seconds).collect();
        let expected: Vec<f64> = records.iter().rev().take(100).rev().map(|r| r.duration_seconds).collect();
        prop_assert_eq!(trend, expected);
    }
}

#[test]
fn eight_threads_count_exactly() {
    const PER_THREAD: u64 = 5_000;
    let (layer, vidperf) = vidperf::builder()
        .without_env()
        .history_limit(1000)
        .build()
        .expect("build");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::layer::SubscriberExt::with(
        tracing_subscriber::registry(),
        layer,
    ));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..PER_THREAD {
                        let strategy = STRATEGIES[(t + i as usize) % 4];
                        let span = info_span!(
                            "op",
                            strategy,
                            frames_processed = 2u64,
                            error = tracing::field::Empty
                        );
                        if i % 10 == 0 {
                            span.record("error", "x");
                        }
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let snap = vidperf.snapshot();
    assert_eq!(snap.summary.total_operations, 8 * PER_THREAD);
    assert_eq!(snap.summary.failures, 8 * PER_THREAD / 10);
    let per_strategy: u64 = snap.by_strategy.values().map(|s| s.count).sum();
    assert_eq!(per_strategy, 8 * PER_THREAD);
    let frames: u64 = snap
        .by_strategy
        .values()
        .map(|s| s.frames_processed_total)
        .sum();
    assert_eq!(frames, 2 * 8 * PER_THREAD);
    assert_eq!(snap.summary.active_operations, 0);
    assert_eq!(snap.health.history_len, 1000);
    assert_eq!(snap.health.history_purged, 8 * PER_THREAD - 1000);
}

#[test]
fn keys_over_the_cap_overflow_without_loss_or_double_counting() {
    let vidperf = run_with(vidperf::builder().max_keys(3), || {
        for i in 0..10 {
            for _ in 0..=i {
                let name = format!("strategy-{i}");
                let _span = info_span!("op", strategy = name.as_str(), operation = "enhancement");
            }
        }
    });
    let snap = vidperf.snapshot();
    let total: u64 = (1..=10).sum();
    assert_eq!(snap.summary.total_operations, total);
    assert_eq!(
        snap.by_strategy.len(),
        4,
        "three named keys plus the overflow key"
    );
    assert_eq!(
        snap.by_strategy.values().map(|s| s.count).sum::<u64>(),
        total
    );
    assert_eq!(snap.by_strategy[OVERFLOW_KEY].count, total - (1 + 2 + 3));
    assert_eq!(snap.health.strategy_overflow, total - 6);
    assert_eq!(snap.health.operation_overflow, 0);
    assert_eq!(snap.by_operation["enhancement"].count, total);
}

#[test]
fn history_limit_purges_the_oldest_and_keeps_counting() {
    let vidperf = run_with(vidperf::builder().history_limit(5), || {
        for i in 0..12u64 {
            let _span = info_span!("op", strategy = "vsrm", frames_processed = i);
        }
    });
    let records = vidperf.stats().records();
    assert_eq!(
        records
            .iter()
            .map(|r| r.frames_processed.unwrap_or(99))
            .collect::<Vec<_>>(),
        vec![7, 8, 9, 10, 11]
    );
    let snap = vidperf.snapshot();
    assert_eq!(snap.summary.total_operations, 12);
    assert_eq!(
        snap.by_strategy["vsrm"].frames_processed_total,
        (0..12).sum::<u64>()
    );
    assert_eq!(snap.health.history_purged, 7);
    assert_eq!(snap.recent.len(), 5);
}

#[test]
fn filtered_snapshots_keep_one_strategy() {
    let vidperf = run(|| {
        let _a = info_span!("op", strategy = "vsrm", operation = "enhancement");
        let _b = info_span!("op", strategy = "ditvr", operation = "enhancement");
    });
    let snap = vidperf
        .stats()
        .filtered_snapshot(SnapshotOptions::default(), Some("ditvr"), None);
    assert_eq!(snap.by_strategy.keys().collect::<Vec<_>>(), vec!["ditvr"]);
    assert!(snap.recent.iter().all(|r| r.strategy == "ditvr"));
    assert_eq!(snap.summary.total_operations, 2, "the summary stays global");
}

#[test]
fn trend_windows_follow_configuration() {
    let config = StatsConfig::default()
        .with_trend_windows(Duration::from_secs(1), 3)
        .with_trend_points(4);
    let vidperf = run_with(vidperf::builder().stats_config(config), || {
        for _ in 0..10 {
            let _span = info_span!("op", strategy = "vsrm");
        }
    });
    let snap = vidperf.snapshot();
    assert_eq!(snap.trends.window_seconds, 1);
    assert!(
        snap.trends.windows.len() <= 2,
        "10 instant spans fall in one or two windows"
    );
    assert_eq!(snap.trends.windows.iter().map(|w| w.count).sum::<u64>(), 10);
    assert_eq!(snap.trends.recent_durations.len(), 4);
}

#[test]
fn snapshots_serialize_and_parse_back() {
    let vidperf = run(|| {
        let _span = info_span!("op", strategy = "vsrm", quality_score = 0.5, error = "x");
    });
    let snap = vidperf.snapshot();
    let text = serde_json::to_string(&snap).expect("serialize");
    let back: vidperf::StatsSnapshot = serde_json::from_str(&text).expect("parse");
    assert_eq!(back.by_strategy, snap.by_strategy);
    assert_eq!(back.recent, snap.recent);
}
