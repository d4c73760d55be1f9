//! Soak run (not in CI): a steady span load for minutes against a real collector that
//! goes down and comes back, reporting resident memory, threads and export accounting
//! over time. `scripts/soak.sh` runs it and writes the table into docs/RELIABILITY.md.
//!
//! `cargo bench --bench soak -- [--minutes M] [--rate SPANS_PER_S] [--up S] [--down S]
//! [--report S]`

// reason: a report tool: it prints its table and exits with a status.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use tracing::info_span;
use tracing_subscriber::prelude::*;
use vidperf::otlp::OtelConfig;

#[path = "../tests/support/rotel.rs"]
mod rotel;

/// Spans per operation: one operation and its segments.
const SPANS_PER_OP: u64 = 5;

struct Args {
    minutes: f64,
    rate: u64,
    up: Duration,
    down: Duration,
    report_s: f64,
}

fn args() -> Args {
    let mut args = Args {
        minutes: 10.0,
        rate: 10_000,
        up: Duration::from_secs(40),
        down: Duration::from_secs(20),
        report_s: 30.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse::<f64>().ok());
        match flag.as_str() {
            "--minutes" => args.minutes = value().unwrap_or(args.minutes),
            "--rate" => args.rate = value().map_or(args.rate, |v| v as u64),
            "--up" => args.up = value().map_or(args.up, Duration::from_secs_f64),
            "--down" => args.down = value().map_or(args.down, Duration::from_secs_f64),
            "--report" => args.report_s = value().unwrap_or(args.report_s).max(1.0),
            _ => {} // cargo bench passes --bench
        }
    }
    args
}

/// (resident KiB, threads) of this process.
fn rss_and_threads() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("Threads:"))
}

/// The names of this process's threads now (`/proc/self/task/*/comm`), each with how
/// many threads carry it (an unnamed thread carries its creator's name).
fn thread_names() -> Vec<(String, usize)> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect();
    names.sort();
    let mut counted: Vec<(String, usize)> = Vec::new();
    for name in names {
        match counted.last_mut() {
            Some((last, n)) if *last == name => *n += 1,
            _ => counted.push((name, 1)),
        }
    }
    counted
}

fn main() {
    let args = args();
    let (grpc, http) = (rotel::free_port(), rotel::free_port());
    let mut collector = rotel::Rotel::start_quiet_on(grpc, http);
    if collector.is_none() {
        eprintln!("soak: rotel is needed (python3 -m pip install rotel)");
        std::process::exit(2);
    }
    let config = OtelConfig::default()
        .with_endpoint(format!("http://127.0.0.1:{http}"))
        .with_export_timeout(Duration::from_secs(2))
        .with_metrics_interval(Duration::from_secs(10));
    let (layer, vidperf) = vidperf::builder()
        .without_env()
        .otlp(config)
        .build()
        .expect("build");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));

    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let ops_per_tick = (args.rate / SPANS_PER_OP / 100).max(1); // 10 ms ticks
    let started = Instant::now();
    let mut next_tick = started;
    let mut next_report = started;
    let report_every = Duration::from_secs_f64(args.report_s);
    // Memory and threads are judged after the first 30 s (or quarter of a short run).
    let warm_up = (total / 4).min(Duration::from_secs(30));
    let mut cycle_start = started;
    let mut ops = 0u64;
    let mut ticks = 0u64;
    let mut outages = 0;
    println!(
        "| t (s) | collector | spans emitted | exported | failed | dropped (queue full) | queued | RSS (MiB) | threads |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut rss_range = (u64::MAX, 0u64);
    let mut threads_range = (u64::MAX, 0u64);
    // Every thread name seen, every 100 ms, and when each was first seen: a thread
    // that lives for less than the report interval still shows here.
    // (name, most threads seen with it at once, when first seen)
    let mut seen_threads: Vec<(String, usize, f64)> = Vec::new();
    tracing::dispatcher::with_default(&dispatch, || {
        while started.elapsed() < total {
            let now = Instant::now();
            // Flap the collector: up for `up`, down for `down`.
            let in_cycle = now - cycle_start;
            if collector.is_some() && in_cycle >= args.up {
                collector = None; // killed
                outages += 1;
            } else if collector.is_none() && in_cycle >= args.up + args.down {
                collector = rotel::Rotel::start_quiet_on(grpc, http);
                cycle_start = Instant::now();
            }
            if now >= next_report {
                let (rss, threads) = rss_and_threads();
                let e = vidperf
                    .snapshot()
                    .health
                    .part::<vidperf::otlp::ExportHealth>("export")
                    .unwrap_or_default();
                if started.elapsed() >= warm_up {
                    rss_range = (rss_range.0.min(rss), rss_range.1.max(rss));
                    threads_range = (threads_range.0.min(threads), threads_range.1.max(threads));
                }
                println!(
                    "| {:.0} | {} | {} | {} | {} | {} | {} | {:.1} | {} |",
                    started.elapsed().as_secs_f64(),
                    if collector.is_some() { "up" } else { "down" },
                    e.emitted,
                    e.exported,
                    e.failed,
                    e.dropped_queue_full,
                    e.queued,
                    rss as f64 / 1024.0,
                    threads
                );
                next_report += report_every;
            }
            if ticks.is_multiple_of(10) {
                for (name, n) in thread_names() {
                    match seen_threads.iter_mut().find(|(seen, ..)| *seen == name) {
                        Some((_, most, _)) => *most = (*most).max(n),
                        None => seen_threads.push((name, n, started.elapsed().as_secs_f64())),
                    }
                }
            }
            ticks += 1;
            for _ in 0..ops_per_tick {
                let op = info_span!(
                    "upscale",
                    strategy = "seedvr2",
                    operation = "enhancement",
                    frames_processed = ops % 64,
                    quality_score = 0.9
                );
                op.in_scope(|| {
                    for index in 0..SPANS_PER_OP - 1 {
                        let _segment = info_span!("segment", index);
                    }
                });
                ops += 1;
            }
            next_tick += Duration::from_millis(10);
            if let Some(wait) = next_tick.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let shutdown = vidperf.shutdown(Duration::from_secs(10));
    let e = vidperf
        .snapshot()
        .health
        .part::<vidperf::otlp::ExportHealth>("export")
        .unwrap_or_default();
    let stats = vidperf.snapshot().summary.total_operations;
    println!();
    println!(
        "{:.1} min at {:.0} spans/s ({} operations, all {} in the statistics); {} outages of {} s every {} s. \
         Export: {} emitted = {} exported + {} failed + {} dropped with the queue full + {} at shutdown{}. \
         After the first {} s: RSS {:.1}–{:.1} MiB, threads {}–{}; thread names seen: {}. Shutdown: {}.",
        elapsed / 60.0,
        (ops * SPANS_PER_OP) as f64 / elapsed,
        ops,
        stats,
        outages,
        args.down.as_secs(),
        (args.up + args.down).as_secs(),
        e.emitted,
        e.exported,
        e.failed,
        e.dropped_queue_full,
        e.dropped_shutdown,
        if e.exported + e.failed + e.dropped == e.emitted && e.queued == 0 {
            " (exact)"
        } else {
            " (NOT EXACT)"
        },
        warm_up.as_secs(),
        rss_range.0 as f64 / 1024.0,
        rss_range.1 as f64 / 1024.0,
        threads_range.0,
        threads_range.1,
        seen_threads
            .iter()
            .map(|(name, most, t)| format!("`{name}` (at most {most} at once) from {t:.0} s"))
            .collect::<Vec<_>>()
            .join(", "),
        match &shutdown {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        }
    );
}
