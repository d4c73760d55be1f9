//! OTLP export of traces and metrics, wired into the builder (feature `otlp`).
//!
//! Export turns on by itself when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the other standard `OTEL_*` variables
//! (service name, resource attributes, headers, timeout, protocol, sampler, batch
//! processor, metrics interval, `OTEL_SDK_DISABLED`) apply as listed in
//! [`vidperf_otel`'s documentation](vidperf_otel). In code:
//!
//! ```no_run
//! use std::time::Duration;
//! use vidperf::otlp::OtelConfig;
//!
//! let config = OtelConfig::from_env()?
//!     .with_endpoint("http://collector:4318")
//!     .with_max_queue_size(8192);
//! let vidperf = vidperf::builder().otlp(config).install()?;
//! // ... the application ...
//! // Flush and report what was lost (collector down, queue full), at most 5 s.
//! vidperf.shutdown(Duration::from_secs(5))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Over gRPC (feature `otlp-grpc`), build vidperf inside a tokio runtime: tonic's
//! connection lives on it.
//!
//! ```no_run
//! # #[cfg(feature = "otlp-grpc")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use vidperf::otlp::{OtelConfig, Protocol};
//!
//! let config = OtelConfig::from_env()?
//!     .with_protocol(Protocol::Grpc)
//!     .with_endpoint("http://collector:4317");
//! let vidperf = vidperf::builder().otlp(config).install()?;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use vidperf_core::{PerfLayerBuilder, Stats};
pub use vidperf_otel::{
    DEFAULT_MAX_QUEUE_SIZE, ExportHealth, Otel, OtelConfig, OtelError, OtelReport, Protocol,
    Temporality, TraceCounters, TraceSink, attr, span_exporter,
};

use crate::builder::{BuildError, Builder, env_text};
use crate::handle::ShutdownError;

#[derive(Debug, Clone, Default)]
pub(crate) enum Setting {
    /// On when `OTEL_EXPORTER_OTLP_ENDPOINT` (or the traces endpoint) is set.
    #[default]
    FromEnv,
    On(OtelConfig),
    Off,
}

pub(crate) type Pipeline = Otel;

#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
impl Builder {
    /// Exports traces and metrics over OTLP with this configuration (start from
    /// [`OtelConfig::from_env`] to keep the standard variables).
    pub fn otlp(mut self, config: OtelConfig) -> Self {
        self.otlp = Setting::On(config);
        self
    }

    /// No OTLP export, whatever the environment says.
    pub fn without_otlp(mut self) -> Self {
        self.otlp = Setting::Off;
        self
    }
}

pub(crate) fn start(
    setting: &Setting,
    read_env: bool,
    stats: &Arc<Stats>,
) -> Result<Option<Pipeline>, BuildError> {
    let config = match setting {
        Setting::Off => return Ok(None),
        Setting::On(config) => config.clone(),
        Setting::FromEnv => {
            // An empty value counts as unset (OpenTelemetry's rule for every variable).
            let set = |var| -> Result<bool, BuildError> {
                Ok(env_text(var)?.is_some_and(|v| !v.trim().is_empty()))
            };
            let wanted = read_env
                && (set("OTEL_EXPORTER_OTLP_ENDPOINT")?
                    || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")?);
            if !wanted {
                return Ok(None);
            }
            OtelConfig::from_env()?
        }
    };
    Ok(Otel::start(&config, stats)?)
}

/// Registers the sinks with the layer and the export's counts with the statistics.
pub(crate) fn attach(
    mut layer: PerfLayerBuilder,
    otel: Option<&Pipeline>,
    stats: &Stats,
) -> PerfLayerBuilder {
    if let Some(otel) = otel {
        stats.add_health_source(otel.clone());
        layer = layer.sink(otel.traces().clone());
    }
    layer
}

/// The figures of the export that alert rules read.
pub(crate) fn signals(
    signals: vidperf_watch::Signals,
    otel: Option<&Pipeline>,
) -> vidperf_watch::Signals {
    match otel {
        Some(o) => {
            let counters = o.traces().counters().clone();
            signals.with_dropped_spans(move || counters.report().dropped)
        }
        None => signals,
    }
}

pub(crate) fn shutdown(otel: &Pipeline, timeout: Duration) -> Result<(), ShutdownError> {
    Ok(otel.shutdown(timeout).map(drop)?)
}

pub(crate) fn flush(otel: &Pipeline) -> Result<(), ShutdownError> {
    Ok(otel.flush()?)
}

/// The metric families this part exports.
pub(crate) fn family_defs() -> Vec<vidperf_core::metrics::FamilyDef> {
    vidperf_otel::family::EXPORT.to_vec()
}
