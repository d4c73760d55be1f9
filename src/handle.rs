//! [`Vidperf`]: the handle on a running vidperf — its statistics, and the lifecycle of
//! its background parts.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use vidperf_core::export::{ExportPaths, WriteError};
use vidperf_core::{Stats, StatsSnapshot};

use crate::{http, otlp, resources, watch};

/// A cheap-to-clone handle on a running vidperf.
///
/// Every figure comes from [`Vidperf::stats`] — snapshots (cumulative or over a time
/// window), records, exports, and the health of every part (layer, resource monitor,
/// OTLP export), which the builder registers with the statistics; the HTTP API serves
/// the same. The handle itself owns the lifecycle: flush and shutdown.
#[derive(Clone, Debug)]
pub struct Vidperf {
    stats: Arc<Stats>,
    monitor: Option<resources::Monitor>,
    pub(crate) server: Option<http::Server>,
    otel: Option<otlp::Pipeline>,
    pub(crate) watcher: Option<watch::Running>,
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

/// Why [`Vidperf::shutdown`] or [`Vidperf::flush`] did not finish cleanly. When several
/// parts fail, the OTLP export's error (which counts the spans lost) is reported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// The resource monitor did not stop in time (it is blocked in a driver call).
    #[cfg(any(feature = "system", feature = "gpu"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "system", feature = "gpu"))))]
    #[error(transparent)]
    Monitor(#[from] vidperf_sampler::ShutdownError),
    /// The HTTP server did not stop in time.
    #[cfg(feature = "http-api")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http-api")))]
    #[error(transparent)]
    Http(#[from] vidperf_server::ServeError),
    /// The OTLP export did not deliver everything (the error counts what was lost, by
    /// reason), or did not stop in time.
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    #[error(transparent)]
    Otlp(#[from] vidperf_otel::OtelError),
}

impl Vidperf {
    pub(crate) fn new(
        stats: Arc<Stats>,
        monitor: Option<resources::Monitor>,
        server: Option<http::Server>,
        otel: Option<otlp::Pipeline>,
        watcher: Option<watch::Running>,
        warnings: Vec<String>,
    ) -> Self {
        Self {
            stats,
            monitor,
            server,
            otel,
            watcher,
            warnings: warnings.into(),
        }
    }

    /// The alerts pending or firing now, when alert rules run.
    pub fn alerts(&self) -> Option<watch::AlertsDocument> {
        self.watcher.as_ref().map(|w| w.alerts())
    }

    /// The last comparison of the live window with the baseline, when one is loaded
    /// ([`Builder::baseline`](crate::Builder::baseline)).
    pub fn regressions(&self) -> Option<watch::RegressionsDocument> {
        self.watcher.as_ref().and_then(|w| w.regressions())
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

    /// Shorthand for `stats().write_files(dir)`: writes `vidperf-export.json` and
    /// `vidperf-export.csv` into `dir`, each atomically (temporary file, then rename).
    pub fn write_exports(&self, dir: &Path) -> Result<ExportPaths, WriteError> {
        self.stats.write_files(dir)
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

    /// Exports everything pending over OTLP now (a no-op without OTLP export).
    pub fn flush(&self) -> Result<(), ShutdownError> {
        match &self.otel {
            Some(o) => otlp::flush(o),
            None => Ok(()),
        }
    }

    /// Whether OTLP export is on.
    pub fn exports_otlp(&self) -> bool {
        self.otel.is_some()
    }

    /// The resource monitor, when one runs.
    #[cfg(any(feature = "system", feature = "gpu"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "system", feature = "gpu"))))]
    pub fn resource_monitor(&self) -> Option<&vidperf_sampler::ResourceMonitor> {
        self.monitor.as_deref()
    }

    /// Stops the background work — the HTTP server (letting in-flight requests finish),
    /// the resource monitor's thread and the OTLP export (flushing what is queued) —
    /// waiting at most `timeout` for each. Statistics and exports keep working
    /// afterwards; operations that close later get no resource peaks.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), ShutdownError> {
        let http = match &self.server {
            Some(s) => http::shutdown(s, timeout),
            None => Ok(()),
        };
        if let Some(w) = &self.watcher {
            watch::shutdown(w, timeout);
        }
        let monitor = match &self.monitor {
            Some(m) => resources::shutdown(m, timeout),
            None => Ok(()),
        };
        let otel = match &self.otel {
            Some(o) => otlp::shutdown(o, timeout),
            None => Ok(()),
        };
        otel.and(monitor).and(http)
    }
}
