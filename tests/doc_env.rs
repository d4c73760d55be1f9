//! The environment variables the docs list are the ones vidperf reads: the README's
//! configuration table and the crate docs' table name the same variables with the same
//! defaults, and each is a constant the builder reads.

fn table(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| l.trim_start_matches("//!").trim())
        .filter(|l| l.starts_with("| `VIDPERF_"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_owned(), cells[2].to_owned())
        })
        .collect()
}

fn read(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join(path)).expect("doc")
}

#[test]
fn the_readme_and_the_crate_docs_list_the_same_variables_and_defaults() {
    let readme = read("README.md");
    let configuration = &readme[readme.find("## Configuration").expect("section")..];
    let readme_rows = table(configuration);
    let crate_rows = table(&read("src/lib.rs"));
    assert!(readme_rows.len() >= 15, "{readme_rows:?}");
    assert_eq!(readme_rows, crate_rows);
}

#[test]
fn every_documented_variable_is_read_by_the_builder() {
    let constants = [
        vidperf::ENV_HISTORY_LIMIT,
        vidperf::ENV_MAX_KEYS,
        vidperf::ENV_MAX_ACTIVE,
        vidperf::monitor::ENV_RESOURCE_MONITOR,
        vidperf::monitor::ENV_SAMPLE_INTERVAL_MS,
        vidperf::monitor::ENV_NVML_LIBRARY,
        vidperf::monitor::ENV_BOUNDARY_READS,
        vidperf::http::ENV_HTTP_ADDR,
        vidperf::http::ENV_HTTP_TOKEN,
        vidperf::watch::ENV_ALERT_RULES,
        vidperf::watch::ENV_ALERTMANAGER_URL,
        vidperf::watch::ENV_BASELINE,
        vidperf::watch::ENV_BASELINE_WINDOW,
        vidperf::watch::ENV_BASELINE_INTERVAL,
        vidperf::otlp::ENV_TAIL_SAMPLING,
    ];
    let documented: Vec<String> = table(&read("README.md"))
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    for var in &documented {
        assert!(
            constants.contains(&var.as_str()),
            "{var} is documented but not read"
        );
    }
    for var in constants {
        assert!(
            documented.iter().any(|d| d == var),
            "{var} is read but not documented"
        );
    }
}
