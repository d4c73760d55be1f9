//! A real OpenTelemetry collector for the tests: rotel (installed from PyPI by
//! scripts/test.sh), started on loopback ports with its debug log going to a file.

#![allow(dead_code)] // each test binary uses a different part

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The `rotel-agent` binary: `VIDPERF_ROTEL_AGENT`, else the one in the `rotel` wheel.
pub(crate) fn rotel_agent() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("VIDPERF_ROTEL_AGENT") {
        return Some(PathBuf::from(path));
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import rotel, os; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
        ])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && path.exists()).then_some(path)
}

#[path = "ports.rs"]
mod ports;
pub(crate) use ports::free_port;

/// A running rotel with its debug log going to a file.
pub(crate) struct Rotel {
    child: Child,
    log: PathBuf,
    pub(crate) grpc_port: u16,
    pub(crate) http_port: u16,
}

impl Rotel {
    /// Starts rotel on two free loopback ports; `None` (the test skips) when rotel is
    /// not installed and `VIDPERF_REQUIRE_ROTEL` is not set.
    pub(crate) fn start() -> Option<Self> {
        Self::start_on(free_port(), free_port())
    }

    /// Starts rotel on the given loopback ports, logging what it receives.
    pub(crate) fn start_on(grpc: u16, http: u16) -> Option<Self> {
        Self::launch(grpc, http, true)
    }

    /// Starts rotel with its Datadog exporter sending to `endpoint` (a capture server:
    /// it posts gzip-compressed trace payloads to `endpoint/api/v0.2/traces`).
    pub(crate) fn start_datadog(endpoint: &str) -> Option<Self> {
        Self::launch_with(
            free_port(),
            free_port(),
            &[
                "--exporter",
                "datadog",
                "--datadog-exporter-custom-endpoint",
                endpoint,
                "--datadog-exporter-api-key",
                "test-api-key",
                "--traces-batch-timeout",
                "100ms",
            ],
        )
    }

    /// Starts rotel on the given loopback ports without its debug log (for long runs:
    /// the detailed log of 10,000 spans/s would fill a disk).
    pub(crate) fn start_quiet_on(grpc: u16, http: u16) -> Option<Self> {
        Self::launch(grpc, http, false)
    }

    fn launch(grpc: u16, http: u16, debug_log: bool) -> Option<Self> {
        let mut args = vec!["--exporter", "blackhole"];
        if debug_log {
            args.extend(["--debug-log", "traces", "--debug-log", "metrics"]);
            args.extend(["--debug-log-verbosity", "detailed"]);
        }
        Self::launch_with(grpc, http, &args)
    }

    fn launch_with(grpc: u16, http: u16, args: &[&str]) -> Option<Self> {
        let Some(agent) = rotel_agent() else {
            assert!(
                std::env::var_os("VIDPERF_REQUIRE_ROTEL").is_none(),
                "rotel is required (scripts/test.sh installs it with pip)"
            );
            eprintln!("rotel not found; skipping (scripts/test.sh installs it with pip)");
            return None;
        };
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let log = std::env::temp_dir().join(format!(
            "vidperf-rotel-{}-{}.log",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(agent);
        command
            .args([
                "start",
                "--otlp-grpc-endpoint",
                &format!("127.0.0.1:{grpc}"),
            ])
            .args(["--otlp-http-endpoint", &format!("127.0.0.1:{http}")])
            .args(args);
        let child = command
            .stdout(Stdio::from(file.try_clone().expect("log")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start rotel-agent");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", http)).is_err()
            || TcpStream::connect(("127.0.0.1", grpc)).is_err()
        {
            assert!(Instant::now() < deadline, "rotel did not open its ports");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self {
            child,
            log,
            grpc_port: grpc,
            http_port: http,
        })
    }

    /// The OTLP/HTTP endpoint.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The OTLP/gRPC endpoint.
    pub(crate) fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// The log as it is now.
    pub(crate) fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// The log once rotel has received every needle (waiting up to 20 s); panics
    /// naming what never arrived.
    pub(crate) fn received(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.log();
            let missing: Vec<_> = needles.iter().filter(|n| !text.contains(**n)).collect();
            if missing.is_empty() {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "rotel did not receive {missing:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
