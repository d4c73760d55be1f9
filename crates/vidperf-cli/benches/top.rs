//! `vidperf top` under a large service: 200 strategies, 10 operations finishing per
//! second, one stream event per second. Each event is built the way the service builds
//! it (a windowed snapshot of real statistics and the records finished since the
//! last, serialised), then timed through what the view does with it: parse, make the
//! frame, draw (80×24 and 200×60). Target: all of it within the view's tick (250 ms)
//! — and, being per event, within the stream's shortest interval (250 ms) too.
//!
//! Run: `cargo bench -p vidperf-cli --bench top`.

// reason: a benchmark reports on stdout.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use vidperf_cli::top::model::{Model, StreamEvent};
use vidperf_cli::top::render_text;
use vidperf_cli::top::view::{Mode, View};
use vidperf_core::{
    Figure, FinishedSpan, OperationKey, SnapshotOptions, SpanId, Stats, StatsConfig, TraceId,
};

const STRATEGIES: usize = 200;
const PER_SECOND: usize = 10;
const EVENTS: usize = 120;

fn record(stats: &Stats, i: usize, end: SystemTime) -> FinishedSpan {
    let key = OperationKey {
        operation_type: Arc::from(if i.is_multiple_of(3) {
            "analysis"
        } else {
            "enhancement"
        }),
        strategy: Arc::from(format!("strategy-{:03}", i % STRATEGIES)),
    };
    let ids = (
        TraceId::from_bytes([5; 16]),
        SpanId::from_bytes((i as u64 + 1).to_be_bytes()),
    );
    let seconds = 0.05 + (i * 7919 % 1000) as f64 / 400.0;
    let mut span = FinishedSpan::operation(key, ids, end, Duration::from_secs_f64(seconds));
    span.fields.frames_processed = Some(24);
    span.resources
        .figures
        .set(Figure::GpuMemory, Some(((i % 40) as f64 + 20.0) * 1e9));
    span.resources
        .figures
        .set(Figure::GpuUtilization, Some(0.6));
    span.resources.samples = Some(3 + (i % 50) as u64);
    stats.record(&span);
    span
}

/// The events of `EVENTS` seconds, as the service would send them (each strategy has
/// a minute of history before the first).
fn events() -> Vec<String> {
    let stats = Stats::new(
        StatsConfig::default()
            .with_max_keys(STRATEGIES * 2)
            .with_max_pairs(STRATEGIES * 4),
    );
    let start = SystemTime::now() - Duration::from_secs(EVENTS as u64 + 60);
    let mut i = 0;
    // A minute before: every strategy has operations in the window.
    for s in 0..60 * PER_SECOND.max(STRATEGIES / 60 + 1) {
        record(&stats, i, start + Duration::from_millis(s as u64 * 100));
        i += 1;
    }
    let mut out = Vec::with_capacity(EVENTS);
    for second in 0..EVENTS {
        for k in 0..PER_SECOND {
            let end = start
                + Duration::from_secs(60 + second as u64)
                + Duration::from_millis(k as u64 * 100);
            record(&stats, i, end);
            i += 1;
        }
        let at = start + Duration::from_secs(61 + second as u64);
        let snapshot = stats.snapshot_with(
            SnapshotOptions::default()
                .with_window(Duration::from_secs(60))
                .with_recent(0)
                .at(at),
        );
        let records = stats.records();
        let last = &records[records.len() - PER_SECOND..];
        let json = serde_json::json!({
            "sequence": second as u64 + 1,
            "snapshot": snapshot,
            "finished": last,
            "finished_omitted": 0,
            "alerts": [],
        });
        out.push(json.to_string());
    }
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let events = events();
    let bytes: usize = events.iter().map(String::len).sum::<usize>() / events.len();
    let mut model = Model::new(600);
    let view = View::new(
        Mode::Live {
            url: "http://127.0.0.1:9464".to_owned(),
            down: None,
            stale: None,
        },
        true,
    );
    let (mut parse, mut push, mut small, mut large, mut total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for data in &events {
        let t0 = Instant::now();
        let event: StreamEvent = serde_json::from_str(data).expect("an event");
        let t1 = Instant::now();
        model.push_event(&event);
        let t2 = Instant::now();
        let at = model.len() - 1;
        std::hint::black_box(render_text(&model, at, &view, 80, 24));
        let t3 = Instant::now();
        std::hint::black_box(render_text(&model, at, &view, 200, 60));
        let t4 = Instant::now();
        parse.push(t1 - t0);
        push.push(t2 - t1);
        small.push(t3 - t2);
        large.push(t4 - t3);
        total.push(t4 - t0);
    }
    let rows = model.last().map_or(0, |f| f.rows.len());
    let worst = total.iter().max().copied().unwrap_or_default();
    let tick = Duration::from_millis(250);
    println!(
        "| `vidperf top`, {rows} strategies, {PER_SECOND} operations/s, one event/s ({} KiB each), median of {} events | measured | target | |",
        bytes / 1024,
        events.len()
    );
    println!("|---|---:|---:|---|");
    println!("| parse the event | {:.2} ms | | |", ms(median(parse)));
    println!(
        "| make the frame (rows, lints) | {:.2} ms | | |",
        ms(median(push))
    );
    println!("| draw 80×24 | {:.2} ms | | |", ms(median(small)));
    println!(
        "| draw 200×60 (trends over the last 10 frames) | {:.2} ms | | |",
        ms(median(large))
    );
    let met = if worst <= tick { "met" } else { "missed" };
    println!(
        "| all of it, per event (median / worst) | {:.2} / {:.2} ms | ≤ {} ms (the tick) | {met} |",
        ms(median(total)),
        ms(worst),
        tick.as_millis()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
