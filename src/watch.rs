//! Alert rules and a baseline, wired into the builder.
//!
//! Rules come from a TOML file (`VIDPERF_ALERT_RULES=path`, or
//! [`Builder::alert_rules_file`](crate::Builder::alert_rules_file) /
//! [`Builder::alert_rules`](crate::Builder::alert_rules)); the format is documented in
//! [`vidperf_watch::rules`]. They are evaluated on a thread of their own every
//! `evaluation_interval`, never on the span path. What fires or resolves is:
//!
//! - a `tracing` event on the target `vidperf::alert` (`WARN` when firing, `INFO` when
//!   resolved), which reaches any other subscriber and OTLP;
//! - `GET /performance/alerts`, the live stream's `alerts`, and
//!   `vidperf_alert_state{alertname,strategy,operation,severity}` on `/metrics`
//!   (0 inactive, 1 pending, 2 firing);
//! - with `VIDPERF_ALERTMANAGER_URL` (or
//!   [`Builder::alertmanager`](crate::Builder::alertmanager)), Alertmanager's API v2,
//!   re-sent while firing, retried with backoff, counted in `health.watch`.
//!
//! A baseline (`VIDPERF_BASELINE=path`, or
//! [`Builder::baseline`](crate::Builder::baseline)) is a JSON export —
//! a release's, a good day's — that the live window (`VIDPERF_BASELINE_WINDOW`, default
//! 10 minutes) is compared with every 30 seconds by the rules of `vidperf compare`.
//! A figure turning regressed or recovering is a `tracing` event on the target
//! `vidperf::regression` (`WARN` / `INFO`); the last comparison is
//! `GET /performance/regressions`, and `vidperf_regression{operation,strategy,figure}`
//! on `/metrics` is 1 while a figure is regressed.
//!
//! ```no_run
//! let vidperf = vidperf::builder()
//!     .alert_rules_file("alerts.toml")
//!     .alertmanager("http://127.0.0.1:9093")
//!     .baseline("release-1.4.json")
//!     .install()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use vidperf_watch::baseline::{Baseline, BaselineError, RegressionGauge, RegressionsDocument};
pub use vidperf_watch::compare::{CompareConfig, Comparison, Figure, Verdict};
pub use vidperf_watch::{
    AlertGauge, AlertStatus, AlertsDocument, DeliveryHealth, Metric, Rule, RuleError, RuleSet,
    Signals, State, WatchHealth,
};
use vidperf_watch::{Deliver, Watcher};

use crate::env::env_text;
use crate::error::BuildError;
use crate::parts::{Part, PartFailure, Stopped, Wiring};

/// `VIDPERF_ALERT_RULES`: a TOML file of alert rules.
pub const ENV_ALERT_RULES: &str = "VIDPERF_ALERT_RULES";
/// `VIDPERF_ALERTMANAGER_URL`: deliver alerts to this Alertmanager (`http://host:port`).
pub const ENV_ALERTMANAGER_URL: &str = "VIDPERF_ALERTMANAGER_URL";
/// `VIDPERF_BASELINE`: a JSON export the live window is compared with.
pub const ENV_BASELINE: &str = "VIDPERF_BASELINE";
/// `VIDPERF_BASELINE_WINDOW`: the live window compared with the baseline (`10m`, `300s`).
pub const ENV_BASELINE_WINDOW: &str = "VIDPERF_BASELINE_WINDOW";
/// `VIDPERF_BASELINE_INTERVAL`: how often the live window is compared (`30s`).
pub const ENV_BASELINE_INTERVAL: &str = "VIDPERF_BASELINE_INTERVAL";

#[derive(Debug, Clone, Default)]
pub(crate) struct Setting {
    pub(crate) rules: Option<Rules>,
    pub(crate) alertmanager: Option<String>,
    pub(crate) baseline: Option<PathBuf>,
    pub(crate) baseline_window: Option<Duration>,
    pub(crate) baseline_interval: Option<Duration>,
}

#[derive(Debug, Clone)]
pub(crate) enum Rules {
    File(PathBuf),
    Set(RuleSet),
}

/// Delivery to the Alertmanager at `url`.
#[cfg(feature = "alertmanager")]
fn delivery(url: &str) -> Result<Arc<dyn Deliver>, BuildError> {
    Ok(Arc::new(vidperf_watch::alertmanager::Alertmanager::start(
        url,
    )?))
}

/// This build has no Alertmanager delivery.
#[cfg(not(feature = "alertmanager"))]
fn delivery(_url: &str) -> Result<Arc<dyn Deliver>, BuildError> {
    Err(BuildError::FeatureNotBuilt {
        var: ENV_ALERTMANAGER_URL,
        feature: "alertmanager",
    })
}

/// Starts the watcher when rules or a baseline are configured; registers its health
/// with the statistics.
pub(crate) fn start(setting: &Setting, wiring: &mut Wiring) -> Result<(), BuildError> {
    let (read_env, stats) = (wiring.read_env, wiring.stats.clone());
    let stats = &stats;
    let from_env = |var| -> Result<Option<String>, BuildError> {
        Ok(if read_env {
            env_text(var)?.filter(|v| !v.trim().is_empty())
        } else {
            None
        })
    };
    let rules = match &setting.rules {
        Some(Rules::Set(set)) => Some(set.clone()),
        Some(Rules::File(path)) => Some(RuleSet::from_file(path)?),
        None => match from_env(ENV_ALERT_RULES)? {
            Some(path) => Some(RuleSet::from_file(std::path::Path::new(path.trim()))?),
            None => None,
        },
    };
    let url = match &setting.alertmanager {
        Some(url) => Some(url.clone()),
        None => from_env(ENV_ALERTMANAGER_URL)?,
    };
    let baseline = match &setting.baseline {
        Some(path) => Some(path.clone()),
        None => from_env(ENV_BASELINE)?.map(|p| PathBuf::from(p.trim())),
    };
    let duration_env =
        |var: &'static str, set: Option<Duration>| -> Result<Option<Duration>, BuildError> {
            if set.is_some() {
                return Ok(set);
            }
            match from_env(var)? {
                Some(text) => humantime::parse_duration(text.trim())
                    .ok()
                    .filter(|d| !d.is_zero())
                    .map(Some)
                    .ok_or(BuildError::InvalidEnv {
                        var,
                        value: text.clone(),
                        expected: "a duration such as 10m or 30s",
                    }),
                None => Ok(None),
            }
        };
    let window = duration_env(ENV_BASELINE_WINDOW, setting.baseline_window)?;
    let interval = duration_env(ENV_BASELINE_INTERVAL, setting.baseline_interval)?;
    let baseline = match baseline {
        Some(path) => {
            let mut baseline = Baseline::from_file(&path)?;
            if let Some(window) = window {
                baseline.window = window;
            }
            baseline.window = baseline.window.min(stats.max_window());
            if let Some(interval) = interval {
                baseline.interval = interval.max(Duration::from_millis(100));
            }
            Some(baseline)
        }
        None => None,
    };
    if rules.is_none()
        && let Some(url) = url
    {
        let expected =
            "alert rules too (VIDPERF_ALERT_RULES): without rules there is nothing to deliver";
        return Err(match setting.alertmanager {
            Some(_) => BuildError::InvalidSetting {
                setting: "Builder::alertmanager",
                value: url,
                expected,
            },
            None => BuildError::InvalidEnv {
                var: ENV_ALERTMANAGER_URL,
                value: url,
                expected,
            },
        });
    }
    if rules.is_none() && baseline.is_none() {
        return Ok(());
    }
    let rules = rules.unwrap_or_default();
    let delivery = url.as_deref().map(delivery).transpose()?;
    let signals = std::mem::take(&mut wiring.signals);
    let watcher = Arc::new(Watcher::start(
        stats.clone(),
        signals,
        rules,
        delivery,
        baseline,
    )?);
    stats.add_health_source(watcher.clone());
    serve(wiring, &watcher);
    wiring.parts.push(Arc::new(WatchPart(watcher)));
    Ok(())
}

/// Hands the watcher's documents to the HTTP API.
#[cfg(feature = "http-api")]
fn serve(wiring: &mut Wiring, watcher: &Arc<Watcher>) {
    wiring.watch = Some(Arc::new(Served(watcher.clone())));
}

#[cfg(not(feature = "http-api"))]
fn serve(_: &mut Wiring, _: &Arc<Watcher>) {}

/// The watcher as the HTTP API shows it.
#[cfg(feature = "http-api")]
#[derive(Debug)]
pub(crate) struct Served(pub(crate) Arc<Watcher>);

#[cfg(feature = "http-api")]
impl vidperf_server::Watch for Served {
    fn alerts(&self) -> serde_json::Value {
        serde_json::to_value(self.0.alerts()).unwrap_or_default()
    }

    fn alert_list(&self) -> serde_json::Value {
        serde_json::to_value(self.0.alerts().alerts).unwrap_or_default()
    }

    fn regressions(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self.0.regressions()?).ok()
    }

    fn regressed(&self) -> Option<serde_json::Value> {
        use vidperf_watch::compare::Verdict;
        let document = self.0.regressions()?;
        let mut list = Vec::new();
        for pair in document.comparison.iter().flat_map(|c| &c.pairs) {
            if pair.verdict != Verdict::Regressed {
                continue;
            }
            for f in &pair.figures {
                if f.verdict == Some(Verdict::Regressed) {
                    let change = f
                        .change
                        .map(|c| if f.figure.is_ratio() { c - 1.0 } else { c });
                    list.push(serde_json::json!({
                        "operation_type": pair.operation_type,
                        "strategy": pair.strategy,
                        "figure": f.figure.name(),
                        "change": change,
                        "test": "windowed",
                    }));
                }
            }
        }
        for pair in &document.sequential {
            if pair.strategy_regressed() {
                list.push(serde_json::json!({
                    "operation_type": pair.operation_type,
                    "strategy": pair.strategy,
                    "figure": pair.figure,
                    "change": pair.change,
                    "test": "sequential",
                }));
            }
        }
        Some(serde_json::Value::Array(list))
    }
}

/// The running watcher, as a part.
#[derive(Debug)]
pub(crate) struct WatchPart(pub(crate) Arc<Watcher>);

impl Part for WatchPart {
    fn name(&self) -> &'static str {
        "watch"
    }

    fn shutdown(&self, timeout: Duration) -> Stopped {
        self.0
            .shutdown(timeout)
            .map_err(|t| PartFailure::Timeout {
                part: t.thread,
                timeout: t.timeout,
            })
            .into()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
