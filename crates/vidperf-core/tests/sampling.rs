//! The sampling decision is made once per local root, with the parent's flags, and
//! inherited by every span under it (children on other threads too); `set_parent`
//! re-decides with the remote parent; failures carry `error.type`.

use std::sync::{Arc, Mutex};

use tracing::info_span;
use tracing_subscriber::prelude::*;
use vidperf_core::propagation::{TraceContext, TraceFlags, TraceState};
use vidperf_core::sampler::{Root, Sampler};
use vidperf_core::{FinishedSpan, PerfLayer, Sink, SpanExt, SpanInterest, Stats};

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<FinishedSpan>>>);

impl Sink for Collect {
    fn on_finish(&self, span: &FinishedSpan) {
        self.0.lock().expect("spans").push(span.clone());
    }
    fn interest(&self) -> SpanInterest {
        SpanInterest::All
    }
}

impl Collect {
    fn take(&self) -> Vec<FinishedSpan> {
        std::mem::take(&mut self.0.lock().expect("spans"))
    }
}

fn run(sampler: Sampler, f: impl FnOnce()) -> (Vec<FinishedSpan>, Arc<Stats>) {
    let spans = Collect::default();
    let stats = Arc::new(Stats::default());
    let layer = PerfLayer::builder()
        .sink(stats.clone())
        .sink(spans.clone())
        .sampler(sampler)
        .build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    (spans.take(), stats)
}

const NOT_SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
const SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn an_unsampled_remote_parent_unsamples_the_whole_local_trace_under_parent_based() {
    let mut outgoing = std::collections::HashMap::new();
    let (spans, stats) = run(Sampler::default(), || {
        let job = info_span!("job", strategy = "vsrm");
        let upstream: TraceContext = NOT_SAMPLED.parse().expect("valid");
        let upstream = upstream.with_state(TraceState::parse("congo=t61rcWkgMzE").expect("state"));
        assert!(job.set_parent(upstream));
        job.in_scope(|| {
            let child = info_span!("upscale", strategy = "vsrm");
            // A child on another thread inherits the decision through its parent.
            let handle = std::thread::spawn({
                let child = child.clone();
                let dispatch = tracing::dispatcher::get_default(Clone::clone);
                move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        child.in_scope(|| {
                            let _grandchild = info_span!("tile", strategy = "vsrm");
                        })
                    })
                }
            });
            handle.join().expect("thread");
            child.in_scope(|| {
                if let Some(cx) = tracing::Span::current().context() {
                    cx.inject(&mut outgoing);
                }
            });
        });
    });
    assert_eq!(spans.len(), 3);
    for span in &spans {
        assert!(!span.flags.is_sampled(), "{}: {:?}", span.name, span.flags);
        assert_eq!(
            span.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(span.trace_state.get("congo"), Some("t61rcWkgMzE"));
    }
    let root = spans.iter().find(|s| s.name == "job").expect("root");
    assert!(spans.iter().all(|s| s.local_root == root.span_id));
    assert_eq!(root.parent_sampled, Some(false));
    // What goes downstream says "not sampled", with the state.
    assert!(outgoing["traceparent"].ends_with("-00"), "{outgoing:?}");
    assert_eq!(outgoing["tracestate"], "congo=t61rcWkgMzE");
    // The statistics count every operation whatever the sampler decides.
    assert_eq!(stats.snapshot().summary.total_operations, 3);
}

#[test]
fn a_sampled_remote_parent_samples_and_always_off_samples_nothing() {
    let (spans, _) = run(Sampler::default(), || {
        let job = info_span!("job", strategy = "vsrm");
        assert!(job.set_parent(SAMPLED.parse().expect("valid")));
        job.in_scope(|| drop(info_span!("child", strategy = "vsrm")));
    });
    assert!(spans.iter().all(|s| s.flags.is_sampled()));
    let (spans, stats) = run(Sampler::AlwaysOff, || {
        for _ in 0..10 {
            let root = info_span!("job", strategy = "vsrm");
            root.in_scope(|| drop(info_span!("child", strategy = "vsrm")));
            let cx = root.context().expect("tracked");
            assert!(!cx.is_sampled());
            assert!(cx.flags.is_random(), "our trace ids are random");
        }
    });
    assert!(spans.iter().all(|s| !s.flags.is_sampled()));
    assert_eq!(stats.snapshot().summary.total_operations, 20);
    // Parent-based with a ratio root: children follow their root's decision, and the
    // remote random flag travels unchanged.
    let (spans, _) = run(Sampler::ParentBased(Root::TraceIdRatio(0.5)), || {
        for _ in 0..200 {
            info_span!("job", strategy = "vsrm").in_scope(|| drop(info_span!("c", strategy = "x")));
        }
        let job = info_span!("remote", strategy = "vsrm");
        let mut parent: TraceContext = SAMPLED.parse().expect("valid");
        parent.flags = TraceFlags::SAMPLED;
        job.set_parent(parent);
        assert!(
            !job.context().expect("tracked").flags.is_random(),
            "not random upstream"
        );
    });
    let roots: std::collections::HashMap<_, _> = spans
        .iter()
        .filter(|s| s.is_local_root())
        .map(|s| (s.span_id, s.flags.is_sampled()))
        .collect();
    for s in &spans {
        assert_eq!(
            Some(&s.flags.is_sampled()),
            roots.get(&s.local_root),
            "{}",
            s.name
        );
    }
    let sampled = roots.values().filter(|v| **v).count();
    assert!(
        (60..=140).contains(&sampled),
        "{sampled} of 200 roots sampled"
    );
}

#[test]
fn failures_carry_their_error_type() {
    let (spans, _) = run(Sampler::default(), || {
        let _ok = info_span!("fine", strategy = "vsrm");
        let failed = info_span!("broken", strategy = "vsrm", error = tracing::field::Empty);
        failed.record("error", "out of memory");
        drop(failed);
        let typed = info_span!("typed", strategy = "vsrm");
        let result: Result<(), std::io::Error> = Err(std::io::Error::other("disk"));
        vidperf_core::record_outcome(&typed, &result);
        drop(typed);
        let own = info_span!("own", strategy = "vsrm");
        vidperf_core::record_field(&own, "error.type", "CUDA_ERROR_OUT_OF_MEMORY".into());
        vidperf_core::record_error(&own, "cuda");
    });
    let by_name = |n: &str| spans.iter().find(|s| s.name == n).expect(n);
    assert_eq!(by_name("fine").error_type, None);
    assert_eq!(by_name("broken").error_type.as_deref(), Some("_OTHER"));
    assert_eq!(
        by_name("typed").error_type.as_deref(),
        Some("std::io::error::Error")
    );
    assert_eq!(
        by_name("own").error_type.as_deref(),
        Some("CUDA_ERROR_OUT_OF_MEMORY")
    );
    assert!(
        by_name("own")
            .metadata
            .iter()
            .all(|(k, _)| k != "error.type"),
        "error.type is not metadata"
    );
}
