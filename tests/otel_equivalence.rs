//! The bridge against tracing-opentelemetry: one program, run once under each, must give
//! the same OTLP spans — names, tree, trace grouping, kinds, error status, events,
//! links and every attribute tracing-opentelemetry sets, with the same types. Both are
//! compared as the collector receives them: tracing-opentelemetry's spans through the
//! SDK's OTLP transform, vidperf's as it encodes them. vidperf may add attributes
//! (resource peaks, `vidperf.*`); it must not lose or retype one.

#[path = "support/spans.rs"]
mod spans;

use std::collections::{BTreeMap, BTreeSet};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{Span as SpanData, span::SpanKind, status::StatusCode};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing::{Instrument as _, info_span};
use tracing_subscriber::prelude::*;

/// The program: a request tree with typed fields, an event, a failure, a job on
/// another thread, an async task, and a span that follows from another.
fn program() {
    let request = info_span!(
        "api_request",
        otel.kind = "server",
        strategy = "auto",
        job_id = "job-7",
        priority = 2i64
    );
    request.in_scope(|| {
        let vsrm = info_span!(
            "upscale_vsrm",
            strategy = "vsrm",
            operation = "enhancement",
            frames_processed = 48u64,
            quality_score = 0.875,
            input_width = 640i64,
            tiled = true
        );
        vsrm.in_scope(|| {
            tracing::info!(frame = 7u64, "decoded");
            info_span!("segment", index = 3u64).in_scope(|| {});
        });
        info_span!("upscale_ditvr", strategy = "ditvr", frames_processed = 0u64).in_scope(|| {
            tracing::error!(code = 2i64, "CUDA out of memory");
        });
        let current = tracing::Span::current();
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        std::thread::scope(|s| {
            s.spawn(|| {
                let _default = tracing::dispatcher::set_default(&dispatch);
                info_span!(
                    parent: &current,
                    "background_job",
                    otel.kind = "consumer",
                    strategy = "seedvr2"
                )
                .in_scope(|| {});
            });
        });
        let task = async {
            tracing::info!(stage = "async", "awaited");
        }
        .instrument(info_span!("async_stage", strategy = "seedvr2"));
        poll_to_completion(task);
        let batch = info_span!("batch_report", strategy = "auto");
        batch.follows_from(&vsrm);
        batch.in_scope(|| {});
    });
}

fn poll_to_completion<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn with_tracing_opentelemetry() -> Vec<SpanData> {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("equivalence"));
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), program);
    provider.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");
    group_spans_by_resource_and_scope(spans, &ResourceAttributesWithSchema::default())
        .into_iter()
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .collect()
}

fn with_vidperf() -> Vec<SpanData> {
    let (traces, memory) = spans::memory_sink();
    let (layer, _vidperf) = vidperf::builder()
        .without_env()
        .without_resource_monitor()
        .without_otlp()
        .sink(traces.clone())
        .build()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), program);
    traces.flush().expect("flush");
    memory.spans()
}

/// What must match, per span name.
#[derive(Debug, PartialEq)]
struct Shape {
    parent: Option<String>,
    kind: String,
    failed: bool,
    events: Vec<(String, BTreeMap<String, Value>)>,
    links: Vec<String>,
}

/// tracing-opentelemetry's own additions, which are not the program's fields.
fn is_bookkeeping(key: &str) -> bool {
    key.starts_with("code.")
        || key.starts_with("thread.")
        || matches!(key, "busy_ns" | "idle_ns" | "target" | "level")
}

fn fields(attributes: &[KeyValue]) -> BTreeMap<String, Value> {
    attributes
        .iter()
        .filter(|kv| !is_bookkeeping(kv.key.as_str()))
        .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?.value?)))
        .collect()
}

fn shapes(spans: &[SpanData]) -> BTreeMap<String, Shape> {
    let name_of = |id: &[u8]| {
        spans
            .iter()
            .find(|s| s.span_id == id)
            .map(|s| s.name.to_string())
    };
    spans
        .iter()
        .map(|s| {
            let shape = Shape {
                parent: name_of(&s.parent_span_id),
                kind: format!("{:?}", s.kind()),
                failed: s
                    .status
                    .as_ref()
                    .is_some_and(|st| st.code() == StatusCode::Error),
                events: s
                    .events
                    .iter()
                    .filter(|e| e.name != "exception")
                    .map(|e| (e.name.to_string(), fields(&e.attributes)))
                    .collect(),
                links: s.links.iter().filter_map(|l| name_of(&l.span_id)).collect(),
            };
            (s.name.to_string(), shape)
        })
        .collect()
}

/// Equal, or `theirs` is text and `ours` the same value typed (vidperf keeps an integer
/// an integer where tracing-opentelemetry sometimes writes it as a string).
fn same(ours: &Value, theirs: &Value) -> bool {
    let text = match ours {
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(f) => f.to_string(),
        Value::BoolValue(b) => b.to_string(),
        _ => String::new(),
    };
    ours == theirs || matches!(theirs, Value::StringValue(s) if !text.is_empty() && *s == text)
}

/// Span names grouped by trace.
fn traces(spans: &[SpanData]) -> BTreeSet<BTreeSet<String>> {
    let mut by_trace: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in spans {
        by_trace
            .entry(format!("{:?}", s.trace_id))
            .or_default()
            .insert(s.name.to_string());
    }
    by_trace.into_values().collect()
}

#[test]
fn the_bridge_exports_what_tracing_opentelemetry_exports() {
    let theirs = with_tracing_opentelemetry();
    let ours = with_vidperf();
    let names = |spans: &[SpanData]| -> BTreeSet<String> {
        spans.iter().map(|s| s.name.to_string()).collect()
    };
    assert_eq!(
        theirs.len(),
        7,
        "the program makes 7 spans: {:?}",
        names(&theirs)
    );
    assert_eq!(ours.len(), theirs.len());

    let (mut our_shapes, mut their_shapes) = (shapes(&ours), shapes(&theirs));
    // Event fields: the same keys; a value the same, or — where tracing-opentelemetry
    // writes an unsigned integer event field as text — vidperf's typed value.
    for (name, theirs) in &mut their_shapes {
        let ours = our_shapes.get_mut(name).expect("same span names");
        assert_eq!(ours.events.len(), theirs.events.len(), "{name}: events");
        for ((our_name, our_fields), (their_name, their_fields)) in
            ours.events.iter().zip(&theirs.events)
        {
            assert_eq!(our_name, their_name, "{name}: event names");
            assert_eq!(
                our_fields.keys().collect::<Vec<_>>(),
                their_fields.keys().collect::<Vec<_>>(),
                "{name}: event fields"
            );
            for (key, theirs) in their_fields {
                assert!(
                    same(&our_fields[key], theirs),
                    "{name}: event field {key}: ours {:?}, theirs {theirs:?}",
                    our_fields[key]
                );
            }
        }
        ours.events.clear();
        theirs.events.clear();
    }
    assert_eq!(our_shapes, their_shapes);
    assert_eq!(traces(&ours), traces(&theirs));
    let kind =
        |spans: &[SpanData], name: &str| spans.iter().find(|s| s.name == name).map(SpanData::kind);
    assert_eq!(kind(&ours, "api_request"), Some(SpanKind::Server));
    assert_eq!(kind(&ours, "background_job"), Some(SpanKind::Consumer));

    // Every attribute tracing-opentelemetry sets, with its type; vidperf names the
    // contract fields `strategy` and `operation` in its own namespace.
    for theirs in &theirs {
        let ours = ours
            .iter()
            .find(|s| s.name == theirs.name)
            .expect("same span");
        let ours = fields(&ours.attributes);
        for (key, value) in fields(&theirs.attributes) {
            let key = match key.as_str() {
                "strategy" => "vidperf.strategy".to_owned(),
                "operation" => "vidperf.operation".to_owned(),
                _ => key,
            };
            assert!(
                ours.get(&key).is_some_and(|ours| same(ours, &value)),
                "{}: attribute {key} = {value:?} (ours: {ours:?})",
                theirs.name
            );
        }
    }
    // Where both mark a failure, vidperf also says why, as OpenTelemetry's exception
    // event does.
    let failed = ours
        .iter()
        .find(|s| s.name == "upscale_ditvr")
        .expect("failed span");
    assert!(
        failed.events.iter().any(|e| e.name == "exception"
            && e.attributes.iter().any(|kv| kv.key == "exception.message")),
        "{failed:#?}"
    );
}
