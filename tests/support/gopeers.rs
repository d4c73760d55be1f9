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

#[path = "ports.rs"]
mod ports;
pub(crate) use ports::free_port;

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
        Self::try_start(binary, args, env, log, port)
            .unwrap_or_else(|output| panic!("{} exited: {output}", binary.display()))
    }

    /// [`Peer::start`], answering what the peer printed when it exits before listening
    /// (a port taken by another process in the meantime, say) instead of panicking.
    pub(crate) fn try_start(
        binary: &Path,
        args: &[&str],
        env: &[(&str, String)],
        log: PathBuf,
        port: u16,
    ) -> Result<Self, String> {
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
        let mut peer = Self { child, log };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = peer.child.try_wait() {
                return Err(format!(
                    "{status} before listening on {port}: {}",
                    peer.output()
                ));
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{} never listened on {port}: {}",
                binary.display(),
                peer.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(peer)
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
    let config = root().join("tools/jaeger/jaeger-test.yaml");
    // Four ports, free when chosen; another process may take one before Jaeger binds
    // it, and Jaeger then exits: fresh ones are tried, three times in all.
    let mut failures = Vec::new();
    for _ in 0..3 {
        let (grpc, http, query, query_grpc) = (free_port(), free_port(), free_port(), free_port());
        let started = Peer::try_start(
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
        let mut peer = match started {
            Ok(peer) => peer,
            Err(output) => {
                failures.push(output);
                continue;
            }
        };
        // The OTLP receiver too, before anything sends. Jaeger starts its query API
        // first and stops it again when a receiver cannot bind.
        let started = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", grpc)).is_ok() {
                return Some((peer, grpc, format!("http://127.0.0.1:{query}")));
            }
            if let Ok(Some(status)) = peer.child.try_wait() {
                failures.push(format!(
                    "{status} before listening on {grpc}: {}",
                    peer.output()
                ));
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{}",
                peer.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!(
        "{} never started: {}",
        binary.display(),
        failures.join("\n---\n")
    );
}
