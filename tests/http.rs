//! The HTTP API over real TCP with a real HTTP client, against the server the builder
//! starts: every route, every error, concurrent scrapes while operations are recorded,
//! exports that parse back, `promtool` on the live `/metrics`, slow clients.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tracing::info_span;
use tracing_subscriber::prelude::*;
use vidperf::export;
use vidperf::http::{ApiConfig, TokenScope};

#[path = "support/promtool.rs"]
mod promtool;

struct Api {
    base: String,
    agent: ureq::Agent,
    vidperf: vidperf::Vidperf,
    dispatch: tracing::Dispatch,
}

fn start(config: ApiConfig) -> Api {
    let (layer, vidperf) = vidperf::builder()
        .without_env()
        .without_resource_monitor()
        .http_api("127.0.0.1:0".parse().expect("addr"))
        .http_api_config(config)
        .build()
        .expect("build");
    let addr = vidperf.http_addr().expect("serving");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    Api {
        base: format!("http://{addr}"),
        agent,
        vidperf,
        dispatch,
    }
}

impl Api {
    fn record(&self, strategy: &str, n: usize) {
        tracing::dispatcher::with_default(&self.dispatch, || {
            for i in 0..n {
                let span = info_span!(
                    "op",
                    strategy,
                    operation = "enhancement",
                    frames_processed = i as u64 % 7,
                    error = tracing::field::Empty
                );
                if i % 5 == 4 {
                    span.record("error", "CUDA out of memory");
                }
            }
        });
    }

    fn get(&self, path: &str) -> (u16, String, ureq::http::HeaderMap) {
        let resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .call()
            .expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (
            status,
            resp.into_body().read_to_string().expect("body"),
            headers,
        )
    }

    fn post(&self, path: &str, token: Option<&str>) -> (u16, String, ureq::http::HeaderMap) {
        let mut req = self.agent.post(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let resp = req.send_empty().expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (
            status,
            resp.into_body().read_to_string().expect("body"),
            headers,
        )
    }
}

fn error_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).expect("errors are JSON");
    v["error"]["code"].as_str().expect("code").to_owned()
}

#[test]
fn stats_route_answers_the_snapshot_with_filters() {
    let api = start(ApiConfig::default());
    api.record("vsrm", 10);
    api.record("seedvr2", 5);
    let (status, body, headers) = api.get("/performance/stats");
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    let snap: vidperf::StatsSnapshot = serde_json::from_str(&body).expect("snapshot JSON");
    assert_eq!(snap.summary.total_operations, 15);
    assert_eq!(snap.by_strategy["vsrm"].failures, 2);
    assert_eq!(snap.recent.len(), 10);

    let (_, body, _) = api.get("/performance/stats?recent=3&strategy=seedvr2");
    let snap: vidperf::StatsSnapshot = serde_json::from_str(&body).expect("snapshot JSON");
    assert_eq!(snap.recent.len(), 3);
    assert!(snap.recent.iter().all(|r| r.strategy == "seedvr2"));
    assert_eq!(snap.by_strategy.keys().collect::<Vec<_>>(), vec!["seedvr2"]);

    for (query, code) in [
        ("recent=100000", "invalid_recent"),
        ("recent=-1", "invalid_recent"),
        ("recent=1&recent=2", "repeated_parameter"),
        ("colour=red", "unknown_parameter"),
    ] {
        let (status, body, _) = api.get(&format!("/performance/stats?{query}"));
        assert_eq!(
            (status, error_code(&body)),
            (400, code.to_owned()),
            "{query}"
        );
    }
}

#[test]
fn export_route_downloads_whole_records_in_both_formats() {
    let api = start(ApiConfig::default());
    api.record("ditvr", 12);
    let (status, body, headers) = api.post("/performance/export?format=csv", None);
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"vidperf-export.csv\""
    );
    let rows = export::read_csv(body.as_bytes()).expect("CSV parses");
    let held: Vec<_> = api
        .vidperf
        .stats()
        .records()
        .iter()
        .map(vidperf::OperationRecord::as_in_csv)
        .collect();
    assert_eq!(rows, held, "the same records");

    let (status, body, headers) = api.post("/performance/export?format=json", None);
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    let doc = export::read_json(body.as_bytes()).expect("JSON parses");
    assert_eq!(
        doc.operations,
        api.vidperf.stats().records(),
        "JSON keeps every field"
    );
    assert_eq!(doc.statistics.summary.total_operations, 12);
}

#[test]
fn bad_requests_get_clear_json_errors() {
    let api = start(ApiConfig::default());
    let (status, body, _) = api.post("/performance/export?format=xml", None);
    assert_eq!(
        (status, error_code(&body)),
        (400, "invalid_format".to_owned())
    );
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["accepted"], serde_json::json!(["json", "csv"]));
    let (status, body, _) = api.post("/performance/export", None);
    assert_eq!(
        (status, error_code(&body)),
        (400, "missing_format".to_owned())
    );
    let (status, body, _) = api.post("/performance/export?format=json&format=csv", None);
    assert_eq!(
        (status, error_code(&body)),
        (400, "repeated_parameter".to_owned())
    );

    let (status, body, headers) = api.get("/performance/export?format=json");
    assert_eq!(
        (status, error_code(&body)),
        (405, "method_not_allowed".to_owned())
    );
    assert_eq!(headers["allow"], "POST");
    let (status, _, headers) = api.post("/metrics", None);
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "GET, HEAD");

    let (status, body, _) = api.get("/nope");
    assert_eq!((status, error_code(&body)), (404, "not_found".to_owned()));

    let long = "x".repeat(4096);
    let (status, body, _) = api.get(&format!("/performance/stats?strategy={long}"));
    assert_eq!(
        (status, error_code(&body)),
        (414, "query_too_long".to_owned())
    );
}

#[test]
fn a_token_protects_the_export_route_or_everything() {
    let api = start(ApiConfig::default().with_token("s3cret", TokenScope::RecordRoutes));
    assert_eq!(api.post("/performance/export?format=csv", None).0, 401);
    let (status, _, headers) = api.post("/performance/export?format=csv", Some("wrong"));
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(
        api.post("/performance/export?format=csv", Some("s3cre")).0,
        401
    );
    assert_eq!(
        api.post("/performance/export?format=csv", Some("s3cret")).0,
        200
    );
    assert_eq!(api.get("/metrics").0, 200, "other routes stay open");

    let api = start(ApiConfig::default().with_token("s3cret", TokenScope::AllRoutes));
    assert_eq!(api.get("/metrics").0, 401);
    assert_eq!(api.get("/healthz").0, 401);
}

#[test]
fn exports_over_the_row_limit_keep_the_newest_rows_and_say_so() {
    let api = start(ApiConfig::default().with_max_export_rows(5));
    api.record("vsrm", 8);
    let (status, body, headers) = api.post("/performance/export?format=csv", None);
    assert_eq!(status, 200);
    assert_eq!(headers["x-vidperf-export-rows"], "5");
    assert_eq!(headers["x-vidperf-export-omitted-rows"], "3");
    let rows = export::read_csv(body.as_bytes()).expect("CSV parses");
    let held: Vec<_> = api.vidperf.stats().records()[3..]
        .iter()
        .map(vidperf::OperationRecord::as_in_csv)
        .collect();
    assert_eq!(rows, held);
}

#[test]
fn healthz_answers() {
    let api = start(ApiConfig::default());
    let (status, body, _) = api.get("/healthz");
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ok\"}"));
}

#[test]
fn metrics_are_valid_prometheus_text_and_escape_hostile_labels() {
    let api = start(ApiConfig::default());
    api.record("vsrm", 20);
    api.record("evil\"} injected_series 1\n# x", 3);
    let (status, body, headers) = api.get("/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(body.contains("# TYPE vidperf_operation_duration_seconds histogram"));
    let vsrm = "vidperf_operation=\"enhancement\",vidperf_strategy=\"vsrm\"";
    assert!(
        body.contains(&format!(
            "vidperf_operation_duration_seconds_count{{{vsrm},vidperf_outcome=\"failure\"}} 4"
        )),
        "{body}"
    );
    assert!(body.contains(&format!(
        "vidperf_operation_duration_seconds_count{{{vsrm},vidperf_outcome=\"success\"}} 16"
    )));
    assert!(body.contains("le=\"+Inf\""));
    assert!(
        !body.lines().any(|l| l.starts_with("injected_series")),
        "a label value cannot start a series of its own"
    );
    assert!(
        body.contains("vidperf_strategy=\"evil\\\"} injected_series 1\\n# x\""),
        "escaped label value"
    );

    promtool::check_metrics(&body);
}

#[test]
fn concurrent_scrapes_while_operations_are_recorded_stay_consistent() {
    let api = std::sync::Arc::new(start(ApiConfig::default()));
    let writer = {
        let api = api.clone();
        std::thread::spawn(move || {
            for _ in 0..50 {
                api.record("vsrm", 20);
            }
        })
    };
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let api = api.clone();
            std::thread::spawn(move || {
                let mut last = 0;
                for i in 0..40 {
                    if i % 2 == 0 {
                        let (status, body, _) = api.get("/performance/stats?recent=0");
                        assert_eq!(status, 200);
                        let snap: vidperf::StatsSnapshot =
                            serde_json::from_str(&body).expect("snapshot");
                        assert!(
                            snap.summary.total_operations >= last,
                            "counts never go back"
                        );
                        last = snap.summary.total_operations;
                    } else {
                        let (status, body, _) = api.get("/metrics");
                        assert_eq!(status, 200);
                        assert!(body.contains("# TYPE"));
                    }
                }
            })
        })
        .collect();
    writer.join().expect("writer");
    for r in readers {
        r.join().expect("reader");
    }
    assert_eq!(api.vidperf.snapshot().summary.total_operations, 1000);
}

/// Opens a connection and sends half a request line, then nothing.
fn slow_client(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .expect("partial request");
    s
}

#[test]
fn slow_clients_are_timed_out_and_cannot_starve_metrics() {
    let api = start(
        ApiConfig::default().with_timeouts(Duration::from_millis(500), Duration::from_secs(30)),
    );
    let addr: SocketAddr = api
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let mut slow: Vec<TcpStream> = (0..100).map(|_| slow_client(addr)).collect();
    // /metrics answers while 100 clients dawdle.
    let started = Instant::now();
    let (status, _, _) = api.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "metrics took {:?}",
        started.elapsed()
    );
    // The dawdlers are cut off by the header timeout.
    std::thread::sleep(Duration::from_millis(1500));
    let mut closed = 0;
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut buf = [0u8; 512];
        // Closed (0 bytes), or answered (a 408) and closed; a timeout means still open.
        if s.read(&mut buf).is_ok() {
            closed += 1;
        }
    }
    assert_eq!(
        closed, 100,
        "every slow client was answered or disconnected"
    );
}

#[test]
fn the_server_shuts_down_gracefully() {
    let api = start(ApiConfig::default());
    assert_eq!(api.get("/healthz").0, 200);
    api.vidperf
        .shutdown(Duration::from_secs(5))
        .expect("clean shutdown");
    let addr: SocketAddr = api
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "no longer listening"
    );
}

#[test]
fn a_non_loopback_address_is_served_with_a_warning() {
    use std::sync::{Arc, Mutex};

    /// Keeps the warnings the application's own subscriber receives.
    struct Warnings(Arc<Mutex<Vec<String>>>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if *event.metadata().level() == tracing::Level::WARN {
                let mut text = format!("{}:", event.metadata().target());
                struct All<'a>(&'a mut String);
                impl tracing::field::Visit for All<'_> {
                    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                        self.0.push_str(&format!(" {}={v:?}", f.name()));
                    }
                }
                event.record(&mut All(&mut text));
                if let Ok(mut w) = self.0.lock() {
                    w.push(text);
                }
            }
        }
    }

    let warnings = Arc::new(Mutex::new(Vec::new()));
    let app =
        tracing::Dispatch::new(tracing_subscriber::registry().with(Warnings(warnings.clone())));
    let serve_on = |addr: &str| {
        tracing::dispatcher::with_default(&app, || {
            let (_layer, vidperf) = vidperf::builder()
                .without_env()
                .without_resource_monitor()
                .http_api(addr.parse().expect("addr"))
                .build()
                .expect("build");
            let served = vidperf.http_addr().expect("serving");
            let _ = vidperf.shutdown(Duration::from_secs(5));
            served
        })
    };
    serve_on("127.0.0.1:0");
    assert!(
        warnings.lock().expect("warnings").is_empty(),
        "loopback: no warning"
    );
    let served = serve_on("0.0.0.0:0");
    assert!(served.ip().is_unspecified(), "served as asked: {served}");
    let warnings = warnings.lock().expect("warnings").clone();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("vidperf::http:") && warnings[0].contains("non-loopback"),
        "{warnings:?}"
    );
}

/// Two downloads that read 4 KiB of an export and stop reading do not lock the route:
/// their connections are cut after the download stall timeout, the next export goes
/// through, and the busy answer's `Retry-After` says when a slot frees at the latest.
#[test]
fn stalled_downloads_are_cut_off_and_the_export_route_recovers() {
    let api = start(
        ApiConfig::default()
            .with_export_limits(2, Duration::from_millis(200))
            .with_download_stall_timeout(Duration::from_secs(2)),
    );
    // About 5 MB of JSON: more than the socket buffers hold.
    for k in 0..10 {
        api.record(&format!("strategy-{k}"), 1_000);
    }
    let addr: SocketAddr = api
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let stuck: Vec<TcpStream> = (0..2)
        .map(|_| {
            let s = TcpStream::connect(addr).expect("connect");
            socket2::SockRef::from(&s)
                .set_recv_buffer_size(4096)
                .expect("small receive buffer");
            (&s).write_all(b"POST /performance/export?format=json HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                .expect("request");
            let mut first = [0u8; 4096];
            let _ = (&s).read(&mut first).expect("the download starts");
            s
        })
        .collect();
    // Both slots are held: a third waits its 200 ms and is told when to come back.
    let (status, body, headers) = api.post("/performance/export?format=json", None);
    assert_eq!(status, 503, "{body}");
    assert_eq!(headers["retry-after"], "3", "the stall timeout, rounded up");
    // Within the stall timeout and a little, the stuck downloads are cut off.
    let started = Instant::now();
    loop {
        let (status, body, _) = api.post("/performance/export?format=json", None);
        if status == 200 {
            assert!(export::read_json(body.as_bytes()).is_ok());
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the export route stayed locked: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("export route free again after {:?}", started.elapsed());
    drop(stuck);
}
