//! A fleet: a real Prometheus server (Debian's `prometheus`, on loopback, 1 s scrapes)
//! over three example pipelines serving `/metrics`, with a fake GPU (the fake
//! `libnvidia-ml.so`, figures from its environment), an OTLP endpoint that refuses,
//! alert rules and a baseline, so that every panel of the Grafana dashboard has
//! something to show. Every dashboard query returns data; the fleet-wide p95 per
//! strategy from `histogram_quantile` over the summed buckets lies in the same bucket as
//! the p95 of the three processes' merged exports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;

#[path = "support/ports.rs"]
mod ports;
use ports::free_port;

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn query(prometheus: &str, promql: &str) -> Vec<Value> {
    let mut response = agent()
        .get(format!("{prometheus}/api/v1/query"))
        .query("query", promql)
        .call()
        .expect("Prometheus answers");
    let body: Value =
        serde_json::from_str(&response.body_mut().read_to_string().expect("body")).expect("JSON");
    assert_eq!(body["status"], "success", "{promql}: {body}");
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The Grafana dashboard's queries, with its variables set to "everything".
fn dashboard_queries() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("collector-config/grafana/vidperf.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("JSON");
    let mut out = Vec::new();
    fn walk(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                let title = map
                    .get("title")
                    .and_then(Value::as_str)
                    .unwrap_or(title)
                    .to_owned();
                if let Some(expr) = map.get("expr").and_then(Value::as_str) {
                    out.push((title.clone(), expr.to_owned()));
                }
                for v in map.values() {
                    walk(v, &title, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, title, out)),
            _ => {}
        }
    }
    walk(&dashboard["panels"], "", &mut out);
    out.into_iter()
        .map(|(title, expr)| {
            let expr = expr
                .replace("$strategy", ".*")
                .replace("$operation", ".*")
                .replace("$instance", ".*")
                .replace("$__rate_interval", "30s");
            (title, expr)
        })
        .collect()
}

/// A baseline export in which the analysis step (one per clip, so every worker has
/// enough of them to judge) was much faster: the live runs are regressed against it,
/// so `vidperf_regression` has ones to show.
fn write_baseline(dir: &Path) -> PathBuf {
    use std::sync::Arc;
    use std::time::SystemTime;
    use vidperf::{FinishedSpan, OperationKey, SpanId, Stats, StatsConfig, TraceId};
    let stats = Stats::new(StatsConfig::default());
    for i in 0..300u64 {
        let key = OperationKey {
            operation_type: Arc::from("analysis"),
            strategy: Arc::from("degradation_router"),
        };
        let ids = (
            TraceId::from_bytes([5; 16]),
            SpanId::from_bytes((i + 1).to_be_bytes()),
        );
        let duration = Duration::from_nanos(2_000 + (i % 7) * 100);
        stats.record(&FinishedSpan::operation(
            key,
            ids,
            SystemTime::now(),
            duration,
        ));
    }
    let path = dir.join("baseline.json");
    vidperf::export::write_stats_json(std::fs::File::create(&path).expect("create"), &stats)
        .expect("write");
    path
}

#[test]
fn a_prometheus_fleet_shows_every_panel_and_the_right_fleet_p95() {
    let dir = std::env::temp_dir().join(format!("vidperf-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let rules = dir.join("alerts.toml");
    std::fs::write(
        &rules,
        "evaluation_interval = \"1s\"\n[[rule]]\nname = \"Slow\"\nmetric = \"duration_p95\"\nabove = 0.000001\nwindow = \"1m\"\nmin_samples = 1\n",
    )
    .expect("rules");
    let baseline = write_baseline(&dir);

    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut children = Killed(Vec::new());
    for (k, port) in ports.iter().enumerate() {
        let export = dir.join(format!("worker-{k}"));
        let child = Command::new(support::example_binary("pipeline"))
            .args(["--serve", &format!("127.0.0.1:{port}")])
            .args([
                "--clips",
                "45",
                "--frames",
                "2",
                "--seed",
                &format!("{}", 20 + k),
            ])
            .args(["--export-dir", &export.to_string_lossy()])
            .env("VIDPERF_NVML_LIBRARY", vidperf_fake_nvml::library_path())
            .env("FAKE_NVML_MEMORY_TOTAL", "85899345920")
            .env(
                "FAKE_NVML_MEMORY_USED",
                format!("{}", (20 + 5 * k as u64) << 30),
            )
            .env("FAKE_NVML_UTILIZATION", "63")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .env("VIDPERF_ALERT_RULES", &rules)
            .env("VIDPERF_BASELINE", &baseline)
            .env("VIDPERF_BASELINE_INTERVAL", "1s")
            .env_remove("VIDPERF_HTTP_TOKEN")
            .env_remove("VIDPERF_ALERTMANAGER_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pipeline");
        children.0.push(child);
    }

    let prometheus_port = free_port();
    let config = dir.join("prometheus.yml");
    let targets: Vec<String> = ports.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: vidperf\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ),
    )
    .expect("config");
    let spawned = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        Ok(child) => children.0.push(child),
        Err(e) => {
            let message = format!(
                "prometheus not runnable ({e}): install the Debian package prometheus (scripts/install-test-deps.sh does)"
            );
            assert!(
                std::env::var_os("VIDPERF_REQUIRE_TOOLS").is_none(),
                "{message}"
            );
            eprintln!("skipped: {message}");
            return;
        }
    }
    let prometheus = format!("http://127.0.0.1:{prometheus_port}");

    // Every pipeline has finished its 45 clips (four operations each; it keeps serving)
    // and is scraped.
    let total = |port: u16| {
        agent()
            .get(format!(
                "http://127.0.0.1:{port}/performance/stats?recent=0"
            ))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|b| serde_json::from_str::<Value>(&b).ok())
            .and_then(|v| v["summary"]["total_operations"].as_u64())
            .unwrap_or(0)
    };
    let started = Instant::now();
    loop {
        let done = ports.iter().all(|p| total(*p) >= 180);
        let up = agent()
            .get(format!("{prometheus}/api/v1/query"))
            .query("query", "count(up == 1)")
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|b| serde_json::from_str::<Value>(&b).ok())
            .and_then(|v| {
                v["data"]["result"][0]["value"][1]
                    .as_str()
                    .map(str::to_owned)
            });
        if done && up.as_deref() == Some("3") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(200),
            "pipelines done: {done}, targets up: {up:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // A few more scrapes after the last operation, and alert and baseline evaluations.
    std::thread::sleep(Duration::from_secs(5));

    let mut empty = Vec::new();
    for (title, expr) in dashboard_queries() {
        // Rates over a window that covers the whole run.
        let expr = expr.replace("[30s]", "[10m]");
        if query(&prometheus, &expr).is_empty() {
            empty.push(format!("{title}: {expr}"));
        }
    }
    assert!(
        empty.is_empty(),
        "panels without data:\n{}",
        empty.join("\n")
    );

    // The fleet p95 per strategy, from the summed cumulative buckets, against the
    // merged exports.
    let mut merged: BTreeMap<String, BTreeMap<u64, (u64, u64)>> = BTreeMap::new();
    for port in &ports {
        let response = agent()
            .post(format!(
                "http://127.0.0.1:{port}/performance/export?format=json"
            ))
            .send_empty()
            .expect("export");
        let summary =
            vidperf::export::read_summary(response.into_body().into_reader()).expect("read");
        for pair in summary.pairs {
            let buckets = merged.entry(pair.strategy.clone()).or_default();
            for [low, width, count] in pair.duration_histogram.0 {
                buckets.entry(low).or_insert((width, 0)).1 += count;
            }
        }
    }
    let bounds: Vec<f64> = vidperf::stats::DURATION_BUCKETS.to_vec();
    let mut compared = 0;
    for (strategy, buckets) in &merged {
        let total: u64 = buckets.values().map(|(_, c)| c).sum();
        if total < 20 {
            continue;
        }
        let rank = (0.95 * total as f64).ceil() as u64;
        let mut seen = 0;
        let exact = buckets
            .iter()
            .find_map(|(low, (width, count))| {
                seen += count;
                (seen >= rank).then(|| (low + (width - 1) / 2) as f64 / 1e9)
            })
            .expect("a p95");
        let promql = format!(
            "histogram_quantile(0.95, sum by (le) (vidperf_operation_duration_seconds_bucket{{vidperf_strategy=\"{strategy}\"}}))"
        );
        let result = query(&prometheus, &promql);
        let fleet: f64 = result[0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .expect("a number");
        // The Prometheus bucket holding the fleet estimate.
        let upper = bounds
            .iter()
            .copied()
            .find(|b| fleet <= *b)
            .unwrap_or(f64::INFINITY);
        let lower = bounds
            .iter()
            .copied()
            .rev()
            .find(|b| *b < upper)
            .unwrap_or(0.0);
        assert!(
            exact > lower * 0.99 && exact <= upper * 1.01,
            "{strategy}: the merged exports' p95 {exact} s is outside ({lower}, {upper}] where Prometheus puts the fleet p95 ({fleet} s)"
        );
        compared += 1;
    }
    assert!(compared >= 3, "only {compared} strategies compared");
    drop(children);
    let _ = std::fs::remove_dir_all(&dir);
}
