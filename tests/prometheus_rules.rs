//! The fleet's alert rules (collector-config/prometheus/) checked and unit-tested with
//! promtool: `promtool check rules` clean, `promtool test rules` passing.

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) -> Option<String> {
    let out = match Command::new("promtool").args(args).output() {
        Ok(out) => out,
        Err(e) if std::env::var_os("VIDPERF_REQUIRE_PROMTOOL").is_some() => {
            panic!("promtool is required (scripts/test.sh installs it): {e}")
        }
        Err(e) => {
            eprintln!("promtool not found ({e}); skipping (scripts/test.sh installs it)");
            return None;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {args:?} failed ({:?}):\n{text}",
        out.status
    );
    Some(text)
}

fn config(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("collector-config/prometheus")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn the_fleet_rules_check_clean() {
    let Some(text) = promtool(&["check", "rules", &config("vidperf-alerts.yml")]) else {
        return;
    };
    assert!(text.contains("SUCCESS"), "{text}");
    assert!(!text.to_lowercase().contains("warn"), "{text}");
}

#[test]
fn the_fleet_rules_pass_their_unit_tests() {
    let Some(text) = promtool(&["test", "rules", &config("vidperf-alerts.test.yml")]) else {
        return;
    };
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn the_scrape_configuration_checks_clean() {
    // `check config` also loads the rule files it names.
    let Some(text) = promtool(&[
        "check",
        "config",
        "--syntax-only",
        &config("prometheus.yml"),
    ]) else {
        return;
    };
    assert!(text.contains("SUCCESS"), "{text}");
}
