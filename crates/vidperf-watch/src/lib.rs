//! Judging [vidperf](https://docs.rs/vidperf)'s statistics: what the service decides on a
//! timer and the `vidperf` command decides in CI, as pure, deterministic code over
//! snapshots — never on the span path.
//!
//! - [`rules`] and [`alerts`]: threshold alert rules from TOML, evaluated with `for`,
//!   `keep_firing_for`, a recovery threshold and a minimum sample count.
//! - [`alertmanager`] (feature `alertmanager`): delivery to a Prometheus Alertmanager
//!   (API v2), retried with backoff, counted, never blocking the evaluation.
//! - [`watcher`]: the service's timer thread that runs them and keeps what the HTTP
//!   API, the live stream and `/metrics` show.

#![forbid(unsafe_code)]
#![cfg_attr(test, deny(warnings))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "alertmanager")]
#[cfg_attr(docsrs, doc(cfg(feature = "alertmanager")))]
pub mod alertmanager;
pub mod alerts;
pub mod baseline;
pub mod compare;
mod health;
mod notify;
pub mod rules;
pub mod sequential;
pub mod watcher;

pub use alerts::{AlertGauge, AlertStatus, Alerts, Figures, State, Transition};
pub use health::{DeliveryHealth, Signals, WatchHealth, family};
pub use notify::Notification;
pub use rules::{Condition, Metric, Rule, RuleError, RuleSet};
pub use watcher::{AlertsDocument, Deliver, WatchError, Watcher};
