//! `GET /performance/stream` over real TCP: events arrive with the windowed figures and
//! the operations that finished, the stream cap answers 503, and a client that stops
//! reading is disconnected without the host buffering for it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::info_span;
use tracing_subscriber::prelude::*;
use vidperf::http::ApiConfig;

struct Server {
    vidperf: vidperf::Vidperf,
    addr: SocketAddr,
    dispatch: tracing::Dispatch,
}

fn serve(config: ApiConfig) -> Server {
    let (layer, vidperf) = vidperf::builder()
        .without_env()
        .without_resource_monitor()
        .without_otlp()
        .http_api("127.0.0.1:0".parse().expect("addr"))
        .http_api_config(config)
        .build()
        .expect("build");
    let addr = vidperf.http_addr().expect("serving");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    Server {
        vidperf,
        addr,
        dispatch,
    }
}

impl Server {
    fn record(&self, strategy: &str, n: usize) {
        tracing::dispatcher::with_default(&self.dispatch, || {
            for i in 0..n {
                let _span = info_span!(
                    "op",
                    strategy,
                    operation = "enhancement",
                    frames_processed = i as u64
                );
            }
        });
    }
}

/// One server-sent event.
#[derive(Debug, Default)]
struct Sse {
    event: String,
    id: String,
    data: String,
}

/// Opens the stream; the answer's status line and a reader positioned after the head.
fn open(addr: SocketAddr, query: &str) -> (String, BufReader<TcpStream>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET /performance/stream{query} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("request");
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).expect("status line");
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header");
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    (status, reader)
}

/// The next event, skipping comments (keep-alives) and the chunked encoding's size lines.
fn next(reader: &mut BufReader<TcpStream>) -> Sse {
    let mut event = Sse::default();
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).expect("read") > 0,
            "stream ended"
        );
        let line = line.trim_end_matches(['\r', '\n']);
        if let Some(v) = line.strip_prefix("event: ").or(line.strip_prefix("event:")) {
            event.event = v.to_owned();
        } else if let Some(v) = line.strip_prefix("id: ").or(line.strip_prefix("id:")) {
            event.id = v.to_owned();
        } else if let Some(v) = line.strip_prefix("data: ").or(line.strip_prefix("data:")) {
            event.data.push_str(v);
        } else if line.is_empty() && !event.data.is_empty() {
            return event;
        }
    }
}

#[test]
fn events_carry_the_window_and_the_operations_that_finished() {
    let server = serve(ApiConfig::default());
    server.record("vsrm", 3);
    let (status, mut reader) = open(server.addr, "?interval=250ms&window=1m");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let first = next(&mut reader);
    assert_eq!((first.event.as_str(), first.id.as_str()), ("snapshot", "0"));
    let first: Value = serde_json::from_str(&first.data).expect("JSON");
    assert_eq!(first["snapshot"]["window"]["seconds"], 60.0);
    assert_eq!(first["snapshot"]["by_strategy"]["vsrm"]["count"], 3);
    assert_eq!(first["finished"].as_array().map(Vec::len), Some(3));
    server.record("seedvr2", 2);
    // Within a few updates, the two new operations appear as finished, once.
    let mut seen = Vec::new();
    let mut previous = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 2 && Instant::now() < deadline {
        let event = next(&mut reader);
        assert_eq!(event.event, "update");
        let body: Value = serde_json::from_str(&event.data).expect("JSON");
        let sequence = body["sequence"].as_u64().expect("sequence");
        assert!(sequence > previous, "sequence increases");
        assert_eq!(event.id, sequence.to_string());
        previous = sequence;
        for record in body["finished"].as_array().expect("finished") {
            seen.push(record["strategy"].as_str().expect("strategy").to_owned());
        }
        assert_eq!(body["finished_omitted"], 0);
        let total = body["snapshot"]["summary"]["total_operations"].as_u64();
        assert!(total >= Some(3), "windowed: {total:?}");
    }
    assert_eq!(seen, ["seedvr2", "seedvr2"]);
    let _ = server.vidperf.shutdown(Duration::from_secs(5));
}

#[test]
fn bad_stream_parameters_are_json_errors() {
    let server = serve(ApiConfig::default());
    for (query, code) in [
        ("?interval=10ms", "invalid_interval"),
        ("?window=abc", "invalid_window"),
        ("?window=2h", "invalid_window"),
        ("?colour=red", "unknown_parameter"),
    ] {
        let (status, mut reader) = open(server.addr, query);
        assert!(status.starts_with("HTTP/1.1 400"), "{query}: {status}");
        let mut body = String::new();
        let _ = reader.read_to_string(&mut body);
        assert!(body.contains(code), "{query}: {body}");
    }
    let _ = server.vidperf.shutdown(Duration::from_secs(5));
}

#[test]
fn streams_over_the_cap_get_a_503_with_retry_after() {
    let server = serve(ApiConfig::default().with_stream_limits(2, Duration::from_secs(30)));
    let (a, mut ra) = open(server.addr, "");
    let (b, mut rb) = open(server.addr, "");
    assert!(a.starts_with("HTTP/1.1 200") && b.starts_with("HTTP/1.1 200"));
    let _ = (next(&mut ra), next(&mut rb));
    let (status, mut reader) = open(server.addr, "");
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
    let mut body = String::new();
    let _ = reader.read_to_string(&mut body);
    assert!(body.contains("too_many_streams"), "{body}");
    drop((ra, rb));
    // The permits come back when the clients leave.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _reader) = open(server.addr, "");
        if status.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "permits not released: {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = server.vidperf.shutdown(Duration::from_secs(5));
}

/// This process's resident memory, bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

#[test]
fn a_client_that_stops_reading_is_dropped_and_nothing_piles_up() {
    let server = serve(ApiConfig::default().with_stream_limits(1, Duration::from_secs(2)));
    // Big events: a thousand records in the history, many strategies in the window.
    for k in 0..40 {
        server.record(&format!("strategy-{k:02}"), 25);
    }
    let before = rss();
    let stuck = TcpStream::connect(server.addr).expect("connect");
    socket2::SockRef::from(&stuck)
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    (&stuck)
        .write_all(b"GET /performance/stream?interval=250ms HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    // It never reads. With one stream allowed, the next client gets in only once the
    // server has let the stuck one go.
    let started = Instant::now();
    let dropped_after = loop {
        server.record("vsrm", 5);
        let (status, _reader) = open(server.addr, "?interval=250ms");
        if status.starts_with("HTTP/1.1 200") {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the stuck client was never dropped"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let growth = rss().saturating_sub(before);
    eprintln!(
        "stuck client dropped after {dropped_after:?}; RSS grew {} KiB",
        growth / 1024
    );
    assert!(growth < 16 * 1024 * 1024, "RSS grew {growth} bytes");
    drop(stuck);
    let _ = server.vidperf.shutdown(Duration::from_secs(5));
}

/// Shutting the server down ends an open stream cleanly: its chunked body's last chunk
/// is written (a client sees the end of the stream, not a cut connection), and the
/// shutdown does not wait on the stream.
#[test]
fn shutdown_ends_open_streams_with_their_last_chunk() {
    let server = serve(ApiConfig::default());
    server.record("vsrm", 1);
    let (status, mut reader) = open(server.addr, "?interval=250ms");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(next(&mut reader).event, "snapshot");
    let started = Instant::now();
    let report = server.vidperf.shutdown(Duration::from_secs(5));
    assert!(report.is_ok(), "{report:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown waited {:?} on the stream",
        started.elapsed()
    );
    let mut rest = Vec::new();
    reader
        .read_to_end(&mut rest)
        .expect("the stream ends, not reset");
    assert!(
        rest.ends_with(b"0\r\n\r\n"),
        "the chunked body ends with its last chunk: {:?}",
        String::from_utf8_lossy(&rest[rest.len().saturating_sub(80)..])
    );
}
