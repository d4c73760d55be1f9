//! Faults and abuse: the host application never notices, nothing is lost silently.
//! (Each test that changes process-wide state — the panic hook — says so; nextest runs
//! every test in its own process.)

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::info_span;
use tracing_subscriber::prelude::*;
use vidperf::otlp::OtelConfig;

#[path = "support/collector.rs"]
mod collector;
use collector::{Script, scripted_collector, scripted_collector_on};
#[path = "support/rotel.rs"]
mod rotel;

fn quiet_panics() {
    // Process-wide: the default hook would print every caught panic.
    std::panic::set_hook(Box::new(|_| {}));
}

fn local(builder: vidperf::Builder) -> (tracing::Dispatch, vidperf::Vidperf) {
    let (layer, vidperf) = builder
        .without_env()
        .without_resource_monitor()
        .build()
        .expect("build");
    (
        tracing::Dispatch::new(tracing_subscriber::registry().with(layer)),
        vidperf,
    )
}

#[test]
fn ten_thousand_caught_panics_are_all_failures_and_leave_nothing_active() {
    quiet_panics();
    let (dispatch, vidperf) = local(vidperf::builder());
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..10_000u64 {
            let caught = std::panic::catch_unwind(|| {
                let _op = info_span!("upscale", strategy = "vsrm", frames_processed = i).entered();
                panic!("kernel fault {i}");
            });
            assert!(caught.is_err());
        }
    });
    let snap = vidperf.snapshot();
    assert_eq!(
        (snap.summary.total_operations, snap.summary.failures),
        (10_000, 10_000)
    );
    assert_eq!(snap.summary.active_operations, 0);
}

struct PanicsInDebug;

impl std::fmt::Debug for PanicsInDebug {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("Debug impl bug")
    }
}

#[test]
fn a_debug_impl_that_panics_does_not_reach_the_host() {
    quiet_panics();
    let (dispatch, vidperf) = local(vidperf::builder());
    let host = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tracing::dispatcher::with_default(&dispatch, || {
            let span = info_span!("upscale", strategy = "vsrm", weird = tracing::field::Empty);
            span.record("weird", tracing::field::debug(PanicsInDebug));
            let _other = info_span!("analyse", strategy = "router", bad = ?PanicsInDebug);
        });
    }));
    assert!(host.is_ok(), "the panic escaped into the host");
    let records = vidperf.stats().records();
    assert_eq!(records.len(), 2, "both operations recorded");
    assert!(records.iter().all(|r| {
        r.metadata
            .values()
            .any(|v| v.as_str() == Some("<Debug panicked>"))
    }));
}

#[test]
fn forgotten_spans_keep_vidperfs_memory_bounded_and_counted() {
    let (dispatch, vidperf) = local(vidperf::builder().max_active(1_000));
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..5_000 {
            // Never closed: the registry keeps it, vidperf counts it.
            // reason: leaking spans is exactly the fault under test.
            #[allow(clippy::mem_forget)]
            std::mem::forget(info_span!("leaked", strategy = "vsrm"));
        }
        let _fine = info_span!("fine", strategy = "vsrm");
    });
    let snap = vidperf.snapshot();
    assert_eq!(
        snap.summary.active_operations, 5_000,
        "the count stays exact"
    );
    assert_eq!(snap.active.len(), 100, "the listing is bounded");
    assert_eq!(
        snap.health.active_untracked, 4_000,
        "over the cap: counted, not stored"
    );
    assert_eq!(snap.summary.total_operations, 1);
}

#[test]
fn five_hundred_twelve_short_lived_threads_count_exactly() {
    let (dispatch, vidperf) = local(vidperf::builder());
    for wave in 0..8 {
        let threads: Vec<_> = (0..64)
            .map(|t| {
                let dispatch = dispatch.clone();
                std::thread::spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        for i in 0..50u64 {
                            let strategy =
                                ["vsrm", "seedvr2", "ditvr"][(t + i as usize + wave) % 3];
                            let _op = info_span!("op", strategy, frames_processed = 1u64);
                        }
                    });
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
    }
    let snap = vidperf.snapshot();
    assert_eq!(snap.summary.total_operations, 512 * 50);
    assert_eq!(
        snap.by_strategy
            .values()
            .map(|s| s.frames_processed_total)
            .sum::<u64>(),
        512 * 50
    );
    assert_eq!(snap.summary.active_operations, 0);
}

/// Runs 300 operations against `endpoint` in batches and returns (time spent in the
/// spans, the export health after shutdown, the shutdown result).
fn run_against(
    endpoint: String,
) -> (
    Duration,
    vidperf::otlp::ExportHealth,
    Result<vidperf::ShutdownReport, vidperf::ShutdownError>,
) {
    let config = OtelConfig::default()
        .with_endpoint(endpoint)
        .with_export_timeout(Duration::from_millis(500));
    let (dispatch, vidperf) = local(vidperf::builder().otlp(config));
    let mut in_spans = Duration::ZERO;
    tracing::dispatcher::with_default(&dispatch, || {
        for batch in 0..3 {
            let started = Instant::now();
            for i in 0..100u64 {
                let _op = info_span!("upscale", strategy = "vsrm", frames_processed = i, batch);
            }
            in_spans += started.elapsed();
            let _ = vidperf.flush();
        }
    });
    let result = vidperf.shutdown(Duration::from_secs(5));
    (
        in_spans,
        vidperf
            .snapshot()
            .health
            .part::<vidperf::otlp::ExportHealth>("export")
            .expect("export health"),
        result,
    )
}

#[test]
fn collector_faults_never_block_the_host_and_every_span_is_accounted_for() {
    let healthy = scripted_collector(|_| ("200 OK", "", Duration::ZERO));
    let (healthy_time, healthy_export, healthy_result) = run_against(healthy.0);
    assert!(healthy_result.is_ok());
    assert_eq!(
        (healthy_export.emitted, healthy_export.exported),
        (300, 300)
    );

    let faults: [(&str, Script); 5] = [
        ("503 then 200", |n| {
            if n < 2 {
                ("503 Service Unavailable", "", Duration::ZERO)
            } else {
                ("200 OK", "", Duration::ZERO)
            }
        }),
        ("429 with Retry-After", |n| {
            if n < 2 {
                (
                    "429 Too Many Requests",
                    "Retry-After: 1\r\n",
                    Duration::ZERO,
                )
            } else {
                ("200 OK", "", Duration::ZERO)
            }
        }),
        ("400 always", |_| ("400 Bad Request", "", Duration::ZERO)),
        ("slow answers", |_| {
            ("200 OK", "", Duration::from_millis(300))
        }),
        ("accepts, never answers", |_| {
            ("200 OK", "", Duration::from_secs(600))
        }),
    ];
    for (name, script) in faults {
        let (endpoint, requests) = scripted_collector(script);
        let (time, export, result) = run_against(endpoint);
        assert!(
            requests.load(Ordering::SeqCst) > 0,
            "{name}: the collector was called"
        );
        assert_eq!(export.emitted, 300, "{name}");
        assert_eq!(
            export.exported + export.failed + export.dropped,
            300,
            "{name}: every span accounted for: {export:?}"
        );
        // The shutdown reports every lost span, and fails only for what it lost itself
        // (or for a collector that kept it waiting past its deadline).
        let report = match &result {
            Ok(report) => report.clone(),
            Err(e) => e.report.clone(),
        };
        assert_eq!(
            report.spans_lost_before + report.spans_lost_at_shutdown,
            export.failed + export.dropped,
            "{name}: the shutdown reports every lost span: {report:?}"
        );
        assert_eq!(
            result.is_ok(),
            report.spans_lost_at_shutdown == 0,
            "{name}: shutdown fails only for what it lost itself: {result:?}"
        );
        // Generous bound, as a ratio to the healthy run in this same test: the host's
        // spans never wait for the exporter.
        assert!(
            time < healthy_time * 2 + Duration::from_millis(50),
            "{name}: spans took {time:?} vs {healthy_time:?} healthy"
        );
    }
}

#[test]
fn export_resumes_when_a_collector_comes_up_after_being_down() {
    let port = rotel::free_port();
    let config = OtelConfig::default()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_export_timeout(Duration::from_millis(500));
    let (dispatch, vidperf) = local(vidperf::builder().otlp(config));
    let batch = |label: &str| {
        tracing::dispatcher::with_default(&dispatch, || {
            for i in 0..100u64 {
                let _op = info_span!("upscale", strategy = "vsrm", frames_processed = i, label);
            }
        });
        let _ = vidperf.flush();
    };
    batch("while down");
    let down = vidperf
        .snapshot()
        .health
        .part::<vidperf::otlp::ExportHealth>("export")
        .expect("export health");
    assert_eq!(
        (down.emitted, down.exported),
        (100, 0),
        "nothing delivered while down: {down:?}"
    );
    let (_, requests) = scripted_collector_on(port, |_| ("200 OK", "", Duration::ZERO));
    batch("after recovery");
    let up = vidperf
        .snapshot()
        .health
        .part::<vidperf::otlp::ExportHealth>("export")
        .expect("export health");
    assert!(
        requests.load(Ordering::SeqCst) > 0,
        "the exporter reached the collector once it was up"
    );
    assert_eq!(
        (up.emitted, up.exported),
        (200, 100),
        "the second batch was delivered: {up:?}"
    );
    assert_eq!(up.exported + up.failed + up.dropped, 200);
    // The first batch was lost while running: reported, but nothing went wrong in the
    // shutdown itself.
    let report = vidperf
        .shutdown(Duration::from_secs(5))
        .expect("a clean shutdown");
    assert_eq!(
        (
            report.spans_lost_before,
            report.spans_lost_at_shutdown,
            report.spans_exported
        ),
        (100, 0, Some(100)),
        "{report:?}"
    );
}

#[test]
fn a_real_collector_going_down_and_coming_back_mid_run() {
    let (grpc, http) = (rotel::free_port(), rotel::free_port());
    let config = OtelConfig::default()
        .with_endpoint(format!("http://127.0.0.1:{http}"))
        .with_export_timeout(Duration::from_millis(500))
        .with_metrics_interval(Duration::from_millis(300));
    let (dispatch, vidperf) = local(vidperf::builder().otlp(config));
    // 100 operations labelled with the phase, then a flush; the time spent in spans.
    let phase = |label: &str| {
        let started = Instant::now();
        tracing::dispatcher::with_default(&dispatch, || {
            for i in 0..100u64 {
                let _op = info_span!(
                    "flapping",
                    strategy = "vsrm",
                    frames_processed = i,
                    phase = label
                );
            }
        });
        let took = started.elapsed();
        let _ = vidperf.flush();
        (
            took,
            vidperf
                .snapshot()
                .health
                .part::<vidperf::otlp::ExportHealth>("export")
                .expect("export health"),
        )
    };

    let Some(first) = rotel::Rotel::start_on(grpc, http) else {
        return;
    };
    let (up_time, up) = phase("phase-up-one");
    assert_eq!((up.emitted, up.exported), (100, 100), "{up:?}");
    first.received(&["phase-up-one"]);

    drop(first); // the collector process is killed mid-run
    let (down_time, down) = phase("phase-down");
    assert_eq!(
        (down.emitted, down.exported, down.failed + down.dropped),
        (200, 100, 100),
        "the batch sent while down is counted as lost: {down:?}"
    );
    assert!(
        down_time < up_time * 2 + Duration::from_millis(50),
        "spans took {down_time:?} while down vs {up_time:?} while up"
    );

    let Some(second) = rotel::Rotel::start_on(grpc, http) else {
        return;
    };
    let (_, back) = phase("phase-up-two");
    assert_eq!(
        (back.emitted, back.exported),
        (300, 200),
        "export resumed: {back:?}"
    );
    // Traces and metrics both resumed.
    let log = second.received(&["phase-up-two", "vidperf.operation.duration"]);
    assert!(
        !log.contains("phase-down"),
        "nothing is replayed from the outage"
    );
    assert!(
        vidperf.snapshot().summary.total_operations == 300,
        "statistics saw every operation"
    );
    // The outage's batch was lost while running: the shutdown reports it, and does not
    // fail for it.
    let report = vidperf
        .shutdown(Duration::from_secs(5))
        .expect("nothing went wrong in the shutdown itself");
    assert_eq!(
        (
            report.spans_exported,
            report.spans_lost_before,
            report.spans_lost_at_shutdown
        ),
        (Some(200), 100, 0),
        "{report:?}"
    );
}

#[test]
fn a_hundred_thousand_distinct_strategies_stay_bounded_and_count_exactly() {
    use vidperf::metrics::Value;

    const N: u64 = 100_000;
    let (dispatch, vidperf) = local(vidperf::builder());
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..N {
            let strategy = format!("strategy-{i}");
            let _op = info_span!(
                "upscale",
                strategy = strategy.as_str(),
                frames_processed = 1u64
            );
        }
    });

    // Statistics: a bounded key set, every operation counted.
    let snapshot = vidperf.snapshot();
    assert_eq!(snapshot.summary.total_operations, N);
    let keys = snapshot.by_strategy.len();
    assert_eq!(
        keys,
        64 + 1,
        "64 strategies (the default cap) and __overflow__"
    );
    let counted: u64 = snapshot.by_strategy.values().map(|s| s.count).sum();
    assert_eq!(
        counted, N,
        "overflow included, every operation counted once"
    );
    let frames: u64 = snapshot
        .by_strategy
        .values()
        .map(|s| s.frames_processed_total)
        .sum();
    assert_eq!(frames, N);
    assert_eq!(snapshot.by_strategy["__overflow__"].count, N - 64);

    // /metrics and the OTLP metrics (one model): a bounded number of series, exact.
    let metrics = vidperf.stats().metrics();
    let page = vidperf::http::encode_metrics(&metrics);
    let series = page
        .lines()
        .filter(|l| l.starts_with("vidperf_operation_duration_seconds_count{"))
        .count();
    assert_eq!(
        series,
        64 + 1,
        "every operation succeeded: a series per pair"
    );
    let duration = metrics
        .family("vidperf.operation.duration")
        .expect("the duration histogram");
    let total: u64 = duration
        .points
        .iter()
        .map(|p| match &p.value {
            Value::Histogram(h) => h.count,
            Value::Number(_) => 0,
        })
        .sum();
    assert_eq!(total, N, "every operation in the duration histogram");
}
