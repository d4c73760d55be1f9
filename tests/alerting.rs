//! Alert rules evaluated in the service and delivered to a real Alertmanager: the example
//! pipeline with SeedVR2 twice as slow fires `SeedVR2Slow` within `for` plus two evaluation
//! intervals and resolves once the slowdown ends; Alertmanager answering 500 is retried
//! and counted; a wrong rule file stops the start naming file, line and field.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

#[path = "support/alertmanager.rs"]
mod alertmanager;
#[path = "support/collector.rs"]
mod collector;
mod support;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vidperf-alerting-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn pipeline(args: &[&str]) -> Command {
    let mut cmd = Command::new(support::example_binary("pipeline"));
    cmd.args(args);
    for var in [
        "VIDPERF_HTTP_TOKEN",
        "VIDPERF_ALERT_RULES",
        "VIDPERF_ALERTMANAGER_URL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// SeedVR2's 95th-percentile duration in a run without slowdown, seconds (one frame per
/// clip: a corrupt clip then fails at the router, so SeedVR2 only does real work).
fn calibrate(dir: &std::path::Path) -> f64 {
    let out = pipeline(&[
        "--clips",
        "30",
        "--frames",
        "1",
        "--seed",
        "3",
        "--export-dir",
        &dir.to_string_lossy(),
    ])
    .output()
    .expect("calibration run");
    assert!(out.status.success());
    let json = vidperf::export::read_json(
        std::fs::File::open(dir.join(vidperf::export::JSON_FILE_NAME)).expect("export"),
    )
    .expect("JSON");
    json.statistics.by_strategy["seedvr2"]
        .duration
        .as_ref()
        .expect("seedvr2 ran")
        .p95_seconds
}

fn get_json(url: &str) -> Value {
    let body = ureq::get(url)
        .call()
        .expect("GET")
        .into_body()
        .read_to_string()
        .expect("body");
    serde_json::from_str(&body).expect("JSON")
}

fn time(v: &Value) -> SystemTime {
    humantime::parse_rfc3339(v.as_str().expect("a time")).expect("RFC 3339")
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let started = Instant::now();
    while child.try_wait().ok().flatten().is_none() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
}

#[test]
fn a_slowdown_fires_at_alertmanager_in_time_and_resolves_when_it_ends() {
    let Some(am) = alertmanager::Alertmanager::start() else {
        return;
    };
    let dir = temp_dir("slowdown");
    let normal = calibrate(&dir);
    // Twice as slow must cross 1.5 times the normal p95; 1.25 times is back to normal.
    let threshold = normal * 1.5;
    let rules = dir.join("alerts.toml");
    std::fs::write(
        &rules,
        format!(
            r#"evaluation_interval = "1s"
resend_interval = "5s"

[[rule]]
name = "SeedVR2Slow"
strategy = "seedvr2"
metric = "duration_p95"
above = {threshold}
recover_below = {recover}
window = "20s"
for = "2s"
min_samples = 2
severity = "warning"
summary = "SeedVR2 p95 {{{{value}}}} s over {{{{threshold}}}} s"
"#,
            recover = normal * 1.25
        ),
    )
    .expect("rules");
    let port = alertmanager::free_port();
    let mut child = pipeline(&[
        "--serve",
        &format!("127.0.0.1:{port}"),
        "--duration",
        "120",
        "--rate",
        "2",
        "--frames",
        "1",
        "--slowdown",
        "seedvr2=2",
        "--slowdown-for",
        "20",
        "--export-dir",
        &dir.to_string_lossy(),
    ])
    .env("VIDPERF_ALERT_RULES", &rules)
    .env("VIDPERF_ALERTMANAGER_URL", &am.url)
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("pipeline");
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).count());
    let api = format!("http://127.0.0.1:{port}");

    // Firing: seen by Alertmanager, and by the service's own API with its timestamps.
    let started = Instant::now();
    let (received, service) = loop {
        let alerts = am.alerts();
        if let Some(alert) = alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == "SeedVR2Slow")
        {
            let received = SystemTime::now();
            let service = get_json(&format!("{api}/performance/alerts"));
            break (received, (alert.clone(), service));
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "SeedVR2Slow never reached Alertmanager (threshold {threshold:.3} s)"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let (alert, document) = service;
    assert_eq!(alert["labels"]["strategy"], "seedvr2");
    assert_eq!(alert["labels"]["severity"], "warning");
    let summary = alert["annotations"]["summary"].as_str().expect("summary");
    assert!(summary.starts_with("SeedVR2 p95 "), "{summary}");
    let firing = document["alerts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == "SeedVR2Slow"))
        .expect("the service lists it");
    assert_eq!(firing["state"], "firing");
    let active_since = time(&firing["active_since"]);
    let firing_since = time(&firing["firing_since"]);
    let for_plus_two = Duration::from_secs(2 + 2);
    let to_fire = firing_since
        .duration_since(active_since)
        .expect("fires after it holds");
    assert!(
        to_fire >= Duration::from_secs(2),
        "waited `for`: {to_fire:?}"
    );
    let to_alertmanager = received.duration_since(active_since).unwrap_or_default();
    assert!(
        to_alertmanager <= for_plus_two + Duration::from_millis(500),
        "reached Alertmanager {to_alertmanager:?} after the condition started holding"
    );
    // Alertmanager keeps startsAt to the millisecond.
    let starts_at = time(&alert["startsAt"]);
    let apart = firing_since
        .duration_since(starts_at)
        .unwrap_or_else(|e| e.duration());
    assert!(
        apart < Duration::from_millis(1),
        "startsAt {starts_at:?} is when it fired ({firing_since:?})"
    );
    let metrics = ureq::get(format!("{api}/metrics"))
        .call()
        .expect("metrics")
        .into_body()
        .read_to_string()
        .expect("body");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("vidperf_alert_state{")
                && l.contains("alertname=\"SeedVR2Slow\"")
                && l.ends_with(" 2")),
        "{metrics}"
    );

    // The slowdown ends after 20 s; the 20 s window empties of slow operations and the
    // alert resolves, at the service and at Alertmanager.
    let started = Instant::now();
    loop {
        let listed = am
            .alerts()
            .iter()
            .any(|a| a["labels"]["alertname"] == "SeedVR2Slow");
        if !listed {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "SeedVR2Slow never resolved"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let document = get_json(&format!("{api}/performance/alerts"));
    assert!(
        document["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().all(|a| a["name"] != "SeedVR2Slow")),
        "{document}"
    );
    let health = get_json(&format!("{api}/performance/stats"))["health"]["watch"].clone();
    assert!(health["evaluations"].as_u64() > Some(10), "{health}");
    assert!(
        health["alertmanager"]["sent"].as_u64() >= Some(2),
        "{health}"
    );
    stop(child);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn alertmanager_answering_500_is_retried_and_counted() {
    use tracing_subscriber::prelude::*;

    // 500 for the first three requests, then 200.
    let (url, requests) = collector::scripted_collector(|n| {
        if n < 3 {
            ("500 Internal Server Error", "", Duration::ZERO)
        } else {
            ("200 OK", "", Duration::ZERO)
        }
    });
    let rules = vidperf::watch::RuleSet::parse(
        "evaluation_interval = \"200ms\"\n[[rule]]\nname = \"Busy\"\nmetric = \"active_operations\"\nabove = -1\n",
        std::path::Path::new("inline.toml"),
    )
    .expect("rules");
    let (layer, vidperf) = vidperf::builder()
        .without_env()
        .without_resource_monitor()
        .without_otlp()
        .alert_rules(rules)
        .alertmanager(url)
        .build()
        .expect("build");
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    // An operation running: `Busy` (more than -1 running) fires for its strategy.
    let _running = tracing::info_span!("op", strategy = "vsrm").entered();
    let started = Instant::now();
    let delivery = loop {
        let health = vidperf
            .snapshot()
            .health
            .part::<vidperf::watch::WatchHealth>("watch")
            .expect("watch health");
        let delivery = health.alertmanager.expect("delivery health");
        if delivery.sent >= 1 {
            break delivery;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never delivered: {delivery:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(delivery.failed_attempts >= 3, "{delivery:?}");
    assert!(
        delivery
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("500")),
        "{delivery:?}"
    );
    assert!(requests.load(std::sync::atomic::Ordering::SeqCst) >= 4);
    assert_eq!(vidperf.alerts().expect("alerts").alerts[0].name, "Busy");
    let _ = vidperf.shutdown(Duration::from_secs(5));
}

#[test]
fn a_wrong_rule_file_stops_the_start_naming_file_line_and_field() {
    let dir = temp_dir("bad-rules");
    let rules = dir.join("alerts.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"Slow\"\nmetric = \"duration_p95\"\nabove = 1\nwindow = \"5 parsecs\"\n",
    )
    .expect("rules");
    let out = pipeline(&["--clips", "1", "--export-dir", &dir.to_string_lossy()])
        .env("VIDPERF_ALERT_RULES", &rules)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:5: `window`: \"5 parsecs\" is not a duration",
            rules.display()
        )),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// More firing alerts than the outage bound (1,024) all reach a healthy Alertmanager:
/// 250 rules × 5 strategies = 1,250 alerts, posted in batches.
#[test]
fn every_firing_alert_reaches_a_healthy_alertmanager() {
    use tracing_subscriber::prelude::*;
    let Some(am) = alertmanager::Alertmanager::start() else {
        return;
    };
    let mut text = String::from("evaluation_interval = \"200ms\"\nresend_interval = \"1h\"\n");
    for i in 0..250 {
        text.push_str(&format!(
            "[[rule]]\nname = \"Busy{i}\"\nmetric = \"duration_p50\"\nabove = -1\nmin_samples = 1\n"
        ));
    }
    let rules =
        vidperf::watch::RuleSet::parse(&text, std::path::Path::new("many.toml")).expect("rules");
    let (layer, vidperf) = vidperf::builder()
        .without_env()
        .without_resource_monitor()
        .without_otlp()
        .alert_rules(rules)
        .alertmanager(am.url.clone())
        .build()
        .expect("build");
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    for s in ["a", "b", "c", "d", "e"] {
        drop(tracing::info_span!("op", strategy = s));
    }
    let started = Instant::now();
    loop {
        let received = am.alerts().len();
        if received >= 1_250 {
            assert_eq!(received, 1_250);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Alertmanager holds {received} of 1250 alerts: {:?}",
            vidperf
                .snapshot()
                .health
                .part::<vidperf::watch::WatchHealth>("watch")
                .and_then(|w| w.alertmanager)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let delivery = vidperf
        .snapshot()
        .health
        .part::<vidperf::watch::WatchHealth>("watch")
        .and_then(|w| w.alertmanager)
        .expect("delivery");
    assert_eq!(delivery.dropped, 0, "{delivery:?}");
    let _ = vidperf.shutdown(Duration::from_secs(5));
}

/// Durations and text a rule file gives are bounded at parse time, refused naming the
/// file, line and field: nothing later can overflow, and memory follows the caps.
#[test]
fn hostile_rule_files_are_refused_naming_the_field() {
    let parse = |text: &str| {
        vidperf::watch::RuleSet::parse(text, std::path::Path::new("hostile.toml"))
            .expect_err("refused")
            .to_string()
    };
    let rule = "[[rule]]\nname = \"R\"\nmetric = \"duration_p95\"\nabove = 1\n";
    for (text, needle) in [
        (
            format!("resend_interval = \"999999999h\"\n{rule}"),
            "hostile.toml:1: `resend_interval`: \"999999999h\" is longer than 7 days",
        ),
        (
            format!("resend_interval = \"18446744073709551615s\"\n{rule}"),
            "`resend_interval`",
        ),
        (
            format!("evaluation_interval = \"30d\"\n{rule}"),
            "`evaluation_interval`",
        ),
        (
            format!("{rule}for = \"8d\"\n"),
            "hostile.toml:5: `for`: \"8d\" is longer than 7 days",
        ),
        (
            format!("{rule}keep_firing_for = \"100000h\"\n"),
            "`keep_firing_for`",
        ),
        (
            format!("{rule}summary = \"{}\"\n", "x".repeat(50_000)),
            "`summary`: is 50000 characters long; at most 2048",
        ),
        (
            format!("{rule}description = \"{}\"\n", "x".repeat(3_000)),
            "`description`",
        ),
        (
            format!(
                "[[rule]]\nname = \"{}\"\nmetric = \"duration_p95\"\nabove = 1\n",
                "n".repeat(201)
            ),
            "`name`: is 201 characters",
        ),
        (
            format!("{rule}[rule.labels]\nteam = \"{}\"\n", "v".repeat(2_000)),
            "`labels`",
        ),
    ] {
        let error = parse(&text);
        assert!(error.contains(needle), "{error}");
    }
    let many: String = (0..1_001)
        .map(|i| format!("[[rule]]\nname = \"R{i}\"\nmetric = \"duration_p95\"\nabove = 1\n"))
        .collect();
    assert!(
        parse(&many).contains("1001 rules; at most 1000"),
        "{}",
        parse(&many)
    );
    // A 50 MB rule file is not read whole.
    let dir = temp_dir("huge-rules");
    let path = dir.join("huge.toml");
    std::fs::write(
        &path,
        format!("{rule}summary = \"{}\"\n", "x".repeat(50 << 20)),
    )
    .expect("write");
    let error = vidperf::watch::RuleSet::from_file(&path)
        .expect_err("refused")
        .to_string();
    assert!(error.contains("larger than 4 MiB"), "{error}");
}
