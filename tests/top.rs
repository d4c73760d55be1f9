//! `vidperf top` in a real terminal: tmux (`send-keys`, `capture-pane`) runs it against
//! the example pipeline serving its HTTP API, with a fake GPU (the fake
//! `libnvidia-ml.so`, 95% of its memory used) and an alert rule that fires. Every
//! strategy appears, a figure changes as operations finish, sorting and the filter
//! work, the help opens and closes, `q` exits and gives the terminal back as it was,
//! and the recording made meanwhile replays the very frames the live view showed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;

#[path = "support/ports.rs"]
mod ports;
use ports::free_port;

/// The `vidperf` binary of this build, beside the test's deps directory.
fn cli() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join(format!("vidperf{}", std::env::consts::EXE_SUFFIX))
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tmux server of this test's own (its own socket, no configuration file).
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Self {
        let version = Command::new("tmux").arg("-V").output();
        assert!(
            version.as_ref().is_ok_and(|o| o.status.success()),
            "tmux is needed (scripts/install-test-deps.sh installs it): {version:?}"
        );
        Self {
            socket: format!("vidperf-top-{}", std::process::id()),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .env_remove("NO_COLOR")
            .output()
            .expect("tmux runs")
    }

    /// A detached 80×24 session running `command` (no status line).
    fn start(&self, session: &str, command: &str) {
        let out = self.run(&[
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "80",
            "-y",
            "24",
            command,
            ";",
            "set-option",
            "-t",
            session,
            "status",
            "off",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let size = self.run(&[
            "display-message",
            "-p",
            "-t",
            session,
            "#{pane_width}x#{pane_height}",
        ]);
        assert_eq!(String::from_utf8_lossy(&size.stdout).trim(), "80x24");
    }

    fn capture(&self, session: &str) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", session]).stdout)
            .into_owned()
    }

    fn keys(&self, session: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", session];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success());
    }

    fn literal(&self, session: &str, text: &str) {
        assert!(
            self.run(&["send-keys", "-t", session, "-l", text])
                .status
                .success()
        );
    }

    /// The first capture for which `ok` holds, within `timeout`.
    fn wait(
        &self,
        session: &str,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.capture(session);
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{what}, within {timeout:?}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The strategy table's rows: (name, cells), between the heading and the GPU pane.
fn table(screen: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let lines: Vec<&str> = screen.lines().collect();
    let Some(head) = lines.iter().position(|l| l.starts_with("strategy")) else {
        return (Vec::new(), Vec::new());
    };
    let heading = lines[head].split_whitespace().map(str::to_owned).collect();
    let rows = lines[head + 1..]
        .iter()
        .take_while(|l| !l.starts_with(" GPU "))
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    (heading, rows)
}

/// A duration as the table writes it, seconds.
fn seconds(cell: &str) -> Option<f64> {
    if let Some((m, s)) = cell.split_once('m')
        && let Some(s) = s.strip_suffix('s')
        && !s.is_empty()
    {
        return Some(m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?);
    }
    for (suffix, scale) in [("µs", 1e-6), ("ms", 1e-3), ("s", 1.0), ("h", 3600.0)] {
        if let Some(n) = cell.strip_suffix(suffix) {
            return n.parse::<f64>().ok().map(|v| v * scale);
        }
    }
    None
}

/// Whether the table is sorted by its p95 column, highest first (or lowest).
fn sorted_by_p95(screen: &str, descending: bool) -> bool {
    let (heading, rows) = table(screen);
    let mark = if descending { "p95↓" } else { "p95↑" };
    let Some(column) = heading.iter().position(|h| h == mark) else {
        return false;
    };
    let values: Vec<f64> = rows
        .iter()
        .map(|r| r.get(column).and_then(|c| seconds(c)).unwrap_or(f64::NAN))
        .collect();
    values.len() >= 3
        && values.windows(2).all(|w| {
            if descending {
                w[0] >= w[1]
            } else {
                w[0] <= w[1]
            }
        })
}

/// The event number in the header (`#12`).
fn sequence(screen: &str) -> Option<u64> {
    let header = screen.lines().next()?;
    header
        .split_whitespace()
        .find_map(|w| w.strip_prefix('#')?.parse().ok())
}

/// A frame's body: all but the header (the source) and the key line.
fn body(screen: &str) -> Vec<String> {
    let lines: Vec<&str> = screen.lines().collect();
    let mut body: Vec<String> = lines
        .get(1..lines.len().saturating_sub(1))
        .unwrap_or_default()
        .iter()
        .map(|l| l.trim_end().to_owned())
        .collect();
    while body.last().is_some_and(String::is_empty) {
        body.pop();
    }
    body
}

fn once(args: &[&str]) -> String {
    let out = Command::new(cli())
        .arg("top")
        .args(args)
        .arg("--once")
        .env_remove("VIDPERF_HTTP_TOKEN")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (cargo build -p vidperf-cli)", cli().display()));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn strategies(url: &str) -> Vec<String> {
    let mut response = ureq::get(format!("{url}/performance/stats"))
        .call()
        .expect("stats");
    let stats: serde_json::Value =
        serde_json::from_str(&response.body_mut().read_to_string().expect("body")).expect("JSON");
    stats["by_strategy"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn pipeline(dir: &Path, port: u16) -> Killed {
    let rules = dir.join("alerts.toml");
    std::fs::write(
        &rules,
        "evaluation_interval = \"1s\"\n[[rule]]\nname = \"SlowSeedVR2\"\nmetric = \"duration_p95\"\nabove = 0.000001\nwindow = \"1m\"\nmin_samples = 1\nstrategy = \"seedvr2\"\n",
    )
    .expect("rules");
    let child = Command::new(support::example_binary("pipeline"))
        .args(["--serve", &format!("127.0.0.1:{port}")])
        // Light on purpose: the other tests share the machine's cores.
        .args([
            "--duration",
            "300",
            "--frames",
            "2",
            "--workers",
            "1",
            "--rate",
            "4",
        ])
        .args(["--export-dir", &dir.join("export").to_string_lossy()])
        .env("VIDPERF_NVML_LIBRARY", vidperf_fake_nvml::library_path())
        .env("FAKE_NVML_MEMORY_TOTAL", (80u64 << 30).to_string())
        .env("FAKE_NVML_MEMORY_USED", (76u64 << 30).to_string())
        .env("FAKE_NVML_UTILIZATION", "63")
        .env("FAKE_NVML_DECODER_UTILIZATION", "40")
        .env("FAKE_NVML_ENCODER_UTILIZATION", "25")
        .env("VIDPERF_ALERT_RULES", &rules)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("VIDPERF_HTTP_TOKEN")
        .env_remove("VIDPERF_BASELINE")
        .env_remove("VIDPERF_ALERTMANAGER_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pipeline");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while ureq::get(format!("{url}/healthz")).call().is_err() {
        assert!(Instant::now() < deadline, "the pipeline never served");
        std::thread::sleep(Duration::from_millis(100));
    }
    Killed(child)
}

#[test]
fn top_in_a_real_terminal_live_then_replayed() {
    let tmux = Tmux::new();
    let dir = std::env::temp_dir().join(format!("vidperf-top-tmux-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let port = free_port();
    let _pipeline = pipeline(&dir, port);
    let url = format!("http://127.0.0.1:{port}");
    let rec = dir.join("top.jsonl");
    let rec = rec.to_string_lossy();
    let cli = cli();
    tmux.start(
        "live",
        &format!(
            "{} top {url} --record {rec}; echo top-exited-$?; stty -a | tr ' ;' '\\n\\n' | grep -x -- '-\\?icanon'; sleep 600",
            cli.display()
        ),
    );

    // Every strategy the service has seen appears (the pipeline's router, its three
    // strategies and the frontend's `auto`, once each has finished an operation).
    let deadline = Instant::now() + Duration::from_secs(90);
    let expected = loop {
        let s = strategies(&url);
        if s.len() >= 5 {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the pipeline's strategies: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let first = tmux.wait(
        "live",
        "every strategy in the table",
        Duration::from_secs(30),
        |s| {
            let (_, rows) = table(s);
            expected
                .iter()
                .all(|name| rows.iter().any(|r| r[0] == *name))
        },
    );
    // The GPU pane shows the fake device; the lints, the alert firing and the VRAM peak.
    let first = if first.contains("SlowSeedVR2 firing") {
        first
    } else {
        tmux.wait("live", "the alert firing", Duration::from_secs(20), |s| {
            s.contains("✗ alert SlowSeedVR2 firing for seedvr2")
        })
    };
    assert!(
        first.contains("mem 76.0G/80.0G 95%  util 63%  nvdec 40%  nvenc 25%"),
        "{first}"
    );
    assert!(first.contains("! vram "), "{first}");
    assert!(first.lines().all(|l| l.chars().count() <= 80), "{first}");

    // A figure changes as operations finish: a later event, another table.
    let (_, rows) = table(&first);
    let n = sequence(&first).expect("an event number");
    let later = tmux.wait("live", "a figure changing", Duration::from_secs(30), |s| {
        sequence(s).is_some_and(|m| m > n) && table(s).1 != rows
    });
    // This frame is compared with its replay at the end.
    let reference = later;

    // Sorting: `s` twice goes from rate to p50 to p95, highest first; `S` reverses.
    tmux.keys("live", &["s", "s"]);
    tmux.wait(
        "live",
        "the table by p95, highest first",
        Duration::from_secs(10),
        |s| sorted_by_p95(s, true),
    );
    tmux.keys("live", &["S"]);
    tmux.wait(
        "live",
        "the table by p95, lowest first",
        Duration::from_secs(10),
        |s| sorted_by_p95(s, false),
    );

    // The filter: `/seed`, enter: SeedVR2 alone; `/` and esc clear it.
    tmux.keys("live", &["/"]);
    tmux.literal("live", "seed");
    tmux.keys("live", &["Enter"]);
    // The table narrows while the filter is typed; the key line shows it kept once the
    // Enter is read.
    tmux.wait(
        "live",
        "SeedVR2 alone, the filter kept",
        Duration::from_secs(10),
        |s| {
            let (_, rows) = table(s);
            rows.len() == 1 && rows[0][0] == "seedvr2" && s.contains("/ filter:seed")
        },
    );
    tmux.keys("live", &["/", "Escape"]);
    tmux.wait(
        "live",
        "every strategy again",
        Duration::from_secs(10),
        |s| table(s).1.len() >= expected.len(),
    );

    // The help, and any key closing it.
    tmux.keys("live", &["?"]);
    tmux.wait("live", "the help", Duration::from_secs(10), |s| {
        s.contains("filter strategies by name") && s.contains(" keys ")
    });
    tmux.keys("live", &["x"]);
    tmux.wait("live", "the help closed", Duration::from_secs(10), |s| {
        !s.contains("filter strategies by name")
    });

    // The window: `w` reconnects over five minutes.
    tmux.keys("live", &["w"]);
    tmux.wait("live", "the 5m window", Duration::from_secs(10), |s| {
        s.contains(" · 5m · ")
    });

    // `q`: the view ends with status 0 and the terminal is as it was (the main screen,
    // canonical mode back on).
    tmux.keys("live", &["q"]);
    let after = tmux.wait("live", "the view gone", Duration::from_secs(10), |s| {
        s.contains("top-exited-0")
            && s.lines()
                .any(|l| l.trim() == "icanon" || l.trim() == "-icanon")
    });
    assert!(
        after.lines().any(|l| l.trim() == "icanon"),
        "raw mode left on: {after}"
    );
    assert!(
        !after.contains("strategy") && !after.contains(" GPU "),
        "{after}"
    );

    // The replay of the recording shows the frame the live view showed.
    let recorded = std::fs::read_to_string(&*rec).expect("the recording");
    let wanted = sequence(&reference).expect("an event number");
    let index = recorded
        .lines()
        .skip(1)
        .position(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["event"]["sequence"].as_u64())
                == Some(wanted)
        })
        .expect("the event in the recording");
    let replayed = once(&["--replay", &rec, "--seek", &index.to_string()]);
    assert_eq!(
        body(&reference),
        body(&replayed),
        "live:\n{reference}\nreplayed:\n{replayed}"
    );

    // The replay in the terminal: pause, first frame, a step, the last frame.
    let frames = recorded.lines().count() - 1;
    tmux.start(
        "replay",
        &format!(
            "{} top --replay {rec}; echo replay-exited-$?; sleep 600",
            cli.display()
        ),
    );
    tmux.wait(
        "replay",
        "the replay playing",
        Duration::from_secs(10),
        |s| s.contains("REPLAY "),
    );
    tmux.keys("replay", &["Space", "g"]);
    tmux.wait(
        "replay",
        "the first frame, paused",
        Duration::from_secs(10),
        |s| s.contains(&format!("REPLAY 1/{frames} paused")),
    );
    tmux.keys("replay", &["Right"]);
    tmux.wait("replay", "one step on", Duration::from_secs(10), |s| {
        s.contains(&format!("REPLAY 2/{frames} paused"))
    });
    tmux.keys("replay", &["G"]);
    let last = tmux.wait("replay", "the last frame", Duration::from_secs(10), |s| {
        s.contains(&format!("REPLAY {frames}/{frames}"))
    });
    assert_eq!(body(&last), body(&once(&["--replay", &rec])), "{last}");
    tmux.keys("replay", &["q"]);
    tmux.wait("replay", "the replay gone", Duration::from_secs(10), |s| {
        s.contains("replay-exited-0")
    });
    let _ = std::fs::remove_dir_all(&dir);
}
