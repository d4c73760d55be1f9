//! The bridge with the SDK's in-memory exporters: sampling is consistent per trace, and
//! every operation reaches the metrics and statistics whatever the sampler drops.

use std::sync::Arc;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{BatchConfigBuilder, InMemorySpanExporter, Sampler};
use tracing::info_span;
use tracing_subscriber::prelude::*;
use vidperf_core::{PerfLayer, Stats};
use vidperf_otel::{MetricsSink, TraceSink};

#[test]
fn unsampled_traces_still_count_in_metrics_and_statistics() {
    let spans = InMemorySpanExporter::default();
    let traces = Arc::new(TraceSink::with_exporter(
        spans.clone(),
        &Resource::builder_empty().build(),
        Sampler::TraceIdRatioBased(0.5),
        BatchConfigBuilder::default().build(),
    ));
    let metrics_out = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metrics_out.clone()).build())
        .build();
    let metrics = Arc::new(MetricsSink::new(provider));
    let stats = Arc::new(Stats::default());
    let layer = PerfLayer::builder()
        .sink(stats.clone())
        .sink(traces.clone())
        .sink(metrics.clone())
        .build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..200u64 {
            info_span!("request", strategy = "auto").in_scope(|| {
                let _child = info_span!("upscale", strategy = "vsrm", frames_processed = i);
            });
        }
    });
    traces.flush().expect("flush traces");
    metrics.flush().expect("flush metrics");

    // Statistics: everything.
    assert_eq!(stats.snapshot().summary.total_operations, 400);

    // Traces: about half of the traces, and always whole (parent and child together).
    let exported = spans.get_finished_spans().expect("spans");
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
        *per_trace.entry(s.span_context.trace_id()).or_insert(0) += 1;
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
        .find(|s| s.span_context.span_id() == child.parent_span_id)
        .expect("its parent");
    assert_eq!(parent.name, "request");

    // Metrics: all 400 operations, by strategy.
    let finished = metrics_out.get_finished_metrics().expect("metrics");
    let count: u64 = finished
        .iter()
        .flat_map(|rm| rm.scope_metrics())
        .flat_map(|sm| sm.metrics())
        .filter(|m| m.name() == "vidperf.operation.duration")
        .map(|m| match m.data() {
            AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                h.data_points().map(|p| p.count()).sum::<u64>()
            }
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    assert_eq!(count, 400, "metrics count every operation");
}

#[test]
fn remote_parents_and_follows_from_links_reach_the_span_data() {
    use vidperf_core::{SpanExt, TraceParent};
    let spans = InMemorySpanExporter::default();
    let traces = Arc::new(TraceSink::with_exporter(
        spans.clone(),
        &Resource::builder_empty().build(),
        Sampler::AlwaysOn,
        BatchConfigBuilder::default().build(),
    ));
    let layer = PerfLayer::builder().sink(traces.clone()).build();
    let remote: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        .parse()
        .expect("valid");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let job = info_span!("background_job", strategy = "vsrm");
        assert!(job.set_parent(remote));
        job.in_scope(|| info_span!("child").in_scope(|| {}));
        let batch = info_span!("batch");
        batch.follows_from(&job);
        assert_eq!(job.context().map(|c| c.trace_id), Some(remote.trace_id));
    });
    traces.flush().expect("flush");
    let exported = spans.get_finished_spans().expect("spans");
    let job = exported
        .iter()
        .find(|s| s.name == "background_job")
        .expect("job");
    assert_eq!(
        job.span_context.trace_id().to_string(),
        remote.trace_id.to_string()
    );
    assert_eq!(job.parent_span_id.to_string(), remote.span_id.to_string());
    assert!(job.parent_span_is_remote);
    let child = exported.iter().find(|s| s.name == "child").expect("child");
    assert_eq!(
        child.span_context.trace_id(),
        job.span_context.trace_id(),
        "children join the remote trace"
    );
    assert_eq!(child.parent_span_id, job.span_context.span_id());
    let batch = exported.iter().find(|s| s.name == "batch").expect("batch");
    assert_eq!(batch.links.links.len(), 1);
    assert_eq!(
        batch.links.links[0].span_context.span_id(),
        job.span_context.span_id()
    );
}
