//! A notification for Alertmanager (API v2), as the watcher hands it to a [`Deliver`]
//! implementation.
//!
//! [`Deliver`]: crate::watcher::Deliver

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

/// One alert as Alertmanager receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Notification {
    /// Identify the alert: `alertname`, `severity`, `strategy`, … .
    pub labels: BTreeMap<String, String>,
    /// `summary`, `description`.
    pub annotations: BTreeMap<String, String>,
    /// When it started firing.
    #[serde(serialize_with = "rfc3339")]
    pub starts_at: SystemTime,
    /// When it stops firing unless sent again (in the past: resolved).
    #[serde(serialize_with = "rfc3339")]
    pub ends_at: SystemTime,
}

impl Notification {
    /// A notification.
    pub fn new(
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
        starts_at: SystemTime,
        ends_at: SystemTime,
    ) -> Self {
        Self {
            labels,
            annotations,
            starts_at,
            ends_at,
        }
    }
}

fn rfc3339<S: serde::Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_micros(*time))
}
