//! The OpenTelemetry Collector and Jaeger v2, built from the Go module proxy by
//! `scripts/install-test-deps.sh` (`tools/otelcol`, `tools/jaeger`), with the
//! configurations shipped in `collector-config/`: each one validates, and each runs
//! with the example pipeline's traffic — traces queried back from Jaeger whole and typed,
//! the collector's span metrics counting what vidperf counted.

#[path = "support/gopeers.rs"]
mod gopeers;
mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gopeers::{Peer, free_port, root};
use serde_json::Value;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vidperf-otelcol-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn config(name: &str) -> String {
    root()
        .join("collector-config")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn get(url: &str) -> Option<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let mut response = agent.get(url).call().ok()?;
    serde_json::from_str(&response.body_mut().read_to_string().ok()?).ok()
}

/// The example pipeline, `clips` clips of 2 frames, exporting OTLP to `endpoint` as
/// `service`, with the fake NVML library (so GPU figures exist); the pairs of its
/// export as (operation, strategy) → operations.
fn pipeline(
    endpoint: &str,
    service: &str,
    clips: u32,
    dir: &Path,
) -> BTreeMap<(String, String), u64> {
    let export = dir.join("export");
    let out = Command::new(support::example_binary("pipeline"))
        .args([
            "--clips",
            &clips.to_string(),
            "--frames",
            "2",
            "--seed",
            "5",
        ])
        .args(["--export-dir", &export.to_string_lossy()])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_SERVICE_NAME", service)
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .env("VIDPERF_NVML_LIBRARY", vidperf_fake_nvml::library_path())
        .env("FAKE_NVML_MEMORY_TOTAL", "85899345920")
        .env("FAKE_NVML_MEMORY_USED", (24u64 << 30).to_string())
        .env("FAKE_NVML_UTILIZATION", "63")
        .env_remove("VIDPERF_HTTP_TOKEN")
        .env_remove("VIDPERF_ALERT_RULES")
        .env_remove("VIDPERF_BASELINE")
        .output()
        .expect("pipeline runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" 0 failed, 0 dropped"), "{stdout}");
    export_pairs(&export)
}

/// The pairs of the JSON export in `export`: (operation, strategy) → operations.
fn export_pairs(export: &Path) -> BTreeMap<(String, String), u64> {
    let json = std::fs::read_to_string(export.join("vidperf-export.json")).expect("export");
    let doc: Value = serde_json::from_str(&json).expect("json");
    doc["statistics"]["pairs"]
        .as_array()
        .expect("pairs")
        .iter()
        .map(|p| {
            (
                (
                    p["operation_type"].as_str().unwrap_or_default().to_owned(),
                    p["strategy"].as_str().unwrap_or_default().to_owned(),
                ),
                p["statistics"]["count"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// A trace's spans as Jaeger's query API answers them (none when it has not got it).
fn trace_spans(query: &str, id: &str) -> Vec<Value> {
    get(&format!("{query}/api/traces/{id}"))
        .and_then(|d| d["data"][0]["spans"].as_array().cloned())
        .unwrap_or_default()
}

/// How many of `spans` are vidperf operations (they carry `vidperf.strategy`).
fn operation_spans(spans: &[Value]) -> usize {
    spans
        .iter()
        .filter(|s| {
            s["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["key"] == "vidperf.strategy"))
        })
        .count()
}

/// Every parent a span of trace `id` references is in it.
fn assert_parents_present(id: &str, spans: &[Value]) {
    let ids: HashSet<&str> = spans.iter().filter_map(|s| s["spanID"].as_str()).collect();
    for span in spans {
        for reference in span["references"].as_array().into_iter().flatten() {
            let parent = reference["spanID"].as_str().unwrap_or_default();
            assert!(ids.contains(parent), "trace {id}: parent {parent} missing");
        }
    }
}

/// The Prometheus page on `port` (empty while it does not answer).
fn metrics_page(port: u16) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    agent
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default()
}

/// Every shipped configuration is valid for the collector built from `tools/otelcol`,
/// but the Datadog one, whose exporter and connector the proxy does not serve at the
/// pinned release (its path is tested through rotel, `tests/datadog.rs`); Jaeger's test
/// configuration is valid for Jaeger.
#[test]
fn every_shipped_collector_config_validates() {
    let Some(otelcol) = gopeers::binary("otelcol-vidperf") else {
        return;
    };
    let Some(jaeger) = gopeers::binary("jaeger") else {
        return;
    };
    let mut shipped: Vec<String> = std::fs::read_dir(root().join("collector-config"))
        .expect("collector-config")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("otelcol-") && n.ends_with(".yaml"))
        .collect();
    shipped.sort();
    assert_eq!(
        shipped,
        [
            "otelcol-datadog.yaml",
            "otelcol-fleet-gateway.yaml",
            "otelcol-fleet-sampler.yaml",
            "otelcol-jaeger.yaml",
            "otelcol-prometheus.yaml"
        ],
        "a new configuration needs a run in this file"
    );
    for name in &shipped {
        let out = Command::new(&otelcol)
            .args(["validate", "--config", &config(name)])
            .env("DD_API_KEY", "x")
            .env("DD_SITE", "datadoghq.com")
            .output()
            .expect("validate");
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        if name == "otelcol-datadog.yaml" {
            assert!(!out.status.success());
            assert!(text.contains("unknown type: \"datadog\""), "{text}");
        } else {
            assert!(out.status.success(), "{name}: {text}");
        }
    }
    let out = Command::new(&jaeger)
        .args(["validate", "--config"])
        .arg(root().join("tools/jaeger/jaeger-test.yaml"))
        .output()
        .expect("validate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `otelcol-jaeger.yaml` between the example pipeline and Jaeger: every span vidperf
/// delivered is in Jaeger, each trace whole (one root, every parent present), operation
/// spans carrying `resource.name` = "<operation> <strategy>" and typed figures.
#[test]
fn traces_reach_jaeger_whole_through_the_shipped_collector_config() {
    let Some(otelcol) = gopeers::binary("otelcol-vidperf") else {
        return;
    };
    let dir = temp_dir("jaeger");
    let Some((_jaeger, jaeger_grpc, query)) = gopeers::jaeger(&dir) else {
        return;
    };
    let (grpc, http) = (free_port(), free_port());
    let collector = Peer::start(
        &otelcol,
        &[
            "--config",
            &config("otelcol-jaeger.yaml"),
            // Tests run side by side: no collector's own metrics on :8888.
            "--set=service.telemetry.metrics.level=none",
        ],
        &[
            ("OTELCOL_OTLP_GRPC", format!("127.0.0.1:{grpc}")),
            ("OTELCOL_OTLP_HTTP", format!("127.0.0.1:{http}")),
            ("JAEGER_OTLP_GRPC", format!("127.0.0.1:{jaeger_grpc}")),
        ],
        dir.join("otelcol.log"),
        http,
    );
    let service = "vidperf-jaeger-test";
    let clips = 6;
    let pairs = pipeline(&format!("http://127.0.0.1:{http}"), service, clips, &dir);

    // Each clip is one trace (its request, the job it hands to a worker, the analysis,
    // the enhancement and its segments).
    let url = format!("{query}/api/traces?service={service}&limit=100");
    let started = Instant::now();
    let traces = loop {
        let traces = get(&url)
            .and_then(|d| d["data"].as_array().cloned())
            .unwrap_or_default();
        let operations: u64 = traces
            .iter()
            .flat_map(|t| t["spans"].as_array().cloned().unwrap_or_default())
            .filter(|s| s["operationName"] == "api_request")
            .count() as u64;
        if traces.len() == clips as usize && operations == u64::from(clips) {
            break traces;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} traces in Jaeger, {clips} expected; collector: {}",
            traces.len(),
            collector.output()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let mut by_pair: BTreeMap<(String, String), u64> = BTreeMap::new();
    for trace in &traces {
        let spans = trace["spans"].as_array().expect("spans");
        assert_parents_present(trace["traceID"].as_str().unwrap_or_default(), spans);
        let roots = spans
            .iter()
            .filter(|s| {
                s["references"]
                    .as_array()
                    .is_none_or(|r| r.iter().all(|r| r["refType"] != "CHILD_OF"))
            })
            .count();
        assert_eq!(roots, 1, "one root per trace: {trace}");
        for span in spans {
            let tags: BTreeMap<&str, (&str, &Value)> = span["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| Some((t["key"].as_str()?, (t["type"].as_str()?, &t["value"]))))
                .collect();
            let (Some((_, operation)), Some((_, strategy))) =
                (tags.get("vidperf.operation"), tags.get("vidperf.strategy"))
            else {
                continue;
            };
            let (operation, strategy) = (
                operation.as_str().unwrap_or_default(),
                strategy.as_str().unwrap_or_default(),
            );
            *by_pair
                .entry((operation.to_owned(), strategy.to_owned()))
                .or_default() += 1;
            assert_eq!(
                tags.get("resource.name").map(|t| t.1.as_str()),
                Some(Some(format!("{operation} {strategy}").as_str())),
                "{span}"
            );
            if operation == "enhancement" {
                assert_eq!(
                    tags.get("frames_processed").map(|t| t.0),
                    Some("int64"),
                    "{span}"
                );
                assert_eq!(
                    tags.get("quality_score").map(|t| t.0),
                    Some("float64"),
                    "{span}"
                );
                assert_eq!(
                    tags.get("vidperf.gpu.memory.peak")
                        .map(|t| (t.0, t.1.as_u64())),
                    Some(("int64", Some(24u64 << 30))),
                    "{span}"
                );
            }
        }
    }
    assert_eq!(
        by_pair, pairs,
        "Jaeger holds the operations vidperf counted"
    );
    let services = get(&format!("{query}/api/services")).expect("services");
    assert!(
        services["data"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s == service)),
        "{services}"
    );
    let operations = get(&format!("{query}/api/operations?service={service}")).expect("ops");
    let names: HashSet<&str> = operations["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["name"].as_str())
        .collect();
    let spans: HashSet<&str> = traces
        .iter()
        .flat_map(|t| t["spans"].as_array().into_iter().flatten())
        .filter_map(|s| s["operationName"].as_str())
        .collect();
    assert!(spans.contains("api_request") && spans.contains("enhancement"));
    assert_eq!(names, spans, "{operations}");
}

/// `otelcol-prometheus.yaml`: vidperf's OTLP metrics and the collector's span metrics on
/// its Prometheus endpoint, the span metrics' call counts per operation and strategy
/// those of vidperf's own export.
#[test]
fn the_prometheus_config_counts_what_vidperf_counted() {
    let Some(otelcol) = gopeers::binary("otelcol-vidperf") else {
        return;
    };
    let dir = temp_dir("prometheus");
    let (http, prometheus) = (free_port(), free_port());
    let collector = Peer::start(
        &otelcol,
        &[
            "--config",
            &config("otelcol-prometheus.yaml"),
            "--set=service.telemetry.metrics.level=none",
        ],
        &[
            ("OTELCOL_OTLP_HTTP", format!("127.0.0.1:{http}")),
            ("OTELCOL_PROMETHEUS", format!("127.0.0.1:{prometheus}")),
            ("OTELCOL_SPANMETRICS_FLUSH", "1s".to_owned()),
        ],
        dir.join("otelcol.log"),
        http,
    );
    let pairs = pipeline(
        &format!("http://127.0.0.1:{http}"),
        "vidperf-prom-test",
        6,
        &dir,
    );
    let started = Instant::now();
    let (calls, page) = loop {
        let page = metrics_page(prometheus);
        let calls = span_calls(&page);
        if calls == pairs && page.contains("vidperf_operation_duration") {
            break (calls, page);
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "span metrics {calls:?}, expected {pairs:?}; collector: {}\n{page}",
            collector.output()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(calls, pairs);
    assert!(page.contains("vidperf_strategy=\"seedvr2\""), "{page}");
}

/// `traces_span_metrics_calls_total` summed per (vidperf_operation, vidperf_strategy)
/// over its other labels (status, span kind, name).
fn span_calls(page: &str) -> BTreeMap<(String, String), u64> {
    let mut calls = BTreeMap::new();
    for line in page
        .lines()
        .filter(|l| l.starts_with("traces_span_metrics_calls"))
    {
        let label = |name: &str| {
            let start = line.find(&format!("{name}=\""))? + name.len() + 2;
            let end = line[start..].find('"')? + start;
            Some(line[start..end].to_owned())
        };
        let (Some(operation), Some(strategy)) =
            (label("vidperf_operation"), label("vidperf_strategy"))
        else {
            continue;
        };
        let value = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_default();
        *calls.entry((operation, strategy)).or_default() += value as u64;
    }
    calls
}

/// The records of a run's export, by trace: (start, end, failed) per operation.
fn records(export: &Path) -> BTreeMap<String, Vec<(f64, f64, bool)>> {
    let json = std::fs::read_to_string(export.join("vidperf-export.json")).expect("export");
    let doc: Value = serde_json::from_str(&json).expect("json");
    let time = |v: &Value| {
        let text = v.as_str().expect("time");
        let t = humantime::parse_rfc3339(text).expect("rfc3339");
        t.duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64()
    };
    let mut by_trace: BTreeMap<String, Vec<(f64, f64, bool)>> = BTreeMap::new();
    for r in doc["operations"].as_array().expect("operations") {
        by_trace
            .entry(r["trace_id"].as_str().expect("trace id").to_owned())
            .or_default()
            .push((
                time(&r["start_time"]),
                time(&r["end_time"]),
                r["success"] != true,
            ));
    }
    by_trace
}

/// A trace's duration as the latency policy sees it: first start to last end.
fn trace_ms(ops: &[(f64, f64, bool)]) -> f64 {
    let start = ops.iter().map(|o| o.0).fold(f64::INFINITY, f64::min);
    let end = ops.iter().map(|o| o.1).fold(f64::NEG_INFINITY, f64::max);
    (end - start) * 1000.0
}

/// The fleet: three workers → `otelcol-fleet-gateway.yaml` (whole traces routed by
/// trace id) → two `otelcol-fleet-sampler.yaml` (span metrics before sampling; keep
/// errors and the slowest) → Jaeger and a file. Checked: Jaeger holds exactly the traces
/// the policy keeps, each whole with every operation vidperf recorded in it; the span
/// metrics of both samplers count every operation of the three workers.
#[test]
fn a_fleet_routes_whole_traces_to_tail_samplers_and_jaeger() {
    let Some(otelcol) = gopeers::binary("otelcol-vidperf") else {
        return;
    };
    let dir = temp_dir("fleet");
    let Some((_jaeger, jaeger_grpc, query)) = gopeers::jaeger(&dir) else {
        return;
    };
    // The latency threshold: the median trace of three calibration runs side by side,
    // as the workers will run (the machine's speed decides the durations).
    let calibrations: Vec<_> = (0..3)
        .map(|k| {
            let export = dir.join(format!("calibration-{k}"));
            let child = Command::new(support::example_binary("pipeline"))
                .args([
                    "--clips",
                    "8",
                    "--frames",
                    "2",
                    "--seed",
                    &(30 + k).to_string(),
                ])
                .args(["--export-dir", &export.to_string_lossy()])
                .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("calibration run");
            (child, export)
        })
        .collect();
    let mut durations = Vec::new();
    for (mut child, export) in calibrations {
        assert!(child.wait().expect("calibration ends").success());
        durations.extend(records(&export).values().map(|o| trace_ms(o)));
    }
    durations.sort_by(f64::total_cmp);
    let threshold = durations[durations.len() / 2].round().max(1.0) as u64;

    let sampler_ports: Vec<(u16, u16)> = (0..2).map(|_| (free_port(), free_port())).collect();
    let samplers: Vec<Peer> = sampler_ports
        .iter()
        .enumerate()
        // A trace is judged this long after its first span arrives: longer than any
        // trace plus its export delay on a loaded machine (a request queued behind
        // others lasts several medians), or its last spans come after the decision.
        .map(|(k, ports)| sampler(&otelcol, k, *ports, threshold, jaeger_grpc, &dir, "15s"))
        .collect();
    let (gateway, http) = gateway(&otelcol, &sampler_ports, &dir);

    // Three workers at once, different seeds.
    let workers: Vec<_> = (0..3)
        .map(|k| {
            let export = dir.join(format!("worker-{k}"));
            let child = Command::new(support::example_binary("pipeline"))
                .args([
                    "--clips",
                    "8",
                    "--frames",
                    "2",
                    "--seed",
                    &(40 + k).to_string(),
                ])
                .args(["--export-dir", &export.to_string_lossy()])
                .env(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    format!("http://127.0.0.1:{http}"),
                )
                .env("OTEL_SERVICE_NAME", format!("fleet-worker-{k}"))
                .env("OTEL_BSP_SCHEDULE_DELAY", "200")
                .env_remove("VIDPERF_HTTP_TOKEN")
                .env_remove("VIDPERF_ALERT_RULES")
                .env_remove("VIDPERF_BASELINE")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("worker");
            (child, export)
        })
        .collect();
    let mut traces = BTreeMap::new();
    let mut counted: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (child, export) in workers {
        let out = child.wait_with_output().expect("worker ends");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(" 0 failed, 0 dropped"),
            "{stdout}"
        );
        traces.extend(records(&export));
        for (pair, n) in export_pairs(&export) {
            *counted.entry(pair).or_default() += n;
        }
    }
    assert_eq!(traces.len(), 24, "one trace per clip");
    let kept: BTreeMap<&String, usize> = traces
        .iter()
        .filter(|(_, ops)| ops.iter().any(|o| o.2) || trace_ms(ops) >= threshold as f64)
        .map(|(id, ops)| (id, ops.len()))
        .collect();
    let slow_only = traces
        .values()
        .filter(|ops| !ops.iter().any(|o| o.2) && trace_ms(ops) >= threshold as f64)
        .count();
    assert!(
        slow_only > 0 && kept.len() < traces.len(),
        "the threshold ({threshold} ms) splits the traces: {slow_only} slow, {} of {} kept",
        kept.len(),
        traces.len()
    );

    // Jaeger: exactly the kept traces, each with every operation recorded in it.
    let started = Instant::now();
    let found = loop {
        let mut found: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for k in 0..3 {
            let url = format!("{query}/api/traces?service=fleet-worker-{k}&limit=1000");
            for trace in get(&url)
                .and_then(|d| d["data"].as_array().cloned())
                .unwrap_or_default()
            {
                let id = trace["traceID"].as_str().unwrap_or_default().to_owned();
                found.insert(id, trace["spans"].as_array().cloned().unwrap_or_default());
            }
        }
        let complete = kept.iter().all(|(id, n)| {
            found
                .get(*id)
                .is_some_and(|spans| operation_spans(spans) == *n)
        });
        if complete && found.len() == kept.len() {
            break found;
        }
        let missing: Vec<String> = kept
            .keys()
            .filter(|id| !found.contains_key(**id))
            .map(|id| {
                let ops = &traces[*id];
                let failed = ops.iter().any(|o| o.2);
                format!("{id} ({:.0} ms, failed: {failed})", trace_ms(ops))
            })
            .collect();
        let durations: Vec<String> = traces
            .values()
            .map(|ops| format!("{:.0}", trace_ms(ops)))
            .collect();
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Jaeger has {} traces, the policy keeps {} (threshold {threshold} ms); missing: {missing:?}; every trace, ms: {durations:?}; samplers: {}\n{}\ngateway: {}",
            found.len(),
            kept.len(),
            samplers[0].output(),
            samplers[1].output(),
            gateway.output()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    for (id, spans) in &found {
        assert_parents_present(id, spans);
    }
    // Both samplers got traces (routing spread them), and the file holds what Jaeger does.
    let lines: usize = (0..2)
        .map(|k| {
            std::fs::read_to_string(dir.join(format!("sampled-{k}.jsonl")))
                .unwrap_or_default()
                .lines()
                .count()
        })
        .sum();
    assert!(lines > 0, "the file exporter wrote the sampled traces");

    // Span metrics from every span, before sampling: both samplers together count what
    // the three workers counted.
    let started = Instant::now();
    loop {
        let mut calls: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut per_sampler = Vec::new();
        for (_, prometheus) in &sampler_ports {
            let these = span_calls(&metrics_page(*prometheus));
            per_sampler.push(these.values().sum::<u64>());
            for (k, v) in these {
                *calls.entry(k).or_default() += v;
            }
        }
        if calls == counted {
            assert!(
                per_sampler.iter().all(|&n| n > 0),
                "both samplers: {per_sampler:?}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "span metrics {calls:?}, vidperf counted {counted:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A collector of the sampling tier (`otelcol-fleet-sampler.yaml`) on `(grpc, prometheus)`.
fn sampler(
    otelcol: &Path,
    k: usize,
    (grpc, prometheus): (u16, u16),
    threshold_ms: u64,
    jaeger_grpc: u16,
    dir: &Path,
    decision_wait: &str,
) -> Peer {
    Peer::start(
        otelcol,
        &[
            "--config",
            &config("otelcol-fleet-sampler.yaml"),
            // Collectors run side by side: none serves its own metrics on :8888.
            "--set=service.telemetry.metrics.level=none",
        ],
        &[
            ("OTELCOL_OTLP_GRPC", format!("127.0.0.1:{grpc}")),
            ("OTELCOL_PROMETHEUS", format!("127.0.0.1:{prometheus}")),
            ("OTELCOL_SPANMETRICS_FLUSH", "1s".to_owned()),
            (
                "OTELCOL_FILE_OUT",
                dir.join(format!("sampled-{k}.jsonl"))
                    .to_string_lossy()
                    .into_owned(),
            ),
            ("TAIL_DECISION_WAIT", decision_wait.to_owned()),
            ("TAIL_SLOW_MS", threshold_ms.to_string()),
            ("JAEGER_OTLP_GRPC", format!("127.0.0.1:{jaeger_grpc}")),
        ],
        dir.join(format!("sampler-{k}.log")),
        grpc,
    )
}

/// The first tier (`otelcol-fleet-gateway.yaml`) routing to `samplers`; its OTLP/HTTP port.
fn gateway(otelcol: &Path, samplers: &[(u16, u16)], dir: &Path) -> (Peer, u16) {
    let (grpc, http) = (free_port(), free_port());
    let peer = Peer::start(
        otelcol,
        &[
            "--config",
            &config("otelcol-fleet-gateway.yaml"),
            "--set=service.telemetry.metrics.level=none",
        ],
        &[
            ("OTELCOL_OTLP_GRPC", format!("127.0.0.1:{grpc}")),
            ("OTELCOL_OTLP_HTTP", format!("127.0.0.1:{http}")),
            ("SAMPLER_1", format!("127.0.0.1:{}", samplers[0].0)),
            ("SAMPLER_2", format!("127.0.0.1:{}", samplers[1].0)),
        ],
        dir.join("gateway.log"),
        http,
    );
    (peer, http)
}

/// A sampler killed mid-run and restarted on the same port: the workers never notice
/// (every span delivered to the gateway, none failed or dropped, the run as long as one
/// beside a healthy fleet), and once the sampler is back the gateway's routing reaches
/// it again: traces started after the restart are in Jaeger, whole. What is lost is
/// what the killed sampler held — the traces whose decision was pending in it — and
/// what the gateway could not deliver while it was down.
#[test]
fn a_sampler_killed_and_restarted_mid_run_costs_the_workers_nothing() {
    let Some(otelcol) = gopeers::binary("otelcol-vidperf") else {
        return;
    };
    let dir = temp_dir("fault");
    let Some((_jaeger, jaeger_grpc, query)) = gopeers::jaeger(&dir) else {
        return;
    };
    let sampler_ports: Vec<(u16, u16)> = (0..2).map(|_| (free_port(), free_port())).collect();
    // Threshold 0: every trace is kept, so what reaches Jaeger is what was not lost.
    let mut samplers: Vec<Peer> = sampler_ports
        .iter()
        .enumerate()
        .map(|(k, ports)| sampler(&otelcol, k, *ports, 0, jaeger_grpc, &dir, "1s"))
        .collect();
    let (_gateway, http) = gateway(&otelcol, &sampler_ports, &dir);
    let run = |k: u32, service: &str| {
        Command::new(support::example_binary("pipeline"))
            .args(["--duration", "8", "--rate", "3", "--frames", "2"])
            .args(["--seed", &(60 + k).to_string()])
            .args([
                "--export-dir",
                &dir.join(format!("{service}-{k}")).to_string_lossy(),
            ])
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{http}"),
            )
            .env("OTEL_SERVICE_NAME", service)
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .env_remove("VIDPERF_HTTP_TOKEN")
            .env_remove("VIDPERF_ALERT_RULES")
            .env_remove("VIDPERF_BASELINE")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("worker")
    };
    let finish = |children: Vec<std::process::Child>| {
        for child in children {
            let out = child.wait_with_output().expect("worker ends");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{stdout}");
            // Every span the worker emitted reached the gateway.
            assert!(stdout.contains(" 0 failed, 0 dropped"), "{stdout}");
        }
    };
    let started = Instant::now();
    finish((0..3).map(|k| run(k, "healthy")).collect());
    let healthy = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let children: Vec<_> = (0..3).map(|k| run(k, "faulty")).collect();
    std::thread::sleep(Duration::from_secs(2));
    drop(samplers.remove(0)); // killed
    std::thread::sleep(Duration::from_secs(2));
    let restarted_at = std::time::SystemTime::now();
    samplers.insert(
        0,
        sampler(&otelcol, 0, sampler_ports[0], 0, jaeger_grpc, &dir, "1s"),
    );
    finish(children);
    let faulty = started.elapsed().as_secs_f64();
    eprintln!("workers' wall with a sampler killed: {faulty:.1} s against {healthy:.1} s healthy");

    // Traces that began after the restart, as the workers recorded them, are in Jaeger
    // whole (both samplers serving again).
    let after: BTreeMap<String, usize> = (0..3)
        .flat_map(|k| records(&dir.join(format!("faulty-{k}"))))
        .filter(|(_, ops)| {
            let restart = restarted_at
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_secs_f64();
            ops.iter().all(|o| o.0 > restart + 1.0)
        })
        .map(|(id, ops)| (id, ops.len()))
        .collect();
    assert!(
        after.len() >= 6,
        "traces after the restart: {}",
        after.len()
    );
    let started = Instant::now();
    loop {
        let missing: Vec<&String> = after
            .iter()
            .filter(|(id, n)| operation_spans(&trace_spans(&query, id)) != **n)
            .map(|(id, _)| id)
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} of {} traces begun after the restart are not whole in Jaeger: {missing:?}",
            missing.len(),
            after.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // A trace across processes (examples/distributed.rs: a frontend hands a job to a
    // worker process): the gateway routes both processes' spans by trace id to one
    // sampler, and Jaeger holds the request, the job and its enhancement as one tree.
    for _ in 0..4 {
        let out = Command::new(support::example_binary("distributed"))
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{http}"),
            )
            .env("OTEL_SERVICE_NAME", "fleet-distributed")
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .env_remove("VIDPERF_HTTP_TOKEN")
            .output()
            .expect("distributed runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}");
        let trace = stdout
            .split("traceparent=00-")
            .nth(1)
            .and_then(|rest| rest.get(..32))
            .expect("the frontend prints its traceparent")
            .to_owned();
        let started = Instant::now();
        loop {
            let spans = trace_spans(&query, &trace);
            let names: HashSet<&str> = spans
                .iter()
                .filter_map(|s| s["operationName"].as_str())
                .collect();
            if ["api_request", "background_job", "upscale"]
                .iter()
                .all(|n| names.contains(n))
            {
                assert_parents_present(&trace, &spans);
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "trace {trace} across two processes not whole in Jaeger: {names:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    // What the fault cost, for the docs: traces of the faulty run not whole in Jaeger.
    let all: BTreeMap<String, usize> = (0..3)
        .flat_map(|k| records(&dir.join(format!("faulty-{k}"))))
        .map(|(id, ops)| (id, ops.len()))
        .collect();
    let whole = all
        .iter()
        .filter(|(id, n)| operation_spans(&trace_spans(&query, id)) == **n)
        .count();
    eprintln!(
        "traces whole in Jaeger: {whole} of {} (those begun after the restart: all {})",
        all.len(),
        after.len()
    );
}
