//! Memory under a long collector outage is bounded by the span queue, not by the
//! number of spans: measured with a process-wide counting allocator (so this file holds
//! one test; the exporter frees on its own thread).

// reason: a global allocator is an unsafe trait; this one only counts.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tracing::info_span;
use tracing_subscriber::prelude::*;
use vidperf::otlp::OtelConfig;

#[path = "support/collector.rs"]
mod collector;

struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: defers to the system allocator; the bookkeeping is one atomic add.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const QUEUE: usize = 512;

#[test]
fn a_long_outage_costs_at_most_the_queue() {
    // The worst outage for memory: the collector accepts connections and never
    // answers, so the exporter sits on each batch until its timeout and the queue fills.
    let (endpoint, _requests) =
        collector::scripted_collector(|_| ("200 OK", "", Duration::from_secs(600)));
    let config = OtelConfig::default()
        .with_endpoint(endpoint)
        .with_export_timeout(Duration::from_secs(1))
        .with_max_queue_size(QUEUE);
    let (layer, vidperf) = vidperf::builder()
        .without_env()
        .without_resource_monitor()
        .history_limit(100)
        .otlp(config)
        .build()
        .expect("build");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let run = |n: u64, label: &str| {
        tracing::dispatcher::with_default(&dispatch, || {
            for i in 0..n {
                let _op = info_span!(
                    "upscale",
                    strategy = "seedvr2",
                    frames_processed = i,
                    phase = label,
                    note = "a field long enough to make every span a few hundred bytes"
                );
            }
        });
        LIVE.load(Ordering::Relaxed)
    };
    // Warm up until the queue is full and every cache and table has its size.
    let warm = run(5_000, "warm");
    let started = Instant::now();
    let after = run(50_000, "outage");
    let took = started.elapsed();

    let export = vidperf
        .snapshot()
        .health
        .part::<vidperf::otlp::ExportHealth>("export")
        .expect("export health");
    assert!(
        export.queued <= QUEUE as u64,
        "at most the queue is held: {export:?}"
    );
    assert!(
        export.dropped_queue_full >= 50_000 - QUEUE as u64,
        "spans that found the queue full were dropped and counted as they were: {export:?}"
    );
    let growth = after - warm;
    eprintln!("live heap: {warm} after warm-up, {after} after the outage; {export:?}");
    // Keeping the 50,000 spans would take tens of megabytes; the queue holds 512.
    assert!(
        growth < 1 << 20,
        "live heap grew {growth} bytes over 50,000 spans during the outage (after warm-up: {warm})"
    );
    assert!(
        took < Duration::from_secs(30),
        "the host never waited for the exporter: {took:?}"
    );
    assert_eq!(vidperf.snapshot().summary.total_operations, 55_000);
    let shutdown = vidperf.shutdown(Duration::from_secs(2));
    let export = vidperf
        .snapshot()
        .health
        .part::<vidperf::otlp::ExportHealth>("export")
        .expect("export health");
    assert_eq!(
        export.exported + export.failed + export.dropped,
        export.emitted,
        "every span accounted for after shutdown: {export:?}"
    );
    assert_eq!(export.queued, 0, "{export:?}");
    assert!(shutdown.is_err(), "the loss is reported");
}
