//! One source of truth: the handle's snapshot, the statistics' snapshot and the stats
//! route agree on every figure and health field; `/metrics` and the OTLP metrics that
//! reach a collector carry the same series — same names (translated by the OpenTelemetry
//! rules for Prometheus), same attribute sets, same values — and their per-strategy
//! sums are the snapshot's figures. With the resource monitor on a fake GPU (so the
//! live device gauges are in both), and the OTLP trace export refused by the collector
//! (so the export's failure counts are too).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message as _;
use serde_json::Value;
use tracing::info_span;
use tracing_subscriber::prelude::*;
use vidperf::Figure;
use vidperf::StatsSnapshot;
use vidperf::metrics::{Kind, prometheus_label, prometheus_name};
use vidperf::monitor::{MonitorConfig, MonitorHealth, NvmlLibrary};
use vidperf::otlp::{ExportHealth, OtelConfig};
use vidperf_fake_nvml::FakeNvml;

#[path = "support/collector.rs"]
mod collector;

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

/// A series: name and sorted `label="value"` pairs.
type Series = (String, String);

fn series(name: &str, mut labels: Vec<String>) -> Series {
    labels.sort_unstable();
    (name.to_owned(), labels.join(","))
}

/// `/metrics` as `(name, sorted labels) -> value`.
fn parse_metrics(text: &str) -> BTreeMap<Series, f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (sample, value) = line.rsplit_once(' ').expect("name value");
        let (name, labels) = match sample.split_once('{') {
            Some((name, rest)) => (
                name,
                rest.trim_end_matches('}')
                    .split(',')
                    .map(str::to_owned)
                    .collect(),
            ),
            None => (sample, Vec::new()),
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().expect("number"),
        };
        out.insert(series(name, labels), value);
    }
    out
}

fn number(v: &Option<number_data_point::Value>) -> f64 {
    match v {
        Some(number_data_point::Value::AsDouble(d)) => *d,
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        None => f64::NAN,
    }
}

/// The last OTLP metrics request as the samples `/metrics` would show for it, each
/// translated by the OpenTelemetry rules for Prometheus.
fn otlp_as_prometheus(request: &ExportMetricsServiceRequest) -> BTreeMap<Series, f64> {
    let mut out = BTreeMap::new();
    for m in request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        let labels = |attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue]| -> Vec<String> {
            attrs
                .iter()
                .map(|kv| {
                    let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(any_value::Value::StringValue(s)) => s.clone(),
                        other => panic!("{}: a non-string attribute {other:?}", m.name),
                    };
                    format!("{}=\"{v}\"", prometheus_label(&kv.key))
                })
                .collect()
        };
        match m.data.as_ref().expect("data") {
            metric::Data::Sum(sum) => {
                assert!(sum.is_monotonic, "{}", m.name);
                let name = prometheus_name(&m.name, &m.unit, Kind::Counter);
                for p in &sum.data_points {
                    out.insert(series(&name, labels(&p.attributes)), number(&p.value));
                }
            }
            metric::Data::Gauge(gauge) => {
                let name = prometheus_name(&m.name, &m.unit, Kind::Gauge);
                for p in &gauge.data_points {
                    out.insert(series(&name, labels(&p.attributes)), number(&p.value));
                }
            }
            metric::Data::Histogram(h) => {
                let name = prometheus_name(&m.name, &m.unit, Kind::Histogram);
                for p in &h.data_points {
                    let base = labels(&p.attributes);
                    let mut total = 0;
                    for (i, n) in p.bucket_counts.iter().enumerate() {
                        total += n;
                        let le = p
                            .explicit_bounds
                            .get(i)
                            .map_or("+Inf".to_owned(), f64::to_string);
                        let mut l = base.clone();
                        l.push(format!("le=\"{le}\""));
                        out.insert(series(&format!("{name}_bucket"), l), total as f64);
                    }
                    assert_eq!(total, p.count, "{}: buckets add up to the count", m.name);
                    out.insert(
                        series(&format!("{name}_count"), base.clone()),
                        p.count as f64,
                    );
                    out.insert(series(&format!("{name}_sum"), base), p.sum.expect("a sum"));
                }
            }
            other => panic!("{}: unexpected {other:?}", m.name),
        }
    }
    out
}

/// The sum of every sample of `name` whose labels include `label`.
fn sum_where(page: &BTreeMap<Series, f64>, name: &str, label: &str) -> f64 {
    page.iter()
        .filter(|((n, l), _)| n == name && l.split(',').any(|p| p == label))
        .map(|(_, v)| v)
        .sum()
}

fn check_per_strategy(snap: &StatsSnapshot, page: &BTreeMap<Series, f64>) {
    assert!(!snap.by_strategy.is_empty());
    for (strategy, s) in &snap.by_strategy {
        let label = format!("vidperf_strategy=\"{strategy}\"");
        let at = |name: &str| sum_where(page, name, &label);
        assert_eq!(
            at("vidperf_operation_duration_seconds_count"),
            s.count as f64,
            "{strategy}"
        );
        let failures = page
            .iter()
            .filter(|((n, l), _)| {
                n == "vidperf_operation_duration_seconds_count"
                    && l.contains(&label)
                    && l.contains("vidperf_outcome=\"failure\"")
            })
            .map(|(_, v)| v)
            .sum::<f64>();
        assert_eq!(failures, s.failures as f64, "{strategy} failures");
        let d = s.duration.as_ref().expect("durations");
        let total = at("vidperf_operation_duration_seconds_sum");
        assert!(
            (total - d.total_seconds).abs() < 1e-9,
            "{strategy}: {total} vs {}",
            d.total_seconds
        );
        for b in &d.buckets {
            let le = format!("le=\"{}\"", b.le);
            let n: f64 = page
                .iter()
                .filter(|((n, l), _)| {
                    n == "vidperf_operation_duration_seconds_bucket"
                        && l.contains(&label)
                        && l.split(',').any(|p| p == le)
                })
                .map(|(_, v)| v)
                .sum();
            assert_eq!(n, b.count as f64, "{strategy} le {}", b.le);
        }
        assert_eq!(
            at("vidperf_operation_frames_total"),
            s.frames_processed_total as f64
        );
        assert_eq!(
            at("vidperf_operation_segments_total"),
            s.segments_total as f64
        );
        let q = at("vidperf_operation_quality_sum") / at("vidperf_operation_quality_count");
        let mean = s.mean_quality_score.expect("quality");
        assert!((q - mean).abs() < 1e-12, "{strategy}: {q} vs {mean}");
        let memory = s
            .resources
            .get(Figure::ProcessMemory)
            .expect("RSS measured");
        let peak_max = page
            .iter()
            .filter(|((n, l), _)| {
                n == "vidperf_process_memory_peak_max_bytes" && l.contains(&label)
            })
            .map(|(_, v)| *v)
            .fold(0.0, f64::max);
        assert_eq!(peak_max, memory.max, "{strategy}: the highest RSS peak");
        let gpu = s
            .resources
            .get(Figure::GpuMemory)
            .expect("fake GPU measured");
        assert_eq!(
            at("vidperf_gpu_memory_peak_bytes_count"),
            gpu.operations as f64
        );
    }
}

#[test]
fn every_reader_and_every_output_sees_the_same_figures() {
    let fake = FakeNvml::new();
    fake.set_memory(0, 6 << 30, 80 << 30);
    fake.set_utilization(0, 64);
    fake.set_memory_utilization(0, 31);
    fake.set_codec_utilization(0, 40, 12);
    fake.set_power(0, 250_000);
    let (endpoint, received) = collector::capturing_collector("503 Service Unavailable");
    let otel = OtelConfig::default()
        .with_endpoint(endpoint)
        .with_max_queue_size(4)
        // Exports only when flushed below (a periodic one would move the counts).
        .with_metrics_interval(Duration::from_secs(3600));
    let (layer, vidperf) = vidperf::builder()
        .without_env()
        .http_api("127.0.0.1:0".parse().expect("addr"))
        .resource_monitor(
            MonitorConfig::default()
                .with_interval(Duration::from_millis(5))
                .with_nvml(NvmlLibrary::Path(fake.path().to_owned()))
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
        let settled = h
            .part::<ExportHealth>("export")
            .is_some_and(|e| e.queued == 0)
            && h.part::<MonitorHealth>("monitor").is_some_and(|m| m.parked);
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
    // The OTLP metrics, as the collector received them, read right after the page.
    received.lock().expect("captured").clear();
    // (The traces were refused long before: nothing of them is left to flush.)
    let _ = vidperf.flush();
    let metrics_body = received
        .lock()
        .expect("captured")
        .iter()
        .rev()
        .find(|c| c.path == "/v1/metrics")
        .map(|c| c.body.clone())
        .expect("a metrics request");
    let request = ExportMetricsServiceRequest::decode(&metrics_body[..]).expect("OTLP protobuf");

    let handle_json = without_live(serde_json::to_value(&from_handle).expect("serialise"));
    assert_eq!(
        handle_json,
        without_live(serde_json::to_value(&from_stats).expect("serialise"))
    );
    assert_eq!(handle_json, without_live(from_route));

    let h = &from_handle.health;
    let e: ExportHealth = h.part("export").expect("export registered its health");
    assert_eq!(e.emitted, 40, "every operation offered to the export");
    assert_eq!(e.emitted, e.exported + e.failed + e.dropped + e.queued);
    assert!(e.failed + e.dropped > 0, "the collector refused: {e:?}");
    let m: MonitorHealth = h.part("monitor").expect("monitor registered its health");
    assert!(m.samples > 0 && m.running && m.gpu_available());
    assert_eq!(from_handle.summary.total_operations, 40);

    // /metrics against the statistics.
    check_per_strategy(&from_handle, &page);
    // /metrics against OTLP: the same series with the same values (the uptime moves,
    // and the metrics export counts itself after the request is built).
    let moving = ["vidperf_uptime_seconds", "vidperf_export_metrics_total"];
    let otlp = otlp_as_prometheus(&request);
    let keep = |map: &BTreeMap<Series, f64>| -> BTreeMap<Series, f64> {
        map.iter()
            .filter(|((n, _), _)| !moving.contains(&n.as_str()))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    let (page_kept, otlp_kept) = (keep(&page), keep(&otlp));
    let only_page: Vec<_> = page_kept
        .keys()
        .filter(|k| !otlp_kept.contains_key(*k))
        .collect();
    let only_otlp: Vec<_> = otlp_kept
        .keys()
        .filter(|k| !page_kept.contains_key(*k))
        .collect();
    assert!(
        only_page.is_empty() && only_otlp.is_empty(),
        "series only on /metrics: {only_page:?}\nonly in OTLP: {only_otlp:?}"
    );
    for (key, value) in &page_kept {
        let theirs = otlp_kept[key];
        assert!(
            (value - theirs).abs() <= 1e-9 * value.abs().max(1.0),
            "{key:?}: /metrics {value}, OTLP {theirs}"
        );
    }
    // The live device gauges, in both, with the semantic-convention names.
    for (name, labels, want) in [
        (
            "hw_gpu_memory_usage_bytes",
            vec!["hw_id=\"0\"", "hw_type=\"gpu\""],
            (6u64 << 30) as f64,
        ),
        (
            "hw_gpu_utilization_ratio",
            vec!["hw_id=\"0\"", "hw_type=\"gpu\""],
            0.64,
        ),
        (
            "hw_gpu_utilization_ratio",
            vec!["hw_gpu_task=\"decoder\"", "hw_id=\"0\"", "hw_type=\"gpu\""],
            0.40,
        ),
        (
            "hw_gpu_memory_utilization_ratio",
            vec!["hw_id=\"0\"", "hw_type=\"gpu\""],
            0.31,
        ),
        (
            "hw_power_watts",
            vec!["hw_id=\"0\"", "hw_type=\"gpu\""],
            250.0,
        ),
    ] {
        let key = series(name, labels.iter().map(|l| (*l).to_owned()).collect());
        assert_eq!(page.get(&key), Some(&want), "{key:?} on /metrics");
        assert_eq!(otlp.get(&key), Some(&want), "{key:?} in OTLP");
    }
    assert!(
        page.keys().any(|(n, _)| n == "hw_energy_joules_total"),
        "the energy counter"
    );
    let _ = vidperf.shutdown(Duration::from_secs(2));
}
