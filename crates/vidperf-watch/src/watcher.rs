//! The service side: a thread named `vidperf-watch` that evaluates the alert rules on a
//! timer (never on the span path), emits a `tracing` event for every alert that fires
//! (WARN) or resolves (INFO) on the target `vidperf::alert`, hands notifications to
//! Alertmanager (re-sent while firing, as Alertmanager expects), and keeps the current
//! alerts for the HTTP API, the live stream and `/metrics`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use vidperf_core::Stats;
use vidperf_core::metrics::Family;
use vidperf_core::stats::{Health, HealthSource, StatsSnapshot};
use vidperf_core::worker::{StopTimeout, Worker as Thread};

use crate::health::{DeliveryHealth, Signals, WatchHealth};

use crate::alerts::{AlertGauge, AlertStatus, Alerts, State, Transition};
use crate::baseline::{Baseline, RegressionGauge, RegressionsDocument, gauges, regressed_set};
use crate::compare::Figure;
use crate::rules::RuleSet;
use crate::sequential::Sequential;
use vidperf_core::SnapshotOptions;

/// Where the watcher delivers notifications (an Alertmanager, or a test double).
pub trait Deliver: Send + Sync + 'static {
    /// Hands notifications over; must not block.
    fn send(&self, notifications: Vec<crate::Notification>);

    /// Why the delivery's thread ended in a panic, if it did.
    fn panicked(&self) -> Option<String> {
        None
    }

    /// How delivery is going, for the health figures.
    fn health(&self) -> Option<DeliveryHealth> {
        None
    }

    /// Stops, waiting at most `timeout`.
    fn shutdown(&self, timeout: Duration) -> Result<(), StopTimeout> {
        let _ = timeout;
        Ok(())
    }
}

#[cfg(feature = "alertmanager")]
impl Deliver for crate::alertmanager::Alertmanager {
    fn send(&self, notifications: Vec<crate::Notification>) {
        crate::alertmanager::Alertmanager::send(self, notifications);
    }

    fn health(&self) -> Option<DeliveryHealth> {
        Some(crate::alertmanager::Alertmanager::health(self))
    }

    fn panicked(&self) -> Option<String> {
        crate::alertmanager::Alertmanager::panicked(self)
    }

    fn shutdown(&self, timeout: Duration) -> Result<(), StopTimeout> {
        crate::alertmanager::Alertmanager::shutdown(self, timeout)
    }
}

/// The alerts as served: `GET /performance/alerts` and the live stream's `alerts`.
#[derive(Clone, Debug, Default, Serialize)]
#[non_exhaustive]
pub struct AlertsDocument {
    /// When the rules were last evaluated.
    #[serde(serialize_with = "optional_time")]
    pub evaluated_at: Option<SystemTime>,
    /// Rules loaded.
    pub rules: usize,
    /// Alerts pending or firing, firing first; at most [`MAX_LISTED_ALERTS`].
    pub alerts: Vec<AlertStatus>,
    /// Alerts pending or firing beyond those listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: usize,
}

/// Alerts listed at most in the alerts document (`/performance/alerts`, the stream):
/// with rule text capped ([`MAX_TEXT_CHARS`](crate::rules::MAX_TEXT_CHARS)), the
/// document stays under about 5 MB; the rest are counted in `omitted`, and every one is
/// still delivered to Alertmanager and on `/metrics`.
pub const MAX_LISTED_ALERTS: usize = 1_000;

// reason: serde's `skip_serializing_if` passes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &usize) -> bool {
    *n == 0
}

pub(crate) fn optional_time<S: serde::Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.collect_str(&humantime::format_rfc3339_micros(*t)),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Default)]
struct View {
    document: AlertsDocument,
    /// Every tracked alert with its state, for `vidperf_alert_state`.
    gauges: Vec<AlertGauge>,
    /// The last comparison with the baseline, when one is loaded.
    regressions: Option<RegressionsDocument>,
    /// Its judged figures, for `vidperf_regression`.
    regression_gauges: Vec<RegressionGauge>,
    health: WatchHealth,
}

/// The running watcher.
pub struct Watcher {
    view: Arc<RwLock<View>>,
    delivery: Option<Arc<dyn Deliver>>,
    stop: SyncSender<()>,
    worker: Thread,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// A rule's window is longer than the statistics keep.
    #[error(
        "alert rule {rule:?}: its window of {window:?} is longer than the statistics keep ({max:?}; StatsConfig::window_slots)"
    )]
    WindowTooLong {
        /// The rule.
        rule: String,
        /// Its window.
        window: Duration,
        /// The longest window.
        max: Duration,
    },
    /// The thread could not start.
    #[error("cannot start the watcher thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl Watcher {
    /// Starts evaluating `rules` against `stats` (and the other parts' `signals`),
    /// delivering to `delivery` if given, and comparing the live window with `baseline`
    /// if given.
    pub fn start(
        stats: Arc<Stats>,
        signals: Signals,
        rules: RuleSet,
        delivery: Option<Arc<dyn Deliver>>,
        baseline: Option<Baseline>,
    ) -> Result<Self, WatchError> {
        for rule in &rules.rules {
            if rule.window > stats.max_window() {
                return Err(WatchError::WindowTooLong {
                    rule: rule.name.clone(),
                    window: rule.window,
                    max: stats.max_window(),
                });
            }
        }
        let view = Arc::new(RwLock::new(View {
            document: AlertsDocument {
                rules: rules.rules.len(),
                ..AlertsDocument::default()
            },
            regressions: baseline.as_ref().map(RegressionsDocument::new),
            ..View::default()
        }));
        let (stop, stopped) = sync_channel(1);
        let mut worker = Evaluator {
            live: Live { stats, signals },
            alerts: Alerts::new(rules),
            view: view.clone(),
            delivery: delivery.clone(),
            last_sent: HashMap::new(),
            evaluations: 0,
            sequential: baseline.as_ref().map(|b| {
                (
                    Sequential::new(&b.summary.pairs, b.sequential.clone()),
                    Instant::now(),
                )
            }),
            sequential_regressed: BTreeSet::new(),
            baseline,
            baseline_due: Instant::now(),
            regressed: BTreeSet::new(),
        };
        let worker = Thread::spawn_reporting("vidperf-watch", move || worker.run(&stopped))
            .map_err(WatchError::Thread)?;
        Ok(Self {
            view,
            delivery,
            stop,
            worker,
        })
    }

    /// The alerts now.
    pub fn alerts(&self) -> AlertsDocument {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .document
            .clone()
    }

    /// The last comparison with the baseline; `None` when no baseline is loaded.
    pub fn regressions(&self) -> Option<RegressionsDocument> {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .regressions
            .clone()
    }

    /// The baseline comparison's judged figures (`vidperf_regression`).
    pub fn regression_gauges(&self) -> Vec<RegressionGauge> {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .regression_gauges
            .clone()
    }

    /// Every tracked alert with its state (`vidperf_alert_state`).
    pub fn alert_states(&self) -> Vec<AlertGauge> {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .gauges
            .clone()
    }

    /// Stops the thread (and the delivery, after one last attempt), waiting at most
    /// `timeout` for each; [`StopTimeout`] names the thread that did not stop in time.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), StopTimeout> {
        let _ = self.stop.try_send(());
        let evaluator = self.worker.join(timeout);
        let delivery = match &self.delivery {
            Some(delivery) => delivery.shutdown(timeout),
            None => Ok(()),
        };
        evaluator.and(delivery)
    }

    /// Why the evaluation thread ended in a panic, if it did (no rule is evaluated after
    /// that; `health.watch.panicked` says so).
    pub fn panicked(&self) -> Option<String> {
        self.worker.panicked()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.shutdown(Duration::from_secs(2));
    }
}

/// The watcher's figures, in the statistics' health (`health.watch`).
impl HealthSource for Watcher {
    fn report(&self, health: &mut Health) {
        let mut watch = self
            .view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .health
            .clone();
        watch.alertmanager = self.delivery.as_ref().and_then(|d| d.health());
        watch.panicked = self
            .worker
            .panicked()
            .or_else(|| self.delivery.as_ref().and_then(|d| d.panicked()));
        health.set_part("watch", &watch);
    }

    fn metrics(&self, families: &mut Vec<Family>) {
        let view = self.view.read().unwrap_or_else(PoisonError::into_inner);
        crate::health::families(&view.gauges, &view.regression_gauges, families);
    }
}

/// The statistics and the other parts' figures, as the rules read them.
struct Live {
    stats: Arc<Stats>,
    signals: Signals,
}

impl crate::alerts::Figures for Live {
    fn window(
        &self,
        window: Duration,
        now: SystemTime,
        strategy: Option<&str>,
        operation: Option<&str>,
    ) -> StatsSnapshot {
        self.stats.window(window, now, strategy, operation)
    }

    fn dropped_spans(&self) -> Option<u64> {
        self.signals.dropped_spans.as_ref().map(|f| f())
    }

    fn gpu_memory_limit(&self) -> Option<u64> {
        self.signals.gpu_memory_limit.as_ref().and_then(|f| f())
    }
}

struct Evaluator {
    live: Live,
    alerts: Alerts,
    view: Arc<RwLock<View>>,
    delivery: Option<Arc<dyn Deliver>>,
    /// When each firing alert was last sent, by its labels.
    last_sent: HashMap<BTreeMap<String, String>, SystemTime>,
    evaluations: u64,
    baseline: Option<Baseline>,
    /// When the baseline is next compared.
    baseline_due: Instant,
    /// The figures regressed at the last comparison.
    regressed: BTreeSet<(String, String, Figure)>,
    /// The anytime-valid check of the baseline's pairs, and its clock.
    sequential: Option<(Sequential, Instant)>,
    /// The pairs the sequential check found regressed at the last comparison.
    sequential_regressed: BTreeSet<(String, String)>,
}

impl Evaluator {
    fn run(&mut self, stopped: &Receiver<()>) {
        let interval = match &self.baseline {
            Some(b) if self.alerts.rules().rules.is_empty() => b.interval,
            Some(b) => self.alerts.rules().evaluation_interval.min(b.interval),
            None => self.alerts.rules().evaluation_interval,
        };
        loop {
            let started = Instant::now();
            let now = SystemTime::now();
            if !self.alerts.rules().rules.is_empty() {
                self.evaluate(now, started);
            }
            if started >= self.baseline_due {
                self.compare_with_baseline(now);
            }
            let wait = interval.saturating_sub(started.elapsed());
            match stopped.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn evaluate(&mut self, now: SystemTime, started: Instant) {
        let transitions = self.alerts.evaluate(&self.live, now);
        self.evaluations += 1;
        let mut notifications = Vec::new();
        for t in &transitions {
            match t {
                Transition::Fired(a) => {
                    tracing::warn!(
                        target: "vidperf::alert",
                        alertname = %a.name,
                        strategy = a.strategy.as_deref().unwrap_or(""),
                        operation = a.operation.as_deref().unwrap_or(""),
                        severity = %a.severity,
                        value = a.value.unwrap_or(f64::NAN),
                        threshold = a.threshold,
                        "alert firing: {}",
                        a.summary
                    );
                }
                Transition::Resolved(a) => {
                    tracing::info!(
                        target: "vidperf::alert",
                        alertname = %a.name,
                        strategy = a.strategy.as_deref().unwrap_or(""),
                        operation = a.operation.as_deref().unwrap_or(""),
                        severity = %a.severity,
                        "alert resolved: {}",
                        a.summary
                    );
                    let labels = labels(a);
                    self.last_sent.remove(&labels);
                    notifications.push(crate::Notification::new(
                        labels,
                        annotations(a),
                        a.firing_since.unwrap_or(now),
                        now,
                    ));
                }
            }
        }
        // Firing alerts are (re)sent every `resend_interval`, with an end four
        // intervals ahead, as Prometheus does: Alertmanager resolves them by itself if
        // the service dies.
        let rules = self.alerts.rules();
        let resend = rules.resend_interval;
        // (Durations from a rule file are at most 7 days: this cannot overflow, and a
        // rule set built in code saturates.)
        let horizon = resend
            .max(rules.evaluation_interval)
            .saturating_mul(4)
            .min(Duration::from_secs(28 * 24 * 3600));
        let active = self.alerts.active();
        for a in active.iter().filter(|a| a.state == State::Firing) {
            let labels = labels(a);
            let due = self
                .last_sent
                .get(&labels)
                .is_none_or(|t| now.duration_since(*t).unwrap_or_default() >= resend);
            if due {
                self.last_sent.insert(labels.clone(), now);
                notifications.push(crate::Notification::new(
                    labels,
                    annotations(a),
                    a.firing_since.unwrap_or(now),
                    now + horizon,
                ));
            }
        }
        if let Some(delivery) = &self.delivery {
            delivery.send(notifications);
        }
        let mut document_alerts = active.clone();
        document_alerts.sort_by_key(|a| a.state != State::Firing);
        let omitted = document_alerts.len().saturating_sub(MAX_LISTED_ALERTS);
        document_alerts.truncate(MAX_LISTED_ALERTS);
        let firing = active.iter().filter(|a| a.state == State::Firing).count() as u64;
        let pending = active.iter().filter(|a| a.state == State::Pending).count() as u64;
        let mut view = self.view.write().unwrap_or_else(PoisonError::into_inner);
        view.document = AlertsDocument {
            evaluated_at: Some(now),
            rules: self.alerts.rules().rules.len(),
            alerts: document_alerts,
            omitted,
        };
        view.gauges = self.alerts.gauges();
        view.health = WatchHealth {
            rules: view.document.rules as u64,
            evaluations: self.evaluations,
            last_evaluation_micros: Some(started.elapsed().as_secs_f64() * 1e6),
            firing,
            pending,
            regressed: self.regressed.len() as u64,
            alertmanager: None,
            panicked: None,
        };
    }

    fn compare_with_baseline(&mut self, now: SystemTime) {
        let Some(baseline) = &self.baseline else {
            return;
        };
        self.baseline_due = Instant::now() + baseline.interval;
        let comparison = baseline.check(&self.live.stats, now);
        let regressed = regressed_set(&comparison);
        let change_of = |o: &str, s: &str, figure: Figure| {
            comparison
                .pairs
                .iter()
                .find(|p| p.operation_type == o && p.strategy == s)
                .and_then(|p| p.figures.iter().find(|f| f.figure == figure))
                .and_then(|f| f.change)
        };
        for (operation, strategy, figure) in regressed.difference(&self.regressed) {
            let change = change_of(operation, strategy, *figure).unwrap_or(f64::NAN);
            tracing::warn!(
                target: "vidperf::regression",
                operation = %operation,
                strategy = %strategy,
                figure = figure.name(),
                change,
                baseline = %baseline.source,
                "regression: {strategy} {operation} {} {} against the baseline",
                figure.name(),
                describe(*figure, change)
            );
        }
        for (operation, strategy, figure) in self.regressed.difference(&regressed) {
            tracing::info!(
                target: "vidperf::regression",
                operation = %operation,
                strategy = %strategy,
                figure = figure.name(),
                baseline = %baseline.source,
                "regression recovered: {strategy} {operation} {} is back within the baseline's",
                figure.name()
            );
        }
        // The anytime-valid check, fed the cumulative statistics (each operation once).
        let sequential = self.sequential.as_mut().map(|(check, clock)| {
            let cumulative = self.live.stats.snapshot_with(
                SnapshotOptions::default()
                    .with_recent(0)
                    .with_active(0)
                    .with_pairs()
                    .at(now),
            );
            check.update(&cumulative.pairs, clock.elapsed().as_secs_f64())
        });
        let sequential = sequential.unwrap_or_default();
        let sequential_regressed: BTreeSet<(String, String)> = sequential
            .iter()
            .filter(|p| p.strategy_regressed())
            .map(|p| (p.operation_type.clone(), p.strategy.clone()))
            .collect();
        for pair in sequential.iter().filter(|p| {
            p.strategy_regressed()
                && !self
                    .sequential_regressed
                    .contains(&(p.operation_type.clone(), p.strategy.clone()))
        }) {
            let change = pair.change.unwrap_or(f64::NAN);
            tracing::warn!(
                target: "vidperf::regression",
                operation = %pair.operation_type,
                strategy = %pair.strategy,
                figure = "sequential",
                change,
                evidence = pair.evidence,
                baseline = %baseline.source,
                "regression: {} {} {} {:+.1}% against the baseline (sequential test, e-value {:.0})",
                pair.strategy,
                pair.operation_type,
                pair.figure,
                change * 100.0,
                pair.evidence
            );
        }
        for (operation, strategy) in self.sequential_regressed.difference(&sequential_regressed) {
            tracing::info!(
                target: "vidperf::regression",
                operation = %operation,
                strategy = %strategy,
                figure = "sequential",
                baseline = %baseline.source,
                "regression recovered: {strategy} {operation} (sequential test) no longer shows a slowdown"
            );
        }
        let mut view = self.view.write().unwrap_or_else(PoisonError::into_inner);
        let mut regression_gauges = gauges(&comparison);
        regression_gauges.extend(sequential.iter().map(|p| RegressionGauge {
            operation: p.operation_type.clone(),
            strategy: p.strategy.clone(),
            figure: "sequential",
            regressed: p.strategy_regressed(),
        }));
        view.regression_gauges = regression_gauges;
        view.health.regressed = regressed.len() as u64;
        let mut document = RegressionsDocument::new(baseline);
        document.evaluated_at = Some(now);
        document.regressed = !regressed.is_empty();
        document.comparison = Some(comparison);
        document.sequential = sequential;
        self.sequential_regressed = sequential_regressed;
        view.regressions = Some(document);
        drop(view);
        self.regressed = regressed;
    }
}

/// An alert's identity for Alertmanager.
fn labels(a: &AlertStatus) -> BTreeMap<String, String> {
    let mut labels = a.labels.clone();
    labels.insert("alertname".into(), a.name.clone());
    labels.insert("severity".into(), a.severity.clone());
    if let Some(s) = &a.strategy {
        labels.insert("strategy".into(), s.clone());
    }
    if let Some(o) = &a.operation {
        labels.insert("operation".into(), o.clone());
    }
    labels
}

fn annotations(a: &AlertStatus) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::from([("summary".to_owned(), a.summary.clone())]);
    if let Some(d) = &a.description {
        annotations.insert("description".into(), d.clone());
    }
    if let Some(v) = a.value {
        annotations.insert("value".into(), v.to_string());
    }
    annotations
}

/// A change as words: `+23.4%` for a ratio, `+1.2 pp` for a failure rate.
fn describe(figure: Figure, change: f64) -> String {
    match figure {
        Figure::FailureRate => format!("{:+.1} pp", change * 100.0),
        Figure::Quality => format!("{change:+.3}"),
        _ => format!("{:+.1}%", (change - 1.0) * 100.0),
    }
}
