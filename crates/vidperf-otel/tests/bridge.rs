//! The bridge with an exporter that keeps what it is sent (decoded with the reference
//! OTLP types): sampling is consistent per trace, every operation reaches the metrics
//! and statistics whatever the sampler drops, and the export queue is bounded with every
//! drop counted by reason as it happens.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span as SpanData;
use prost::Message as _;
use tracing::info_span;
use tracing_subscriber::prelude::*;
use vidperf_core::metrics::Value;
use vidperf_core::sampler::Sampler;
use vidperf_core::{PerfLayer, Stats};
use vidperf_otel::ExportHealth as TraceReport;
use vidperf_otel::{BatchConfig, DEFAULT_MAX_QUEUE_SIZE, ExportError, SpanExport, TraceSink};

/// Keeps every span it is sent.
#[derive(Clone, Debug, Default)]
struct Memory(Arc<Mutex<Vec<SpanData>>>);

impl SpanExport for Memory {
    fn export(&self, request: &[u8]) -> Result<(), ExportError> {
        let request = ExportTraceServiceRequest::decode(request).expect("a valid request");
        let mut spans = self.0.lock().expect("spans");
        for rs in request.resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(())
    }
}

impl Memory {
    fn spans(&self) -> Vec<SpanData> {
        self.0.lock().expect("spans").clone()
    }
}

#[test]
fn unsampled_traces_still_count_in_metrics_and_statistics() {
    let spans = Memory::default();
    let traces = sink(spans.clone(), DEFAULT_MAX_QUEUE_SIZE);
    let stats = Arc::new(Stats::default());
    let layer = PerfLayer::builder()
        .sink(stats.clone())
        .sink(traces.clone())
        .sampler(Sampler::TraceIdRatio(0.5))
        .build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..200u64 {
            info_span!("request", strategy = "auto").in_scope(|| {
                let _child = info_span!("upscale", strategy = "vsrm", frames_processed = i);
            });
        }
    });
    traces.flush().expect("flush traces");

    // Statistics: everything.
    assert_eq!(stats.snapshot().summary.total_operations, 400);

    // Traces: about half of the traces, and always whole (parent and child together).
    let exported = spans.spans();
    let report = traces.counters().report();
    assert_eq!(report.emitted as usize, exported.len());
    assert_eq!(report.emitted + report.unsampled, 400);
    assert!(
        (100..=300).contains(&exported.len()),
        "{} spans exported",
        exported.len()
    );
    let mut per_trace = std::collections::HashMap::new();
    for s in &exported {
        *per_trace.entry(s.trace_id.clone()).or_insert(0) += 1;
    }
    assert!(
        per_trace.values().all(|n| *n == 2),
        "a trace is sampled whole or not at all"
    );
    let child = exported
        .iter()
        .find(|s| s.name == "upscale")
        .expect("a child");
    let parent = exported
        .iter()
        .find(|s| s.span_id == child.parent_span_id)
        .expect("its parent");
    assert_eq!(parent.name, "request");

    // Metrics (what OTLP and /metrics encode): all 400 operations.
    let metrics = stats.metrics();
    let duration = metrics
        .family("vidperf.operation.duration")
        .expect("durations");
    let count: u64 = duration
        .points
        .iter()
        .map(|p| match &p.value {
            Value::Histogram(h) => h.count,
            Value::Number(_) => 0,
        })
        .sum();
    assert_eq!(count, 400, "metrics count every operation");
}

#[test]
fn remote_parents_and_follows_from_links_reach_the_span_data() {
    use vidperf_core::{SpanExt, TraceContext};
    let spans = Memory::default();
    let traces = sink(spans.clone(), DEFAULT_MAX_QUEUE_SIZE);
    let layer = PerfLayer::builder().sink(traces.clone()).build();
    let remote: TraceContext = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        .parse()
        .expect("valid");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let job = info_span!("background_job", strategy = "vsrm");
        assert!(job.set_parent(remote.clone()));
        job.in_scope(|| info_span!("child").in_scope(|| {}));
        let batch = info_span!("batch");
        batch.follows_from(&job);
        assert_eq!(job.context().map(|c| c.trace_id), Some(remote.trace_id));
    });
    traces.flush().expect("flush");
    let exported = spans.spans();
    let job = exported
        .iter()
        .find(|s| s.name == "background_job")
        .expect("job");
    assert_eq!(job.trace_id, remote.trace_id.to_bytes());
    assert_eq!(job.parent_span_id, remote.span_id.to_bytes());
    assert_eq!(
        job.flags & 0x300,
        0x300,
        "the parent is remote: {:x}",
        job.flags
    );
    assert_eq!(job.flags & 0xff, 0x01, "sampled, not random upstream");
    let child = exported.iter().find(|s| s.name == "child").expect("child");
    assert_eq!(
        child.trace_id, job.trace_id,
        "children join the remote trace"
    );
    assert_eq!(child.parent_span_id, job.span_id);
    assert_eq!(child.flags & 0x300, 0x100, "a local parent");
    let batch = exported.iter().find(|s| s.name == "batch").expect("batch");
    assert_eq!(batch.links.len(), 1);
    assert_eq!(batch.links[0].span_id, job.span_id);
}

/// A trace sink exporting through `exporter`, batches sent as soon as they are asked for.
fn sink(exporter: impl SpanExport, queue: usize) -> Arc<TraceSink> {
    let batch = BatchConfig::default().with_max_queue_size(queue);
    Arc::new(
        TraceSink::builder(exporter)
            .batch(batch)
            .start()
            .expect("start"),
    )
}

/// An exporter that holds every batch until the test opens its gate.
#[derive(Debug, Clone, Default)]
struct GatedExporter {
    gate: Arc<(Mutex<bool>, Condvar)>,
}

impl GatedExporter {
    fn open(&self) {
        let (open, changed) = &*self.gate;
        *open.lock().expect("gate") = true;
        changed.notify_all();
    }
}

impl SpanExport for GatedExporter {
    fn export(&self, _request: &[u8]) -> Result<(), ExportError> {
        let (open, changed) = &*self.gate;
        let mut open = open.lock().expect("gate");
        while !*open {
            open = changed.wait(open).expect("gate");
        }
        Ok(())
    }
}

/// `n` operation spans through a layer whose only sink is `traces`.
fn emit(traces: &Arc<TraceSink>, n: u64) {
    let layer = PerfLayer::builder().sink(traces.clone()).build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..n {
            let _op = info_span!("upscale", strategy = "vsrm", frames_processed = i);
        }
    });
}

/// The counts that may only grow, in order.
fn growing(r: &TraceReport) -> [u64; 6] {
    [
        r.emitted,
        r.exported,
        r.failed,
        r.dropped,
        r.dropped_queue_full,
        r.dropped_shutdown,
    ]
}

#[test]
fn the_queue_bound_is_exact_and_drops_are_counted_as_they_happen() {
    let exporter = GatedExporter::default();
    let traces = sink(exporter.clone(), 100);
    emit(&traces, 250);
    let stuck = traces.counters().report();
    assert_eq!(
        (stuck.emitted, stuck.queued, stuck.dropped_queue_full),
        (250, 100, 150),
        "the queue holds 100 and the rest are dropped, counted now: {stuck:?}"
    );
    assert_eq!((stuck.exported, stuck.dropped_shutdown), (0, 0));

    // Released: counts move from `queued` to `exported`, and none goes down (a
    // Prometheus counter that goes down reads as a reset).
    let watcher = {
        let traces = traces.clone();
        std::thread::spawn(move || {
            let mut last = growing(&traces.counters().report());
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                assert!(std::time::Instant::now() < deadline, "never exported");
                let r = traces.counters().report();
                let now = growing(&r);
                assert!(
                    now.iter().zip(&last).all(|(n, l)| n >= l),
                    "a count went down: {last:?} -> {now:?}"
                );
                assert_eq!(r.emitted, r.exported + r.failed + r.dropped + r.queued);
                if r.exported == 100 {
                    break;
                }
                last = now;
            }
        })
    };
    exporter.open();
    traces.flush().expect("flush");
    watcher.join().expect("counts only grow");
    emit(&traces, 10);
    traces.flush().expect("flush");
    let done = traces.counters().report();
    assert_eq!(
        (done.emitted, done.exported, done.queued, done.dropped),
        (260, 110, 0, 150),
        "{done:?}"
    );
    traces.shutdown(Duration::from_secs(5)).expect("shutdown");
}

#[test]
fn what_shutdown_could_not_send_is_dropped_at_shutdown() {
    let exporter = GatedExporter::default();
    let traces = sink(exporter.clone(), 100);
    emit(&traces, 50);
    assert_eq!(traces.counters().report().queued, 50);
    traces
        .shutdown(Duration::from_millis(100))
        .expect_err("the exporter is stuck");
    emit(&traces, 5);
    let after = traces.counters().report();
    assert_eq!(
        (
            after.emitted,
            after.queued,
            after.dropped_shutdown,
            after.dropped_queue_full
        ),
        (55, 0, 55, 0),
        "queued at shutdown or emitted after it: {after:?}"
    );
    // The stuck batch goes through after all: it moves from dropped to exported.
    exporter.open();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while traces.counters().report().exported < 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "the batch never finished"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let late = traces.counters().report();
    assert_eq!(
        (late.exported, late.dropped_shutdown, late.emitted),
        (50, 5, 55),
        "{late:?}"
    );
}

/// Nothing is exported for a series that recorded nothing: no `__overflow__` points
/// below the cap, no histogram of a figure never measured (GPU without a GPU), no
/// point with a zero count.
#[test]
fn only_series_that_recorded_something_are_exported() {
    let stats = Arc::new(Stats::default());
    let layer = PerfLayer::builder().sink(stats.clone()).build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for k in 0..10u64 {
            let strategy = format!("s{k}");
            let span = info_span!(
                "upscale",
                strategy = strategy.as_str(),
                operation = "enhancement",
                frames_processed = tracing::field::Empty
            );
            if k % 2 == 0 {
                span.record("frames_processed", 30u64);
            }
            drop(span);
        }
    });
    let metrics = stats.metrics();
    let mut names = std::collections::BTreeMap::new();
    for family in &metrics.families {
        for point in &family.points {
            let attrs: Vec<String> = point
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if let Value::Histogram(h) = &point.value {
                assert!(
                    h.count > 0,
                    "{}: a point with count 0 ({attrs:?})",
                    family.def.name
                );
            }
            assert!(
                !attrs.iter().any(|a| a.contains("__overflow__")),
                "{}: {attrs:?}",
                family.def.name
            );
        }
        names.insert(family.def.name, family.points.len());
    }
    // Every operation has a duration; half recorded frames (so a frame rate too);
    // nothing else was measured; and the process's own figures.
    assert_eq!(
        names.get("vidperf.operation.duration"),
        Some(&10),
        "{names:?}"
    );
    assert_eq!(names.get("vidperf.operation.frames"), Some(&5), "{names:?}");
    assert_eq!(
        names.get("vidperf.operation.frames_per_second"),
        Some(&5),
        "{names:?}"
    );
    let process: Vec<&str> = vidperf_core::metrics::family::STATS[5..]
        .iter()
        .map(|f| f.name)
        .collect();
    let rest: Vec<&&str> = names
        .keys()
        .filter(|n| !n.starts_with("vidperf.operation."))
        .collect();
    assert!(rest.iter().all(|n| process.contains(n)), "{names:?}");
    assert_eq!(names.len(), 3 + process.len(), "{names:?}");
}
