//! The OpenTelemetry contract across services: an upstream's sampling decision and its
//! `tracestate` are honoured and passed on, hop after hop, and ratio-sampled chains keep
//! whole traces — checked at a collector.

#[path = "support/collector.rs"]
mod collector;
#[path = "support/rotel.rs"]
mod rotel;
mod support;

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use tracing::info_span;
use tracing_subscriber::prelude::*;
use vidperf::otlp::{Otel, OtelConfig, Root, Sampler};
use vidperf::{PerfLayer, SpanExt, Stats, TraceContext};

const UPSTREAM_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// The spans a capturing collector received, as (trace id hex, span name).
fn spans(received: &collector::Received) -> Vec<(String, String)> {
    received
        .lock()
        .expect("captured")
        .iter()
        .filter(|c| c.path == "/v1/traces")
        .flat_map(|c| {
            ExportTraceServiceRequest::decode(c.body.as_slice())
                .expect("OTLP protobuf")
                .resource_spans
        })
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .map(|s| {
            let hex: String = s.trace_id.iter().map(|b| format!("{b:02x}")).collect();
            (hex, s.name)
        })
        .collect()
}

fn distributed(endpoint: &str, flags: &str) -> String {
    let out = Command::new(support::example_binary("distributed"))
        .args([
            "--traceparent",
            &format!("00-{UPSTREAM_TRACE}-00f067aa0ba902b7-{flags}"),
            "--tracestate",
            "congo=t61rcWkgMzE",
        ])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .env_remove("OTEL_TRACES_SAMPLER")
        .env_remove("VIDPERF_HTTP_ADDR")
        .output()
        .expect("run the distributed example");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_upstream_that_did_not_sample_is_honoured_by_both_processes_and_passed_on() {
    let (endpoint, received) = collector::capturing_collector("200 OK");
    let stdout = distributed(&endpoint, "00");
    // What goes downstream from the worker: not sampled, the upstream's state behind
    // the frontend's own entry.
    let downstream = stdout
        .lines()
        .find_map(|l| l.strip_prefix("worker: downstream headers "))
        .expect("the worker's headers");
    assert!(
        downstream.contains(&format!("traceparent=00-{UPSTREAM_TRACE}-"))
            && downstream.contains("-00 "),
        "{downstream}"
    );
    assert!(
        downstream.ends_with("tracestate=vidperf=frontend,congo=t61rcWkgMzE"),
        "{downstream}"
    );
    // Neither process exported a span of that trace (the default is
    // parentbased_always_on); the metrics were still sent.
    let got = spans(&received);
    assert!(got.iter().all(|(t, _)| t != UPSTREAM_TRACE), "{got:?}");
    assert!(
        received
            .lock()
            .expect("captured")
            .iter()
            .any(|c| c.path == "/v1/metrics"),
        "metrics count every operation whatever the sampler"
    );
}

#[test]
fn a_sampled_upstream_and_its_tracestate_reach_a_real_collector_from_both_processes() {
    let Some(rotel) = rotel::Rotel::start() else {
        return;
    };
    let stdout = distributed(&rotel.endpoint(), "01");
    assert!(
        stdout.contains("-01 tracestate=vidperf=frontend,congo=t61rcWkgMzE"),
        "{stdout}"
    );
    let log = rotel.received(&["api_request", "background_job", "upscale"]);
    let blocks: Vec<&str> = log.split("Span #").skip(1).collect();
    assert!(blocks.len() >= 3, "{log}");
    for block in blocks {
        assert!(
            block.contains(&format!("Trace ID       : {UPSTREAM_TRACE}")),
            "{block}"
        );
        assert!(
            block.contains("TraceState     : vidperf=frontend,congo=t61rcWkgMzE"),
            "every span carries the tracestate it was made under: {block}"
        );
    }
}

#[test]
fn ratio_sampled_chains_keep_whole_traces() {
    let (endpoint, received) = collector::capturing_collector("200 OK");
    let start = |sampler: Sampler| {
        let config = OtelConfig::default()
            .with_endpoint(endpoint.clone())
            .with_sampler(sampler.clone())
            .with_max_queue_size(50_000)
            .with_metrics_interval(Duration::from_secs(3600));
        let stats = Arc::new(Stats::default());
        let otel = Otel::start(&config, &stats)
            .expect("start")
            .expect("enabled");
        let layer = PerfLayer::builder()
            .sink(stats.clone())
            .sink(otel.traces().clone())
            .sampler(sampler)
            .build();
        (otel, stats, tracing_subscriber::registry().with(layer))
    };
    // Upstream decides by trace id; downstream follows its parent.
    let (up, up_stats, up_subscriber) = start(Sampler::TraceIdRatio(0.3));
    let (down, down_stats, down_subscriber) = start(Sampler::ParentBased(Root::TraceIdRatio(0.3)));
    let n = 10_000;
    let mut carriers = Vec::with_capacity(n);
    tracing::subscriber::with_default(up_subscriber, || {
        for _ in 0..n {
            let span = info_span!("request", strategy = "gateway");
            let mut headers = HashMap::new();
            span.context().expect("tracked").inject(&mut headers);
            carriers.push(headers);
        }
    });
    std::thread::spawn(move || {
        tracing::subscriber::with_default(down_subscriber, || {
            for headers in &carriers {
                let job = info_span!("job", strategy = "vsrm");
                job.set_parent(TraceContext::extract(headers).expect("valid"));
                job.in_scope(|| drop(info_span!("tile", strategy = "vsrm")));
            }
        });
    })
    .join()
    .expect("downstream");
    up.flush().expect("flush");
    down.flush().expect("flush");
    let mut per_trace: HashMap<String, usize> = HashMap::new();
    for (trace, _) in spans(&received) {
        *per_trace.entry(trace).or_default() += 1;
    }
    assert!(
        per_trace.values().all(|n| *n == 3),
        "every trace whole (request, job, tile) or absent: {:?}",
        per_trace.values().filter(|n| **n != 3).count()
    );
    // 30% of 10,000 traces: the binomial 99.99% interval is about ±180.
    assert!(
        (2_800..=3_200).contains(&per_trace.len()),
        "{}",
        per_trace.len()
    );
    assert_eq!(up_stats.snapshot().summary.total_operations, n as u64);
    assert_eq!(down_stats.snapshot().summary.total_operations, 2 * n as u64);
    up.shutdown(Duration::from_secs(5)).expect("shutdown");
    down.shutdown(Duration::from_secs(5)).expect("shutdown");
}
