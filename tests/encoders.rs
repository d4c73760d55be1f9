//! Property tests of the export encoders over hostile input: whatever strategy names,
//! metadata, errors and numbers user code records, the CSV and JSON exports read back
//! to exactly the records held, no CSV cell starts a formula, and the Prometheus page
//! parses under the text exposition grammar with every label value intact, and OTLP
//! span data keeps every value typed and intact through the protobuf encoding.

use std::collections::BTreeSet;

use proptest::prelude::*;
use tracing::info_span;
use tracing_subscriber::prelude::*;
use vidperf::export::{self, CSV_COLUMNS};
use vidperf::{FieldValue, OperationRecord};

/// Text mixing the characters encoders must escape with arbitrary Unicode.
fn text() -> impl Strategy<Value = String> {
    let tricky = prop::sample::select(vec![
        '=', '+', '-', '@', '\t', '\r', '\n', '"', '\\', ',', '{', '}', '\'', '\u{0}', '\u{1b}',
        '\u{7f}', '\u{2028}', '\u{feff}', 'é', '中', '🎞', 'a', ' ',
    ]);
    let any_char = any::<char>();
    prop::collection::vec(prop_oneof![3 => tricky, 1 => any_char], 0..24)
        .prop_map(String::from_iter)
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 0.0f64..1.0,
        1 => any::<f64>(),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
    ]
}

#[derive(Debug, Clone)]
struct Op {
    strategy: String,
    operation: String,
    note: String,
    frames: u64,
    quality: f64,
    error: Option<String>,
}

fn op() -> impl Strategy<Value = Op> {
    (
        text(),
        text(),
        text(),
        any::<u64>(),
        number(),
        proptest::option::of(text()),
    )
        .prop_map(|(strategy, operation, note, frames, quality, error)| Op {
            strategy,
            operation,
            note,
            frames,
            quality,
            error,
        })
}

fn run(ops: &[Op]) -> vidperf::Vidperf {
    let (layer, vidperf) = vidperf::builder()
        .without_env()
        .without_resource_monitor()
        .build()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for op in ops {
            let span = info_span!(
                "op",
                strategy = op.strategy.as_str(),
                operation = op.operation.as_str(),
                note = op.note.as_str(),
                frames_processed = op.frames,
                quality_score = op.quality,
                error = tracing::field::Empty,
            );
            if let Some(error) = &op.error {
                span.record("error", error.as_str());
            }
        }
    });
    vidperf
}

/// The records as the formats document they read back: a metadata float that is not
/// finite is written, and so read, as the text `NaN`, `inf` or `-inf`.
fn as_read_back(records: &[OperationRecord]) -> Vec<OperationRecord> {
    let mut records = records.to_vec();
    for record in &mut records {
        for value in record.metadata.values_mut() {
            if let FieldValue::F64(v) = *value
                && !v.is_finite()
            {
                *value = FieldValue::Str(
                    if v.is_nan() {
                        "NaN"
                    } else if v > 0.0 {
                        "inf"
                    } else {
                        "-inf"
                    }
                    .to_owned(),
                );
            }
        }
    }
    records
}

/// Metric name, labels (name, unescaped value), value.
type Sample = (String, Vec<(String, String)>, f64);

/// One sample line of the text exposition format: name, labels (unescaped), value.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let is_name_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut chars = line.char_indices().peekable();
    let mut name = String::new();
    while let Some(&(_, c)) = chars.peek() {
        let ok = if name.is_empty() {
            is_name_start(c)
        } else {
            is_name(c)
        };
        if !ok {
            break;
        }
        name.push(c);
        chars.next();
    }
    if name.is_empty() {
        return Err(format!("no metric name: {line:?}"));
    }
    let mut labels = Vec::new();
    if chars.peek().map(|&(_, c)| c) == Some('{') {
        chars.next();
        loop {
            match chars.peek().map(|&(_, c)| c) {
                Some('}') => {
                    chars.next();
                    break;
                }
                Some(_) => {}
                None => return Err(format!("unterminated labels: {line:?}")),
            }
            let mut label = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if !(c.is_ascii_alphanumeric() || c == '_') {
                    break;
                }
                label.push(c);
                chars.next();
            }
            if label.is_empty() || label.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(format!("bad label name: {line:?}"));
            }
            if chars.next().map(|(_, c)| c) != Some('=')
                || chars.next().map(|(_, c)| c) != Some('"')
            {
                return Err(format!("expected =\" after {label}: {line:?}"));
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => return Err(format!("bad escape \\{other:?}: {line:?}")),
                    },
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated label value: {line:?}")),
                }
            }
            labels.push((label, value));
            match chars.next().map(|(_, c)| c) {
                Some(',') => {}
                Some('}') => break,
                other => return Err(format!("expected , or }} not {other:?}: {line:?}")),
            }
        }
    }
    let rest: String = chars.map(|(_, c)| c).collect();
    let mut parts = rest.split(' ');
    if parts.next() != Some("") {
        return Err(format!("expected a space before the value: {line:?}"));
    }
    let raw = parts.next().ok_or_else(|| format!("no value: {line:?}"))?;
    let value = match raw {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse()
            .map_err(|_| format!("bad value {v:?}: {line:?}"))?,
    };
    if let Some(ts) = parts.next()
        && ts.parse::<i64>().is_err()
    {
        return Err(format!("bad timestamp: {line:?}"));
    }
    if parts.next().is_some() {
        return Err(format!("trailing text: {line:?}"));
    }
    Ok((name, labels, value))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn csv_and_json_read_back_exactly_what_was_held(ops in prop::collection::vec(op(), 1..10)) {
        let vidperf = run(&ops);
        let records = vidperf.stats().records();
        prop_assert_eq!(records.len(), ops.len());
        let expected = as_read_back(&records);

        let mut csv = Vec::new();
        export::write_csv(&mut csv, &records).expect("write csv");
        let back = export::read_csv(csv.as_slice()).expect("read csv");
        let expected_csv: Vec<_> = expected.iter().map(OperationRecord::as_in_csv).collect();
        prop_assert_eq!(&back, &expected_csv);
        let mut reader = csv::Reader::from_reader(csv.as_slice());
        prop_assert_eq!(reader.headers().expect("header").len(), CSV_COLUMNS.len());
        for row in reader.records() {
            for cell in &row.expect("row") {
                // Numeric columns hold numbers, negative ones included; any other cell
                // starting like a formula would run as one in a spreadsheet.
                prop_assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r'])
                        || cell.parse::<f64>().is_ok(),
                    "cell {:?} would run as a formula", cell
                );
                // Numbers are short whatever their magnitude (no 300-digit decimals).
                prop_assert!(
                    cell.parse::<f64>().is_err() || cell.len() <= 32,
                    "number cell {:?}", cell
                );
            }
        }

        let mut json = Vec::new();
        vidperf::export::write_stats_json(&mut json, vidperf.stats()).expect("write json");
        let back = export::read_json(json.as_slice()).expect("read json");
        prop_assert_eq!(&back.operations, &expected);
        prop_assert_eq!(back.statistics.summary.total_operations, ops.len() as u64);
    }

    #[test]
    fn the_prometheus_page_parses_and_keeps_every_label_intact(
        ops in prop::collection::vec(op(), 1..10)
    ) {
        let vidperf = run(&ops);
        let snapshot = vidperf.snapshot();
        let page = vidperf::http::encode_metrics(&vidperf.stats().metrics());
        let mut strategies = BTreeSet::new();
        let mut operations_total = 0.0;
        for line in page.lines() {
            if let Some(comment) = line.strip_prefix("# ") {
                let mut words = comment.splitn(3, ' ');
                let kind = words.next();
                prop_assert!(kind == Some("HELP") || kind == Some("TYPE"), "{}", line);
                if kind == Some("TYPE") {
                    let t = comment.rsplit(' ').next();
                    prop_assert!(
                        matches!(t, Some("counter" | "gauge" | "histogram" | "summary" | "untyped")),
                        "{}", line
                    );
                }
                continue;
            }
            let parsed = parse_sample(line);
            prop_assert!(parsed.is_ok(), "{:?}", parsed);
            let Ok((name, labels, value)) = parsed else { continue };
            if name == "vidperf_operation_duration_seconds_count" {
                operations_total += value;
                for (label, v) in labels {
                    if label == "vidperf_strategy" {
                        strategies.insert(v);
                    }
                }
            }
        }
        let expected: BTreeSet<String> = snapshot.by_strategy.keys().cloned().collect();
        prop_assert_eq!(strategies, expected);
        prop_assert_eq!(operations_total, ops.len() as f64);
    }
}

/// The OTLP trace encoding (feature `otlp`): whatever user code records, every span
/// arrives in the protobuf a collector receives with its values typed and intact.
#[cfg(feature = "otlp")]
#[path = "support/spans.rs"]
mod spans;

#[cfg(feature = "otlp")]
mod otlp {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
    use vidperf::PerfLayer;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn hostile_values_arrive_typed_in_the_protobuf(
            strategy in text(),
            note in text(),
            frames in 0u64..=i64::MAX as u64,
            quality in number(),
            error in proptest::option::of(text()),
        ) {
            let (traces, memory) = super::spans::memory_sink();
            let layer = PerfLayer::builder().sink(traces.clone()).build();
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
                let span = info_span!(
                    "op",
                    strategy = strategy.as_str(),
                    note = note.as_str(),
                    frames_processed = frames,
                    quality_score = quality,
                    error = tracing::field::Empty,
                );
                if let Some(error) = &error {
                    span.record("error", error.as_str());
                }
            });
            traces.flush().expect("flush");
            let exported = memory.spans();
            prop_assert_eq!(exported.len(), 1);
            let span = &exported[0];
            let value = |key: &str| {
                span.attributes
                    .iter()
                    .find(|kv| kv.key == key)
                    .and_then(|kv| kv.value.as_ref())
                    .and_then(|v| v.value.clone())
            };
            prop_assert_eq!(value("vidperf.strategy"), Some(Value::StringValue(strategy)));
            prop_assert_eq!(value("note"), Some(Value::StringValue(note)));
            prop_assert_eq!(value("frames_processed"), Some(Value::IntValue(frames as i64)));
            // A quality score is a double whatever it is: NaN and infinities included
            // (OTLP doubles carry them).
            match value("quality_score") {
                Some(Value::DoubleValue(v)) => prop_assert!(
                    v.to_bits() == quality.to_bits(),
                    "quality {} arrived as {}", quality, v
                ),
                other => prop_assert!(false, "quality {} arrived as {:?}", quality, other),
            }
            let status = span.status.clone().unwrap_or_default();
            match &error {
                // An empty error message still marks the failure, with a placeholder.
                Some(message) => {
                    let expected = if message.is_empty() { "error (no message)" } else { message.as_str() };
                    prop_assert_eq!(status.code(), StatusCode::Error);
                    prop_assert_eq!(status.message.as_str(), expected);
                    prop_assert_eq!(value("error.type"), Some(Value::StringValue("_OTHER".into())));
                }
                None => prop_assert_eq!(status.code(), StatusCode::Unset),
            }
        }
    }
}
