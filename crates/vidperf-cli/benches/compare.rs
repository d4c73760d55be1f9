//! `vidperf compare` of two exports with 10^6 operations each, as a user runs it (the
//! release binary, files on disk): target ≤ 2 s. A format-2 export is read up to its
//! per-pair distributions; an export without them (format 1) has its records folded
//! one by one, which is also timed.
//!
//! Run: `cargo bench -p vidperf-cli --bench compare` (writes about 2 GB of temporary
//! files, removed at the end).

// reason: a benchmark reports on stdout.
#![allow(clippy::print_stdout)]

use std::io::BufWriter;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use vidperf_core::{
    FinishedSpan, OperationKey, SnapshotOptions, SpanId, Stats, StatsConfig, TraceId,
};

const OPERATIONS: usize = 1_000_000;
const STRATEGIES: [&str; 8] = [
    "vsrm",
    "seedvr2",
    "ditvr",
    "realesrgan",
    "basicvsr",
    "swinir",
    "edvr",
    "auto",
];

fn stats(slow: f64) -> Stats {
    let stats = Stats::new(StatsConfig::default().with_history_limit(OPERATIONS));
    let now = SystemTime::now();
    for i in 0..OPERATIONS {
        let strategy = STRATEGIES[i % STRATEGIES.len()];
        let key = OperationKey {
            operation_type: Arc::from(if i % 2 == 0 {
                "enhancement"
            } else {
                "analysis"
            }),
            strategy: Arc::from(strategy),
        };
        let ids = (
            TraceId::from_bytes([9; 16]),
            SpanId::from_bytes((i as u64 + 1).to_be_bytes()),
        );
        // A spread of durations from 5 ms to about 1.3 s, deterministic.
        let mut micros = 5_000 + (i as u64).wrapping_mul(2_654_435_761) % 1_300_000;
        if strategy == "seedvr2" {
            micros = (micros as f64 * slow) as u64;
        }
        let mut span = FinishedSpan::operation(key, ids, now, Duration::from_micros(micros));
        span.fields.frames_processed = Some(30);
        span.fields.quality_score = Some(0.8);
        stats.record(&span);
    }
    stats
}

fn time(binary: &str, a: &str, b: &str) -> (Duration, i32) {
    let mut best = Duration::MAX;
    let mut code = -1;
    for _ in 0..3 {
        let started = Instant::now();
        let out = Command::new(binary)
            .args(["compare", a, b])
            .output()
            .expect("vidperf runs");
        best = best.min(started.elapsed());
        code = out.status.code().unwrap_or(-1);
    }
    (best, code)
}

fn main() {
    let dir = std::env::temp_dir().join(format!("vidperf-bench-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    for (name, slow) in [("a", 1.0), ("b", 1.2)] {
        let stats = stats(slow);
        let file = |n: String| BufWriter::new(std::fs::File::create(n).expect("create"));
        vidperf_core::export::write_stats_json(file(path(&format!("{name}.json"))), &stats)
            .expect("write");
        // The same operations without the per-pair distributions.
        let (snapshot, records) = (
            stats.snapshot_with(SnapshotOptions::default()),
            stats.records(),
        );
        vidperf_core::export::write_json(
            file(path(&format!("{name}-records.json"))),
            &snapshot,
            &records,
        )
        .expect("write");
    }
    let size = std::fs::metadata(path("a.json"))
        .map(|m| m.len())
        .unwrap_or(0);
    let binary = env!("CARGO_BIN_EXE_vidperf");
    let (with_pairs, code) = time(binary, &path("a.json"), &path("b.json"));
    let (records_only, code_records) =
        time(binary, &path("a-records.json"), &path("b-records.json"));
    println!(
        "vidperf compare, two exports of {OPERATIONS} operations each ({:.0} MB a file), best of 3: \
         {:.2} s with the per-pair distributions (format 2; target ≤ 2 s: {}), {:.2} s from the \
         records alone (format 1); exit {code} and {code_records} (SeedVR2 20% slower: 1 expected)",
        size as f64 / 1e6,
        with_pairs.as_secs_f64(),
        if with_pairs <= Duration::from_secs(2) {
            "met"
        } else {
            "missed"
        },
        records_only.as_secs_f64(),
    );
    let _ = std::fs::remove_dir_all(&dir);
}
