//! JSON and CSV: round trips, hostile strings, formula neutralisation, files.

use tracing::info_span;
use vidperf::export::{self, CSV_COLUMNS, ReadError};
use vidperf::{FieldValue, OperationRecord};

use crate::run;

const HOSTILE: &[&str] = &[
    "=HYPERLINK(\"http://evil\")",
    "+1+2",
    "-3",
    "@SUM(A1)",
    "\tTAB",
    "\rCR",
    "'already quoted",
    "comma, \"quote\" and\nnewline",
    "ünïcödé ✓ 中文 🎞",
    "",
    " leading space",
    "\u{0}nul and \u{1b}[31mescape",
];

fn hostile_records() -> Vec<OperationRecord> {
    let vidperf = run(|| {
        for (i, text) in HOSTILE.iter().enumerate() {
            let span = info_span!(
                "op",
                strategy = *text,
                operation = *text,
                note = *text,
                frames_processed = i as u64,
                error = tracing::field::Empty,
            );
            if i % 2 == 0 {
                span.record("error", *text);
            }
        }
    });
    vidperf.stats().records()
}

#[test]
fn csv_round_trips_hostile_strings() {
    let records = hostile_records();
    let mut out = Vec::new();
    export::write_csv(&mut out, &records).expect("write");
    let back = export::read_csv(out.as_slice()).expect("read");
    let held: Vec<_> = records.iter().map(OperationRecord::as_in_csv).collect();
    assert_eq!(back, held);
}

#[test]
fn csv_cells_never_start_a_formula() {
    let records = hostile_records();
    let mut out = Vec::new();
    export::write_csv(&mut out, &records).expect("write");
    let mut reader = csv::Reader::from_reader(out.as_slice());
    assert_eq!(
        reader.headers().expect("header").iter().collect::<Vec<_>>(),
        CSV_COLUMNS
    );
    let mut rows = 0;
    for row in reader.records() {
        let row = row.expect("row");
        rows += 1;
        for cell in &row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "cell {cell:?} would run as a formula"
            );
        }
    }
    assert_eq!(rows, HOSTILE.len());
}

#[test]
fn csv_writes_empty_cells_for_unmeasured_values() {
    let vidperf = run(|| {
        let _span = info_span!("op", strategy = "vsrm");
    });
    let mut out = Vec::new();
    vidperf::export::write_stats_csv(&mut out, vidperf.stats()).expect("write");
    let mut reader = csv::Reader::from_reader(out.as_slice());
    let row = reader.records().next().expect("one row").expect("valid");
    let cell = |name: &str| {
        row.get(CSV_COLUMNS.iter().position(|c| *c == name).expect(name))
            .expect(name)
    };
    for column in [
        "frames_processed",
        "quality_score",
        "peak_memory_mb",
        "peak_gpu_memory_mb",
        "samples",
        "error_message",
        "metadata",
    ] {
        assert_eq!(cell(column), "", "{column}");
    }
    assert_eq!(cell("success"), "true");
    assert!(cell("start_time").ends_with('Z'));
}

#[test]
fn json_round_trips_records_and_statistics() {
    let records = hostile_records();
    let vidperf = run(|| {
        let _span = info_span!(
            "op",
            strategy = "vsrm",
            quality_score = 0.25,
            odd = f64::INFINITY,
            big = u64::MAX
        );
    });
    let mut out = Vec::new();
    vidperf::export::write_stats_json(&mut out, vidperf.stats()).expect("write");
    let doc = export::read_json(out.as_slice()).expect("read");
    assert_eq!(doc.format_version, export::JSON_FORMAT_VERSION);
    assert_eq!(doc.statistics.summary.total_operations, 1);
    assert_eq!(
        doc.operations,
        vidperf
            .stats()
            .records()
            .into_iter()
            .map(|mut r| {
                // Non-finite floats are written as text (JSON has no such numbers).
                r.metadata
                    .insert("odd".into(), FieldValue::Str("inf".into()));
                r
            })
            .collect::<Vec<_>>()
    );
    assert_eq!(doc.operations[0].metadata["big"], FieldValue::U64(u64::MAX));

    let mut out = Vec::new();
    let snapshot = vidperf.snapshot();
    export::write_json(&mut out, &snapshot, &records).expect("write");
    assert_eq!(
        export::read_json(out.as_slice()).expect("read").operations,
        records
    );
}

#[test]
fn files_are_written_whole_into_the_export_dir() {
    let vidperf = run(|| {
        let _span = info_span!("op", strategy = "vsrm", frames_processed = 5);
    });
    let dir = std::env::temp_dir()
        .join(format!("vidperf-test-{}", std::process::id()))
        .join("nested");
    let paths = vidperf.write_exports(&dir).expect("write");
    let csv = export::read_csv(std::fs::File::open(&paths.csv).expect("csv")).expect("parse csv");
    let json =
        export::read_json(std::fs::File::open(&paths.json).expect("json")).expect("parse json");
    let json_in_csv: Vec<_> = json
        .operations
        .iter()
        .map(OperationRecord::as_in_csv)
        .collect();
    assert_eq!(csv, json_in_csv);
    assert_eq!(csv.len(), 1);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files left: {leftovers:?}"
    );
    let _ = std::fs::remove_dir_all(dir.parent().expect("parent"));
}

#[test]
fn a_failed_export_leaves_the_previous_pair_and_no_temporary_file() {
    let first = run(|| {
        let _span = info_span!("op", strategy = "vsrm", frames_processed = 1);
    });
    let dir = std::env::temp_dir().join(format!("vidperf-pair-{}", std::process::id()));
    let paths = first.write_exports(&dir).expect("first pair");
    let (json_before, csv_before) = (
        std::fs::read(&paths.json).expect("json"),
        std::fs::read(&paths.csv).expect("csv"),
    );
    // The CSV cannot be written (its temporary name is taken by a directory): the JSON,
    // written first, must not replace the old one alone.
    let blocker = dir.join(format!(
        "{}.tmp-{}",
        export::CSV_FILE_NAME,
        std::process::id()
    ));
    std::fs::create_dir(&blocker).expect("blocker");
    let second = run(|| {
        for _ in 0..3 {
            let _span = info_span!("op", strategy = "seedvr2", frames_processed = 2);
        }
    });
    let err = second
        .write_exports(&dir)
        .expect_err("the CSV cannot be written");
    assert!(err.to_string().contains(export::CSV_FILE_NAME), "{err}");
    assert_eq!(std::fs::read(&paths.json).expect("json"), json_before);
    assert_eq!(std::fs::read(&paths.csv).expect("csv"), csv_before);
    std::fs::remove_dir(&blocker).expect("blocker");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn temporary_files_of_dead_processes_are_removed_on_the_next_export() {
    let vidperf = run(|| {
        let _span = info_span!("op", strategy = "vsrm");
    });
    let dir = std::env::temp_dir().join(format!("vidperf-stale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    // A pid that cannot be running (above the kernel's maximum), and pid 1, which is.
    let dead = dir.join(format!("{}.tmp-4294967295", export::JSON_FILE_NAME));
    let alive = dir.join(format!("{}.tmp-1", export::CSV_FILE_NAME));
    let unrelated = dir.join("notes.tmp-4294967295");
    for path in [&dead, &alive, &unrelated] {
        std::fs::write(path, b"half an export").expect("setup");
    }
    vidperf.write_exports(&dir).expect("write");
    assert!(!dead.exists(), "left by a dead process: removed");
    assert!(alive.exists(), "its process runs: kept");
    assert!(unrelated.exists(), "not ours: kept");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_unwritable_export_dir_is_a_clear_error() {
    let vidperf = run(|| {});
    let file = std::env::temp_dir().join(format!("vidperf-not-a-dir-{}", std::process::id()));
    std::fs::write(&file, b"x").expect("setup");
    let err = vidperf
        .write_exports(&file.join("sub"))
        .expect_err("cannot create a dir under a file");
    let text = err.to_string();
    assert!(text.contains("vidperf-not-a-dir"), "names the path: {text}");
    let _ = std::fs::remove_file(file);
}

#[test]
fn malformed_csv_is_rejected_with_its_location() {
    let wrong_header = "a,b,c\n1,2,3\n";
    assert!(matches!(
        export::read_csv(wrong_header.as_bytes()),
        Err(ReadError::Columns { .. })
    ));
    let vidperf = run(|| {
        let _span = info_span!("op", strategy = "vsrm", frames_processed = 5);
    });
    let mut out = Vec::new();
    vidperf::export::write_stats_csv(&mut out, vidperf.stats()).expect("write");
    let text = String::from_utf8(out)
        .expect("utf-8")
        .replacen(",5,", ",five,", 1);
    match export::read_csv(text.as_bytes()) {
        Err(ReadError::Field {
            row: 1,
            column: "frames_processed",
            ..
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        export::read_json(&b"{not json"[..]),
        Err(ReadError::Json(_))
    ));
}
