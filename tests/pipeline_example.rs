//! Runs the `pipeline` example binary as a newcomer would and checks what it prints and
//! writes. `cargo test` and `cargo nextest run` build examples before running tests, as
//! `target/<profile>/examples/pipeline-<hash>`; the newest such file is the one just built.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use vidperf::Figure;
use vidperf::export;

mod support;

fn example() -> PathBuf {
    support::example_binary("pipeline")
}

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(example());
    cmd.args(args);
    for var in [
        "VIDPERF_HISTORY_LIMIT",
        "VIDPERF_HTTP_ADDR",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn run(args: &[&str]) -> Output {
    command(args).output().expect("run pipeline")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vidperf-pipeline-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The rows (name → ops column) of the table whose header starts with `title`.
fn table(stdout: &str, title: &str) -> BTreeMap<String, u64> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with(title))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let mut cols = l.split_whitespace();
            let name = cols.next().expect("name").to_owned();
            (
                name,
                cols.next()
                    .and_then(|c| c.parse().ok())
                    .expect("ops column"),
            )
        })
        .collect()
}

#[test]
fn prints_the_tables_and_writes_agreeing_exports() {
    let dir = temp_dir("ok");
    let dir_arg = dir.to_str().expect("utf-8");
    let out = run(&[
        "--clips",
        "10",
        "--frames",
        "3",
        "--workers",
        "2",
        "--seed",
        "2",
        "--export-dir",
        dir_arg,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("10 clips processed by 2 workers"),
        "{stdout}"
    );

    let strategies = table(&stdout, "strategy");
    assert_eq!(strategies.get("degradation_router"), Some(&10));
    assert_eq!(
        strategies.get("auto"),
        Some(&20),
        "one api_request and one background_job per clip"
    );
    let operations = table(&stdout, "operation");
    for op in ["api_request", "background_job", "analysis", "enhancement"] {
        assert_eq!(operations.get(op), Some(&10), "{op}\n{stdout}");
    }

    let csv = export::read_csv(std::fs::File::open(dir.join(export::CSV_FILE_NAME)).expect("csv"))
        .expect("csv parses");
    let json =
        export::read_json(std::fs::File::open(dir.join(export::JSON_FILE_NAME)).expect("json"))
            .expect("json parses");
    assert_eq!(csv.len(), json.operations.len());
    for (c, j) in csv.iter().zip(&json.operations) {
        assert_eq!(c, &j.as_in_csv(), "CSV and JSON hold the same records");
    }
    let mut from_csv: BTreeMap<String, u64> = BTreeMap::new();
    for r in &csv {
        *from_csv.entry(r.strategy.clone()).or_default() += 1;
    }
    assert_eq!(
        from_csv, strategies,
        "the table counts what the exports hold"
    );
    for (name, s) in &json.statistics.by_strategy {
        assert_eq!(Some(&s.count), strategies.get(name));
    }
    // Each job is a child of its request (across threads), and work is a child of its job.
    let requests: Vec<_> = csv
        .iter()
        .filter(|r| r.operation_type == "api_request")
        .collect();
    assert_eq!(requests.len(), 10);
    for r in csv.iter().filter(|r| r.operation_type != "api_request") {
        assert!(
            requests.iter().any(|q| q.trace_id == r.trace_id),
            "{} {} has its request",
            r.operation_type,
            r.operation_id
        );
    }
    assert!(
        csv.iter().any(|r| !r.success),
        "some clips fail for real reasons"
    );
    assert!(
        csv.iter().all(|r| r.get(Figure::ProcessMemory).is_some()),
        "the resource monitor measured RAM"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_flags_and_settings_are_rejected_clearly() {
    let out = run(&["--clips", "many"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value 'many' for '--clips <N>'"),
        "{stderr}"
    );
    assert_eq!(run(&["--workers", "0"]).status.code(), Some(2));
    assert_eq!(run(&["--colour"]).status.code(), Some(2));
    let out = command(&["--clips", "1"])
        .env("VIDPERF_HISTORY_LIMIT", "lots")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("VIDPERF_HISTORY_LIMIT=\"lots\" is invalid"),
        "{stderr}"
    );
    // Malformed OpenTelemetry settings are build errors naming the variable too — also
    // the ones that used to be accepted at start and could only fail on every export.
    for (var, value) in [
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://127.0.0.1:1"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:99999"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "127.0.0.1:4318"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "garbage"),
        ("OTEL_RESOURCE_ATTRIBUTES", "%%%,,="),
        ("OTEL_SDK_DISABLED", "maybe"),
    ] {
        let mut cmd = command(&["--clips", "1"]);
        if var != "OTEL_EXPORTER_OTLP_ENDPOINT" {
            cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9");
        }
        let out = cmd
            .env("OTEL_TRACES_SAMPLER", "traceidratio")
            .env(var, value)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{var}={value:?} is invalid")),
            "{var}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{var}: fails before doing any work");
    }
    // The sampler argument is checked whatever the sampler; an empty endpoint is unset
    // (no export, and no "exporting … to " with nothing after it).
    let out = command(&[
        "--clips",
        "1",
        "--export-dir",
        &temp_dir("empty").to_string_lossy(),
    ])
    .env("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    .output()
    .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("exporting"));
    let out = command(&["--clips", "1"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        .env("OTEL_TRACES_SAMPLER_ARG", "abc")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    // VIDPERF switches and the token: a value outside the documented set, or a token a
    // client cannot send (beyond visible ASCII, a line break), is an error naming the
    // variable, never a silent default.
    for (var, value) in [
        ("VIDPERF_RESOURCE_MONITOR", "no"),
        ("VIDPERF_RESOURCE_MONITOR", "maybe"),
        ("VIDPERF_HTTP_TOKEN", "токен"),
        ("VIDPERF_HTTP_TOKEN", "two\nlines"),
        ("VIDPERF_HTTP_TOKEN", "with space"),
    ] {
        let out = command(&["--clips", "1", "--serve", "127.0.0.1:0"])
            .env(var, value)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{var}={value:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{var}={value:?} is invalid")),
            "{stderr}"
        );
    }
}

#[test]
fn clips_with_corrupt_frames_fail_cleanly_and_every_clip_is_counted() {
    // With one frame per clip, a corrupt clip's only frame is truncated: the router used
    // to index it unchecked, the worker panicked and the run hung.
    let dir = temp_dir("one-frame");
    let mut child = command(&[
        "--clips",
        "10",
        "--frames",
        "1",
        "--export-dir",
        &dir.to_string_lossy(),
    ])
    .stdout(Stdio::piped())
    .spawn()
    .expect("run");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the run hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    use std::io::Read as _;
    let _ = child
        .stdout
        .take()
        .map(|mut s| s.read_to_string(&mut stdout));
    assert!(status.success(), "{stdout}");
    let summary = stdout.lines().next().unwrap_or_default().to_owned();
    assert!(summary.starts_with("10 clips processed"), "{summary}");
    let failed: usize = summary
        .split(", ")
        .nth(1)
        .and_then(|part| part.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("failed count");
    let records = export::read_csv(
        std::fs::File::open(dir.join(export::CSV_FILE_NAME)).expect("CSV written"),
    )
    .expect("CSV parses");
    let requests: Vec<_> = records
        .iter()
        .filter(|r| r.operation_type == "api_request")
        .collect();
    assert_eq!(requests.len(), 10, "every clip's request recorded");
    assert_eq!(
        requests.iter().filter(|r| !r.success).count(),
        failed,
        "the summary counts the failures the exports hold"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sigterm_mid_run_stops_taking_clips_drains_and_writes_the_exports() {
    let dir = temp_dir("sigterm");
    let mut child = command(&[
        "--duration",
        "60",
        "--rate",
        "20",
        "--export-dir",
        &dir.to_string_lossy(),
    ])
    .stdout(Stdio::piped())
    .spawn()
    .expect("run");
    std::thread::sleep(Duration::from_secs(2));
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "did not stop within 20 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    use std::io::Read as _;
    let _ = child
        .stdout
        .take()
        .map(|mut s| s.read_to_string(&mut stdout));
    assert!(status.success(), "{status:?}\n{stdout}");
    assert!(stdout.contains("stopped by a signal"), "{stdout}");
    let json = export::read_json(
        std::fs::File::open(dir.join(export::JSON_FILE_NAME)).expect("JSON written"),
    )
    .expect("JSON parses");
    let submitted: u64 = stdout
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("clips processed");
    assert!(submitted > 0);
    let requests = json
        .operations
        .iter()
        .filter(|r| r.operation_type == "api_request")
        .count() as u64;
    assert_eq!(
        requests, submitted,
        "every submitted clip finished and was exported"
    );
    assert_eq!(
        json.statistics.summary.active_operations, 0,
        "nothing left in flight"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_non_loopback_address_is_warned_about_on_stderr() {
    let dir = temp_dir("exposed");
    let mut child = command(&[
        "--clips",
        "1",
        "--serve",
        "0.0.0.0:0",
        "--export-dir",
        &dir.to_string_lossy(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("run");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let serving = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("still serving"));
    assert!(serving);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let output = child.wait_with_output().expect("exit");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "warned once: {stderr}");
    assert!(warnings[0].contains("non-loopback") && warnings[0].contains("VIDPERF_HTTP_TOKEN"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_unwritable_export_dir_fails_at_once_with_its_path() {
    let file = temp_dir("file");
    std::fs::write(&file, b"not a directory").expect("setup");
    let out = run(&[
        "--clips",
        "2",
        "--frames",
        "2",
        "--export-dir",
        file.join("sub").to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "fails before doing any work");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot write") && stderr.contains("vidperf-pipeline-file"),
        "{stderr}"
    );
    let _ = std::fs::remove_file(file);
}

#[cfg(unix)]
#[test]
fn serve_keeps_the_api_up_until_sigterm_then_writes_the_exports() {
    let dir = temp_dir("serve");
    let mut child = command(&[
        "--clips",
        "4",
        "--frames",
        "2",
        "--serve",
        "127.0.0.1:0",
        "--export-dir",
        dir.to_str().expect("utf-8"),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("start pipeline");
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let wait_for = |needle: &str| -> String {
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .expect("pipeline output");
            if line.contains(needle) {
                return line;
            }
        }
    };
    let serving = wait_for("serving the vidperf API on http://");
    let addr = serving
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .expect("address")
        .to_owned();
    wait_for("still serving");

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let body = agent
        .get(format!("http://{addr}/performance/stats"))
        .call()
        .expect("stats")
        .into_body()
        .read_to_string()
        .expect("body");
    let snap: vidperf::StatsSnapshot = serde_json::from_str(&body).expect("snapshot");
    assert_eq!(
        snap.summary.total_operations, 16,
        "4 clips x request, job, analysis, enhancement"
    );
    assert!(
        !dir.join(export::CSV_FILE_NAME).exists(),
        "exports are written on shutdown"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("pipeline exits");
    assert!(exit.success(), "{exit:?}");
    let csv = export::read_csv(std::fs::File::open(dir.join(export::CSV_FILE_NAME)).expect("csv"))
        .expect("parses");
    assert_eq!(csv.len(), 16);
    let _ = std::fs::remove_dir_all(dir);
}

/// An empty value is unset for every variable the README documents (a deployment
/// template that leaves one blank gets the default, never a refused start).
#[test]
fn every_documented_variable_left_empty_means_unset() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .expect("README");
    let vars: Vec<&str> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `VIDPERF_"))
        .filter_map(|l| l.split('`').next())
        .collect();
    assert!(vars.len() >= 14, "{vars:?}");
    let mut cmd = command(&["--clips", "2"]);
    for var in &vars {
        cmd.env(format!("VIDPERF_{var}"), "");
    }
    let out = cmd.output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{vars:?}: {stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("operations"),
        "the run did its work"
    );
}

/// The README's comparison example at the example's default clip count: two runs of
/// `--seed 11`, the second with `--slowdown seedvr2=1.5`, give too few operations per
/// pair to judge, and `vidperf compare` says "Nothing judged" and exits 3 — not a
/// silent pass. (At the 300 clips the README states, the slowdown is flagged: the
/// release-build batches of docs/REGRESSIONS.md; a debug run of 300 clips takes
/// minutes.)
#[test]
fn the_readme_comparison_at_the_default_clip_count_judges_nothing_and_says_so() {
    let (base, slow) = (temp_dir("readme-base"), temp_dir("readme-slow"));
    let out = run(&["--seed", "11", "--export-dir", &base.to_string_lossy()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "--seed",
        "11",
        "--slowdown",
        "seedvr2=1.5",
        "--export-dir",
        &slow.to_string_lossy(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The `vidperf` binary of this build, beside the test's deps directory.
    let exe = std::env::current_exe().expect("test binary");
    let cli = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join(format!("vidperf{}", std::env::consts::EXE_SUFFIX));
    let out = Command::new(&cli)
        .arg("compare")
        .arg(base.join(export::JSON_FILE_NAME))
        .arg(slow.join(export::JSON_FILE_NAME))
        .env_remove("VIDPERF_HTTP_TOKEN")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (cargo build -p vidperf-cli)", cli.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("Nothing judged: no pair has 30 operations on both sides (the most: 24)"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&slow);
}
