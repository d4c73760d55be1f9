//! The names the documentation shows are the names vidperf exports: every
//! `vidperf.…` OpenTelemetry metric or attribute name and every `vidperf_…` / `hw_…`
//! Prometheus family named in the README, docs/ and collector-config/ — the fleet's
//! alert rules and Grafana dashboard included (a histogram's `_bucket`, `_count` and
//! `_sum` count as its family).

use std::path::Path;

/// Every word of `text` that starts with `prefix` (letters, digits, `_` and `.`
/// continuing it), without a trailing `.`; words followed by `::` are Rust paths.
fn words<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(prefix) {
        let at = from + i;
        let before = text[..at].chars().next_back();
        let len = text[at..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(text.len() - at);
        let word = text[at..at + len].trim_end_matches('.');
        let is_path = text[at + len..].starts_with("::");
        if before.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '/'))
            && !is_path
        {
            out.push(word);
        }
        from = at + len.max(1);
    }
    out
}

fn documents() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![
        root.join("README.md"),
        root.join("collector-config/README.md"),
    ];
    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, files);
            } else if path
                .extension()
                .is_some_and(|e| e == "md" || e == "yaml" || e == "yml" || e == "json")
            {
                files.push(path);
            }
        }
    }
    for dir in ["docs", "collector-config"] {
        walk(&root.join(dir), &mut files);
    }
    files.sort();
    files.dedup();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read");
            (p.display().to_string(), text)
        })
        .collect()
}

#[test]
fn opentelemetry_names_in_the_docs_are_exported() {
    use vidperf::otlp::attr;
    let families = vidperf::metrics::all_families();
    let figures = vidperf::figure::FIGURES.iter().flat_map(|d| {
        [
            Some(d.attribute),
            Some(d.max_metric),
            d.per_frame.map(|(a, _)| a),
        ]
        .into_iter()
        .flatten()
    });
    let known: Vec<&str> = families
        .iter()
        .map(|f| f.name)
        .chain(figures)
        .chain([
            attr::OPERATION,
            attr::STRATEGY,
            attr::SAMPLES,
            attr::FPS,
            attr::OUTCOME,
            attr::SAMPLING_REASON,
            "vidperf.metadata_dropped",
        ])
        .collect();
    let mut checked = 0;
    for (file, text) in documents() {
        for word in words(&text, "vidperf.") {
            // A file name (vidperf.json) or a method call (vidperf.snapshot()).
            if word == "vidperf" || word.ends_with(".json") || text.contains(&format!("{word}(")) {
                continue;
            }
            assert!(
                known.contains(&word),
                "{file}: {word} is not an exported metric or attribute name"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} names found");
}

#[test]
fn prometheus_names_in_the_docs_are_on_the_page() {
    use vidperf::metrics::{attr, prometheus_label};
    let families: Vec<String> = vidperf::metrics::all_families()
        .iter()
        .map(|f| f.prometheus_name())
        .collect();
    let labels: Vec<String> = [
        attr::OPERATION,
        attr::STRATEGY,
        attr::OUTCOME,
        attr::HW_ID,
        attr::HW_TYPE,
        attr::HW_GPU_TASK,
    ]
    .into_iter()
    .map(prometheus_label)
    .collect();
    let known = |name: &str| {
        labels.iter().any(|l| l == name)
            || families.iter().any(|f| {
                name == f
                    || ["_bucket", "_count", "_sum"]
                        .iter()
                        .any(|suffix| name.strip_suffix(suffix) == Some(f.as_str()))
            })
    };
    // Crate names written with underscores in Rust paths and file names.
    let not_metrics = [
        "vidperf_core",
        "vidperf_watch",
        "vidperf_otel",
        "vidperf_server",
        "vidperf_sampler",
        "vidperf_macros",
        "vidperf_fake_nvml",
        "vidperf_cli",
        // The header key of a `vidperf top --record` file (docs/FORMATS.md).
        "vidperf_recording",
    ];
    let mut checked = 0;
    for (file, text) in documents() {
        for prefix in ["vidperf_", "hw_"] {
            for word in words(&text, prefix) {
                let word = word.trim_end_matches('.');
                if not_metrics.contains(&word) || word.contains('.') {
                    continue;
                }
                assert!(known(word), "{file}: {word} is not on the /metrics page");
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} names found");
}
