//! Runs the `pipeline` example binary as a newcomer would and checks what it prints and
//! writes. `cargo test` and `cargo nextest run` build examples before running tests, as
//! `target/<profile>/examples/pipeline-<hash>`; the newest such file is the one just built.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use vidperf::export;

fn example() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join("examples");
    let suffix = std::env::consts::EXE_SUFFIX;
    let newest = std::fs::read_dir(&dir)
        .expect("examples dir: build the examples first (cargo build --examples)")
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("pipeline-")
                .and_then(|rest| {
                    rest.strip_suffix(suffix)
                        .or(Some(rest))
                        .filter(|_| suffix.is_empty() || name.ends_with(suffix))
                })
                .is_some_and(|hash| hash.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
    newest
        .expect("no pipeline example binary: build the examples first (cargo build --examples)")
        .path()
}

fn run(args: &[&str]) -> Output {
    Command::new(example())
        .args(args)
        .env_remove("VIDPERF_HISTORY_LIMIT")
        .output()
        .expect("run pipeline")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vidperf-pipeline-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn prints_the_table_and_writes_agreeing_exports() {
    let dir = temp_dir("ok");
    let out = run(&[
        "--clips",
        "10",
        "--frames",
        "3",
        "--seed",
        "3",
        "--export-dir",
        dir.to_str().expect("utf-8"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("10 clips processed"), "{stdout}");

    // The table: strategy name and operation count per row.
    let table: BTreeMap<String, u64> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("strategy"))
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
        .collect();
    assert_eq!(table.get("degradation_router"), Some(&10));
    assert_eq!(table.get("pipeline"), Some(&10), "one api_request per clip");

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
    assert_eq!(from_csv, table, "the table counts what the exports hold");
    for (name, s) in &json.statistics.by_strategy {
        assert_eq!(Some(&s.count), table.get(name));
    }
    // Children link to their request.
    let requests: Vec<_> = csv
        .iter()
        .filter(|r| r.operation_type == "api_request")
        .collect();
    let enhancements = csv.iter().filter(|r| r.operation_type == "enhancement");
    for e in enhancements {
        assert!(
            requests.iter().any(|r| r.trace_id == e.trace_id),
            "enhancement {} has its request",
            e.operation_id
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_flags_are_rejected_clearly() {
    let out = run(&["--clips", "many"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--clips expects a whole number"),
        "{stderr}"
    );
    let out = run(&["--colour"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_unwritable_export_dir_fails_with_its_path() {
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
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot write") && stderr.contains("vidperf-pipeline-file"),
        "{stderr}"
    );
    let _ = std::fs::remove_file(file);
}
