//! A comparison as a terminal table, Markdown (for a CI comment) or JSON.

use std::fmt::Write as _;

use serde::Serialize;
use vidperf_watch::compare::{Comparison, Figure, FigureChange, PairComparison, Verdict};

use crate::input::Side;

/// The JSON document `--format json` writes.
#[derive(Debug, Serialize)]
pub struct Document<'a> {
    /// The baseline side (the first, when there are several).
    pub baseline: &'a Side,
    /// The other baseline runs.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub other_baselines: &'a [Side],
    /// The current side.
    pub current: &'a Side,
    /// Whether any pair regressed (the exit status is 1 then).
    pub regressed: bool,
    /// How many pairs were judged; `0` is "nothing judged" (the exit status is 3 then,
    /// unless `--allow-insufficient`).
    pub judged: usize,
    /// Every pair.
    pub comparison: &'a Comparison,
}

/// The columns of the table and of the Markdown: judged figures first.
const COLUMNS: [Figure; 6] = [
    Figure::P50Duration,
    Figure::P95Duration,
    Figure::FrameTime,
    Figure::FailureRate,
    Figure::Quality,
    Figure::Fps,
];

fn figure(pair: &PairComparison, which: Figure) -> Option<&FigureChange> {
    pair.figures.iter().find(|f| f.figure == which)
}

/// A change as text: `+12.3% [+8.1, +16.9]` for a ratio, `+1.2 pp [..]` for a failure
/// rate, `-0.031 [..]` for quality; `-` when absent.
fn change_text(f: Option<&FigureChange>) -> String {
    let Some(f) = f else {
        return "-".to_owned();
    };
    let Some(change) = f.change else {
        return "-".to_owned();
    };
    let (value, interval) = match f.figure {
        Figure::FailureRate => (
            format!("{:+.1} pp", change * 100.0),
            f.interval
                .map(|[lo, hi]| format!(" [{:+.1}, {:+.1}]", lo * 100.0, hi * 100.0)),
        ),
        Figure::Quality => (
            format!("{change:+.3}"),
            f.interval.map(|[lo, hi]| format!(" [{lo:+.3}, {hi:+.3}]")),
        ),
        _ => (
            format!("{:+.1}%", (change - 1.0) * 100.0),
            f.interval.map(|[lo, hi]| {
                format!(" [{:+.1}, {:+.1}]", (lo - 1.0) * 100.0, (hi - 1.0) * 100.0)
            }),
        ),
    };
    let mark = match f.verdict {
        Some(Verdict::Regressed) => " ▲",
        Some(Verdict::Improved) => " ▼",
        Some(Verdict::NotEnoughData) => " (too few)",
        _ => "",
    };
    format!("{value}{}{mark}", interval.unwrap_or_default())
}

fn header() -> Vec<String> {
    let mut h = vec![
        "operation".to_owned(),
        "strategy".to_owned(),
        "ops (base → now)".to_owned(),
    ];
    h.extend(COLUMNS.iter().map(|f| match f {
        Figure::P50Duration => "p50".to_owned(),
        Figure::P95Duration => "p95".to_owned(),
        Figure::FrameTime => "per frame".to_owned(),
        Figure::FailureRate => "failures".to_owned(),
        Figure::Quality => "quality".to_owned(),
        _ => "fps".to_owned(),
    }));
    h.push("verdict".to_owned());
    h
}

fn row(pair: &PairComparison) -> Vec<String> {
    let mut r = vec![
        pair.operation_type.clone(),
        pair.strategy.clone(),
        format!("{} → {}", pair.baseline_operations, pair.current_operations),
    ];
    r.extend(COLUMNS.iter().map(|c| change_text(figure(pair, *c))));
    r.push(pair.verdict.name().to_owned());
    r
}

fn footer(comparison: &Comparison) -> String {
    let c = &comparison.config;
    let mut out = String::new();
    let regressions: Vec<String> = comparison
        .regressions()
        .map(|(op, st, f)| format!("{op}/{st} {}", f.name()))
        .collect();
    if comparison.judged() == 0 {
        let _ = writeln!(out, "{}", nothing_judged(comparison));
    } else if regressions.is_empty() {
        out.push_str("No regression.\n");
    } else {
        let _ = writeln!(out, "Regressed: {}.", regressions.join(", "));
    }
    let _ = writeln!(
        out,
        "Changes are current vs baseline with {:.0}% intervals (▲ regressed, ▼ improved). \
         A figure regresses when its test gives p < {} and the whole interval is beyond \
         the noise threshold ({:.0}% for durations, {:.1} pp for failures, {} for quality); \
         pairs need {} operations a side ({} for p95). fps is shown, not judged.",
        c.confidence * 100.0,
        c.alpha,
        c.noise * 100.0,
        c.failure_noise * 100.0,
        c.quality_noise,
        c.min_samples,
        c.min_samples_p95
    );
    if comparison.baselines > 1 {
        let _ = writeln!(
            out,
            "Judged against {} baseline runs (changes shown against the first): a figure \
             regresses only if it regresses against every one, and a duration figure must \
             also exceed the baselines' own run-to-run spread (their {:.0}% prediction \
             bound; `threshold` in the JSON).",
            comparison.baselines,
            (1.0 - c.alpha) * 100.0
        );
    }
    out
}

/// What a comparison that judged no pair says instead of "No regression": what was
/// needed, and the most either side had.
pub fn nothing_judged(comparison: &Comparison) -> String {
    let most = comparison
        .pairs
        .iter()
        .map(|p| p.baseline_operations.min(p.current_operations))
        .max()
        .unwrap_or(0);
    format!(
        "Nothing judged: no pair has {} operations on both sides (the most: {most}){}. \
         This is not a pass (exit 3; --allow-insufficient exits 0).",
        comparison.config.min_samples,
        if comparison.pairs.is_empty() {
            ", and no pair matched"
        } else {
            ""
        }
    )
}

/// The table, padded to column widths; `colour` paints regressed rows red and improved
/// ones green.
pub fn table(comparison: &Comparison, baseline: &Side, current: &Side, colour: bool) -> String {
    let mut rows = vec![header()];
    rows.extend(comparison.pairs.iter().map(row));
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let _ = writeln!(out, "baseline: {}{}", baseline.source, notes(baseline));
    let _ = writeln!(out, "current:  {}{}\n", current.source, notes(current));
    for (k, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell}{}", " ".repeat(w - cell.chars().count())))
            .collect();
        let line = line.join("  ").trim_end().to_owned();
        let paint = match comparison.pairs.get(k.wrapping_sub(1)).map(|p| p.verdict) {
            Some(Verdict::Regressed) if colour && k > 0 => Some("31"),
            Some(Verdict::Improved) if colour && k > 0 => Some("32"),
            _ => None,
        };
        match paint {
            Some(code) => {
                let _ = writeln!(out, "\x1b[{code}m{line}\x1b[0m");
            }
            None => {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    out.push('\n');
    out.push_str(&footer(comparison));
    out
}

fn notes(side: &Side) -> String {
    let mut notes = vec![format!("{} operations", side.operations)];
    if let Some(at) = &side.exported_at {
        notes.push(format!("exported {at}"));
    }
    if side.from_records {
        notes.push(format!(
            "format {}: rebuilt from the records kept",
            side.format_version
        ));
    }
    format!(" ({})", notes.join(", "))
}

/// GitHub-flavoured Markdown, for a CI comment.
pub fn markdown(comparison: &Comparison, baseline: &Side, current: &Side) -> String {
    let escape = |s: &str| s.replace('|', "\\|");
    let mut out = String::new();
    let verdict = if comparison.regressed() {
        "**Regression detected**"
    } else if comparison.judged() == 0 {
        "**Nothing judged**"
    } else {
        "No regression"
    };
    let _ = writeln!(
        out,
        "### vidperf compare: {verdict}\n\nBaseline `{}`{}; current `{}`{}.\n",
        escape(&baseline.source),
        notes(baseline),
        escape(&current.source),
        notes(current)
    );
    let h = header();
    let _ = writeln!(out, "| {} |", h.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(h.len()));
    for pair in &comparison.pairs {
        let mut r: Vec<String> = row(pair).iter().map(|c| escape(c)).collect();
        if pair.verdict == Verdict::Regressed
            && let Some(last) = r.last_mut()
        {
            *last = format!("**{last}**");
        }
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    out.push('\n');
    out.push_str(&footer(comparison));
    out
}

/// The JSON document.
pub fn json(
    comparison: &Comparison,
    baseline: &Side,
    other_baselines: &[Side],
    current: &Side,
) -> serde_json::Result<String> {
    let doc = Document {
        baseline,
        other_baselines,
        current,
        regressed: comparison.regressed(),
        judged: comparison.judged(),
        comparison,
    };
    serde_json::to_string_pretty(&doc)
}
