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

pub use vidperf_otel::{
    BatchConfig, DEFAULT_MAX_QUEUE_SIZE, Early, ExportError, ExportHealth, GpuMemoryLimit, Otel,
    OtelConfig, OtelError, OtelReport, Protocol, Reason, Root, Sampler, SpanExport, TailConfig,
    TailHealth, Temporality, TraceCounters, TraceSink, TraceSinkBuilder, attr,
};

use crate::env::{env_switch, env_text};
use crate::error::BuildError;
use crate::parts::{Part, PartFailure, SpanCounts, Stopped, Wiring};

/// `VIDPERF_TAIL_SAMPLING`: `on` to decide which local traces are exported when they
/// end ([`TailConfig`]'s defaults); `off` (default) exports what the head sampler
/// (`OTEL_TRACES_SAMPLER`) sampled.
pub const ENV_TAIL_SAMPLING: &str = "VIDPERF_TAIL_SAMPLING";

/// What the builder does about OTLP.
#[derive(Debug, Clone, Default)]
pub(crate) struct Setting {
    pub(crate) export: Export,
    pub(crate) tail: Option<TailConfig>,
}

#[derive(Debug, Clone, Default)]
pub(crate) enum Export {
    /// On when `OTEL_EXPORTER_OTLP_ENDPOINT` (or the traces endpoint) is set.
    #[default]
    FromEnv,
    On(Box<OtelConfig>),
    Off,
}

/// Starts the export when configured (or when the standard endpoint variable is set),
/// registers its trace sink with the layer and its health with the statistics, and
/// hands the alert rules its dropped-span count.
pub(crate) fn start(setting: &Setting, wiring: &mut Wiring) -> Result<(), BuildError> {
    let mut config = match &setting.export {
        Export::Off => return Ok(()),
        Export::On(config) => (**config).clone(),
        Export::FromEnv => {
            // An empty value counts as unset (OpenTelemetry's rule for every variable).
            let set = |var| -> Result<bool, BuildError> {
                Ok(env_text(var)?.is_some_and(|v| !v.trim().is_empty()))
            };
            let wanted = wiring.read_env
                && (set("OTEL_EXPORTER_OTLP_ENDPOINT")?
                    || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")?);
            if !wanted {
                return Ok(());
            }
            OtelConfig::from_env()?
        }
    };
    if let Some(tail) = &setting.tail {
        config.tail = Some(tail.clone());
    } else if config.tail.is_none()
        && wiring.read_env
        && env_switch(ENV_TAIL_SAMPLING)? == Some(true)
    {
        config.tail = Some(TailConfig::default());
    }
    if config.gpu_memory_limit.is_none()
        && let Some(limit) = wiring.signals.gpu_memory_limit.clone()
    {
        config.gpu_memory_limit = Some(GpuMemoryLimit::from(limit));
    }
    let Some(otel) = Otel::start(&config, &wiring.stats)? else {
        return Ok(());
    };
    let otel = Arc::new(otel);
    wiring.stats.add_health_source(otel.clone());
    // The head sampler decides in the layer, when a trace starts here.
    let layer = std::mem::take(&mut wiring.layer);
    wiring.layer = layer.sampler(config.sampler).sink(otel.traces().clone());
    let counters = otel.traces().counters().clone();
    wiring.signals =
        std::mem::take(&mut wiring.signals).with_dropped_spans(move || counters.report().dropped);
    wiring.parts.push(Arc::new(OtlpPart(otel)));
    Ok(())
}

/// The running export, as a part.
#[derive(Debug)]
pub(crate) struct OtlpPart(pub(crate) Arc<Otel>);

impl Part for OtlpPart {
    fn name(&self) -> &'static str {
        "otlp"
    }

    fn flush(&self) -> Result<(), PartFailure> {
        self.0.flush().map_err(|e| PartFailure::Failed {
            part: "otlp",
            reason: e.to_string(),
        })
    }

    fn shutdown(&self, timeout: Duration) -> Stopped {
        // The counts are read around the shutdown whatever becomes of it.
        let lost = |h: &ExportHealth| h.failed + h.dropped;
        let before = self.0.health();
        let result = self.0.shutdown(timeout);
        let after = self.0.health();
        let spans = SpanCounts {
            exported: after.exported,
            lost_before: lost(&before),
            lost_at_shutdown: lost(&after).saturating_sub(lost(&before)),
        };
        let result = match result {
            Ok(_) => Ok(()),
            Err(OtelError::Lost(report)) => Err(PartFailure::Undelivered {
                part: "otlp",
                spans: report.lost_at_shutdown,
                reason: format!(
                    "{} failed (collector unreachable or refused), {} dropped at shutdown",
                    report.traces.failed, report.traces.dropped_shutdown
                ),
            }),
            Err(OtelError::Timeout(t)) => Err(PartFailure::Timeout {
                part: "otlp",
                timeout: t.timeout,
            }),
            Err(other) => Err(PartFailure::Failed {
                part: "otlp",
                reason: other.to_string(),
            }),
        };
        Stopped {
            spans: Some(spans),
            result,
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
