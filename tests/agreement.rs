//! One source of truth: the handle's snapshot, the statistics' snapshot, the stats route
//! and the `/metrics` page agree on every figure and every health field, with the
//! resource monitor and the OTLP export (to a collector that refuses) both running.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::info_span;
use tracing_subscriber::prelude::*;
use vidperf::Figure;
use vidperf::StatsSnapshot;
use vidperf::monitor::{MonitorConfig, NvmlLibrary};
use vidperf::otlp::OtelConfig;

/// Fields that move with the clock between two reads, however close.
const LIVE: &[&str] = &["uptime_seconds", "generated_at", "last_sample_age_seconds"];

fn without_live(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for key in LIVE {
                    map.remove(*key);
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

/// `/metrics` as `(name, sorted labels) -> value`.
fn parse_metrics(text: &str) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("name value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let mut pairs: Vec<&str> = rest.trim_end_matches('}').split(',').collect();
                pairs.sort_unstable();
                (name, pairs.join(","))
            }
            None => (series, String::new()),
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().expect("number"),
        };
        out.insert((name.to_owned(), labels), value);
    }
    out
}

fn metric(page: &BTreeMap<(String, String), f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    pairs.sort_unstable();
    let key = (name.to_owned(), pairs.join(","));
    *page
        .get(&key)
        .unwrap_or_else(|| panic!("{name}{{{}}} not on the page", key.1))
}

fn check_metrics(snap: &StatsSnapshot, page: &BTreeMap<(String, String), f64>) {
    for (prefix, label, view) in [
        ("vidperf_strategy", "strategy", &snap.by_strategy),
        ("vidperf_operation_type", "operation", &snap.by_operation),
    ] {
        assert!(!view.is_empty());
        for (key, s) in view {
            let k = (label, key.as_str());
            let at = |suffix: &str, extra: &[(&str, &str)]| {
                let mut labels = vec![k];
                labels.extend_from_slice(extra);
                metric(page, &format!("{prefix}_{suffix}"), &labels)
            };
            assert_eq!(
                at("operations_total", &[("outcome", "success")]),
                s.successes as f64
            );
            assert_eq!(
                at("operations_total", &[("outcome", "failure")]),
                s.failures as f64
            );
            let d = s.duration.as_ref().expect("durations");
            assert_eq!(at("duration_seconds_count", &[]), s.count as f64);
            assert_eq!(at("duration_seconds_sum", &[]), d.total_seconds);
            for b in &d.buckets {
                let le = b.le.to_string();
                assert_eq!(
                    at("duration_seconds_bucket", &[("le", &le)]),
                    b.count as f64
                );
            }
            assert_eq!(
                at("duration_seconds_bucket", &[("le", "+Inf")]),
                s.count as f64
            );
            assert_eq!(
                at("frames_processed_total", &[]),
                s.frames_processed_total as f64
            );
            assert_eq!(at("segments_total", &[]), s.segments_total as f64);
            assert_eq!(Some(at("frames_per_second", &[])), s.frames_per_second);
            assert_eq!(Some(at("quality_score_mean", &[])), s.mean_quality_score);
            let r = &s.resources;
            let memory = r.get(Figure::ProcessMemory).expect("RSS measured");
            assert_eq!(at("peak_memory_bytes", &[]), memory.max);
            if let Some(cpu) = r.get(Figure::ProcessCpu) {
                assert_eq!(at("peak_cpu_utilization_ratio", &[]), cpu.max);
            }
        }
    }
    let h = &snap.health;
    assert_eq!(
        metric(page, "vidperf_history_records", &[]),
        h.history_len as f64
    );
    assert_eq!(
        metric(page, "vidperf_history_purged_total", &[]),
        h.history_purged as f64
    );
    for (dimension, n) in [
        ("strategy", h.strategy_overflow),
        ("operation", h.operation_overflow),
        ("pair", h.pair_overflow),
    ] {
        let got = metric(
            page,
            "vidperf_overflow_operations_total",
            &[("dimension", dimension)],
        );
        assert_eq!(got, n as f64, "{dimension} overflow");
    }
    assert_eq!(
        metric(page, "vidperf_sink_panics_total", &[]),
        h.sink_panics as f64
    );
    assert_eq!(
        metric(page, "vidperf_active_operations", &[]),
        snap.summary.active_operations as f64
    );
    let e = h.export.expect("export health");
    for (outcome, n) in [
        ("emitted", e.emitted),
        ("exported", e.exported),
        ("failed", e.failed),
        ("dropped", e.dropped),
        ("unsampled", e.unsampled),
    ] {
        assert_eq!(
            metric(page, "vidperf_export_spans_total", &[("outcome", outcome)]),
            n as f64
        );
    }
    assert_eq!(
        metric(page, "vidperf_export_spans_queued", &[]),
        e.queued as f64
    );
    let m = h.monitor.as_ref().expect("monitor health");
    assert_eq!(
        metric(page, "vidperf_monitor_samples_total", &[]),
        m.samples as f64
    );
    assert_eq!(
        metric(page, "vidperf_monitor_stale", &[]),
        f64::from(u8::from(m.stale))
    );
    assert_eq!(
        Some(metric(page, "process_memory_usage_bytes", &[]) as u64),
        m.current_process_memory_bytes
    );
}

#[test]
fn every_reader_sees_the_same_figures_and_health() {
    let otel = OtelConfig::default()
        .with_endpoint("http://127.0.0.1:9")
        .with_max_queue_size(4);
    let (layer, vidperf) = vidperf::builder()
        .without_env()
        .http_api("127.0.0.1:0".parse().expect("addr"))
        .resource_monitor(
            MonitorConfig::default()
                .with_interval(Duration::from_millis(5))
                .with_nvml(NvmlLibrary::Disabled)
                .with_park_after(Duration::from_millis(200)),
        )
        .otlp(otel)
        .build()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..40u64 {
            let span = info_span!(
                "op",
                strategy = ["vsrm", "seedvr2", "ditvr"][i as usize % 3],
                operation = ["enhancement", "api_request"][i as usize % 2],
                frames_processed = i % 9,
                quality_score = 0.5 + (i % 5) as f64 / 10.0,
                segments = i % 4,
                error = tracing::field::Empty,
            );
            let _entered = span.enter();
            if i % 7 == 3 {
                span.record("error", "CUDA out of memory");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    // Settle: nothing queued for export, the monitor parked (no new samples).
    let _ = vidperf.flush();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h = vidperf.snapshot().health;
        let settled =
            h.export.is_some_and(|e| e.queued == 0) && h.monitor.as_ref().is_some_and(|m| m.parked);
        if settled {
            break;
        }
        assert!(Instant::now() < deadline, "did not settle: {h:?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    let base = format!("http://{}", vidperf.http_addr().expect("serving"));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let get = |path: &str| {
        agent
            .get(format!("{base}{path}"))
            .call()
            .expect("request")
            .into_body()
            .read_to_string()
            .expect("body")
    };
    let from_handle = vidperf.snapshot();
    let from_stats = vidperf.stats().snapshot();
    let from_route: Value = serde_json::from_str(&get("/performance/stats")).expect("JSON");
    let page = parse_metrics(&get("/metrics"));

    let handle_json = without_live(serde_json::to_value(&from_handle).expect("serialise"));
    assert_eq!(
        handle_json,
        without_live(serde_json::to_value(&from_stats).expect("serialise"))
    );
    assert_eq!(handle_json, without_live(from_route));

    let h = &from_handle.health;
    let e = h.export.expect("export registered its health");
    assert_eq!(e.emitted, 40, "every operation offered to the export");
    assert_eq!(e.emitted, e.exported + e.failed + e.dropped + e.queued);
    assert!(e.failed + e.dropped > 0, "the collector refused: {e:?}");
    let m = h.monitor.as_ref().expect("monitor registered its health");
    assert!(m.samples > 0 && m.running);
    assert_eq!(from_handle.summary.total_operations, 40);
    check_metrics(&from_handle, &page);
    let _ = vidperf.shutdown(Duration::from_secs(2));
}
