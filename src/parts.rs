//! The facade's parts — the resource monitor, the OTLP export, the alert watcher, the
//! HTTP server — all follow one protocol: a part is started by the builder from its
//! setting and the environment, attaches itself to the layer and the statistics
//! (sinks, resource windows, health, the signals the rules read), and afterwards only
//! flushes and shuts down with a deadline, reporting a typed result. A part this build
//! leaves out (its feature off) is simply absent: nothing stands in for it, and a
//! variable that asks for it is a build error naming the feature.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use vidperf_core::{PerfLayerBuilder, Stats};

use crate::env::env_text;
use crate::error::BuildError;

/// A running part.
pub(crate) trait Part: Send + Sync + fmt::Debug + 'static {
    /// Its name in reports (`monitor`, `otlp`, `watch`, `http`).
    fn name(&self) -> &'static str;

    /// Exports what is pending now; a part that exports nothing does nothing.
    fn flush(&self) -> Result<(), PartFailure> {
        Ok(())
    }

    /// Stops, waiting at most `timeout`: what it says of the spans it delivered and
    /// lost (if it exports spans), whether or not the shutdown went well.
    fn shutdown(&self, timeout: Duration) -> Stopped;

    /// The part itself, for the handle's typed accessors.
    // reason: the accessors of the parts a build has use it; a build with none has none.
    #[cfg_attr(
        not(any(
            feature = "system",
            feature = "gpu",
            feature = "otlp",
            feature = "watch",
            feature = "http-api"
        )),
        allow(dead_code)
    )]
    fn as_any(&self) -> &dyn Any;
}

/// What went wrong in one part during a flush or a shutdown.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartFailure {
    /// The part did not stop within the deadline (a driver call that hangs, a
    /// collector that does not answer); its thread was left to end on its own.
    #[error("{part} did not stop within {timeout:?}")]
    Timeout {
        /// The part (`monitor`, `otlp`, `watch`, `http`, or one of their threads).
        part: &'static str,
        /// The deadline it had.
        timeout: Duration,
    },
    /// Spans queued when the shutdown began were not delivered.
    #[error("{part} lost {spans} spans at shutdown: {reason}")]
    Undelivered {
        /// The part.
        part: &'static str,
        /// How many.
        spans: u64,
        /// Why.
        reason: String,
    },
    /// A flush failed.
    #[error("{part}: {reason}")]
    Failed {
        /// The part.
        part: &'static str,
        /// Why.
        reason: String,
    },
}

/// What a part's shutdown did.
#[derive(Debug)]
pub(crate) struct Stopped {
    pub(crate) spans: Option<SpanCounts>,
    pub(crate) result: Result<(), PartFailure>,
}

impl From<Result<(), PartFailure>> for Stopped {
    fn from(result: Result<(), PartFailure>) -> Self {
        Self {
            spans: None,
            result,
        }
    }
}

/// What a part that exports spans says at shutdown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SpanCounts {
    pub(crate) exported: u64,
    pub(crate) lost_before: u64,
    pub(crate) lost_at_shutdown: u64,
}

/// What the parts started so far hand to the next, and to the handle.
// reason: a build with no part (every feature off) reads none of it.
#[cfg_attr(
    not(any(
        feature = "system",
        feature = "gpu",
        feature = "otlp",
        feature = "watch",
        feature = "http-api"
    )),
    allow(dead_code)
)]
pub(crate) struct Wiring {
    pub(crate) read_env: bool,
    pub(crate) stats: Arc<Stats>,
    pub(crate) layer: PerfLayerBuilder,
    /// What the alert rules read of the other parts.
    // reason: only the alert watcher (feature `watch`) reads them.
    #[cfg_attr(not(feature = "watch"), allow(dead_code))]
    pub(crate) signals: vidperf_core::signals::Signals,
    /// The alert watcher's documents, for the HTTP API.
    #[cfg(feature = "http-api")]
    pub(crate) watch: Option<Arc<dyn vidperf_server::Watch>>,
    pub(crate) warnings: Vec<String>,
    pub(crate) parts: Vec<Arc<dyn Part>>,
}

/// Variables of the parts this build leaves out, with the feature that builds each.
const NOT_BUILT: &[(&str, &str)] = &[
    #[cfg(not(any(feature = "system", feature = "gpu")))]
    ("VIDPERF_SAMPLE_INTERVAL_MS", "system` or `gpu"),
    #[cfg(not(any(feature = "system", feature = "gpu")))]
    ("VIDPERF_NVML_LIBRARY", "system` or `gpu"),
    #[cfg(not(any(feature = "system", feature = "gpu")))]
    ("VIDPERF_BOUNDARY_READS", "system` or `gpu"),
    #[cfg(not(feature = "http-api"))]
    ("VIDPERF_HTTP_ADDR", "http-api"),
    #[cfg(not(feature = "http-api"))]
    ("VIDPERF_HTTP_TOKEN", "http-api"),
    #[cfg(not(feature = "watch"))]
    ("VIDPERF_ALERT_RULES", "watch"),
    #[cfg(not(feature = "watch"))]
    ("VIDPERF_ALERTMANAGER_URL", "watch"),
    #[cfg(not(feature = "watch"))]
    ("VIDPERF_BASELINE", "watch"),
    #[cfg(not(feature = "watch"))]
    ("VIDPERF_BASELINE_WINDOW", "watch"),
    #[cfg(not(feature = "watch"))]
    ("VIDPERF_BASELINE_INTERVAL", "watch"),
    #[cfg(not(feature = "otlp"))]
    ("VIDPERF_TAIL_SAMPLING", "otlp"),
];

/// A variable that asks for a part this build leaves out is an error naming the
/// feature (`VIDPERF_RESOURCE_MONITOR=off` is fine: it asks for nothing).
pub(crate) fn check_not_built(read_env: bool) -> Result<(), BuildError> {
    if !read_env {
        return Ok(());
    }
    for (var, feature) in NOT_BUILT {
        if env_text(var)?.is_some() {
            return Err(BuildError::FeatureNotBuilt { var, feature });
        }
    }
    monitor_not_built()
}

/// `VIDPERF_RESOURCE_MONITOR=on` without a monitor built.
#[cfg(not(any(feature = "system", feature = "gpu")))]
fn monitor_not_built() -> Result<(), BuildError> {
    if crate::env::env_switch("VIDPERF_RESOURCE_MONITOR")? == Some(true) {
        return Err(BuildError::FeatureNotBuilt {
            var: "VIDPERF_RESOURCE_MONITOR",
            feature: "system` or `gpu",
        });
    }
    Ok(())
}

#[cfg(any(feature = "system", feature = "gpu"))]
fn monitor_not_built() -> Result<(), BuildError> {
    Ok(())
}

/// The metric families of the parts this build has.
pub(crate) const FAMILIES: &[fn() -> Vec<vidperf_core::metrics::FamilyDef>] = &[
    #[cfg(any(feature = "system", feature = "gpu"))]
    vidperf_sampler::family_defs,
    #[cfg(feature = "otlp")]
    || vidperf_otel::family::EXPORT.to_vec(),
    #[cfg(feature = "watch")]
    || vidperf_watch::family::WATCH.to_vec(),
];
