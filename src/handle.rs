//! [`Vidperf`]: the handle on a running vidperf — its statistics, and the lifecycle of
//! its background parts.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vidperf_core::export::{ExportPaths, WriteError};
use vidperf_core::{Stats, StatsSnapshot};

use crate::parts::{Part, PartFailure};

/// A cheap-to-clone handle on a running vidperf.
///
/// Every figure comes from [`Vidperf::stats`] — snapshots (cumulative or over a time
/// window), records, exports, metrics, and the health of every part (layer, resource
/// monitor, OTLP export, alert rules), which the builder registers with the statistics;
/// the HTTP API serves the same. The handle itself owns the lifecycle of the parts:
/// flush and shutdown.
#[derive(Clone, Debug)]
pub struct Vidperf {
    stats: Arc<Stats>,
    /// The running parts, in the order they started.
    parts: Arc<[Arc<dyn Part>]>,
    warnings: Arc<[String]>,
}

/// Shuts vidperf down when dropped; see [`Vidperf::shutdown_guard`].
#[must_use = "the shutdown happens when this guard is dropped"]
#[derive(Debug)]
pub struct ShutdownGuard {
    vidperf: Vidperf,
    timeout: Duration,
}

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        if let Err(e) = self.vidperf.shutdown(self.timeout) {
            tracing::warn!(target: "vidperf", error = %e, "vidperf shutdown did not complete cleanly");
        }
    }
}

/// What [`Vidperf::shutdown`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Each part stopped, in the order they stopped, with the time it took.
    pub parts: Vec<(&'static str, Duration)>,
    /// Spans delivered over OTLP since start, when OTLP export ran.
    pub spans_exported: Option<u64>,
    /// Spans lost before the shutdown (a full queue, a collector that was down), each
    /// counted when it happened (`health.export`); not a failure of the shutdown.
    pub spans_lost_before: u64,
    /// Spans queued when the shutdown began that were not delivered.
    pub spans_lost_at_shutdown: u64,
}

/// Why [`Vidperf::shutdown`] or [`Vidperf::flush`] did not finish cleanly: every part
/// that failed, and the report of the whole shutdown (the other parts stopped).
#[derive(Debug, thiserror::Error)]
#[error("vidperf {what}: {}", failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
#[non_exhaustive]
pub struct ShutdownError {
    what: &'static str,
    /// What went wrong, part by part.
    pub failures: Vec<PartFailure>,
    /// What the shutdown did (empty for a flush).
    pub report: ShutdownReport,
}

impl Vidperf {
    pub(crate) fn new(stats: Arc<Stats>, parts: Vec<Arc<dyn Part>>, warnings: Vec<String>) -> Self {
        Self {
            stats,
            parts: parts.into(),
            warnings: warnings.into(),
        }
    }

    /// The running part of type `T`, if any.
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
    pub(crate) fn part<T: Part>(&self) -> Option<&T> {
        self.parts
            .iter()
            .find_map(|p| p.as_any().downcast_ref::<T>())
    }

    /// What the build warned about (e.g. an HTTP API on a non-loopback address). Each
    /// warning was also emitted once as a `WARN` event (target `vidperf::http`) to the
    /// subscriber current at build time; a program without a log output of its own can
    /// print these.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The statistics: every figure vidperf reports, and the exports.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Shorthand for `stats().snapshot()`: everything since start, with the default
    /// options (10 recent operations).
    pub fn snapshot(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Shorthand for [`export::write_stats_files`](vidperf_core::export::write_stats_files)
    /// of the statistics: writes `vidperf-export.json` and
    /// `vidperf-export.csv` into `dir`, each atomically (temporary file, then rename).
    pub fn write_exports(&self, dir: &Path) -> Result<ExportPaths, WriteError> {
        vidperf_core::export::write_stats_files(dir, &self.stats)
    }

    /// A guard that calls [`Vidperf::shutdown`] with `timeout` when dropped — at the end
    /// of `main`, say — so that pending spans are flushed and the background threads
    /// stop even on early returns. A failed shutdown is reported as a `WARN` event on
    /// the target `vidperf`; call [`Vidperf::shutdown`] yourself to handle it.
    pub fn shutdown_guard(&self, timeout: Duration) -> ShutdownGuard {
        ShutdownGuard {
            vidperf: self.clone(),
            timeout,
        }
    }

    /// Exports everything pending over OTLP now (spans and metrics; a no-op without
    /// OTLP export).
    pub fn flush(&self) -> Result<(), ShutdownError> {
        let failures: Vec<PartFailure> =
            self.parts.iter().filter_map(|p| p.flush().err()).collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ShutdownError {
                what: "flush",
                failures,
                report: ShutdownReport::default(),
            })
        }
    }

    /// Whether OTLP export is on.
    pub fn exports_otlp(&self) -> bool {
        self.parts.iter().any(|p| p.name() == "otlp")
    }

    /// Stops the background parts, the last started first — the HTTP server (letting
    /// in-flight requests finish), the alert watcher, the OTLP export (flushing what is
    /// queued) and the resource monitor's thread — waiting at most `timeout` for each,
    /// and says what happened: each part's time, the spans delivered, those lost before
    /// the shutdown (reported, counted when they happened) and during it.
    ///
    /// It fails only for what went wrong in the shutdown itself: a part that did not stop
    /// in time, or spans queued at the start of the shutdown that could not be
    /// delivered. Statistics and exports keep working afterwards; operations still open
    /// keep their resource peaks, those opened afterwards get none.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let vidperf = vidperf::init()?;
    /// // ... the service ...
    /// let report = vidperf.shutdown(std::time::Duration::from_secs(5))?;
    /// if report.spans_lost_before > 0 {
    ///     eprintln!("{} spans were lost while running (see health.export)", report.spans_lost_before);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn shutdown(&self, timeout: Duration) -> Result<ShutdownReport, ShutdownError> {
        let mut report = ShutdownReport::default();
        let mut failures = Vec::new();
        for part in self.parts.iter().rev() {
            let started = Instant::now();
            let stopped = part.shutdown(timeout);
            if let Some(spans) = stopped.spans {
                report.spans_exported = Some(spans.exported);
                report.spans_lost_before += spans.lost_before;
                report.spans_lost_at_shutdown += spans.lost_at_shutdown;
            }
            if let Err(failure) = stopped.result {
                failures.push(failure);
            }
            report.parts.push((part.name(), started.elapsed()));
        }
        if failures.is_empty() {
            Ok(report)
        } else {
            Err(ShutdownError {
                what: "shutdown",
                failures,
                report,
            })
        }
    }
}

#[cfg(any(feature = "system", feature = "gpu"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "system", feature = "gpu"))))]
impl Vidperf {
    /// The resource monitor, when one runs.
    pub fn resource_monitor(&self) -> Option<&crate::resources::ResourceMonitor> {
        self.part::<crate::resources::MonitorPart>().map(|m| &*m.0)
    }
}

#[cfg(feature = "http-api")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-api")))]
impl Vidperf {
    /// The HTTP API over this instance's statistics, as an axum router to mount in
    /// your own service.
    pub fn router(&self, config: crate::http::ApiConfig) -> vidperf_server::axum::Router {
        let state = crate::http::ApiState::new(self.stats().clone(), config);
        crate::http::router(self.serve_watch(state))
    }

    /// Where the HTTP API started by the builder listens, while it runs.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.part::<crate::http::HttpPart>()?.serving_addr()
    }
}

/// Without alert rules built in, the API has no watcher to show.
#[cfg(all(feature = "http-api", not(feature = "watch")))]
impl Vidperf {
    pub(crate) fn serve_watch(&self, state: crate::http::ApiState) -> crate::http::ApiState {
        state
    }
}

#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
impl Vidperf {
    /// The OTLP export, when it runs.
    pub fn otlp(&self) -> Option<&crate::otlp::Otel> {
        self.part::<crate::otlp::OtlpPart>().map(|o| &*o.0)
    }
}

#[cfg(feature = "watch")]
impl Vidperf {
    /// The alerts pending or firing now, when alert rules run.
    pub fn alerts(&self) -> Option<crate::watch::AlertsDocument> {
        self.part::<crate::watch::WatchPart>().map(|w| w.0.alerts())
    }

    /// The last comparison of the live window with the baseline, when one is loaded
    /// ([`Builder::baseline`](crate::Builder::baseline)).
    pub fn regressions(&self) -> Option<crate::watch::RegressionsDocument> {
        self.part::<crate::watch::WatchPart>()
            .and_then(|w| w.0.regressions())
    }
}

#[cfg(all(feature = "watch", feature = "http-api"))]
impl Vidperf {
    /// `state` with the watcher's documents, when one runs.
    pub(crate) fn serve_watch(&self, state: vidperf_server::ApiState) -> vidperf_server::ApiState {
        match self.part::<crate::watch::WatchPart>() {
            Some(w) => state.with_watch(Arc::new(crate::watch::Served(w.0.clone()))),
            None => state,
        }
    }
}
