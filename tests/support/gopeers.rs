//! The OpenTelemetry Collector and Jaeger v2 that `scripts/install-test-deps.sh` builds
//! with Go from `tools/otelcol` and `tools/jaeger` (linked under
//! `$XDG_CACHE_HOME/vidperf/bin`, or `~/.cache/vidperf/bin`), run on loopback ports.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A built peer: `otelcol-vidperf` or `jaeger`. `None` (the test is skipped) when it is
/// not built and `VIDPERF_REQUIRE_TOOLS` is not set.
pub(crate) fn binary(name: &str) -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    let path = cache.join("vidperf").join("bin").join(name);
    if path.is_file() {
        return Some(path);
    }
    let message = format!(
        "{} not built: scripts/install-test-deps.sh builds it with Go from tools/",
        path.display()
    );
    assert!(
        std::env::var_os("VIDPERF_REQUIRE_TOOLS").is_none(),
        "{message}"
    );
    eprintln!("skipped: {message}");
    None
}

/// The repository's root.
pub(crate) fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A free loopback port.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A running peer, killed when dropped; its output goes to `log`.
pub(crate) struct Peer {
    child: Child,
    pub(crate) log: PathBuf,
}

impl Peer {
    /// Runs `binary args…` with `env`, logging to `log`, and waits until `port` accepts
    /// connections.
    pub(crate) fn start(
        binary: &Path,
        args: &[&str],
        env: &[(&str, String)],
        log: PathBuf,
        port: u16,
    ) -> Self {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut command = Command::new(binary);
        command
            .args(args)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("the peer starts");
        let peer = Self { child, log };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{} never listened on {port}: {}",
                binary.display(),
                peer.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        peer
    }

    /// What it printed so far.
    pub(crate) fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Jaeger v2 with `tools/jaeger/jaeger-test.yaml` (OTLP in, memory store, query API);
/// `(peer, OTLP gRPC port, query URL)`.
pub(crate) fn jaeger(dir: &Path) -> Option<(Peer, u16, String)> {
    let binary = binary("jaeger")?;
    let (grpc, http, query, query_grpc) = (free_port(), free_port(), free_port(), free_port());
    let config = root().join("tools/jaeger/jaeger-test.yaml");
    let peer = Peer::start(
        &binary,
        &["--config", &config.to_string_lossy()],
        &[
            ("JAEGER_OTLP_GRPC", format!("127.0.0.1:{grpc}")),
            ("JAEGER_OTLP_HTTP", format!("127.0.0.1:{http}")),
            ("JAEGER_QUERY_HTTP", format!("127.0.0.1:{query}")),
            ("JAEGER_QUERY_GRPC", format!("127.0.0.1:{query_grpc}")),
        ],
        dir.join("jaeger.log"),
        query,
    );
    // The OTLP receiver too, before anything sends.
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", grpc)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            peer.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((peer, grpc, format!("http://127.0.0.1:{query}")))
}
