//! From a p99 to its trace: a real Prometheus (Debian's, with
//! `--enable-feature=exemplar-storage`) scrapes the example pipeline in the OpenMetrics
//! format while its tail sampler decides which traces go to rotel, a real collector.
//! Prometheus stores exemplars for the duration histograms, and every exemplar's trace
//! is one rotel received.
#![cfg(feature = "otlp")]

#[path = "support/rotel.rs"]
mod rotel;
mod support;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

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

/// The trace ids of the exemplars Prometheus holds for the duration histogram.
fn exemplar_traces(prometheus: &str) -> BTreeSet<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let Ok(mut response) = agent()
        .get(format!("{prometheus}/api/v1/query_exemplars"))
        .query("query", "vidperf_operation_duration_seconds_bucket")
        .query("start", (now - 600).to_string())
        .query("end", (now + 60).to_string())
        .call()
    else {
        return BTreeSet::new();
    };
    let body: Value = response
        .body_mut()
        .read_to_string()
        .ok()
        .and_then(|b| serde_json::from_str(&b).ok())
        .unwrap_or_default();
    body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["labels"]["trace_id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn every_exemplar_prometheus_stores_is_a_trace_the_collector_received() {
    let Some(rotel) = rotel::Rotel::start() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("vidperf-exemplars-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let port = rotel::free_port();
    let mut children = Killed(Vec::new());
    children.0.push(
        Command::new(support::example_binary("pipeline"))
            .args(["--serve", &format!("127.0.0.1:{port}")])
            .args(["--clips", "60", "--frames", "2", "--seed", "7"])
            .args(["--export-dir", &dir.join("export").to_string_lossy()])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", rotel.endpoint())
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .env("VIDPERF_TAIL_SAMPLING", "on")
            .env_remove("VIDPERF_HTTP_TOKEN")
            .env_remove("VIDPERF_ALERT_RULES")
            .env_remove("VIDPERF_BASELINE")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pipeline"),
    );
    let prometheus_port = rotel::free_port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: vidperf\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
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
        .arg("--enable-feature=exemplar-storage")
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
    // Prometheus scrapes while the pipeline works; wait for exemplars of several traces.
    let started = Instant::now();
    let traces = loop {
        let traces = exemplar_traces(&prometheus);
        if traces.len() >= 5 && started.elapsed() > Duration::from_secs(8) {
            break traces;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "Prometheus stored {} exemplars",
            traces.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // Every one of them reached the collector (kept by the tail sampler).
    let needles: Vec<String> = traces
        .iter()
        .map(|t| format!("Trace ID       : {t}"))
        .collect();
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    rotel.received(&needles);
    // And the tail sampler dropped some: the exemplars were chosen, not all traces.
    let health: Value = agent()
        .get(format!(
            "http://127.0.0.1:{port}/performance/stats?recent=0"
        ))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .and_then(|b| serde_json::from_str(&b).ok())
        .unwrap_or_default();
    let tail = &health["health"]["export"]["tail"];
    assert!(tail["kept"].is_object(), "{health}");
    let _ = std::fs::remove_dir_all(&dir);
}
