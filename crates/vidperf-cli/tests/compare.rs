//! `vidperf compare` as a user runs it: the real binary on export files written by real
//! statistics, and on a live service's URL; exit 0 / 1 / 2 and what it prints.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};
use tracing_subscriber::prelude::*;
use vidperf_core::{FinishedSpan, OperationKey, SpanId, Stats, StatsConfig, TraceId};

fn vidperf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vidperf"))
        .args(args)
        .env_remove("VIDPERF_HTTP_TOKEN")
        .output()
        .expect("vidperf runs")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vidperf-cli-{name}-{}", std::process::id()));
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

/// Three strategies, `n` operations each (lognormal around 100/200/400 ms, σ 0.1),
/// SeedVR2's durations times `seedvr2_factor`; the history keeps only 50 records, so
/// the comparison must come from the exported distributions.
fn write_export(path: &str, n: usize, seedvr2_factor: f64, seed: u64) {
    let stats = Stats::new(StatsConfig::default().with_history_limit(50));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut i = 0u64;
    for (strategy, median) in [("vsrm", 0.1), ("seedvr2", 0.2), ("ditvr", 0.4)] {
        let factor = if strategy == "seedvr2" {
            seedvr2_factor
        } else {
            1.0
        };
        let dist = LogNormal::new(f64::ln(median), 0.1).expect("lognormal");
        for _ in 0..n {
            i += 1;
            let key = OperationKey {
                operation_type: Arc::from("enhancement"),
                strategy: Arc::from(strategy),
            };
            let ids = (
                TraceId::from_bytes([3; 16]),
                SpanId::from_bytes(i.to_be_bytes()),
            );
            let seconds = dist.sample(&mut rng) * factor;
            let mut span = FinishedSpan::operation(
                key,
                ids,
                SystemTime::now(),
                Duration::from_secs_f64(seconds),
            );
            span.fields.frames_processed = Some(30);
            span.fields.quality_score = Some(0.9);
            stats.record(&span);
        }
    }
    vidperf_core::export::write_stats_json(std::fs::File::create(path).expect("create"), &stats)
        .expect("write");
}

#[test]
fn the_same_run_twice_is_no_regression() {
    let dir = Dir::new("same");
    let (a, b) = (dir.path("a.json"), dir.path("b.json"));
    write_export(&a, 200, 1.0, 1);
    write_export(&b, 200, 1.0, 2);
    let out = vidperf(&["compare", &a, &b]);
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("No regression."), "{stdout}");
    assert!(stdout.contains("seedvr2"), "{stdout}");
    assert!(!stdout.contains("\x1b["), "no colour when not a terminal");
}

#[test]
fn a_slower_strategy_is_flagged_alone_and_exits_1() {
    let dir = Dir::new("slow");
    let (a, b) = (dir.path("a.json"), dir.path("b.json"));
    write_export(&a, 200, 1.0, 3);
    write_export(&b, 200, 1.3, 4);
    let out = vidperf(&["compare", &a, &b, "--format", "json"]);
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["regressed"], true);
    for pair in doc["comparison"]["pairs"].as_array().expect("pairs") {
        let expected = if pair["strategy"] == "seedvr2" {
            "regressed"
        } else {
            "unchanged"
        };
        assert_eq!(pair["verdict"], expected, "{pair}");
        assert_eq!(
            pair["baseline_operations"], 200,
            "all, not the 50 records kept"
        );
    }
    let markdown = vidperf(&["compare", &a, &b, "--format", "markdown"]);
    assert_eq!(code(&markdown), 1);
    let md = text(&markdown.stdout);
    assert!(md.contains("**Regression detected**"), "{md}");
    assert!(md.contains("| enhancement | seedvr2 |"), "{md}");
    assert!(md.contains("**regressed**"), "{md}");
    assert!(
        md.contains("Regressed: enhancement/seedvr2 p50_duration"),
        "{md}"
    );
}

#[test]
fn several_baselines_make_the_run_to_run_spread_part_of_the_judgement() {
    let dir = Dir::new("runs");
    // Five baseline runs in which SeedVR2 drifts by up to 15% between runs.
    let baselines: Vec<String> = [1.00, 1.10, 0.95, 1.15, 1.05]
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let path = dir.path(&format!("base{i}.json"));
            write_export(&path, 200, *f, 10 + i as u64);
            path
        })
        .collect();
    let within = dir.path("within.json");
    write_export(&within, 200, 1.12, 20);
    // Against the first run alone, 12% slower is a regression ...
    let out = vidperf(&["compare", &baselines[0], &within]);
    assert_eq!(code(&out), 1, "{}", text(&out.stdout));
    // ... against all five it is within their own spread.
    let mut args: Vec<&str> = vec!["compare"];
    args.extend(baselines.iter().map(String::as_str));
    args.push(&within);
    let out = vidperf(&args);
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("Judged against 5 baseline runs"),
        "{stdout}"
    );

    let slow = dir.path("slow.json");
    write_export(&slow, 200, 1.8, 21);
    let mut args: Vec<&str> = vec!["compare"];
    args.extend(baselines.iter().map(String::as_str));
    args.extend([slow.as_str(), "--format", "json"]);
    let out = vidperf(&args);
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["comparison"]["baselines"], 5);
    assert_eq!(doc["other_baselines"].as_array().map(Vec::len), Some(4));
    let seedvr2 = doc["comparison"]["pairs"]
        .as_array()
        .expect("pairs")
        .iter()
        .find(|p| p["strategy"] == "seedvr2")
        .expect("seedvr2");
    assert_eq!(seedvr2["verdict"], "regressed");
    let p50 = &seedvr2["figures"][0];
    assert_eq!(p50["figure"], "p50_duration");
    assert!(p50["threshold"].as_f64().is_some_and(|t| t > 0.1), "{p50}");

    // One argument is not enough.
    let out = vidperf(&["compare", &slow]);
    assert_eq!(code(&out), 2);
}

#[test]
fn a_0_1_0_export_still_reads() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../vidperf-core/tests/golden/export-0.1.0.json")
        .to_string_lossy()
        .into_owned();
    // Its few records judge nothing (exit 3); reading is what is checked here.
    let out = vidperf(&["compare", &golden, &golden, "--allow-insufficient"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("rebuilt from the records kept"),
        "{}",
        text(&out.stdout)
    );
}

fn refused(args: &[&str], needle: &str) {
    let out = vidperf(args);
    let stderr = text(&out.stderr);
    assert_eq!(code(&out), 2, "{args:?}: {stderr}");
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}");
}

#[test]
fn bad_input_exits_2_naming_the_file_and_the_fault() {
    let dir = Dir::new("bad");
    let good = dir.path("good.json");
    write_export(&good, 50, 1.0, 5);
    let missing = dir.path("missing.json");
    refused(
        &["compare", &missing, &good],
        &format!("baseline {missing}: cannot open"),
    );

    let truncated = dir.path("truncated.json");
    let bytes = std::fs::read(&good).expect("read");
    std::fs::write(&truncated, &bytes[..bytes.len() / 4]).expect("write");
    refused(
        &["compare", &good, &truncated],
        &format!("current {truncated}: malformed JSON export"),
    );

    let csv = dir.path("export.csv");
    std::fs::write(
        &csv,
        "operation_id,operation_type,strategy\n1,enhancement,vsrm\n",
    )
    .expect("write");
    refused(
        &["compare", &csv, &good],
        "a CSV export has no duration distributions",
    );

    let newer = dir.path("newer.json");
    std::fs::write(
        &newer,
        r#"{"format_version": 99, "exported_at": "2030-01-01T00:00:00Z", "statistics": {}, "operations": []}"#,
    )
    .expect("write");
    refused(&["compare", &newer, &good], "format_version 99 is newer");

    refused(&["compare", &good, &good, "--alpha", "2"], "alpha = 2");
    refused(&["compare", &good], "required");
}

#[test]
fn a_service_that_refuses_or_never_answers_exits_2() {
    let dir = Dir::new("url");
    let good = dir.path("good.json");
    write_export(&good, 50, 1.0, 6);
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    refused(
        &["compare", &format!("http://127.0.0.1:{port}"), &good],
        "cannot connect",
    );
    // Accepts the connection, never answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("addr"));
    let started = std::time::Instant::now();
    refused(
        &["compare", &good, &url, "--timeout", "1"],
        "no answer within 1 s",
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_live_service_is_compared_with_a_file() {
    let dir = Dir::new("live");
    let baseline = dir.path("baseline.json");
    write_export(&baseline, 100, 1.0, 7);
    let (layer, vidperf_handle) = vidperf::builder()
        .without_env()
        .http_api("127.0.0.1:0".parse().expect("addr"))
        .build()
        .expect("build");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..40u64 {
            let span = tracing::info_span!(
                "enhance",
                operation = "enhancement",
                strategy = "vsrm",
                frames_processed = 30u64
            );
            let _entered = span.enter();
            std::hint::black_box(i);
        }
    });
    let addr = vidperf_handle.http_addr().expect("serving");
    let out = vidperf(&["compare", &baseline, &format!("http://{addr}")]);
    let stdout = text(&out.stdout);
    // The live vsrm operations take microseconds against the file's 100 ms: an
    // improvement, not a regression.
    assert_eq!(code(&out), 0, "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("current:  http://{addr} (40 operations")),
        "{stdout}"
    );
    assert!(stdout.contains("improved"), "{stdout}");
    let _ = vidperf_handle.shutdown(Duration::from_secs(5));
}

/// A server that sends its headers, then one byte of body every 200 ms, forever.
fn trickling_server(content_length: &'static str) -> String {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n{{\"format_version\": 2, \"x\": \""
                );
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                loop {
                    std::thread::sleep(Duration::from_millis(200));
                    if stream.write_all(b"a").is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// `--timeout` is the whole exchange — connect, headers and body — even against a
/// server that drips a byte now and then.
#[test]
fn the_timeout_is_a_total_deadline_against_a_trickling_server() {
    let dir = Dir::new("trickle");
    let good = dir.path("good.json");
    write_export(&good, 50, 1.0, 8);
    let url = trickling_server("100000000");
    let started = std::time::Instant::now();
    let out = vidperf(&["compare", &good, &url, "--timeout", "2"]);
    let took = started.elapsed();
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("within 2 s"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        took < Duration::from_secs(6),
        "waited {took:?} for a 2 s timeout"
    );
}

/// A body past the cap (256 MiB) is refused, not read into memory.
#[test]
fn a_body_over_the_cap_is_refused() {
    let dir = Dir::new("huge");
    let good = dir.path("good.json");
    write_export(&good, 50, 1.0, 9);
    let url = trickling_server("1073741824");
    let out = vidperf(&["compare", &good, &url, "--timeout", "1"]);
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("larger than 256 MiB"),
        "announced at 1 GiB: {}",
        text(&out.stderr)
    );
}

/// Corrupt exports are refused naming what is wrong, never judged: a file cut inside
/// `operations`, garbage after the document, histograms that cannot be.
#[test]
fn corrupt_exports_exit_2_naming_the_fault() {
    let dir = Dir::new("corrupt");
    let good = dir.path("good.json");
    write_export(&good, 60, 1.0, 10);
    let text_of = std::fs::read_to_string(&good).expect("read");
    let cut = dir.path("cut.json");
    let at = text_of.rfind("\"operation_id\"").expect("records");
    std::fs::write(&cut, &text_of[..at]).expect("write");
    refused(&["compare", &good, &cut], "malformed JSON export");
    let tail = dir.path("tail.json");
    std::fs::write(&tail, format!("{text_of}garbage")).expect("write");
    refused(&["compare", &good, &tail], "after the export");
    let doc: serde_json::Value = serde_json::from_str(&text_of).expect("json");
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut d = doc.clone();
        edit(&mut d);
        let path = dir.path("edited.json");
        std::fs::write(&path, serde_json::to_string(&d).expect("json")).expect("write");
        path
    };
    let first_pair =
        |d: &mut serde_json::Value| -> serde_json::Value { d["statistics"]["pairs"][0].clone() };
    assert!(
        first_pair(&mut doc.clone()).is_object(),
        "format 2 has pairs"
    );
    for (name, edit, needle) in [
        (
            "zero width",
            Box::new(|d: &mut serde_json::Value| {
                d["statistics"]["pairs"][0]["duration_histogram"][0][1] = 0.into()
            }) as Box<dyn Fn(&mut serde_json::Value)>,
            "duration_histogram",
        ),
        (
            "overflowing width",
            Box::new(|d: &mut serde_json::Value| {
                d["statistics"]["pairs"][0]["duration_histogram"][0][1] = u64::MAX.into()
            }),
            "duration_histogram",
        ),
        (
            "unsorted",
            Box::new(|d: &mut serde_json::Value| {
                let h = d["statistics"]["pairs"][0]["duration_histogram"]
                    .as_array_mut()
                    .expect("histogram");
                h.reverse();
            }),
            "duration_histogram",
        ),
        (
            "counts that do not add up",
            Box::new(|d: &mut serde_json::Value| {
                d["statistics"]["pairs"][0]["statistics"]["count"] = 1_000_000.into()
            }),
            "count",
        ),
        (
            "u64 overflow",
            Box::new(|d: &mut serde_json::Value| {
                d["statistics"]["pairs"][0]["duration_histogram"][0][2] = (u64::MAX - 5).into()
            }),
            "duration_histogram",
        ),
    ] {
        let path = with(&*edit);
        let out = vidperf(&["compare", &good, &path]);
        assert_eq!(code(&out), 2, "{name}: {}", text(&out.stdout));
        assert!(
            text(&out.stderr).contains(needle),
            "{name}: {}",
            text(&out.stderr)
        );
    }
}

/// Nothing judged is not a pass: with too few operations on every pair (or a filter
/// that matches none) the report says so and exits 3; `--allow-insufficient` makes it
/// 0; a comparison that judged something keeps 0 and 1.
#[test]
fn nothing_judged_exits_3_unless_allowed() {
    let dir = Dir::new("insufficient");
    let (a, b) = (dir.path("a.json"), dir.path("b.json"));
    write_export(&a, 10, 1.0, 21);
    write_export(&b, 10, 1.5, 22);
    let out = vidperf(&["compare", &a, &b]);
    let stdout = text(&out.stdout);
    assert_eq!(code(&out), 3, "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("Nothing judged: no pair has 30 operations on both sides (the most: 10)"),
        "{stdout}"
    );
    assert!(!stdout.contains("No regression"), "{stdout}");
    let out = vidperf(&["compare", &a, &b, "--allow-insufficient"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stdout));
    let out = vidperf(&["compare", &a, &b, "--format", "json"]);
    assert_eq!(code(&out), 3);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["judged"], 0);
    assert_eq!(doc["regressed"], false);
    let out = vidperf(&["compare", &a, &b, "--format", "markdown"]);
    assert_eq!(code(&out), 3);
    assert!(text(&out.stdout).contains("**Nothing judged**"));
    // Enough operations: judged, so 0 for an A/A and 1 for a slowdown.
    let (c, d) = (dir.path("c.json"), dir.path("d.json"));
    write_export(&c, 60, 1.0, 23);
    write_export(&d, 60, 1.0, 24);
    let out = vidperf(&["compare", &c, &d, "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stdout));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["judged"], 3);
    // A filter that matches no pair judges nothing.
    let out = vidperf(&["compare", &c, &d, "--strategy", "nosuch"]);
    assert_eq!(code(&out), 3);
    assert!(
        text(&out.stdout).contains("no pair matched"),
        "{}",
        text(&out.stdout)
    );
}
