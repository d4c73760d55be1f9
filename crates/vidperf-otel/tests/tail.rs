//! The tail sampler decides per local trace when its root closes: every failed trace,
//! every operation over its pair's live p95, a background fraction by trace id; spans
//! closing after their root follow its decision; open traces are bounded; exemplars
//! point only at exported traces.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span as SpanData;
use prost::Message as _;
use vidperf_core::metrics::Value;
use vidperf_core::{FinishedSpan, OperationKey, Sink, SpanId, Stats, TraceId};
use vidperf_otel::{BatchConfig, ExportError, SpanExport, TailConfig, TraceSink};

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

fn reason(span: &SpanData) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == "vidperf.sampling.reason")
        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

fn key() -> OperationKey {
    OperationKey {
        operation_type: "enhancement".into(),
        strategy: "vsrm".into(),
    }
}

/// A local root operation of its own trace lasting `ms`.
fn root(ms: f64) -> FinishedSpan {
    FinishedSpan::operation(
        key(),
        (TraceId::from_bytes(rand16()), SpanId::from_bytes(rand8())),
        SystemTime::now(),
        Duration::from_secs_f64(ms / 1e3),
    )
}

/// A span under `root` in its trace.
fn child(root: &FinishedSpan, ms: f64) -> FinishedSpan {
    let mut span = FinishedSpan::operation(
        key(),
        (root.trace_id, SpanId::from_bytes(rand8())),
        SystemTime::now(),
        Duration::from_secs_f64(ms / 1e3),
    );
    span.parent_span_id = Some(root.span_id);
    span.local_root = root.span_id;
    span
}

fn rand16() -> [u8; 16] {
    let a = rand8();
    let b = rand8();
    let mut out = [0; 16];
    out[..8].copy_from_slice(&a);
    out[8..].copy_from_slice(&b);
    out
}

fn rand8() -> [u8; 8] {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(1);
    (h.finish() | 1).to_be_bytes()
}

fn sink(config: TailConfig, stats: &Arc<Stats>) -> (Arc<TraceSink>, Memory) {
    let memory = Memory::default();
    let sink = TraceSink::builder(memory.clone())
        .batch(BatchConfig::default().with_max_queue_size(100_000))
        .tail(config, stats.clone())
        .start()
        .expect("start");
    (Arc::new(sink), memory)
}

/// Both sinks, as the layer calls them: the statistics first.
fn finish(stats: &Stats, traces: &TraceSink, span: &FinishedSpan) {
    stats.record(span);
    traces.on_finish(span);
}

#[test]
fn failures_slow_operations_and_a_background_fraction_are_kept() {
    let stats = Arc::new(Stats::default());
    let (traces, memory) = sink(TailConfig::default(), &stats);
    // The pair's distribution: 10–20 ms.
    for i in 0..400 {
        stats.record(&root(10.0 + f64::from(i % 100) / 10.0));
    }
    // The thresholds are read once a second.
    std::thread::sleep(Duration::from_millis(1500));
    let mut expected_kept = HashSet::new();
    let mut normal = 0;
    for i in 0..3000 {
        let mut span = root(10.0 + f64::from(i % 90) / 10.0); // under the p95 (19.5 ms)
        match i % 60 {
            0 => {
                span.error = Some("out of memory".into());
                expected_kept.insert((span.trace_id.to_bytes().to_vec(), "error"));
            }
            1 => {
                span.duration = Duration::from_millis(40);
                expected_kept.insert((span.trace_id.to_bytes().to_vec(), "slow"));
            }
            _ => normal += 1,
        }
        finish(&stats, &traces, &span);
    }
    traces.flush().expect("flush");
    let spans = memory.0.lock().expect("spans").clone();
    let got: HashMap<Vec<u8>, String> = spans
        .iter()
        .map(|s| {
            (
                s.trace_id.clone(),
                reason(s).expect("every kept span says why"),
            )
        })
        .collect();
    for (trace, why) in &expected_kept {
        assert_eq!(got.get(trace).map(String::as_str), Some(*why), "{why}");
    }
    let background = got.values().filter(|r| *r == "background").count();
    // 1% of 2900: mean 29, the binomial 99% interval is [16, 44].
    assert!((16..=44).contains(&background), "{background} of {normal}");
    let health = traces.health();
    let tail = health.tail.expect("tail health");
    assert_eq!(tail.kept["error"], 50);
    assert_eq!(tail.kept["slow"], 50);
    assert_eq!(tail.dropped_traces as usize, normal - background);
    assert_eq!(health.exported as usize, spans.len());
    // The statistics saw every operation.
    assert_eq!(stats.snapshot().summary.total_operations, 3400);
    // Every exemplar is of an exported trace.
    let exported: HashSet<Vec<u8>> = spans.iter().map(|s| s.trace_id.clone()).collect();
    let metrics = stats.metrics();
    let durations = metrics
        .family("vidperf.operation.duration")
        .expect("family");
    let mut exemplars = 0;
    for point in &durations.points {
        let Value::Histogram(h) = &point.value else {
            continue;
        };
        for e in &h.exemplars {
            exemplars += 1;
            assert!(
                exported.contains(e.trace_id.as_slice()),
                "an exemplar of a dropped trace"
            );
        }
    }
    assert!(exemplars >= 3, "{exemplars} exemplars");
}

#[test]
fn children_before_and_after_their_root_follow_its_decision() {
    let stats = Arc::new(Stats::default());
    let mut config = TailConfig::default();
    config.background = 0.0;
    let (traces, memory) = sink(config, &stats);
    // Warm-up keeps everything while the pair has few operations: make it judge.
    for _ in 0..100 {
        stats.record(&root(10.0));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // A failing child closes first; the root is fast; a late child closes after it.
    let mut failing_root = root(10.0);
    failing_root.had_children = true;
    let mut early = child(&failing_root, 5.0);
    early.error = Some("decode failed".into());
    finish(&stats, &traces, &early);
    finish(&stats, &traces, &failing_root);
    let late = child(&failing_root, 5.0);
    finish(&stats, &traces, &late);
    // A fast trace with a child: dropped whole, the late child too.
    let mut fast_root = root(10.0);
    fast_root.had_children = true;
    finish(&stats, &traces, &child(&fast_root, 5.0));
    finish(&stats, &traces, &fast_root);
    finish(&stats, &traces, &child(&fast_root, 5.0));
    traces.flush().expect("flush");
    let spans = memory.0.lock().expect("spans").clone();
    let ids: HashSet<Vec<u8>> = spans.iter().map(|s| s.span_id.clone()).collect();
    for s in [&early, &failing_root, &late] {
        assert!(
            ids.contains(s.span_id.to_bytes().as_slice()),
            "the failed trace is whole"
        );
    }
    assert!(
        spans
            .iter()
            .all(|s| s.trace_id != fast_root.trace_id.to_bytes()),
        "the fast trace is dropped whole"
    );
    let tail = traces.health().tail.expect("tail");
    assert_eq!(tail.late_spans, 2);
    assert_eq!((tail.dropped_traces, tail.dropped_spans), (1, 3));
    assert_eq!((tail.open_traces, tail.buffered_bytes), (0, 0));
}

#[test]
fn open_traces_are_bounded_and_decided_early() {
    let stats = Arc::new(Stats::default());
    let mut config = TailConfig::default();
    config.background = 0.0;
    // Always warming up: every trace is kept.
    config.min_samples = u64::MAX;
    config.max_trace_bytes = 20_000;
    config.max_buffer_bytes = 200_000;
    let (traces, memory) = sink(config, &stats);
    // A root that never closes: its children stop at the per-trace bound.
    let mut never = root(10.0);
    never.had_children = true;
    for _ in 0..1_000 {
        finish(&stats, &traces, &child(&never, 1.0));
    }
    let tail = traces.health().tail.expect("tail");
    assert!(tail.early["trace_bytes"] >= 1, "{tail:?}");
    assert!(tail.buffered_bytes <= 20_000, "{tail:?}");
    // 10,000 traces open at once, each with a child waiting: the total bound holds.
    let roots: Vec<FinishedSpan> = (0..10_000)
        .map(|_| {
            let mut r = root(10.0);
            r.had_children = true;
            r
        })
        .collect();
    for r in &roots {
        finish(&stats, &traces, &child(r, 1.0));
        assert!(traces.health().tail.expect("tail").buffered_bytes <= 200_000 + 2_000);
    }
    let tail = traces.health().tail.expect("tail");
    assert!(tail.early["buffer_bytes"] > 1_000, "{tail:?}");
    for r in &roots {
        finish(&stats, &traces, r);
    }
    let tail = traces.health().tail.expect("tail");
    assert!(tail.open_traces <= 1, "{tail:?}");
    // Warm-up: the pair had too few operations in the window, so everything is kept.
    traces.flush().expect("flush");
    let kept = memory.0.lock().expect("spans").len();
    assert!(kept > 10_000, "{kept}");
    traces.shutdown(Duration::from_secs(5)).expect("shutdown");
    let tail = traces.health().tail.expect("tail");
    assert_eq!((tail.open_traces, tail.buffered_bytes), (0, 0), "{tail:?}");
}
