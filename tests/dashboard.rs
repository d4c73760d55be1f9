//! The built-in dashboard in a real headless Chromium, against the example pipeline
//! serving its API: every strategy is shown, figures move as operations finish, the page
//! is keyboard-navigable, logs no script error, and reconnects after the service
//! restarts. Leaves a screenshot in the temporary directory (`scripts/screenshot.sh`
//! copies it to docs/dashboard.png).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
#[path = "support/webdriver.rs"]
mod webdriver;

/// A free loopback port (bound, then released for the pipeline to take).
#[path = "support/ports.rs"]
mod ports;
use ports::free_port;

/// The pipeline serving on `addr`, submitting clips for three minutes.
fn pipeline(addr: SocketAddr, dir: &std::path::Path) -> Child {
    pipeline_with_token(addr, dir, None)
}

/// The same, requiring `token` on the record routes (the stream included).
fn pipeline_with_token(addr: SocketAddr, dir: &std::path::Path, token: Option<&str>) -> Child {
    let mut command = Command::new(support::example_binary("pipeline"));
    match token {
        Some(t) => command.env("VIDPERF_HTTP_TOKEN", t),
        None => command.env_remove("VIDPERF_HTTP_TOKEN"),
    };
    let mut child = command
        .args([
            "--serve",
            &addr.to_string(),
            "--duration",
            "180",
            "--rate",
            "6",
            "--export-dir",
            &dir.to_string_lossy(),
        ])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the pipeline");
    // Drain its output so it never blocks on a full pipe.
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).count());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    let started = Instant::now();
    while agent.get(format!("http://{addr}/healthz")).call().is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the pipeline never served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let started = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Console entries that are script errors (network errors — a refused connection while
/// the service restarts — are the browser's own report, not the page's).
fn script_errors(entries: &[(String, String, String)]) -> Vec<String> {
    entries
        .iter()
        .filter(|(level, source, _)| {
            source != "network" && (level == "SEVERE" || source == "javascript")
        })
        .map(|(level, source, message)| format!("{level} {source}: {message}"))
        .collect()
}

#[test]
fn the_dashboard_shows_every_strategy_live_and_survives_a_restart() {
    let Some(browser) = webdriver::Browser::start() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("vidperf-dashboard-{}", std::process::id()));
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let first = pipeline(addr, &dir);
    browser.open(&format!("http://{addr}/"));
    let long = Duration::from_secs(30);
    browser.wait_for(
        "the stream to go live",
        "return document.querySelector('#status')?.dataset.state === 'live'",
        long,
    );

    // Every strategy the service reports in the window has its row (once the pipeline
    // has run each of them).
    let strategies = || -> Vec<String> {
        let body = ureq::get(format!("http://{addr}/performance/stats?window=1m"))
            .call()
            .expect("stats")
            .into_body()
            .read_to_string()
            .expect("body");
        let stats: Value = serde_json::from_str(&body).expect("JSON");
        stats["by_strategy"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let started = Instant::now();
    let mut expected = strategies();
    while expected.len() < 4 && started.elapsed() < long {
        std::thread::sleep(Duration::from_millis(250));
        expected = strategies();
    }
    assert!(expected.len() >= 4, "{expected:?}");
    let script = format!(
        "const rows = [...document.querySelectorAll('#strategies tbody tr[data-strategy]')].map(r => r.dataset.strategy);
         return {expected:?}.every(s => rows.includes(s)) ? rows : null;"
    );
    let rows = browser.wait_for("every strategy's row", &script, long);
    eprintln!("strategy rows: {rows}");

    // Figures move as operations finish.
    let count = "return document.querySelector('#total-ops')?.textContent";
    let before = browser.eval(count);
    let moved = format!(
        "const now = document.querySelector('#total-ops')?.textContent; return now !== {before} ? now : null;"
    );
    browser.wait_for("the operation count to move", &moved, long);
    browser.wait_for(
        "finished operations listed",
        "return document.querySelectorAll('#recent tbody tr[data-operation-id]').length",
        long,
    );

    // `scripts/screenshot.sh` lets the charts fill for a while before the picture.
    let settle: u64 = std::env::var("VIDPERF_SCREENSHOT_AFTER_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    std::thread::sleep(Duration::from_secs(settle));
    let shot = browser.screenshot();
    assert!(shot.starts_with(b"\x89PNG"), "a PNG");
    let path = std::env::temp_dir().join("vidperf-dashboard.png");
    std::fs::write(&path, &shot).expect("screenshot");
    eprintln!("screenshot: {}", path.display());

    // Keyboard: the first Tab reaches a focusable element of the page.
    let focused = browser.tab(1);
    assert!(!focused.is_null(), "Tab focuses something");
    let errors = script_errors(&browser.console());
    assert!(errors.is_empty(), "script errors: {errors:?}");

    // The service restarts: the page notices, reconnects by itself, and shows the new
    // process's figures.
    let sequence = "return document.querySelector('#last-update')?.dataset.sequence";
    stop(first);
    browser.wait_for(
        "the page to notice the restart",
        "return document.querySelector('#status')?.dataset.state === 'reconnecting'",
        long,
    );
    let second = pipeline(addr, &dir);
    let uptime = "const up = document.querySelector('#uptime')?.textContent; return up;";
    browser.wait_for(
        "the stream to be live again",
        "return document.querySelector('#status')?.dataset.state === 'live'",
        long,
    );
    assert!(!browser.eval(sequence).is_null());
    assert!(!browser.eval(uptime).is_null());
    let errors = script_errors(&browser.console());
    assert!(
        errors.is_empty(),
        "script errors after the restart: {errors:?}"
    );
    stop(second);
    let _ = std::fs::remove_dir_all(dir);
}

/// A token the browser cannot send (beyond visible ASCII), typed in or left in the
/// tab's storage, is answered "token rejected" with the form shown again — never an
/// endless "reconnecting"; the right token then connects.
#[test]
fn a_token_the_browser_cannot_send_is_rejected_with_the_form_shown_again() {
    let Some(browser) = webdriver::Browser::start() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("vidperf-dashboard-token-{}", std::process::id()));
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let child = pipeline_with_token(addr, &dir, Some("s3cret-token"));
    browser.open(&format!("http://{addr}/"));
    let long = Duration::from_secs(30);
    let form_with = |needle: &str| {
        format!(
            "const s = document.querySelector('#auth-section'); const m = document.querySelector('#auth-message');
             return s && !s.hidden && m.textContent.includes({needle:?}) ? m.textContent : null;"
        )
    };
    browser.wait_for("the token form", &form_with("requires an API token"), long);
    browser.eval(
        "document.querySelector('#token').value = 'токен'; document.querySelector('#auth').requestSubmit(); return true;",
    );
    browser.wait_for("a typed token rejected", &form_with("Token rejected"), long);
    // Left in the tab's storage (a reload keeps it): rejected again, not a lock-out.
    browser
        .eval("sessionStorage.setItem('vidperf-token', 'токен'); location.reload(); return true;");
    browser.wait_for(
        "a stored token rejected",
        &form_with("Token rejected"),
        long,
    );
    let status: Value = browser.eval("return document.querySelector('#status').dataset.state");
    assert_eq!(
        status, "auth",
        "the page asks, it does not spin reconnecting"
    );
    browser.eval(
        "document.querySelector('#token').value = 's3cret-token'; document.querySelector('#auth').requestSubmit(); return true;",
    );
    browser.wait_for(
        "the stream to go live with the right token",
        "return document.querySelector('#status')?.dataset.state === 'live'",
        long,
    );
    assert!(
        script_errors(&browser.console()).is_empty(),
        "{:?}",
        browser.console()
    );
    stop(child);
}

/// A running operation that records `frames_total` shows its progress in the page's
/// running table, and the figure moves as the operation records more frames.
#[test]
fn a_running_operation_shows_its_progress() {
    use tracing_subscriber::prelude::*;
    let Some(browser) = webdriver::Browser::start() else {
        return;
    };
    let (layer, handle) = vidperf::builder()
        .without_env()
        .http_api("127.0.0.1:0".parse().expect("addr"))
        .build()
        .expect("build");
    let addr = handle.http_addr().expect("serving");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        let op = vidperf::Operation::start("enhancement", "seedvr2")
            .with_metadata("frames_total", 48u32);
        op.update("frames_processed", 12u32);
        browser.open(&format!("http://{addr}/"));
        let long = Duration::from_secs(30);
        let cell = |text: &str| {
            format!(
                "const c = document.querySelector('#active tbody [data-field=\"progress\"]');
                 return c && c.textContent === {text:?} ? c.textContent : null;"
            )
        };
        browser.wait_for("the progress shown", &cell("12/48 frames (25%)"), long);
        op.update("frames_processed", 36u32);
        browser.wait_for("the progress moved", &cell("36/48 frames (75%)"), long);
        op.finish();
    });
    assert!(
        script_errors(&browser.console()).is_empty(),
        "{:?}",
        browser.console()
    );
    let _ = handle.shutdown(Duration::from_secs(5));
}
