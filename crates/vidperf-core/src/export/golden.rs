//! Golden files: the JSON and CSV exports of a fixed set of operations, as written by
//! vidperf 0.1.0 (`tests/golden/`). Every later version must write the same bytes,
//! except for fields the format documents as added since ([`ADDED`]) or as changed in
//! value ([`ALLOWED`]); the comparison is line by line, in order.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::fields::OperationFields;
use crate::figure::{Figure, Figures};
use crate::ids::{SpanId, TraceId};
use crate::span::{DevicePeaks, FinishedSpan, OperationKey, ResourcePeaks};
use crate::stats::{Stats, StatsConfig, StatsSnapshot};
use crate::value::FieldValue;

const GOLDEN_JSON: &str = include_str!("../../tests/golden/export-0.1.0.json");
const GOLDEN_CSV: &str = include_str!("../../tests/golden/export-0.1.0.csv");

/// Lines of the 0.1.0 JSON export whose value may differ, by field name, and why.
/// Quantiles: 0.1.0 reported the upper edge of a 1%-wide histogram bucket, which could
/// fall outside the exact [min, max]; they are now the bucket's midpoint clamped to
/// [min, max] (CHANGELOG 0.2.0).
/// Bucket counts (`"count"` after `"le"`): 0.1.0 classified a duration by the upper edge
/// of its histogram bucket, so an operation of exactly 0.25 s was not counted in
/// `le = 0.25`; each operation is now classified by its exact duration (the bounds are
/// inclusive, as in Prometheus).
/// `format_version`: 2 since exports carry `statistics.pairs` (left out of this fixture,
/// checked by `pairs_carry_every_operation_and_read_back` below).
const ALLOWED: &[&str] = &[
    "format_version",
    "p50_seconds",
    "p95_seconds",
    "p99_seconds",
    "le/count",
];

/// Fields added to the JSON export since 0.1.0 (docs/FORMATS.md lists them).
const ADDED: &[&str] = &["pair_overflow", "window_late", "watch", "heap_bytes"];

const T0: u64 = 1_790_000_000;

fn at(secs: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0) + Duration::from_secs_f64(secs)
}

struct Op {
    operation: &'static str,
    strategy: &'static str,
    start: f64,
    seconds: f64,
    error: Option<&'static str>,
    frames: Option<u64>,
    quality: Option<f64>,
    memory: Option<u64>,
    cpu: Option<f64>,
    gpu: Option<(u64, f64)>,
}

fn span(i: u64, op: &Op) -> FinishedSpan {
    let duration = Duration::from_secs_f64(op.seconds);
    let start_time = at(op.start);
    let mut metadata: Vec<(Cow<'static, str>, FieldValue)> = Vec::new();
    if i.is_multiple_of(2) {
        metadata.push((
            Cow::Borrowed("video_path"),
            FieldValue::text("clips/a,b \"q\".mp4"),
        ));
        metadata.push((Cow::Borrowed("note"), FieldValue::text("=SUM(A1)")));
    }
    if i.is_multiple_of(3) {
        metadata.push((Cow::Borrowed("clip"), FieldValue::I64(i as i64)));
        metadata.push((Cow::Borrowed("ratio"), FieldValue::F64(1.5)));
        metadata.push((Cow::Borrowed("hq"), FieldValue::Bool(true)));
    }
    let devices = match op.gpu {
        Some((bytes, util)) if i % 2 == 1 => vec![
            DevicePeaks::new(
                0,
                Figures::none()
                    .with(Figure::GpuMemory, bytes as f64)
                    .with(Figure::GpuUtilization, util),
            ),
            DevicePeaks::new(
                1,
                Figures::none().with(Figure::GpuMemory, (bytes / 2) as f64),
            ),
        ],
        _ => Vec::new(),
    };
    FinishedSpan {
        trace_id: TraceId::from_bytes(
            (0x0af7_6519_16cd_43dd_8448_eb21_1c80_3190u128 + u128::from(i / 2)).to_be_bytes(),
        ),
        span_id: SpanId::from_bytes((0x00f0_67aa_0ba9_02b7u64 + i).to_be_bytes()),
        parent_span_id: None,
        parent_is_remote: false,
        links: Vec::new(),
        name: "op",
        target: "golden",
        level: tracing::Level::INFO,
        operation: Some(OperationKey {
            operation_type: Arc::from(op.operation),
            strategy: Arc::from(op.strategy),
        }),
        start_time,
        end_time: start_time + duration,
        duration,
        fields: OperationFields {
            frames_processed: op.frames,
            segments: op.frames.map(|f| f.div_ceil(4)),
            input_width: op.frames.map(|_| 320),
            input_height: op.frames.map(|_| 180),
            output_width: op.frames.map(|_| 640),
            output_height: op.frames.map(|_| 360),
            scale_factor: None,
            quality_score: op.quality,
            enhancement_factor: op.quality.map(|q| q * 2.0),
        },
        error: op.error.map(str::to_owned),
        metadata,
        resources: ResourcePeaks {
            figures: [
                (Figure::ProcessMemory, op.memory.map(|m| m as f64)),
                (Figure::ProcessCpu, op.cpu),
                (Figure::GpuMemory, op.gpu.map(|g| g.0 as f64)),
                (Figure::GpuUtilization, op.gpu.map(|g| g.1)),
            ]
            .into_iter()
            .filter_map(|(f, v)| Some((f, v?)))
            .collect(),
            samples: op.memory.map(|_| 3 + i),
            devices,
        },
        otel: Vec::new(),
        events: Vec::new(),
        dropped_events: 0,
        flags: crate::TraceFlags::SAMPLED,
        parent_sampled: None,
        trace_state: crate::TraceState::new(),
        local_root: SpanId::from_bytes((0x00f0_67aa_0ba9_02b7u64 + i).to_be_bytes()),
        error_type: None,
        had_children: false,
        cancelled: false,
    }
}

/// The fixed operations. Sums and means of every figure are exact in binary floating
/// point, so the comparison checks the format, not the rounding of a sum.
fn fixture() -> Vec<FinishedSpan> {
    let ops = [
        Op {
            operation: "analysis",
            strategy: "degradation_router",
            start: 0.0,
            seconds: 0.125,
            error: None,
            frames: Some(1),
            quality: Some(0.75),
            memory: Some(150 * 1024 * 1024 + 12_345),
            cpu: Some(0.5),
            gpu: None,
        },
        Op {
            operation: "enhancement",
            strategy: "vsrm",
            start: 0.25,
            seconds: 0.5,
            error: None,
            frames: Some(12),
            quality: Some(0.875),
            memory: Some(200 * 1024 * 1024),
            cpu: Some(1.0),
            gpu: Some((3 * 1024 * 1024 * 1024, 0.5)),
        },
        Op {
            operation: "enhancement",
            strategy: "vsrm",
            start: 1.0,
            seconds: 0.25,
            error: Some("refused: vsrm supports up to 256 px wide, got 400x224"),
            frames: None,
            quality: None,
            memory: Some(100 * 1024 * 1024),
            cpu: Some(1.5),
            gpu: Some((1024 * 1024 * 1024, 0.25)),
        },
        Op {
            operation: "enhancement",
            strategy: "seedvr2",
            start: 1.5,
            seconds: 1.5,
            error: None,
            frames: Some(12),
            quality: Some(0.625),
            memory: Some(300 * 1024 * 1024 + 1),
            cpu: Some(2.0),
            gpu: Some((5 * 1024 * 1024 * 1024, 0.75)),
        },
        Op {
            operation: "enhancement",
            strategy: "seedvr2",
            start: 3.0,
            seconds: 0.75,
            error: Some("corrupt clip: frame 6 is truncated\n\"quoted\""),
            frames: None,
            quality: None,
            memory: None,
            cpu: None,
            gpu: None,
        },
        Op {
            operation: "api_request",
            strategy: "auto",
            start: 0.0,
            seconds: 4.0,
            error: None,
            frames: Some(12),
            quality: None,
            memory: Some(310 * 1024 * 1024),
            cpu: Some(0.25),
            gpu: None,
        },
        Op {
            operation: "api_request",
            strategy: "=cmd|' /C calc'!A0",
            start: 4.5,
            seconds: 0.0625,
            error: None,
            frames: None,
            quality: None,
            memory: None,
            cpu: None,
            gpu: None,
        },
        Op {
            operation: "background_job",
            strategy: "auto",
            start: 0.0625,
            seconds: 3.75,
            error: Some("error (no message)"),
            frames: Some(12),
            quality: None,
            memory: Some(305 * 1024 * 1024),
            cpu: Some(1.75),
            gpu: Some((5 * 1024 * 1024 * 1024, 0.75)),
        },
    ];
    ops.iter()
        .enumerate()
        .map(|(i, op)| span(i as u64, op))
        .collect()
}

fn snapshot() -> (StatsSnapshot, Vec<crate::OperationRecord>) {
    let stats = Stats::new(StatsConfig::default());
    for span in fixture() {
        stats.record(&span);
    }
    let (mut snapshot, records) = (stats.snapshot(), stats.records());
    snapshot.summary.uptime_seconds = 0.0;
    snapshot.summary.started_at = at(0.0);
    snapshot.summary.generated_at = at(10.0);
    (snapshot, records)
}

/// `exported_at` is the time of writing: fixed here.
fn normalise(json: &str) -> String {
    json.lines()
        .map(|line| {
            if line.starts_with("  \"exported_at\": ") {
                "  \"exported_at\": \"2026-09-21T12:26:50.000000Z\",".to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn json() -> String {
    let (snapshot, records) = snapshot();
    let mut out = Vec::new();
    super::write_json(&mut out, &snapshot, &records).expect("write json");
    normalise(&String::from_utf8(out).expect("utf-8"))
}

fn csv() -> String {
    let (_, records) = snapshot();
    let mut out = Vec::new();
    super::write_csv(&mut out, &records).expect("write csv");
    String::from_utf8(out).expect("utf-8")
}

/// The field name of a pretty-printed JSON line (`    "name": value,`), if any.
fn field(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix('"')?;
    let (name, after) = rest.split_once('"')?;
    after.starts_with(": ").then_some(name)
}

/// Compares `now` with `golden` line by line, once the lines of fields in `added` are
/// left out of `now` (and with them the trailing commas that separate fields); a line
/// may differ only when both are the same field, listed in `allowed`.
fn compare(golden: &str, now: &str, allowed: &[&str], added: &[&str]) -> Result<(), String> {
    let g: Vec<&str> = golden.lines().map(|l| l.trim_end_matches(',')).collect();
    let n: Vec<&str> = now
        .lines()
        .filter(|l| field(l).is_none_or(|f| !added.contains(&f)))
        .map(|l| l.trim_end_matches(','))
        .collect();
    if g.len() != n.len() {
        return Err(format!(
            "{} lines in the golden file, {} now",
            g.len(),
            n.len()
        ));
    }
    let mut previous = None;
    for (i, (g, n)) in g.iter().zip(&n).enumerate() {
        let after = previous.replace(field(g));
        if g == n {
            continue;
        }
        let ok = |f: &str| {
            allowed.contains(&f)
                || after
                    .flatten()
                    .is_some_and(|p| allowed.contains(&format!("{p}/{f}").as_str()))
        };
        match (field(g), field(n)) {
            (Some(a), Some(b)) if a == b && ok(a) => {}
            _ => return Err(format!("line {}: golden {g:?}, now {n:?}", i + 1)),
        }
    }
    Ok(())
}

#[test]
fn json_export_matches_the_0_1_0_golden_file() {
    let now = json();
    if let Ok(dir) = std::env::var("VIDPERF_GOLDEN_OUT") {
        std::fs::write(format!("{dir}/export.json"), &now).expect("write golden");
    }
    if let Err(e) = compare(GOLDEN_JSON, &now, ALLOWED, ADDED) {
        panic!("{e}");
    }
}

#[test]
fn csv_export_matches_the_0_1_0_golden_file() {
    let now = csv();
    if let Ok(dir) = std::env::var("VIDPERF_GOLDEN_OUT") {
        std::fs::write(format!("{dir}/export.csv"), &now).expect("write golden");
    }
    if let Err(e) = compare(GOLDEN_CSV, &now, &[], &[]) {
        panic!("{e}");
    }
}

#[test]
fn the_comparison_catches_a_changed_line() {
    let golden = "{\n  \"a\": 1,\n  \"p50_seconds\": 0.5\n}\n";
    let p50 = &["p50_seconds"];
    assert!(compare(golden, golden, &[], &[]).is_ok());
    assert!(compare(golden, &golden.replace("0.5", "0.25"), p50, &[]).is_ok());
    assert!(compare(golden, &golden.replace("0.5", "0.25"), &[], &[]).is_err());
    assert!(compare(golden, &golden.replace("1,", "2,"), p50, &[]).is_err());
    assert!(compare(golden, &golden.replace("\"a\"", "\"b\""), &["a"], &[]).is_err());
    let added = golden.replace("0.5\n", "0.5,\n  \"new\": 3\n");
    assert!(compare(golden, &added, &[], &["new"]).is_ok());
    assert!(compare(golden, &added, &[], &[]).is_err());
}

#[test]
fn pairs_carry_every_operation_and_read_back() {
    let stats = Stats::new(StatsConfig::default());
    for span in fixture() {
        stats.record(&span);
    }
    let mut out = Vec::new();
    crate::export::write_stats_json(&mut out, &stats).expect("write json");
    let read = super::read_json(out.as_slice()).expect("read back");
    assert_eq!(read.format_version, super::JSON_FORMAT_VERSION);
    let pairs = &read.statistics.pairs;
    assert!(!pairs.is_empty());
    for (strategy, s) in &read.statistics.by_strategy {
        let of_strategy: Vec<_> = pairs.iter().filter(|p| &p.strategy == strategy).collect();
        let count: u64 = of_strategy.iter().map(|p| p.statistics.count).sum();
        assert_eq!(count, s.count, "{strategy}");
        for p in of_strategy {
            let in_buckets: u64 = p.duration_histogram.0.iter().map(|b| b[2]).sum();
            assert_eq!(in_buckets, p.statistics.count, "{strategy}");
        }
    }
}
