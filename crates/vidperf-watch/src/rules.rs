//! Alert rules, from TOML: parsed strictly, every mistake reported with the file, the
//! line and the field.
//!
//! ```toml
//! evaluation_interval = "5s"   # how often rules are evaluated (default 5 s)
//! resend_interval = "1m"       # how often a firing alert is re-sent to Alertmanager
//!
//! [[rule]]
//! name = "SeedVR2Slow"
//! strategy = "seedvr2"      # or operation = "enhancement"; neither: one alert per strategy
//! metric = "duration_p95"   # see Metric
//! above = 0.25              # or below = ...
//! window = "1m"
//! for = "30s"               # must hold this long before firing
//! keep_firing_for = "1m"    # keeps firing this long after recovering
//! recover_below = 0.20      # hysteresis (recover_above for `below` rules)
//! min_samples = 20          # fewer operations in the window never fire
//! severity = "warning"
//! summary = "SeedVR2 p95 {{value}} s over {{threshold}} s"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// What a rule measures, over its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Metric {
    /// Median duration, seconds.
    DurationP50,
    /// 95th-percentile duration, seconds.
    DurationP95,
    /// 99th-percentile duration, seconds.
    DurationP99,
    /// Failed operations (an error or a panic) over all operations, 0–1. Cancelled
    /// operations count in the denominator, not as failures (`cancelled_rate`).
    FailureRate,
    /// Cancelled operations (dropped before they completed: timeouts, aborts) over all
    /// operations, 0–1.
    CancelledRate,
    /// Frames per second.
    Fps,
    /// Mean quality score, 0–1.
    Quality,
    /// Highest process resident memory during an operation, bytes.
    PeakMemoryBytes,
    /// Highest GPU memory used during an operation over the device's total, 0–1.
    PeakGpuMemoryFraction,
    /// Operations running now.
    ActiveOperations,
    /// Spans dropped by the OTLP export per second.
    ExportDroppedRate,
}

impl Metric {
    /// Every metric with its name in rule files.
    pub const ALL: [(&'static str, Metric); 11] = [
        ("duration_p50", Metric::DurationP50),
        ("duration_p95", Metric::DurationP95),
        ("duration_p99", Metric::DurationP99),
        ("cancelled_rate", Metric::CancelledRate),
        ("failure_rate", Metric::FailureRate),
        ("fps", Metric::Fps),
        ("quality", Metric::Quality),
        ("peak_memory_bytes", Metric::PeakMemoryBytes),
        ("peak_gpu_memory_fraction", Metric::PeakGpuMemoryFraction),
        ("active_operations", Metric::ActiveOperations),
        ("export_dropped_rate", Metric::ExportDroppedRate),
    ];

    /// The name used in rule files.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("", |(n, _)| n)
    }

    /// Whether the metric belongs to the whole process rather than to a strategy or an
    /// operation type.
    pub fn is_global(self) -> bool {
        matches!(self, Metric::ExportDroppedRate)
    }
}

/// When a rule's condition holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Condition {
    /// The value is above the threshold.
    Above(f64),
    /// The value is below the threshold.
    Below(f64),
}

impl Condition {
    /// The threshold.
    pub fn threshold(self) -> f64 {
        match self {
            Condition::Above(t) | Condition::Below(t) => t,
        }
    }
}

/// One validated rule.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Rule {
    /// The alert's name (`alertname` in Alertmanager).
    pub name: String,
    /// Only this strategy.
    pub strategy: Option<String>,
    /// Only this operation type.
    pub operation: Option<String>,
    /// What is measured.
    pub metric: Metric,
    /// When it fires.
    pub condition: Condition,
    /// The value it must cross back over to recover (hysteresis); the threshold by
    /// default.
    pub recover: f64,
    /// The window the metric is computed over.
    pub window: Duration,
    /// How long the condition must hold before the alert fires.
    pub for_duration: Duration,
    /// How long the alert keeps firing once recovered.
    pub keep_firing_for: Duration,
    /// Operations the window must hold for the rule to fire.
    pub min_samples: u64,
    /// The `severity` label.
    pub severity: String,
    /// A summary; `{{value}}`, `{{threshold}}`, `{{strategy}}`, `{{operation}}` and
    /// `{{name}}` are replaced.
    pub summary: String,
    /// A longer description, with the same placeholders.
    pub description: Option<String>,
    /// More labels for Alertmanager.
    pub labels: BTreeMap<String, String>,
}

impl Rule {
    /// Whether `value` meets the firing condition.
    pub fn fires(&self, value: f64) -> bool {
        match self.condition {
            Condition::Above(t) => value > t,
            Condition::Below(t) => value < t,
        }
    }

    /// Whether `value` is back across the recovery threshold.
    pub fn recovers(&self, value: f64) -> bool {
        match self.condition {
            Condition::Above(_) => value < self.recover,
            Condition::Below(_) => value > self.recover,
        }
    }
}

/// A rule file: the rules and how often they run.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RuleSet {
    /// The rules, in file order.
    pub rules: Vec<Rule>,
    /// How often the rules are evaluated.
    pub evaluation_interval: Duration,
    /// How often a firing alert is sent to Alertmanager again.
    pub resend_interval: Duration,
}

impl Default for RuleSet {
    /// No rules, the default intervals.
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            evaluation_interval: DEFAULT_EVALUATION_INTERVAL,
            resend_interval: Duration::from_secs(60),
        }
    }
}

/// A mistake in a rule file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}{}: {}{message}",
    file.display(),
    if *line > 0 { format!(":{line}") } else { String::new() },
    field.as_deref().map(|f| format!("`{f}`: ")).unwrap_or_default()
)]
#[non_exhaustive]
pub struct RuleError {
    /// The file (or what was parsed, e.g. `<string>`).
    pub file: PathBuf,
    /// The line, from 1 (0 when the fault is the whole file: too large, unreadable).
    pub line: usize,
    /// The field, when one is at fault.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    evaluation_interval: Option<Spanned<String>>,
    resend_interval: Option<Spanned<String>>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<Spanned<String>>,
    strategy: Option<Spanned<String>>,
    operation: Option<Spanned<String>>,
    metric: Option<Spanned<String>>,
    above: Option<Spanned<f64>>,
    below: Option<Spanned<f64>>,
    window: Option<Spanned<String>>,
    #[serde(rename = "for")]
    for_duration: Option<Spanned<String>>,
    keep_firing_for: Option<Spanned<String>>,
    recover_below: Option<Spanned<f64>>,
    recover_above: Option<Spanned<f64>>,
    min_samples: Option<Spanned<i64>>,
    severity: Option<Spanned<String>>,
    summary: Option<Spanned<String>>,
    description: Option<Spanned<String>>,
    labels: Option<Spanned<BTreeMap<String, String>>>,
}

/// How often rules are evaluated unless the file says.
pub const DEFAULT_EVALUATION_INTERVAL: Duration = Duration::from_secs(5);

/// The longest duration a rule file may give (`window`, `for`, `keep_firing_for`,
/// `evaluation_interval`, `resend_interval`): 7 days. Anything longer is refused at
/// parse time, naming the file, line and field, so that no arithmetic on it can
/// overflow later.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);
/// The most rules a file may hold.
pub const MAX_RULES: usize = 1_000;
/// The largest rule file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// The longest `name`, `strategy`, `operation` or `severity`, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest `summary` or `description`, in characters.
pub const MAX_TEXT_CHARS: usize = 2_048;
/// The most `labels` a rule may add, and the longest label value in characters.
pub const MAX_LABELS: usize = 32;
/// See [`MAX_LABELS`].
pub const MAX_LABEL_VALUE_CHARS: usize = 1_024;

struct Source<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    fn error(&self, offset: usize, field: Option<&str>, message: impl Into<String>) -> RuleError {
        RuleError {
            file: self.file.to_owned(),
            line: self.line(offset),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    fn at<T>(&self, value: &Spanned<T>, field: &str, message: impl Into<String>) -> RuleError {
        self.error(value.span().start, Some(field), message)
    }

    fn duration(&self, value: &Spanned<String>, field: &str) -> Result<Duration, RuleError> {
        let d = humantime::parse_duration(value.get_ref().trim()).map_err(|e| {
            self.at(
                value,
                field,
                format!(
                    "{:?} is not a duration ({e}); write e.g. 30s, 5m or 1h",
                    short(value.get_ref())
                ),
            )
        })?;
        if d > MAX_DURATION {
            return Err(self.at(
                value,
                field,
                format!(
                    "{:?} is longer than 7 days, the most a rule file may give",
                    short(value.get_ref())
                ),
            ));
        }
        Ok(d)
    }

    /// `value` when at most `max` characters, else an error naming the field.
    fn text<'t>(
        &self,
        value: &'t Spanned<String>,
        field: &str,
        max: usize,
    ) -> Result<&'t str, RuleError> {
        let text = value.get_ref();
        if text.chars().count() > max {
            return Err(self.at(
                value,
                field,
                format!(
                    "is {} characters long; at most {max} are allowed",
                    text.chars().count()
                ),
            ));
        }
        Ok(text)
    }
}

/// The first 64 characters of `text`, for an error message.
fn short(text: &str) -> String {
    let mut out: String = text.chars().take(64).collect();
    if text.chars().nth(64).is_some() {
        out.push('…');
    }
    out
}

impl RuleSet {
    /// Reads and checks a rule file (at most [`MAX_FILE_BYTES`]).
    pub fn from_file(path: &Path) -> Result<Self, RuleError> {
        let error = |message: String| RuleError {
            file: path.to_owned(),
            line: 0,
            field: None,
            message,
        };
        let file = std::fs::File::open(path)
            .map_err(|e| error(format!("cannot read the rule file: {e}")))?;
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(file, MAX_FILE_BYTES + 1),
            &mut text,
        )
        .map_err(|e| error(format!("cannot read the rule file: {e}")))?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(error(format!(
                "the rule file is larger than {} MiB, the most read",
                MAX_FILE_BYTES >> 20
            )));
        }
        Self::parse(&text, path)
    }

    /// Parses and checks rules from `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, RuleError> {
        let src = Source { file: origin, text };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            src.error(offset, None, e.message().trim().to_owned())
        })?;
        let evaluation_interval = match &raw.evaluation_interval {
            Some(v) => src.duration(v, "evaluation_interval")?,
            None => DEFAULT_EVALUATION_INTERVAL,
        };
        if evaluation_interval < Duration::from_millis(100) {
            let v = raw
                .evaluation_interval
                .as_ref()
                .map_or(0, |v| v.span().start);
            return Err(src.error(v, Some("evaluation_interval"), "must be at least 100ms"));
        }
        let resend_interval = match &raw.resend_interval {
            Some(v) => src.duration(v, "resend_interval")?,
            None => Duration::from_secs(60),
        };
        if raw.rule.len() > MAX_RULES {
            let at = raw.rule.get(MAX_RULES).map_or(0, |r| r.span().start);
            return Err(src.error(
                at,
                Some("rule"),
                format!("{} rules; at most {MAX_RULES} are allowed", raw.rule.len()),
            ));
        }
        let mut rules = Vec::with_capacity(raw.rule.len());
        let mut names = std::collections::BTreeSet::new();
        for spanned in &raw.rule {
            let rule = rule(&src, spanned)?;
            if !names.insert(rule.name.clone()) {
                let name = spanned.get_ref().name.as_ref();
                let offset = name.map_or(spanned.span().start, |n| n.span().start);
                return Err(src.error(
                    offset,
                    Some("name"),
                    format!("{:?} is defined twice", rule.name),
                ));
            }
            rules.push(rule);
        }
        Ok(Self {
            rules,
            evaluation_interval,
            resend_interval,
        })
    }
}

fn rule(src: &Source<'_>, spanned: &Spanned<RawRule>) -> Result<Rule, RuleError> {
    let raw = spanned.get_ref();
    let start = spanned.span().start;
    let required = |field: &str| src.error(start, Some(field), "is required");
    let name = raw.name.as_ref().ok_or_else(|| required("name"))?;
    if name.get_ref().trim().is_empty() {
        return Err(src.at(name, "name", "must not be empty"));
    }
    src.text(name, "name", MAX_NAME_CHARS)?;
    for (value, field, max) in [
        (&raw.strategy, "strategy", MAX_NAME_CHARS),
        (&raw.operation, "operation", MAX_NAME_CHARS),
        (&raw.severity, "severity", MAX_NAME_CHARS),
        (&raw.summary, "summary", MAX_TEXT_CHARS),
        (&raw.description, "description", MAX_TEXT_CHARS),
    ] {
        if let Some(v) = value {
            src.text(v, field, max)?;
        }
    }
    let metric_field = raw.metric.as_ref().ok_or_else(|| required("metric"))?;
    let metric = Metric::ALL
        .iter()
        .find(|(n, _)| *n == metric_field.get_ref())
        .map(|(_, m)| *m)
        .ok_or_else(|| {
            let known: Vec<&str> = Metric::ALL.iter().map(|(n, _)| *n).collect();
            src.at(
                metric_field,
                "metric",
                format!(
                    "unknown metric {:?}; expected one of {}",
                    metric_field.get_ref(),
                    known.join(", ")
                ),
            )
        })?;
    let finite = |v: &Spanned<f64>, field: &str| -> Result<f64, RuleError> {
        let x = *v.get_ref();
        if x.is_finite() {
            Ok(x)
        } else {
            Err(src.at(v, field, format!("{x} is not a finite number")))
        }
    };
    let condition = match (&raw.above, &raw.below) {
        (Some(a), None) => Condition::Above(finite(a, "above")?),
        (None, Some(b)) => Condition::Below(finite(b, "below")?),
        (Some(_), Some(b)) => {
            return Err(src.at(b, "below", "set `above` or `below`, not both"));
        }
        (None, None) => {
            return Err(src.error(start, Some("above"), "set `above` or `below`"));
        }
    };
    let recover = match (condition, &raw.recover_below, &raw.recover_above) {
        (Condition::Above(t), Some(r), None) => {
            let r_value = finite(r, "recover_below")?;
            if r_value > t {
                return Err(src.at(
                    r,
                    "recover_below",
                    format!("{r_value} is above the threshold {t}: an `above` rule recovers below its threshold"),
                ));
            }
            r_value
        }
        (Condition::Below(t), None, Some(r)) => {
            let r_value = finite(r, "recover_above")?;
            if r_value < t {
                return Err(src.at(
                    r,
                    "recover_above",
                    format!("{r_value} is below the threshold {t}: a `below` rule recovers above its threshold"),
                ));
            }
            r_value
        }
        (Condition::Above(_), None, Some(r)) => {
            return Err(src.at(
                r,
                "recover_above",
                "an `above` rule recovers below: use `recover_below`",
            ));
        }
        (Condition::Below(_), Some(r), None) => {
            return Err(src.at(
                r,
                "recover_below",
                "a `below` rule recovers above: use `recover_above`",
            ));
        }
        (_, Some(_), Some(r)) => {
            return Err(src.at(r, "recover_above", "set one recovery threshold"));
        }
        (c, None, None) => c.threshold(),
    };
    let window = match &raw.window {
        Some(w) => {
            let d = src.duration(w, "window")?;
            if d.is_zero() {
                return Err(src.at(w, "window", "must be longer than zero"));
            }
            d
        }
        None => Duration::from_secs(60),
    };
    let for_duration = match &raw.for_duration {
        Some(v) => src.duration(v, "for")?,
        None => Duration::ZERO,
    };
    let keep_firing_for = match &raw.keep_firing_for {
        Some(v) => src.duration(v, "keep_firing_for")?,
        None => Duration::ZERO,
    };
    let min_samples = match &raw.min_samples {
        Some(v) => u64::try_from(*v.get_ref())
            .map_err(|_| src.at(v, "min_samples", "must be a whole number, 0 or more"))?,
        None => 1,
    };
    if metric.is_global() && (raw.strategy.is_some() || raw.operation.is_some()) {
        let field = if raw.strategy.is_some() {
            "strategy"
        } else {
            "operation"
        };
        return Err(src.error(
            start,
            Some(field),
            format!(
                "{} belongs to the whole process: no strategy or operation",
                metric.name()
            ),
        ));
    }
    let text = |v: &Option<Spanned<String>>| v.as_ref().map(|s| s.get_ref().clone());
    let severity = text(&raw.severity).unwrap_or_else(|| "warning".to_owned());
    let summary = text(&raw.summary).unwrap_or_else(|| {
        format!(
            "{} {{{{value}}}} {} {{{{threshold}}}}",
            metric.name(),
            match condition {
                Condition::Above(_) => "over",
                Condition::Below(_) => "under",
            }
        )
    });
    let labels = raw
        .labels
        .as_ref()
        .map(|l| l.get_ref().clone())
        .unwrap_or_default();
    if labels.len() > MAX_LABELS {
        let at = raw.labels.as_ref().map_or(start, |l| l.span().start);
        return Err(src.error(
            at,
            Some("labels"),
            format!("{} labels; at most {MAX_LABELS} are allowed", labels.len()),
        ));
    }
    for (key, value) in &labels {
        if key.chars().count() > MAX_NAME_CHARS || value.chars().count() > MAX_LABEL_VALUE_CHARS {
            let at = raw.labels.as_ref().map_or(start, |l| l.span().start);
            return Err(src.error(
                at,
                Some("labels"),
                format!(
                    "label {:?} is too long: names up to {MAX_NAME_CHARS} characters, values up to {MAX_LABEL_VALUE_CHARS}",
                    short(key)
                ),
            ));
        }
    }
    for key in labels.keys() {
        let valid = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            let at = raw.labels.as_ref().map_or(start, |l| l.span().start);
            return Err(src.error(
                at,
                Some("labels"),
                format!("{key:?} is not a valid label name"),
            ));
        }
    }
    Ok(Rule {
        name: name.get_ref().clone(),
        strategy: text(&raw.strategy),
        operation: text(&raw.operation),
        metric,
        condition,
        recover,
        window,
        for_duration,
        keep_firing_for,
        min_samples,
        severity,
        summary,
        description: text(&raw.description),
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RuleSet, RuleError> {
        RuleSet::parse(text, Path::new("rules.toml"))
    }

    /// The rule files the README and this module's docs show are valid.
    #[test]
    fn the_documented_examples_load() {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme.find("## Alerts").expect("an Alerts section")..];
        let block = section
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("a TOML block");
        let set = parse(block).unwrap_or_else(|e| panic!("README: {e}"));
        assert_eq!(set.rules.len(), 1);
        assert_eq!(set.rules[0].min_samples, 20);
        let module_docs: String = include_str!("rules.rs")
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n");
        let block = module_docs
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("a TOML block in the module docs");
        parse(block).unwrap_or_else(|e| panic!("module docs: {e}"));
    }

    const GOOD: &str = r#"
evaluation_interval = "1s"

[[rule]]
name = "SeedVR2Slow"
strategy = "seedvr2"
metric = "duration_p95"
above = 0.25
window = "1m"
for = "30s"
keep_firing_for = "1m"
recover_below = 0.20
min_samples = 20
severity = "critical"
summary = "SeedVR2 p95 {{value}} s over {{threshold}} s"

[[rule]]
name = "LowQuality"
metric = "quality"
below = 0.5
"#;

    #[test]
    fn a_good_file_reads_with_its_defaults() {
        let set = parse(GOOD).expect("valid");
        assert_eq!(set.evaluation_interval, Duration::from_secs(1));
        assert_eq!(set.rules.len(), 2);
        let r = &set.rules[0];
        assert_eq!(r.condition, Condition::Above(0.25));
        assert_eq!((r.recover, r.min_samples), (0.20, 20));
        assert_eq!(r.for_duration, Duration::from_secs(30));
        let low = &set.rules[1];
        assert_eq!((low.recover, low.min_samples), (0.5, 1));
        assert_eq!(low.window, Duration::from_secs(60));
        assert!(low.fires(0.4) && !low.fires(0.5) && low.recovers(0.6));
    }

    fn error(text: &str) -> RuleError {
        parse(text).expect_err("rejected")
    }

    #[test]
    fn every_mistake_names_the_file_line_and_field() {
        let base = "[[rule]]\nname = \"A\"\nmetric = \"fps\"\n";
        let cases = [
            (
                "[[rule]]\nname = \"A\"\nmetric = \"latency\"\nabove = 1\n",
                3,
                Some("metric"),
                "unknown metric",
            ),
            (
                &format!("{base}above = 1\nbelow = 2\n"),
                5,
                Some("below"),
                "not both",
            ),
            (
                &format!("{base}above = nan\n"),
                4,
                Some("above"),
                "not a finite number",
            ),
            (
                &format!("{base}above = 1\nrecover_below = 2\n"),
                5,
                Some("recover_below"),
                "above the threshold",
            ),
            (
                &format!("{base}below = 1\nrecover_above = 0.5\n"),
                5,
                Some("recover_above"),
                "below the threshold",
            ),
            (
                &format!("{base}above = 1\nrecover_above = 0.5\n"),
                5,
                Some("recover_above"),
                "use `recover_below`",
            ),
            (
                &format!("{base}above = 1\nwindow = \"5 parsecs\"\n"),
                5,
                Some("window"),
                "not a duration",
            ),
            (
                &format!("{base}above = 1\nfor = \"soon\"\n"),
                5,
                Some("for"),
                "not a duration",
            ),
            (
                &format!("{base}above = 1\nmin_samples = -3\n"),
                5,
                Some("min_samples"),
                "whole number",
            ),
            (
                &format!("{base}above = 1\ncolour = \"red\"\n"),
                5,
                None,
                "unknown field",
            ),
            (
                &format!("{base}\n"),
                1,
                Some("above"),
                "set `above` or `below`",
            ),
            (
                "[[rule]]\nmetric = \"fps\"\nabove = 1\n",
                1,
                Some("name"),
                "required",
            ),
            ("[[rule]\n", 1, None, ""),
            (
                &format!("{base}above = 1\n{base}above = 1\n"),
                6,
                Some("name"),
                "defined twice",
            ),
            (
                "[[rule]]\nname = \"A\"\nmetric = \"export_dropped_rate\"\nstrategy = \"x\"\nabove = 1\n",
                1,
                Some("strategy"),
                "whole process",
            ),
        ];
        for (text, line, field, message) in cases {
            let e = error(text);
            assert_eq!(e.line, line, "{text}: {e}");
            assert_eq!(e.field.as_deref(), field, "{text}: {e}");
            assert!(e.message.contains(message), "{text}: {e}");
            assert!(
                e.to_string().starts_with(&format!("rules.toml:{line}:")),
                "{e}"
            );
        }
    }
}
