//! Evaluating alert rules: per rule and target (a strategy, an operation type, both, or
//! each strategy seen), the states inactive → pending → firing → resolved, with `for`,
//! `keep_firing_for`, a recovery threshold (hysteresis) and a minimum sample count.
//! Pure: it reads snapshots through [`Figures`] at the time it is given, so tests drive
//! it with a test clock.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use vidperf_core::stats::{AggregateStats, StatsSnapshot};
use vidperf_core::{Figure, SnapshotOptions, Stats};

use crate::rules::{Metric, Rule, RuleSet};

/// Where the engine reads its figures: a snapshot over `window` ending at `now`,
/// restricted to a strategy and/or an operation type.
pub trait Figures {
    /// The snapshot.
    fn window(
        &self,
        window: Duration,
        now: SystemTime,
        strategy: Option<&str>,
        operation: Option<&str>,
    ) -> StatsSnapshot;

    /// Spans the OTLP export dropped so far, when it runs (`export_dropped_rate`).
    fn dropped_spans(&self) -> Option<u64> {
        None
    }

    /// The largest GPU's total memory, bytes, when GPUs are sampled
    /// (`peak_gpu_memory_fraction`).
    fn gpu_memory_limit(&self) -> Option<u64> {
        None
    }
}

impl Figures for Stats {
    fn window(
        &self,
        window: Duration,
        now: SystemTime,
        strategy: Option<&str>,
        operation: Option<&str>,
    ) -> StatsSnapshot {
        let options = SnapshotOptions::default()
            .with_window(window)
            .with_recent(0)
            .with_active(usize::MAX)
            .at(now);
        self.filtered_snapshot(options, strategy, operation)
    }
}

/// An alert's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum State {
    /// The condition does not hold.
    Inactive,
    /// The condition holds, for less than the rule's `for`.
    Pending,
    /// Firing.
    Firing,
}

impl State {
    /// 0, 1 or 2, as `vidperf_alert_state` reports it.
    pub fn gauge(self) -> u8 {
        match self {
            State::Inactive => 0,
            State::Pending => 1,
            State::Firing => 2,
        }
    }
}

#[derive(Clone, Debug)]
struct Tracked {
    state: State,
    /// When the condition started holding (pending or firing).
    active_since: Option<SystemTime>,
    /// When it started firing.
    firing_since: Option<SystemTime>,
    /// When the condition (or the hysteresis band) last held while firing.
    last_held: Option<SystemTime>,
    value: Option<f64>,
    samples: u64,
    /// The evaluation that last reached this alert.
    cycle: u64,
}

impl Default for Tracked {
    fn default() -> Self {
        Self {
            state: State::Inactive,
            active_since: None,
            firing_since: None,
            last_held: None,
            value: None,
            samples: 0,
            cycle: 0,
        }
    }
}

/// One alert as reported (`GET /performance/alerts`, the live stream, Alertmanager).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AlertStatus {
    /// The rule's name.
    pub name: String,
    /// The strategy it concerns, if any.
    pub strategy: Option<String>,
    /// The operation type it concerns, if any.
    pub operation: Option<String>,
    /// The rule's severity.
    pub severity: String,
    /// Its state.
    pub state: State,
    /// The metric's value at the last evaluation (absent without data).
    pub value: Option<f64>,
    /// The rule's threshold.
    pub threshold: f64,
    /// Operations in the window at the last evaluation.
    pub samples: u64,
    /// When the condition started holding.
    #[serde(with = "optional_time")]
    pub active_since: Option<SystemTime>,
    /// When the alert started firing.
    #[serde(with = "optional_time")]
    pub firing_since: Option<SystemTime>,
    /// The rule's summary, filled in.
    pub summary: String,
    /// The rule's description, filled in.
    pub description: Option<String>,
    /// The rule's extra labels.
    pub labels: BTreeMap<String, String>,
}

mod optional_time {
    use std::time::SystemTime;

    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(
        time: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(t) => s.collect_str(&humantime::format_rfc3339_micros(*t)),
            None => s.serialize_none(),
        }
    }
}

/// One alert's labels and state, as `vidperf_alert_state` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AlertGauge {
    /// The rule's name.
    pub name: String,
    /// The strategy it concerns, if any.
    pub strategy: Option<String>,
    /// The operation type it concerns, if any.
    pub operation: Option<String>,
    /// The rule's severity.
    pub severity: String,
    /// Its state.
    pub state: State,
}

/// What changed at one evaluation.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Transition {
    /// The alert started firing.
    Fired(AlertStatus),
    /// The alert stopped firing (after `keep_firing_for`).
    Resolved(AlertStatus),
}

/// The alert rules and the state of every alert.
#[derive(Debug)]
pub struct Alerts {
    set: RuleSet,
    /// Per rule, its alerts by strategy (the empty name for a rule with a fixed target
    /// or none).
    tracked: Vec<BTreeMap<String, Tracked>>,
    /// Evaluations so far (marks the alerts an evaluation reached).
    cycle: u64,
    /// The export's dropped count at the previous evaluation.
    last_dropped: Option<(SystemTime, u64)>,
}

/// A snapshot cache for one evaluation: rules that share a window and filter share a
/// snapshot.
type Cache = HashMap<(Duration, Option<String>, Option<String>), StatsSnapshot>;

impl Alerts {
    /// An engine over `set`, every alert inactive.
    pub fn new(set: RuleSet) -> Self {
        Self {
            tracked: vec![BTreeMap::new(); set.rules.len()],
            set,
            cycle: 0,
            last_dropped: None,
        }
    }

    /// The rules.
    pub fn rules(&self) -> &RuleSet {
        &self.set
    }

    /// Evaluates every rule at `now`; returns the alerts that fired or resolved.
    ///
    /// Each distinct (window, strategy, operation) the rules read is snapshotted once.
    pub fn evaluate(&mut self, figures: &dyn Figures, now: SystemTime) -> Vec<Transition> {
        let key = |rule: &Rule| (rule.window, rule.strategy.clone(), rule.operation.clone());
        let mut snapshots = Cache::new();
        let mut wants_dropped = false;
        for rule in &self.set.rules {
            if rule.metric == Metric::ExportDroppedRate {
                wants_dropped = true;
                continue;
            }
            snapshots.entry(key(rule)).or_insert_with(|| {
                figures.window(
                    rule.window,
                    now,
                    rule.strategy.as_deref(),
                    rule.operation.as_deref(),
                )
            });
        }
        let dropped_rate = if wants_dropped {
            let dropped = figures.dropped_spans();
            let rate = match (self.last_dropped, dropped) {
                (Some((then, before)), Some(now_dropped)) => now
                    .duration_since(then)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .map(|d| now_dropped.saturating_sub(before) as f64 / d.as_secs_f64()),
                _ => None,
            };
            self.last_dropped = dropped.map(|d| (now, d));
            rate
        } else {
            None
        };
        let gpu_limit = figures.gpu_memory_limit();
        self.cycle += 1;
        let cycle = self.cycle;
        let mut transitions = Vec::new();
        for (rule, alerts) in self.set.rules.iter().zip(&mut self.tracked) {
            let mut advance = |name: &str, value: Option<f64>, samples: u64| {
                let tracked = match alerts.get_mut(name) {
                    Some(t) => t,
                    None => alerts.entry(name.to_owned()).or_default(),
                };
                tracked.cycle = cycle;
                if let Some(t) = step(rule, tracked, value, samples, now) {
                    let status = status(rule, name, tracked);
                    transitions.push(match t {
                        Step::Fired => Transition::Fired(status),
                        Step::Resolved => Transition::Resolved(status),
                    });
                }
            };
            if rule.metric == Metric::ExportDroppedRate {
                advance("", dropped_rate, u64::MAX);
            } else if let Some(snap) = snapshots.get(&key(rule)) {
                if rule.strategy.is_some() || rule.operation.is_some() {
                    let stats = match (&rule.strategy, &rule.operation) {
                        (Some(s), _) => snap.by_strategy.get(s),
                        (None, Some(o)) => snap.by_operation.get(o),
                        (None, None) => None,
                    };
                    let (strategy, operation) =
                        (rule.strategy.as_deref(), rule.operation.as_deref());
                    let (value, samples) =
                        reading(rule.metric, stats, snap, strategy, operation, gpu_limit);
                    advance("", value, samples);
                } else {
                    // One alert per strategy seen in the window or running now.
                    for (name, stats) in &snap.by_strategy {
                        let (value, samples) =
                            reading(rule.metric, Some(stats), snap, Some(name), None, gpu_limit);
                        advance(name, value, samples);
                    }
                    for running in &snap.active {
                        let name = running.strategy.as_str();
                        if !snap.by_strategy.contains_key(name) {
                            let (value, samples) =
                                reading(rule.metric, None, snap, Some(name), None, gpu_limit);
                            advance(name, value, samples);
                        }
                    }
                }
            }
            // The alerts this evaluation did not reach have no data now.
            for (name, tracked) in alerts.iter_mut().filter(|(_, t)| t.cycle != cycle) {
                tracked.cycle = cycle;
                if let Some(t) = step(rule, tracked, None, 0, now) {
                    let status = status(rule, name, tracked);
                    transitions.push(match t {
                        Step::Fired => Transition::Fired(status),
                        Step::Resolved => Transition::Resolved(status),
                    });
                }
            }
            // Forget inactive alerts of targets that no longer have data.
            alerts.retain(|_, t| t.state != State::Inactive || t.value.is_some());
        }
        transitions
    }

    /// Every alert that is pending or firing, by rule then target.
    pub fn active(&self) -> Vec<AlertStatus> {
        self.statuses(|t| t.state != State::Inactive)
    }

    /// Every alert tracked, whatever its state, without its texts (for
    /// `vidperf_alert_state`).
    pub fn gauges(&self) -> Vec<AlertGauge> {
        self.set
            .rules
            .iter()
            .zip(&self.tracked)
            .flat_map(|(rule, alerts)| {
                alerts.iter().map(move |(name, t)| AlertGauge {
                    name: rule.name.clone(),
                    strategy: if name.is_empty() {
                        rule.strategy.clone()
                    } else {
                        Some(name.clone())
                    },
                    operation: rule.operation.clone(),
                    severity: rule.severity.clone(),
                    state: t.state,
                })
            })
            .collect()
    }

    fn statuses(&self, keep: impl Fn(&Tracked) -> bool) -> Vec<AlertStatus> {
        self.set
            .rules
            .iter()
            .zip(&self.tracked)
            .flat_map(|(rule, alerts)| {
                alerts
                    .iter()
                    .filter(|(_, t)| keep(t))
                    .map(move |(name, t)| status(rule, name, t))
            })
            .collect()
    }
}

enum Step {
    Fired,
    Resolved,
}

/// Advances one alert; `Some` when it fired or resolved.
fn step(
    rule: &Rule,
    t: &mut Tracked,
    value: Option<f64>,
    samples: u64,
    now: SystemTime,
) -> Option<Step> {
    t.value = value;
    t.samples = samples;
    let enough = samples >= rule.min_samples;
    let fires = enough && value.is_some_and(|v| rule.fires(v));
    // Without enough data the alert is treated as recovered.
    let recovered = !enough || value.is_none_or(|v| rule.recovers(v));
    let elapsed = |since: Option<SystemTime>| {
        since
            .and_then(|s| now.duration_since(s).ok())
            .unwrap_or_default()
    };
    match t.state {
        State::Inactive if fires => {
            t.active_since = Some(now);
            if rule.for_duration.is_zero() {
                fire(t, now);
                return Some(Step::Fired);
            }
            t.state = State::Pending;
        }
        State::Inactive => {}
        State::Pending if fires => {
            if elapsed(t.active_since) >= rule.for_duration {
                fire(t, now);
                return Some(Step::Fired);
            }
        }
        State::Pending => {
            t.state = State::Inactive;
            t.active_since = None;
        }
        State::Firing if !recovered => t.last_held = Some(now),
        State::Firing => {
            if elapsed(t.last_held) >= rule.keep_firing_for {
                t.state = State::Inactive;
                t.active_since = None;
                t.firing_since = None;
                t.last_held = None;
                return Some(Step::Resolved);
            }
        }
    }
    None
}

fn fire(t: &mut Tracked, now: SystemTime) {
    t.state = State::Firing;
    t.firing_since = Some(now);
    t.last_held = Some(now);
}

/// The metric's value for `target`, and the samples behind it.
fn reading(
    metric: Metric,
    stats: Option<&AggregateStats>,
    snap: &StatsSnapshot,
    strategy: Option<&str>,
    operation: Option<&str>,
    gpu_limit: Option<u64>,
) -> (Option<f64>, u64) {
    if metric == Metric::ActiveOperations {
        let running = snap
            .active
            .iter()
            .filter(|a| strategy.is_none_or(|s| s == a.strategy))
            .filter(|a| operation.is_none_or(|o| o == a.operation_type))
            .count();
        return (Some(running as f64), u64::MAX);
    }
    let Some(s) = stats else {
        return (None, 0);
    };
    let d = s.duration.as_ref();
    let r = &s.resources;
    match metric {
        Metric::DurationP50 => (d.map(|d| d.p50_seconds), s.count),
        Metric::DurationP95 => (d.map(|d| d.p95_seconds), s.count),
        Metric::DurationP99 => (d.map(|d| d.p99_seconds), s.count),
        Metric::FailureRate => (
            (s.count > 0).then(|| s.failures as f64 / s.count as f64),
            s.count,
        ),
        Metric::CancelledRate => (
            (s.count > 0).then(|| s.cancelled as f64 / s.count as f64),
            s.count,
        ),
        Metric::Fps => (s.frames_per_second, s.count),
        Metric::Quality => (s.mean_quality_score, s.quality_samples),
        Metric::PeakMemoryBytes => (
            r.get(Figure::ProcessMemory).map(|p| p.max),
            r.get(Figure::ProcessMemory).map_or(0, |p| p.operations),
        ),
        Metric::PeakGpuMemoryFraction => {
            let total = gpu_limit;
            let peak = r.get(Figure::GpuMemory);
            (
                peak.zip(total.filter(|t| *t > 0))
                    .map(|(p, t)| p.max / t as f64),
                peak.map_or(0, |p| p.operations),
            )
        }
        Metric::ActiveOperations | Metric::ExportDroppedRate => (None, 0),
    }
}

/// The alert of `rule` for the strategy `name` (empty: the rule's own target).
fn status(rule: &Rule, name: &str, t: &Tracked) -> AlertStatus {
    let strategy = if name.is_empty() {
        rule.strategy.clone()
    } else {
        Some(name.to_owned())
    };
    let threshold = rule.condition.threshold();
    let fill = |template: &str| {
        fill_template(
            template,
            &[
                ("name", &rule.name),
                (
                    "value",
                    &t.value.map_or_else(|| "none".to_owned(), format_number),
                ),
                ("threshold", &format_number(threshold)),
                ("strategy", strategy.as_deref().unwrap_or("all")),
                ("operation", rule.operation.as_deref().unwrap_or("all")),
            ],
        )
    };
    let summary = fill(&rule.summary);
    let description = rule.description.as_deref().map(fill);
    AlertStatus {
        name: rule.name.clone(),
        strategy,
        operation: rule.operation.clone(),
        severity: rule.severity.clone(),
        state: t.state,
        value: t.value,
        threshold,
        samples: t.samples,
        active_since: t.active_since,
        firing_since: t.firing_since,
        summary,
        description,
        labels: rule.labels.clone(),
    }
}

/// `template` with each `{{name}}` of `values` replaced, in one pass; anything else
/// between braces is kept as written.
fn fill_template(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let value = after.find("}}").and_then(|close| {
            let name = after[..close].trim();
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v, close))
        });
        match value {
            Some((v, close)) => {
                out.push_str(v);
                rest = &after[close + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A number as people read it: four significant digits at most.
fn format_number(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (4 - 1 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let text = format!("{v:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn templates_fill_known_names_and_keep_the_rest() {
        let values = [("value", "0.31"), ("threshold", "0.25")];
        assert_eq!(
            fill_template(
                "p95 {{value}} s over {{ threshold }} s {{other}} {{",
                &values
            ),
            "p95 0.31 s over 0.25 s {{other}} {{"
        );
        assert_eq!(fill_template("", &values), "");
        assert_eq!(fill_template("{{value}}{{value}}", &values), "0.310.31");
    }

    /// Figures from a script: per strategy, (count, p95 seconds).
    struct Scripted(std::cell::RefCell<BTreeMap<String, (u64, f64)>>);

    impl Figures for Scripted {
        fn window(
            &self,
            _: Duration,
            _: SystemTime,
            strategy: Option<&str>,
            _: Option<&str>,
        ) -> StatsSnapshot {
            let stats = vidperf_core::Stats::default();
            let mut snap = stats.snapshot();
            for (name, (count, p95)) in self.0.borrow().iter() {
                if strategy.is_some_and(|s| s != name) {
                    continue;
                }
                snap.by_strategy
                    .insert(name.clone(), synthetic(*count, *p95));
            }
            snap
        }
    }

    /// An aggregate with `count` operations whose quantiles are all `p95`.
    fn synthetic(count: u64, p95: f64) -> AggregateStats {
        let text = format!(
            r#"{{"count":{count},"successes":{count},"failures":0,"success_rate":1.0,
            "duration":{{"min_seconds":{p95},"mean_seconds":{p95},"max_seconds":{p95},
            "p50_seconds":{p95},"p95_seconds":{p95},"p99_seconds":{p95},"total_seconds":{p95},"buckets":[]}},
            "frames_processed_total":0,"segments_total":0,"frames_per_second":null,
            "mean_quality_score":null,"quality_samples":0,
            "resources":{{"peak_memory_mb":null,"peak_gpu_memory_mb":null,
            "cpu_utilization_percent":null,"gpu_utilization_percent":null}}}}"#
        );
        serde_json::from_str(&text).expect("aggregate")
    }

    fn engine(rule: &str) -> Alerts {
        Alerts::new(RuleSet::parse(rule, Path::new("test.toml")).expect("rules"))
    }

    const SLOW: &str = r#"
[[rule]]
name = "SeedVR2Slow"
strategy = "seedvr2"
metric = "duration_p95"
above = 0.25
recover_below = 0.20
for = "30s"
keep_firing_for = "1m"
min_samples = 20
summary = "SeedVR2 p95 {{value}} s over {{threshold}} s"
"#;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_790_000_000 + s)
    }

    fn set(f: &Scripted, count: u64, p95: f64) {
        f.0.borrow_mut().insert("seedvr2".into(), (count, p95));
    }

    #[test]
    fn fires_after_for_and_resolves_after_keep_firing_for() {
        let mut alerts = engine(SLOW);
        let f = Scripted(Default::default());
        set(&f, 50, 0.30);
        assert!(alerts.evaluate(&f, at(0)).is_empty(), "pending first");
        assert_eq!(alerts.active()[0].state, State::Pending);
        assert!(alerts.evaluate(&f, at(20)).is_empty());
        let fired = alerts.evaluate(&f, at(30));
        assert!(
            matches!(&fired[..], [Transition::Fired(s)] if s.summary == "SeedVR2 p95 0.3 s over 0.25 s")
        );
        set(&f, 50, 0.10);
        assert!(alerts.evaluate(&f, at(40)).is_empty(), "keeps firing");
        // keep_firing_for counts from the last evaluation the condition held (30 s).
        assert!(alerts.evaluate(&f, at(80)).is_empty());
        assert!(matches!(
            &alerts.evaluate(&f, at(90))[..],
            [Transition::Resolved(_)]
        ));
        assert!(alerts.active().is_empty());
    }

    #[test]
    fn a_signal_oscillating_around_the_threshold_does_not_flap() {
        let mut alerts = engine(SLOW);
        let f = Scripted(Default::default());
        let mut fired = 0;
        let mut resolved = 0;
        for step in 0..200u64 {
            // 0.24, 0.26, 0.24, ...: between the recovery threshold and beyond the threshold.
            set(&f, 50, if step % 2 == 0 { 0.26 } else { 0.24 });
            for t in alerts.evaluate(&f, at(step * 5)) {
                match t {
                    Transition::Fired(_) => fired += 1,
                    Transition::Resolved(_) => resolved += 1,
                }
            }
        }
        // Pending resets on every dip, so it never fires; nothing flaps.
        assert_eq!((fired, resolved), (0, 0));
        // Once firing, dips inside the band do not resolve it.
        set(&f, 50, 0.30);
        for s in 0..10 {
            alerts.evaluate(&f, at(2000 + s * 5));
        }
        assert_eq!(alerts.active()[0].state, State::Firing);
        for step in 0..100u64 {
            set(&f, 50, if step % 2 == 0 { 0.26 } else { 0.21 });
            let t = alerts.evaluate(&f, at(3000 + step * 5));
            assert!(t.is_empty(), "step {step}: {t:?}");
        }
    }

    #[test]
    fn fewer_than_min_samples_never_fires() {
        let mut alerts = engine(SLOW);
        let f = Scripted(Default::default());
        set(&f, 19, 5.0);
        for s in 0..100 {
            assert!(alerts.evaluate(&f, at(s * 10)).is_empty());
        }
        assert!(alerts.active().is_empty());
    }

    #[test]
    fn a_rule_without_a_target_alerts_per_strategy() {
        let mut alerts = engine(
            "[[rule]]\nname = \"Slow\"\nmetric = \"duration_p95\"\nabove = 1\nmin_samples = 1\n",
        );
        let f = Scripted(Default::default());
        f.0.borrow_mut().insert("vsrm".into(), (5, 2.0));
        f.0.borrow_mut().insert("ditvr".into(), (5, 0.5));
        let fired = alerts.evaluate(&f, at(0));
        assert_eq!(fired.len(), 1);
        assert!(matches!(&fired[0], Transition::Fired(s) if s.strategy.as_deref() == Some("vsrm")));
        // vsrm disappears from the window: no data resolves it.
        f.0.borrow_mut().remove("vsrm");
        assert!(matches!(
            &alerts.evaluate(&f, at(10))[..],
            [Transition::Resolved(_)]
        ));
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(format_number(0.30000000000000004), "0.3");
        assert_eq!(format_number(123456.0), "123456");
        assert_eq!(format_number(0.0012346), "0.001235");
    }
}
