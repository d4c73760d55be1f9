//! Memory bounds and allocation counts, measured with a counting allocator.
//!
//! The counters are per thread, so tests running side by side in one process do not
//! disturb each other; every span in these tests opens and closes on the test's thread.

// reason: a global allocator is an unsafe trait; this one only counts.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tracing::info_span;
use tracing_subscriber::prelude::*;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn note(allocs: u64, bytes: i64) {
    let _ = ALLOCS.try_with(|a| a.set(a.get() + allocs));
    let _ = LIVE.try_with(|l| l.set(l.get() + bytes));
}

// SAFETY: defers to the system allocator; the bookkeeping touches only const-initialised
// thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(1, layout.size() as i64);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(0, -(layout.size() as i64));
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(1, new_size as i64 - layout.size() as i64);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

fn live() -> i64 {
    LIVE.with(Cell::get)
}

fn operation(i: u64) {
    let span = info_span!(
        "upscale",
        strategy = "vsrm",
        operation = "enhancement",
        frames_processed = tracing::field::Empty,
        quality_score = tracing::field::Empty,
        input_width = 640,
        input_height = 360,
    );
    let _entered = span.enter();
    span.record("frames_processed", i % 100);
    span.record("quality_score", 0.5);
}

#[test]
fn one_million_operations_keep_memory_flat() {
    // Time windows off: a 10-second slot allocates its histograms the first time an
    // operation lands in it, so with windows on, a run crossing slot boundaries (this
    // one lasts 10-40 s) grows by a few KiB per new slot until the ring (60 slots) is
    // in use, whatever the operation count. That growth is bounded by the ring; this
    // test is about growth with the number of operations.
    let (layer, vidperf) = vidperf::builder()
        .without_env()
        .stats_config(
            vidperf::StatsConfig::default()
                .with_window_slots(std::time::Duration::from_secs(10), 0),
        )
        .history_limit(1_000)
        .build()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..100_000 {
            operation(i);
        }
        let after_100k = live();
        for i in 0..900_000 {
            operation(i);
        }
        let after_1m = live();
        let growth = after_1m - after_100k;
        assert!(
            growth < 64 * 1024,
            "memory grew by {growth} bytes between 10^5 and 10^6 operations"
        );
    });
    let snap = vidperf.snapshot();
    assert_eq!(snap.summary.total_operations, 1_000_000);
    assert_eq!(snap.health.history_len, 1_000);
}

#[test]
fn at_most_one_allocation_per_operation_and_none_per_ordinary_span() {
    let (layer, _vidperf) = vidperf::builder()
        .without_env()
        .history_limit(1_000)
        .build()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        // Warm up: the history reaches its limit, the maps and pools their size.
        for i in 0..5_000 {
            operation(i);
            info_span!("decode", frame = i).in_scope(|| {});
        }
        // Steady state: the best of three runs. A run that crosses into a new 10-second
        // time slot pays for that slot's first use (its histograms, once per slot and
        // pair until the ring has gone round once); the next run does not.
        let per_operation = (0..3)
            .map(|_| {
                let before = allocs();
                for i in 0..10_000 {
                    operation(i);
                }
                (allocs() - before) as f64 / 10_000.0
            })
            .fold(f64::INFINITY, f64::min);
        assert!(
            per_operation <= 1.0,
            "{per_operation} allocations per operation span"
        );

        // Ordinary spans inside an operation: the shape of a segmented enhancement.
        let parent = info_span!("clip", strategy = "vsrm");
        let _entered = parent.enter();
        let before = allocs();
        for i in 0..10_000 {
            info_span!("decode", frame = i).in_scope(|| {});
        }
        let ordinary = allocs() - before;
        assert_eq!(ordinary, 0, "allocations for 10,000 ordinary spans");
    });
}
