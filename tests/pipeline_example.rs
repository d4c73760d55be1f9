//! Runs the `pipeline` example binary as a newcomer would and checks what it prints and
//! writes. `cargo test` and `cargo nextest run` build examples before running tests, as
//! `target/<profile>/examples/pipeline-<hash>`; the newest such file is the one just built.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

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
        assert_eq!(c, j, "CSV and JSON hold the same records");
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
        csv.iter().all(|r| r.peak_memory_bytes.is_some()),
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
    // Malformed OpenTelemetry settings are build errors naming the variable too.
    for (var, value) in [
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
    ] {
        let out = command(&["--clips", "1"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
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
