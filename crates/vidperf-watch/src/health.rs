//! The watcher's health (rules, evaluations, deliveries), typed here and written as JSON
//! (`health.watch`) and as metric families (alert states and regressions) by the
//! encoders below; and the figures of other parts the rules read ([`Signals`]).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use vidperf_core::metrics::{Family, FamilyDef, Kind, attr};

use crate::alerts::AlertGauge;
use crate::baseline::RegressionGauge;

/// The watcher's own state, in the statistics' health (`health.watch`): alert rules and the baseline
/// comparison, evaluated on a timer off the span path.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WatchHealth {
    /// Alert rules loaded.
    pub rules: u64,
    /// Evaluations so far.
    pub evaluations: u64,
    /// How long the last evaluation took, microseconds.
    pub last_evaluation_micros: Option<f64>,
    /// Alerts firing now.
    pub firing: u64,
    /// Alerts pending now.
    pub pending: u64,
    /// Figures regressed against the baseline now.
    pub regressed: u64,
    /// The delivery to Alertmanager, when configured.
    pub alertmanager: Option<DeliveryHealth>,
    /// Why the evaluation or delivery thread ended in a panic, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panicked: Option<String>,
}

/// Alertmanager delivery, in [`WatchHealth::alertmanager`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeliveryHealth {
    /// The Alertmanager.
    pub url: String,
    /// Notifications delivered.
    pub sent: u64,
    /// Delivery attempts that failed (each is retried with backoff).
    pub failed_attempts: u64,
    /// Notifications dropped (queue full, or still pending at shutdown).
    pub dropped: u64,
    /// Notifications waiting now (one per alert at most).
    pub queued: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

/// The watcher's metric families, declared once.
pub mod family {
    use super::{FamilyDef, Kind};

    /// Each alert's state.
    pub const ALERT_STATE: FamilyDef = FamilyDef::new(
        "vidperf.alert.state",
        "{state}",
        Kind::Gauge,
        "State of each alert of the service's own rules: 0 inactive, 1 pending, 2 firing.",
    );
    /// Each judged figure against the baseline.
    pub const REGRESSION: FamilyDef = FamilyDef::new(
        "vidperf.regression",
        "{bool}",
        Kind::Gauge,
        "1 while a figure of an (operation, strategy) pair is regressed against the service's baseline, 0 when judged and not regressed.",
    );

    /// Every family of the watcher.
    pub const WATCH: [FamilyDef; 2] = [ALERT_STATE, REGRESSION];
}

/// The alert states and regression gauges as metric families.
pub(crate) fn families(
    alerts: &[AlertGauge],
    regressions: &[RegressionGauge],
    out: &mut Vec<Family>,
) {
    let mut states = Family::new(family::ALERT_STATE);
    for a in alerts {
        states.push(
            vec![
                ("alertname", Cow::Owned(a.name.clone())),
                (
                    attr::STRATEGY,
                    Cow::Owned(a.strategy.clone().unwrap_or_default()),
                ),
                (
                    attr::OPERATION,
                    Cow::Owned(a.operation.clone().unwrap_or_default()),
                ),
                ("severity", Cow::Owned(a.severity.clone())),
            ],
            f64::from(a.state.gauge()),
        );
    }
    let mut regressed = Family::new(family::REGRESSION);
    for r in regressions {
        regressed.push(
            vec![
                (attr::OPERATION, Cow::Owned(r.operation.clone())),
                (attr::STRATEGY, Cow::Owned(r.strategy.clone())),
                ("figure", Cow::Borrowed(r.figure)),
            ],
            f64::from(u8::from(r.regressed)),
        );
    }
    out.extend([states, regressed]);
}

pub use vidperf_core::signals::Signals;
