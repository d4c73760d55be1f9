//! `promtool check metrics` on a page of Prometheus text (scripts/test.sh installs
//! promtool; `VIDPERF_REQUIRE_PROMTOOL=1` makes its absence a failure).

use std::io::Write;
use std::process::{Command, Stdio};

/// Panics with promtool's words when it rejects `page` or warns about it.
pub(crate) fn check_metrics(page: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if std::env::var_os("VIDPERF_REQUIRE_PROMTOOL").is_some() => {
            panic!("promtool is required (scripts/test.sh installs it): {e}")
        }
        Err(e) => {
            eprintln!("promtool not found ({e}); skipping the lint (scripts/test.sh installs it)");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics failed ({:?}):\n{text}",
        out.status
    );
    assert!(text.trim().is_empty(), "promtool warnings:\n{text}");
}
