//! What the layer captures from spans.

use std::sync::Arc;
use std::time::Duration;

use tracing::field::Empty;
use tracing::{Span, info_span, instrument};
use tracing_subscriber::prelude::*;
use vidperf::Figure;
use vidperf::{FieldValue, FinishedSpan, Sink, SpanInterest};

use crate::run;

#[test]
fn contract_fields_are_captured_typed() {
    let vidperf = run(|| {
        let span = info_span!(
            "upscale",
            strategy = "vsrm",
            operation = "enhancement",
            frames_processed = Empty,
            segments = 3u64,
            input_width = 640,
            input_height = 360,
            output_width = 1280,
            output_height = 720,
            quality_score = Empty,
            enhancement_factor = 1.5,
            clip = "intro.mp4",
            retries = 2,
        );
        span.record("frames_processed", 48);
        span.record("quality_score", 0.91);
    });
    let records = vidperf.stats().records();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.operation_type, "enhancement");
    assert_eq!(r.strategy, "vsrm");
    assert_eq!(r.frames_processed, Some(48));
    assert_eq!(r.segments, Some(3));
    assert_eq!(
        r.input_resolution.map(|x| x.to_string()).as_deref(),
        Some("640x360")
    );
    assert_eq!(
        r.output_resolution.map(|x| x.to_string()).as_deref(),
        Some("1280x720")
    );
    assert_eq!(r.scale_factor, Some(2.0), "derived from the widths");
    assert_eq!(r.quality_score, Some(0.91));
    assert_eq!(r.enhancement_factor, Some(1.5));
    assert!(r.success);
    assert_eq!(r.metadata["clip"], FieldValue::Str("intro.mp4".into()));
    assert_eq!(r.metadata["retries"], FieldValue::I64(2), "ints stay ints");
    assert_eq!(
        r.metadata.len(),
        2,
        "contract fields are not duplicated as metadata"
    );
    assert_eq!(r.operation_id, r.span_id);
    assert_eq!(r.trace_id.len(), 32);
    // Unmeasured resources are absent, never zero.
    assert_eq!(r.get(Figure::ProcessMemory), None);
    assert_eq!(r.samples, None);
}

#[test]
fn operation_type_defaults_to_the_span_name() {
    let vidperf = run(|| {
        info_span!("degradation_analysis", strategy = "degradation_router").in_scope(|| {});
    });
    let snap = vidperf.snapshot();
    assert_eq!(snap.by_operation["degradation_analysis"].count, 1);
    assert_eq!(snap.by_strategy["degradation_router"].count, 1);
}

#[test]
fn spans_without_strategy_are_not_operations() {
    let vidperf = run(|| {
        info_span!("decode", frames_processed = 10).in_scope(|| {});
        info_span!("upscale", strategy = "vsrm").in_scope(|| {
            info_span!("segment", index = 0).in_scope(|| {});
        });
    });
    assert_eq!(vidperf.snapshot().summary.total_operations, 1);
}

#[test]
fn wrongly_typed_contract_fields_are_kept_as_metadata() {
    let vidperf = run(|| {
        let _span = info_span!(
            "upscale",
            strategy = "vsrm",
            frames_processed = -5,
            quality_score = f64::NAN,
            segments = "three",
        );
    });
    let r = &vidperf.stats().records()[0];
    assert_eq!(r.frames_processed, None);
    assert_eq!(r.quality_score, None);
    assert_eq!(r.segments, None);
    assert_eq!(r.metadata["frames_processed"], FieldValue::I64(-5));
    assert!(matches!(r.metadata["quality_score"], FieldValue::F64(q) if q.is_nan()));
    assert_eq!(r.metadata["segments"], FieldValue::Str("three".into()));
}

#[test]
fn huge_strings_are_cut() {
    let huge = "x".repeat(1 << 20);
    let vidperf = run(|| {
        let _span = info_span!(
            "upscale",
            strategy = "vsrm",
            note = huge.as_str(),
            error = huge.as_str()
        );
    });
    let r = &vidperf.stats().records()[0];
    let FieldValue::Str(note) = &r.metadata["note"] else {
        panic!("text")
    };
    assert!(note.len() <= vidperf::MAX_STRING_VALUE_BYTES);
    assert!(
        r.error_message
            .as_ref()
            .is_some_and(|e| e.len() <= vidperf::MAX_STRING_VALUE_BYTES)
    );
}

#[test]
fn error_field_marks_failure() {
    let vidperf = run(|| {
        let span = info_span!("upscale", strategy = "vsrm", error = Empty);
        span.record("error", "CUDA out of memory");
    });
    let r = &vidperf.stats().records()[0];
    assert!(!r.success);
    assert_eq!(r.error_message.as_deref(), Some("CUDA out of memory"));
}

#[test]
fn boolean_error_fields_mean_what_they_say() {
    let vidperf = run(|| {
        let _ok = info_span!("upscale", strategy = "vsrm", error = false);
        let _failed = info_span!("upscale", strategy = "vsrm", error = true);
    });
    let records = vidperf.stats().records();
    // Spans close in reverse order of creation here: `_failed` first.
    assert_eq!(records[0].error_message.as_deref(), Some("error"));
    assert!(records[1].success);
}

#[test]
fn error_event_inside_the_span_marks_failure() {
    let vidperf = run(|| {
        info_span!("upscale", strategy = "vsrm").in_scope(|| {
            tracing::warn!("slow frame");
            tracing::error!("decoder failed at frame 12");
        });
        // An error event in a child span belongs to the child, not the operation.
        info_span!("upscale", strategy = "ditvr").in_scope(|| {
            info_span!("retry").in_scope(|| tracing::error!("transient"));
        });
    });
    let records = vidperf.stats().records();
    assert_eq!(
        records[0].error_message.as_deref(),
        Some("decoder failed at frame 12")
    );
    assert!(records[1].success);
}

#[derive(Debug)]
struct Oom;

impl std::fmt::Display for Oom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("out of VRAM")
    }
}

impl std::error::Error for Oom {}

#[instrument(err, fields(strategy = "seedvr2"))]
fn instrumented_failure(fail: bool) -> Result<u32, Oom> {
    if fail { Err(Oom) } else { Ok(1) }
}

#[test]
fn instrument_err_marks_failure() {
    let vidperf = run(|| {
        let _ = instrumented_failure(true);
        let _ = instrumented_failure(false);
    });
    let records = vidperf.stats().records();
    assert_eq!(records[0].error_message.as_deref(), Some("out of VRAM"));
    assert!(records[1].success);
    assert_eq!(records[1].operation_type, "instrumented_failure");
    // `#[instrument]` records its arguments; they are metadata.
    assert_eq!(records[1].metadata["fail"], FieldValue::Bool(false));
}

#[instrument(fields(strategy = "ditvr"))]
fn panics_inside() {
    panic!("kernel launch failed");
}

#[test]
fn a_panic_unwinding_through_the_span_marks_failure() {
    let vidperf = run(|| {
        let caught = std::panic::catch_unwind(panics_inside);
        assert!(caught.is_err());
        let caught = std::panic::catch_unwind(|| {
            let span = info_span!("manual", strategy = "vsrm");
            let _guard = span.enter();
            panic!("boom");
        });
        assert!(caught.is_err());
    });
    let snap = vidperf.snapshot();
    assert_eq!(snap.summary.failures, 2);
    assert_eq!(snap.summary.active_operations, 0);
    assert!(
        snap.recent
            .iter()
            .all(|r| r.error_message.as_deref() == Some("panicked"))
    );
}

#[test]
fn durations_and_timestamps_are_consistent() {
    let vidperf = run(|| {
        info_span!("upscale", strategy = "vsrm")
            .in_scope(|| std::thread::sleep(Duration::from_millis(20)));
    });
    let r = &vidperf.stats().records()[0];
    assert!(r.duration_seconds >= 0.020, "{}", r.duration_seconds);
    let wall = r
        .end_time
        .duration_since(r.start_time)
        .expect("end after start");
    assert!((wall.as_secs_f64() - r.duration_seconds).abs() < 1e-6);
}

#[test]
fn spans_closed_on_another_thread_are_recorded() {
    let vidperf = run(|| {
        let span = info_span!("upscale", strategy = "vsrm", frames_processed = Empty);
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                span.record("frames_processed", 7);
                drop(span);
            })
        })
        .join()
        .expect("thread");
    });
    let snap = vidperf.snapshot();
    assert_eq!(snap.by_strategy["vsrm"].frames_processed_total, 7);
    assert_eq!(snap.summary.active_operations, 0);
}

/// A sink that keeps every finished span.
#[derive(Default)]
struct Collect(std::sync::Mutex<Vec<FinishedSpan>>, SpanInterest);

impl Sink for Collect {
    fn on_finish(&self, span: &FinishedSpan) {
        self.0.lock().expect("lock").push(span.clone());
    }
    fn interest(&self) -> SpanInterest {
        self.1
    }
}

#[test]
fn trace_ids_and_parents_link_nested_operations() {
    let all = Arc::new(Collect(Default::default(), SpanInterest::All));
    let (layer, _vidperf) = vidperf::builder()
        .without_env()
        .sink(all.clone())
        .build()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info_span!("api_request", strategy = "vsrm").in_scope(|| {
            info_span!("segment").in_scope(|| {
                info_span!("upscale", strategy = "vsrm").in_scope(|| {});
            });
        });
        info_span!("other", strategy = "vsrm").in_scope(|| {});
    });
    let spans = all.0.lock().expect("lock");
    let by_name = |n: &str| spans.iter().find(|s| s.name == n).expect(n);
    let (req, seg, up, other) = (
        by_name("api_request"),
        by_name("segment"),
        by_name("upscale"),
        by_name("other"),
    );
    assert!(
        seg.operation.is_none(),
        "ordinary spans reach sinks that ask for all spans"
    );
    assert_eq!(req.parent_span_id, None);
    assert_eq!(seg.parent_span_id, Some(req.span_id));
    assert_eq!(up.parent_span_id, Some(seg.span_id));
    assert_eq!(up.trace_id, req.trace_id);
    assert_ne!(other.trace_id, req.trace_id);
    assert_eq!(vidperf::span_ids(&Span::none()), None);
}

#[test]
fn a_panicking_sink_is_contained_and_counted() {
    struct Panics;
    impl Sink for Panics {
        fn on_finish(&self, _: &FinishedSpan) {
            panic!("sink bug");
        }
    }
    let vidperf = crate::run_with(vidperf::builder().sink(Panics), || {
        info_span!("upscale", strategy = "vsrm").in_scope(|| {});
    });
    let snap = vidperf.snapshot();
    assert_eq!(
        snap.summary.total_operations, 1,
        "the statistics sink still saw it"
    );
    assert_eq!(snap.health.sink_panics, 1);
}

#[test]
fn active_operations_are_listed_while_open() {
    let (layer, vidperf) = vidperf::builder().without_env().build().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let a = info_span!("upscale", strategy = "vsrm");
        let b = info_span!("analyse", strategy = "degradation_router");
        let snap = vidperf.snapshot();
        assert_eq!(snap.summary.active_operations, 2);
        assert_eq!(snap.active[0].strategy, "vsrm", "oldest first");
        drop((a, b));
        assert_eq!(vidperf.snapshot().summary.active_operations, 0);
    });
}

#[test]
fn running_operations_show_their_progress_once_they_record_frames_total() {
    let (layer, vidperf) = vidperf::builder().without_env().build().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let progress = |strategy: &str| {
            let snap = vidperf.snapshot();
            let a = snap
                .active
                .iter()
                .find(|a| a.strategy == strategy)
                .unwrap_or_else(|| panic!("{strategy} running: {:?}", snap.active));
            (a.frames_processed, a.frames_total)
        };
        // Declared with its total at creation.
        let at_start = info_span!(
            "upscale",
            strategy = "vsrm",
            frames_total = 48u64,
            frames_processed = tracing::field::Empty
        );
        // Declared empty, recorded later.
        let later = info_span!(
            "upscale",
            strategy = "ditvr",
            frames_total = tracing::field::Empty,
            frames_processed = tracing::field::Empty
        );
        // Manual tracking: names it never declared.
        let manual = vidperf::Operation::start("enhancement", "seedvr2");
        let plain = info_span!("analyse", strategy = "degradation_router");
        assert_eq!(progress("vsrm"), (Some(0), Some(48)));
        assert_eq!(progress("ditvr"), (None, None), "no total: no progress");
        assert_eq!(progress("seedvr2"), (None, None));
        at_start.record("frames_processed", 12u64);
        later.record("frames_processed", 5u64);
        later.record("frames_total", 20u64);
        manual.update("frames_total", 96u32);
        manual.update("frames_processed", 32u32);
        assert_eq!(progress("vsrm"), (Some(12), Some(48)));
        assert_eq!(
            progress("ditvr"),
            (Some(5), Some(20)),
            "frames done before the total count"
        );
        assert_eq!(progress("seedvr2"), (Some(32), Some(96)));
        at_start.record("frames_processed", 48u64);
        manual.update("frames_total", 100u32);
        assert_eq!(progress("vsrm"), (Some(48), Some(48)));
        assert_eq!(progress("seedvr2"), (Some(32), Some(100)), "a new total");
        assert_eq!(progress("degradation_router"), (None, None));
        let json = serde_json::to_value(vidperf.snapshot()).expect("json");
        let plain_json = json["active"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["strategy"] == "degradation_router"))
            .expect("listed");
        assert!(
            plain_json.get("frames_total").is_none(),
            "left out, not null: {plain_json}"
        );
        drop((at_start, later, plain));
        manual.finish();
    });
    let records = vidperf.stats().records();
    let seedvr2 = records
        .iter()
        .find(|r| r.strategy == "seedvr2")
        .expect("seedvr2");
    assert_eq!(seedvr2.frames_processed, Some(32));
    assert_eq!(
        seedvr2.metadata["frames_total"],
        vidperf::FieldValue::I64(100),
        "the finished operation keeps its total as metadata"
    );
    assert_eq!(vidperf.snapshot().summary.active_operations, 0);
}

#[test]
fn parents_hold_across_await_points_on_a_multi_thread_runtime() {
    use tracing::instrument::{Instrument, WithSubscriber};
    let all = Arc::new(Collect(Default::default(), SpanInterest::All));
    let (layer, _vidperf) = vidperf::builder()
        .without_env()
        .without_resource_monitor()
        .sink(all.clone())
        .build()
        .expect("build");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("runtime");
    tracing::dispatcher::with_default(&dispatch, || {
        runtime.block_on(async {
            let jobs: Vec<_> = (0..20u64)
                .map(|i| {
                    let job = async move {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        async { tokio::task::yield_now().await }
                            .instrument(info_span!("child", i))
                            .await;
                    }
                    .instrument(info_span!("job", strategy = "vsrm", i));
                    tokio::spawn(job.with_subscriber(dispatch.clone()))
                })
                .collect();
            for j in jobs {
                j.await.expect("job");
            }
        });
    });
    let spans = all.0.lock().expect("lock");
    let jobs: Vec<_> = spans.iter().filter(|s| s.name == "job").collect();
    let children: Vec<_> = spans.iter().filter(|s| s.name == "child").collect();
    assert_eq!((jobs.len(), children.len()), (20, 20));
    for child in children {
        let parent = jobs
            .iter()
            .find(|j| Some(j.span_id) == child.parent_span_id)
            .expect("every child has its job as parent");
        assert_eq!(
            parent.metadata, child.metadata,
            "the same `i`: the right job"
        );
        assert_eq!(parent.trace_id, child.trace_id);
    }
}
