//! Windowed statistics against a naive reference over the same operations, across slot
//! rotation and a 20-minute idle gap, on a test clock (`SnapshotOptions::at`).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;

use super::{AggregateStats, SnapshotOptions, Stats, StatsConfig, StatsSnapshot};
use crate::fields::OperationFields;
use crate::figure::{Figure, Figures};
use crate::ids::{SpanId, TraceId};
use crate::span::{FinishedSpan, OperationKey, ResourcePeaks};

const STRATEGIES: [&str; 3] = ["vsrm", "seedvr2", "ditvr"];
const OPERATIONS: [&str; 2] = ["enhancement", "api_request"];

#[derive(Clone, Debug)]
struct Op {
    /// Milliseconds after the start of its burst.
    at_ms: u64,
    micros: u64,
    strategy: usize,
    operation: usize,
    fail: bool,
    frames: Option<u64>,
    quality: Option<f64>,
    memory: Option<u64>,
}

fn op() -> impl Strategy<Value = Op> {
    (
        0u64..700_000,
        1u64..5_000_000,
        0usize..3,
        0usize..2,
        any::<bool>(),
        proptest::option::of(0u64..500),
        proptest::option::of(0.0f64..1.0),
        proptest::option::of(1u64..1 << 40),
    )
        .prop_map(
            |(at_ms, micros, strategy, operation, fail, frames, quality, memory)| Op {
                at_ms,
                micros,
                strategy,
                operation,
                fail,
                frames,
                quality,
                memory,
            },
        )
}

fn span(i: usize, end: SystemTime, op: &Op) -> FinishedSpan {
    let duration = Duration::from_micros(op.micros);
    FinishedSpan {
        trace_id: TraceId::from_bytes((i as u128 + 1).to_be_bytes()),
        span_id: SpanId::from_bytes((i as u64 + 1).to_be_bytes()),
        parent_span_id: None,
        parent_is_remote: false,
        links: Vec::new(),
        name: "op",
        target: "test",
        level: tracing::Level::INFO,
        operation: Some(OperationKey {
            operation_type: Arc::from(OPERATIONS[op.operation]),
            strategy: Arc::from(STRATEGIES[op.strategy]),
        }),
        start_time: end - duration,
        end_time: end,
        duration,
        fields: OperationFields {
            frames_processed: op.frames,
            quality_score: op.quality,
            ..OperationFields::default()
        },
        error: op.fail.then(|| "failed".to_owned()),
        metadata: Vec::<(Cow<'static, str>, _)>::new(),
        resources: ResourcePeaks {
            figures: op
                .memory
                .map(|m| Figures::none().with(Figure::ProcessMemory, m as f64))
                .unwrap_or_default(),
            ..ResourcePeaks::default()
        },
        otel: Vec::new(),
        events: Vec::new(),
        dropped_events: 0,
        flags: crate::TraceFlags::SAMPLED,
        parent_sampled: None,
        trace_state: crate::TraceState::new(),
        local_root: SpanId::from_bytes((i as u64 + 1).to_be_bytes()),
        error_type: None,
        had_children: false,
        cancelled: false,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Every figure of `got` against the operations `ops` (their durations in seconds).
fn check(got: &AggregateStats, ops: &[&(SystemTime, Op)]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.count, ops.len() as u64);
    prop_assert_eq!(
        got.failures,
        ops.iter().filter(|(_, o)| o.fail).count() as u64
    );
    let mut secs: Vec<f64> = ops.iter().map(|(_, o)| o.micros as f64 / 1e6).collect();
    secs.sort_by(f64::total_cmp);
    let d = got
        .duration
        .as_ref()
        .ok_or_else(|| TestCaseError::fail("no durations"))?;
    let (min, max) = (secs[0], secs[secs.len() - 1]);
    prop_assert_eq!(d.min_seconds, min);
    prop_assert_eq!(d.max_seconds, max);
    prop_assert!(close(
        d.mean_seconds,
        secs.iter().sum::<f64>() / secs.len() as f64
    ));
    for (q, v) in [
        (0.5, d.p50_seconds),
        (0.95, d.p95_seconds),
        (0.99, d.p99_seconds),
    ] {
        let rank = ((q * secs.len() as f64).ceil() as usize).clamp(1, secs.len());
        let exact = secs[rank - 1];
        prop_assert!(
            (min..=max).contains(&v),
            "p{} {} outside [{}, {}]",
            q,
            v,
            min,
            max
        );
        prop_assert!(
            (v - exact).abs() <= exact / 128.0 + 1e-9,
            "p{} {} vs {}",
            q,
            v,
            exact
        );
    }
    for b in &d.buckets {
        prop_assert_eq!(b.count, secs.iter().filter(|s| **s <= b.le).count() as u64);
    }
    let frames: u64 = ops.iter().filter_map(|(_, o)| o.frames).sum();
    prop_assert_eq!(got.frames_processed_total, frames);
    let q: Vec<f64> = ops.iter().filter_map(|(_, o)| o.quality).collect();
    match got.mean_quality_score {
        Some(m) => prop_assert!(close(m, q.iter().sum::<f64>() / q.len() as f64)),
        None => prop_assert!(q.is_empty()),
    }
    let memory: Vec<u64> = ops.iter().filter_map(|(_, o)| o.memory).collect();
    match got.resources.get(Figure::ProcessMemory) {
        Some(p) => {
            prop_assert_eq!(p.max, *memory.iter().max().unwrap_or(&0) as f64);
            prop_assert_eq!(p.operations, memory.len() as u64);
        }
        None => prop_assert!(memory.is_empty()),
    }
    Ok(())
}

/// The snapshot's window against the operations that ended inside it.
fn check_window(
    snap: &StatsSnapshot,
    now: SystemTime,
    length: Duration,
    ops: &[(SystemTime, Op)],
) -> Result<(), TestCaseError> {
    let w = snap
        .window
        .as_ref()
        .ok_or_else(|| TestCaseError::fail("no window"))?;
    let slot = Duration::from_secs_f64(w.slot_seconds);
    let covered = w.end_time.duration_since(w.start_time).unwrap_or_default();
    prop_assert!(
        w.end_time > now && w.end_time <= now + slot,
        "the current slot is the last"
    );
    prop_assert!(
        covered >= length.min(Duration::from_secs(600)),
        "covers the window asked"
    );
    prop_assert!(covered < length + slot || covered == Duration::from_secs(600));
    let inside: Vec<&(SystemTime, Op)> = ops
        .iter()
        .filter(|(end, _)| *end >= w.start_time && *end < w.end_time)
        .collect();
    prop_assert_eq!(snap.summary.total_operations, inside.len() as u64);
    for (k, name) in STRATEGIES.iter().enumerate() {
        let these: Vec<_> = inside
            .iter()
            .copied()
            .filter(|(_, o)| o.strategy == k)
            .collect();
        match snap.by_strategy.get(*name) {
            Some(got) => check(got, &these)?,
            None => prop_assert!(these.is_empty(), "{} missing", name),
        }
    }
    for (k, name) in OPERATIONS.iter().enumerate() {
        let these: Vec<_> = inside
            .iter()
            .copied()
            .filter(|(_, o)| o.operation == k)
            .collect();
        match snap.by_operation.get(*name) {
            Some(got) => check(got, &these)?,
            None => prop_assert!(these.is_empty(), "{} missing", name),
        }
    }
    Ok(())
}

const LENGTHS: [u64; 5] = [1, 10, 60, 300, 600];

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn windows_match_a_naive_reference_across_rotation_and_an_idle_gap(
        first in proptest::collection::vec(op(), 1..120),
        second in proptest::collection::vec(op(), 1..120),
    ) {
        let stats = Stats::new(StatsConfig::default());
        let t0 = UNIX_EPOCH + Duration::from_secs(1_790_000_003);
        // Two bursts of up to ~12 minutes each (longer than the 10-minute ring, so slots
        // rotate), 20 minutes of silence between them.
        let burst = |start: SystemTime, ops: &[Op]| {
            let mut timed: Vec<(SystemTime, Op)> = ops
                .iter()
                .map(|o| (start + Duration::from_millis(o.at_ms), o.clone()))
                .collect();
            timed.sort_by_key(|(end, _)| *end);
            timed
        };
        let a = burst(t0, &first);
        let a_end = a.last().map_or(t0, |(end, _)| *end);
        let b_start = a_end + Duration::from_secs(20 * 60);
        let b = burst(b_start, &second);
        let b_end = b.last().map_or(b_start, |(end, _)| *end);
        let mut all = Vec::new();
        for (i, (end, o)) in a.iter().enumerate() {
            stats.record(&span(i, *end, o));
            all.push((*end, o.clone()));
        }
        for now in [a_end, a_end + Duration::from_secs(7)] {
            for length in LENGTHS {
                let length = Duration::from_secs(length);
                let snap = stats.snapshot_with(SnapshotOptions::default().with_window(length).at(now));
                check_window(&snap, now, length, &all)?;
            }
        }
        // In the gap: every window is empty, while the cumulative figures keep all.
        let quiet = a_end + Duration::from_secs(15 * 60);
        let snap = stats.snapshot_with(SnapshotOptions::default().with_window(Duration::from_secs(600)).at(quiet));
        prop_assert_eq!(snap.summary.total_operations, 0);
        prop_assert_eq!(stats.snapshot().summary.total_operations, a.len() as u64);
        for (i, (end, o)) in b.iter().enumerate() {
            stats.record(&span(a.len() + i, *end, o));
            all.push((*end, o.clone()));
        }
        for now in [b_end, b_end + Duration::from_secs(61)] {
            for length in LENGTHS {
                let length = Duration::from_secs(length);
                let snap = stats.snapshot_with(SnapshotOptions::default().with_window(length).at(now));
                check_window(&snap, now, length, &all)?;
            }
        }
        prop_assert_eq!(stats.snapshot().health.window_late, 0);
        prop_assert_eq!(stats.snapshot().summary.total_operations, all.len() as u64);
    }
}

#[test]
fn an_operation_older_than_the_ring_is_counted_late_and_kept_cumulatively() {
    let stats = Stats::new(StatsConfig::default().with_window_slots(Duration::from_secs(10), 6));
    let t0 = UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let o = Op {
        at_ms: 0,
        micros: 10,
        strategy: 0,
        operation: 0,
        fail: false,
        frames: None,
        quality: None,
        memory: None,
    };
    stats.record(&span(0, t0 + Duration::from_secs(120), &o));
    // Same ring position, a minute older (the wall clock stepped back).
    stats.record(&span(1, t0 + Duration::from_secs(60), &o));
    let snap = stats.snapshot();
    assert_eq!(snap.health.window_late, 1);
    assert_eq!(snap.summary.total_operations, 2);
}
