//! A real Prometheus Alertmanager on loopback (Debian's `prometheus-alertmanager`, whose
//! binary is `/usr/bin/prometheus-alertmanager`; `scripts/install-test-deps.sh` installs
//! it), with clustering off and its own temporary storage.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "ports.rs"]
mod ports;
pub(crate) use ports::free_port;

pub(crate) struct Alertmanager {
    child: Child,
    pub(crate) url: String,
    dir: std::path::PathBuf,
    agent: ureq::Agent,
}

impl Alertmanager {
    /// Starts one; `None` (the test is skipped) when it is not installed and
    /// `VIDPERF_REQUIRE_TOOLS` is not set.
    pub(crate) fn start() -> Option<Self> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("vidperf-am-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).expect("temp dir");
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: blackhole\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: blackhole\n",
        )
        .expect("config");
        let spawned = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Clustering off: a second instance would fight over the default port.
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let message = format!(
                    "prometheus-alertmanager not runnable ({e}): install the Debian package prometheus-alertmanager (scripts/install-test-deps.sh does)"
                );
                assert!(
                    std::env::var_os("VIDPERF_REQUIRE_TOOLS").is_none(),
                    "{message}"
                );
                eprintln!("skipped: {message}");
                return None;
            }
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let am = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
            agent,
        };
        let started = Instant::now();
        loop {
            let ready = am
                .agent
                .get(format!("{}/-/ready", am.url))
                .call()
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return Some(am);
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "Alertmanager never became ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The alerts Alertmanager holds now (active ones; resolved alerts are not listed).
    pub(crate) fn alerts(&self) -> Vec<Value> {
        let body = self
            .agent
            .get(format!("{}/api/v2/alerts", self.url))
            .call()
            .expect("GET /api/v2/alerts")
            .into_body()
            .read_to_string()
            .expect("body");
        serde_json::from_str::<Vec<Value>>(&body).expect("a JSON array")
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
