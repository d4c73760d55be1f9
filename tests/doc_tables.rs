//! The docs' tables are the code's tables: every resource figure of `FIGURES` and every
//! metric family has its row in docs/FORMATS.md, written as below, and the README's
//! units table has a row for each figure written since 0.1.0. Run with
//! `VIDPERF_PRINT_TABLES=1` to print the rows.

use vidperf::figure::{FIGURES, FigureDef, Over, Wire};
use vidperf::metrics::{FamilyDef, Kind, all_families};

fn read(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join(path)).expect("doc")
}

fn wire_unit(def: &FigureDef) -> &'static str {
    match def.wire {
        Wire::Mib => "MiB",
        Wire::Percent => "percent",
        _ => match def.unit {
            vidperf::figure::Unit::Watts => "W",
            _ => "J",
        },
    }
}

fn figure_row(def: &'static FigureDef) -> String {
    let over = match def.over {
        Over::Peak => "peak",
        Over::Mean => "mean",
        _ => "total",
    };
    let histogram = vidperf::metrics::figure_family(def).prometheus_name();
    let max = vidperf::metrics::figure_max_family(def).prometheus_name();
    let live = def.live.map_or("—".to_owned(), |l| match l.task {
        Some(task) => format!("`{}{{hw.gpu.task={task}}}`", l.name),
        None => format!("`{}`", l.name),
    });
    format!(
        "| {} | {} | {over} | `{}` ({}) | `{}` | `{histogram}`, `{max}` | {live} | {} |",
        def.name,
        def.unit.otel(),
        def.json,
        wire_unit(def),
        def.attribute,
        if def.csv { "yes" } else { "JSON only" },
    )
}

fn family_row(def: &FamilyDef) -> String {
    let kind = match def.kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
    };
    format!(
        "| `{}` | {kind} | `{}` | `{}` |",
        def.name,
        def.unit,
        def.prometheus_name()
    )
}

#[test]
fn formats_md_has_a_row_for_every_figure_and_family() {
    let text = read("docs/FORMATS.md");
    let print = std::env::var_os("VIDPERF_PRINT_TABLES").is_some();
    let mut missing = Vec::new();
    for def in &FIGURES {
        let row = figure_row(def);
        if print {
            eprintln!("{row}");
        }
        if !text.contains(&row) {
            missing.push(row);
        }
    }
    for def in all_families() {
        let row = family_row(&def);
        if print {
            eprintln!("{row}");
        }
        if !text.contains(&row) {
            missing.push(row);
        }
    }
    assert!(
        missing.is_empty(),
        "docs/FORMATS.md lacks these rows:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_readme_units_table_names_each_original_figure() {
    let text = read("README.md");
    for def in FIGURES.iter().filter(|d| d.since_0_1) {
        let histogram = vidperf::metrics::figure_family(def).prometheus_name();
        assert!(
            text.lines().any(|l| l.starts_with('|')
                && l.contains(&format!("`{}`", def.json))
                && l.contains(&format!("`{}`", def.attribute))
                && l.contains(&format!("`{histogram}`"))),
            "README.md's units table lacks {} with {}, {} and {histogram}",
            def.name,
            def.json,
            def.attribute
        );
    }
}
