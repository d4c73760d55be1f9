//! Datadog end to end: the example pipeline exports over OTLP to a real collector
//! (rotel) whose Datadog exporter posts to a capture server standing in for Datadog's
//! intake. The payloads (gzip-compressed `AgentPayload` protobuf) are decoded by field
//! number and checked: the service name, one Datadog span per exported span, error
//! spans flagged, operation spans with their strategy, frames and quality, and one
//! Datadog resource per (operation, strategy) — `enhancement seedvr2` — so Datadog's
//! trace metrics come per strategy.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "support/rotel.rs"]
mod rotel;
mod support;

/// A Datadog span, as far as the test reads it.
#[derive(Debug, Default, Clone)]
struct DdSpan {
    service: String,
    name: String,
    resource: String,
    error: i64,
    meta: BTreeMap<String, String>,
    metrics: BTreeMap<String, f64>,
}

/// Protobuf fields of one message: (field number, wire value).
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], at: &mut usize) -> u64 {
    let mut value = 0u64;
    let mut shift = 0;
    while *at < buf.len() {
        let b = buf[*at];
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    value
}

fn fields(buf: &[u8]) -> Vec<(u64, Wire<'_>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let key = varint(buf, &mut at);
        let (number, wire) = (key >> 3, key & 7);
        let value = match wire {
            0 => Wire::Varint(varint(buf, &mut at)),
            1 => {
                let v = u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
                at += 8;
                Wire::Fixed64(v)
            }
            2 => {
                let len = varint(buf, &mut at) as usize;
                let v = &buf[at..at + len];
                at += len;
                Wire::Bytes(v)
            }
            5 => {
                at += 4;
                Wire::Varint(0)
            }
            other => panic!("wire type {other} in a Datadog payload"),
        };
        out.push((number, value));
    }
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A map entry `{1: key, 2: value}`.
fn entry(bytes: &[u8]) -> (String, Option<&[u8]>, Option<u64>) {
    let mut key = String::new();
    let (mut bytes_value, mut fixed) = (None, None);
    for (n, v) in fields(bytes) {
        match (n, v) {
            (1, Wire::Bytes(k)) => key = text(k),
            (2, Wire::Bytes(v)) => bytes_value = Some(v),
            (2, Wire::Fixed64(v)) => fixed = Some(v),
            _ => {}
        }
    }
    (key, bytes_value, fixed)
}

fn span(bytes: &[u8]) -> DdSpan {
    let mut s = DdSpan::default();
    for (n, v) in fields(bytes) {
        match (n, v) {
            (1, Wire::Bytes(b)) => s.service = text(b),
            (2, Wire::Bytes(b)) => s.name = text(b),
            (3, Wire::Bytes(b)) => s.resource = text(b),
            (9, Wire::Varint(v)) => s.error = v as i64,
            (10, Wire::Bytes(b)) => {
                let (k, v, _) = entry(b);
                s.meta.insert(k, v.map(text).unwrap_or_default());
            }
            (11, Wire::Bytes(b)) => {
                let (k, _, v) = entry(b);
                s.metrics.insert(k, f64::from_bits(v.unwrap_or(0)));
            }
            _ => {}
        }
    }
    s
}

/// AgentPayload(5: TracerPayload(6: TraceChunk(3: Span))).
fn spans(payload: &[u8]) -> Vec<DdSpan> {
    let mut out = Vec::new();
    for (n, tracer) in fields(payload) {
        let (5, Wire::Bytes(tracer)) = (n, tracer) else {
            continue;
        };
        for (n, chunk) in fields(tracer) {
            let (6, Wire::Bytes(chunk)) = (n, chunk) else {
                continue;
            };
            for (n, s) in fields(chunk) {
                if let (3, Wire::Bytes(s)) = (n, s) {
                    out.push(span(s));
                }
            }
        }
    }
    out
}

/// Datadog's intake, for the test: answers every POST with 200 and keeps the
/// decompressed bodies of `/api/v0.2/traces`.
fn capture_server() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let keep = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let keep = keep.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0usize;
                    let mut gzip = false;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if lower.starts_with("content-encoding:") && lower.contains("gzip") {
                            gzip = true;
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    if request_line.contains("/api/v0.2/traces") {
                        let body = if gzip {
                            let mut out = Vec::new();
                            flate2::read::GzDecoder::new(body.as_slice())
                                .read_to_end(&mut out)
                                .expect("gzip");
                            out
                        } else {
                            body
                        };
                        keep.lock().expect("lock").push(body);
                    }
                    let mut out = &stream;
                    let _ = out.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
                    );
                }
            });
        }
    });
    (url, bodies)
}

#[test]
fn datadog_gets_one_resource_per_strategy_through_a_real_collector() {
    let (intake, bodies) = capture_server();
    let Some(collector) = rotel::Rotel::start_datadog(&intake) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("vidperf-datadog-{}", std::process::id()));
    let out = Command::new(support::example_binary("pipeline"))
        .args(["--clips", "24", "--frames", "2", "--seed", "7"])
        .args(["--export-dir", &dir.to_string_lossy()])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint())
        .env("OTEL_SERVICE_NAME", "enhancer")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env_remove("VIDPERF_HTTP_ADDR")
        .env_remove("VIDPERF_ALERT_RULES")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("pipeline");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "OTLP: N spans sent, M delivered, 0 failed, 0 dropped"
    let delivered: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("OTLP: "))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|d| d.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no OTLP summary in:\n{stdout}"));
    assert!(delivered > 50, "{stdout}");

    let started = Instant::now();
    let received = loop {
        let all: Vec<DdSpan> = bodies
            .lock()
            .expect("lock")
            .iter()
            .flat_map(|b| spans(b))
            .collect();
        if all.len() >= delivered || started.elapsed() > Duration::from_secs(30) {
            break all;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        received.len(),
        delivered,
        "one Datadog span per span the collector received"
    );
    assert!(received.iter().all(|s| s.service == "enhancer"));

    // Failures: flagged, with their message.
    let errors: Vec<&DdSpan> = received.iter().filter(|s| s.error == 1).collect();
    assert!(!errors.is_empty(), "the pipeline fails some clips");
    assert!(
        errors.iter().all(|s| s.meta.contains_key("error")),
        "{errors:?}"
    );

    // Operation spans: the strategy, the frames and the quality, and their resource.
    let operations: Vec<&DdSpan> = received
        .iter()
        .filter(|s| s.meta.contains_key("vidperf.strategy"))
        .collect();
    assert!(!operations.is_empty());
    for s in &operations {
        let expected = format!(
            "{} {}",
            s.meta["vidperf.operation"], s.meta["vidperf.strategy"]
        );
        assert_eq!(s.resource, expected, "{s:?}");
    }
    let resources: std::collections::BTreeSet<&str> =
        operations.iter().map(|s| s.resource.as_str()).collect();
    for strategy in ["vsrm", "seedvr2", "ditvr"] {
        let resource = format!("enhancement {strategy}");
        assert!(resources.contains(resource.as_str()), "{resources:?}");
        let with_figures = operations.iter().any(|s| {
            s.resource == resource
                && s.metrics.get("frames_processed").is_some_and(|f| *f > 0.0)
                && s.metrics.contains_key("quality_score")
        });
        assert!(with_figures, "{resource}: frames and quality as metrics");
    }
    drop(collector);
    let _ = std::fs::remove_dir_all(dir);
}
