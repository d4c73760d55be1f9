//! [`Vidperf`]: the handle to query statistics and write exports.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use vidperf_core::export::{self, ExportPaths, WriteError};
use vidperf_core::stats::SnapshotOptions;
use vidperf_core::{OperationRecord, PerfLayer, Stats, StatsSnapshot};

use crate::{http, otlp, resources};

/// A cheap-to-clone handle on a running vidperf: statistics snapshots and exports.
#[derive(Clone, Debug)]
pub struct Vidperf {
    stats: Arc<Stats>,
    layer: PerfLayer,
    monitor: Option<resources::Monitor>,
    pub(crate) server: Option<http::Server>,
    otel: Option<otlp::Pipeline>,
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

/// Why [`Vidperf::shutdown`] did not finish cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// The resource monitor did not stop in time.
    #[error("{0}")]
    Monitor(String),
    /// The HTTP server did not stop in time.
    #[error("{0}")]
    Http(String),
    /// The OTLP export did not deliver everything, or did not stop in time; the
    /// message says what was lost.
    #[error("{0}")]
    Otlp(String),
}

impl Vidperf {
    pub(crate) fn new(
        stats: Arc<Stats>,
        layer: PerfLayer,
        monitor: Option<resources::Monitor>,
        otel: Option<otlp::Pipeline>,
    ) -> Self {
        Self {
            stats,
            layer,
            monitor,
            server: None,
            otel,
        }
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
            Some(o) => otlp::flush(o).map_err(ShutdownError::Otlp),
            None => Ok(()),
        }
    }

    /// Whether OTLP export is on.
    pub fn exports_otlp(&self) -> bool {
        self.otel.is_some()
    }

    pub(crate) fn set_server(&mut self, server: Option<http::Server>) {
        self.server = server;
    }

    /// The resource monitor, when one runs.
    #[cfg(any(feature = "system", feature = "gpu"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "system", feature = "gpu"))))]
    pub fn resource_monitor(&self) -> Option<&vidperf_sampler::ResourceMonitor> {
        self.monitor.as_deref()
    }

    /// Stops the background work — the HTTP server (letting in-flight requests finish)
    /// and the resource monitor's thread — waiting at most `timeout` for each.
    /// Statistics and exports keep working afterwards; operations that close later get
    /// no resource peaks.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), ShutdownError> {
        let http = match &self.server {
            Some(s) => http::shutdown(s, timeout).map_err(ShutdownError::Http),
            None => Ok(()),
        };
        let monitor = match &self.monitor {
            Some(m) => resources::shutdown(m, timeout).map_err(ShutdownError::Monitor),
            None => Ok(()),
        };
        let otel = match &self.otel {
            Some(o) => otlp::shutdown(o, timeout).map_err(ShutdownError::Otlp),
            None => Ok(()),
        };
        http.and(monitor).and(otel)
    }

    /// The statistics aggregator itself.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// A snapshot of the statistics with the default options (10 recent operations).
    pub fn snapshot(&self) -> StatsSnapshot {
        self.snapshot_with(SnapshotOptions::default())
    }

    /// A snapshot of the statistics.
    pub fn snapshot_with(&self, options: SnapshotOptions) -> StatsSnapshot {
        self.filtered_snapshot(options, None, None)
    }

    /// A snapshot restricted to one strategy and/or operation type.
    pub fn filtered_snapshot(
        &self,
        options: SnapshotOptions,
        strategy: Option<&str>,
        operation: Option<&str>,
    ) -> StatsSnapshot {
        let mut snapshot = self.stats.filtered_snapshot(options, strategy, operation);
        self.add_health(&mut snapshot);
        snapshot
    }

    /// A snapshot and every record held, taken at the same instant.
    pub fn snapshot_and_records(&self) -> (StatsSnapshot, Vec<OperationRecord>) {
        let (mut snapshot, records) = self.stats.snapshot_and_records(SnapshotOptions::default());
        self.add_health(&mut snapshot);
        (snapshot, records)
    }

    fn add_health(&self, snapshot: &mut StatsSnapshot) {
        snapshot.health.sink_panics = self.layer.health().sink_panics();
        snapshot.health.monitor = self.monitor.as_ref().map(resources::health);
        snapshot.health.export = self.otel.as_ref().map(otlp::health);
    }

    /// Every operation record held, oldest first.
    pub fn records(&self) -> Vec<OperationRecord> {
        self.stats.records()
    }

    /// Writes the JSON export (statistics and every record held).
    pub fn export_json<W: Write>(&self, out: W) -> Result<(), WriteError> {
        let (snapshot, records) = self.snapshot_and_records();
        export::write_json(out, &snapshot, &records)
    }

    /// Writes the CSV export (one row per record held).
    pub fn export_csv<W: Write>(&self, out: W) -> Result<(), WriteError> {
        export::write_csv(out, &self.records())
    }

    /// Writes `vidperf-export.json` and `vidperf-export.csv` into `dir`, each
    /// atomically (temporary file, then rename).
    pub fn write_exports(&self, dir: &Path) -> Result<ExportPaths, WriteError> {
        let (snapshot, records) = self.snapshot_and_records();
        export::write_files(dir, &snapshot, &records)
    }
}
