//! What vidperf costs per span, side by side with a bare `tracing` registry.
//!
//! An interleaved harness rather than criterion: every setup runs one batch per round,
//! in rotating order, and ratios are taken within a round, so a noisy neighbour slows
//! all setups alike. Reports medians over the rounds and the spread (p25–p75).
//!
//! Run: `cargo bench --bench overhead` (add `-- --markdown` for the table written
//! into `docs/BENCHMARKS.md` by `scripts/bench.sh`; `-- --spans-only` for the span
//! tables and the alert-rules line, `-- --streams-only` or `-- --otel-only` for one
//! section, `-- --quick` for 5 rounds instead of 41).

// reason: a global allocator is an unsafe trait (this one only counts), and the thread's
// CPU clock is read through libc.
#![allow(unsafe_code)]
// reason: a benchmark reports on stdout.
#![allow(clippy::print_stdout)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::time::Instant;

use tracing::{Dispatch, field::Empty, info_span};

#[path = "../tests/support/collector.rs"]
mod collector;
#[path = "../crates/vidperf-watch/benches/support/rules.rs"]
mod rules;
use tracing_subscriber::prelude::*;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; the counter is a const-initialised
// thread-local, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

/// One operation span with the contract fields, entered, recorded, closed.
fn flat(i: u64) -> u64 {
    let span = info_span!(
        "upscale",
        strategy = "vsrm",
        operation = "enhancement",
        frames_processed = Empty,
        quality_score = Empty,
        input_width = 640,
        input_height = 360,
    );
    let _entered = span.enter();
    span.record("frames_processed", i & 63);
    span.record("quality_score", 0.5);
    1
}

/// An operation with 99 ordinary child spans (per-segment work).
fn tree(i: u64) -> u64 {
    let span = info_span!(
        "clip",
        strategy = "seedvr2",
        operation = "enhancement",
        frames_processed = Empty
    );
    let _entered = span.enter();
    for segment in 0..99u64 {
        let child = info_span!("segment", index = segment);
        let _c = child.enter();
        black_box(&child);
    }
    span.record("frames_processed", i & 63);
    100
}

/// Records an operation's frames four times as it goes (after `frames_total`, when
/// `total_later`), then its quality.
fn frames_recorded(span: &tracing::Span, i: u64, total_later: bool) -> u64 {
    let _entered = span.enter();
    if total_later {
        span.record("frames_total", 64u64);
    }
    for k in 1..=4 {
        span.record("frames_processed", (i & 15) * k);
    }
    span.record("quality_score", 0.5);
    1
}

/// The flat operation recording its frames as it goes, without a total.
fn frames_as_it_goes(i: u64) -> u64 {
    let span = info_span!(
        "upscale",
        strategy = "vsrm",
        operation = "enhancement",
        frames_processed = Empty,
        quality_score = Empty,
    );
    frames_recorded(&span, i, false)
}

/// The same with `frames_total` declared: the operation has a progress.
fn frames_with_a_total(i: u64) -> u64 {
    let span = info_span!(
        "upscale",
        strategy = "vsrm",
        operation = "enhancement",
        frames_total = 64u64,
        frames_processed = Empty,
        quality_score = Empty,
    );
    frames_recorded(&span, i, false)
}

/// The same recording `frames_total` after it started (the progress handed to the
/// sinks by `Sink::on_progress`, a second lock of the statistics).
fn frames_with_a_later_total(i: u64) -> u64 {
    let span = info_span!(
        "upscale",
        strategy = "vsrm",
        operation = "enhancement",
        frames_total = Empty,
        frames_processed = Empty,
        quality_score = Empty,
    );
    frames_recorded(&span, i, true)
}

/// What the progress of a running operation costs: the three shapes above under the
/// layer with the statistics, interleaved; ratios to the one without a total.
fn progress_section(rounds: usize) {
    let setup = [Setup::new(
        "registry + PerfLayer + stats",
        vidperf_dispatch(false),
    )];
    type Shape = (&'static str, fn(u64) -> u64);
    let shapes: [Shape; 3] = [
        ("frames recorded 4 times, no total", frames_as_it_goes),
        (
            "frames_total at creation, frames recorded 4 times",
            frames_with_a_total,
        ),
        (
            "frames_total recorded later, frames recorded 4 times",
            frames_with_a_later_total,
        ),
    ];
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); shapes.len()];
    for (_, shape) in &shapes {
        batch(&setup[0], *shape, 20_000);
    }
    for round in 0..rounds {
        for k in 0..shapes.len() {
            let s = (round + k) % shapes.len();
            ns[s].push(batch(&setup[0], shapes[s].1, 20_000));
        }
    }
    let ratios: Vec<f64> = (0..shapes.len())
        .map(|s| {
            let mut r: Vec<f64> = (0..rounds).map(|r| ns[s][r] / ns[0][r]).collect();
            quantile(&mut r, 0.5)
        })
        .collect();
    println!("| progress, registry + PerfLayer + stats | ns/operation (median) | vs no total |");
    println!("|---|---:|---:|");
    for (s, (name, _)) in shapes.iter().enumerate() {
        println!(
            "| {name} | {:.0} | {:.2}x |",
            quantile(&mut ns[s].clone(), 0.5),
            ratios[s]
        );
    }
}

/// A layer that does nothing: the floor of any `tracing-subscriber` layer.
struct NoopLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for NoopLayer {}

struct Setup {
    name: &'static str,
    dispatch: Dispatch,
    /// Spans kept open for the whole measurement (the "10,000 open operations" case).
    held: Vec<tracing::Span>,
    /// Waits until the setup's exporter has sent everything (OTel setups), so that the
    /// CPU of exporting a batch's spans is measured with the batch.
    flush: Option<Box<dyn Fn()>>,
}

impl Setup {
    fn new(name: &'static str, dispatch: Dispatch) -> Self {
        Self {
            name,
            dispatch,
            held: Vec::new(),
            flush: None,
        }
    }

    fn with_flush(mut self, flush: impl Fn() + 'static) -> Self {
        self.flush = Some(Box::new(flush));
        self
    }

    fn flush(&self) {
        if let Some(flush) = &self.flush {
            flush();
        }
    }
}

/// `PerfLayer` with the statistics and, optionally, the resource monitor at its default
/// rate (no GPU on the benchmark machine unless NVML is installed). The layer holds the
/// monitor, so it lives as long as the subscriber.
fn vidperf_dispatch(monitor: bool) -> Dispatch {
    vidperf_dispatch_with(monitor, vidperf::StatsConfig::default())
}

fn vidperf_dispatch_with(monitor: bool, stats: vidperf::StatsConfig) -> Dispatch {
    let builder = vidperf::builder().without_env().stats_config(stats);
    let builder = if monitor {
        builder
    } else {
        builder.without_resource_monitor()
    };
    let (layer, _handle) = builder.build().expect("default configuration");
    Dispatch::new(tracing_subscriber::registry().with(layer))
}

fn setups() -> Vec<Setup> {
    vec![
        Setup::new("no subscriber", Dispatch::none()),
        Setup::new(
            "bare registry",
            Dispatch::new(tracing_subscriber::registry()),
        ),
        Setup::new(
            "registry + a no-op layer",
            Dispatch::new(tracing_subscriber::registry().with(NoopLayer)),
        ),
        Setup::new(
            "registry + PerfLayer, no sink",
            Dispatch::new(
                tracing_subscriber::registry().with(vidperf::PerfLayer::builder().build()),
            ),
        ),
        Setup::new(
            "registry + PerfLayer + stats, no time windows",
            vidperf_dispatch_with(
                false,
                vidperf::StatsConfig::default()
                    .with_window_slots(std::time::Duration::from_secs(10), 0),
            ),
        ),
        Setup::new("registry + PerfLayer + stats", vidperf_dispatch(false)),
        Setup::new("+ resource monitor (default rate)", vidperf_dispatch(true)),
    ]
}

/// Nanoseconds per span for one batch.
fn batch(setup: &Setup, shape: fn(u64) -> u64, iters: u64) -> f64 {
    tracing::dispatcher::with_default(&setup.dispatch, || {
        let start = Instant::now();
        let mut spans = 0;
        for i in 0..iters {
            spans += shape(black_box(i));
        }
        start.elapsed().as_nanos() as f64 / spans as f64
    })
}

/// Allocations on the calling thread per span, over 10,000 spans after 20,000 of
/// warm-up (history full, pools sized) and a flush (an exporter's queue has room for
/// all of them, so no span is dropped unconverted).
fn allocations_per_span(setup: &Setup, shape: fn(u64) -> u64) -> f64 {
    let run = |spans: u64| {
        let mut done = 0;
        let mut i = 0;
        while done < spans {
            done += shape(i);
            i += 1;
        }
        done
    };
    tracing::dispatcher::with_default(&setup.dispatch, || {
        run(20_000);
        setup.flush();
        let before = allocs();
        let spans = run(10_000);
        (allocs() - before) as f64 / spans as f64
    })
}

fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let idx = ((values.len() - 1) as f64 * q).round() as usize;
    values[idx]
}

struct Row {
    shape: &'static str,
    setup: &'static str,
    median: f64,
    p25: f64,
    p75: f64,
    ratio: f64,
    allocs: f64,
    /// CPU of the thread making the spans, per span, median over the rounds.
    cpu: f64,
    /// CPU of the process's other threads (the resource monitor), per span, over the
    /// whole run.
    background: f64,
}

fn measure(shape_name: &'static str, shape: fn(u64) -> u64, iters: u64, rounds: usize) -> Vec<Row> {
    measure_setups(&setups(), 1, shape_name, shape, iters, rounds)
}

/// Interleaved rounds over `setups`; ratios are to `setups[baseline]`.
fn measure_setups(
    setups: &[Setup],
    baseline: usize,
    shape_name: &'static str,
    shape: fn(u64) -> u64,
    iters: u64,
    rounds: usize,
) -> Vec<Row> {
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    let mut background = vec![0u64; setups.len()];
    let spans_per_batch = (iters * shape(0).max(1)) as f64;
    for setup in setups {
        batch(setup, shape, iters); // warm-up round, discarded
    }
    for round in 0..rounds {
        for k in 0..setups.len() {
            let s = (round + k) % setups.len();
            let (thread, others) = (thread_cpu_ns(), other_threads_cpu_ns());
            times[s].push(batch(&setups[s], shape, iters));
            cpu[s].push(thread_cpu_ns().saturating_sub(thread) as f64 / spans_per_batch);
            background[s] += other_threads_cpu_ns().saturating_sub(others);
        }
    }
    // Ratio to the baseline within each round, then the median.
    let ratios: Vec<Vec<f64>> = (0..setups.len())
        .map(|s| {
            (0..rounds)
                .map(|r| times[s][r] / times[baseline][r])
                .collect()
        })
        .collect();
    setups
        .iter()
        .enumerate()
        .map(|(s, setup)| Row {
            shape: shape_name,
            setup: setup.name,
            median: quantile(&mut times[s].clone(), 0.5),
            p25: quantile(&mut times[s].clone(), 0.25),
            p75: quantile(&mut times[s].clone(), 0.75),
            ratio: quantile(&mut ratios[s].clone(), 0.5),
            allocs: allocations_per_span(setup, shape),
            cpu: quantile(&mut cpu[s].clone(), 0.5),
            background: background[s] as f64 / (spans_per_batch * rounds as f64),
        })
        .collect()
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

/// The span path with 20 alert rules over 64 strategies evaluated every 100 ms (fifty
/// times the default rate, the fastest allowed), against the same statistics without
/// rules.
fn alerts_section(rounds: usize) {
    let rules = vidperf::watch::RuleSet::parse(
        &rules::twenty_rules("100ms"),
        std::path::Path::new("bench-alerts.toml"),
    )
    .expect("rules");
    let (layer, handle) = vidperf::builder()
        .without_env()
        .without_resource_monitor()
        .alert_rules(rules)
        .build()
        .expect("rules load");
    let setups = [
        Setup::new("registry + PerfLayer + stats", vidperf_dispatch(false)),
        Setup::new(
            "+ 20 alert rules",
            Dispatch::new(tracing_subscriber::registry().with(layer)),
        ),
    ];
    // Every strategy has operations, as in a busy service.
    for setup in &setups {
        tracing::dispatcher::with_default(&setup.dispatch, || {
            for s in 0..rules::STRATEGIES {
                let strategy = format!("strategy{s:02}");
                for _ in 0..20 {
                    let span = info_span!(
                        "upscale",
                        strategy = strategy.as_str(),
                        operation = "enhancement"
                    );
                    drop(span.enter());
                }
            }
        });
    }
    let rows = measure_setups(&setups, 0, "flat operation span", flat, 20_000, rounds);
    let watch = handle
        .stats()
        .snapshot()
        .health
        .part::<vidperf::watch::WatchHealth>("watch")
        .unwrap_or_default();
    let ratio = rows[1].ratio;
    println!(
        "- flat operation span with {} alert rules over {} strategies evaluated every 100 ms \
         ({} evaluations during the run, the last in {:.0} µs): {ratio:.3}x the same statistics \
         without rules (target ≤ 1.02x: {}).",
        watch.rules,
        rules::STRATEGIES,
        watch.evaluations,
        watch.last_evaluation_micros.unwrap_or(f64::NAN),
        verdict(ratio <= 1.02),
    );
    drop(handle);
}

/// The thread reading the benchmark's stream clients (not the host's cost).
const STREAM_CLIENTS_THREAD: &str = "bench-clients";

/// Resident memory of this process, bytes (`VmRSS`).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// 100 clients on `GET /performance/stream` at 1 s: what they cost the host (CPU of
/// every thread but the clients' reader, over 10 s, against the same 10 s without
/// clients; resident memory per client), and the span path with them connected.
fn streams_section(rounds: usize) {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    const CLIENTS: usize = 100;
    let config = vidperf::http::ApiConfig::default()
        .with_stream_limits(CLIENTS + 8, std::time::Duration::from_secs(30));
    let (layer, handle) = vidperf::builder()
        .without_env()
        .without_resource_monitor()
        .http_api_config(config)
        .http_api("127.0.0.1:0".parse().expect("addr"))
        .build()
        .expect("build");
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..800u64 {
            black_box(flat(i));
        }
    });
    let addr = handle.http_addr().expect("serving");
    let host_cpu = |seconds: u64| {
        let (cpu, wall) = (threads_cpu_ns(&[STREAM_CLIENTS_THREAD]), Instant::now());
        std::thread::sleep(std::time::Duration::from_secs(seconds));
        (threads_cpu_ns(&[STREAM_CLIENTS_THREAD]) - cpu) as f64 / wall.elapsed().as_nanos() as f64
    };
    let idle = host_cpu(10);
    let before = rss_bytes();
    let stop = Arc::new(AtomicBool::new(false));
    let events = Arc::new(AtomicU64::new(0));
    let mut sockets = Vec::new();
    for _ in 0..CLIENTS {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.write_all(
            b"GET /performance/stream?interval=1s HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n",
        )
        .expect("request");
        s.set_nonblocking(true).expect("non-blocking");
        sockets.push(s);
    }
    let reader = {
        let (stop, events) = (stop.clone(), events.clone());
        std::thread::Builder::new()
            .name(STREAM_CLIENTS_THREAD.into())
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while !stop.load(Ordering::Relaxed) {
                    for s in &mut sockets {
                        while let Ok(n) = s.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                            let found = buf[..n].windows(6).filter(|w| w == b"event:").count();
                            events.fetch_add(found as u64, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            })
            .expect("reader thread")
    };
    std::thread::sleep(std::time::Duration::from_secs(3));
    let memory = rss_bytes().saturating_sub(before) as f64 / CLIENTS as f64;
    let streaming = host_cpu(10);
    let delivered = events.load(Ordering::Relaxed);
    let setups = [
        Setup::new("registry + PerfLayer + stats", vidperf_dispatch(false)),
        Setup::new("+ HTTP API with 100 stream clients", dispatch),
    ];
    let rows = measure_setups(&setups, 0, "flat operation span", flat, 20_000, rounds);
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    let extra = (streaming - idle) * 100.0;
    println!(
        "- {CLIENTS} clients on /performance/stream at 1 s: the host spends {:.2}% of one core on \
         them ({:.2}% with them, {:.2}% without, over 10 s each; target ≤ 2%: {}); {:.0} KiB of \
         resident memory per client; {delivered} events delivered in the 13 s; the flat operation \
         span costs {:.3}x with them connected (target ≤ 1.02x: {}).",
        extra,
        streaming * 100.0,
        idle * 100.0,
        verdict(extra <= 2.0),
        memory / 1024.0,
        rows[1].ratio,
        verdict(rows[1].ratio <= 1.02),
    );
    let _ = handle.shutdown(std::time::Duration::from_secs(5));
}

/// The resource monitor's own costs: a sampling tick, closing a window over 1 vs
/// 10,000 samples, and the span path with 10,000 operations open.
fn monitor_section(rounds: usize) {
    use vidperf::ResourceWindows;
    use vidperf::monitor::{MonitorConfig, NvmlLibrary, ResourceMonitor};

    // Tick cost: sample as fast as allowed for a second, without NVML.
    let monitor = ResourceMonitor::start(
        MonitorConfig::default()
            .with_interval(std::time::Duration::from_millis(1))
            .with_nvml(NvmlLibrary::Disabled),
    )
    .expect("monitor");
    let long = monitor.open(Instant::now());
    let started = Instant::now();
    while monitor.health().samples < 10_000 && started.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let tick = monitor.health().tick_micros.unwrap_or(f64::NAN);
    let samples = monitor.health().samples;
    // Close cost: a window holding every sample so far vs one holding the newest only.
    // `close` is pure apart from the open count, so the same start can be closed again.
    let mut long_ns = Vec::new();
    let mut short_ns = Vec::new();
    for _ in 0..rounds {
        for (start, out) in [
            (long, &mut long_ns),
            (monitor.open(Instant::now()), &mut short_ns),
        ] {
            let t = Instant::now();
            for _ in 0..10_000 {
                black_box(monitor.close(black_box(start), Instant::now()));
            }
            out.push(t.elapsed().as_nanos() as f64 / 10_000.0);
        }
    }
    let mut ratios: Vec<f64> = long_ns.iter().zip(&short_ns).map(|(l, s)| l / s).collect();
    let close_ratio = quantile(&mut ratios, 0.5);
    let _ = monitor.shutdown(std::time::Duration::from_secs(1));

    // 10,000 open operations vs none, same span shape, same configuration.
    let mut busy = Setup::new("10,000 operations open", vidperf_dispatch(true));
    tracing::dispatcher::with_default(&busy.dispatch, || {
        busy.held = (0..10_000)
            .map(|i| info_span!("held", strategy = "vsrm", index = i))
            .collect();
    });
    let idle = Setup::new("no other operation open", vidperf_dispatch(true));
    let rows = measure_setups(
        &[idle, busy],
        0,
        "flat operation span",
        flat,
        20_000,
        rounds,
    );
    let open_ratio = rows[1].ratio;

    println!("| monitor figure | measured | target | |");
    println!("|---|---:|---:|---|");
    println!(
        "| sampling tick, no NVML (mean over {samples} ticks) | {tick:.1} µs | < 100 µs | {} |",
        verdict(tick < 100.0)
    );
    println!(
        "| close of a window over {samples} samples vs 1 sample | {close_ratio:.2}x ({:.0} vs {:.0} ns) | ≤ 1.5x | {} |",
        quantile(&mut long_ns, 0.5),
        quantile(&mut short_ns, 0.5),
        verdict(close_ratio <= 1.5)
    );
    println!(
        "| span cost with 10,000 operations open vs none | {open_ratio:.2}x ({:.0} vs {:.0} ns) | ≤ 1.1x | {} |",
        rows[1].median,
        rows[0].median,
        verdict(open_ratio <= 1.1)
    );
}

/// What `MonitorConfig::boundary_reads` costs an operation: an open and a close of a
/// window on this thread, reads on vs off, without a GPU and with the fake NVML (an
/// in-process function: a real driver's memory query costs 10-20 µs more per GPU).
fn boundary_section(rounds: usize) {
    use vidperf::ResourceWindows;
    use vidperf::monitor::{MonitorConfig, NvmlLibrary, ResourceMonitor};

    println!("| boundary reads, per operation (open + close) | off | on | added |");
    println!("|---|---:|---:|---:|");
    for (label, nvml) in [
        ("no GPU", NvmlLibrary::Disabled),
        (
            "fake NVML, 1 GPU",
            NvmlLibrary::Path(vidperf_fake_nvml::library_path()),
        ),
    ] {
        let start = |on: bool| {
            ResourceMonitor::start(
                MonitorConfig::default()
                    .with_nvml(nvml.clone())
                    .with_boundary_reads(on),
            )
            .expect("monitor")
        };
        let monitors = [start(false), start(true)];
        let mut ns = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (monitor, out) in monitors.iter().zip(ns.iter_mut()) {
                let t = Instant::now();
                for _ in 0..2_000 {
                    let w = monitor.open(Instant::now());
                    black_box(monitor.close(black_box(w), Instant::now()));
                }
                out.push(t.elapsed().as_nanos() as f64 / 2_000.0);
            }
        }
        let [off, on] = ns.map(|mut v| quantile(&mut v, 0.5));
        println!(
            "| {label} | {off:.0} ns | {on:.0} ns | {:.1} µs |",
            (on - off) / 1e3
        );
        for m in monitors {
            let _ = m.shutdown(std::time::Duration::from_secs(1));
        }
    }
}

/// `/performance/stats` cost (snapshot + JSON) with 64 strategies after 10^3 vs 10^6
/// operations, and CSV export throughput.
fn stats_section(rounds: usize) {
    fn fill(ops: u64) -> vidperf::Vidperf {
        let (layer, handle) = vidperf::builder()
            .without_env()
            .without_resource_monitor()
            .history_limit(10_000)
            .build()
            .expect("configuration");
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
        let names: Vec<String> = (0..64).map(|i| format!("strategy-{i:02}")).collect();
        tracing::dispatcher::with_default(&dispatch, || {
            for i in 0..ops {
                let strategy = names[(i % 64) as usize].as_str();
                let _span = info_span!(
                    "op",
                    strategy,
                    operation = "enhancement",
                    frames_processed = i & 31
                );
            }
        });
        handle
    }
    let small = fill(1_000);
    let large = fill(1_000_000);
    let snapshot_json = |v: &vidperf::Vidperf| {
        let t = Instant::now();
        for _ in 0..20 {
            black_box(serde_json::to_vec(&v.snapshot()).expect("json"));
        }
        t.elapsed().as_nanos() as f64 / 20.0
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(snapshot_json(&small));
        b.push(snapshot_json(&large));
    }
    let mut ratios: Vec<f64> = b.iter().zip(&a).map(|(l, s)| l / s).collect();
    let ratio = quantile(&mut ratios, 0.5);
    // The same over the last 5 minutes (every operation above ended within them).
    let five = std::time::Duration::from_secs(300);
    let window_json = |v: &vidperf::Vidperf| {
        let t = Instant::now();
        for _ in 0..20 {
            let snap = v.stats().snapshot_window(five).expect("window");
            black_box(serde_json::to_vec(&snap).expect("json"));
        }
        t.elapsed().as_nanos() as f64 / 20.0
    };
    let (mut wa, mut wb) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        wa.push(window_json(&small));
        wb.push(window_json(&large));
    }
    let mut window_ratios: Vec<f64> = wb.iter().zip(&wa).map(|(l, s)| l / s).collect();
    let window_ratio = quantile(&mut window_ratios, 0.5);
    let records = large.stats().records();
    let t = Instant::now();
    let mut out = Vec::with_capacity(4 << 20);
    vidperf::export::write_csv(&mut out, &records).expect("csv");
    let rows_per_s = records.len() as f64 / t.elapsed().as_secs_f64();
    println!("| statistics figure | measured | target | |");
    println!("|---|---:|---:|---|");
    println!(
        "| `/performance/stats` snapshot + JSON, 64 strategies, 10^6 vs 10^3 operations | {ratio:.2}x ({:.0} vs {:.0} µs) | ≤ 1.1x | {} |",
        quantile(&mut b, 0.5) / 1e3,
        quantile(&mut a, 0.5) / 1e3,
        verdict(ratio <= 1.1)
    );
    println!(
        "| `snapshot_window(5 min)` + JSON, 64 strategies, 10^6 vs 10^3 operations | {window_ratio:.2}x ({:.0} vs {:.0} µs) | ≤ 1.1x | {} |",
        quantile(&mut wb, 0.5) / 1e3,
        quantile(&mut wa, 0.5) / 1e3,
        verdict(window_ratio <= 1.1)
    );
    println!(
        "| statistics' heap, 64 strategies × 1 operation type, 10^6 operations (10,000 history rows, time slots in use) | {:.1} MiB | | |",
        large.snapshot().health.heap_bytes as f64 / (1024.0 * 1024.0)
    );
    println!(
        "| CSV export, {} rows | {:.0} rows/s ({:.1} MB/s) | | |",
        records.len(),
        rows_per_s,
        out.len() as f64 / t.elapsed().as_secs_f64() / 1e6
    );
}

/// This thread's CPU time in nanoseconds, from its CPU-time clock
/// (`CLOCK_THREAD_CPUTIME_ID`): exact to the nanosecond, unlike a scheduler statistic.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    if rc != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// CPU time so far of this process's other threads (the resource monitor, exporter
/// threads), all but the loopback collector's (a real collector runs elsewhere), in
/// nanoseconds, from `/proc/self/task/*/schedstat` (0 where unavailable). A thread's
/// figure is exact when it is not running at the moment of the read and lags by at most
/// one scheduler tick (4 ms at HZ=250) when it is; summed over a whole run, as the tables
/// use it, that is at most one tick per thread per read.
fn other_threads_cpu_ns() -> u64 {
    threads_cpu_ns(&[collector::SINK_THREAD, STREAM_CLIENTS_THREAD])
}

/// [`other_threads_cpu_ns`] leaving out the threads named in `except`.
fn threads_cpu_ns(except: &[&str]) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() }.to_string();
    tasks
        .filter_map(Result::ok)
        .filter(|t| t.file_name().to_string_lossy() != me)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|name| !except.contains(&name.trim_end()))
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

/// A loopback OTLP/HTTP endpoint that accepts everything with an empty 200 response.
fn loopback_otlp_sink() -> String {
    collector::scripted_collector(|_| ("200 OK", "", std::time::Duration::ZERO)).0
}

/// vidperf's full stack, as `builder().otlp(config)` assembles it, with the pipeline at
/// hand so that a flush sends the traces only. (The OTLP metrics are read from the
/// statistics by their own thread once a minute, nothing on the span path; they are left
/// out here, as tracing-opentelemetry's side has none.)
fn vidperf_otel_setup(config: &vidperf::otlp::OtelConfig) -> (Setup, vidperf::otlp::Otel) {
    let mut config = config.clone();
    config.metrics = false;
    let otel = vidperf::otlp::Otel::start(&config, &std::sync::Arc::default())
        .expect("OTLP pipeline")
        .expect("enabled");
    let builder = vidperf::builder()
        .without_env()
        .without_otlp()
        .sink(otel.traces().clone());
    let (layer, _handle) = builder.build().expect("vidperf with OTLP");
    let setup = Setup::new(
        "vidperf: PerfLayer + stats + monitor + OTel bridge → OTLP",
        Dispatch::new(tracing_subscriber::registry().with(layer)),
    )
    .with_flush({
        let traces = otel.traces().clone();
        move || drop(traces.flush())
    });
    (setup, otel)
}

/// vidperf's full stack with the tail sampler keeping failed traces, operations over
/// their pair's live p95 and 1% of the rest (its defaults), the statistics the builder
/// wires feeding its thresholds.
fn vidperf_tail_setup(config: &vidperf::otlp::OtelConfig) -> (Setup, vidperf::Vidperf) {
    let mut config = config
        .clone()
        .with_tail_sampling(vidperf::otlp::TailConfig::default());
    config.metrics = false;
    let (layer, handle) = vidperf::builder()
        .without_env()
        .otlp(config)
        .build()
        .expect("vidperf with tail sampling");
    let setup = Setup::new(
        "vidperf + tail sampler (failures, > p95, 1%) → OTLP",
        Dispatch::new(tracing_subscriber::registry().with(layer)),
    )
    .with_flush({
        let handle = handle.clone();
        move || {
            if let Some(otlp) = handle.otlp() {
                drop(otlp.traces().flush());
            }
        }
    });
    (setup, handle)
}

/// The OpenTelemetry SDK's OTLP/HTTP span exporter on a blocking ureq client (no async
/// runtime), for tracing-opentelemetry's pipeline.
mod sdk {
    use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
    use opentelemetry_otlp::{SpanExporter, WithExportConfig as _, WithHttpConfig as _};

    #[derive(Debug, Clone)]
    struct Ureq(ureq::Agent);

    #[async_trait::async_trait]
    impl HttpClient for Ureq {
        async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
            let (parts, body) = request.into_parts();
            let response = self.0.run(Request::from_parts(parts, body.to_vec()))?;
            let (parts, mut body) = response.into_parts();
            let bytes = body.with_config().limit(4 * 1024 * 1024).read_to_vec()?;
            Ok(Response::from_parts(parts, Bytes::from(bytes)))
        }
    }

    pub(crate) fn exporter(base: &str) -> SpanExporter {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        SpanExporter::builder()
            .with_http()
            .with_http_client(Ureq(agent))
            .with_endpoint(format!("{}/v1/traces", base.trim_end_matches('/')))
            .build()
            .expect("exporter")
    }
}

/// Spans held for export at most in the comparison: every measured batch (20,000
/// spans) fits, so nothing is dropped unconverted.
const OTEL_QUEUE: usize = 32_768;

/// The full stacks side by side: vidperf (layer, statistics, monitor, our bridge into
/// the SDK's batch processor and OTLP exporter) against tracing-opentelemetry feeding
/// the same SDK pipeline, both exporting to a loopback sink; wall time and total process
/// CPU (exporter threads included) per span.
fn otel_section(rounds: usize) {
    use opentelemetry::trace::TracerProvider as _;
    use vidperf::otlp::OtelConfig;

    // Every measured batch fits the queues and is flushed inside its CPU measurement:
    // each setup pays for converting and exporting every span it produced.
    let batch_config = || {
        opentelemetry_sdk::trace::BatchConfigBuilder::default()
            .with_max_queue_size(OTEL_QUEUE)
            .build()
    };
    let endpoint = loopback_otlp_sink();
    let config = OtelConfig::default()
        .with_endpoint(endpoint.clone())
        .with_max_queue_size(OTEL_QUEUE)
        .with_metrics_interval(std::time::Duration::from_secs(3600));
    let (full, otel) = vidperf_otel_setup(&config);
    let provider = || {
        let processor =
            opentelemetry_sdk::trace::BatchSpanProcessor::builder(sdk::exporter(&endpoint))
                .with_batch_config(batch_config())
                .build();
        opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build()
    };
    let (provider, provider7) = (provider(), provider());
    let otel_layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"));
    let theirs = Setup::new(
        "tracing-opentelemetry → same SDK pipeline",
        Dispatch::new(tracing_subscriber::registry().with(otel_layer)),
    )
    .with_flush({
        let provider = provider.clone();
        move || drop(provider.force_flush())
    });
    let with_fmt = Setup::new(
        "tracing-opentelemetry + fmt layer to a sink",
        Dispatch::new(
            tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(provider7.tracer("bench")))
                .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink)),
        ),
    )
    .with_flush({
        let provider = provider7.clone();
        move || drop(provider.force_flush())
    });
    let bare = Setup::new(
        "bare registry",
        Dispatch::new(tracing_subscriber::registry()),
    );
    let (tail, tail_handle) = vidperf_tail_setup(&config);
    let setups = [bare, full, theirs, with_fmt, tail];

    println!(
        "| shape | setup | wall ns/span | spread p25–p75 | CPU ns/span (all threads) | wall vs tracing-opentelemetry | CPU vs tracing-opentelemetry | allocations/span |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (shape_name, shape, iters) in [
        ("flat operation span", flat as fn(u64) -> u64, 20_000u64),
        ("operation + 99 child spans", tree, 200),
    ] {
        let mut wall: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
        let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
        let mut background = vec![0.0f64; setups.len()];
        for setup in &setups {
            batch(setup, shape, iters);
            setup.flush();
        }
        for round in 0..rounds {
            for k in 0..setups.len() {
                let s = (round + k) % setups.len();
                let (thread, others) = (thread_cpu_ns(), other_threads_cpu_ns());
                // Wall time is the host's (the spans alone); CPU includes exporting
                // them, the flush waiting until the exporter thread is done.
                let ns = batch(&setups[s], shape, iters);
                setups[s].flush();
                let spans = if shape_name.starts_with("flat") {
                    iters
                } else {
                    iters * 100
                } as f64;
                wall[s].push(ns);
                cpu[s].push(thread_cpu_ns().saturating_sub(thread) as f64 / spans);
                background[s] += other_threads_cpu_ns().saturating_sub(others) as f64 / spans;
            }
        }
        let median = |v: &mut Vec<f64>| quantile(v, 0.5);
        // CPU per span: the span thread's (median over the rounds) plus the other
        // threads' (mean over the whole run: their schedstat is too coarse per batch).
        let total = |s: usize| median(&mut cpu[s].clone()) + background[s] / rounds as f64;
        let (w_theirs, c_theirs) = (median(&mut wall[2].clone()), total(2));
        for (s, setup) in setups.iter().enumerate() {
            let (w, c) = (median(&mut wall[s].clone()), total(s));
            let (p25, p75) = (
                quantile(&mut wall[s].clone(), 0.25),
                quantile(&mut wall[s].clone(), 0.75),
            );
            let allocs = allocations_per_span(setup, shape);
            println!(
                "| {shape_name} | {} | {w:.0} | {p25:.0}–{p75:.0} | {c:.0} | {:.2}x | {:.2}x | {allocs:.2} |",
                setup.name,
                w / w_theirs,
                c / c_theirs
            );
        }
    }
    let _ = otel.traces().flush();
    let export = otel.traces().counters().report();
    println!(
        "\nvidperf's exporter: {} spans emitted, {} exported, {} failed, {} dropped with the queue ({OTEL_QUEUE}) full.",
        export.emitted, export.exported, export.failed, export.dropped_queue_full
    );
    if let Some(tail) = tail_handle.otlp().and_then(|o| o.health().tail) {
        println!(
            "Tail sampler: kept {:?}, dropped {} traces.",
            tail.kept, tail.dropped_traces
        );
    }
    let _ = provider.shutdown();
    let _ = provider7.shutdown();
}

/// Export throughput to a real collector: rotel (when installed) with its blackhole
/// exporter, fed at 10,000 spans/s — ten times a busy service (20 clips/s at about 50
/// spans each) — for three seconds, then flushed. Target: nothing dropped.
fn rotel_section() {
    use std::process::{Command, Stdio};
    use vidperf::otlp::OtelConfig;
    let agent = Command::new("python3")
        .args([
            "-c",
            "import rotel, os; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let Some(agent) = agent else {
        println!("rotel not installed (pip install rotel): export throughput not measured.");
        return;
    };
    let port = |_: ()| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
    };
    let (Ok(grpc), Ok(http)) = (port(()), port(())) else {
        return;
    };
    let Ok(mut child) = Command::new(agent)
        .args([
            "start",
            "--otlp-grpc-endpoint",
            &format!("127.0.0.1:{grpc}"),
            "--otlp-http-endpoint",
            &format!("127.0.0.1:{http}"),
            "--exporter",
            "blackhole",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return;
    };
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let config = OtelConfig::default().with_endpoint(format!("http://127.0.0.1:{http}"));
    let (layer, handle) = vidperf::builder()
        .without_env()
        .otlp(config)
        .build()
        .expect("vidperf with OTLP");
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    let rate = 10_000u64;
    let started = Instant::now();
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..3 * rate {
            // Pace the producer: span i is due at i / rate seconds.
            let due = std::time::Duration::from_nanos(i * 1_000_000_000 / rate);
            while started.elapsed() < due {
                std::hint::spin_loop();
            }
            flat(i);
        }
    });
    let produced_in = started.elapsed();
    let result = handle.shutdown(std::time::Duration::from_secs(30));
    let export = handle
        .snapshot()
        .health
        .part::<vidperf::otlp::ExportHealth>("export")
        .unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "| export to rotel (blackhole), {rate} spans/s for {:.1} s | measured | target | |",
        produced_in.as_secs_f64()
    );
    println!("|---|---:|---:|---|");
    println!(
        "| spans emitted / exported | {} / {} | all | {} |",
        export.emitted,
        export.exported,
        verdict(export.exported == export.emitted)
    );
    println!(
        "| spans dropped (queue full) / failed | {} / {} | 0 | {} |",
        export.dropped,
        export.failed,
        verdict(export.dropped + export.failed == 0 && result.is_ok())
    );
}

fn main() {
    // `--profile flat|tree`: loop one shape under the full setup for 5 s, for `perf record`.
    // An optional third argument picks the setup by its row number (default: the last).
    let args: Vec<String> = std::env::args().skip_while(|a| a != "--profile").collect();
    if args.get(2).map(String::as_str) == Some("otel") {
        let config = vidperf::otlp::OtelConfig::default()
            .with_endpoint(loopback_otlp_sink())
            .with_max_queue_size(OTEL_QUEUE)
            .with_metrics_interval(std::time::Duration::from_secs(3600));
        let (setup, _otel) = vidperf_otel_setup(&config);
        let shape = if args.get(1).map(String::as_str) == Some("tree") {
            tree
        } else {
            flat
        };
        let start = Instant::now();
        while start.elapsed().as_secs() < 5 {
            black_box(batch(&setup, shape, 10_000));
            setup.flush();
        }
        return;
    }
    if let Some(shape) = args.get(1) {
        let shape = if shape == "tree" { tree } else { flat };
        let mut setups = setups();
        let pick = args
            .get(2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(setups.len() - 1);
        let setup = setups.swap_remove(pick.min(setups.len() - 1));
        let start = Instant::now();
        while start.elapsed().as_secs() < 5 {
            black_box(batch(&setup, shape, 10_000));
        }
        return;
    }
    let markdown = std::env::args().any(|a| a == "--markdown");
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 5 } else { 41 };
    if std::env::args().any(|a| a == "--otel-only") {
        otel_section(rounds);
        return;
    }
    if std::env::args().any(|a| a == "--streams-only") {
        streams_section(rounds);
        return;
    }
    if std::env::args().any(|a| a == "--stats-only") {
        stats_section(rounds);
        return;
    }
    if std::env::args().any(|a| a == "--boundary-only") {
        boundary_section(rounds);
        return;
    }
    if std::env::args().any(|a| a == "--progress-only") {
        progress_section(rounds);
        return;
    }
    let mut rows = measure("flat operation span", flat, 20_000, rounds);
    rows.extend(measure("operation + 99 child spans", tree, 200, rounds));

    println!(
        "| shape | setup | ns/span (median) | spread p25–p75 | vs bare registry | CPU ns/span (span thread) | CPU ns/span (other threads) | allocations/span |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.0} | {:.0}–{:.0} | {:.2}x | {:.0} | {:.1} | {:.3} |",
            r.shape, r.setup, r.median, r.p25, r.p75, r.ratio, r.cpu, r.background, r.allocs
        );
    }
    println!();
    let ratio_of = |shape: &str, setup: &str| {
        rows.iter()
            .find(|r| r.shape == shape && r.setup == setup)
            .map_or(f64::NAN, |r| r.ratio)
    };
    for (shape, target) in [
        ("flat operation span", 2.5),
        ("operation + 99 child spans", 1.4),
    ] {
        let stats = ratio_of(shape, "registry + PerfLayer + stats");
        let no_windows = ratio_of(shape, "registry + PerfLayer + stats, no time windows");
        let monitor = ratio_of(shape, "+ resource monitor (default rate)");
        println!(
            "- {shape}: PerfLayer + stats costs {stats:.2}x a bare registry span (target ≤ {target}x: {}); \
             time windows add {:.1}% (target ≤ 10%: {}); the resource monitor adds {:.1}% (target ≤ 3%: {}).",
            verdict(stats <= target),
            (stats / no_windows - 1.0) * 100.0,
            verdict(stats / no_windows <= 1.1),
            (monitor / stats - 1.0) * 100.0,
            verdict(monitor / stats <= 1.03),
        );
    }
    alerts_section(rounds);
    if std::env::args().any(|a| a == "--spans-only") {
        return;
    }
    streams_section(rounds);
    println!();
    monitor_section(rounds);
    println!();
    boundary_section(rounds);
    println!();
    progress_section(rounds);
    println!();
    stats_section(rounds);
    println!();
    otel_section(rounds);
    println!();
    rotel_section();
    if !markdown {
        println!("\n({rounds} interleaved rounds; rerun with --markdown for the docs table)");
    }
}
