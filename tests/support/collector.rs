//! A scripted OTLP/HTTP endpoint on loopback, shared by the reliability tests and the
//! benchmark's loopback sink.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What a scripted collector answers to request `n` (from 0): status line, extra
/// headers, delay before answering.
pub(crate) type Script = fn(usize) -> (&'static str, &'static str, Duration);

/// The name of the threads serving a scripted collector.
pub(crate) const SINK_THREAD: &str = "otlp-sink";

/// A scripted OTLP/HTTP endpoint answering each request as `script` says.
// reason: the tests that only capture do not script.
#[allow(dead_code)]
pub(crate) fn scripted_collector(script: Script) -> (String, Arc<AtomicUsize>) {
    serve(TcpListener::bind("127.0.0.1:0").expect("bind"), script)
}

/// The same, on a given loopback port (to bring a collector up where one was down).
// reason: only the reliability tests start a collector on a chosen port.
#[allow(dead_code)]
pub(crate) fn scripted_collector_on(port: u16, script: Script) -> (String, Arc<AtomicUsize>) {
    serve(
        TcpListener::bind(("127.0.0.1", port)).expect("bind the chosen port"),
        script,
    )
}

fn serve(listener: TcpListener, script: Script) -> (String, Arc<AtomicUsize>) {
    let addr = listener.local_addr().expect("addr");
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    // Named, so that the benchmark can leave the receiving side out of the process's
    // CPU (a real collector is another process).
    let thread = || std::thread::Builder::new().name(SINK_THREAD.to_owned());
    let _ = thread().spawn(move || {
        for stream in listener.incoming().flatten() {
            let counter = counter.clone();
            let _ = thread().spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    let (status, headers, delay) = script(n);
                    std::thread::sleep(delay);
                    let reply = format!("HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\n\r\n");
                    if reader.get_mut().write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), requests)
}

/// One request a capturing collector received.
// reason: the benchmark shares the file and reads none of it; tests read what they check.
#[allow(dead_code)]
#[derive(Clone, Debug)]
pub(crate) struct Captured {
    pub(crate) path: String,
    /// Every header line, names lowercased, in order.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// What a capturing collector received, in order.
pub(crate) type Received = Arc<std::sync::Mutex<Vec<Captured>>>;

/// An OTLP/HTTP endpoint on loopback that keeps every request's path and body, and
/// answers `200 OK` to `/v1/metrics` and `status` to everything else (say, a
/// `503 Service Unavailable` for traces, to count failures).
// reason: only the tests that decode what was sent capture it.
#[allow(dead_code)]
pub(crate) fn capturing_collector(status: &'static str) -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let received: Received = Arc::default();
    let keep = received.clone();
    let _ = std::thread::Builder::new()
        .name(SINK_THREAD.to_owned())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let keep = keep.clone();
                let _ = std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut length = 0usize;
                        let mut line = String::new();
                        let mut path = String::new();
                        let mut headers = Vec::new();
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if path.is_empty() {
                                path = line.split(' ').nth(1).unwrap_or_default().to_owned();
                            } else if let Some((k, v)) = line.split_once(':') {
                                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                            }
                            if let Some(v) =
                                line.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                length = v.trim().parse().unwrap_or(0);
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0u8; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        let answer = if path == "/v1/metrics" {
                            "200 OK"
                        } else {
                            status
                        };
                        keep.lock().expect("captured").push(Captured {
                            path,
                            headers,
                            body,
                        });
                        let reply = format!(
                            "HTTP/1.1 {answer}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]"
                        );
                        if reader.get_mut().write_all(reply.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
    (format!("http://{addr}"), received)
}
