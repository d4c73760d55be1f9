//! OTLP export end to end, against a real collector: rotel (installed from PyPI by
//! scripts/test.sh), started on loopback ports with its debug log, receiving what the
//! bridge sends over HTTP/protobuf.

use std::process::Command;
use std::time::{Duration, Instant};

use tracing::info_span;
use tracing_subscriber::prelude::*;
use vidperf::otlp::OtelConfig;

#[path = "support/promtool.rs"]
mod promtool;
#[path = "support/rotel.rs"]
mod rotel;
mod support;
use rotel::{Rotel, free_port};

#[test]
fn spans_and_metrics_arrive_at_a_real_collector_with_typed_attributes() {
    let Some(rotel) = Rotel::start() else { return };
    let config = OtelConfig::default()
        .with_endpoint(rotel.endpoint())
        .with_metrics_interval(Duration::from_millis(500));
    let (layer, vidperf) = vidperf::builder()
        .without_env()
        .otlp(config)
        .build()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info_span!(
            "api_request",
            strategy = "auto",
            operation = "api_request",
            job_id = "job-0042"
        )
        .in_scope(|| {
            let span = info_span!(
                "upscale_vsrm",
                strategy = "vsrm",
                operation = "enhancement",
                frames_processed = 48u64,
                quality_score = 0.875,
                input_width = 640,
                output_width = 1280,
            );
            span.in_scope(|| {
                info_span!("segment", index = 3).in_scope(|| {});
                tracing::info!(frame = 7, "decoded");
            });
        });
        let _failed = info_span!(
            "upscale_ditvr",
            strategy = "ditvr",
            error = "CUDA out of memory"
        );
    });
    let report = vidperf.shutdown(Duration::from_secs(10));
    assert!(report.is_ok(), "{report:?}");
    let health = vidperf
        .snapshot()
        .health
        .part::<vidperf::otlp::ExportHealth>("export")
        .expect("export health");
    assert_eq!(
        (
            health.emitted,
            health.exported,
            health.failed,
            health.dropped
        ),
        (4, 4, 0, 0)
    );

    let log = rotel.received(&[
        "upscale_vsrm",
        "upscale_ditvr",
        "segment",
        "api_request",
        "vidperf.operation.duration",
        "job-0042",
    ]);
    assert!(
        log.contains("CUDA out of memory"),
        "error status/exception:\n{log}"
    );
    if std::env::var_os("VIDPERF_SHOW_ROTEL_LOG").is_some() {
        eprintln!("{log}");
    }
    // Integers arrive as OTLP ints and floats as doubles, not strings.
    assert!(
        log.contains("Int(48)") || log.contains("IntValue(48)"),
        "frames_processed typed as int:\n{log}"
    );
    assert!(
        log.contains("Double(0.875)") || log.contains("DoubleValue(0.875)"),
        "quality typed as double:\n{log}"
    );

    // The tree: segment → upscale_vsrm → api_request, one trace.
    let span = |name: &str| span_fields(&log, name);
    let (request_trace, request_parent, request_id) = span("api_request");
    let (vsrm_trace, vsrm_parent, vsrm_id) = span("upscale_vsrm");
    let (segment_trace, segment_parent, _) = span("segment");
    assert_eq!(request_parent, "", "the request is a root");
    assert_eq!(vsrm_parent, request_id);
    assert_eq!(segment_parent, vsrm_id);
    assert!(request_trace == vsrm_trace && vsrm_trace == segment_trace);
}

#[test]
fn the_shutdown_guard_flushes_pending_spans_when_dropped() {
    let Some(rotel) = Rotel::start() else { return };
    // The batch processor exports every 5 s by default: without the guard's flush this
    // span would still be queued when the assertions run.
    let config = OtelConfig::default().with_endpoint(rotel.endpoint());
    let (layer, vidperf) = vidperf::builder()
        .without_env()
        .without_resource_monitor()
        .otlp(config)
        .build()
        .expect("build");
    {
        let _guard = vidperf.shutdown_guard(Duration::from_secs(10));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            let _span = info_span!("guarded_upscale", strategy = "vsrm");
        });
    }
    let export = vidperf
        .snapshot()
        .health
        .part::<vidperf::otlp::ExportHealth>("export")
        .expect("export health");
    assert_eq!((export.emitted, export.exported), (1, 1));
    rotel.received(&["guarded_upscale"]);
}

#[test]
fn with_the_collector_down_the_program_finishes_and_reports_what_was_lost() {
    // Nothing listens on this port.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let config = OtelConfig::default()
        .with_endpoint(endpoint)
        .with_export_timeout(Duration::from_millis(500));
    let (layer, vidperf) = vidperf::builder()
        .without_env()
        .without_resource_monitor()
        .otlp(config)
        .build()
        .expect("build");
    let started = Instant::now();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..200u64 {
            let _span = info_span!("upscale", strategy = "vsrm", frames_processed = i);
        }
    });
    let spans_took = started.elapsed();
    assert!(
        spans_took < Duration::from_secs(5),
        "the host never waits on the exporter: {spans_took:?}"
    );
    let snapshot = vidperf.snapshot();
    assert_eq!(
        snapshot.summary.total_operations, 200,
        "statistics are complete"
    );
    let started = Instant::now();
    let err = vidperf
        .shutdown(Duration::from_secs(5))
        .expect_err("spans were lost");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "shutdown is bounded: {:?}",
        started.elapsed()
    );
    // The spans were still queued when the shutdown began: lost by the shutdown, which
    // fails and says how many.
    let text = err.to_string();
    assert!(text.contains("lost 200 spans at shutdown"), "{text}");
    assert_eq!(err.report.spans_lost_at_shutdown, 200, "{:?}", err.report);
    assert_eq!(err.report.spans_exported, Some(0));
    let export = vidperf
        .snapshot()
        .health
        .part::<vidperf::otlp::ExportHealth>("export")
        .expect("export health");
    assert_eq!(export.emitted, 200);
    assert_eq!(export.exported, 0);
    assert_eq!(
        export.failed + export.dropped,
        200,
        "every span accounted for"
    );
    // The loss is visible on /metrics too.
    let metrics = vidperf::http::encode_metrics(&vidperf.stats().metrics());
    assert!(
        metrics.contains("vidperf_export_spans_total{outcome=\"emitted\"} 200"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vidperf_export_spans_total{outcome=\"exported\"} 0"),
        "{metrics}"
    );
    for line in [
        format!(
            "vidperf_export_spans_total{{outcome=\"failed\"}} {}",
            export.failed
        ),
        format!(
            "vidperf_export_spans_dropped_total{{reason=\"queue_full\"}} {}",
            export.dropped_queue_full
        ),
        format!(
            "vidperf_export_spans_dropped_total{{reason=\"shutdown\"}} {}",
            export.dropped_shutdown
        ),
        "vidperf_export_spans_queued 0".to_owned(),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    promtool::check_metrics(&metrics);
}

/// The fields of the span called `name` in rotel's detailed log.
fn span_fields(log: &str, name: &str) -> (String, String, String) {
    let block: Vec<&str> = log
        .split("Span #")
        .find(|b| {
            b.lines()
                .any(|l| l.trim() == format!("Name           : {name}"))
        })
        .unwrap_or_else(|| panic!("no span {name}:\n{log}"))
        .lines()
        .collect();
    let field = |key: &str| {
        block
            .iter()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(key)
                    .map(|v| v.trim_start_matches([' ', ':']).trim().to_owned())
            })
            .unwrap_or_default()
    };
    (field("Trace ID"), field("Parent ID"), field("ID "))
}

#[test]
fn a_job_handed_to_another_process_keeps_its_request_as_parent() {
    let Some(rotel) = Rotel::start() else { return };
    let out = Command::new(support::example_binary("distributed"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", rotel.endpoint())
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .env_remove("VIDPERF_HTTP_ADDR")
        .output()
        .expect("run the distributed example");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = rotel.received(&["api_request", "background_job", "upscale"]);
    let (request_trace, _, request_id) = span_fields(&log, "api_request");
    let (job_trace, job_parent, job_id) = span_fields(&log, "background_job");
    let (upscale_trace, upscale_parent, _) = span_fields(&log, "upscale");
    assert_eq!(
        job_trace, request_trace,
        "the worker joined the frontend's trace"
    );
    assert_eq!(
        job_parent, request_id,
        "the job's parent is the request, in another process"
    );
    assert_eq!((upscale_trace, upscale_parent), (request_trace, job_id));
    assert!(
        log.contains("SPAN_KIND_SERVER") && log.contains("SPAN_KIND_CONSUMER"),
        "otel.kind honoured"
    );
}

#[cfg(feature = "otlp-grpc")]
fn one_worker_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

#[cfg(feature = "otlp-grpc")]
fn grpc_vidperf(config: OtelConfig) -> vidperf::Builder {
    vidperf::builder()
        .without_env()
        .without_resource_monitor()
        .otlp(config)
}

#[cfg(feature = "otlp-grpc")]
#[test]
fn over_grpc_from_inside_a_tokio_runtime_and_a_clear_error_outside_one() {
    use vidperf::otlp::Protocol;
    let Some(rotel) = Rotel::start() else { return };
    let config = OtelConfig::default()
        .with_protocol(Protocol::Grpc)
        .with_endpoint(rotel.grpc_endpoint())
        .with_metrics_interval(Duration::from_millis(500));
    // Outside a runtime tonic would panic: the build says why instead.
    match grpc_vidperf(config.clone()).build() {
        Ok(_) => panic!("gRPC without a runtime must not build"),
        Err(e) => assert!(e.to_string().contains("needs a tokio runtime"), "{e}"),
    }

    let runtime = one_worker_runtime();
    let (layer, vidperf) = {
        let _entered = runtime.enter();
        grpc_vidperf(config)
            .build()
            .expect("build inside the runtime")
    };
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    // A span on a plain thread, and one in an async task on the runtime.
    tracing::dispatcher::with_default(&dispatch, || {
        let _op = info_span!(
            "grpc_plain_thread",
            strategy = "vsrm",
            frames_processed = 12u64
        );
    });
    runtime
        .block_on(runtime.spawn(async move {
            let _default = tracing::dispatcher::set_default(&dispatch);
            let _op = info_span!(
                "grpc_async_task",
                strategy = "seedvr2",
                frames_processed = 8u64
            );
        }))
        .expect("task");
    let report = vidperf.shutdown(Duration::from_secs(10));
    assert!(report.is_ok(), "{report:?}");
    let export = vidperf
        .snapshot()
        .health
        .part::<vidperf::otlp::ExportHealth>("export")
        .expect("export health");
    assert_eq!((export.emitted, export.exported), (2, 2), "{export:?}");
    rotel.received(&[
        "grpc_plain_thread",
        "grpc_async_task",
        "vidperf.operation.duration",
    ]);
}

#[cfg(feature = "otlp-grpc")]
#[test]
fn over_grpc_a_runtime_gone_before_shutdown_loses_spans_visibly_without_hanging() {
    use vidperf::otlp::Protocol;
    let Some(rotel) = Rotel::start() else { return };
    let config = OtelConfig::default()
        .with_protocol(Protocol::Grpc)
        .with_endpoint(rotel.grpc_endpoint())
        .with_export_timeout(Duration::from_secs(2));
    let runtime = one_worker_runtime();
    let (layer, vidperf) = {
        let _entered = runtime.enter();
        grpc_vidperf(config)
            .build()
            .expect("build inside the runtime")
    };
    // The application shuts its runtime down first: tonic's connection task is gone.
    runtime.shutdown_timeout(Duration::from_secs(1));
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..10u64 {
            let _op = info_span!("after_runtime", strategy = "vsrm", frames_processed = i);
        }
    });
    let started = Instant::now();
    let result = vidperf.shutdown(Duration::from_secs(5));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "shutdown is bounded: {:?}",
        started.elapsed()
    );
    let export = vidperf
        .snapshot()
        .health
        .part::<vidperf::otlp::ExportHealth>("export")
        .expect("export health");
    eprintln!("after the runtime was shut down: {export:?}, {result:?}");
    assert_eq!(export.emitted, 10);
    assert_eq!(
        export.exported + export.failed + export.dropped,
        10,
        "every span accounted for: {export:?}"
    );
    assert_eq!(
        result.is_ok(),
        export.exported == 10,
        "shutdown reports any loss: {result:?} {export:?}"
    );
    assert_eq!(vidperf.snapshot().summary.total_operations, 10);
}
