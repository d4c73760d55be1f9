//! The trace-context example as the W3C conformance suite drives it: a request with
//! some headers and a list of URLs to call back; each callback must carry exactly one
//! valid version-00 `traceparent` (a new parent id per call) and the `tracestate` the
//! processing model says. The unit tests hold every parsing rule; this holds the whole
//! service, from headers in to headers out.
#![cfg(feature = "http-api")]

#[path = "support/collector.rs"]
mod collector;
mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const T: &str = "12345678901234567890123456789012";
const P: &str = "1234567890123456";

struct Service(Child, String);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn service() -> Service {
    let mut child = Command::new(support::example_binary("tracecontext"))
        .arg("127.0.0.1:0")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the example");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("its address");
    let url = line
        .trim()
        .strip_prefix("tracecontext: listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    Service(child, url)
}

/// What one callback carried.
#[derive(Debug)]
struct Out {
    trace_id: String,
    parent_id: String,
    flags: String,
    tracestate: Option<String>,
}

/// Sends `headers` with `calls` callbacks and reads what each callback carried.
fn run(service: &Service, headers: &[(&str, &str)], calls: usize) -> Vec<Out> {
    let (harness, received) = collector::capturing_collector("200 OK");
    let body: Vec<serde_json::Value> = (0..calls)
        .map(|i| serde_json::json!({"url": format!("{harness}/cb.{i}"), "arguments": []}))
        .collect();
    let mut request = ureq::post(&service.1).header("content-type", "application/json");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request
        .send(serde_json::to_string(&body).expect("json"))
        .expect("the service answers");
    // The service answers after every call is made.
    let received = received.lock().expect("captured").clone();
    assert_eq!(received.len(), calls, "{headers:?}");
    received
        .iter()
        .map(|c| {
            let all = |name: &str| -> Vec<String> {
                c.headers
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .collect()
            };
            let tp = all("traceparent");
            assert_eq!(tp.len(), 1, "exactly one traceparent: {tp:?}");
            let parts: Vec<&str> = tp[0].split('-').collect();
            assert_eq!(parts.len(), 4, "{tp:?}");
            let lower_hex = |s: &str, n: usize| {
                s.len() == n
                    && s.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            };
            assert_eq!(parts[0], "00", "always written as version 00");
            assert!(
                lower_hex(parts[1], 32) && parts[1] != "0".repeat(32),
                "{tp:?}"
            );
            assert!(
                lower_hex(parts[2], 16) && parts[2] != "0".repeat(16),
                "{tp:?}"
            );
            assert!(lower_hex(parts[3], 2), "{tp:?}");
            let ts = all("tracestate");
            assert!(ts.len() <= 1);
            Out {
                trace_id: parts[1].to_owned(),
                parent_id: parts[2].to_owned(),
                flags: parts[3].to_owned(),
                tracestate: ts.into_iter().next(),
            }
        })
        .collect()
}

fn one(service: &Service, headers: &[(&str, &str)]) -> Out {
    run(service, headers, 1).remove(0)
}

#[test]
fn the_service_passes_the_trace_on_as_the_processing_model_says() {
    let s = service();
    let tp = |flags: &str| format!("00-{T}-{P}-{flags}");
    let (tp00, tp01, tp02) = (tp("00"), tp("01"), tp("02"));

    // No traceparent: a new trace, sampled by the default parent-based sampler's root,
    // with the random flag.
    let new = one(&s, &[]);
    assert_ne!(new.trace_id, T);
    assert_eq!(new.flags, "03");
    assert_eq!(new.tracestate, None);

    // A valid one: the trace continues with a new parent id; the sampled and random
    // flags as they came.
    for (header, flags) in [(&tp01, "01"), (&tp00, "00"), (&tp02, "02")] {
        let out = one(&s, &[("traceparent", header)]);
        assert_eq!(
            (out.trace_id.as_str(), out.flags.as_str()),
            (T, flags),
            "{header}"
        );
        assert_ne!(out.parent_id, P);
    }
    // Any case of the name; optional whitespace; a future version read by the 00 rules.
    for headers in [
        [("TrAcEpArEnT", tp01.as_str())],
        [("traceparent", &format!("\t {tp01} \t"))],
        [(
            "traceparent",
            &format!("cc-{T}-{P}-01-what-the-future-will-be-like"),
        )],
    ] {
        assert_eq!(one(&s, &headers).trace_id, T, "{headers:?}");
    }
    // Two traceparent lines, a bad version, uppercase, a sign, zeros: a new trace, and
    // the tracestate that came with it dropped.
    for headers in [
        vec![
            ("traceparent", format!("00-{T}-{P}-01")),
            ("traceparent", format!("00-{T}-{P}-01")),
        ],
        vec![
            ("traceparent", format!("ff-{T}-{P}-01")),
            ("tracestate", "foo=1".to_owned()),
        ],
        vec![(
            "traceparent",
            format!("00-{}-{P}-01", T.to_uppercase().replace('1', "A")),
        )],
        vec![("traceparent", format!("00-+{}-{P}-01", &T[1..]))],
        vec![("traceparent", format!("00-{}-{P}-01", "0".repeat(32)))],
        vec![("traceparent", format!("00-{T}-{P}-01."))],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let out = one(&s, &headers);
        assert_ne!(out.trace_id, T, "{headers:?}");
        assert_eq!(out.tracestate, None, "{headers:?}");
    }
    // tracestate: lines combined in order, spaces dropped, passed on unchanged; an
    // invalid one dropped whole, the trace kept.
    let out = one(
        &s,
        &[
            ("traceparent", &tp00),
            ("tracestate", "foo=1 , bar=2"),
            ("TraceState", "rojo=00f067aa0ba902b7"),
            ("tracestate", ""),
        ],
    );
    assert_eq!(
        out.tracestate.as_deref(),
        Some("foo=1,bar=2,rojo=00f067aa0ba902b7")
    );
    for bad in ["foo=1,foo=2", "FOO=1", "foo=bar=baz", "foo=,bar=2"] {
        let out = one(&s, &[("traceparent", &tp01), ("tracestate", bad)]);
        assert_eq!((out.trace_id.as_str(), out.tracestate), (T, None), "{bad}");
    }
    let members: Vec<String> = (1..=32).map(|i| format!("bar{i:02}={i:02}")).collect();
    let out = one(
        &s,
        &[("traceparent", &tp01), ("tracestate", &members.join(","))],
    );
    assert_eq!(
        out.tracestate.as_deref(),
        Some(members.join(",").as_str()),
        "32 entries pass"
    );

    // Three calls from one request: one trace, three parent ids.
    for headers in [vec![("traceparent", tp01.as_str())], vec![]] {
        let outs = run(&s, &headers, 3);
        let traces: BTreeSet<&str> = outs.iter().map(|o| o.trace_id.as_str()).collect();
        let parents: BTreeSet<&str> = outs.iter().map(|o| o.parent_id.as_str()).collect();
        assert_eq!((traces.len(), parents.len()), (1, 3), "{outs:?}");
    }
}
