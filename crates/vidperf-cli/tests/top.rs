//! `vidperf top` without a terminal: `--once` against a real service (the `vidperf`
//! facade serving its HTTP API in this process), its errors (exit 2, the cause named),
//! `--record` / `--replay` of a recording and of an export, and the model's lints from
//! real stream events. The interactive view is driven in tmux by `tests/top.rs` at the
//! workspace root.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing_subscriber::prelude::*;
use vidperf_cli::top::model::{Model, Severity, StreamEvent, frame_from_event};
use vidperf_core::{Figure, FinishedSpan, OperationKey, SpanId, Stats, StatsConfig, TraceId};

fn vidperf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vidperf"))
        .args(args)
        .env_remove("VIDPERF_HTTP_TOKEN")
        .env_remove("NO_COLOR")
        .output()
        .expect("vidperf runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vidperf-top-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A service with three strategies' operations (SeedVR2's failing) and an alert rule
/// that fires at once; `token` guards its stream.
fn service(token: Option<&str>) -> (vidperf::Vidperf, String) {
    let rules = vidperf::watch::RuleSet::parse(
        "evaluation_interval = \"1s\"\n[[rule]]\nname = \"SlowSeedVR2\"\nmetric = \"duration_p95\"\nabove = 0.0\nwindow = \"1m\"\nmin_samples = 1\nstrategy = \"seedvr2\"\n",
        std::path::Path::new("rules.toml"),
    )
    .expect("rules");
    let mut config = vidperf::http::ApiConfig::default();
    if let Some(t) = token {
        config = config.with_token(t, vidperf::http::TokenScope::default());
    }
    let (layer, handle) = vidperf::builder()
        .without_env()
        .http_api("127.0.0.1:0".parse().expect("addr"))
        .http_api_config(config)
        .alert_rules(rules)
        .build()
        .expect("build");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        for (strategy, n) in [("vsrm", 12u64), ("seedvr2", 6), ("ditvr", 3)] {
            for i in 0..n {
                let span = tracing::info_span!(
                    "enhance",
                    operation = "enhancement",
                    strategy,
                    frames_processed = 30u64,
                    error = tracing::field::Empty
                );
                let _entered = span.enter();
                std::thread::sleep(Duration::from_millis(2));
                if strategy == "seedvr2" && i % 2 == 0 {
                    span.record("error", "out of memory");
                }
            }
        }
    });
    let url = format!("http://{}", handle.http_addr().expect("serving"));
    (handle, url)
}

/// Waits until the alert rule has fired (its first evaluation is within a second).
fn wait_firing(url: &str) {
    for _ in 0..100 {
        let out = vidperf(&["top", url, "--once"]);
        if text(&out.stdout).contains("SlowSeedVR2 firing") {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the alert never showed as firing");
}

#[test]
fn once_prints_one_plain_frame_that_fits_80x24() {
    let (handle, url) = service(None);
    wait_firing(&url);
    let out = vidperf(&["top", &url, "--once"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 24, "{stdout}");
    assert!(lines.iter().all(|l| l.chars().count() <= 80), "{stdout}");
    assert!(
        !stdout.contains('\u{1b}'),
        "plain text, no escapes: {stdout:?}"
    );
    // Every strategy, by rate: vsrm (12) above seedvr2 (6) above ditvr (3).
    let row = |name: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} row: {stdout}"))
    };
    assert!(
        row("vsrm") < row("seedvr2") && row("seedvr2") < row("ditvr"),
        "{stdout}"
    );
    // SeedVR2's failure share: 3 of 6.
    let seedvr2 = lines[row("seedvr2")];
    assert!(seedvr2.contains(" 50.0 "), "{seedvr2}");
    assert!(
        stdout.contains("✗ alert SlowSeedVR2 firing for seedvr2"),
        "{stdout}"
    );
    // No GPU here: the monitor's reason is shown.
    assert!(stdout.contains(" GPU "), "{stdout}");
    // The wide frame shows the trend and the rarer columns.
    let wide = text(&vidperf(&["top", &url, "--once", "--size", "160x40"]).stdout);
    assert!(
        wide.contains("p95 trend") && wide.contains("canc%"),
        "{wide}"
    );
    let _ = handle.shutdown(Duration::from_secs(5));
}

#[test]
fn running_operations_show_their_progress_as_it_moves() {
    let (layer, handle) = vidperf::builder()
        .without_env()
        .http_api("127.0.0.1:0".parse().expect("addr"))
        .build()
        .expect("build");
    let url = format!("http://{}", handle.http_addr().expect("serving"));
    let running = |url: &str| {
        let out = vidperf(&["top", url, "--once"]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
        stdout
            .lines()
            .find(|l| l.contains("enhancement/seedvr2"))
            .unwrap_or_else(|| panic!("seedvr2 not running: {stdout}"))
            .to_owned()
    };
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        let op = vidperf::Operation::start("enhancement", "seedvr2")
            .with_metadata("frames_total", 48u32);
        op.update("frames_processed", 12u32);
        let line = running(&url);
        assert!(line.contains("▕██░░░░░░▏ 12/48"), "{line}");
        op.update("frames_processed", 36u32);
        let line = running(&url);
        assert!(line.contains("▕██████░░▏ 36/48"), "{line}");
        // Without a total there is nothing to show but the age.
        let _plain = tracing::info_span!("enhance", operation = "enhancement", strategy = "vsrm");
        let out = text(&vidperf(&["top", &url, "--once"]).stdout);
        let vsrm = out
            .lines()
            .find(|l| l.contains("enhancement/vsrm"))
            .unwrap_or_else(|| panic!("vsrm not running: {out}"));
        assert!(!vsrm.contains('▕'), "{vsrm}");
        op.finish();
    });
    let _ = handle.shutdown(Duration::from_secs(5));
}

/// A web server that answers every request with `status` and an HTML page.
fn not_vidperf(status: &'static str) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let page = "<html>hello</html>";
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    url
}

fn refused(args: &[&str], needle: &str) {
    let out = vidperf(args);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: {stderr}{}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains(needle),
        "{args:?}: expected {needle:?} in {stderr}"
    );
}

#[test]
fn a_bad_url_token_or_file_exits_2_naming_the_cause() {
    refused(
        &["top", "ftp://example", "--once"],
        "ftp://example: not a service URL",
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    refused(
        &["top", &format!("http://{closed}"), "--once"],
        "cannot connect",
    );
    let (handle, url) = service(Some("s3cret"));
    refused(&["top", &url, "--once"], "401");
    refused(&["top", &url, "--once"], "--token");
    let wrong = vidperf(&["top", &url, "--once", "--token", "nope"]);
    assert_eq!(wrong.status.code(), Some(2));
    let right = vidperf(&["top", &url, "--once", "--token", "s3cret"]);
    assert_eq!(right.status.code(), Some(0), "{}", text(&right.stderr));
    assert!(text(&right.stdout).contains("vsrm"));
    let _ = handle.shutdown(Duration::from_secs(5));
    // Something else on the port: a 404, or an answer that is not an event stream.
    refused(
        &["top", &not_vidperf("404 Not Found"), "--once"],
        "is this a vidperf service?",
    );
    refused(
        &["top", &not_vidperf("200 OK"), "--once"],
        "not an event stream",
    );

    let dir = Dir::new("files");
    refused(
        &["top", "--replay", &dir.path("missing.jsonl"), "--once"],
        "missing.jsonl: cannot open",
    );
    std::fs::write(dir.path("garbage.txt"), "hello\n").expect("write");
    refused(
        &["top", "--replay", &dir.path("garbage.txt"), "--once"],
        "neither a recording",
    );
    std::fs::write(
        dir.path("cut.jsonl"),
        "{\"vidperf_recording\":1,\"url\":\"http://x\",\"started_at\":\"2026-01-01T00:00:00Z\"}\n",
    )
    .expect("write");
    refused(
        &["top", "--replay", &dir.path("cut.jsonl"), "--once"],
        "holds no event",
    );
    refused(&["top", "--once", "--size", "10x5"], "at least 40x12");
    refused(
        &["top", "--once", "--interval", "10ms"],
        "from 250ms to 60s",
    );
    // Without --once it needs a terminal, and says so.
    refused(
        &["top", "--replay", &dir.path("cut.jsonl")],
        "needs a terminal",
    );
}

/// The body of a frame: everything but its first line (the source and time) and its
/// last (the keys), which differ between live and replay.
fn body(frame: &str) -> Vec<&str> {
    let lines: Vec<&str> = frame.lines().collect();
    lines[1..lines.len() - 1].to_vec()
}

#[test]
fn a_recording_replays_the_frame_it_recorded() {
    let (handle, url) = service(None);
    let dir = Dir::new("record");
    let rec = dir.path("top.jsonl");
    let live = vidperf(&["top", &url, "--once", "--record", &rec]);
    assert_eq!(live.status.code(), Some(0), "{}", text(&live.stderr));
    let replayed = vidperf(&["top", "--replay", &rec, "--once"]);
    assert_eq!(
        replayed.status.code(),
        Some(0),
        "{}",
        text(&replayed.stderr)
    );
    let (live, replayed) = (text(&live.stdout), text(&replayed.stdout));
    assert!(
        live.lines().next().is_some_and(|l| l.contains("REC ")),
        "{live}"
    );
    assert!(
        replayed
            .lines()
            .next()
            .is_some_and(|l| l.contains("REPLAY 1/1")),
        "{replayed}"
    );
    assert_eq!(
        body(&live),
        body(&replayed),
        "live:\n{live}\nreplayed:\n{replayed}"
    );
    let _ = handle.shutdown(Duration::from_secs(5));
}

/// `strategy`'s operations ending every `every` from `from` to `to` seconds after `t0`,
/// each `seconds` long.
fn operations(
    stats: &Stats,
    t0: SystemTime,
    strategy: &str,
    (from, to, every): (u64, u64, u64),
    seconds: f64,
    id: &mut u64,
) {
    let mut t = from;
    while t <= to {
        *id += 1;
        let key = OperationKey {
            operation_type: Arc::from("enhancement"),
            strategy: Arc::from(strategy),
        };
        let ids = (
            TraceId::from_bytes([7; 16]),
            SpanId::from_bytes(id.to_be_bytes()),
        );
        let mut span = FinishedSpan::operation(
            key,
            ids,
            t0 + Duration::from_secs(t),
            Duration::from_secs_f64(seconds),
        );
        span.fields.frames_processed = Some(10);
        span.resources
            .figures
            .set(Figure::GpuMemory, Some(2.0 * f64::from(1u32 << 30)));
        stats.record(&span);
        t += every;
    }
}

#[test]
fn an_export_is_stepped_through_over_the_window() {
    let stats = Stats::new(StatsConfig::default());
    let t0 = SystemTime::now() - Duration::from_secs(600);
    let mut id = 0;
    // VSRM in the first two minutes only; SeedVR2 throughout, one every 2 s, 1.5 s each.
    operations(&stats, t0, "vsrm", (10, 120, 1), 0.25, &mut id);
    operations(&stats, t0, "seedvr2", (10, 300, 2), 1.5, &mut id);
    let dir = Dir::new("export");
    let path = dir.path("vidperf-export.json");
    vidperf_core::export::write_stats_json(std::fs::File::create(&path).expect("create"), &stats)
        .expect("write");
    // The last frame: at 300 s, over the minute before it: SeedVR2 alone, 30 operations.
    let last = vidperf(&["top", "--replay", &path, "--once", "--size", "120x30"]);
    let out = text(&last.stdout);
    assert_eq!(last.status.code(), Some(0), "{out}{}", text(&last.stderr));
    assert!(!out.contains("vsrm"), "{out}");
    let seedvr2 = out
        .lines()
        .find(|l| l.starts_with("seedvr2 "))
        .expect("seedvr2 row");
    // 30 in 60 s: 0.50/s; p50 1.50s; VRAM 2.0G; fps 10 frames / 1.5 s.
    for figure in ["0.50", "1.50s", "2.0G", "6.67"] {
        assert!(seedvr2.contains(figure), "{figure} in {seedvr2}");
    }
    assert!(out.contains("REPLAY 291/291"), "{out}");
    // Frame 51 (61 s): both, and the SeedVR2 operation running then (60.5 s to 62 s).
    let early = text(&vidperf(&["top", "--replay", &path, "--once", "--seek", "51"]).stdout);
    assert!(
        early.contains("vsrm ") && early.contains("seedvr2 "),
        "{early}"
    );
    assert!(
        early.contains("Running 1") && early.contains("enhancement/seedvr2"),
        "{early}"
    );
    // A five-minute window keeps VSRM in the last frame.
    let wide = text(&vidperf(&["top", "--replay", &path, "--once", "--window", "5m"]).stdout);
    assert!(wide.contains("vsrm "), "{wide}");
}

/// An event the way the service writes it, from real statistics, with `extra` fields.
fn event(stats: &Stats, extra: serde_json::Value) -> StreamEvent {
    let snapshot = stats.snapshot_with(
        vidperf_core::SnapshotOptions::default().with_window(Duration::from_secs(60)),
    );
    let mut json = serde_json::json!({
        "sequence": 3,
        "snapshot": snapshot,
        "finished": stats.records(),
        "finished_omitted": 0,
    });
    if let (Some(map), serde_json::Value::Object(more)) = (json.as_object_mut(), extra) {
        map.extend(more);
    }
    serde_json::from_value(json).expect("a stream event")
}

#[test]
fn regressions_and_single_sample_peaks_are_lints_with_their_reason() {
    let stats = Stats::new(StatsConfig::default());
    let key = OperationKey {
        operation_type: Arc::from("enhancement"),
        strategy: Arc::from("vsrm"),
    };
    let ids = (TraceId::from_bytes([1; 16]), SpanId::from_bytes([2; 8]));
    let mut span = FinishedSpan::operation(key, ids, SystemTime::now(), Duration::from_millis(4));
    span.resources.figures.set(Figure::ProcessMemory, Some(1e8));
    span.resources.samples = Some(1);
    stats.record(&span);
    let regressed = serde_json::json!({"regressions": [{
        "operation_type": "enhancement", "strategy": "vsrm", "figure": "p95_duration",
        "change": 0.18, "test": "sequential"
    }]});
    let mut model = Model::new(10);
    model.push_event(&event(&stats, regressed));
    let frame = model.last().expect("a frame");
    let reasons: Vec<(&str, &str, Severity)> = frame
        .lints
        .iter()
        .map(|l| (l.kind, l.reason.as_str(), l.severity))
        .collect();
    assert!(
        reasons.contains(&(
            "regression",
            "enhancement/vsrm p95_duration +18.0% against the baseline (sequential)",
            Severity::Error
        )),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|(k, r, _)| *k == "one-sample"
            && r.starts_with("vsrm: 1 op's peaks rest on one monitor sample (shortest 4 ms)")),
        "{reasons:?}"
    );
    // The finding stays for the next frames, without new single-sample operations.
    let later = event(&Stats::new(StatsConfig::default()), serde_json::json!({}));
    model.push_event(&later);
    assert!(
        model
            .last()
            .expect("frame")
            .lints
            .iter()
            .any(|l| l.kind == "one-sample")
    );
    // Without the list (an older service), the watcher's count says it.
    let mut old = event(&stats, serde_json::json!({}));
    old.regressions = None;
    let frame = frame_from_event(&old);
    assert!(frame.lints.iter().all(|l| l.kind != "regression"));
}

#[test]
fn the_table_sorts_by_name_and_by_figure_both_ways() {
    use vidperf_cli::top::view::{Column, Mode, View};
    let stats = Stats::new(StatsConfig::default());
    let t0 = SystemTime::now() - Duration::from_secs(30);
    let mut id = 0;
    operations(&stats, t0, "ditvr", (1, 3, 1), 0.5, &mut id);
    operations(&stats, t0, "vsrm", (1, 20, 1), 0.1, &mut id);
    operations(&stats, t0, "seedvr2", (1, 10, 1), 1.0, &mut id);
    let frame = frame_from_event(&event(&stats, serde_json::json!({})));
    let mode = Mode::Replay {
        what: String::new(),
        paused: true,
        speed: 1.0,
    };
    let mut view = View::new(mode, false);
    let names =
        |view: &View| -> Vec<String> { view.rows(&frame).iter().map(|r| r.name.clone()).collect() };
    assert_eq!(
        names(&view),
        ["vsrm", "seedvr2", "ditvr"],
        "rate, highest first"
    );
    view.descending = false;
    assert_eq!(
        names(&view),
        ["ditvr", "seedvr2", "vsrm"],
        "rate, lowest first"
    );
    view.sort = Column::Strategy;
    assert_eq!(names(&view), ["ditvr", "seedvr2", "vsrm"], "names, A to Z");
    view.descending = true;
    assert_eq!(names(&view), ["vsrm", "seedvr2", "ditvr"], "names, Z to A");
    view.sort = Column::P50;
    assert_eq!(
        names(&view),
        ["seedvr2", "ditvr", "vsrm"],
        "p50, highest first"
    );
    view.filter = "SEED".to_owned();
    assert_eq!(names(&view), ["seedvr2"], "the filter ignores case");
}
